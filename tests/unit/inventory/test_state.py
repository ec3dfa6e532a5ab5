"""What the state CLI says each stored value means (the rows a person on call reads)."""

from __future__ import annotations

import pytest

from airflow.providers.resumable.inventory.state import Filters, TaskState, describe
from airflow.providers.resumable.state.base import TaskScope

JOB = {
    "kind": "resumable-job",
    "seq": 1,
    "token": "rsm-abc",
    "generation": 5,
    "try_number": 1,
    "external_id": 1006,
    "intent_at": "2026-01-01T00:00:00+00:00",
    "submitted_at": "2026-01-01T00:00:01+00:00",
}
FINISHED = {"kind": "resumable-finished", "try_number": 2, "max_tries": 5, "finished_at": "2026-01-01T01:00:00"}


@pytest.mark.parametrize(
    ("key", "value", "finished", "meaning"),
    [
        ("job", JOB, None, "job 1006, submitted at try 1 (2026-01-01T00:00:01+00:00), token rsm-abc, generation 5"),
        (
            "job",
            JOB,
            FINISHED,
            "job 1006, submitted at try 1 (2026-01-01T00:00:01+00:00), token rsm-abc, generation 5; its task "
            "instance succeeded at try 2, so a clear submits a new job",
        ),
        (
            "job",
            {**JOB, "external_id": None, "submitted_at": None},
            None,
            "intent: a submit started at try 1 (2026-01-01T00:00:00+00:00) with token rsm-abc and no job id came "
            "back; the next try looks the job up by its token before submitting",
        ),
        ("job", {**JOB, "legacy": True, "token": None}, None, "job 1006 (bare id adopted from Airflow's"),
        ("resumable_finished", FINISHED, None, "finished: try 2 succeeded at 2026-01-01T01:00:00; a clear starts"),
        (
            "stateful/checkpoint",
            {
                "kind": "resumable-checkpoint",
                "schema_name": "PageCursor",
                "schema_version": 2,
                "try_number": 3,
                "saved_at": "t",
                "batches_done": 7,
                "complete": True,
                "data": {"next": "abc"},
            },
            None,
            'checkpoint PageCursor v2: 7 batches done, walk complete, written at try 3 (t); data {"next": "abc"}',
        ),
        ("stateful/__keys__", ["stateful/checkpoint"], None, "index of the keys written under 'stateful'"),
        ("remote_job_id", "run-7", None, 'value "run-7"'),
    ],
)
def test_describe(key, value, finished, meaning):
    assert describe(key, value, finished).startswith(meaning)


def test_entries_carry_the_delete_command_and_filter_by_key():
    state = TaskState("variable", TaskScope("d", "r", "t", 0), "resumable.d.r.t.0.x", {"job": JOB, "other": 1})
    (row,) = state.entries("job")
    assert row["delete_with"].endswith("state delete --dag-id d --run-id r --task-id t --map-index 0 --key job")
    assert row["value"] == JOB


def test_filters_admit_by_every_given_part():
    scope = TaskScope("d", "r", "t", 2)
    assert Filters().admits(scope)
    assert Filters(dag_id="d", map_index=2).admits(scope)
    assert not Filters(dag_id="d", map_index=-1).admits(scope)
    assert not Filters(run_id="other").admits(scope)


def _row(key, map_index=-1, region_id=None, region_index=None, expires=None):
    from datetime import UTC, datetime

    from airflow.providers.resumable.compat.airflow import TaskStateRow

    updated = datetime(2026, 12, 1, tzinfo=UTC)
    return TaskStateRow("d", "r", "t", map_index, region_id, region_index, key, '{"n": 1}', updated, expires)


def test_native_rows_become_one_state_per_task_instance_and_region(monkeypatch):
    from datetime import UTC, datetime

    from airflow.providers.resumable.inventory import state as inventory

    expires = datetime(2027, 1, 1, tzinfo=UTC)
    rows = [
        _row("job"),
        _row("job", region_id="loop-1", region_index=0, expires=expires),
        _row("job", region_id="loop-1", region_index=1),
        _row("stateful/checkpoint", region_id="loop-1", region_index=1),
    ]
    monkeypatch.setattr(inventory, "task_state_rows", lambda session, **asked: rows)
    states = inventory.read_native(None, Filters())
    assert [(s.scope.region_id, s.scope.region_index, sorted(s.values)) for s in states] == [
        (None, None, ["job"]),
        ("loop-1", 0, ["job"]),
        ("loop-1", 1, ["job", "stateful/checkpoint"]),
    ]
    assert states[1].expires_at == {"job": "2027-01-01T00:00:00+00:00"}
    assert states[0].expires_at == {}
    only = inventory.read_native(None, Filters(region_id="loop-1", region_index=1))
    assert [s.scope.region_index for s in only] == [1]


def test_deleting_native_state_names_the_rows_region(monkeypatch):
    from airflow.providers.resumable.inventory import state as inventory

    asked = {}
    monkeypatch.setattr(inventory, "delete_task_state_rows", lambda session, **where: asked.update(where) or 1)
    ledgers = []
    monkeypatch.setattr(
        inventory, "_delete_variable_keys", lambda session, state, key, missing_ok=False: ledgers.append(state) or []
    )
    state = TaskState("task_state_store", TaskScope("d", "r", "t", -1, "loop-1", 1), "task_state_store", {"job": 1})
    assert inventory.delete(None, state) == ["task_state_store key 'job'"]
    (ledger,) = ledgers
    assert (ledger.backend, ledger.scope) == ("ledger", state.scope), (
        "the ledger copy of the same task instance goes too"
    )
    assert ledger.location.startswith("resumable.ledger.d.r.t.r1.")
    assert asked == {
        "dag_id": "d",
        "run_id": "r",
        "task_id": "t",
        "map_index": -1,
        "region_id": "loop-1",
        "region_index": 1,
        "keys": ["job"],
    }


def test_a_variable_document_with_a_region_keeps_it():
    from airflow.providers.resumable.inventory.state import _variable_document
    from airflow.providers.resumable.state.codec import VariableDocument

    scope = {"dag_id": "d", "run_id": "r", "task_id": "t", "map_index": -1, "region_id": "loop-1", "region_index": 2}
    raw = VariableDocument(scope=scope, values={"job": 1}).dump()
    found, values, problem = _variable_document("resumable.d.r.t.x", raw)
    assert (found, values, problem) == (TaskScope("d", "r", "t", -1, "loop-1", 2), {"job": 1}, None)
