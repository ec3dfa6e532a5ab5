"""
Issue 22's watermark holes, inside Airflow's own task runner, for an operator on ``WatermarkMixin``
(the HTTP operator's boundary is in ``test_http_incremental_boundary_dag_test.py``): records written
late *at* the mark are delivered once on strict and inclusive sources, a re-read of an old window
never lowers the mark, and quiet runs do not push out the commit a later clear needs.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from airflow.providers.resumable.mixins import WatermarkMixin
from airflow.providers.resumable.testing import clear_and_rerun, run_dag
from airflow.providers.resumable.version_compat import AIRFLOW_V_3_0_PLUS, BaseOperator
from airflow.providers.resumable.watermarks.rules import MAX_COMMITS
from tests.integration.harness import make_dag
from tests.integration.test_watermark_dag_test import read_mark

pytestmark = pytest.mark.integration

#: The source: records {"id", "seq", "body"}; a late writer appends one with the seq of the mark.
SOURCE: list[dict[str, Any]] = []
#: What each run delivered (after the boundary filter): run_id -> [(id, seq)], every try appending.
DELIVERED: dict[str, list[tuple[str, int]]] = {}


@pytest.fixture(autouse=True)
def _source():
    SOURCE.clear()
    DELIVERED.clear()
    yield
    SOURCE.clear()
    DELIVERED.clear()


def write(item: str, seq: int) -> None:
    SOURCE.append({"id": item, "seq": seq, "body": f"{item} at {seq}"})


class BoundaryOperator(WatermarkMixin, BaseOperator):
    """Reads a source that compares ``since`` strictly or inclusively, as an API would."""

    def __init__(self, *, inclusive: bool, primary_key: str | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.inclusive = inclusive
        self.primary_key = primary_key

    def execute(self, context: Any) -> dict[str, Any]:
        window = self.watermark_window(context, initial_value=0, read_boundary=True)
        since = window.since
        rows = [r for r in SOURCE if (r["seq"] >= since if self.inclusive else r["seq"] > since)]
        new = self.watermark_records(context, rows, cursor_field="seq", primary_key=self.primary_key)
        DELIVERED.setdefault(context["ti"].run_id, []).extend((r["id"], r["seq"]) for r in new)
        if new:
            self.advance_watermark(context, max(r["seq"] for r in new))
        return {"since": since, "read": len(rows), "delivered": len(new)}


def boundary_task(dag, **kwargs):
    kwargs.setdefault("retries", 0)
    kwargs.setdefault("retry_delay", timedelta(0))
    if AIRFLOW_V_3_0_PLUS:
        from airflow.sdk import Asset

        kwargs.setdefault("outlets", [Asset(name=f"{dag.dag_id}_rows", uri=f"wm://{dag.dag_id}/rows")])
    return BoundaryOperator(task_id="extract", dag=dag, **kwargs)


@pytest.mark.parametrize("primary_key", ["id", None], ids=["keyed", "no-key"])
@pytest.mark.parametrize("inclusive", [False, True], ids=["strict", "inclusive"])
def test_late_writers_at_the_mark_are_delivered_once_on_strict_and_inclusive_sources(request, inclusive, primary_key):
    dag = make_dag(request)
    boundary_task(dag, inclusive=inclusive, primary_key=primary_key)
    write("a", 1), write("b", 2), write("c", 3)
    runs = [run_dag(dag)]
    write("d", 3)  # a late writer in the same second as the mark run 1 committed
    write("e", 4)
    runs.append(run_dag(dag))
    runs.append(run_dag(dag))  # nothing new
    write("f", 4)  # another late writer at the mark
    write("a", 5)  # a new version of a
    runs.append(run_dag(dag))
    assert [r.state for r in runs] == ["success"] * 4
    delivered = [DELIVERED.get(r.run_id, []) for r in runs]
    assert delivered == [[("a", 1), ("b", 2), ("c", 3)], [("d", 3), ("e", 4)], [], [("f", 4), ("a", 5)]]
    everything = [version for run in delivered for version in run]
    assert sorted(everything) == sorted((r["id"], r["seq"]) for r in SOURCE), "every version once, none lost"
    mark = read_mark(dag.dag_id)
    assert (mark["value"], mark["version"]) == (5, 3), "the quiet run wrote no version"


def test_a_cleared_run_rereading_an_old_window_never_lowers_the_mark(request):
    """A batch reader (at most 4 records a run) took the mark to 12; its first run is cleared and re-run."""

    class Batches(BoundaryOperator):
        def execute(self, context: Any) -> dict[str, Any]:
            since = self.load_watermark(context, initial_value=0)
            rows = [r for r in SOURCE if r["seq"] > since][:4]
            DELIVERED.setdefault(context["ti"].run_id, []).extend((r["id"], r["seq"]) for r in rows)
            if rows:
                self.advance_watermark(context, rows[-1]["seq"])
            return {"since": since}

    dag = make_dag(request)
    kwargs: dict[str, Any] = {"retries": 0, "retry_delay": timedelta(0)}
    if AIRFLOW_V_3_0_PLUS:
        from airflow.sdk import Asset

        kwargs["outlets"] = [Asset(name=f"{dag.dag_id}_rows", uri=f"wm://{dag.dag_id}/rows")]
    Batches(task_id="extract", dag=dag, inclusive=False, primary_key=None, **kwargs)
    for n in range(1, 13):
        write(f"r{n}", n)
    first, second, third = run_dag(dag), run_dag(dag), run_dag(dag)
    assert read_mark(dag.dag_id)["value"] == 12
    again = clear_and_rerun(dag, first)
    assert again.state == "success"
    assert DELIVERED[first.run_id][-4:] == [("r1", 1), ("r2", 2), ("r3", 3), ("r4", 4)], "it re-read its own window"
    mark = read_mark(dag.dag_id)
    assert mark["value"] == 12, "the re-read committed 4 over 12 on main: the mark moved back"
    assert (mark["version"], mark["commits"][-1]["run_id"]) == (3, third.run_id), "not the newest commit"
    assert second.state == "success"


def test_quiet_runs_keep_the_commit_a_later_clear_needs(request):
    dag = make_dag(request)
    boundary_task(dag, inclusive=False, primary_key="id")
    write("a", 1), write("b", 2)
    first = run_dag(dag)
    write("c", 3)
    second = run_dag(dag)
    quiet = [run_dag(dag) for _ in range(MAX_COMMITS + 1)]
    assert all(r.state == "success" for r in quiet)
    assert all(DELIVERED.get(r.run_id, []) == [] for r in quiet)
    mark = read_mark(dag.dag_id)
    assert mark["version"] == 2, f"{MAX_COMMITS + 1} quiet runs wrote {mark['version'] - 2} versions"

    again = clear_and_rerun(dag, first)
    assert again.state == "success"
    assert DELIVERED[first.run_id][2:] == [("a", 1), ("b", 2), ("c", 3)], "the cleared run found its own window"
    assert again.xcom("extract")["since"] == 0
    assert second.state == "success"
    assert read_mark(dag.dag_id)["value"] == 3


def test_a_clear_after_twenty_later_commits_rereads_its_window_where_its_state_was_kept(request):
    """On the native store the cleared run's own task state still holds its window; elsewhere it is said plainly."""
    from airflow.providers.resumable.compat.airflow import late_failure_after_success
    from tests.integration.test_watermark_dag_test import NATIVE_STATE

    dag = make_dag(request)
    boundary_task(dag, inclusive=False, primary_key="id")
    write("a", 1)
    first = run_dag(dag)
    for n in range(2, MAX_COMMITS + 3):
        write(f"r{n}", n)
        assert run_dag(dag).state == "success"
    mark = read_mark(dag.dag_id)
    assert first.run_id not in [c["run_id"] for c in mark["commits"]], "its entry was pushed out"

    again = clear_and_rerun(dag, first, keep_task_state=True)
    assert again.state == "success"
    # Airflow 2 keeps a succeeded task instance's Variable for [resumable] finished_state_retention.
    if NATIVE_STATE or late_failure_after_success():
        assert again.xcom("extract")["since"] == 0, "its own window, from its kept task state"
        assert DELIVERED[first.run_id][1] == ("a", 1)
    else:
        # Airflow 3's Variables drop a task instance's state at its success: nothing says where it started.
        assert again.xcom("extract")["since"] == MAX_COMMITS + 1, "from the current mark, as a new run"
    assert read_mark(dag.dag_id)["value"] == MAX_COMMITS + 2, "and the mark did not move back"
