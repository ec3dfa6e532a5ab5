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
import os
import re
import time
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow.providers.resumable.compat.version_compat import AIRFLOW_V_3_0_PLUS

if TYPE_CHECKING:
    from collections.abc import Collection, Iterator

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
    if AIRFLOW_V_3_0_PLUS:
        from airflow.sdk import DAG
    else:
        from airflow.models.dag import DAG  # type: ignore[no-redef]

    kwargs.setdefault("schedule", None)
    kwargs.setdefault("start_date", START_DATE)
    kwargs.setdefault("catchup", False)
    # The end of a long name (the test's own name) is what tells tests apart: keep it.
    return DAG(dag_id=re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_")[-200:], **kwargs)


@contextmanager
def _env(name: str, value: str) -> Iterator[None]:
    saved = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved


def serialize_dag(dag: Any) -> None:
    """
    Write ``dag`` to the metadata DB as the DAG processor would (Airflow 3; nothing to do on 2).

    Airflow 3 runs only serialized DAGs, and ``dag.test()`` serializes only the DAGs it finds in a
    bundle's folder: a DAG defined inside a test is in none, and fails with "the dag is not serialized".
    It is written under the ``dags-folder`` bundle, which every default configuration has.
    """
    if not AIRFLOW_V_3_0_PLUS:
        return
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    DagBundlesManager().sync_bundles_to_db()
    bag = DagBag(dag_folder=os.devnull, collect_dags=False)
    bag.bag_dag(dag)
    # A DAG changed within [core] min_serialized_dag_update_interval (30 s) would not be written again.
    with _env("AIRFLOW__CORE__MIN_SERIALIZED_DAG_UPDATE_INTERVAL", "0"):
        sync_bag_to_db(bag, "dags-folder", None)


def cache_in_process_api_server() -> None:
    """
    Build Airflow 3.0-3.2's in-process Execution API app once per process instead of once per try.

    ``dag.test()`` on those versions creates a new app for every try it runs (about 2 s each); 3.3
    caches it itself, and Airflow 2 has none. :func:`run_dag` and :func:`clear_and_rerun` call this,
    so a test's runs cost what they cost on 3.3; the app holds no state of a run.
    """
    import functools

    try:
        import airflow.sdk.execution_time.supervisor as supervisor
    except ImportError:  # Airflow 2
        return
    factory = getattr(supervisor, "in_process_api_server", None)
    if factory is not None and not hasattr(factory, "cache_info"):
        supervisor.in_process_api_server = functools.lru_cache(maxsize=1)(factory)


def run_dag(dag: Any, *, logical_date: datetime | None = None) -> RunResult:
    """
    Run ``dag`` once in Airflow's task runner (``dag.test()``): tries, retries and deferrals as a
    worker runs them, against the metadata DB of the current ``AIRFLOW_HOME``.

    With ``logical_date``, an earlier run of that date is deleted and created again under the same
    ``run_id``, as a person deleting a run and triggering it again does (a new run, not a retry).
    """
    cache_in_process_api_server()
    serialize_dag(dag)
    if logical_date is None:
        dr = dag.test()
    elif AIRFLOW_V_3_0_PLUS:
        # Airflow 3 names a manual run after its run_after: pin it, so the run_id repeats.
        dr = dag.test(logical_date=logical_date, run_after=logical_date)
    else:
        dr = dag.test(execution_date=logical_date)
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
    from sqlalchemy import select

    if AIRFLOW_V_3_0_PLUS:
        from airflow.models.xcom import XComModel

        row = session.scalars(
            select(XComModel).where(
                XComModel.dag_id == dag_id,
                XComModel.run_id == run_id,
                XComModel.task_id == task_id,
                XComModel.map_index == map_index,
                XComModel.key == key,
            )
        ).first()
        # The column is JSON: SQLAlchemy hands back the deserialised value.
        return None if row is None else row.value
    from airflow.models.xcom import XCom

    return XCom.get_one(key=key, dag_id=dag_id, run_id=run_id, task_id=task_id, map_index=map_index, session=session)


def clear_and_rerun(
    dag: Any,
    previous: RunResult | str,
    *,
    task_ids: Collection[str] | None = None,
    dag_changed: bool = False,
) -> RunResult:
    """
    Clear the task instances of a finished run as a person would, then run that same run again.

    :param dag: the DAG the run belongs to (the object the test built, or one loaded from its file).
    :param previous: the run, as :func:`run_dag` returned it, or its ``run_id``.
    :param task_ids: clear only these tasks (default: every task of the run).
    :param dag_changed: ``dag`` is a new version of the DAG (say, with other ``retries``) and the
        clear runs on it, as the UI's "run on the latest version" does on Airflow 3 (Airflow 2 always
        does).
    """
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance, clear_task_instances
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from sqlalchemy import select

    run_id = previous if isinstance(previous, str) else previous.run_id
    cache_in_process_api_server()
    if not AIRFLOW_V_3_0_PLUS:
        # task_instance_note.user_id points at the FAB user table: its model must be mapped before a
        # session flushes task instances outside the webserver.
        with suppress(ImportError):
            import airflow.providers.fab.auth_manager.models  # noqa: F401

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
        if AIRFLOW_V_3_0_PLUS:
            if dag_changed:
                serialize_dag(dag)
            clear_task_instances(tis, session, dag_run_state=DagRunState.RUNNING, run_on_latest_version=dag_changed)
        else:
            # 2.x looks the DAG up among serialized DAGs unless given it; without it max_tries stays.
            clear_task_instances(tis, session, dag=dag, dag_run_state=DagRunState.RUNNING)  # type: ignore[call-arg]
        session.commit()
        dr = session.scalars(select(DagRun).where(DagRun.dag_id == dag.dag_id, DagRun.run_id == run_id)).one()
        _drive(dag, dr, session)
    return collect(dag.dag_id, run_id)


def _drive(dag: Any, dr: Any, session: Any) -> None:
    """The scheduling loop of ``dag.test()``, applied to an existing run."""
    from airflow.utils.state import DagRunState, TaskInstanceState

    if AIRFLOW_V_3_0_PLUS:
        from airflow.sdk.definitions.dag import _run_task
        from airflow.serialization.serialized_objects import DagSerialization

        dr.dag = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))
    else:
        from airflow.models.dag import _run_task  # type: ignore[attr-defined,no-redef]

        dr.dag = dag
    dr.state = DagRunState.RUNNING
    session.commit()
    for _ in range(MAX_LOOPS):
        session.expire_all()
        if dr.state != DagRunState.RUNNING:
            return
        schedulable, _callback = dr.update_state(session=session)
        for ti in schedulable:
            if ti.state != TaskInstanceState.UP_FOR_RESCHEDULE:
                ti.try_number += 1
            ti.state = TaskInstanceState.SCHEDULED
        session.commit()
        if not schedulable:
            time.sleep(0.2)  # waiting out a retry_delay
        for ti in schedulable:
            task = dag.task_dict[ti.task_id]
            try:
                if AIRFLOW_V_3_0_PLUS:
                    _run_task(ti=ti, task=task, run_triggerer=True)
                else:
                    ti.task = task
                    _run_task(ti=ti, inline_trigger=True, session=session)  # type: ignore[call-arg]
            except Exception:
                # As dag.test() does: a failed try is the run's business, recorded on the task instance.
                log.exception("Task failed; ti=%s", ti)
        session.commit()
    raise RunDidNotFinishError(
        f"run {dr.run_id} of {dag.dag_id} was still {dr.state} after {MAX_LOOPS} scheduling loops "
        "(a task waiting on a sensor, a long retry_delay, or an upstream that never finishes?)"
    )


def resumable_variables(dag_id: str) -> list[str]:
    """Names of the Variables the provider's Variable backend holds for ``dag_id`` (by their stored scope)."""
    from airflow.utils.session import create_session

    from airflow.providers.resumable.inventory import state as inventory

    with create_session() as session:
        return sorted(s.location for s in inventory.read_variables(session, inventory.Filters(dag_id=dag_id)))
