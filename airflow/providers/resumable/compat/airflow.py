"""
What differs in behaviour between the Airflow lines this provider supports (2.11, 3.0-3.2, 3.3, 3.4).

One function per difference; each branch says which versions it covers, so dropping a line is a
deletion here and nowhere else. Imports of Airflow internals stay inside the functions: this module
is imported by the CLI, the listener and every task, and each needs only some of them.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow.providers.resumable.compat.version_compat import (
    AIRFLOW_V_3_0_PLUS,
    AIRFLOW_V_3_3_PLUS,
    AIRFLOW_V_3_4_PLUS,
)

if TYPE_CHECKING:
    from collections.abc import Callable


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else None


# ---- the identity of a try ---------------------------------------------------------------------------


def try_stamp(ti: Any, fallback: Callable[[], str]) -> str | None:
    """
    A stamp unique to one try of ``ti``, kept across a deferral.

    3.0+: the task instance id (a new one per try). 2.11: the try's start date, which ``airflow tasks
    run`` sets and ``dag.test()`` does not; then ``fallback()``, one stamp per try per process.
    """
    if AIRFLOW_V_3_0_PLUS:
        ti_id = getattr(ti, "id", None)
        return str(ti_id) if ti_id is not None else None
    return _iso(getattr(ti, "start_date", None)) or fallback()


def dag_run_key(dag_run: Any) -> str | None:
    """
    What tells one DAG run row from another created later under the same run_id.

    3.0+: ``run_after`` (the Task SDK's run carries no row id). 2.11: the row id.
    """
    if AIRFLOW_V_3_0_PLUS:
        return _iso(getattr(dag_run, "run_after", None))
    row_id = getattr(dag_run, "id", None)
    return f"dag_run.id={row_id}" if isinstance(row_id, int) and not isinstance(row_id, bool) else None


def loop_region(region_id: Any, region_index: Any, map_index: int) -> tuple[str | None, int | None]:
    """
    ``(region_id, region_index)`` when they tell a Task Loop iteration apart, else ``(None, None)``.

    3.4+: every task instance has a region. A task outside any has the nil UUID; a mapped task's
    expansion has a region of its own whose ``region_index`` is just the map index, which names
    nothing the map index does not; a ``TaskGroup.loop()`` iteration has the loop's region and the
    iteration as ``region_index``, while its map index stays -1. Only the last is a region here, so a
    plain or mapped task keeps the names it has on 3.3. Before 3.4: no regions.
    """
    if region_id is None or str(region_id) == "00000000-0000-0000-0000-000000000000":
        return None, None
    if not isinstance(region_index, int) or isinstance(region_index, bool) or region_index == map_index:
        return None, None
    return str(region_id), region_index


def region_of(ti: Any) -> tuple[str | None, int | None]:
    """The Task Loop region of the task instance ``ti`` (see :func:`loop_region`)."""
    map_index = getattr(ti, "map_index", -1)
    return loop_region(
        getattr(ti, "region_id", None), getattr(ti, "region_index", None), -1 if map_index is None else map_index
    )


def mapped_kwargs(context: Any) -> Any:
    """
    The arguments ``expand()`` gave the running map index (a mapping), or None for a task that is not mapped.

    Resolved again from the DAG's mapped operator, as the task runner did to build the task: the
    expanded arguments only, not ``partial()``'s, which are the same for every index. Raises what
    resolving raises; the caller decides what an unknown input means.
    3.0+: ``MappedOperator._expand_mapped_kwargs(context)``. 2.11: it also takes a session and
    ``include_xcom``.
    """
    ti = context.get("ti") or context.get("task_instance")
    map_index = getattr(ti, "map_index", -1)
    if not isinstance(map_index, int) or map_index < 0:
        return None
    dag = context.get("dag") or getattr(getattr(ti, "task", None), "dag", None)
    mapped: Any = dag.task_dict.get(ti.task_id) if dag is not None else None
    # Only a mapped operator (and the TaskFlow one) has it; 2.11's has no ``is_mapped`` to ask.
    if not callable(getattr(mapped, "_expand_mapped_kwargs", None)):
        return None
    if AIRFLOW_V_3_0_PLUS:
        return mapped._expand_mapped_kwargs(context)[0]
    from airflow.utils.session import create_session

    with create_session() as session:
        return mapped._expand_mapped_kwargs(context, session, include_xcom=True)[0]


def clear_discards_task_state() -> bool:
    """
    Whether a person's clear may discard the task's ``task_state_store``.

    3.4+: the UI's Clear (REST ``clearTaskInstances``) discards it unless ``keep_task_state=True``.
    3.3 keeps it. Before 3.3 there is no native store.
    """
    return AIRFLOW_V_3_4_PLUS


def task_state_retention() -> Any:
    """
    How long an untouched ``task_state_store`` row lives (a ``timedelta``), or None when rows never expire.

    3.3+: ``[state_store] default_retention_days`` (30 by default; 0 turns expiry off), counted from a
    row's last update. Before 3.3 there is no native store.
    """
    if not AIRFLOW_V_3_3_PLUS:
        return None
    from datetime import timedelta

    from airflow.configuration import conf

    try:
        days = conf.getint("state_store", "default_retention_days", fallback=30)
    except Exception:  # an unparsable setting is Airflow's to report
        return None
    return timedelta(days=days) if days > 0 else None


# ---- secrets, metrics -------------------------------------------------------------------------------


def secrets_redactor() -> Callable[[str], Any] | None:
    """
    ``redact`` of the secrets masker that masks this task's log, or None when none can be imported.

    3.0+: the Task SDK's masker (the core one in ``airflow._shared`` is another instance, which the
    task process does not feed). 2.11: the one masker in ``airflow.utils.log``.
    """
    try:
        if AIRFLOW_V_3_0_PLUS:
            from airflow.sdk._shared.secrets_masker import redact
        else:
            from airflow.utils.log.secrets_masker import redact  # type: ignore[no-redef]
    except ImportError:  # pragma: no cover - every supported Airflow has one of them
        return None
    return redact


def stats() -> Any:
    """Airflow's ``Stats``: the Task SDK's on 3.x, ``airflow.stats`` on 2.11."""
    try:
        from airflow.sdk._shared.observability.metrics.stats import Stats
    except ImportError:
        from airflow.stats import Stats  # type: ignore[no-redef]
    return Stats


def asset_type() -> Any:
    """3.0+: ``airflow.sdk.Asset``; None on 2.11, which has Datasets and no asset state store."""
    try:
        from airflow.sdk import Asset
    except ImportError:
        return None
    return Asset


# ---- Variables --------------------------------------------------------------------------------------


class SdkVariables:
    """
    3.0+: Variables through the supervisor to the Execution API, as the Task SDK does.

    Not through ``airflow.sdk.Variable``: its ``set``/``delete`` log and swallow a failed write, and
    its ``get`` asks secrets backends and a cache first. A state write that silently did not happen
    is the one failure the Variable backend must never have.
    """

    @staticmethod
    def _send(msg: Any, *, missing_ok: bool = False) -> Any:
        """Send ``msg``; an error answer raises, except "not found" when ``missing_ok`` (then None)."""
        from airflow.sdk.exceptions import AirflowRuntimeError
        from airflow.sdk.execution_time.comms import ErrorResponse
        from airflow.sdk.execution_time.task_runner import SUPERVISOR_COMMS

        try:
            response = SUPERVISOR_COMMS.send(msg)
        except AirflowRuntimeError as err:
            # 3.0-3.1 raise error answers, later versions return them.
            response = err.error
        if isinstance(response, ErrorResponse):
            kind = getattr(response.error, "value", response.error)
            if missing_ok and kind == "VARIABLE_NOT_FOUND":
                return None
            raise RuntimeError(f"Execution API answered {kind}: {response.detail}")
        return response

    def get(self, key: str) -> str | None:
        from airflow.sdk.execution_time.comms import GetVariable

        value = getattr(self._send(GetVariable(key=key), missing_ok=True), "value", None)
        return None if value is None else str(value)

    def set(self, key: str, value: str, description: str) -> None:
        from airflow.sdk.execution_time.comms import PutVariable

        self._send(PutVariable(key=key, value=value, description=description))

    def delete(self, key: str) -> None:
        from airflow.sdk.execution_time.comms import DeleteVariable

        self._send(DeleteVariable(key=key))


class OrmVariables:
    """2.11: the ORM Variable, written straight to the metadata DB."""

    def get(self, key: str) -> str | None:
        from airflow.models import Variable

        value = Variable.get(key, default_var=None)
        return None if value is None else str(value)

    def set(self, key: str, value: str, description: str) -> None:
        from airflow.models import Variable

        Variable.set(key, value, description=description)

    def delete(self, key: str) -> None:
        from airflow.models import Variable

        Variable.delete(key)


def variable_access() -> SdkVariables | OrmVariables:
    """How a task reads and writes Variables: 3.0+ through the supervisor, 2.11 through the ORM."""
    return SdkVariables() if AIRFLOW_V_3_0_PLUS else OrmVariables()


def late_failure_after_success() -> bool:
    """
    Whether Airflow can fail a try after recording its success, and run a retry in the same life.

    2.11: yes. A zombie callback for an earlier try that was killed can arrive after a later try
    succeeded; it sets the task instance to up_for_retry with ``max_tries`` unchanged (seen in the
    deployment suite). 3.0+: no. The scheduler purges only task instances that are still running,
    and the API server refuses a heartbeat or state change from a try that is no longer running.
    """
    return not AIRFLOW_V_3_0_PLUS


def finished_variables(session: Any, key_prefix: str, description_tag: str) -> list[tuple[str, str]]:
    """2.11 (where Variables are kept after success): ``(key, description)`` of the Variables so tagged."""
    from airflow.models import Variable
    from sqlalchemy import select

    query = select(Variable.key, Variable.description).where(
        Variable.key.startswith(key_prefix, autoescape=True),
        Variable.description.contains(description_tag, autoescape=True),
    )
    return [(row[0], row[1]) for row in session.execute(query)]


def delete_variable_if_unchanged(session: Any, key: str, description: str) -> bool:
    """
    Delete Variable ``key`` only if its description is still ``description``; whether it was deleted.

    One statement, so a Variable written again in between (a person cleared the task and its new
    life wrote state, which replaces the description) is left alone.
    """
    from airflow.models import Variable
    from sqlalchemy import delete

    result = session.execute(delete(Variable).where(Variable.key == key, Variable.description == description))
    return bool(result.rowcount)


# ---- operators and the testing helper ---------------------------------------------------------------


def determine_kwargs(func: Callable[..., Any], args: list[Any], context: Any) -> Any:
    """
    The keyword arguments of ``context`` that ``func`` asks for, as Airflow passes them to a callable.

    3.0+: the Task SDK's ``airflow.sdk.bases.decorator.determine_kwargs``. 2.11: the same helper in
    ``airflow.utils.operator_helpers``.
    """
    try:
        from airflow.sdk.bases.decorator import determine_kwargs as determine
    except ImportError:  # Airflow 2
        from airflow.utils.operator_helpers import determine_kwargs as determine
    return determine(func, args, context)


def object_storage_path(uri: str) -> Any:
    """``ObjectStoragePath(uri)``: 3.0+ from ``airflow.sdk``, 2.11 from ``airflow.io.path``."""
    if AIRFLOW_V_3_0_PLUS:
        from airflow.sdk import ObjectStoragePath
    else:
        from airflow.io.path import ObjectStoragePath  # type: ignore[no-redef]
    return ObjectStoragePath(uri)


def get_current_context() -> Any:
    """
    The context of the task instance running in this process; raises outside one.

    3.0+: ``airflow.sdk.get_current_context``. 2.11: ``airflow.operators.python.get_current_context``.
    """
    if AIRFLOW_V_3_0_PLUS:
        from airflow.sdk import get_current_context as current
    else:
        from airflow.operators.python import get_current_context as current  # type: ignore[no-redef]
    return current()


def dag_class() -> type[Any]:
    """The ``DAG`` class a DAG file uses: 3.0+ ``airflow.sdk.DAG``, 2.11 ``airflow.models.dag.DAG``."""
    if AIRFLOW_V_3_0_PLUS:
        from airflow.sdk import DAG
    else:
        from airflow.models.dag import DAG  # type: ignore[no-redef]
    return DAG


def dag_bag_of(dag_folder: str) -> Any:
    """
    A ``DagBag`` of the DAGs in ``dag_folder`` only, imported outside safe mode.

    3.3+: ``airflow.dag_processing.dagbag.DagBag``, which never collects Airflow's example DAGs.
    3.0-3.2: the same class, told not to (``include_examples=False``: it does when ``[core]
    load_examples`` is on). 2.11: ``airflow.models.dagbag.DagBag``, likewise told not to.
    """
    from airflow.providers.resumable.compat.version_compat import AIRFLOW_V_3_3_PLUS

    if AIRFLOW_V_3_0_PLUS:
        from airflow.dag_processing.dagbag import DagBag
    else:
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]
    extra: dict[str, Any] = {} if AIRFLOW_V_3_3_PLUS else {"include_examples": False}
    return DagBag(dag_folder=dag_folder, safe_mode=False, **extra)


def serialize_dag(dag: Any) -> None:
    """
    Write ``dag`` to the metadata DB as the DAG processor would, so ``dag.test()`` can run it.

    3.0+: runs only serialized DAGs, and ``dag.test()`` serializes only the DAGs it finds in a bundle's
    folder, so a DAG defined inside a test is written here, under the ``dags-folder`` bundle that every
    default configuration has. 2.11: nothing to do, ``dag.test()`` runs the DAG object.
    """
    if not AIRFLOW_V_3_0_PLUS:
        return
    import os

    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    DagBundlesManager().sync_bundles_to_db()
    bag = DagBag(dag_folder=os.devnull, collect_dags=False)
    bag.bag_dag(dag)
    # A DAG changed within [core] min_serialized_dag_update_interval (30 s) would not be written again.
    name = "AIRFLOW__CORE__MIN_SERIALIZED_DAG_UPDATE_INTERVAL"
    saved = os.environ.get(name)
    os.environ[name] = "0"
    try:
        sync_bag_to_db(bag, "dags-folder", None)
    finally:
        if saved is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved


def cache_in_process_api_server() -> None:
    """
    Build the in-process Execution API app of ``dag.test()`` once per process instead of once per try.

    3.0-3.2: ``dag.test()`` creates a new app for every try it runs (about 2 s each): cache it here
    (the app holds no state of a run). 3.3+: the factory is cached already (it has ``cache_info``).
    2.11: there is no such app.
    """
    import functools

    try:
        import airflow.sdk.execution_time.supervisor as supervisor
    except ImportError:  # Airflow 2
        return
    factory = getattr(supervisor, "in_process_api_server", None)
    if factory is not None and not hasattr(factory, "cache_info"):
        supervisor.in_process_api_server = functools.lru_cache(maxsize=1)(factory)


def dag_test_at(dag: Any, logical_date: datetime) -> Any:
    """
    ``dag.test()`` for the run of ``logical_date``, under the same ``run_id`` each time.

    3.0+: a manual run is named after its ``run_after``, so that is pinned to ``logical_date`` too.
    2.11: ``execution_date``.
    """
    if AIRFLOW_V_3_0_PLUS:
        return dag.test(logical_date=logical_date, run_after=logical_date)
    return dag.test(execution_date=logical_date)


def read_xcom(session: Any, dag_id: str, run_id: str, task_id: str, map_index: int, key: str) -> Any:
    """
    The value of one XCom in the metadata DB, or None.

    3.0+: the ``XComModel`` row, whose JSON column SQLAlchemy hands back deserialised. 2.11:
    ``XCom.get_one``.
    """
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
        return None if row is None else row.value
    from airflow.models.xcom import XCom

    return XCom.get_one(key=key, dag_id=dag_id, run_id=run_id, task_id=task_id, map_index=map_index, session=session)


def map_task_instance_models() -> None:
    """
    Make the ORM models a session needs to flush task instances outside the API server/webserver.

    2.11: ``task_instance_note.user_id`` points at the FAB user table, whose model must be mapped
    first (when the FAB provider is installed). 3.0+: nothing to do.
    """
    if AIRFLOW_V_3_0_PLUS:
        return
    import contextlib

    with contextlib.suppress(ImportError):
        import airflow.providers.fab.auth_manager.models  # noqa: F401


def clear_task_instances(tis: list[Any], session: Any, dag: Any, *, dag_changed: bool) -> None:
    """
    Airflow's ``clear_task_instances`` as the UI's "Clear" calls it (the caller runs the DAG run).

    3.0+: with ``dag_changed`` the new DAG version is serialized first and the clear runs on it
    (``run_on_latest_version``). 2.11: always on ``dag``, which must be passed, or the clear looks the
    DAG up among the serialized ones and leaves ``max_tries`` as it was.
    """
    from airflow.models.taskinstance import clear_task_instances as clear
    from airflow.utils.state import DagRunState

    if AIRFLOW_V_3_0_PLUS:
        if dag_changed:
            serialize_dag(dag)
        clear(tis, session, dag_run_state=DagRunState.RUNNING, run_on_latest_version=dag_changed)
    else:
        # QUEUED, the default of the UI's Clear and of `airflow tasks clear` on 2.11: only then does a
        # finished DAG run's clear_number move, which tells a person's clear from a late extra try.
        clear(tis, session, dag=dag, dag_run_state=DagRunState.QUEUED)  # type: ignore[call-arg]


def dag_for_run(dag: Any) -> Any:
    """
    The DAG object a DAG run driven outside the scheduler carries as ``dag_run.dag``.

    3.0+: the DAG after a serialization round trip, as the scheduler holds it. 2.11: ``dag`` itself.
    """
    if AIRFLOW_V_3_0_PLUS:
        from airflow.serialization.serialized_objects import DagSerialization

        return DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))
    return dag


def number_next_try(ti: Any) -> None:
    """
    Give ``ti``, about to be scheduled, the number of the try it runs, as the scheduler does.

    3.4+: every try is a row of its own, and a clear or a failure with retries left creates the next
    one already numbered (``prepare_db_for_next_try``); only a task instance that never ran (0) becomes
    try 1. 2.11-3.3: scheduling moves the number on by one, except for a task instance back from a
    reschedule (a sensor's poke), which goes on with its try.
    """
    if AIRFLOW_V_3_4_PLUS:
        if ti.try_number == 0:
            ti.try_number = 1
        return
    from airflow.utils.state import TaskInstanceState

    if ti.state != TaskInstanceState.UP_FOR_RESCHEDULE:
        ti.try_number += 1


def inline_task_runner() -> Callable[[Any, Any, Any], None]:
    """
    ``run(ti, task, session)``: one try of ``ti`` in this process as ``dag.test()`` runs it, a deferral
    included (its trigger runs inline).

    3.0+: the Task SDK's ``_run_task(run_triggerer=True)``. 2.11: ``airflow.models.dag._run_task``,
    with ``ti.task`` set first and the session passed.
    """
    if AIRFLOW_V_3_0_PLUS:
        from airflow.sdk.definitions.dag import _run_task

        def run(ti: Any, task: Any, session: Any) -> None:
            _run_task(ti=ti, task=task, run_triggerer=True)

        return run
    from airflow.models.dag import _run_task as run_task_2  # type: ignore[attr-defined]

    def run_2(ti: Any, task: Any, session: Any) -> None:
        ti.task = task
        run_task_2(ti=ti, inline_trigger=True, session=session)

    return run_2


# ---- what a person's clear does to task state -------------------------------------------------------


def discard_task_state(ti: Any, session: Any) -> None:
    """
    Delete the native ``task_state_store`` rows of the ORM task instance ``ti``.

    What the UI's Clear (REST ``clearTaskInstances`` with ``keep_task_state=False``) does on 3.4. 3.3
    has the same table and backend (keyed by map index); 3.4 keys it by region. Before 3.3: no native
    store, nothing to discard.
    """
    if not AIRFLOW_V_3_3_PLUS:
        return
    from airflow._shared.state import TaskScope
    from airflow.state.metastore import MetastoreBackend

    region_id = getattr(ti, "region_id", None)
    if region_id is not None:  # 3.4
        scope = TaskScope(ti.dag_id, ti.run_id, ti.task_id, region_id=region_id, region_index=ti.region_index)  # type: ignore[call-arg]
    else:
        scope = TaskScope(ti.dag_id, ti.run_id, ti.task_id, ti.map_index)
    MetastoreBackend().clear(scope, session=session)


# ---- TaskFlow -----------------------------------------------------------------------------------------


def python_decorated_operator() -> type[Any]:
    """
    The operator class behind ``@task``, which ``@task.resumable`` subclasses.

    3.0+: ``_PythonDecoratedOperator`` of the standard provider (``airflow.providers.standard``).
    2.11: ``airflow.decorators.python._PythonDecoratedOperator``.
    """
    if AIRFLOW_V_3_0_PLUS:
        from airflow.providers.standard.decorators.python import _PythonDecoratedOperator
    else:
        from airflow.decorators.python import _PythonDecoratedOperator  # type: ignore[no-redef]
    return _PythonDecoratedOperator


def task_decorator_factory() -> Callable[..., Any]:
    """
    Airflow's factory of task decorators (``task_decorator_factory``).

    3.0+: ``airflow.sdk.bases.decorator``. 2.11: ``airflow.decorators.base``.
    """
    if AIRFLOW_V_3_0_PLUS:
        from airflow.sdk.bases.decorator import task_decorator_factory as factory
    else:
        from airflow.decorators.base import task_decorator_factory as factory  # type: ignore[no-redef]
    return factory


def runs_async_callables() -> bool:
    """
    Whether ``@task`` runs an ``async def`` function in an event loop itself.

    3.2+: yes (the standard provider's ``PythonOperator.aexecute``, ``BaseAsyncOperator``). 2.11 and
    3.0-3.1: no, it would return the coroutine, so ``@task.resumable`` runs it with ``asyncio.run``.
    """
    from airflow.providers.resumable.compat.version_compat import AIRFLOW_V_3_2_PLUS

    return AIRFLOW_V_3_2_PLUS


def async_state_accessors(accessor: Any) -> bool:
    """
    Whether the native ``task_state_store`` accessor has awaitable ``aget`` / ``aset`` / ``adelete``.

    3.4+: yes, where the accessor offers them and the running supervisor comms can send from a
    coroutine (``dag.test()``'s in-process comms have no ``asend`` on 3.4.0b2). 3.3: blocking calls
    only (run off the event loop with ``asyncio.to_thread``). Before 3.3: no native store.
    """
    if not AIRFLOW_V_3_4_PLUS or not all(callable(getattr(accessor, name, None)) for name in ("aget", "aset")):
        return False
    try:
        from airflow.sdk.execution_time import task_runner
    except ImportError:  # pragma: no cover - every 3.4 has it
        return False
    return callable(getattr(getattr(task_runner, "SUPERVISOR_COMMS", None), "asend", None))


def checkpoint_writes_off_thread() -> str | None:
    """
    None when a checkpoint may be written from a second thread of the task process; else why not.

    Airflow 2: each thread gets its own ORM session (``settings.Session`` is a ``scoped_session``).
    Airflow 3.x (3.2, 3.3, 3.4.0b2 read): the real supervisor's ``CommsDecoder`` sends each request
    and reads its answer under one ``_thread_lock``, so two threads cannot take each other's
    answers. ``dag.test()``'s ``InProcessSupervisorComms`` has no lock: it answers from one shared
    deque and sets the process-wide ``SUPERVISOR_COMMS`` to None while it handles a request, so a
    second thread could read another request's answer or find no comms at all.
    """
    if not AIRFLOW_V_3_0_PLUS:
        return None
    try:
        from airflow.sdk.execution_time import task_runner
    except ImportError:  # pragma: no cover - every Airflow 3 has it
        return "this Airflow has no Task SDK task runner"
    comms = getattr(task_runner, "SUPERVISOR_COMMS", None)
    if comms is None:
        return "no supervisor comms in this process (not inside a task)"
    if type(comms).__name__ == "InProcessSupervisorComms":
        return (
            "dag.test()'s in-process supervisor comms answer two threads from one shared queue (the real "
            "supervisor's comms lock each request)"
        )
    if not hasattr(getattr(comms, "_thread_lock", None), "acquire"):
        return f"the supervisor comms ({type(comms).__name__}) take no lock per request"
    return None
