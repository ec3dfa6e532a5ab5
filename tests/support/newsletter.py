"""
The newsletter service (``demo/newsletter_service.py``) as the integration tests crawl it: served on
127.0.0.1 as connection ``newsletter``, read through its cursor endpoint by ResumablePaginatedHttpOperator.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator


def serve(monkeypatch: Any, **service_kwargs: Any) -> Iterator[Any]:
    """For a fixture to ``yield from``: the service, reachable as connection ``newsletter`` until it stops."""
    from demo.newsletter_service import NewsletterService

    with NewsletterService(**service_kwargs) as service:
        monkeypatch.setenv("AIRFLOW_CONN_NEWSLETTER", service.url)
        yield service


def cursor_crawl(dag: Any, *, page: int, cls: Any = None, **kwargs: Any) -> Any:
    """A ResumablePaginatedHttpOperator on ``dag`` reading ``issues/cursor``, ``page`` items a request."""
    from airflow.providers.resumable.operators.http import CursorPagination, ResumablePaginatedHttpOperator

    kwargs.setdefault("pagination", CursorPagination(cursor_path="meta.next_cursor"))
    return (cls or ResumablePaginatedHttpOperator)(
        http_conn_id="newsletter",
        endpoint="issues/cursor",
        method="GET",
        data={"limit": page},
        records_path="data.items",
        dag=dag,
        **kwargs,
    )
