"""How the deployment driver reads a dead component's log (tests/deploy/upstream.py)."""

from __future__ import annotations

from tests.deploy.upstream import known_bug, last_error, scenarios_named

# The shape of the 3.4.0b2 scheduler's death (issue 19), shortened.
SCHEDULER_DEATH = """\
[info] Loaded executor: LocalExecutor
Traceback (most recent call last):
  File "airflow/jobs/scheduler_job_runner.py", line 3788, in _purge_task_instances_without_heartbeats
    successor = ti.prepare_db_for_next_try(session=session)
  File "airflow/models/taskinstance.py", line 1735, in prepare_db_for_next_try
    session.execute(insert(TaskInstance.__table__).values(values))
sqlite3.IntegrityError: UNIQUE constraint failed: task_instance.dag_id

The above exception was the direct cause of the following exception:

Traceback (most recent call last):
  File "airflow/jobs/scheduler_job_runner.py", line 3788, in _purge_task_instances_without_heartbeats
    successor = ti.prepare_db_for_next_try(session=session)
sqlalchemy.exc.IntegrityError: (sqlite3.IntegrityError) UNIQUE constraint failed: task_instance.dag_id, \
task_instance.task_id, task_instance.run_id, task_instance.region_id, task_instance.region_index, \
task_instance.working_set
[SQL: INSERT INTO task_instance (...) VALUES (...)]
[parameters: ('01a2...', 'work', 'deploy_toy_worker_lost', 'manual__2026-12-04', 2)]
"""


def test_the_last_line_of_the_last_traceback_is_the_error():
    assert last_error(SCHEDULER_DEATH).startswith(
        "sqlalchemy.exc.IntegrityError: (sqlite3.IntegrityError) UNIQUE constraint failed: task_instance.dag_id"
    )
    assert last_error("starting\nKilled\n\n") == "Killed"
    assert last_error("") == "(empty log)"


def test_a_known_bug_is_recognised_only_on_its_version_and_component():
    bug = known_bug("3.4.0b2", "scheduler", SCHEDULER_DEATH)
    assert bug is not None
    assert bug.describe("3.4.0b2").startswith("upstream bug of Airflow 3.4.0b2: the scheduler dies")
    assert known_bug("3.4.0", "scheduler", SCHEDULER_DEATH) is None, "judged again on the next build"
    assert known_bug("3.4.0b2", "triggerer", SCHEDULER_DEATH) is None
    assert known_bug("3.4.0b2", "scheduler", "Traceback (most recent call last):\nKeyError: 'x'\n") is None


def test_the_scenarios_a_traceback_names():
    assert scenarios_named(SCHEDULER_DEATH) == {"deploy_toy_worker_lost"}
    assert scenarios_named("nothing here") == set()
