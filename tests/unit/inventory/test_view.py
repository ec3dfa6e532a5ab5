"""What the UI tab and ``state list`` say a clear does, and the tab's JSON for one task instance."""

from __future__ import annotations

import json

import pytest

from airflow.providers.resumable.inventory.state import LEDGER, NATIVE, VARIABLE, TaskState
from airflow.providers.resumable.inventory.view import on_clear, task_instance_view
from airflow.providers.resumable.state.base import TaskScope

SCOPE = TaskScope("etl", "manual__1", "export", -1)
JOB = {
    "kind": "resumable-job",
    "seq": 1,
    "token": "rsm-abc",
    "generation": 3,
    "try_number": 1,
    "external_id": 1006,
    "intent_at": "2026-01-01T00:00:00+00:00",
    "submitted_at": "2026-01-01T00:00:01+00:00",
}
INTENT = {**JOB, "external_id": None, "submitted_at": None}
CHECKPOINT = {
    "kind": "resumable-checkpoint",
    "schema_name": "CopyCursor",
    "try_number": 2,
    "generation": 3,
    "saved_at": "2026-01-01T00:05:00+00:00",
    "batches_done": 7,
    "data": {"offset": 700},
}
FINISHED = {"kind": "resumable-finished", "try_number": 2, "max_tries": 3, "finished_at": "2026-01-01T01:00:00"}
WINDOW = {"kind": "resumable-watermark-window", "since": 40, "base": 40, "base_version": 2, "try_number": 1}


def state(values, ti_state="failed", backend=NATIVE, **kwargs):
    return TaskState(backend, SCOPE, "task_state_store", dict(values), ti_state=ti_state, **kwargs)


@pytest.mark.parametrize(
    ("values", "ti_state", "discards", "action", "words"),
    [
        ({}, "failed", False, "nothing", ["runs this task instance from the start"]),
        (
            {"job": JOB},
            "failed",
            False,
            "reattach",
            [
                "reattaches to job 1006 if it is still running (no new job)",
                "submits a new job if it succeeded",
                "if it failed repairs only its failed parts",
            ],
        ),
        ({"job": JOB}, "running", False, "reattach", ["A clear stops the running try, then reattaches to job 1006"]),
        (
            {"job": INTENT},
            "up_for_retry",
            False,
            "find",
            ["looks submission 1 up by its idempotency token rsm-abc", "no second job"],
        ),
        (
            {"job": JOB, "resumable_finished": FINISHED},
            "success",
            False,
            "start_afresh",
            ["succeeded at try 2", "submits a new job"],
        ),
        ({"stateful/checkpoint": CHECKPOINT}, "failed", False, "resume_walk", ["resumes CopyCursor after batch 7"]),
        (
            {"w": WINDOW, "resumable_finished": FINISHED},
            "success",
            False,
            "start_afresh",
            ["runs it from the start, rereading the watermark window it read then (from 40) without moving"],
        ),
        (
            {"stateful/checkpoint": CHECKPOINT},
            "failed",
            True,
            "start_walk",
            ["discards the checkpoint of CopyCursor", "with task state kept it resumes after batch 7"],
        ),
        (
            {"stateful/checkpoint": {**CHECKPOINT, "complete": True}},
            "failed",
            False,
            "start_walk",
            ["starts CopyCursor again from its first batch"],
        ),
        (
            {"job": {"kind": "resumable-job", "seq": -1}},
            "failed",
            False,
            "fail",
            ["fails at once on corrupt state ('job')"],
        ),
        (
            {"watermark_window": WINDOW},
            "failed",
            False,
            "reread_window",
            ["re-reads the same watermark window (from 40)"],
        ),
        (
            {"job": JOB, "stateful/checkpoint": CHECKPOINT},
            "failed",
            False,
            "reattach",
            ["reattaches to job 1006", "; it resumes CopyCursor after batch 7"],
        ),
    ],
)
def test_on_clear_says_what_the_runtime_does(values, ti_state, discards, action, words):
    outcome = on_clear(state(values, ti_state), discards_on_clear=discards)
    assert outcome.action == action
    for text in words:
        assert text in outcome.sentence
    assert outcome.sentence.startswith("A clear")
    assert outcome.sentence.endswith(".")


def test_a_job_record_written_after_the_success_is_not_finished():
    # A try after the success (a person's clear that already submitted again) wrote a newer record.
    newer = {**JOB, "try_number": 3}
    outcome = on_clear(state({"job": newer, "resumable_finished": FINISHED}))
    assert outcome.action == "reattach"


def test_an_unreadable_variable_fails_the_next_try():
    broken = TaskState(VARIABLE, SCOPE, "resumable.etl.x", {"*": "{not json"}, problem="not JSON")
    assert on_clear(broken).action == "fail"


def _view(states, **kwargs):
    redacted = []

    def redact(value):
        redacted.append(value)
        if isinstance(value, str):
            return value.replace("s3cr3t", "***")
        if isinstance(value, dict | list):
            return json.loads(json.dumps(value).replace("s3cr3t", "***"))
        return value

    args = {
        "dag_id": "etl",
        "run_id": "manual__1",
        "task_id": "export",
        "map_index": -1,
        "ti_state": "failed",
        "states": states,
        "marks": [],
        "native_discards": False,
        "redact": redact,
        "can_edit": True,
    } | kwargs
    return task_instance_view(**args), redacted


def test_the_view_has_its_fixed_shape_and_masks_values():
    record = {
        **JOB,
        "external_id": "s3cr3t",
        "url": "https://example.invalid/run/1",
        "history": [{"try_number": 1, "decision": "submit", "at": "t1", "external_id": "s3cr3t"}],
    }
    data, _ = _view([state({"job": record, "stateful/checkpoint": CHECKPOINT})])
    assert set(data) == {
        "dag_id", "run_id", "task_id", "map_index", "ti_state", "backend", "location", "clear", "job",
        "checkpoints", "watermarks", "entries", "can_edit", "delete_confirm", "region_index", "regions",
    }  # fmt: skip
    assert data["job"]["external_id"] == "***"
    assert data["job"]["history"] == [{"try_number": 1, "decision": "submit", "at": "t1", "external_id": "***"}]
    assert data["job"]["url"] == "https://example.invalid/run/1"
    assert data["checkpoints"][0]["batches_done"] == 7
    assert data["checkpoints"][0]["cursor"] == {"offset": 700}
    assert data["checkpoints"][0]["redo"] == "nothing is running; the next try resumes after batch 7"
    assert {e["key"] for e in data["entries"]} == {"job", "stateful/checkpoint"}
    assert "s3cr3t" not in json.dumps(data)  # every stored value, and the sentences naming it, pass through redact
    assert data["delete_confirm"].startswith("Delete all 2 stored key(s)")
    json.dumps(data)  # plain JSON


def test_a_running_walk_says_what_a_hard_kill_redoes():
    data, _ = _view([state({"stateful/checkpoint": CHECKPOINT}, "running")], ti_state="running")
    assert data["checkpoints"][0]["redo"] == "the work after batch 7, everything done since 2026-01-01T00:05:00+00:00"


def test_the_ledger_fills_in_what_the_task_state_lost():
    native = state({"stateful/checkpoint": CHECKPOINT})
    ledger = TaskState(LEDGER, SCOPE, "resumable.ledger.etl", {"job": JOB}, ti_state="failed")
    data, _ = _view([native, ledger])
    assert data["job"]["external_id"] == 1006
    assert data["clear"]["action"] == "reattach"


def test_nothing_stored():
    data, _ = _view([])
    assert data["job"] is None
    assert data["checkpoints"] == []
    assert data["entries"] == []
    assert data["delete_confirm"] is None
    assert data["clear"]["action"] == "nothing"


@pytest.mark.parametrize(
    ("base_url", "scope", "url"),
    [
        (
            "",
            TaskScope("etl", "scheduled__2026-01-01T00:00:00+00:00", "export", -1),
            "http://localhost:8080/dags/etl/runs/scheduled__2026-01-01T00%3A00%3A00%2B00%3A00/tasks/export/plugin/resumable",
        ),
        (
            "https://airflow.example.com/team-a/",
            TaskScope("etl", "manual__1", "copy", 3),
            "https://airflow.example.com/team-a/dags/etl/runs/manual__1/tasks/copy/mapped/3/plugin/resumable",
        ),
    ],
)
def test_the_tab_url_is_the_ui_route_of_the_task_instance(base_url, scope, url):
    from airflow.providers.resumable.inventory.view import tab_url

    assert tab_url(base_url, scope) == url


def test_task_loop_iterations_are_shown_apart():
    first = TaskState(NATIVE, TaskScope("etl", "manual__1", "export", -1, "r-1", 0), NATIVE, {"job": JOB})
    second = TaskState(
        NATIVE, TaskScope("etl", "manual__1", "export", -1, "r-1", 1), NATIVE, {"stateful/checkpoint": CHECKPOINT}
    )
    data, _ = _view([first, second])
    assert data["region_index"] == 0
    assert [e["key"] for e in data["entries"]] == ["job"], "iteration 1's keys are not mixed in"
    assert [(r["region_index"], r["clear"].split(" ", 3)[2]) for r in data["regions"]] == [
        (0, "reattaches"),
        (1, "resumes"),
    ]
    data, _ = _view([first, second], region_index=1)
    assert data["checkpoints"][0]["batches_done"] == 7
    assert data["job"] is None


def test_the_tab_names_a_discarding_clear_only_for_native_state():
    native = state({"stateful/checkpoint": CHECKPOINT})
    variable = state({"stateful/checkpoint": CHECKPOINT}, backend=VARIABLE)
    assert _view([native], native_discards=True)[0]["clear"]["action"] == "start_walk"
    assert _view([variable], native_discards=True)[0]["clear"]["action"] == "resume_walk"
    assert _view([native], native_discards=False)[0]["clear"]["action"] == "resume_walk"
