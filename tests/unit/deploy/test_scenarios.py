"""The deployment suite's clear scenarios (tests/deploy/scenarios.py): what each promises the verdict."""

from __future__ import annotations

import re

import pytest

from tests.deploy.scenarios import JOB_FAMILIES, TASKFLOW_JOB, TASKFLOW_LOOP, Scenario, all_scenarios


def test_every_job_family_meets_the_three_clears_and_walks_only_the_clear_after_success():
    clears = {(s.family, s.moment) for s in all_scenarios() if s.clear_on}
    moments = ("clear_after_success", "clear_after_mark", "clear_after_job_failed")
    assert clears == {(f, m) for f in JOB_FAMILIES for m in moments} | {
        ("http", "clear_after_success"),
        ("batches", "clear_after_success"),
        (TASKFLOW_LOOP, "clear_after_success"),
    }


@pytest.mark.parametrize(
    ("moment", "clear_on", "jobs", "failed", "held", "retries", "decision"),
    [
        ("clear_after_success", "success", 2, 0, False, None, "Submitting job (submission 1, token rsm-ab): no job"),
        ("clear_after_mark", "failed", 1, 0, True, None, "Reattaching to job 7 (RUNNING), submitted at try 1"),
        (
            "clear_after_job_failed",
            "failed",
            2,
            1,
            False,
            0,
            "Submitting job (submission 2, token rsm-ab12): job 'job-1' ended without success",
        ),
    ],
)
def test_a_clear_scenario_promises_its_jobs_and_decision(moment, clear_on, jobs, failed, held, retries, decision):
    for family in JOB_FAMILIES:
        s = Scenario(family, moment)
        assert (s.clear_on, s.expected_tries, s.expected_state) == (clear_on, 2, "success")
        assert (s.jobs_per_instance, s.failed_jobs, s.holds_job, s.retries) == (jobs, failed, held, retries)
        assert not s.cancel_on_kill, "a clear scenario keeps the operators' default cancel_on_kill=False"
        assert s.expected_decision is not None
        assert re.search(s.expected_decision, decision)


def test_the_decision_a_clear_after_the_job_failed_must_log_is_a_new_submission_that_knows_why():
    want = Scenario("emr", "clear_after_job_failed").expected_decision
    assert want is not None
    assert not re.search(want, "Reattaching to job 7 (RUNNING)")
    # The record lost (no ledger on 3.4): a fresh token too, but the try did not know the job failed.
    assert not re.search(want, "Submitting job (submission 1, token rsm-ab): no job recorded for this task instance")


def test_the_scenarios_without_a_clear_keep_their_promises():
    mark = Scenario("toy", "mark_failed")
    assert (mark.clear_on, mark.expected_tries, mark.expected_state, mark.cancel_on_kill) == (None, 1, "failed", True)
    assert not Scenario("databricks", "mark_failed").cancel_on_kill
    kill = Scenario("emr", "mid_poll")
    assert (kill.expected_tries, kill.jobs_per_instance, kill.expected_decision, kill.retries) == (2, 1, None, None)
    walk = Scenario("http", "clear_after_success")
    assert (walk.clear_on, walk.generations, walk.expected_decision) == ("success", 2, None)


def test_the_taskflow_families_judge_a_loop_as_a_walk_and_a_job_as_a_job():
    taskflow = {(s.family, s.moment, s.variant) for s in all_scenarios() if s.family in (TASKFLOW_LOOP, TASKFLOW_JOB)}
    assert taskflow == {
        (TASKFLOW_LOOP, "mid_walk", "default"),
        (TASKFLOW_LOOP, "clear_after_success", "default"),
        (TASKFLOW_LOOP, "mapped", "default"),
        (TASKFLOW_JOB, "accepted", "default"),
        (TASKFLOW_JOB, "mid_poll", "default"),
    }
    loop = Scenario(TASKFLOW_LOOP, "mid_walk")
    assert (loop.dag_id, loop.walk, loop.fault, loop.expected_tries) == (
        "deploy_taskflow_mid_walk",
        True,
        ("page", 300, "kill"),
        2,
    )
    mapped = Scenario(TASKFLOW_LOOP, "mapped")
    assert (mapped.instances, mapped.victim, mapped.fault) == (3, 1, ("page", 40, "kill"))
    job = Scenario(TASKFLOW_JOB, "accepted")
    assert (job.dag_id, job.walk, job.fault, job.jobs_per_instance) == (
        "deploy_taskflow_job_accepted",
        False,
        ("submit", 1, "kill"),
        1,
    )
    assert not job.cancel_on_kill
