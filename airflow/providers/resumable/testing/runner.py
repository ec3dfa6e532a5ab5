"""
Run a DAG inside Airflow's own task runner from a test, and clear and re-run it as a person would.

``run_dag`` is ``dag.test()`` plus what Airflow 3 needs first (the DAG serialized to the metadata DB,
even when it is defined inside the test) and what a test needs afterwards (each task instance's
state, try number and XComs). ``clear_and_rerun`` clears a finished run with Airflow's own
``clear_task_instances``, as the UI's "Clear" does (it moves ``max_tries``), then drives that same
run again with the loop ``dag.test()`` uses, so the run's stored state survives as in production.
``airflow dags test`` cannot do that: it starts a new run, or deletes the earlier one of that date.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow.providers.resumable.compat import airflow as compat

# Kept importable from here, where tests and conftest files have imported it from.
from airflow.providers.resumable.compat.airflow import cache_in_process_api_server

if TYPE_CHECKING:
    from collections.abc import Collection

log = logging.getLogger(__name__)

#: ``start_date`` of the DAGs :func:`dag_for_test` builds.
START_DATE = datetime(2026, 1, 1, tzinfo=UTC)
#: Scheduling loops :func:`clear_and_rerun` runs before giving up on a run that does not finish.
MAX_LOOPS = 100


class RunDidNotFinishError(RuntimeError):
    """A cleared run was still running after :data:`MAX_LOOPS` scheduling loops."""


@dataclass(frozen=True)
class TaskInstanceResult:
    """One task instance of a finished run, as the metadata DB recorded it."""

    task_id: str
    map_index: int
    state: str | None
    try_number: int
    max_tries: int


@dataclass(frozen=True)
class RunResult:
    """
    A DAG run after :func:`run_dag` or :func:`clear_and_rerun`: its state and its task instances.

    ``return_values`` is a snapshot of each task instance's ``return_value`` XCom taken when the run
    finished, keyed by ``(task_id, map_index)``; :meth:`xcom` reads other keys from the DB.
    """

    dag_id: str
    run_id: str
    state: str
    task_instances: tuple[TaskInstanceResult, ...]
    return_values: dict[tuple[str, int], Any] = field(default_factory=dict)

    def ti(self, task_id: str, map_index: int | None = None) -> TaskInstanceResult:
        """The task instance of ``task_id`` (and ``map_index``, required for a mapped task)."""
        found = [t for t in self.task_instances if t.task_id == task_id]
        if map_index is not None:
            found = [t for t in found if t.map_index == map_index]
        if len(found) == 1:
            return found[0]
        known = sorted({(t.task_id, t.map_index) for t in self.task_instances})
        if not found:
            raise KeyError(
                f"run {self.run_id} has no task instance task_id={task_id!r} map_index={map_index!r}; it has {known}"
            )
        raise KeyError(f"task {task_id!r} is mapped ({len(found)} task instances): pass map_index, one of {known}")

    def xcom(self, task_id: str, key: str = "return_value", map_index: int | None = None) -> Any:
        """The XCom ``key`` the task instance pushed (``return_value``: as the run left it)."""
        ti = self.ti(task_id, map_index)
        if key == "return_value":
            return self.return_values.get((ti.task_id, ti.map_index))
        from airflow.utils.session import create_session

        with create_session() as session:
            return _xcom(session, self.dag_id, self.run_id, ti.task_id, ti.map_index, key)


def dag_for_test(name: str, **kwargs: Any) -> Any:
    """
    A DAG for a test: id made of ``name`` (anything not ``[A-Za-z0-9_]`` becomes ``_``), no schedule,
    ``start_date`` :data:`START_DATE`, no catchup; ``kwargs`` go to ``DAG``. Name each test's DAG
    differently (the test's node id is a good name): runs, XComs and state are kept per DAG.
    """
    kwargs.setdefault("schedule", None)
    kwargs.setdefault("start_date", START_DATE)
    kwargs.setdefault("catchup", False)
    # The end of a long name (the test's own name) is what tells tests apart: keep it.
    return compat.dag_class()(dag_id=re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_")[-200:], **kwargs)


def serialize_dag(dag: Any) -> None:
    """
    Write ``dag`` to the metadata DB as the DAG processor would (Airflow 3; nothing to do on 2).

    Airflow 3 runs only serialized DAGs, and ``dag.test()`` serializes only the DAGs it finds in a
    bundle's folder: a DAG defined inside a test is in none, and fails with "the dag is not serialized".
    It is written under the ``dags-folder`` bundle, which every default configuration has.
    """
    compat.serialize_dag(dag)


def run_dag(dag: Any, *, logical_date: datetime | None = None) -> RunResult:
    """
    Run ``dag`` once in Airflow's task runner (``dag.test()``): tries, retries and deferrals as a
    worker runs them, against the metadata DB of the current ``AIRFLOW_HOME``.

    With ``logical_date``, an earlier run of that date is deleted and created again under the same
    ``run_id``, as a person deleting a run and triggering it again does (a new run, not a retry).
    """
    cache_in_process_api_server()
    serialize_dag(dag)
    dr = dag.test() if logical_date is None else compat.dag_test_at(dag, logical_date)
    return collect(dag.dag_id, dr.run_id)


def collect(dag_id: str, run_id: str) -> RunResult:
    """The :class:`RunResult` of an existing run, read from the metadata DB."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        dr = session.scalars(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)).one_or_none()
        if dr is None:
            raise LookupError(f"no DAG run dag_id={dag_id!r} run_id={run_id!r} in the metadata DB")
        tis = session.scalars(
            select(TaskInstance).where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)
        ).all()
        results = tuple(
            sorted(
                (
                    TaskInstanceResult(
                        task_id=ti.task_id,
                        map_index=ti.map_index,
                        state=str(ti.state) if ti.state else None,
                        try_number=ti.try_number,
                        max_tries=ti.max_tries,
                    )
                    for ti in tis
                ),
                key=lambda t: (t.task_id, t.map_index),
            )
        )
        values = {(t.task_id, t.map_index): _xcom(session, dag_id, run_id, t.task_id, t.map_index) for t in results}
        return RunResult(
            dag_id=dag_id, run_id=run_id, state=str(dr.state), task_instances=results, return_values=values
        )


def _xcom(session: Any, dag_id: str, run_id: str, task_id: str, map_index: int, key: str = "return_value") -> Any:
    return compat.read_xcom(session, dag_id, run_id, task_id, map_index, key)


def clear_and_rerun(
    dag: Any,
    previous: RunResult | str,
    *,
    task_ids: Collection[str] | None = None,
    dag_changed: bool = False,
    keep_task_state: bool | None = None,
) -> RunResult:
    """
    Clear the task instances of a finished run as a person would, then run that same run again.

    :param dag: the DAG the run belongs to (the object the test built, or one loaded from its file).
    :param previous: the run, as :func:`run_dag` returned it, or its ``run_id``.
    :param task_ids: clear only these tasks (default: every task of the run).
    :param dag_changed: ``dag`` is a new version of the DAG (say, with other ``retries``) and the
        clear runs on it, as the UI's "run on the latest version" does on Airflow 3 (Airflow 2 always
        does).
    :param keep_task_state: keep the native ``task_state_store`` of the cleared task instances (True)
        or discard it (False). Default: what the installed Airflow's UI Clear does: discard on 3.4,
        keep on 3.3. Variables are never touched, as by Airflow.
    """
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    run_id = previous if isinstance(previous, str) else previous.run_id
    cache_in_process_api_server()
    compat.map_task_instance_models()

    with create_session() as session:
        query = select(TaskInstance).where(TaskInstance.dag_id == dag.dag_id, TaskInstance.run_id == run_id)
        if task_ids is not None:
            query = query.where(TaskInstance.task_id.in_(list(task_ids)))
        tis = list(session.scalars(query).all())
        if not tis:
            raise LookupError(
                f"nothing to clear: no task instances of dag_id={dag.dag_id!r} run_id={run_id!r}"
                + (f" with task_ids={sorted(task_ids)!r}" if task_ids is not None else "")
            )
        compat.clear_task_instances(tis, session, dag, dag_changed=dag_changed)
        discard = not keep_task_state if keep_task_state is not None else compat.clear_discards_task_state()
        if discard:
            for ti in tis:
                compat.discard_task_state(ti, session)
        session.commit()
        dr = session.scalars(select(DagRun).where(DagRun.dag_id == dag.dag_id, DagRun.run_id == run_id)).one()
        _drive(dag, dr, session)
    return collect(dag.dag_id, run_id)


def _drive(dag: Any, dr: Any, session: Any) -> None:
    """The scheduling loop of ``dag.test()``, applied to an existing run."""
    from airflow.utils.state import DagRunState, TaskInstanceState

    run_task = compat.inline_task_runner()
    dr.dag = compat.dag_for_run(dag)
    dr.state = DagRunState.RUNNING
    session.commit()
    for _ in range(MAX_LOOPS):
        session.expire_all()
        if dr.state != DagRunState.RUNNING:
            return
        schedulable, _callback = dr.update_state(session=session)
        for ti in schedulable:
            compat.number_next_try(ti)
            ti.state = TaskInstanceState.SCHEDULED
        session.commit()
        if not schedulable:
            time.sleep(0.2)  # waiting out a retry_delay
        for ti in schedulable:
            task = dag.task_dict[ti.task_id]
            try:
                run_task(ti, task, session)
            except Exception:
                # As dag.test() does: a failed try is the run's business, recorded on the task instance.
                log.exception("Task failed; ti=%s", ti)
        session.commit()
    raise RunDidNotFinishError(
        f"run {dr.run_id} of {dag.dag_id} was still {dr.state} after {MAX_LOOPS} scheduling loops "
        "(a task waiting on a sensor, a long retry_delay, or an upstream that never finishes?)"
    )


def resumable_variables(dag_id: str, *, include_finished: bool = False) -> list[str]:
    """
    Names of the Variables the provider's Variable backend holds for ``dag_id`` (by their stored scope).

    On Airflow 2 a succeeded task instance's Variable is kept for a while, marked finished (see
    ``state/finished_variables.py``); nothing resumes from it, so it is listed only with
    ``include_finished=True``.
    """
    from airflow.models import Variable
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from airflow.providers.resumable.inventory import state as inventory
    from airflow.providers.resumable.state.finished_variables import kept_until

    with create_session() as session:
        names = sorted(s.location for s in inventory.read_variables(session, inventory.Filters(dag_id=dag_id)))
        if include_finished or not names:
            return names
        rows = session.execute(select(Variable.key, Variable.description).where(Variable.key.in_(names)))
        kept = {key for key, text in rows if kept_until(text) is not None}
    return [name for name in names if name not in kept]
