"""
The watermark CLI against a real metadata DB, on every leg: list and show the mark two runs left,
reset it to a value and to nothing, and the next run reads from there. The mark lives where the
leg keeps it (3.3: the task's asset in ``asset_state_store``; otherwise a Variable).
"""

from __future__ import annotations

import json

import pytest

from tests.integration.harness import make_dag, run_dag
from tests.integration.test_state_cli import cli, cli_json

# _source: the autouse fixture that empties the source before and after each test, shared.
from tests.integration.test_watermark_dag_test import (  # noqa: F401
    ASSET_STORE,
    FETCHED,
    _source,
    add,
    extract_task,
)

pytestmark = pytest.mark.integration


def test_list_show_reset_and_the_next_run_reads_from_there(request, capsys):
    dag = make_dag(request)
    extract_task(dag)
    add("a", "b", "c")
    first = run_dag(dag)
    add("d")
    second = run_dag(dag)

    rows = cli_json(capsys, "watermark", "list", "--dag-id", dag.dag_id)
    assert [(r["backend"], r["task_id"], r["map_index"], r["value"], r["version"]) for r in rows] == [
        ("asset_state_store" if ASSET_STORE else "variable", "extract", -1, 4, 2)
    ]
    assert rows[0]["meaning"].startswith(f"watermark 4 (version 2), committed by {second.run_id}"), rows[0]["meaning"]
    assert "watermark reset --dag-id" in rows[0]["reset_with"]
    state_rows = cli_json(capsys, "state", "list", "--dag-id", dag.dag_id)
    assert all('resumable-watermark"' not in json.dumps(r["value"]) for r in state_rows), "a mark is not retry state"
    windows = [r for r in state_rows if r["key"].endswith("watermark_window")]
    if windows:  # the native store keeps a task instance's state after success; Variables drop it
        assert windows[-1]["meaning"].startswith("watermark window of this run: from 3 (mark 3, version 1)")

    capsys.readouterr()
    cli("watermark", "show", "--dag-id", dag.dag_id, "--task-id", "extract")
    shown = capsys.readouterr().out
    assert "v1 " in shown, shown
    assert f"{first.run_id} (try 1): 0 -> 3" in shown, shown
    assert f"{second.run_id} (try 1): 3 -> 4" in shown, shown

    cli("watermark", "reset", "--dag-id", dag.dag_id, "--task-id", "extract", "--to", "1", "--yes")
    assert cli_json(capsys, "watermark", "list", "--dag-id", dag.dag_id)[0]["value"] == 1
    third = run_dag(dag)
    assert FETCHED[third.run_id] == ["b", "c", "d"], "the run after the reset read from 1"

    cli("watermark", "reset", "--dag-id", dag.dag_id, "--task-id", "extract", "--yes")
    assert cli_json(capsys, "watermark", "list", "--dag-id", dag.dag_id) == []
    fourth = run_dag(dag)
    assert FETCHED[fourth.run_id] == ["a", "b", "c", "d"], "deleted: the next run started from the initial value"


def test_reset_needs_the_task_and_an_existing_mark(request, capsys):
    dag = make_dag(request)
    with pytest.raises(SystemExit, match="needs --task-id"):
        cli("watermark", "reset", "--dag-id", dag.dag_id, "--yes")
    with pytest.raises(SystemExit, match="No watermark of airflow-provider-resumable"):
        cli("watermark", "reset", "--dag-id", dag.dag_id, "--task-id", "extract", "--to", "5", "--yes")


def stamp_task(dag):
    """A task that commits a timestamp mark (``ChangedItemsOperator``'s is a number)."""
    from airflow.providers.resumable.mixins import WatermarkMixin
    from airflow.providers.resumable.version_compat import BaseOperator

    class Stamp(WatermarkMixin, BaseOperator):
        def execute(self, context):
            self.load_watermark(context, initial_value="2025-12-31T00:00:00Z")
            self.advance_watermark(context, "2026-02-01T00:00:00Z")

    return Stamp(task_id="Extract_Orders", dag=dag)


def test_reset_echoes_the_value_and_ids_as_typed_and_refuses_a_change_of_kind(capsys):
    from airflow.providers.resumable.testing import dag_for_test

    dag = dag_for_test("it_watermark_cli_Mixed_Case_DAG")
    stamp_task(dag)
    assert run_dag(dag).state == "success"
    capsys.readouterr()
    with pytest.raises(SystemExit, match="is a number, but the mark is a timestamp"):
        cli("watermark", "reset", "--dag-id", dag.dag_id, "--task-id", "Extract_Orders", "--to", "5", "--yes")
    cli(
        "watermark",
        "reset",
        "--dag-id",
        dag.dag_id,
        "--task-id",
        "Extract_Orders",
        "--to",
        "2026-01-01T00:00:00Z",
        "--yes",
    )
    out = capsys.readouterr().out
    assert '"2026-01-01T00:00:00Z"' in out, out
    assert "it_watermark_cli_Mixed_Case_DAG" in out, out
    assert "Extract_Orders" in out, out
    assert "2026-01-01t00:00:00z" not in out, out
    assert cli_json(capsys, "watermark", "list", "--dag-id", dag.dag_id)[0]["value"] == "2026-01-01T00:00:00Z"


@pytest.mark.skipif(not ASSET_STORE, reason="two copies need the asset store beside Variables (3.3+, native)")
def test_two_copies_of_a_mark_say_which_is_live_and_reset_refuses_to_change_both(request, capsys):
    from airflow.models import Variable

    from airflow.providers.resumable.watermarks.stores import WatermarkScope

    dag = make_dag(request)
    extract_task(dag)
    add("a", "b")
    assert run_dag(dag).state == "success"
    scope = WatermarkScope(dag.dag_id, "extract")
    # What a 0.1 task left after its backend changed: an older copy in a Variable.
    stale = {
        "kind": "resumable-watermark",
        "value": 1,
        "version": 1,
        "scope": scope.as_dict(),
        "commits": [{"run_id": "old", "value": 1, "version": 1, "committed_at": "2025-01-01T00:00:00+00:00"}],
    }
    Variable.set(scope.key, json.dumps(stale))
    rows = cli_json(capsys, "watermark", "list", "--dag-id", dag.dag_id)
    assert sorted((r["backend"], r["live"], r["value"]) for r in rows) == [
        ("asset_state_store", True, 2),
        ("variable", False, 1),
    ]
    assert next(r for r in rows if not r["live"])["meaning"].startswith("STALE copy")
    with pytest.raises(SystemExit, match="kept in 2 places"):
        cli("watermark", "reset", "--dag-id", dag.dag_id, "--task-id", "extract", "--to", "0", "--yes")
    assert sorted(r["value"] for r in cli_json(capsys, "watermark", "list", "--dag-id", dag.dag_id)) == [1, 2]
    cli("watermark", "reset", "--dag-id", dag.dag_id, "--task-id", "extract", "--backend", "variable", "--yes")
    rows = cli_json(capsys, "watermark", "list", "--dag-id", dag.dag_id)
    assert [(r["backend"], r["live"], r["value"]) for r in rows] == [("asset_state_store", True, 2)]


def test_the_listing_says_which_task_instance_committed_and_a_reset_is_recorded_as_by_hand(request, capsys):
    dag = make_dag(request)
    extract_task(dag)
    add("a")
    run = run_dag(dag)
    (row,) = cli_json(capsys, "watermark", "list", "--dag-id", dag.dag_id)
    assert row["committed_by"] == {
        "dag_id": dag.dag_id,
        "task_id": "extract",
        "run_id": run.run_id,
        "map_index": -1,
        "try_number": 1,
    }
    if ASSET_STORE:
        assert row["airflow_writer"]["kind"] in ("task", "watcher"), row["airflow_writer"]
    cli("watermark", "reset", "--dag-id", dag.dag_id, "--task-id", "extract", "--to", "0", "--yes")
    (row,) = cli_json(capsys, "watermark", "list", "--dag-id", dag.dag_id)
    assert row["committed_by"] is None, "a reset by hand names no task instance"
    if ASSET_STORE:
        assert row["airflow_writer"] == {
            "kind": "api",
            "dag_id": None,
            "run_id": None,
            "task_id": None,
            "map_index": None,
        }, "not the task that wrote the row before the reset"
