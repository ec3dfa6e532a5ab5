"""
An API mocked with requests-mock under connection ``news`` (``BASE``), and ResumablePaginatedHttpOperator
writing its parts under a test's ``tmp_path``: what the HTTP operator's unit tests share.
"""

from __future__ import annotations

import json
from typing import Any

from airflow.providers.resumable.operators.http import Incremental, ResumablePaginatedHttpOperator

BASE = "http://api.test"


def items(start: int, stop: int) -> list[dict[str, int]]:
    return [{"id": i} for i in range(start, stop)]


def op(tmp_path: Any, **kwargs: Any) -> ResumablePaginatedHttpOperator:
    kwargs.setdefault("task_id", "crawl")
    kwargs.setdefault("http_conn_id", "news")
    kwargs.setdefault("method", "GET")
    kwargs.setdefault("page_retry_max_wait", 0)
    return ResumablePaginatedHttpOperator(output_path=f"file://{tmp_path}/out", **kwargs)


def parts(tmp_path: Any) -> list[Any]:
    out = []
    for part in sorted((tmp_path / "out").glob("part-*.jsonl")):
        out.extend(json.loads(line) for line in part.read_text().splitlines())
    return out


def register_pages(requests_mock: Any, endpoint: str, total: int = 25, size: int = 10) -> None:
    """A page-number API: ?page=N (1-based)."""

    def respond(request, context):
        page = int(request.qs.get("page", ["1"])[0])
        return {"items": items((page - 1) * size, min(page * size, total))}

    requests_mock.get(f"{BASE}/{endpoint}", json=respond)


def stamp(minute: int) -> str:
    return f"2026-01-01T00:{minute:02d}:00Z"


def incremental_op(tmp_path: Any, **kwargs: Any) -> ResumablePaginatedHttpOperator:
    """Reads ``issues`` by offset, pages of 10, incremental on ``updated_at`` from minute 0."""
    kwargs.setdefault("incremental", Incremental(cursor_field="updated_at", initial_value=stamp(0)))
    kwargs.setdefault("data", {"limit": 10})
    kwargs.setdefault("pagination", {"strategy": "offset_limit", "limit": 10})
    return op(tmp_path, endpoint="issues", **kwargs)
