"""The deployment driver's reading of Airflow 2.11's scheduler log and task logs (tests/deploy/run.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.deploy.run import Suite

if TYPE_CHECKING:
    from pathlib import Path

RUN = "scheduled__2026-01-01T00:00:00+00:00"


def _zombie(dag_id: str, map_index: int | None) -> str:
    index = "" if map_index is None else f" 'Map Index': {map_index},"
    return (
        "[2026-11-22T10:17:05.178+0000] {scheduler_job_runner.py:2154} ERROR - Detected zombie job: "
        f"{{'msg': \"{{'DAG Id': '{dag_id}', 'Task Id': 'work', 'Run Id': '{RUN}',{index} 'Hostname': 'vm'}}\"}}"
    )


def _suite(home: Path) -> Suite:
    # Only the log readers are under test: no services, no deployment.
    suite = Suite.__new__(Suite)
    suite.home = home
    return suite


def test_zombie_reports_are_counted_per_task_instance(tmp_path):
    lines = [
        _zombie("deploy_toy_mapped", 1),
        _zombie("deploy_toy_mapped", 1),
        _zombie("deploy_toy_mapped", 2),
        _zombie("deploy_toy_accepted", None),
        _zombie("deploy_toy_accepted_other", None),
        "[2026-11-22T10:17:06.000+0000] {scheduler_job_runner.py:776} INFO - Received executor event",
    ]
    (tmp_path / "scheduler.log").write_text("\n".join(lines) + "\n")
    suite = _suite(tmp_path)
    assert suite.zombie_detections("deploy_toy_mapped", 1) == 2
    assert suite.zombie_detections("deploy_toy_mapped", 2) == 1
    assert suite.zombie_detections("deploy_toy_mapped", -1) == 0, "a mapped report is not the unmapped instance"
    assert suite.zombie_detections("deploy_toy_accepted", -1) == 1
    assert suite.zombie_detections("deploy_toy_accepted", 0) == 0


def test_no_scheduler_log_means_no_zombie_reports(tmp_path):
    assert _suite(tmp_path).zombie_detections("deploy_toy_mapped", 1) == 0


def test_the_first_try_after_the_kill_that_ran_is_the_one_with_a_log(tmp_path):
    folder = tmp_path / "logs" / "dag_id=deploy_toy_mapped" / f"run_id={RUN}" / "task_id=work"
    for index, attempt in ((1, 1), (1, 3), (0, 2)):
        path = folder / f"map_index={index}" / f"attempt={attempt}.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("Reattaching to job 7\n")
    suite = _suite(tmp_path)
    assert suite.first_attempt_after("deploy_toy_mapped", 1, 1) == 3, "try 2 never ran (no log): try 3 recovered"
    assert suite.first_attempt_after("deploy_toy_mapped", 0, 1) == 2
    assert suite.first_attempt_after("deploy_toy_mapped", 2, 1) == 2, "nothing ran: the next try is named"


class _Jobs:
    """The job services' ledgers, as Services.jobs returns them."""

    def __init__(self, ledger):
        self.ledger = ledger

    def jobs(self, family):
        return self.ledger


def _attempt(home: Path, dag_id: str, attempt: int, text: str) -> None:
    path = home / "logs" / f"dag_id={dag_id}" / f"run_id={RUN}" / "task_id=work" / f"attempt={attempt}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _judge(tmp_path, scenario, jobs, logs):
    from tests.deploy.run import Outcome

    suite = _suite(tmp_path)
    suite.services = _Jobs({f"{scenario.dag_id}/-1": jobs})
    for attempt, text in logs.items():
        _attempt(tmp_path, scenario.dag_id, attempt, text)
    out = Outcome("3.4", scenario.dag_id, scenario.family, scenario.moment, scenario.variant, 1)
    out.problems.extend(suite.judge_decision(scenario, out, 2))
    suite.evaluate_jobs(scenario, out, [-1], scenario.fault[2])
    return out


LEAVING = "Task killed: leaving job 7 running so a retry can reattach (cancel_on_kill=False)\n"


def test_a_clear_after_a_mark_is_judged_on_one_job_and_a_reattach(tmp_path):
    from tests.deploy.scenarios import Scenario

    scenario = Scenario("databricks", "clear_after_mark")
    job = {"id": 7, "token": "rsm-a", "state": "SUCCESS"}
    ok = _judge(tmp_path / "ok", scenario, [job], {1: LEAVING, 2: "Reattaching to job 7 (RUNNING:)\n"})
    assert ok.problems == []
    assert (ok.jobs_started, ok.jobs_expected, ok.duplicates) == (1, 1, 0)

    second = {"id": 8, "token": "rsm-b", "state": "SUCCESS"}
    log = "Submitting job (submission 1, token rsm-b): no job recorded for this task instance\n"
    lost = _judge(tmp_path / "lost", scenario, [{**job, "state": "RUNNING"}, second], {1: LEAVING, 2: log})
    assert lost.duplicates == 1
    assert any("2 jobs started, expected 1" in p for p in lost.problems)
    assert any("expected a line matching 'Reattaching to job'" in p for p in lost.problems)
    assert any("expected every job succeeded" in p for p in lost.problems)


def test_a_clear_after_the_job_failed_is_judged_on_a_failed_job_then_a_new_one(tmp_path):
    from tests.deploy.scenarios import Scenario

    scenario = Scenario("toy", "clear_after_job_failed")
    jobs = [
        {"id": "job-1", "token": "rsm-a", "state": "FAILED"},
        {"id": "job-2", "token": "rsm-b", "state": "SUCCEEDED"},
    ]
    log = "Submitting job (submission 2, token rsm-b): job 'job-1' ended without success\n"
    assert _judge(tmp_path / "ok", scenario, jobs, {2: log}).problems == []

    same_token = [jobs[0], {**jobs[1], "token": "rsm-a"}]
    assert any("share a token" in p for p in _judge(tmp_path / "token", scenario, same_token, {2: log}).problems)
    reattached = _judge(tmp_path / "one", scenario, jobs[:1], {2: "Reattaching to job job-1 (FAILED)\n"})
    assert reattached.missing == 1
    assert any("expected a line matching" in p for p in reattached.problems)
    both_ok = [{**jobs[0], "state": "SUCCEEDED"}, jobs[1]]
    assert any(
        "the first 1 failed, the rest succeeded" in p
        for p in _judge(tmp_path / "states", scenario, both_ok, {2: log}).problems
    )


def test_a_mark_nobody_clears_keeps_its_verdict(tmp_path):
    from tests.deploy.scenarios import Scenario

    scenario = Scenario("emr", "mark_failed")
    running = {"id": "r1", "token": "rsm-a", "state": "RUNNING"}
    out = _judge(tmp_path / "ok", scenario, [running], {1: LEAVING})
    assert [p for p in out.problems if "decision lines" not in p] == []
    # Airflow 3.4 lets the marked try poll on for 60 s: a job left running may end on its own.
    ended = _judge(tmp_path / "done", scenario, [{**running, "state": "SUCCESS"}], {1: LEAVING})
    assert [p for p in ended.problems if "decision lines" not in p] == []
    cancelled = _judge(tmp_path / "cancelled", scenario, [{**running, "state": "CANCELLED"}], {1: LEAVING})
    assert any("after the mark the job is" in p for p in cancelled.problems)
    finished_state = _judge(
        tmp_path / "finished", scenario, [running], {1: LEAVING + "after success: marked finished\n"}
    )
    assert any("state was finished as if it had succeeded" in p for p in finished_state.problems)


def test_a_taskflow_job_found_by_its_token_is_one_recovery_with_one_job(tmp_path):
    """What try 2 of taskflow_job_accepted logs since the job runner says a found-and-reattached job in one line."""
    from tests.deploy.scenarios import TASKFLOW_JOB, Scenario

    scenario = Scenario(TASKFLOW_JOB, "accepted")
    job = {"id": "job-1", "token": "rsm-a", "state": "SUCCEEDED"}
    one = "Found job job-1 submitted with token rsm-a by an earlier try; reattaching to it (RUNNING)\n"
    assert _judge(tmp_path / "one", scenario, [job], {2: one}).problems == []
    two = "Found job job-1 submitted with token rsm-a by an earlier try\nReattaching to job job-1 (RUNNING)\n"
    assert _judge(tmp_path / "two", scenario, [job], {2: two}).problems == [
        "try 2 logged 2 decision lines, expected 1: ['Found job job-1 submitted with token', 'Reattaching to job']"
    ]


def test_a_deadline_counts_the_time_a_loaded_machine_gives_the_scenarios():
    from tests.deploy.run import LoadScaledDeadline

    now = [0.0]
    load = [1.0]
    deadline = LoadScaledDeadline(100, clock=lambda: now[0], load=lambda: load[0], cores=2)
    now[0] = 60
    assert not deadline.expired()  # a quiet machine: wall time counts in full
    load[0] = 8.0  # four times the cores: a second counts as a quarter
    now[0] = 140
    assert not deadline.expired()
    assert deadline.counted == 80
    assert deadline.stretched() is True
    now[0] = 220
    assert deadline.expired()
    assert "220s of wall time" in deadline.describe()


def test_a_deadline_gives_up_at_three_times_its_length_whatever_the_load():
    from tests.deploy.run import LoadScaledDeadline

    now = [0.0]
    deadline = LoadScaledDeadline(100, clock=lambda: now[0], load=lambda: 1000.0, cores=2)
    now[0] = 299
    assert not deadline.expired()
    now[0] = 300
    assert deadline.expired()


class _Rows:
    def __init__(self, rows):
        self._rows = rows

    def rows(self, query):
        assert "heartbeat timeout" in query
        return self._rows


def test_tries_failed_for_a_missing_heartbeat_are_read_from_the_audit_log(tmp_path):
    suite = _suite(tmp_path)
    suite.leg = "3.3"
    suite.deployment = _Rows([("deploy_a", -1, 2), ("deploy_a", 0, 3), ("deploy_b", -1, 1), ("deploy_a", -1, None)])
    assert suite.heartbeat_timeouts("deploy_a", -1) == {2}
    assert suite.heartbeat_timeouts("deploy_a", 0) == {3}
    suite.leg = "3.4"  # mapped instances are keyed by region there: the dag's rows count
    assert suite.heartbeat_timeouts("deploy_a", -1) == {2, 3}


def test_a_try_pushed_back_into_its_retry_period_did_not_run(tmp_path):
    _attempt(tmp_path, "deploy_toy_worker_lost", 1, "Submitted job job-5\n")
    _attempt(tmp_path, "deploy_toy_worker_lost", 2, "INFO - Task is not able to be run\n")
    _attempt(tmp_path, "deploy_toy_worker_lost", 3, "Reattaching to job job-5 (RUNNING)\n")
    suite = _suite(tmp_path)
    assert not suite.ran("deploy_toy_worker_lost", -1, 2)
    assert suite.ran("deploy_toy_worker_lost", -1, 3)
    assert suite.first_attempt_after("deploy_toy_worker_lost", -1, 1) == 3


def test_tries_after_a_success_of_the_same_life_are_read_from_their_own_log_line(tmp_path):
    _attempt(tmp_path, "deploy_emr_worker_lost", 2, "Reattaching to job j\nMarking task as SUCCESS.\n")
    _attempt(
        tmp_path,
        "deploy_emr_worker_lost",
        3,
        "This task instance succeeded at try 2 and Airflow started try 3 without a clear since (a late ...)\n",
    )
    assert _suite(tmp_path).after_success("deploy_emr_worker_lost", -1, 3) == [3]
    assert _suite(tmp_path).after_success("deploy_emr_worker_lost", -1, 2) == []


def test_a_success_failed_late_after_its_run_finished_is_the_environment_on_2_11_only(tmp_path):
    from tests.deploy.run import Outcome
    from tests.deploy.scenarios import by_dag_id

    scenario = by_dag_id()["deploy_toy_before_submit"]
    _attempt(tmp_path, scenario.dag_id, 2, "Submitted job job-15\nMarking task as SUCCESS. dag_id=...\n")
    (tmp_path / "scheduler.log").write_text(
        _zombie(scenario.dag_id, None) + "\n" + _zombie(scenario.dag_id, None) + "\n"
    )
    suite = _suite(tmp_path)
    suite.airflow3 = False
    out = Outcome("2.11", scenario.dag_id, scenario.family, scenario.moment, scenario.variant, scenario.instances)
    out.state, out.tries = "up_for_retry", 2
    assert suite.succeeded_then_failed_late(scenario, out, "success")
    assert not suite.succeeded_then_failed_late(scenario, out, "failed"), "the run did not succeed"
    suite.airflow3 = True
    assert not suite.succeeded_then_failed_late(scenario, out, "success"), "Airflow 3 fails no try after success"
    suite.airflow3 = False
    out.tries = 1
    assert not suite.succeeded_then_failed_late(scenario, out, "success"), "its last try did not succeed"


def _slow_store_warning() -> str:
    """What the default policy itself logs once background writes take 600 ms."""
    from airflow.providers.resumable.mixins.checkpoint_policies import DEFAULT_CHECKPOINT_POLICY

    walk = DEFAULT_CHECKPOINT_POLICY.start()
    walk.writes_in_background()
    said = [walk.record_write(0.6) for _ in range(3)]
    assert said[-1] is not None
    return said[-1]


def _redo(tmp_path, log: str, redone: int, walked: int):
    from tests.deploy.run import Outcome
    from tests.deploy.scenarios import Scenario

    scenario = Scenario("batches", "mid_walk")
    suite = _suite(tmp_path)
    suite.notes = []
    _attempt(tmp_path, scenario.dag_id, 1, log)
    out = Outcome("3.3", scenario.dag_id, scenario.family, scenario.moment, scenario.variant, 1)
    out.redo_pages = redone
    suite.judge_slow_store_redo(scenario, out, 1, walked, 50)
    return out, suite.notes


def test_a_redo_past_the_bound_fails_unless_the_killed_try_said_its_store_was_too_slow(tmp_path):
    quiet, notes = _redo(tmp_path / "quiet", "Starting at batch 0: no checkpoint stored\n", 71, 229)
    assert quiet.problems == [
        "the default policy redid 71 pages or batches after the kill, more than the 50 that 1 s of work holds"
    ]
    assert notes == []

    loaded, notes = _redo(tmp_path / "loaded", f"Starting at batch 0\n{_slow_store_warning()}\n", 71, 229)
    assert loaded.problems == []
    assert notes == [
        "deploy_batches_mid_walk: the default policy redid 71 pages or batches after the kill, more than the 50 "
        "that 1 s of work holds, and try 1 said why: checkpoint writes took 600 ms on the loaded store"
    ]


def test_a_slow_store_does_not_excuse_a_retry_that_used_no_checkpoint(tmp_path):
    out, notes = _redo(tmp_path, f"{_slow_store_warning()}\n", 229, 229)
    assert out.problems == ["the retry redid all 229 pages or batches of try 1: no checkpoint was used"]
    assert notes == []
