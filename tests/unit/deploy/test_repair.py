"""
The deployment suite's Databricks repair scenarios: what they promise (tests/deploy/scenarios.py), the
fake's kill events at the repair (tests/deploy/services.py), and the judge of repairs and of the
recovering tries' decision lines (tests/deploy/run.py).
"""

from __future__ import annotations

import re

import pytest

from tests.deploy.run import Outcome, decisions, judge_repairs, table
from tests.deploy.scenarios import REPAIR_MOMENTS, Scenario, all_scenarios
from tests.deploy.services import Databricks, Faults

ACCEPTED = Scenario("databricks", "repair_accepted")
MID_POLL = Scenario("databricks", "repaired_mid_poll")


def _outcome(s: Scenario) -> Outcome:
    return Outcome("3.3", s.dag_id, s.family, s.moment, s.variant, s.instances)


def _run(repairs: list[int], executed: list[str], run_id: int = 1001) -> dict:
    return {"id": run_id, "token": "rsm-a", "state": "SUCCESS", "repairs": repairs, "executed": executed}


# ---- the scenarios ----------------------------------------------------------------------------------------


def test_the_repair_scenarios_are_databricks_only_and_killed_inside_the_repair_or_polling_it():
    repairing = {(s.family, s.moment) for s in all_scenarios() if s.repairs_run}
    assert repairing == {("databricks", m) for m in REPAIR_MOMENTS}
    assert ACCEPTED.dag_id == "deploy_databricks_repair_accepted"
    assert MID_POLL.dag_id == "deploy_databricks_repaired_mid_poll"
    assert ACCEPTED.fault == ("repair", 1, "kill")
    assert (MID_POLL.fault[0], MID_POLL.fault[2]) == ("repaired_poll", "kill")


@pytest.mark.parametrize("s", [ACCEPTED, MID_POLL])
def test_a_repair_scenario_promises_one_run_one_repair_and_only_the_failed_task_again(s):
    assert (s.expected_tries, s.expected_state, s.jobs_per_instance, s.failed_jobs) == (3, "success", 1, 0)
    assert s.retries == 3, "two retries are spent (the job's failure, the kill), one is spare"
    assert s.expected_repairs == 1
    assert s.failing_task == s.task_keys[-1]
    assert s.expected_executed == [*s.task_keys, s.task_keys[-1]]
    assert len(set(s.task_keys)) == 3
    assert all(k.startswith(s.moment) for k in s.task_keys)


def test_the_other_scenarios_expect_no_repair():
    for s in all_scenarios():
        if not s.repairs_run:
            assert (s.expected_repairs, s.expected_executed, s.failing_task, s.repairing_decision) == (
                0,
                None,
                None,
                None,
            )
    # The clear after a failed job keeps its promise of a new job (on_job_failure="resubmit").
    assert Scenario("databricks", "clear_after_job_failed").jobs_per_instance == 2


def test_the_repairing_try_must_log_a_resume_and_the_recovering_try_a_reattach():
    resume = "Resuming job 1001 (TERMINATED:FAILED), resume token rsm-ab12: job 1001 ended without success"
    reattach = "Reattaching to job 1001 (PENDING:), submitted at try 1 with token rsm-ab"
    found = "Found the resume of job 1001 started with resume token rsm-ab12 by an earlier try: polling 1001"
    for s in (ACCEPTED, MID_POLL):
        assert s.repairing_decision is not None
        assert re.search(s.repairing_decision, resume)
        assert not re.search(s.repairing_decision, "Resuming job 1001 (RUNNING:)")
        assert s.expected_decision is not None
        assert re.search(s.expected_decision, reattach)
        assert not re.search(s.expected_decision, resume), "a repair repeated is not a recovery"
    assert ACCEPTED.expected_decision is not None
    assert re.search(ACCEPTED.expected_decision, found)


# ---- the fake's events ------------------------------------------------------------------------------------


def test_databricks_reports_the_repair_and_the_polls_of_a_repaired_run():
    events: list[tuple[str, str]] = []
    faults = Faults(mark_failed=lambda s, i: None)
    faults.event = lambda name, event: events.append((name, event))  # type: ignore[method-assign]
    fake = Databricks(pending_polls=0, running_polls=0)
    fake.plan = faults
    fake.fail_tasks([ACCEPTED, MID_POLL])
    name = f"{ACCEPTED.dag_id}/-1"
    tasks = [
        {"task_key": k, "notebook_task": {}, **({"depends_on": [{"task_key": ACCEPTED.task_keys[i - 1]}]} if i else {})}
        for i, k in enumerate(ACCEPTED.task_keys)
    ]
    run_id = fake.handle("POST", "jobs/runs/submit", {"run_name": name, "tasks": tasks})["run_id"]
    assert fake.handle("GET", "jobs/runs/get", {"run_id": run_id})["state"]["result_state"] == "FAILED"
    assert (name, "repaired_poll") not in events
    fake.handle("POST", "jobs/runs/repair", {"run_id": run_id, "rerun_all_failed_tasks": True})
    assert events[-1] == (name, "repair")
    assert fake.handle("GET", "jobs/runs/get", {"run_id": run_id})["state"]["result_state"] == "SUCCESS"
    assert events[-2:] == [(name, "poll"), (name, "repaired_poll")]
    [entry] = fake.ledger()[name]
    assert entry["repairs"] == [9001]
    assert entry["executed"] == ACCEPTED.expected_executed
    # The other scenario's task keys are its own: its failure is still to come.
    assert fake.task_failures[MID_POLL.failing_task] == 1


# ---- the judge ----------------------------------------------------------------------------------------------


def test_one_run_repaired_once_with_only_the_failed_task_again_is_at_goal():
    out = _outcome(ACCEPTED)
    assert judge_repairs(ACCEPTED, out, [[_run([9001], ACCEPTED.expected_executed or [])]]) == []
    assert (out.repairs, out.repairs_expected) == (1, 1)


def test_a_repeated_repair_or_none_fails_the_scenario():
    keys = ACCEPTED.task_keys
    twice = judge_repairs(ACCEPTED, _outcome(ACCEPTED), [[_run([9001, 9002], [*keys, keys[-1], keys[-1]])]])
    assert any("repaired 2 times, expected 1" in p for p in twice)
    assert any("only the failed one again" in p for p in twice)
    never = judge_repairs(ACCEPTED, _outcome(ACCEPTED), [[_run([], keys)]])
    assert any("repaired 0 times, expected 1" in p for p in never)


def test_a_repair_that_ran_more_than_the_failed_task_fails_the_scenario():
    keys = MID_POLL.task_keys
    problems = judge_repairs(MID_POLL, _outcome(MID_POLL), [[_run([9001], [*keys, *keys])]])
    assert problems == [
        f"run 1001 ran tasks {[*keys, *keys]}, expected {[*keys, keys[-1]]} (only the failed one again)"
    ]


def test_a_databricks_scenario_without_repairs_fails_on_any_repair():
    s = Scenario("databricks", "mid_poll")
    out = _outcome(s)
    assert judge_repairs(s, out, [[_run([], ["etl"])]]) == []
    assert (out.repairs, out.repairs_expected) == (0, 0)
    assert judge_repairs(s, _outcome(s), [[_run([9001], ["etl", "etl"])]]) == [
        "run 1001 was repaired 1 times, expected 0"
    ]


def test_a_found_resume_and_the_reattach_after_it_are_one_decision():
    log = (
        "[x] INFO - Found the resume of job 1001 started with resume token rsm-1 by an earlier try: polling 1001\n"
        "[x] INFO - Reattaching to job 1001 (PENDING:), submitted at try 1 with token rsm-0\n"
    )
    [(short, line)] = decisions(log)
    assert short.startswith("Found the resume of job")
    assert short.endswith("+ Reattaching to job")
    assert "polling 1001" in line
    assert "Reattaching to job 1001" in line


def test_a_repair_and_other_decisions_are_counted_one_each():
    log = (
        "[x] INFO - Resuming job 1001 (TERMINATED:FAILED), resume token rsm-1: job 1001 ended without success\n"
        "[x] INFO - Repairing run 1001 (repair 9001, on top of repair None): only the tasks that did not succeed\n"
        "[x] INFO - Resumed job 1001: polling 1001 (resume token rsm-1)\n"
    )
    assert [short for short, _ in decisions(log)] == ["Resuming job"]
    twice = log + "[x] INFO - Reattaching to job 1001 (RUNNING:), submitted at try 1 with token rsm-0\n"
    assert [short for short, _ in decisions(twice)] == ["Resuming job", "Reattaching to job"]
    # A found resume followed by a second repair is two decisions, not one.
    found = "[x] INFO - Found the resume of job 1001 started with resume token rsm-1 by an earlier try: polling 1001\n"
    assert len(decisions(found + log)) == 2


def test_the_table_shows_the_repairs():
    out = _outcome(ACCEPTED)
    out.repairs, out.repairs_expected, out.jobs_started, out.jobs_expected = 1, 1, 1, 1
    other = _outcome(Scenario("toy", "mid_poll"))
    rendered = table([out, other]).splitlines()
    assert rendered[0].split()[:4] == ["scenario", "state/tries", "jobs", "repairs"]
    assert rendered[1].split()[2:4] == ["1/1", "1/1"]
    assert rendered[2].split()[3] == "-"
