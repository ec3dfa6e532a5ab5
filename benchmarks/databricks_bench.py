"""
What the durable path costs a Databricks task, and what it saves after a fault, inside ``dag.test()``.

Both operators talk to the fake Jobs API (``demo/fake_databricks.py``) on 127.0.0.1 through the
official ``DatabricksHook``, with ``polling_period_seconds=0`` so that polling does not hide the
overhead. The time is taken inside the task around ``execute``.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from datetime import timedelta
from typing import Any

from airflow.providers.databricks.operators.databricks import DatabricksSubmitRunOperator

from airflow.providers.resumable.operators.databricks import ResumableDatabricksSubmitRunOperator
from airflow.providers.resumable.testing import dag_for_test, run_dag
from demo.fake_databricks import FakeDatabricks, FakeDatabricksServer

_SECONDS: dict[str, float] = {}
CONN = "bench_databricks"
TASK = {
    "databricks_conn_id": CONN,
    "polling_period_seconds": 0,
    "databricks_retry_limit": 2,
    "databricks_retry_delay": 0,
    "notebook_task": {"notebook_path": "/Shared/bench"},
    "existing_cluster_id": "0101-bench",
}


def timed(cls: type) -> type:
    class Timed(cls):  # type: ignore[misc, valid-type]
        def execute(self, context: Any) -> Any:
            start = time.perf_counter()
            try:
                return super().execute(context)
            finally:
                _SECONDS[self.dag_id] = time.perf_counter() - start

    Timed.__name__ = f"Timed{cls.__name__}"
    return Timed


def _run(fake: FakeDatabricks, cls: type, label: str, **kwargs: Any) -> tuple[str, int, float]:
    before = len(fake.requests)
    dag = dag_for_test(f"bench_databricks_{label}")
    timed(cls)(task_id="run", retries=2, retry_delay=timedelta(0), dag=dag, **TASK, **kwargs)
    result = run_dag(dag)
    return result.state, len(fake.requests) - before, _SECONDS[dag.dag_id]


def overhead(repeats: int) -> list[dict[str, Any]]:
    """Time and API requests of one task that submits a run and waits for it (3 polls), per backend."""
    rows = []
    with FakeDatabricksServer(FakeDatabricks()) as server:
        os.environ[f"AIRFLOW_CONN_{CONN.upper()}"] = json.dumps(server.connection())
        for backend in ("task_state_store", "variable"):
            os.environ["AIRFLOW__RESUMABLE__STATE_BACKEND"] = backend
            for name, cls in (
                ("official", DatabricksSubmitRunOperator),
                ("ours", ResumableDatabricksSubmitRunOperator),
            ):
                samples, requests = [], 0
                for i in range(repeats):
                    state, requests, seconds = _run(server.fake, cls, f"{backend}_{name}_{i}")
                    assert state == "success", state
                    samples.append(seconds)
                rows.append(
                    {"backend": backend, "operator": name, "seconds": statistics.median(samples), "requests": requests}
                )
    return rows


def faults() -> list[dict[str, Any]]:
    """Runs started by one task after each fault (the answer every production user pays for)."""
    rows = []
    cases = {
        "the try dies mid-poll (2 x 500 on runs/get)": lambda f: f.fail_requests("runs/get", 2),
        "one runs/submit response lost": lambda f: f.drop_responses("runs/submit", 1),
        "every runs/submit response of try 1 lost": lambda f: f.drop_responses("runs/submit", 2),
    }
    os.environ["AIRFLOW__RESUMABLE__STATE_BACKEND"] = "auto"
    for case, inject in cases.items():
        row: dict[str, Any] = {"case": case}
        for name, cls in (("official", DatabricksSubmitRunOperator), ("ours", ResumableDatabricksSubmitRunOperator)):
            with FakeDatabricksServer(FakeDatabricks()) as server:
                os.environ[f"AIRFLOW_CONN_{CONN.upper()}"] = json.dumps(server.connection())
                inject(server.fake)
                state, _, _ = _run(server.fake, cls, f"fault_{name}_{len(rows)}")
                row[name] = (state, len(server.fake.runs))
        rows.append(row)
    return rows
