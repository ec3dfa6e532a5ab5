"""
The deployment suite's fault plan (tests/deploy/services.py), without a deployment: it must kill the
registered process at the scenario's event and occurrence, once, and only the targeted instance.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.deploy.scenarios import MAPPED_VICTIM, Scenario, all_scenarios, by_dag_id
from tests.deploy.services import Faults


@pytest.fixture
def sleeper():
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def test_every_family_meets_every_moment_once():
    scenarios = all_scenarios()
    assert len(by_dag_id()) == len(scenarios), "dag_ids are unique"
    for family in ("toy", "databricks", "emr", "http", "batches"):
        moments = {s.moment for s in scenarios if s.family == family}
        assert {"clear_after_success", "mapped", "mark_failed", "worker_lost"} <= moments
        assert {"before_submit", "accepted", "mid_poll"} <= moments or {"before_first_page", "mid_walk"} <= moments
    assert {s.variant for s in scenarios if s.moment == "mid_walk"} == {"default", "interval5"}


def test_kill_fires_at_the_nth_event_of_the_victim_only(sleeper):
    marked: list[tuple[str, int]] = []
    faults = Faults(mark_failed=lambda s, i: marked.append((s.dag_id, i)))
    scenario = Scenario("toy", "mapped")  # killed at its 2nd poll, instance MAPPED_VICTIM only
    other, victim = sleeper(), sleeper()
    faults.register(f"{scenario.dag_id}/0", 1, other.pid, 1)
    faults.register(f"{scenario.dag_id}/{MAPPED_VICTIM}", 1, victim.pid, 1)

    for _ in range(3):
        faults.event(f"{scenario.dag_id}/0", "poll")
    faults.event(f"{scenario.dag_id}/{MAPPED_VICTIM}", "poll")
    assert victim.poll() is None, "the first poll is not the moment"
    faults.event(f"{scenario.dag_id}/{MAPPED_VICTIM}", "poll")

    assert victim.wait(timeout=10) == -9
    assert other.poll() is None
    kill = faults.kills[f"{scenario.dag_id}/{MAPPED_VICTIM}"]
    assert (kill.event, kill.occurrence, kill.try_number, kill.pids) == ("poll", 2, 1, [victim.pid])

    retry = sleeper()
    faults.register(f"{scenario.dag_id}/{MAPPED_VICTIM}", 2, retry.pid, 1)
    faults.event(f"{scenario.dag_id}/{MAPPED_VICTIM}", "poll")
    assert retry.poll() is None, "the fault fires once per scenario, never on the retry"
    assert marked == []
    assert faults.errors == []


def test_lost_worker_takes_the_parent_too_and_a_mark_kills_nothing(sleeper):
    marked: list[tuple[str, int]] = []
    faults = Faults(mark_failed=lambda s, i: marked.append((s.dag_id, i)))
    task, supervisor = sleeper(), sleeper()
    lost = Scenario("databricks", "worker_lost")
    faults.register(f"{lost.dag_id}/-1", 1, task.pid, supervisor.pid)
    faults.event(f"{lost.dag_id}/-1", "poll")
    faults.event(f"{lost.dag_id}/-1", "poll")
    assert task.wait(timeout=10) == -9
    assert supervisor.wait(timeout=10) == -9

    running = sleeper()
    mark = Scenario("emr", "mark_failed")
    faults.register(f"{mark.dag_id}/-1", 1, running.pid, 1)
    faults.event(f"{mark.dag_id}/-1", "poll")
    faults.event(f"{mark.dag_id}/-1", "poll")
    assert faults.kills[f"{mark.dag_id}/-1"].action == "mark_failed"
    assert marked == [(mark.dag_id, -1)], "marked before the event (the service's answer) returns"
    assert running.poll() is None, "marking failed is the deployment's job, not a kill"


def test_only_the_first_job_of_a_clear_after_job_failed_victim_fails():
    faults = Faults(mark_failed=lambda s, i: None)
    failing = Scenario("databricks", "clear_after_job_failed").dag_id
    assert faults.fails(f"{failing}/-1", 1)
    assert not faults.fails(f"{failing}/-1", 2), "the job the clear submits succeeds"
    assert not faults.fails(f"{failing}/0", 1), "only the victim"
    assert not faults.fails(f"{Scenario('databricks', 'clear_after_success').dag_id}/-1", 1)
    assert not faults.fails("not-a-scenario/-1", 1)


def test_a_marked_job_is_held_until_the_marked_try_is_gone_and_a_later_try_started(sleeper):
    marked: list[tuple[str, int]] = []
    faults = Faults(mark_failed=lambda s, i: marked.append((s.dag_id, i)))
    name = f"{Scenario('toy', 'clear_after_mark').dag_id}/-1"
    first = sleeper()
    faults.register(name, 1, first.pid, 1)
    assert faults.holding(name), "held from the start: the mark must find it running"
    faults.event(name, "poll")
    faults.event(name, "poll")
    assert marked == [(Scenario("toy", "clear_after_mark").dag_id, -1)]
    assert faults.holding(name), "marked, nobody cleared yet"

    second = sleeper()
    faults.register(name, 2, second.pid, 1)
    assert faults.holding(name), "the marked try still runs (3.4 lets it run killed_task_cleanup_time)"
    first.kill()
    first.wait()
    assert not faults.holding(name), "the marked try is gone and the cleared try started: let the job end"
    assert not faults.holding(f"{Scenario('toy', 'clear_after_success').dag_id}/-1"), "no mark, no hold"


def test_a_job_marked_for_good_is_held_only_until_the_marked_try_is_gone(sleeper):
    # Under load the mark can reach the worker after the job would have ended on its own: held, the
    # job is still running when the kill lands, so the scenario judges the kill, not the machine.
    faults = Faults(mark_failed=lambda s, i: None)
    name = f"{Scenario('toy', 'mark_failed').dag_id}/-1"
    marked = sleeper()
    faults.register(name, 1, marked.pid, 1)
    assert faults.holding(name)
    faults.event(name, "poll")
    faults.event(name, "poll")
    assert faults.holding(name), "marked; the try has not stopped yet"
    marked.kill()
    marked.wait()
    assert not faults.holding(name), "the marked try is gone and no later try comes: let the job go"
