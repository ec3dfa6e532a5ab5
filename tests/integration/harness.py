"""
Run DAGs inside Airflow's own task runner from a test, on every supported Airflow.

``run_dag`` is ``dag.test()`` plus what a test needs afterwards (task instance states, XComs).
``clear_and_rerun`` does what a person's "Clear" does to a finished run (Airflow's own
``clear_task_instances``, which moves ``max_tries``) and then drives that same run again with the
loop ``dag.test()`` uses, so the state store of the run survives, as it does in production.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from airflow.providers.resumable.version_compat import AIRFLOW_V_3_0_PLUS

START = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class TIResult:
    state: str | None
    try_number: int
    max_tries: int


@dataclass
class RunResult:
    dag_id: str
    run_id: str
    state: str
    tis: dict[str, TIResult]
    xcoms: dict[str, Any]

    def ti(self, task_id: str) -> TIResult:
        return self.tis[task_id]

    def xcom(self, task_id: str, key: str = "return_value") -> Any:
        if key == "return_value":
            return self.xcoms.get(task_id)
        from airflow.utils.session import create_session

        with create_session() as session:
            return _xcom(session, self.dag_id, self.run_id, task_id, key)


def make_dag(request, **kwargs):
    """A DAG named after the test (module included), so every test has its own runs and state."""
    module = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    return dag_named(f"it_{module}_{request.node.name}", **kwargs)


def dag_named(name: str, **kwargs):
    if AIRFLOW_V_3_0_PLUS:
        from airflow.sdk import DAG
    else:
        from airflow.models.dag import DAG

    dag_id = re.sub(r"[^A-Za-z0-9_]+", "_", name)[:200]
    return DAG(dag_id=dag_id, schedule=None, start_date=START, catchup=False, **kwargs)


def _register(dag) -> None:
    """Serialize the in-memory DAG to the metadata DB; Airflow 3 refuses to run an unserialized DAG."""
    if not AIRFLOW_V_3_0_PLUS:
        return
    import os

    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    DagBundlesManager().sync_bundles_to_db()
    bag = DagBag(dag_folder="/nonexistent", collect_dags=False)
    bag.bag_dag(dag)
    # A DAG edited within [core] min_serialized_dag_update_interval (30 s) would not be written again.
    saved = os.environ.get("AIRFLOW__CORE__MIN_SERIALIZED_DAG_UPDATE_INTERVAL")
    os.environ["AIRFLOW__CORE__MIN_SERIALIZED_DAG_UPDATE_INTERVAL"] = "0"
    try:
        sync_bag_to_db(bag, "dags-folder", None)
    finally:
        if saved is None:
            del os.environ["AIRFLOW__CORE__MIN_SERIALIZED_DAG_UPDATE_INTERVAL"]
        else:
            os.environ["AIRFLOW__CORE__MIN_SERIALIZED_DAG_UPDATE_INTERVAL"] = saved


def _collect(dag_id: str, run_id: str) -> RunResult:
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        dr = session.scalars(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)).one()
        tis = session.scalars(
            select(TaskInstance).where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)
        ).all()
        results = {
            ti.task_id: TIResult(
                state=str(ti.state) if ti.state else None, try_number=ti.try_number, max_tries=ti.max_tries
            )
            for ti in tis
        }
        xcoms = {ti.task_id: _xcom(session, dag_id, run_id, ti.task_id) for ti in tis}
        return RunResult(dag_id=dag_id, run_id=run_id, state=str(dr.state), tis=results, xcoms=xcoms)


def _xcom(session, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
    if AIRFLOW_V_3_0_PLUS:
        from airflow.models.xcom import XComModel
        from sqlalchemy import select

        row = session.scalars(
            select(XComModel).where(
                XComModel.dag_id == dag_id,
                XComModel.run_id == run_id,
                XComModel.task_id == task_id,
                XComModel.key == key,
            )
        ).first()
        # The column is JSON: SQLAlchemy hands back the deserialised value.
        return None if row is None else row.value
    from airflow.models.xcom import XCom

    return XCom.get_one(key=key, dag_id=dag_id, run_id=run_id, task_id=task_id, session=session)


def run_dag(dag, logical_date: datetime | None = None) -> RunResult:
    """
    Run ``dag`` once. With ``logical_date``, ``dag.test()`` deletes an earlier run of that date and
    creates it again under the same run_id, as a person deleting a run and triggering it again does.
    """
    _register(dag)
    if logical_date is None:
        dr = dag.test()
    elif AIRFLOW_V_3_0_PLUS:
        # Airflow 3 names a manual run after its run_after: pin it, so the run_id repeats.
        dr = dag.test(logical_date=logical_date, run_after=logical_date)
    else:
        dr = dag.test(execution_date=logical_date)
    return _collect(dag.dag_id, dr.run_id)


def clear_and_rerun(dag, previous: RunResult, *, dag_changed: bool = False) -> RunResult:
    """
    Clear every task of ``previous``'s run as a person would, then run that same run again.

    ``dag_changed``: ``dag`` is a new version of the DAG (say, with other ``retries``) and the clear
    runs on it, as the UI's "run on the latest version" does on Airflow 3 (Airflow 2 always does).
    """
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance, clear_task_instances
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from sqlalchemy import select

    if not AIRFLOW_V_3_0_PLUS:
        # task_instance_note.user_id points at the FAB user table; its model must be mapped before
        # a session flushes task instances outside the webserver.
        import airflow.providers.fab.auth_manager.models  # noqa: F401

    with create_session() as session:
        tis = session.scalars(
            select(TaskInstance).where(TaskInstance.dag_id == previous.dag_id, TaskInstance.run_id == previous.run_id)
        ).all()
        if AIRFLOW_V_3_0_PLUS:
            if dag_changed:
                _register(dag)
            clear_task_instances(
                list(tis), session, dag_run_state=DagRunState.RUNNING, run_on_latest_version=dag_changed
            )
        else:
            # 2.x looks the DAG up among serialized DAGs unless given it; without it max_tries stays.
            clear_task_instances(list(tis), session, dag=dag, dag_run_state=DagRunState.RUNNING)
        session.commit()
        dr = session.scalars(
            select(DagRun).where(DagRun.dag_id == previous.dag_id, DagRun.run_id == previous.run_id)
        ).one()
        _drive(dag, dr, session)
    return _collect(previous.dag_id, previous.run_id)


def _drive(dag, dr, session) -> None:
    """The scheduling loop of ``dag.test()``, applied to an existing run."""
    from airflow.utils.state import DagRunState, TaskInstanceState

    if AIRFLOW_V_3_0_PLUS:
        from airflow.sdk.definitions.dag import _run_task
    else:
        from airflow.models.dag import _run_task  # type: ignore[attr-defined,no-redef]

    if AIRFLOW_V_3_0_PLUS:
        from airflow.serialization.serialized_objects import DagSerialization

        dr.dag = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))
    else:
        dr.dag = dag
    dr.state = DagRunState.RUNNING
    session.commit()
    for _ in range(100):
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
                    _run_task(ti=ti, inline_trigger=True, session=session)
            except Exception:
                pass
        session.commit()
    raise AssertionError(f"run {dr.run_id} did not finish in 100 scheduling loops")


def resumable_variables(dag_id: str) -> list[str]:
    """Names of the Variables the provider's Variable backend holds for ``dag_id`` (by their stored scope)."""
    from airflow.utils.session import create_session

    from airflow.providers.resumable.state import inventory

    with create_session() as session:
        return [s.location for s in inventory.read_variables(session, inventory.Filters(dag_id=dag_id))]
