"""``ResumablePaginatedHttpOperator``: walk a paginated API, stream pages to storage, resume at the last page."""

from __future__ import annotations

import json
import os
import tempfile
from typing import TYPE_CHECKING, Any, ClassVar

from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from airflow.providers.resumable.compat.airflow import determine_kwargs, object_storage_path
from airflow.providers.resumable.compat.version_compat import AirflowException, AirflowFailException
from airflow.providers.resumable.extras import requires_extra
from airflow.providers.resumable.mixins.stateful import Checkpoint
from airflow.providers.resumable.mixins.watermark import WatermarkMixin

# The retry helpers lived here until 0.2.0: still importable from this module.
from airflow.providers.resumable.operators.http_retry import (
    TransientHttpError,
    _is_transient,
    retry_after_seconds,
    wait_retry_after,
)
from airflow.providers.resumable.operators.incremental import Incremental
from airflow.providers.resumable.operators.pagination import (
    CursorPagination,
    LinkHeaderPagination,
    OffsetLimitPagination,
    PageNumberPagination,
    PageRequest,
    PaginationStrategy,
    build_pagination,
    get_path,
    page_json,
    positive_int,
)
from airflow.providers.resumable.state.base import task_instance_of
from airflow.providers.resumable.watermarks.rules import BoundaryFilter, cursor_max

with requires_extra("http", __name__):
    from airflow.providers.http.operators.http import HttpOperator

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    import requests
    from airflow.providers.http.hooks.http import HttpHook
    from tenacity import RetryCallState

    from airflow.providers.resumable.compat.version_compat import Context
    from airflow.providers.resumable.watermarks.rules import Window

__all__ = [
    "CursorPagination",
    "Incremental",
    "LinkHeaderPagination",
    "MalformedPageError",
    "MaxPagesExceededError",
    "OffsetLimitPagination",
    "PageNumberPagination",
    "PaginationLoopError",
    "ResumablePaginatedHttpOperator",
    "TransientHttpError",
    "retry_after_seconds",
    "wait_retry_after",
]


class MalformedPageError(AirflowException):
    """A page could not be turned into records (not JSON, or no list at ``records_path``)."""


class PaginationLoopError(AirflowFailException):
    """The pagination step asked for the request it had just made: following it would never end."""


class MaxPagesExceededError(AirflowFailException):
    """The API had more pages than ``max_pages`` allows; a retry would meet the same pages."""


#: Pages and records of the finished crawl, stored with its last page.
TOTALS_KEY = "totals"


class PageCursor(Checkpoint):
    """
    Where the crawl stands: what the pagination step returned for the next request, and counters.

    Only the pagination step's output is stored. The operator's own endpoint, data and headers are
    rendered afresh on every try and merged in as ``HttpOperator`` merges them, so no credential
    from ``headers`` lands in the state store and an expired token is never replayed.
    """

    schema_version: ClassVar[int] = 1
    next_page: dict[str, Any] | None = None
    pages: int = 0
    records: int = 0
    #: Incremental runs: the highest cursor value in the pages written so far, so a retry keeps it.
    high: Any = None
    #: Incremental runs: the records written near the top (the next run's boundary), for a retry.
    delivered: dict[str, Any] = {}


#: One encoder for every record: ``json.dumps`` with ``separators`` builds a new encoder per call.
_RECORD_ENCODER = json.JSONEncoder(separators=(",", ":"))


def _part_name(index: int) -> str:
    """The part of page ``index``: the same name on every try, so writing a page again replaces it."""
    return f"part-{index:05d}.jsonl"


class PartSink:
    """
    One JSON-lines part per page at a deterministic name, so writing a page again replaces it.

    Each page names its part (and the manifest names every part), and joining an
    ``ObjectStoragePath`` costs ~0.1 ms, 2 % of a 5 ms page: the root's URI prefix is taken once
    from a real join, and a local part is written with ``open()`` under the root's path instead of
    through fsspec (the rename into place was always ``os.replace``).
    """

    def __init__(self, root: Any) -> None:
        self.root = root
        sample = _part_name(0)
        self._prefix = str(root / sample)[: -len(sample)]
        self._local_dir: str | None = root.path if root.protocol in ("file", "local", "") else None

    def uri(self, index: int) -> str:
        return self._prefix + _part_name(index)

    def write(self, index: int, records: list[Any]) -> str:
        name = _part_name(index)
        body = "".join(_RECORD_ENCODER.encode(record) + "\n" for record in records)
        if self._local_dir is not None:
            # A crash mid-write must not leave half a part under the final name; object stores get
            # the same guarantee from a single PUT.
            tmp = os.path.join(self._local_dir, f".{name}.tmp")
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(body)
            os.replace(tmp, os.path.join(self._local_dir, name))
        else:
            (self.root / name).write_text(body)
        return self._prefix + name


class ResumablePaginatedHttpOperator(WatermarkMixin, HttpOperator):
    """
    Walk a paginated HTTP API page by page, stream each page to storage, and resume at the last page.

    Accepts every ``HttpOperator`` argument; a ``pagination_function`` written for ``HttpOperator``
    works unchanged, or pass one of the built-in strategies as ``pagination``. Pages are written, one
    ``part-00026.jsonl`` per page, under ``output_path`` *before* the cursor is checkpointed, so a retry
    starts at the request after the last written page and a page fetched twice replaces its part.
    Returns a small manifest ``{"pages", "records", "parts", "resumed_from_page"}`` instead of the
    responses, which never accumulate in memory or XCom.

    ``response_check`` and ``response_filter`` are applied to each page's response (not to a list of
    all responses, which this operator never holds): ``response_filter`` returns the page's records.

    Extension points: ``process_response(context, response)`` is called once per page, with that
    page's response, and returns the page's records (a list, or one record); a subclass may override
    it and call ``super()``. ``execute_sync``, ``paginate_sync``, ``execute_async``, ``paginate_async``
    and ``execute_complete`` are never called, so a subclass that overrides one of them is refused
    when its class is defined (``TypeError`` naming the method), rather than losing its logic silently.

    :param pagination: a ``PaginationStrategy`` (``PageNumberPagination``, ``OffsetLimitPagination``,
        ``CursorPagination``, ``LinkHeaderPagination``) or a dict such as
        ``{"strategy": "cursor", "cursor_path": "meta.next_cursor"}``. Mutually exclusive with
        ``pagination_function``; with neither, one page is fetched.
    :param records_path: dotted path to the list of records in each JSON page (``"data.items"``);
        default: the page itself if it is a list, else the page as one record.
    :param output_path: where parts go, any ``ObjectStoragePath`` URI (``file://``, ``s3://``, ...;
        templated). Default: ``[resumable] default_output_path`` /dag_id/task_id/run_id/map_index.
    :param max_pages: fail when the API has more pages than this.
    :param page_retry_attempts: tries per page on 429, 5xx and connection errors before the task
        fails (with its checkpoint intact, so the Airflow retry resumes there).
    :param page_retry_max_wait: the longest single wait between them, in seconds, ``Retry-After``
        included.
    :param incremental: an :class:`~airflow.providers.resumable.operators.incremental.Incremental` (or a
        dict of its fields): read only what changed since the last successful run. Every page's request
        carries the committed watermark (minus the lag) as ``param``; the highest ``cursor_field`` seen
        is committed once the run's success is recorded, and the manifest gains a ``window``.
        ``on_overlap`` and ``watermark_asset`` (see ``WatermarkMixin``) say what happens when runs
        overlap and where the mark is kept.
    """

    template_fields = (*HttpOperator.template_fields, "output_path")
    checkpoint_model = PageCursor
    state_namespace = "http_pages"

    #: HttpOperator methods this operator never calls, and what to do instead of overriding them.
    NOT_CALLED: ClassVar[dict[str, str]] = {
        "execute_sync": "execute() fetches, checks and writes one page at a time",
        "paginate_sync": "pages are walked by execute(), with pagination / pagination_function",
        "execute_async": "deferrable=True is not supported",
        "paginate_async": "deferrable=True is not supported",
        "execute_complete": "deferrable=True is not supported",
    }

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, why in ResumablePaginatedHttpOperator.NOT_CALLED.items():
            if getattr(cls, name) is not getattr(ResumablePaginatedHttpOperator, name):
                raise TypeError(
                    f"{cls.__module__}.{cls.__qualname__} overrides HttpOperator.{name}, which "
                    f"ResumablePaginatedHttpOperator never calls ({why}), so the override would be ignored. "
                    "Override process_response(context, response), called once per page and returning its "
                    "records, or subclass HttpOperator instead."
                )

    def __init__(
        self,
        *,
        pagination: PaginationStrategy | Mapping[str, Any] | None = None,
        records_path: str | None = None,
        output_path: str | None = None,
        max_pages: int | None = None,
        page_retry_attempts: int = 5,
        page_retry_max_wait: float = 60.0,
        incremental: Incremental | Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if pagination is not None and kwargs.get("pagination_function") is not None:
            raise ValueError("pass either pagination or pagination_function, not both")
        if kwargs.get("retry_args"):
            raise ValueError(
                "retry_args is not used by ResumablePaginatedHttpOperator, which retries each page itself; "
                f"use page_retry_attempts and page_retry_max_wait instead; got retry_args={kwargs['retry_args']!r}"
            )
        if kwargs.get("deferrable"):
            raise ValueError(
                "deferrable=True is not supported by ResumablePaginatedHttpOperator: pages are written "
                "to storage from the worker as they arrive; got deferrable=True"
            )
        if max_pages is not None:
            positive_int("max_pages", max_pages)
        positive_int("page_retry_attempts", page_retry_attempts)
        if not isinstance(page_retry_max_wait, int | float) or page_retry_max_wait < 0:
            raise ValueError(f"page_retry_max_wait must be a number >= 0, got {page_retry_max_wait!r}")
        strategy = build_pagination(pagination) if pagination is not None else None
        config = Incremental.build(incremental) if incremental is not None else None
        super().__init__(**kwargs)
        self.incremental = config
        # A deployment-wide [operators] default_deferrable must not switch this operator to a path it lacks.
        self.deferrable = False
        self.pagination = strategy
        self.records_path = records_path
        self.output_path = output_path
        self.max_pages = max_pages
        self.page_retry_attempts = page_retry_attempts
        self.page_retry_max_wait = float(page_retry_max_wait)

    # ---- execution ----------------------------------------------------------------------------------

    def execute(self, context: Context) -> dict[str, Any]:
        self.log.info("Calling HTTP method")  # as HttpOperator logs it
        hook = self.hook
        sink = PartSink(self._output_root(context))
        final: dict[str, Any] = {"pages": 0, "records": 0, "high": None, "delivered": {}}
        window = self._start_window(context)
        incremental = self.incremental

        def process(cursor: PageCursor, index: int) -> PageCursor | None:
            if self.max_pages is not None and index >= self.max_pages:
                raise MaxPagesExceededError(
                    f"the API has more than max_pages={self.max_pages} pages; raise max_pages or narrow the query"
                )
            request = self._request(cursor.next_page, hook)
            response = self._fetch(hook, request, index)
            records = self._records(response, index, context)
            if incremental is not None and window is not None:
                seen = BoundaryFilter.start(window, cursor.high, cursor.delivered)
                records = incremental.fresh(records, index, seen)
                final["high"], final["delivered"] = seen.high, seen.delivered
            sink.write(index, records)
            final["pages"], final["records"] = index + 1, cursor.records + len(records)
            next_params = self._next_params(response, records, request)
            if not next_params:
                # With the last page: a retry after the walk (the XCom push failed) rebuilds the manifest.
                self.state_store(context).set(TOTALS_KEY, final)
                return None
            if self._request(next_params, hook) == request:
                raise PaginationLoopError(
                    f"page {index}: the pagination step asked for the same request again "
                    f"(endpoint={request.endpoint!r}, data={request.data!r}); stopping instead of looping"
                )
            return PageCursor(
                next_page=next_params,
                pages=index + 1,
                records=final["records"],
                high=final["high"],
                delivered=final["delivered"],
            )

        run = self.run_batches(context, process, start=PageCursor(next_page=self._first_params()))
        if run.already_complete:
            totals = self.state_store(context).get(TOTALS_KEY) or {}
            final["pages"], final["records"] = int(totals.get("pages", run.batches_done)), int(totals.get("records", 0))
            final["high"], final["delivered"] = totals.get("high"), totals.get("delivered") or {}
        self.log.info(
            "Fetched %s pages, %s records, into %s (this try started at page %s)",
            final["pages"],
            final["records"],
            sink.root,
            run.resumed_from,
        )
        manifest = {
            "pages": final["pages"],
            "records": final["records"],
            "parts": [sink.uri(i) for i in range(final["pages"])],
            "resumed_from_page": run.resumed_from,
        }
        if window is not None:
            manifest["window"] = self._finish_window(context, window, final["high"], final["delivered"])
        return manifest

    # ---- incremental ------------------------------------------------------------------------------

    def _start_window(self, context: Context) -> Window | None:
        """Plan (or, on a retry, reread) this run's window and send its start with every page."""
        if self.incremental is None:
            return None
        initial = self.incremental.initial_value
        if isinstance(initial, str):
            initial = self.render_template(initial, context)
        window = self.watermark_window(
            context, initial_value=initial, lag=self.incremental.lag, read_boundary=self.incremental.read_boundary
        )
        if window.since is not None:
            self.data = self.incremental.with_param(self.data, window.since)
        return window

    def _finish_window(self, context: Context, window: Window, high: Any, delivered: dict[str, Any]) -> dict[str, Any]:
        """Stage the new mark (never below the base: the lag re-reads older records) and describe the window."""
        staged = cursor_max(window.base, high)
        if staged is not None:
            self.watermark(context).advance(staged, boundary=delivered)
        return {
            "since": window.since,
            "until": high,
            "base": window.base,
            "lag": window.lag,
            "reread_own_window": window.reread_own,
            "store": self.watermark_store(context).name,
        }

    # ---- one page -----------------------------------------------------------------------------------

    def _first_params(self) -> dict[str, Any] | None:
        return self.pagination.first_page() if self.pagination is not None else None

    def _next_params(self, response: requests.Response, records: list[Any], request: PageRequest) -> Any:
        if self.pagination is not None:
            return self.pagination.next_page(response, records, request)
        if self.pagination_function is not None:
            return self.pagination_function(response)
        return None

    def _request(self, params: Mapping[str, Any] | None, hook: HttpHook) -> PageRequest:
        """The page's request: this try's rendered arguments, merged with ``params`` as HttpOperator does."""
        if params:
            merged = self._merge_next_page_parameters(dict(params))
        else:
            merged = {
                "endpoint": self.endpoint,
                "data": self.data,
                "headers": self.headers,
                "extra_options": self.extra_options,
            }
        return PageRequest(
            endpoint=self._relative_endpoint(merged.get("endpoint"), hook),
            data=merged.get("data"),
            headers=dict(merged.get("headers") or {}),
            extra_options=dict(merged.get("extra_options") or {}),
        )

    @staticmethod
    def _relative_endpoint(endpoint: str | None, hook: HttpHook) -> str | None:
        """Absolute next-page URLs (Link headers, ``next`` fields) become endpoints of the connection."""
        if not endpoint or not endpoint.startswith(("http://", "https://")):
            return endpoint
        base = hook.url_from_endpoint("").rstrip("/")
        if endpoint == base or endpoint.startswith(base + "/"):
            return endpoint[len(base) :]
        raise ValueError(
            f"next page URL {endpoint!r} is not under the connection's base URL {base!r} (another scheme, "
            "host, port or path prefix); refusing to send the connection's credentials elsewhere"
        )

    def _fetch(self, hook: HttpHook, request: PageRequest, index: int) -> requests.Response:
        def attempt() -> requests.Response:
            response = hook.run(
                endpoint=request.endpoint,
                data=request.data,
                headers=request.headers,
                extra_options={**request.extra_options, "check_response": False},
                **self.request_kwargs,
            )
            if self.log_response:
                # As HttpOperator logs it, before any check: the text alone (the page index is in the
                # checkpoint and error messages).
                self.log.info(response.text)
            if response.status_code == 429 or response.status_code >= 500:
                raise TransientHttpError(response, index)
            if response.status_code >= 400:
                raise AirflowException(
                    f"page {index}: HTTP {response.status_code} {response.reason} for {request.endpoint!r}: "
                    f"{response.text[:200]!r}"
                )
            return response

        retrying = Retrying(
            stop=stop_after_attempt(self.page_retry_attempts),
            wait=wait_retry_after(fallback=wait_exponential_jitter(initial=1, max=30), cap=self.page_retry_max_wait),
            retry=retry_if_exception(_is_transient),
            reraise=True,
            before_sleep=self._log_retry(index),
        )
        return retrying(attempt)

    def _log_retry(self, index: int) -> Callable[[RetryCallState], None]:
        def log(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            self.log.warning(
                "%s (attempt %s of %s); retrying in %.1fs",
                exc if isinstance(exc, TransientHttpError) else f"page {index}: {exc!r}",
                state.attempt_number,
                self.page_retry_attempts,
                state.next_action.sleep if state.next_action else 0.0,
            )

        return log

    def _records(self, response: requests.Response, index: int, context: Context) -> list[Any]:
        self._page_index = index
        records = self.process_response(context=context, response=response)
        return list(records) if isinstance(records, list | tuple) else [records]

    def process_response(self, context: Context, response: requests.Response | list[requests.Response]) -> Any:
        """
        Turn one page's response into its records: ``response_check``, then ``response_filter`` or the JSON.

        Called once per page (never with a list of responses). Returns a list of records, or one
        record; override it (and call ``super()``) to change how a page becomes records.
        """
        if isinstance(response, list):
            raise TypeError(
                f"{type(self).__name__}.process_response takes one page's response, got a list of "
                f"{len(response)}: pages are processed one at a time"
            )
        index = getattr(self, "_page_index", 0)
        if self.response_check is not None:
            kwargs = determine_kwargs(self.response_check, [response], context)
            if not self.response_check(response, **kwargs):
                raise AirflowException(f"page {index}: response_check returned False")
        if self.response_filter is not None:
            kwargs = determine_kwargs(self.response_filter, [response], context)
            return self.response_filter(response, **kwargs)
        try:
            document = page_json(response)
        except ValueError:
            raise MalformedPageError(
                f"page {index} is not JSON (HTTP {response.status_code}, Content-Type "
                f"{response.headers.get('Content-Type')!r}): {response.text[:120]!r}"
            ) from None
        records = get_path(document, self.records_path)
        if self.records_path is None:
            return records if isinstance(records, list) else [records]
        if not isinstance(records, list):
            raise MalformedPageError(
                f"page {index}: records_path {self.records_path!r} holds {type(records).__name__}, not a list; "
                f"page keys: {sorted(document) if isinstance(document, dict) else type(document).__name__}"
            )
        return records

    def _output_root(self, context: Context) -> Any:
        if self.output_path:
            root = object_storage_path(self.output_path)
        elif task_instance_of(context) is None:
            # Outside a task instance (a unit test calling execute()), nothing is resumed, and there is
            # no dag/task/run to name a place after: a fresh temporary directory per call.
            root = object_storage_path("file://" + tempfile.mkdtemp(prefix=f"resumable-{self.task_id}-"))
            self.log.info("No task instance and no output_path: writing the parts to %s", root)
        else:
            from airflow.configuration import conf

            base = conf.get("resumable", "default_output_path", fallback="") or (
                "file://" + os.path.join(os.environ.get("AIRFLOW_HOME", os.path.expanduser("~/airflow")), "resumable")
            )
            ti = context["ti"]
            safe_run = "".join(c if c.isalnum() or c in "-_." else "_" for c in ti.run_id)
            map_index = getattr(ti, "map_index", -1)
            root = object_storage_path(base) / ti.dag_id / ti.task_id / safe_run / str(map_index)
        root.mkdir(parents=True, exist_ok=True)
        return root
