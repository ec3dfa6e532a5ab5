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
        (
            "job",
            {
                **JOB,
                "version": 2,
                "resumes": 1,
                "resume_token": "rsm-res",
                "resume_of": 1006,
                "resume_intent_at": "2026-01-01T00:10:00+00:00",
                "try_number": 2,
            },
            None,
            "resume intent: a resume of failed job 1006 started at try 2 (2026-01-01T00:10:00+00:00) with resume "
            "token rsm-res and no answer came back; if the job still looks failed, the next try looks the resume "
            "up (find_resumed_job) before resuming again with the same token",
        ),
        (
            "job",
            {**JOB, "version": 2, "resumes": 2, "resumed_at": "2026-01-01T00:20:00+00:00"},
            None,
            "job 1006, submitted at try 1 (2026-01-01T00:00:01+00:00), token rsm-abc, generation 5; 2 resume(s) of "
            "failed jobs spent in this life (last 2026-01-01T00:20:00+00:00)",
        ),
        (
            "job",
            {
                **JOB,
                "history": [
                    {"try_number": 1, "decision": "submit", "at": "2026-01-01T00:00:00+00:00", "external_id": 1006},
                    {"try_number": 2, "decision": "reattach", "at": "2026-01-01T00:30:00+00:00", "external_id": 1006},
                ],
            },
            None,
            "job 1006, submitted at try 1 (2026-01-01T00:00:01+00:00), token rsm-abc, generation 5; last decision: "
            "reattach at try 2 (2026-01-01T00:30:00+00:00)",
        ),
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

    from airflow.providers.resumable.compat.metadata_db import TaskStateRow

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


# ---- the listing reads each document as the runtime does ----------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "diagnosis"),
    [
        # What Airflow 3.3's native store held after a hand edit: a valid-looking intent with seq -1.
        (
            "job",
            {"kind": "resumable-job", "version": 1, "seq": -1, "token": "rsm-abc", "external_id": None},
            "The stored job record is corrupt (seq: Input should be greater than or equal to 0)",
        ),
        ("job", {"kind": "resumable-job", "seq": 1}, "needs a token"),
        (
            "stateful/checkpoint",
            {"kind": "resumable-checkpoint", "batches_done": -3},
            "The stored checkpoint is corrupt (batches_done",
        ),
        ("resumable_finished", {"kind": "resumable-finished"}, "The stored finished marker is corrupt (try_number"),
    ],
)
def test_a_document_the_runtime_rejects_is_listed_as_corrupt(key, value, diagnosis):
    from airflow.providers.resumable.state.base import CorruptStateError
    from airflow.providers.resumable.state.codec import CheckpointEnvelope, FinishedMarker, JobRecord

    parse = {
        "job": lambda: JobRecord.parse(key, value),
        "stateful/checkpoint": lambda: CheckpointEnvelope.parse(value, "x"),
        "resumable_finished": lambda: FinishedMarker.parse(value, "x"),
    }[key]
    with pytest.raises(CorruptStateError):
        parse()  # the runtime's own verdict
    meaning = describe(key, value)
    assert meaning.startswith("corrupt: "), meaning
    assert diagnosis in meaning
    assert "the next try fails at once, without using its retries" in meaning
    assert "delete the key" in meaning


def test_an_unreadable_row_marks_only_its_own_key(monkeypatch):
    """A corrupt checkpoint row does not make the valid index row of the same task instance look corrupt."""
    from airflow.providers.resumable.inventory import state as inventory

    rows = [_row("stateful/__keys__"), _row("stateful/checkpoint")]
    rows[0] = rows[0]._replace(value='["checkpoint"]')
    rows[1] = rows[1]._replace(value="{not json")
    monkeypatch.setattr(inventory, "task_state_rows", lambda session, **asked: rows)
    (state,) = inventory.read_native(None, Filters())
    meanings = {row["key"]: row["meaning"] for row in state.entries()}
    assert meanings["stateful/__keys__"] == "index of the keys written under 'stateful'"
    assert meanings["stateful/checkpoint"].startswith("not JSON")


@pytest.mark.parametrize(
    ("values", "key", "after"),
    [
        (
            {"stateful/__keys__": ["checkpoint"], "stateful/checkpoint": {}},
            "stateful/checkpoint",
            ("stateful/__keys__", []),
        ),
        ({"ns/__keys__": ["a", "b"], "ns/a": 1, "ns/b": 2}, "ns/a", ("ns/__keys__", ["b"])),
        ({"ns/__keys__": ["b"], "ns/a": 1}, "ns/a", None),
        ({"job": 1}, "job", None),
        ({"ns/__keys__": ["a"]}, "ns/__keys__", None),
    ],
)
def test_deleting_a_namespaced_key_takes_it_out_of_the_index(values, key, after):
    from airflow.providers.resumable.inventory.state import index_after_delete

    assert index_after_delete(values, key) == after


def test_a_task_instance_the_db_does_not_have_has_no_state():
    from airflow.utils.session import create_session

    from airflow.providers.resumable.inventory.state import task_instance_state

    with create_session() as session:
        assert task_instance_state(session, "no_such_dag_anywhere", "r", "t", -1) is None
