"""The TaskFlow handle's job (``handle.job``, ``handle.ajob``) with a TaskTry and no operator."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.context import FakeTI
from tests.support.taskflow import handle


class Jobs:
    def __init__(self) -> None:
        self.by_token: dict[str, str] = {}
        self.state: dict[str, str] = {}
        self.submits = 0
        self.lose_next_response = False

    def calls(self):
        def submit(token):
            self.submits += 1
            job = self.by_token.setdefault(token, f"job-{len(self.by_token) + 1}")
            self.state.setdefault(job, "RUNNING")
            if self.lose_next_response:
                self.lose_next_response = False
                raise ConnectionResetError("response lost")
            return job

        def poll(job):
            self.state[job] = "SUCCEEDED"

        return {
            "submit": submit,
            "status": self.state.get,
            "is_active": lambda s: s == "RUNNING",
            "is_succeeded": lambda s: s == "SUCCEEDED",
            "poll": poll,
        }


def test_a_job_resubmits_a_lost_submission_with_the_same_token(memory_store):
    jobs = Jobs()
    jobs.lose_next_response = True
    with pytest.raises(ConnectionResetError):
        handle().job(**jobs.calls())
    assert handle(FakeTI(try_number=2)).job(**jobs.calls()) == "job-1"
    assert len(jobs.by_token) == 1
    assert jobs.submits == 2


def test_an_async_job_takes_async_callables(memory_store):
    jobs = Jobs()
    calls = jobs.calls()
    sync_poll = calls["poll"]

    async def poll(job):
        await asyncio.sleep(0)
        sync_poll(job)

    calls["poll"] = poll
    assert asyncio.run(handle().ajob(**calls, result=lambda job: {"id": job})) == {"id": "job-1"}


def test_a_job_keeps_each_tries_decision_as_an_operator_does(memory_store):
    jobs = Jobs()
    jobs.lose_next_response = True
    with pytest.raises(ConnectionResetError):
        handle().job(**jobs.calls())
    handle(FakeTI(try_number=2)).job(**jobs.calls())
    handle(FakeTI(try_number=3)).job(**jobs.calls())
    history = [(e["try_number"], e["decision"], e["external_id"]) for e in memory_store.get("job")["history"]]
    assert history == [(1, "submit", None), (2, "resubmit_same_token", "job-1"), (3, "already_succeeded", "job-1")]
    assert memory_store.get("job")["url"] is None, "a function's job has no console link"
