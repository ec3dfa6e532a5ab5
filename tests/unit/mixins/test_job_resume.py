"""The resume steps of the job loop (``job_resume.py``): write-ahead, found not repeated, declined, capped."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from tenacity import stop_after_attempt, wait_none

from airflow.providers.resumable.mixins.decisions import (
    AfterResumesPolicy,
    JobFailurePolicy,
    ResumeSettings,
    SpecChangePolicy,
)
from airflow.providers.resumable.mixins.job_runner import (
    JobCalls,
    JobRun,
    JobSettings,
    ResumableJobFailedError,
)
from airflow.providers.resumable.state.codec import JobRecord
from airflow.providers.resumable.state.task_try import TaskTry
from tests.support.context import FakeTI, make_context

log = logging.getLogger(__name__)


class Repairable:
    """A job system that repairs a failed job in place, with a repair history, like Databricks."""

    def __init__(self, *, find: bool = True, decline: bool = False) -> None:
        self.jobs: dict[str, str] = {}
        self.repairs: list[tuple[str, str | None]] = []  # (job, token)
        self.submits = 0
        self.find = find
        self.decline = decline
        self.lose_repair_response = False
        self.fail_repairs = False  # a repaired job fails again
        self.token: str | None = None
        self.resubmitting = False
        self.detail: Any = None
        self.run: JobRun | None = None
        self.seen_intent: list[JobRecord] = []

    def calls(self) -> JobCalls:
        def submit() -> str:
            self.submits += 1
            job = f"job-{self.submits}"
            self.jobs[job] = "RUNNING"
            return job

        def poll(job: str) -> None:
            if self.jobs[job] == "REPAIRING":
                self.jobs[job] = "FAILED" if self.fail_repairs else "SUCCEEDED"
            elif self.jobs[job] == "RUNNING":
                self.jobs[job] = "FAILED"
            if self.jobs[job] == "FAILED":
                raise RuntimeError(f"{job} failed")

        def resume(job: str, status: str) -> str | None:
            assert self.run is not None
            assert status == "FAILED", "the hook gets the raw status the decision saw"
            self.seen_intent.append(JobRecord.parse("job", self.run.task_try.store.get("job")))
            if self.decline:
                return None
            self.repairs.append((job, self.token))
            self.jobs[job] = "REPAIRING"
            if self.lose_repair_response:
                raise ConnectionError("the repair response was lost")
            return job

        def find_resume(job: str, token: str) -> str | None:
            return job if (job, token) in self.repairs else None

        def use_token(token: str | None, resubmitting: bool) -> None:
            self.token, self.resubmitting = token, resubmitting

        def use_detail(detail: Any) -> None:
            self.detail = detail

        return JobCalls(
            submit=submit,
            status=lambda job: "RUNNING" if self.jobs[job] == "REPAIRING" else self.jobs[job],
            is_active=lambda s: s == "RUNNING",
            is_succeeded=lambda s: s == "SUCCEEDED",
            poll=poll,
            result=lambda job: None,  # a result of None must not read as "declined"
            use_token=use_token,
            resume=resume,
            find_resume=find_resume if self.find else None,
            use_resume_detail=use_detail,
        )


def go(system: Repairable, try_number: int, resume: ResumeSettings | None = None, fingerprint: str = "fp") -> Any:
    task_try = TaskTry.from_context(make_context(FakeTI(try_number=try_number)), owner="task", kind="Op")
    settings = JobSettings(
        key="job",
        spec_change_policy=SpecChangePolicy.FAIL,
        retry_stop=stop_after_attempt(1),
        retry_wait=wait_none(),
        fingerprint=fingerprint,
        resume=resume or ResumeSettings(),
    )
    system.run = JobRun(system.calls(), task_try, settings, log)
    return system.run.run()


def stored(store: Any) -> JobRecord:
    record = JobRecord.parse("job", store.get("job"))
    assert record is not None
    return record


def test_a_failed_job_is_resumed_under_a_resume_intent_and_polled_again(memory_store):
    system = Repairable()
    with pytest.raises(RuntimeError, match="job-1 failed"):
        go(system, 1)
    assert go(system, 2) is None
    assert system.submits == 1, "resumed, not submitted again"
    assert system.repairs == [("job-1", system.token)]
    intent = system.seen_intent[0]
    assert intent.resume_pending
    assert (intent.resume_token, intent.resume_of) == (system.token, "job-1")
    assert intent.resumes == 1
    record = stored(memory_store)
    assert not record.resume_pending, "confirmed once the hook returned"
    assert (record.external_id, record.resumes, record.seq) == ("job-1", 1, 1)
    assert record.resumed_at is not None


def test_a_lost_resume_response_is_found_not_repeated(memory_store):
    system = Repairable()
    system.fail_repairs = True  # the repair ran and failed again before the retry looked
    with pytest.raises(RuntimeError):
        go(system, 1)
    system.lose_repair_response = True
    with pytest.raises(ConnectionError):
        go(system, 2)
    assert stored(memory_store).resume_pending
    system.lose_repair_response = False
    system.jobs["job-1"] = "FAILED"
    system.fail_repairs = False
    # Found: the retry re-decides on the found resume (failed again) and spends a second resume.
    assert go(system, 3) is None
    assert len(system.repairs) == 2
    assert system.repairs[0][1] != system.repairs[1][1], "a new resume, a new token"
    assert stored(memory_store).resumes == 2


def test_without_find_a_lost_resume_is_repeated_with_the_same_token(memory_store):
    system = Repairable(find=False)
    with pytest.raises(RuntimeError):
        go(system, 1)
    system.lose_repair_response = True
    with pytest.raises(ConnectionError):
        go(system, 2)
    first = system.repairs[0][1]
    system.lose_repair_response = False
    system.jobs["job-1"] = "FAILED"
    go(system, 3)
    assert [token for _, token in system.repairs] == [first, first]
    assert system.resubmitting, "the hook is told it repeats a resume"
    assert stored(memory_store).resumes == 1, "a repeated resume is not counted twice"


def test_a_running_job_after_a_lost_resume_confirms_it(memory_store):
    system = Repairable()
    with pytest.raises(RuntimeError):
        go(system, 1)
    system.lose_repair_response = True
    with pytest.raises(ConnectionError):
        go(system, 2)
    system.lose_repair_response = False
    go(system, 3)  # the job is REPAIRING (running): reattached
    assert len(system.repairs) == 1
    assert not stored(memory_store).resume_pending


def test_a_declined_resume_submits_afresh_without_spending_a_resume(memory_store):
    system = Repairable(decline=True)
    with pytest.raises(RuntimeError):
        go(system, 1)
    with pytest.raises(RuntimeError, match="job-2 failed"):
        go(system, 2)
    assert system.submits == 2
    record = stored(memory_store)
    assert (record.external_id, record.seq, record.resumes) == ("job-2", 2, 0)
    assert not record.resume_pending


def test_the_cap_falls_back_to_a_fresh_submission_and_keeps_the_count(memory_store):
    system = Repairable()
    system.fail_repairs = True
    settings = ResumeSettings(max_job_resumes=1)
    for try_number in (1, 2):
        with pytest.raises(RuntimeError):
            go(system, try_number, settings)
    assert len(system.repairs) == 1
    with pytest.raises(RuntimeError, match="job-2 failed"):
        go(system, 3, settings)
    record = stored(memory_store)
    assert (record.external_id, record.resumes) == ("job-2", 1), "the cap is per life, not per job"


def test_the_cap_with_fail_fails_the_task_without_retries(memory_store):
    system = Repairable()
    settings = ResumeSettings(max_job_resumes=0, after_resumes=AfterResumesPolicy.FAIL)
    with pytest.raises(RuntimeError):
        go(system, 1, settings)
    with pytest.raises(ResumableJobFailedError, match="max_job_resumes=0.*clear the task.*The record is"):
        go(system, 2, settings)
    assert system.submits == 1
    assert system.repairs == []


def test_resubmit_policy_keeps_the_old_behaviour(memory_store):
    system = Repairable()
    settings = ResumeSettings(on_job_failure=JobFailurePolicy.RESUBMIT)
    with pytest.raises(RuntimeError):
        go(system, 1, settings)
    with pytest.raises(RuntimeError, match="job-2 failed"):
        go(system, 2, settings)
    assert system.repairs == []


def test_a_changed_spec_is_resubmitted_never_resumed(memory_store):
    system = Repairable()
    with pytest.raises(RuntimeError):
        go(system, 1, fingerprint="fp-old")
    with pytest.raises(RuntimeError, match="job-2 failed"):
        go(system, 2, fingerprint="fp-new")
    assert system.repairs == []


def test_note_resume_is_kept_in_the_intent_and_handed_back(memory_store):
    system = Repairable(find=False)
    original = system.calls

    def calls() -> JobCalls:
        base = original()

        def resume(job: str, status: str) -> str:
            assert system.run is not None
            if system.detail is None:
                system.run.note_resume({"latest_repair_id": 41})
            return base.resume(job, status)  # type: ignore[misc]

        return JobCalls(**{**base.__dict__, "resume": resume})

    system.calls = calls  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        go(system, 1)
    system.lose_repair_response = True
    with pytest.raises(ConnectionError):
        go(system, 2)
    assert stored(memory_store).resume_detail == {"latest_repair_id": 41}
    system.lose_repair_response = False
    system.jobs["job-1"] = "FAILED"
    go(system, 3)
    assert system.detail == {"latest_repair_id": 41}, "the repeat sees what the first attempt noted"
    assert stored(memory_store).resume_detail is None
