"""
Pagination strategies for ``ResumablePaginatedHttpOperator``: small objects, so most users write no function.

A strategy answers two questions, and only from what it is given, so that a retry resuming from a
checkpoint asks the same questions and gets the same answers:

* ``first_page()``: parameters to merge into the operator's own request for page 0;
* ``next_page(response, records, request)``: parameters of the next request, or None after the last
  page. The returned dict has the shape of an ``HttpOperator`` ``pagination_function``'s result
  (``endpoint``, ``data``, ``headers``, ``extra_options``) and is merged the same way.
"""

from __future__ import annotations

import dataclasses
import weakref
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urljoin, urlsplit

if TYPE_CHECKING:
    from requests import Response


@dataclasses.dataclass(frozen=True)
class PageRequest:
    """The request that fetched a page, after merging, as ``HttpHook.run`` received it."""

    endpoint: str | None
    data: Any
    headers: dict[str, Any]
    extra_options: dict[str, Any]


_PARSED: weakref.WeakKeyDictionary[Response, Any] = weakref.WeakKeyDictionary()


def page_json(response: Response) -> Any:
    """
    ``response.json()``, parsed once per page however many readers ask.

    The operator reads records and a strategy reads its cursor or total from the same body;
    ``requests`` parses again on every ``json()`` call, which on a large page is the costliest step.
    """
    if response not in _PARSED:
        _PARSED[response] = response.json()
    return _PARSED[response]


def get_path(document: Any, path: str | None) -> Any:
    """``get_path({"a": {"b": 1}}, "a.b") == 1``; None when any step is missing."""
    if not path:
        return document
    current = document
    for part in path.split("."):
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return None
    return current


def positive_int(name: str, value: Any, minimum: int = 1) -> int:
    """Return ``value`` if it is an int (not a bool) >= ``minimum``; else a ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def _current_int(request: PageRequest, param: str, strategy: str) -> int:
    data = request.data if isinstance(request.data, Mapping) else {}
    try:
        return int(data[param])
    except (KeyError, TypeError, ValueError):
        raise ValueError(
            f"{strategy} needs the current request's data to hold an integer {param!r}, got data={request.data!r}"
        ) from None


class PaginationStrategy(ABC):
    """Base of the built-in strategies; subclass it for an API none of them fits."""

    name: str = ""

    def first_page(self) -> dict[str, Any] | None:
        return None

    @abstractmethod
    def next_page(self, response: Response, records: list[Any], request: PageRequest) -> dict[str, Any] | None:
        """Parameters of the page after ``response``, or None when it was the last."""


@dataclasses.dataclass(frozen=True)
class PageNumberPagination(PaginationStrategy):
    """``?page=1``, ``?page=2``, ... until a page has no records (or ``total_pages_path`` is reached)."""

    name = "page_number"
    param: str = "page"
    start: int = 1
    page_size: int | None = None
    page_size_param: str = "per_page"
    total_pages_path: str | None = None

    def __post_init__(self) -> None:
        positive_int("start", self.start, minimum=0)
        if self.page_size is not None:
            positive_int("page_size", self.page_size)

    def first_page(self) -> dict[str, Any]:
        data: dict[str, Any] = {self.param: self.start}
        if self.page_size is not None:
            data[self.page_size_param] = self.page_size
        return {"data": data}

    def next_page(self, response: Response, records: list[Any], request: PageRequest) -> dict[str, Any] | None:
        if not records:
            return None
        page = _current_int(request, self.param, "PageNumberPagination")
        if self.total_pages_path:
            total = get_path(page_json(response), self.total_pages_path)
            if total is not None and page >= int(total):
                return None
        data: dict[str, Any] = {self.param: page + 1}
        if self.page_size is not None:
            data[self.page_size_param] = self.page_size
        return {"data": data}


@dataclasses.dataclass(frozen=True)
class OffsetLimitPagination(PaginationStrategy):
    """``?offset=0&limit=100``, then ``offset=100``, ... until a page comes back shorter than ``limit``."""

    name = "offset_limit"
    limit: int = 100
    offset_param: str = "offset"
    limit_param: str = "limit"
    total_path: str | None = None

    def __post_init__(self) -> None:
        positive_int("limit", self.limit)

    def first_page(self) -> dict[str, Any]:
        return {"data": {self.offset_param: 0, self.limit_param: self.limit}}

    def next_page(self, response: Response, records: list[Any], request: PageRequest) -> dict[str, Any] | None:
        offset = _current_int(request, self.offset_param, "OffsetLimitPagination") + len(records)
        if len(records) < self.limit:
            return None
        if self.total_path:
            total = get_path(page_json(response), self.total_path)
            if total is not None and offset >= int(total):
                return None
        return {"data": {self.offset_param: offset, self.limit_param: self.limit}}


@dataclasses.dataclass(frozen=True)
class CursorPagination(PaginationStrategy):
    """A cursor found in the JSON body (``cursor_path``, dotted) sent back as ``cursor_param``."""

    name = "cursor"
    cursor_path: str = "next_cursor"
    cursor_param: str = "cursor"

    def next_page(self, response: Response, records: list[Any], request: PageRequest) -> dict[str, Any] | None:
        cursor = get_path(page_json(response), self.cursor_path)
        if cursor in (None, ""):
            return None
        return {"data": {self.cursor_param: cursor}}


@dataclasses.dataclass(frozen=True)
class LinkHeaderPagination(PaginationStrategy):
    """
    RFC 8288: follow ``Link: <url>; rel="next"`` until a response has none.

    ``drop_params`` names query parameters to strip from each link before it is stored, for APIs
    that repeat a credential (``?api_key=...``) in their next links: the operator's own ``data``,
    rendered afresh on every try, sends it instead, and the state store never holds it.
    """

    name = "link_header"
    rel: str = "next"
    drop_params: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        params = self.drop_params
        if isinstance(params, str) or not all(isinstance(p, str) and p for p in params):
            raise ValueError(f"drop_params must be a list of query parameter names, got {params!r}")
        object.__setattr__(self, "drop_params", tuple(params))

    def next_page(self, response: Response, records: list[Any], request: PageRequest) -> dict[str, Any] | None:
        url = response.links.get(self.rel, {}).get("url")
        if not url:
            return None
        # Relative and scheme-relative links resolve against the page that sent them, so the operator
        # always sees an absolute URL to check against its connection (and refuse another host).
        parts = urlsplit(urljoin(response.url or "", url))
        # The query moves into ``data`` so that merging with the operator's own data overrides
        # rather than repeats a parameter.
        base = f"{parts.scheme}://{parts.netloc}{parts.path}" if parts.scheme else parts.path
        query = parse_qsl(parts.query, keep_blank_values=True)
        return {"endpoint": base, "data": {k: v for k, v in query if k not in self.drop_params}}


STRATEGIES: dict[str, type[PaginationStrategy]] = {
    cls.name: cls for cls in (PageNumberPagination, OffsetLimitPagination, CursorPagination, LinkHeaderPagination)
}


def build_pagination(spec: PaginationStrategy | Mapping[str, Any]) -> PaginationStrategy:
    """A strategy from itself or from ``{"strategy": "cursor", "cursor_path": "meta.next"}``."""
    if isinstance(spec, PaginationStrategy):
        return spec
    if not isinstance(spec, Mapping):
        raise TypeError(
            f"pagination must be a PaginationStrategy or a dict with a 'strategy' key, got {type(spec).__name__}"
        )
    options = dict(spec)
    name = options.pop("strategy", None)
    if name not in STRATEGIES:
        raise ValueError(f"pagination strategy must be one of {sorted(STRATEGIES)}, got {name!r}")
    cls = STRATEGIES[name]
    allowed = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for pagination strategy {name!r}; allowed: {sorted(allowed)}")
    return cls(**options)
