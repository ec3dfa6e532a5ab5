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
