"""
Test your resumable operators inside Airflow's own task runner, on every supported Airflow.

A test builds a DAG, runs it with
:func:`~airflow.providers.resumable.testing.runner.run_dag` (tries, retries and deferrals as a
worker runs them, against the metadata DB of the current ``AIRFLOW_HOME``), makes a method fail on
chosen tries with :func:`~airflow.providers.resumable.testing.faults.fail_on_tries`, and clears and
re-runs the finished run with :func:`~airflow.providers.resumable.testing.runner.clear_and_rerun`
as a person would.
:func:`~airflow.providers.resumable.testing.stores.in_memory_state_backend` routes the operators
to a store the test can read. Nothing here imports pytest; fixtures live in
``airflow.providers.resumable.testing.pytest_plugin``. See docs/testing.rst.
"""

from __future__ import annotations

from airflow.providers.resumable.testing.faults import (
    Fault,
    InjectedFault,
    SimulatedHardKill,
    current_try_number,
    fail_on_tries,
)
from airflow.providers.resumable.testing.runner import (
    RunDidNotFinishError,
    RunResult,
    TaskInstanceResult,
    clear_and_rerun,
    collect,
    dag_for_test,
    resumable_variables,
    run_dag,
    serialize_dag,
)
from airflow.providers.resumable.testing.stores import SharedMemoryStore, in_memory_state_backend

__all__ = [
    "Fault",
    "InjectedFault",
    "RunDidNotFinishError",
    "RunResult",
    "SharedMemoryStore",
    "SimulatedHardKill",
    "TaskInstanceResult",
    "clear_and_rerun",
    "collect",
    "current_try_number",
    "dag_for_test",
    "fail_on_tries",
    "in_memory_state_backend",
    "resumable_variables",
    "run_dag",
    "serialize_dag",
]
