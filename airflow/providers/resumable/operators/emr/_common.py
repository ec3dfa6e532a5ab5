"""What the resumable EMR operators share: AWS error classification, markers, and the on_kill stop."""

from __future__ import annotations

import ast
import contextlib
import inspect
import re
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from tenacity import Retrying, retry_if_exception_type, stop_after_attempt

from airflow.providers.resumable.mixins.resumable_job import (
    JobNotFoundError,
    ResumableJobConflictError,
    ResumableJobMixin,
    is_transient_error,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from airflow.providers.resumable.compat.version_compat import Context
    from airflow.providers.resumable.state.base import JsonValue

T = TypeVar("T")

#: Tag key that carries the idempotency token on clusters created by ResumableEmrCreateJobFlowOperator.
CLUSTER_TOKEN_TAG = "airflow-resumable-token"
#: EMR's limit on a step name.
STEP_NAME_MAX = 256
#: How far before the stored intent a lookup still searches, for clock skew between worker and AWS.
LOOKUP_SLACK = timedelta(minutes=15)

MARKER_RE = re.compile(r" \[(?P<token>rsm-[0-9a-f]{48}):(?P<index>\d+)/(?P<count>\d+)\]$")
_THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalFailure",
        "InternalServerError",
        "InternalServerException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
CLUSTER_ALIVE = frozenset({"STARTING", "BOOTSTRAPPING", "RUNNING", "WAITING"})
STEP_ACTIVE = frozenset({"PENDING", "RUNNING", "CANCEL_PENDING"})


def step_marker(token: str, index: int, count: int) -> str:
    """The suffix that makes step ``index`` of ``count`` findable by the submission's token."""
    return f" [{token}:{index}/{count}]"


# Longest marker a submission of up to 256 steps can get: the budget a step name must leave free.
MARKER_BUDGET = len(step_marker("rsm-" + "0" * 48, 255, 256))


def _client_error_code(exc: BaseException) -> tuple[str | None, int | None]:
    from botocore.exceptions import ClientError

    if not isinstance(exc, ClientError):
        return None, None
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return error.get("Code"), status


def is_transient_aws_error(exc: BaseException) -> bool:
    """Throttling, 5xx and connection trouble from botocore: worth another status call, never a resubmit."""
    from botocore.exceptions import (
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        ReadTimeoutError,
    )

    if isinstance(exc, EndpointConnectionError | ConnectionClosedError | ConnectTimeoutError | ReadTimeoutError):
        return True
    code, status = _client_error_code(exc)
    if code in _THROTTLING_CODES or (status is not None and status >= 500):
        return True
    return is_transient_error(exc)


def is_not_found(exc: BaseException, *codes: str) -> bool:
    code, status = _client_error_code(exc)
    return code in codes or (code is not None and status == 404)


@contextlib.contextmanager
def gone_if_not_found(*codes: str) -> Iterator[None]:
    """Turn AWS's "no such job" (``codes``, or any 404) into ``JobNotFoundError``: a fresh submission."""
    try:
        yield
    except Exception as exc:
        if is_not_found(exc, *codes):
            raise JobNotFoundError(str(exc)) from exc
        raise


def supported_kwargs(cls: type, **kwargs: Any) -> dict[str, Any]:
    """The keyword arguments ``cls`` accepts: triggers gained region/verify/botocore_config after 9.23."""
    params = inspect.signature(cls).parameters
    return {name: value for name, value in kwargs.items() if name in params}


@contextlib.contextmanager
def attributes(obj: Any, **values: Any) -> Iterator[None]:
    """
    Set attributes for the duration of a call to the official ``execute()`` and restore them after.

    Only for what we change to make that call submit and not wait (``wait_for_completion``, the marked
    steps, our token). What the official ``execute()`` itself leaves set on the operator (a generated
    job name, parsed overrides) is set by the caller outside this block and stays set, as upstream.
    """
    saved = {name: getattr(obj, name) for name in values}
    for name, value in values.items():
        setattr(obj, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(obj, name, value)


def spec_as_given(operator: Any, build: Callable[[], Any]) -> Any:
    """
    The job spec as the task gave it, built once per operator object.

    The official ``execute()`` rewrites some of the attributes a spec is made of (a generated job name,
    parsed overrides), and a retry that runs in the same process (``dag.test()``) reuses the object:
    its fingerprint must come from the spec as given, not from what the previous try left behind.
    """
    cached = operator.__dict__.get("_resumable_spec_as_given")
    if cached is None:
        cached = build()
        operator.__dict__["_resumable_spec_as_given"] = cached
    return cached


def literal(value: Any) -> Any:
    """Steps / overrides may arrive as the string of a Python literal (XCom, a .json file): parse it."""
    return ast.literal_eval(value) if isinstance(value, str) else value


def intent_time(operator: ResumableJobMixin, *, resume: bool = False) -> datetime | None:
    """
    When the pending submission (or, with ``resume``, the pending resume) was announced: a lookup by
    token need not look further back.

    Read from the record this try's job run holds (the one it read, or the intent it just wrote),
    not from the store again.
    """
    record = operator.job_run.record if operator.job_run is not None else None
    at = None if record is None else (record.resume_intent_at if resume else None) or record.intent_at
    if at is None:
        return None
    return datetime.fromisoformat(at) - LOOKUP_SLACK


def require_dict_id(external_id: JsonValue, keys: tuple[str, ...], what: str) -> dict[str, Any]:
    if not isinstance(external_id, dict) or any(not external_id.get(k) for k in keys):
        raise ResumableJobConflictError(
            f"The stored {what} id {external_id!r} lacks {', '.join(keys)}; refusing to guess which job it "
            "means. Check AWS, then delete the job record to start over."
        )
    return external_id


def cluster_console_url(hook: Any, external_id: JsonValue) -> str | None:
    """
    The AWS console page of the EMR cluster ``external_id`` names, shaped as the official ``EmrClusterLink``.

    Built from the hook's region and partition, as the official operators build their link: no AWS call.
    """
    from airflow.providers.amazon.aws.links.base_aws import BaseAwsLink
    from airflow.providers.amazon.aws.links.emr import EmrClusterLink

    cluster_id = external_id.get("cluster_id") if isinstance(external_id, dict) else None
    domain = BaseAwsLink.get_aws_domain(hook.conn_partition)
    if not cluster_id or domain is None:
        return None
    return EmrClusterLink.format_str.format(
        aws_domain=domain, region_name=hook.conn_region_name, job_flow_id=cluster_id
    )


#: botocore's retry settings for a call that must not be sent twice: one attempt, no retry.
SINGLE_ATTEMPT = {"total_max_attempts": 1, "mode": "standard"}


@contextlib.contextmanager
def sent_once(hook: Any) -> Iterator[None]:
    """
    Make the official hook send its next non-idempotent call once, with botocore's retries off.

    The official ``EmrHook.add_job_flow_steps`` and ``EmrHook.create_job_flow`` send AddJobFlowSteps and
    RunJobFlow through ``hook.get_conn()``; for the block that returns a client of the same connection
    (session, region, endpoint, the user's botocore config) whose retries are off, so botocore cannot
    repeat a call that AWS accepted but whose response was lost. Every other call (``hook.conn``: the
    log URI, waiters, lookups) keeps its retries. A ``conn`` that botocore did not build (a wrapper, a
    test double) has no botocore retries to turn off and is used as it is.
    """
    import botocore.client
    from botocore.config import Config

    if not isinstance(hook.conn, botocore.client.BaseClient):
        yield
        return
    config = (hook.config or Config()).merge(Config(retries=dict(SINGLE_ATTEMPT)))
    client = hook.get_client_type(region_name=hook.region_name, config=config)
    hook.get_conn = lambda: client
    try:
        yield
    finally:
        hook.__dict__.pop("get_conn", None)


class _NotThere(Exception):
    """A submission whose response was lost is certainly absent: send it again (internal)."""


class ResumableEmrJob(ResumableJobMixin):
    """
    What the four EMR operators share on top of the mixin: AWS's transient errors, the official
    ``on_kill`` left out (it cancels or terminates unconditionally), the record forgotten when a
    deferred job succeeded, and non-idempotent submissions sent at most once per lookup.
    """

    base_on_kill_cancels = True

    #: How often a submission without an idempotency token is sent in one try, each time only after a
    #: lookup found that the previous one did not go through.
    submit_attempts: ClassVar[int] = 3

    def submit_unrepeated(self, what: str, submit: Callable[[], T], find: Callable[[], T | None]) -> T:
        """
        Send a submission AWS has no idempotency token for (AddJobFlowSteps, RunJobFlow) at most once
        per lookup.

        ``submit`` sends it inside :func:`sent_once`, so botocore does not repeat it. When it fails with
        an error after which AWS may have accepted it anyway (a lost or cut response, a timeout,
        throttling, a 5xx), ``find`` looks for it (marker, tag) with retries on: found, it is the
        result; certainly absent, it is sent again, up to ``submit_attempts`` times. Any other error
        (validation, access) means nothing was created and is raised at once.
        """

        def attempt() -> T:
            try:
                return submit()
            except Exception as exc:
                if not self.is_transient_error(exc):
                    raise
                self.log.warning("%s: no answer from AWS (%r); looking it up before anything else", what, exc)
                found = self._retrying(find)
                if found:
                    self.log.info("%s had gone through: %s", what, found)
                    return found
                self.log.warning("%s did not go through (nothing carries its token)", what)
                raise _NotThere from exc

        retrying = Retrying(
            stop=stop_after_attempt(self.submit_attempts),
            wait=self.status_retry_wait,
            retry=retry_if_exception_type(_NotThere),
            reraise=True,
        )
        try:
            return retrying(attempt)
        except _NotThere as absent:
            raise (absent.__cause__ or absent) from None

    def is_transient_error(self, exc: BaseException) -> bool:
        return is_transient_aws_error(exc)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        # The official completion raises for a failed job, so reaching the next line means success.
        result = super().execute_complete(context, event)  # type: ignore[misc]
        self.forget_job(context)
        return result
