"""The loop that runs one resumable job, driven with bound callables and no operator at all."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from tenacity import stop_after_attempt, wait_none

from airflow.providers.resumable.mixins.decisions import SpecChangePolicy
from airflow.providers.resumable.mixins.job_runner import (
    JobCalls,
    JobNotFoundError,
    JobRun,
    JobSettings,
    ResumableJobConflictError,
    TransientJobError,
    resume_or_submit,
    retry_transient,
)
from airflow.providers.resumable.state.codec import JobRecord
from airflow.providers.resumable.state.task_try import TaskTry
from tests.support.context import FakeTI, make_context

log = logging.getLogger(__name__)


class System:
    """A job system: what was submitted, and the status of each job."""

    def __init__(self) -> None:
        self.jobs: dict[str, str] = {}
        self.by_token: dict[str, str] = {}
        self.submits: list[str | None] = []
        self.polled: list[str] = []
        self.cancelled: list[str] = []
        self.token: str | None = None
        self.resubmitting = False
        self.status_errors: list[Exception] = []
        self.lose_response = False

    def calls(self, *, find: bool = True, cancel: bool = True) -> JobCalls:
        def submit() -> Any:
            self.submits.append(self.token)
            job = f"job-{len(self.jobs) + 1}"
            self.jobs[job] = "RUNNING"
            if self.token:
                self.by_token[self.token] = job
            return None if self.lose_response else job

        def status(job: str) -> str:
            if self.status_errors:
                raise self.status_errors.pop(0)
            if job not in self.jobs:
                raise JobNotFoundError(job)
            return self.jobs[job]

        def poll(job: str) -> None:
            self.polled.append(job)
            if job is not None:
                self.jobs[job] = "SUCCEEDED"

        def use_token(token: str | None, resubmitting: bool) -> None:
            self.token, self.resubmitting = token, resubmitting

        return JobCalls(
            submit=submit,
            status=status,
            is_active=lambda s: s == "RUNNING",
            is_succeeded=lambda s: s == "SUCCEEDED",
            poll=poll,
            result=lambda job: {"job": job},
            use_token=use_token,
            find=(lambda token: self.by_token.get(token)) if find else None,
            cancel=(lambda job: self.cancelled.append(job)) if cancel else None,
        )


def settings(fingerprint: str | None = None, *, attempts: int = 1) -> JobSettings:
    return JobSettings(
        key="job",
        spec_change_policy=SpecChangePolicy.FAIL,
        retry_stop=stop_after_attempt(attempts),
        retry_wait=wait_none(),
        fingerprint=fingerprint,
    )


def run(system: System, ti: FakeTI | None = None, *, find: bool = True, fingerprint: str | None = None) -> Any:
    task_try = TaskTry.from_context(make_context(ti or FakeTI()), owner="task", kind="Op")
    return resume_or_submit(system.calls(find=find), task_try, settings(fingerprint, attempts=3), log)


def test_the_intent_is_written_before_the_submit(memory_store):
    system = System()
    seen: list[Any] = []
    calls = system.calls()
    original = calls.submit

    def submit() -> Any:
        seen.append(JobRecord.parse("job", memory_store.get("job")))
        return original()

    task_try = TaskTry.from_context(make_context(), owner="task", kind="Op")
    JobRun(
        JobCalls(**{**calls.__dict__, "submit": submit}),
        task_try,
        settings("f1"),
        log,
    ).run()
    intent = seen[0]
    assert intent is not None
    assert intent.external_id is None
    assert intent.token == system.token
    assert intent.fingerprint == "f1"
    stored = JobRecord.parse("job", memory_store.get("job"))
    assert stored.external_id == "job-1"
    assert stored.token == intent.token


def test_a_retry_reattaches_to_the_running_job(memory_store):
    system = System()
    system.lose_response = False
    assert run(system) == {"job": "job-1"}
    system.jobs["job-1"] = "RUNNING"
    assert run(system, FakeTI(try_number=2)) == {"job": "job-1"}
    assert len(system.submits) == 1
    assert system.polled == ["job-1", "job-1"]


def test_a_lost_response_is_found_by_its_token_not_submitted_again(memory_store):
    system = System()
    system.lose_response = True
    run(system)
    system.lose_response = False
    system.jobs["job-1"] = "RUNNING"
    assert run(system, FakeTI(try_number=2)) == {"job": "job-1"}
    assert len(system.submits) == 1, "found by its token"


@pytest.mark.parametrize(
    ("state", "line"),
    [("RUNNING", "; reattaching to it (RUNNING)"), ("SUCCEEDED", "; it ended SUCCEEDED: returning its result")],
)
def test_a_job_found_by_its_token_is_one_decision_line(memory_store, caplog, state, line):
    """The lookup and what it led to are one recovery: the try's log says it once (docs/monitoring.rst)."""
    system = System()
    system.lose_response = True
    run(system)
    system.lose_response = False
    system.jobs["job-1"] = state
    with caplog.at_level(logging.INFO, logger=log.name):
        caplog.clear()
        assert run(system, FakeTI(try_number=2)) == {"job": "job-1"}
    decisions = [r.getMessage() for r in caplog.records if r.name == log.name and "job" in r.getMessage().lower()]
    token = system.by_token and next(iter(system.by_token))
    assert decisions[0] == f"Found job job-1 submitted with token {token} by an earlier try{line}"
    assert not any(m.startswith(("Reattaching", "Job job-1 already succeeded")) for m in decisions), decisions


def test_without_find_a_lost_response_is_sent_again_with_the_same_token(memory_store):
    system = System()
    system.lose_response = True
    run(system, find=False)
    first = system.submits[0]
    system.lose_response = False
    run(system, FakeTI(try_number=2), find=False)
    assert system.submits == [first, first]
    assert system.resubmitting


def test_transient_status_errors_are_retried_and_a_gone_job_is_submitted_afresh(memory_store):
    system = System()
    run(system)
    system.jobs["job-1"] = "RUNNING"
    system.status_errors = [TransientJobError("503"), ConnectionError("reset")]
    run(system, FakeTI(try_number=2))
    assert len(system.submits) == 1, "two transient errors, then the job answered"
    del system.jobs["job-1"]
    run(system, FakeTI(try_number=3))
    assert len(system.submits) == 2
    assert system.submits[1] != system.submits[0], "a fresh submission gets a fresh token"


def test_a_changed_spec_fails_and_names_the_record(memory_store):
    system = System()
    run(system, fingerprint="v1")
    system.jobs["job-1"] = "RUNNING"
    with pytest.raises(ResumableJobConflictError, match="key 'job' of the in-memory store"):
        run(system, FakeTI(try_number=2), fingerprint="v2")


def test_not_durable_submits_every_time_with_a_new_token():
    system = System()
    task_try = TaskTry.from_context({}, owner="task", kind="Op")
    for _ in range(2):
        JobRun(
            system.calls(),
            task_try,
            settings(None),
            log,
        ).run()
    assert len(system.submits) == 2
    assert system.submits[0] != system.submits[1]


@pytest.mark.parametrize(
    ("cancel_on_kill", "can_cancel", "cancelled"), [(False, True, []), (True, True, ["j"]), (True, False, [])]
)
def test_a_kill_cancels_only_when_asked_and_able(cancel_on_kill, can_cancel, cancelled):
    system = System()
    run_ = JobRun(
        system.calls(cancel=can_cancel),
        TaskTry.from_context({}, owner="task", kind="Op"),
        settings(None),
        log,
    )
    run_.kill(cancel_on_kill=cancel_on_kill, owner="Op")
    assert system.cancelled == [], "nothing is polled: nothing to cancel"
    run_.running_external_id = "j"
    run_.kill(cancel_on_kill=cancel_on_kill, owner="Op")
    assert system.cancelled == cancelled


def test_retry_transient_stops_at_the_first_permanent_error_and_names_the_record():
    attempts: list[int] = []

    def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise TransientJobError("429")
        raise ResumableJobConflictError("the job belongs to someone else.")

    with pytest.raises(ResumableJobConflictError, match="The job record is RECORD"):
        retry_transient(
            flaky,
            stop=stop_after_attempt(5),
            wait=wait_none(),
            is_transient=lambda e: isinstance(e, TransientJobError),
            log=log,
            location="RECORD",
        )
    assert len(attempts) == 3


class TestLedger:
    """On the native store, the job record is also kept where a clear or an expiry cannot take it."""

    @staticmethod
    def native_try(ti: FakeTI, store: Any, ledger: Any) -> TaskTry:
        from airflow.providers.resumable.state.base import TaskScope
        from airflow.providers.resumable.state.lifecycle import TryInfo

        scope = TaskScope(ti.dag_id, ti.run_id, ti.task_id)
        info = TryInfo(try_number=ti.try_number, max_tries=ti.max_tries, try_stamp=f"ti-{ti.try_number}")
        tags = {"operator": "Op", "dag_id": ti.dag_id, "task_id": ti.task_id, "backend": "task_state_store"}
        return TaskTry(scope, info, store, "task_state_store", True, ti.task_id, tags, _ledger=ledger)

    def go(self, system: System, ti: FakeTI, store: Any, ledger: Any) -> Any:
        return resume_or_submit(system.calls(), self.native_try(ti, store, ledger), settings(), log)

    def test_every_record_write_goes_to_both(self):
        from airflow.providers.resumable.state.backends import InMemoryStateStore

        store, ledger, system = InMemoryStateStore(), InMemoryStateStore(), System()
        self.go(system, FakeTI(), store, ledger)
        assert store.get("job") == ledger.get("job")
        assert [call for call in ledger.calls if call[0] == "set"] == [("set", "job"), ("set", "job")], (
            "the intent and the id, each in the ledger too"
        )

    def test_a_clear_that_discarded_the_record_reattaches_to_the_running_job(self, caplog):
        from airflow.providers.resumable.state.backends import InMemoryStateStore

        store, ledger, system = InMemoryStateStore(), InMemoryStateStore(), System()
        self.go(system, FakeTI(try_number=1, max_tries=1), store, ledger)
        system.jobs["job-1"] = "RUNNING"
        store.clear()  # what Airflow 3.4's clear does to the task's state by default
        cleared = FakeTI(try_number=2, max_tries=2)
        assert self.go(system, cleared, store, ledger) == {"job": "job-1"}
        assert len(system.submits) == 1, "one job, however the clear treated the task's state"
        assert "the ledger kept it" in caplog.text
        assert store.get("job")["external_id"] == "job-1", "adopted back into the task's state"

    @pytest.mark.parametrize("status", ["SUCCEEDED", "FAILED"])
    def test_a_clear_after_the_job_ended_submits_a_new_one(self, status):
        from airflow.providers.resumable.state.backends import InMemoryStateStore

        store, ledger, system = InMemoryStateStore(), InMemoryStateStore(), System()
        self.go(system, FakeTI(try_number=1, max_tries=1), store, ledger)
        system.jobs["job-1"] = status
        store.clear()
        self.go(system, FakeTI(try_number=2, max_tries=2), store, ledger)
        assert len(system.submits) == 2
