"""
State that outlived its task instance's success: what ``airflow resumable state sweep`` deletes.

The listener finishes a task instance's state in the process where the success is recorded. A
person's "mark success" on Airflow 2.11 is recorded by the webserver, which calls no listener, and a
worker can die between the success and the listener: then the state stays, and only ``max_tries``
tells a later clear that it belongs to an ended life. Deleting the state of a task instance that is
in state ``success`` is safe once Airflow can no longer fail its try: its next try can only be a
person's clear, which starts a new life that must not resume from it. Airflow 2 can fail a try after
its success (a late zombie callback), so there a finished state is kept for ``[resumable]
finished_state_retention`` (see ``state/finished_variables.py``) and the sweep leaves it until then.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.providers.resumable.state.codec import FINISHED_KEY
from airflow.providers.resumable.state.finished_variables import kept_until_finished

if TYPE_CHECKING:
    from datetime import datetime, timedelta

    from sqlalchemy.orm import Session

    from airflow.providers.resumable.inventory.state import TaskState

_Instance = tuple[str, str, str, int]


def _instance(state: TaskState) -> _Instance:
    scope = state.scope
    return (scope.dag_id, scope.run_id, scope.task_id, scope.map_index)


def succeeded(session: Session, states: list[TaskState]) -> list[TaskState]:
    """Those of ``states`` whose task instance is in state ``success`` now (read from the metadata DB)."""
    if not states:
        return []
    from airflow.models.taskinstance import TaskInstance
    from sqlalchemy import select

    wanted = {_instance(state) for state in states}
    query = select(TaskInstance.dag_id, TaskInstance.run_id, TaskInstance.task_id, TaskInstance.map_index).where(
        TaskInstance.state == "success",
        TaskInstance.dag_id.in_({instance[0] for instance in wanted}),
        TaskInstance.run_id.in_({instance[1] for instance in wanted}),
    )
    done = {(row[0], row[1], row[2], row[3]) for row in session.execute(query)} & wanted
    return [state for state in states if _instance(state) in done]


def why_stale(state: TaskState) -> str:
    """One line on what the state of a succeeded task instance is: finished by the listener, or left behind."""
    if FINISHED_KEY in state.values:
        return "finished after its success (a clear already starts afresh); deleting it frees the space"
    return "left behind after its success (marked success by hand, or the worker died before the listener ran)"


def kept_until(state: TaskState, now: datetime, keep: timedelta | None) -> datetime | None:
    """Until when a finished state is still kept for a late failure of its try; None: it may go now."""
    marker = state.values.get(FINISHED_KEY)
    finished_at = marker.get("finished_at") if isinstance(marker, dict) else None
    until = kept_until_finished(finished_at if isinstance(finished_at, str) else None, keep)
    return until if until is not None and until > now else None
