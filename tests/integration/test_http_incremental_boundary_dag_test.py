"""
Issue 22's watermark goal for ``ResumablePaginatedHttpOperator(incremental=...)``, inside Airflow's
task runner against the newsletter service on 127.0.0.1: with late writers at the mark, every record
version is written exactly once across successful runs, none lost, on an API that answers ``since``
strictly (``>``) and on one that answers it inclusively (``>=``), with no ``lag`` and no deduplication
by the sink.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from airflow.providers.resumable.testing import run_dag
from airflow.providers.resumable.version_compat import AIRFLOW_V_3_0_PLUS
from tests.integration.harness import make_dag
from tests.integration.test_watermark_dag_test import read_mark
from tests.support.newsletter import cursor_crawl, serve

pytestmark = pytest.mark.integration

PAGE = 7
START = "2025-12-31T00:00:00Z"


@pytest.fixture(params=[False, True], ids=["strict", "inclusive"])
def newsletter(request, monkeypatch):
    yield from serve(monkeypatch, items=20, page_size=PAGE, since_inclusive=request.param)


def written(run) -> list[tuple[int, str]]:
    """(id, updated_at) of every record the run wrote, from the parts its manifest lists."""
    found = []
    for uri in run.xcom("extract")["parts"]:
        text = Path(uri.removeprefix("file://")).read_text()
        found += [(r["id"], r["updated_at"]) for r in map(json.loads, text.splitlines())]
    return found


def crawl(dag, out, **incremental: Any) -> Any:
    from airflow.providers.resumable.operators.http import Incremental

    kwargs: dict[str, Any] = {"retries": 0, "retry_delay": timedelta(0)}
    if AIRFLOW_V_3_0_PLUS:
        from airflow.sdk import Asset

        kwargs["outlets"] = [Asset(name=f"{dag.dag_id}_issues", uri=f"wm://{dag.dag_id}/issues")]
    return cursor_crawl(
        dag,
        page=PAGE,
        task_id="extract",
        incremental=Incremental(cursor_field="updated_at", initial_value=START, **incremental),
        output_path=f"file://{out}/" + "{{ run_id | replace(':', '_') | replace('+', '_') }}",
        page_retry_attempts=1,
        page_retry_max_wait=0,
        **kwargs,
    )


@pytest.mark.parametrize("primary_key", ["id", None], ids=["keyed", "no-key"])
def test_late_writers_at_the_mark_are_written_once_on_strict_and_inclusive_apis(
    newsletter, tmp_path, request, primary_key
):
    dag = make_dag(request)
    # Without a key, the call is the 0.1 one: the default must hold on its own.
    crawl(dag, tmp_path, **({"primary_key": primary_key} if primary_key else {}))
    runs = [run_dag(dag)]
    late = newsletter.add_items(2, late=True)  # at 00:19, the minute the first run committed
    fresh = newsletter.add_items(3)
    runs.append(run_dag(dag))
    runs.append(run_dag(dag))  # nothing changed
    later = newsletter.add_items(1, late=True)
    newsletter.touch([4])
    runs.append(run_dag(dag))
    assert [r.state for r in runs] == ["success"] * 4
    ids = [[i for i, _ in written(r)] for r in runs]
    assert ids == [list(range(20)), [*late, *fresh], [], [*later, 4]]
    versions = [v for r in runs for v in written(r)]
    assert len(versions) == len(set(versions)) == 27, "every version once: 26 items and item 4's update"
    mark = read_mark(dag.dag_id)
    assert mark["value"] == "2026-01-01T00:23:00Z"
    assert mark["version"] == 3, "the quiet run wrote no version"
    assert runs[1].xcom("extract")["window"]["since"] == "2026-01-01T00:18:59Z", "one second below the mark"
