"""
Issue 22's watermark goal for a ``@task.resumable`` function, inside Airflow's own task runner
against the newsletter service on 127.0.0.1 (``demo/newsletter_service.py``): with late writers at
the mark, every record version is delivered exactly once across successful runs, none lost, on an
API that answers ``since`` strictly (``>``) and on one that answers it inclusively (``>=``), with no
``lag``; and a cleared old run re-reading its window never moves the mark back. The handle runs the
same window, filter and commit as ``WatermarkMixin`` (``test_watermark_boundary_dag_test.py``).
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
import requests

from airflow.providers.resumable.testing import clear_and_rerun, run_dag
from airflow.providers.resumable.version_compat import AIRFLOW_V_3_0_PLUS
from tests.integration.harness import make_dag
from tests.integration.test_watermark_dag_test import read_mark
from tests.support.newsletter import serve

if AIRFLOW_V_3_0_PLUS:
    from airflow.sdk import Asset, get_current_context, task
else:
    from airflow.decorators import task
    from airflow.operators.python import get_current_context

pytestmark = pytest.mark.integration

#: Before item 0 (2026-01-01T00:00Z): the first run reads everything.
START = "2025-12-31T00:00:00Z"


@pytest.fixture(params=[False, True], ids=["strict", "inclusive"])
def newsletter(request, monkeypatch):
    yield from serve(monkeypatch, items=20, since_inclusive=request.param)


def fetch(url: str, since: str, limit: int = 1000) -> list[dict[str, Any]]:
    """One page of items changed since ``since``, oldest change first, as the API lists them."""
    response = requests.get(f"{url}/issues/offset", params={"since": since, "limit": limit}, timeout=10)
    response.raise_for_status()
    return response.json()["items"]


def note(path, **entry: Any) -> None:
    with path.open("a") as out:
        out.write(json.dumps(entry) + "\n")


def delivered(path, run) -> list[tuple[int, str]]:
    """(id, updated_at) of what the run's succeeding try delivered (a failed try's delivery is redone)."""
    entries = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    mine = [e for e in entries if e["run_id"] == run.run_id]
    last = max((e["try"] for e in mine), default=None)
    return [(r[0], r[1]) for e in mine if e["try"] == last for r in e["records"]]


def outlets(dag) -> dict[str, Any]:
    """An Asset outlet on Airflow 3, so 3.3+ keeps the mark in its asset state store (as the mixin tests do)."""
    if not AIRFLOW_V_3_0_PLUS:
        return {}
    return {"outlets": [Asset(name=f"{dag.dag_id}_issues", uri=f"wm://{dag.dag_id}/issues")]}


@pytest.mark.parametrize("primary_key", ["id", None], ids=["keyed", "no-key"])
def test_late_writers_at_the_mark_are_delivered_once_on_strict_and_inclusive_apis(
    newsletter, tmp_path, request, primary_key
):
    out = tmp_path / "delivered.jsonl"
    fail_first_try = [False]
    dag = make_dag(request)

    @task.resumable(retries=1, retry_delay=timedelta(0), **outlets(dag))
    def extract(resumable):
        ti = get_current_context()["ti"]
        window = resumable.watermark_window(initial_value=START, read_boundary=True)
        rows = fetch(newsletter.url, window.since)
        new = resumable.watermark_records(rows, cursor_field="updated_at", primary_key=primary_key)
        note(out, run_id=ti.run_id, **{"try": ti.try_number}, records=[[r["id"], r["updated_at"]] for r in new])
        if new:
            resumable.advance_watermark(max(r["updated_at"] for r in new))
        if fail_first_try[0] and ti.try_number == 1:
            raise RuntimeError("the load failed after delivering: the retry reads the same window again")
        return {"since": window.since, "read": len(rows), "delivered": len(new)}

    with dag:
        extract()
    runs = [run_dag(dag)]
    late = newsletter.add_items(2, late=True)  # at 00:19, the minute the first run committed
    fresh = newsletter.add_items(3)
    fail_first_try[0] = True
    runs.append(run_dag(dag))
    fail_first_try[0] = False
    runs.append(run_dag(dag))  # nothing changed
    later = newsletter.add_items(1, late=True)  # at the mark again
    newsletter.touch([4])  # a new version of item 4
    runs.append(run_dag(dag))

    assert [r.state for r in runs] == ["success"] * 4
    assert runs[1].ti("extract").try_number == 2, "the second run's first try failed and its retry succeeded"
    ids = [[i for i, _ in delivered(out, r)] for r in runs]
    assert ids == [list(range(20)), [*late, *fresh], [], [*later, 4]]
    versions = [v for r in runs for v in delivered(out, r)]
    assert len(versions) == len(set(versions)) == 27, "every version once: 26 items and item 4's update"
    assert runs[1].xcom("extract")["since"] == "2026-01-01T00:18:59Z", "one second below the mark"
    assert runs[2].xcom("extract")["read"] >= 1, "the quiet run read the boundary record again and dropped it"
    mark = read_mark(dag.dag_id)
    assert mark["value"] == "2026-01-01T00:23:00Z"
    assert mark["version"] == 3, "the quiet run wrote no version"


#: What three runs of at most 4 records deliver, and the mark they leave, by (read_boundary, inclusive API).
BATCHES = {
    # 0-3, then 3 dropped at the boundary and 4-6, then 6 dropped and 7-9: on either API.
    (True, False): ([[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]], "2026-01-01T00:09:00Z"),
    (True, True): ([[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]], "2026-01-01T00:09:00Z"),
    (False, False): ([[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]], "2026-01-01T00:11:00Z"),
    # Without the boundary an inclusive API delivers the mark's record again (3, 6): what it fixes.
    (False, True): ([[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]], "2026-01-01T00:09:00Z"),
}


@pytest.mark.parametrize("read_boundary", [True, False], ids=["boundary", "plain"])
def test_a_cleared_old_run_never_moves_the_mark_back(newsletter, tmp_path, request, read_boundary):
    """A batch reader (at most 4 records a run) took the mark up over three runs; its first run is cleared and re-run."""
    out = tmp_path / "delivered.jsonl"
    runs, top = BATCHES[read_boundary, newsletter.since_inclusive]
    dag = make_dag(request)

    @task.resumable(**outlets(dag))
    def extract(resumable):
        ti = get_current_context()["ti"]
        window = resumable.watermark_window(initial_value=START, read_boundary=read_boundary)
        rows = fetch(newsletter.url, window.since, limit=4)
        new = resumable.watermark_records(rows, cursor_field="updated_at") if read_boundary else rows
        note(out, run_id=ti.run_id, **{"try": ti.try_number}, records=[[r["id"], r["updated_at"]] for r in new])
        if new:
            resumable.advance_watermark(new[-1]["updated_at"])
        return {"since": window.since}

    with dag:
        extract()
    first, second, third = run_dag(dag), run_dag(dag), run_dag(dag)
    assert [r.state for r in (first, second, third)] == ["success"] * 3
    assert [[i for i, _ in delivered(out, r)] for r in (first, second, third)] == runs
    before = read_mark(dag.dag_id)
    assert (before["value"], before["version"]) == (top, 3)

    again = clear_and_rerun(dag, first)
    assert again.state == "success"
    assert again.xcom("extract")["since"] == START, "it re-read its own window"
    assert [i for i, _ in delivered(out, again)] == [0, 1, 2, 3]
    mark = read_mark(dag.dag_id)
    assert mark["value"] == top, "the re-read staged 00:03: the mark never moves back"
    assert (mark["version"], mark["commits"][-1]["run_id"]) == (3, third.run_id), "not the newest commit"


def test_a_bad_boundary_argument_fails_the_task_at_once_naming_it(newsletter, tmp_path, request):
    error = tmp_path / "error.txt"
    dag = make_dag(request)

    @task.resumable(retries=2, retry_delay=timedelta(0), **outlets(dag))
    def extract(resumable):
        window = resumable.watermark_window(initial_value=START, read_boundary=True)
        rows = fetch(newsletter.url, window.since)
        try:
            resumable.watermark_records(rows, cursor_field="updated_at", primary_key={"id": 1})
        except Exception as err:
            error.write_text(f"{type(err).__name__}: {err}")
            raise

    with dag:
        extract()
    run = run_dag(dag)
    assert run.state == "failed"
    assert run.ti("extract").try_number == 1, "no retry: the same call would fail the same way"
    assert read_mark(dag.dag_id) is None
    assert error.read_text().startswith(
        "WatermarkArgumentError: primary_key must be a field name or a list of field names, got {'id': 1}: "
        "the field(s) that identify a record"
    )


@pytest.fixture
def strict_newsletter(monkeypatch):
    yield from serve(monkeypatch, items=60)


def test_the_taskflow_incremental_example_writes_each_change_once(strict_newsletter, monkeypatch, tmp_path):
    """``example_dags/example_resumable_taskflow_incremental.py`` as shipped, on a strict API (its DAG id is fixed,
    so its mark lives for the whole leg: one variant only)."""
    from tests.integration.test_example_dags import EXAMPLES, load

    newsletter = strict_newsletter
    monkeypatch.setenv("RESUMABLE_DEMO_OUTPUT", str(tmp_path))
    monkeypatch.setenv("AIRFLOW_CONN_NEWSLETTER_API", newsletter.url)
    name = "example_resumable_taskflow_incremental"
    dag = load(EXAMPLES / f"{name}.py").get_dag(name)

    def written(run) -> list[tuple[int, str]]:
        path = run.xcom("changed_issues")["path"]
        return [(r["id"], r["updated_at"]) for r in map(json.loads, open(path).read().splitlines())]

    first = run_dag(dag)
    late = newsletter.add_items(3, late=True)  # at the mark the first run commits
    newsletter.touch([7])
    second = run_dag(dag)
    third = run_dag(dag)
    assert [r.state for r in (first, second, third)] == ["success"] * 3
    assert [i for i, _ in written(first)] == list(range(60)), "three pages of 25 or fewer"
    assert [i for i, _ in written(second)] == [*late, 7]
    assert written(third) == []
    versions = written(first) + written(second)
    assert len(versions) == len(set(versions)) == 64, "every version once: 63 items and item 7's update"
    assert second.xcom("changed_issues")["since"] == "2026-01-01T00:58:59Z", "one second below the mark"
    assert read_mark(dag.dag_id, "changed_issues")["value"] == "2026-01-01T01:00:00Z"
