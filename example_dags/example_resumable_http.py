"""
Example DAG: crawl a paginated API that has an outage part way, with and without resume.

Both tasks walk the same newsletter API (``demo/newsletter_service.py``, started by ``make demo``)
and both meet the same outage: from item 26 on, the API answers 503 until the task's next try.

* ``resumable_crawl`` (``ResumablePaginatedHttpOperator``) writes each page to a part file, then
  checkpoints the cursor the API returned. Try 2 starts at item 26.
* ``plain_crawl`` (the official ``HttpOperator`` with the same ``pagination_function``-style walk)
  keeps every page in memory until the end. Try 2 starts again at item 0.

The connection ``newsletter_api`` comes from the environment (``AIRFLOW_CONN_NEWSLETTER_API``), so
the DAG runs unchanged against the real API once that points there. ``X-Try`` is templated, so each
request says which try sent it; the service logs it and ``make demo`` prints the comparison.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from airflow.providers.http.operators.http import HttpOperator

from airflow.providers.resumable.operators.http import CursorPagination, ResumablePaginatedHttpOperator
from airflow.providers.resumable.version_compat import AIRFLOW_V_3_0_PLUS

if AIRFLOW_V_3_0_PLUS:
    from airflow.sdk import DAG
else:
    from airflow.models.dag import DAG

OUTPUT = os.environ.get("RESUMABLE_DEMO_OUTPUT", "/tmp/resumable-demo")
PAGE_SIZE = 13  # so that the outage at item 26 falls on a page boundary


def next_cursor(response: Any) -> dict[str, Any] | None:
    """An HttpOperator pagination_function: the next request from the cursor in the body."""
    cursor = response.json()["meta"]["next_cursor"]
    return {"data": {"cursor": cursor, "limit": PAGE_SIZE}} if cursor else None


with DAG(
    dag_id="example_resumable_http",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "resumable", "http"],
    doc_md=__doc__,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=1)},
) as dag:
    ResumablePaginatedHttpOperator(
        task_id="resumable_crawl",
        http_conn_id="newsletter_api",
        endpoint="issues/cursor",
        method="GET",
        data={"limit": PAGE_SIZE},
        headers={"X-Client": "resumable", "X-Try": "{{ ti.try_number }}"},
        pagination=CursorPagination(cursor_path="meta.next_cursor"),
        records_path="data.items",
        output_path=OUTPUT + "/resumable/{{ run_id | replace(':', '_') | replace('+', '_') }}",
        page_retry_attempts=3,
        page_retry_max_wait=1,
    )

    HttpOperator(
        task_id="plain_crawl",
        http_conn_id="newsletter_api",
        endpoint="issues/cursor",
        method="GET",
        data={"limit": PAGE_SIZE},
        headers={"X-Client": "plain", "X-Try": "{{ ti.try_number }}"},
        pagination_function=next_cursor,
        # Keep the XCom small; the pages themselves are still all held in memory until here.
        response_filter=lambda responses: sum(len(r.json()["data"]["items"]) for r in responses),
    )


if __name__ == "__main__":
    dag.test()
