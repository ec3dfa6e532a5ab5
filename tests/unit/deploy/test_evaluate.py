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
