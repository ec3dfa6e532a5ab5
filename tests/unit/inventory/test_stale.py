"""What the sweep says about the state of a succeeded task instance, and which task instances it picks."""

from __future__ import annotations

from airflow.providers.resumable.inventory import stale
from airflow.providers.resumable.inventory.state import TaskState
from airflow.providers.resumable.state.base import TaskScope

SCOPE = TaskScope(dag_id="no_such_dag_anywhere", run_id="r", task_id="t", map_index=-1)


def test_finished_state_and_left_behind_state_are_told_apart():
    finished = TaskState("task_state_store", SCOPE, "task_state", {"resumable_finished": {"try_number": 1}})
    left = TaskState("variable", SCOPE, "resumable.x", {"toy_job": {"kind": "resumable-job"}})
    assert stale.why_stale(finished).startswith("finished after its success")
    assert stale.why_stale(left).startswith("left behind after its success")


def test_nothing_to_check_reads_nothing():
    assert stale.succeeded(session=None, states=[]) == []  # type: ignore[arg-type]


def test_state_of_a_task_instance_the_db_does_not_know_is_not_picked():
    from airflow.utils.session import create_session

    with create_session() as session:
        assert stale.succeeded(session, [TaskState("variable", SCOPE, "resumable.x", {"k": 1})]) == []


def test_a_finished_state_is_kept_for_the_retention_and_may_go_after_it():
    from datetime import UTC, datetime, timedelta

    marker = {"resumable_finished": {"try_number": 2, "finished_at": "2026-12-05T03:00:00+00:00"}}
    finished = TaskState("variable", SCOPE, "resumable.x", marker)
    day = timedelta(days=1)
    assert stale.kept_until(finished, datetime(2026, 12, 5, 4, tzinfo=UTC), day) == datetime(2026, 12, 6, 3, tzinfo=UTC)
    assert stale.kept_until(finished, datetime(2026, 12, 6, 3, 1, tzinfo=UTC), day) is None, "its time is up"
    assert stale.kept_until(finished, datetime(2026, 12, 5, 4, tzinfo=UTC), None) is None, "Airflow 3 keeps nothing"
    left = TaskState("variable", SCOPE, "resumable.x", {"toy_job": {"kind": "resumable-job"}})
    assert stale.kept_until(left, datetime(2026, 12, 5, 4, tzinfo=UTC), day) is None, "no marker: left behind"
