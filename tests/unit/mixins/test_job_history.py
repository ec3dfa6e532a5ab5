"""What each try decided, kept in the job record (``job_history.py``): one entry per try, and the job's link."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from tenacity import stop_after_attempt, wait_none

from airflow.providers.resumable.mixins.decisions import JobFailurePolicy, ResumeSettings, SpecChangePolicy
from airflow.providers.resumable.mixins.job_history import with_decision, with_submitted
from airflow.providers.resumable.mixins.job_runner import (
    JobCalls,
    JobRun,
    JobSettings,
    ResumableJobConflictError,
    ResumableJobFailedError,
)
from airflow.providers.resumable.state.codec import FINISHED_KEY, JOB_HISTORY_LIMIT, FinishedMarker, JobRecord
from airflow.providers.resumable.state.task_try import TaskTry
from tests.support.context import FakeTI, make_context

log = logging.getLogger(__name__)


class Jobs:
    """A job system that can repair a failed job in place, as Databricks does, and names a page per job."""

    def __init__(self) -> None:
        self.jobs: dict[str, str] = {}
        self.by_token: dict[str, str] = {}
        self.token: str | None = None
        self.crash_in_poll = False
        self.finish_as = "SUCCEEDED"
        self.lose_response = False
        self.url_error: Exception | None = None
        self.urls_asked: list[str] = []

    def calls(self, *, resume: bool = True) -> JobCalls:
        def submit() -> str | None:
            job = f"job-{len(self.jobs) + 1}"
            self.jobs[job] = "RUNNING"
            if self.token:
                self.by_token[self.token] = job
            return None if self.lose_response else job

        def poll(job: str) -> None:
            if self.crash_in_poll:
                raise SystemExit("killed while polling")
            self.jobs[job] = self.finish_as
            if self.finish_as != "SUCCEEDED":
                raise RuntimeError(f"{job} failed")

        def repair(job: str, status: str) -> str:
            self.jobs[job] = "RUNNING"
            return job

        def job_url(job: str) -> str:
            self.urls_asked.append(job)
            if self.url_error is not None:
                raise self.url_error
            return f"https://console.test/jobs/{job}"

        def use_token(token: str | None, resubmitting: bool) -> None:
            self.token = token

        return JobCalls(
            submit=submit,
            status=lambda job: self.jobs[job],
            is_active=lambda s: s == "RUNNING",
            is_succeeded=lambda s: s == "SUCCEEDED",
            poll=poll,
            result=lambda job: {"job": job},
            use_token=use_token,
            find=lambda token: self.by_token.get(token),
            resume=repair if resume else None,
            job_url=job_url,
        )


def go(
    jobs: Jobs,
    try_number: int,
    *,
    max_tries: int = 3,
    fingerprint: str = "fp",
    resume: bool = True,
    on_failure: ResumeSettings | None = None,
) -> Any:
    ti = FakeTI(try_number=try_number, max_tries=max_tries)
    task_try = TaskTry.from_context(make_context(ti), owner="task", kind="Op")
    settings = JobSettings(
        key="job",
        spec_change_policy=SpecChangePolicy.FAIL,
        retry_stop=stop_after_attempt(1),
        retry_wait=wait_none(),
        fingerprint=fingerprint,
        resume=on_failure or ResumeSettings(),
    )
    return JobRun(jobs.calls(resume=resume), task_try, settings, log).run()


def stored(store: Any) -> JobRecord:
    record = JobRecord.parse("job", store.get("job"))
    assert record is not None
    return record


def history(store: Any) -> list[tuple[int | None, str, Any]]:
    return [(entry.try_number, entry.decision, entry.external_id) for entry in stored(store).history]


def test_a_submission_is_one_entry_naming_the_job_it_submitted_and_its_link(memory_store):
    jobs = Jobs()
    assert go(jobs, 1) == {"job": "job-1"}
    assert history(memory_store) == [(1, "submit", "job-1")]
    record = stored(memory_store)
    assert record.url == "https://console.test/jobs/job-1"
    assert record.history[0].at.endswith("+00:00"), "UTC, as every stored time"


def test_the_intent_already_carries_the_entry(memory_store):
    """A try that dies inside submit_job still shows that it decided to submit."""
    jobs = Jobs()
    jobs.lose_response = True
    go(jobs, 1)
    assert history(memory_store) == [(1, "submit", None)]
    assert stored(memory_store).url is None, "no id, no link"


def test_a_kill_then_a_retry_that_reattaches(memory_store):
    jobs = Jobs()
    jobs.crash_in_poll = True
    with pytest.raises(SystemExit):
        go(jobs, 1)
    jobs.crash_in_poll = False
    memory_store.calls.clear()
    assert go(jobs, 2) == {"job": "job-1"}
    assert history(memory_store) == [(1, "submit", "job-1"), (2, "reattach", "job-1")]
    assert [call for call in memory_store.calls if call[0] == "set"] == [("set", "job")], "one write"
    assert jobs.urls_asked == ["job-1"], "the link was stored with the id: not asked for again"


def test_a_retry_that_returns_the_result(memory_store):
    jobs = Jobs()
    go(jobs, 1)
    assert go(jobs, 2) == {"job": "job-1"}
    assert history(memory_store) == [(1, "submit", "job-1"), (2, "already_succeeded", "job-1")]


def test_the_entry_is_written_before_the_poll(memory_store):
    jobs = Jobs()
    jobs.crash_in_poll = True
    with pytest.raises(SystemExit):
        go(jobs, 1)
    with pytest.raises(SystemExit):
        go(jobs, 2)
    assert [decision for _, decision, _ in history(memory_store)] == ["submit", "reattach"]


def test_a_failed_job_resumed_then_resubmitted(memory_store):
    jobs = Jobs()
    jobs.finish_as = "FAILED"
    with pytest.raises(RuntimeError):
        go(jobs, 1)
    jobs.finish_as = "SUCCEEDED"
    assert go(jobs, 2) == {"job": "job-1"}
    assert history(memory_store) == [(1, "submit", "job-1"), (2, "failed_resume", "job-1")]
    jobs.jobs["job-1"] = "FAILED"
    go(jobs, 3, resume=False)  # an operator that cannot resume: a fresh job, the history goes on
    assert history(memory_store)[-1] == (3, "failed_resubmit", "job-2")
    assert stored(memory_store).url == "https://console.test/jobs/job-2", "the new job's link"


def test_a_lost_submission_found_by_its_token(memory_store):
    jobs = Jobs()
    jobs.lose_response = True
    go(jobs, 1)
    jobs.lose_response = False
    jobs.jobs["job-1"] = "RUNNING"
    assert go(jobs, 2) == {"job": "job-1"}
    assert history(memory_store) == [(1, "submit", None), (2, "found_by_token", "job-1"), (2, "reattach", "job-1")]
    assert stored(memory_store).url == "https://console.test/jobs/job-1"


@pytest.mark.parametrize("how", ["marker", "max_tries"])
def test_a_clear_after_success_submits_afresh_and_keeps_the_history(memory_store, how):
    jobs = Jobs()
    go(jobs, 1, max_tries=3)
    if how == "marker":
        # What the listener writes once Airflow recorded the success (the native store).
        memory_store.set(FINISHED_KEY, FinishedMarker(try_number=1, max_tries=3).dump())
    go(jobs, 2, max_tries=4)
    assert history(memory_store) == [(1, "submit", "job-1"), (2, "cleared_fresh", "job-2")]
    record = stored(memory_store)
    assert (record.seq, record.external_id, record.url) == (2, "job-2", "https://console.test/jobs/job-2")


def test_a_refusal_is_recorded_before_the_task_fails(memory_store):
    jobs = Jobs()
    jobs.crash_in_poll = True
    with pytest.raises(SystemExit):
        go(jobs, 1, fingerprint="v1")
    with pytest.raises(ResumableJobConflictError):
        go(jobs, 2, fingerprint="v2")
    assert history(memory_store)[-1] == (2, "conflict", "job-1")
    assert stored(memory_store).fingerprint == "v1", "nothing but the entry changed"


def test_a_failed_job_left_to_a_person_is_recorded_too(memory_store):
    jobs = Jobs()
    jobs.finish_as = "FAILED"
    with pytest.raises(RuntimeError):
        go(jobs, 1)
    with pytest.raises(ResumableJobFailedError):
        go(jobs, 2, on_failure=ResumeSettings(on_job_failure=JobFailurePolicy.FAIL))
    assert history(memory_store) == [(1, "submit", "job-1"), (2, "failed_stop", "job-1")]


def test_a_declined_resume_shows_the_resume_and_the_fresh_job(memory_store):
    jobs = Jobs()
    jobs.finish_as = "FAILED"
    with pytest.raises(RuntimeError):
        go(jobs, 1)
    jobs.finish_as = "SUCCEEDED"
    calls = jobs.calls

    def declining(*, resume: bool = True) -> JobCalls:
        bound = calls(resume=resume)
        return JobCalls(**{**bound.__dict__, "resume": lambda job, status: None})

    jobs.calls = declining  # type: ignore[method-assign]
    assert go(jobs, 2) == {"job": "job-2"}
    assert history(memory_store) == [
        (1, "submit", "job-1"),
        (2, "failed_resume", "job-1"),
        (2, "resume_declined", "job-2"),
    ]


def test_a_failing_job_url_never_fails_the_task(memory_store, caplog):
    jobs = Jobs()
    jobs.url_error = RuntimeError("console down")
    assert go(jobs, 1) == {"job": "job-1"}
    assert stored(memory_store).url is None
    assert "Could not build the console link of job job-1" in caplog.text
    jobs.url_error = None
    go(jobs, 2)
    assert stored(memory_store).url == "https://console.test/jobs/job-1", "asked again where it is missing"


def test_the_history_keeps_the_last_twenty(memory_store):
    jobs = Jobs()
    jobs.crash_in_poll = True
    for try_number in range(1, JOB_HISTORY_LIMIT + 6):
        with pytest.raises(SystemExit):
            go(jobs, try_number, max_tries=100)
    entries = history(memory_store)
    assert len(entries) == JOB_HISTORY_LIMIT
    assert entries[0] == (6, "reattach", "job-1"), "the oldest dropped first"
    assert entries[-1] == (JOB_HISTORY_LIMIT + 5, "reattach", "job-1")


def test_with_submitted_completes_only_this_tries_open_entry():
    from airflow.providers.resumable.mixins.decisions import DecisionKind

    record = with_decision(JobRecord(seq=1, token="rsm-a"), 1, DecisionKind.REATTACH, "job-0")
    assert with_submitted(record, 2, "job-1").history == record.history, "another try's entry stays"
    opened = with_decision(record, 2, DecisionKind.SUBMIT, None)
    assert with_submitted(opened, 2, "job-1").history[-1].external_id == "job-1"
