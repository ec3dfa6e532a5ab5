"""
Example DAG: an incremental extract as a ``@task.resumable`` function, each change delivered once.

``changed_issues`` asks the newsletter API (``demo/newsletter_service.py``, connection
``newsletter_api``) for the items changed since the last successful run and writes them to one file
per run. ``watermark_window(read_boundary=True)`` asks from one second below the committed mark, so
items written late *at* the mark (a writer whose transaction committed in the same second) come back
even from an API that answers ``since`` strictly; ``watermark_records`` drops the ones an earlier run
already delivered, by ``id`` and ``updated_at``. The mark, with the ids at its top, is committed only
once Airflow has recorded the run's success: a failed run leaves it where it was.

On Airflow 3.3+ the mark lives in the asset state store of the task's only outlet; on older Airflow
in a Variable ``resumable.watermark.example_resumable_taskflow_incremental.changed_issues.<hash>``.
See it, and reset it, with ``airflow resumable watermark list`` (``airflow-resumable`` before 3.2).
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.providers.http.hooks.http import HttpHook

from airflow.providers.resumable.version_compat import AIRFLOW_V_3_0_PLUS

if AIRFLOW_V_3_0_PLUS:
    from airflow.sdk import DAG, Asset, get_current_context, task

    outlets: list[Any] = [Asset(name="newsletter_changes", uri="file:///tmp/resumable-demo/newsletter-changes")]
else:
    from airflow.decorators import task
    from airflow.models.dag import DAG
    from airflow.operators.python import get_current_context

    outlets = []

OUTPUT = os.environ.get("RESUMABLE_DEMO_OUTPUT", str(Path(tempfile.gettempdir()) / "resumable-demo"))
PAGE_SIZE = 25


def fetch_changed(since: str) -> list[dict[str, Any]]:
    """Every item changed since ``since``, oldest change first, page by page (``offset``/``limit``)."""
    hook = HttpHook(method="GET", http_conn_id="newsletter_api")
    items: list[dict[str, Any]] = []
    while True:
        page = hook.run("issues/offset", data={"since": since, "offset": len(items), "limit": PAGE_SIZE}).json()
        items += page["items"]
        if not page["items"] or len(items) >= page["total"]:
            return items


@task.resumable(retries=2, retry_delay=timedelta(seconds=1), outlets=outlets)
def changed_issues(resumable) -> dict[str, Any]:
    window = resumable.watermark_window(initial_value="2025-12-31T00:00:00Z", read_boundary=True)
    read = fetch_changed(window.since)
    new = resumable.watermark_records(read, cursor_field="updated_at", primary_key="id")
    run_id = get_current_context()["run_id"]
    # One file per run, rewritten whole: a retry of the run replaces it, never duplicates.
    target = Path(OUTPUT) / "taskflow-incremental" / (run_id.replace(":", "_").replace("+", "_") + ".jsonl")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("".join(json.dumps(item) + "\n" for item in new))
    if new:
        resumable.advance_watermark(max(item["updated_at"] for item in new))
    return {"since": window.since, "read": len(read), "written": len(new), "path": str(target)}


with DAG(
    dag_id="example_resumable_taskflow_incremental",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "resumable", "taskflow", "incremental"],
    doc_md=__doc__,
) as dag:
    changed_issues()
