"""
What the state lifecycle costs a task instance, inside ``dag.test()``: the finished-marker read each
try makes, and the listener's work once Airflow has recorded the success (drop the Variable, or write
the marker to the native store). Timed around the provider's own calls, so Airflow's per-try start-up
is not counted.
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

from airflow.providers.resumable.mixins import Checkpoint, StatefulOperatorMixin
from airflow.providers.resumable.state import after_success, lifecycle
from airflow.providers.resumable.testing import dag_for_test, run_dag
from airflow.providers.resumable.version_compat import BaseOperator

_FINISH: list[float] = []
_READ: list[float] = []


class _Cursor(Checkpoint):
    n: int


class _ThreeBatches(StatefulOperatorMixin, BaseOperator):
    checkpoint_model = _Cursor

    def execute(self, context: Any) -> int:
        store = self.state_store(context).inner
        start = time.perf_counter()
        store.get(lifecycle.FINISHED_KEY)
        _READ.append(time.perf_counter() - start)
        return self.run_batches(
            context, lambda c, i: _Cursor(n=c.n + 1) if i < 2 else None, start=_Cursor(n=0)
        ).batches_done


def measure(repeats: int) -> list[dict[str, Any]]:
    # The listener calls after_success.finish_after_success through the module, so patching it there times it.
    original = after_success.finish_after_success

    def timed_finish(*args: Any, **kwargs: Any) -> str:
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            _FINISH.append(time.perf_counter() - start)

    after_success.finish_after_success = timed_finish  # type: ignore[assignment]
    rows = []
    try:
        for backend in ("task_state_store", "variable"):
            os.environ["AIRFLOW__RESUMABLE__STATE_BACKEND"] = backend
            _FINISH.clear()
            _READ.clear()
            for i in range(repeats):
                dag = dag_for_test(f"bench_lifecycle_{backend}_{i}")
                _ThreeBatches(task_id="walk", dag=dag)
                assert run_dag(dag).state == "success"
            rows.append(
                {
                    "backend": backend,
                    "finish_ms": statistics.median(_FINISH) * 1000,
                    "finishes": len(_FINISH),
                    "read_ms": statistics.median(_READ) * 1000,
                }
            )
    finally:
        after_success.finish_after_success = original  # type: ignore[assignment]
    return rows
