"""
Run one benchmark task under Airflow 3.3+'s real task supervisor, as an executor runs it.

``dag.test()`` runs a task in the benchmark's own process, talking to an in-process "supervisor"
through ``InProcessSupervisorComms`` (a shared deque and a process-wide swap of the comms object).
That is not what a worker runs, and it is not thread-safe, so a checkpoint writer on a thread of
its own falls back to synchronous writes there: a benchmark in ``dag.test()`` can never show what
writes off the walk are worth. :func:`run_task` runs the task the way an executor does instead:

* the DAG is a file in the ``dags-folder`` bundle (written by :func:`run_task` into
  ``[core] dags_folder``), serialized to the metadata DB as the DAG processor would;
* a DAG run is created and its task instance queued, as the scheduler would;
* ``airflow.sdk.execution_time.supervisor.supervise_task`` (what ``LocalExecutor``, Celery and the
  other executors call) forks the task process, which loads the DAG from the bundle and talks to
  the supervisor over the real comms channel (a socket, ``CommsDecoder``, one lock per request);
  the supervisor turns each request into a call to the Execution API;
* the result (timed inside the task, as in ``dag.test()``) comes back through XCom.

Why this route rather than the deployment suite's (``tests/deploy/``: api-server, scheduler,
dag-processor and triggerer with ``LocalExecutor``): the part under test, the task process and its
comms with the supervisor, is the same in both; a deployment adds half a minute of start-up, a
scheduling delay per task, and four busy processes competing with the walk for the machine's two
cores, which is noise in a timing. The one thing replaced is the HTTP hop between the supervisor and
the api-server: the supervisor's Execution API client uses Airflow's own in-process transport (the
API app of ``dag.test()``, with its routes, models and ORM, on a thread of this process). A write in
a deployment costs that hop more; the relative numbers (overhead against no checkpoints, time the
walk is blocked) are what the benchmark compares.

Everything runs in this process and the task process it forks, which exits with the task: nothing
is left running, and each DAG file is deleted once its task has run. The supervisor notices a task
process's exit only at its next wake-up (``[workers] min_heartbeat_interval``, 5 s by default), an
idle tail after every task that ``scripts/bench.sh`` shortens by setting it to 2 s.

Airflow 3.3+ only (``make bench`` runs on 3.3); imports are inside the functions so that the module
imports on every leg.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

#: The DAG file :func:`run_task` writes: it builds the DAG with the same builder and arguments.
_DAG_FILE = """\
# An airflow DAG file written by benchmarks/supervised.py for one benchmark run (DagBag's safe mode
# skips a file that does not name both "airflow" and "dag").
from benchmarks.supervised import build_dag

dag = build_dag({builder!r}, {dag_id!r}, {arguments!r})
"""


@dataclass(frozen=True)
class SupervisedResult:
    """The task's final state as the Execution API recorded it, its exit code and its return value."""

    dag_id: str
    state: str | None
    exit_code: int
    value: Any


def build_dag(builder: str, dag_id: str, arguments: str) -> Any:
    """The DAG ``builder`` (``"module:function"``) makes with ``dag_id`` and the JSON ``arguments``."""
    import importlib

    module, _, name = builder.partition(":")
    return getattr(importlib.import_module(module), name)(dag_id, **json.loads(arguments))


def run_task(builder: str, name: str, *, xcom_key: str = "return_value", **arguments: Any) -> SupervisedResult:
    """
    Run the one task of the DAG ``builder(dag_id, **arguments)`` under the real supervisor.

    ``builder`` is ``"module:function"``, importable from the repository root; ``arguments`` must be
    JSON. The DAG must have exactly one task. Returns once the task process has exited, with the
    task's XCom ``xcom_key``.
    """
    from airflow.configuration import conf

    from airflow.providers.resumable.testing import collect

    dag_id = re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_")
    dags = Path(conf.get("core", "dags_folder"))
    dags.mkdir(parents=True, exist_ok=True)
    path = dags / f"{dag_id}.py"
    path.write_text(_DAG_FILE.format(builder=builder, dag_id=dag_id, arguments=json.dumps(arguments)))
    try:
        _serialize(path, dags)
        run_id = _queue(dag_id)
        exit_code = _supervise(dag_id, run_id, path.relative_to(dags))
    finally:
        # dag.test() parses the whole dags folder on every call: a folder of finished benchmark DAGs
        # would slow down every dag.test() benchmark that runs after these.
        path.unlink()
    result = collect(dag_id, run_id)
    (task,) = result.task_instances
    return SupervisedResult(
        dag_id=dag_id, state=task.state, exit_code=exit_code, value=result.xcom(task.task_id, key=xcom_key)
    )


def _serialize(path: Path, dags: Path) -> None:
    """Parse the file and write its DAG to the metadata DB under ``dags-folder``, as the DAG processor does."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    DagBundlesManager().sync_bundles_to_db()
    bag = DagBag(dag_folder=str(path), bundle_path=dags, bundle_name="dags-folder")
    if bag.import_errors:
        raise RuntimeError(f"the benchmark DAG file {path} does not import: {bag.import_errors}")
    sync_bag_to_db(bag, "dags-folder", None)


def _queue(dag_id: str) -> str:
    """A new manual DAG run of ``dag_id`` whose task instance is queued for its first try."""
    from airflow.models.dagbag import DBDagBag
    from airflow.models.dagrun import DagRun, get_or_create_dagrun
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from airflow.utils.types import DagRunTriggeredByType, DagRunType

    from airflow.providers.resumable.compat import airflow as compat

    now = datetime.now(UTC)
    with create_session() as session:
        dag = DBDagBag().get_latest_version_of_dag(dag_id, session=session)
        if dag is None:
            raise LookupError(f"the benchmark DAG {dag_id!r} is not in the metadata DB after serializing it")
        dr = get_or_create_dagrun(
            dag=dag,
            run_id=DagRun.generate_run_id(run_type=DagRunType.MANUAL, logical_date=None, run_after=now),
            logical_date=None,
            data_interval=None,
            run_after=now,
            conf=None,
            triggered_by=DagRunTriggeredByType.TEST,
            triggering_user_name="bench",
            start_date=now,
            session=session,
        )
        (ti,) = dr.get_task_instances(session=session)
        compat.number_next_try(ti)
        ti.state = TaskInstanceState.QUEUED
        session.commit()
        return str(dr.run_id)


def _supervise(dag_id: str, run_id: str, rel_path: Path) -> int:
    """``supervise_task`` on the queued task instance, with the Execution API in this process."""
    from airflow.executors import workloads
    from airflow.executors.workloads import BundleInfo
    from airflow.models.taskinstance import TaskInstance
    from airflow.sdk.api.client import Client
    from airflow.sdk.execution_time.supervisor import in_process_api_server, supervise_task
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        ti = session.scalars(
            select(TaskInstance).where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)
        ).one()
        workload = workloads.ExecuteTask.make(ti, dag_rel_path=rel_path, bundle_info=BundleInfo(name="dags-folder"))
    client = Client(base_url="http://in-process.invalid./", token="", transport=in_process_api_server().transport)
    return supervise_task(
        ti=workload.ti,
        bundle_info=workload.bundle_info,
        dag_rel_path=workload.dag_rel_path,
        token=workload.token,
        log_path=workload.log_path,
        client=client,
    )


# ---- a toy builder, for a quick check: python -m benchmarks.supervised ------------------------------


def _hello_dag(dag_id: str, *, answer: int) -> Any:
    from airflow.providers.resumable.compat.version_compat import BaseOperator
    from airflow.providers.resumable.testing import dag_for_test

    class Hello(BaseOperator):
        def execute(self, context: Any) -> dict[str, Any]:
            from airflow.sdk.execution_time import task_runner

            return {"answer": answer, "comms": type(task_runner.SUPERVISOR_COMMS).__name__, "pid": os.getpid()}

    dag = dag_for_test(dag_id)
    Hello(task_id="hello", dag=dag)
    return dag


if __name__ == "__main__":
    print(run_task("benchmarks.supervised:_hello_dag", "bench_supervised_hello", answer=42))
