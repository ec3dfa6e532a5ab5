"""
Example DAG: an incremental crawl, reading only what changed since the last successful run.

``ResumablePaginatedHttpOperator(incremental=...)`` sends the committed watermark as ``since`` with
every page of the newsletter API (``demo/newsletter_service.py``, started by ``make demo``), keeps
the highest ``updated_at`` it saw, and commits it only once Airflow has recorded the run's success.
A run that fails part way leaves the mark where it was, so the next run reads those items again;
retries inside a run resume at the last page, as without ``incremental``.

On Airflow 3.3+ the mark lives in the asset state store of the task's only outlet,
``newsletter_issues``; on older Airflow in the Variable
``resumable.watermark.example_resumable_http_incremental.incremental_crawl.<hash>``. See it, and reset
it, with ``airflow resumable watermark list`` (``airflow-resumable watermark list`` on Airflow < 3.2).
``make demo`` runs this DAG four times and prints what each run fetched.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from airflow.providers.resumable.operators.http import CursorPagination, Incremental, ResumablePaginatedHttpOperator
from airflow.providers.resumable.version_compat import AIRFLOW_V_3_0_PLUS

if AIRFLOW_V_3_0_PLUS:
    from airflow.sdk import DAG, Asset

    outlets: list[Any] = [Asset(name="newsletter_issues", uri="file:///tmp/resumable-demo/newsletter-issues")]
else:
    from airflow.models.dag import DAG

    outlets = []

OUTPUT = os.environ.get("RESUMABLE_DEMO_OUTPUT", "/tmp/resumable-demo")
PAGE_SIZE = 13

with DAG(
    dag_id="example_resumable_http_incremental",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "resumable", "http", "incremental"],
    doc_md=__doc__,
) as dag:
    ResumablePaginatedHttpOperator(
        task_id="incremental_crawl",
        http_conn_id="newsletter_api",
        endpoint="issues/cursor",
        method="GET",
        data={"limit": PAGE_SIZE},
        headers={"X-Client": "{{ run_id }}", "X-Try": "{{ ti.try_number }}"},
        pagination=CursorPagination(cursor_path="meta.next_cursor"),
        records_path="data.items",
        incremental=Incremental(cursor_field="updated_at", param="since", initial_value="2025-12-31T00:00:00Z"),
        outlets=outlets,
        output_path=OUTPUT + "/incremental/{{ run_id | replace(':', '_') | replace('+', '_') }}",
        page_retry_attempts=1,
        retries=0,
    )


if __name__ == "__main__":
    dag.test()
