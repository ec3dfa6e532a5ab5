"""
The default checkpoint policy against no checkpoints and ``checkpoint_interval=5``, in one run.

A walk of 1,000 batches that each sleep 5 ms (a page of a fast API) runs in ``dag.test()`` on the
native ``task_state_store`` and on the Variable backend, with each policy, interleaved per repeat so
drift on the machine hits all of them alike. Measured inside the task:

* wall time of ``run_batches``, and its overhead against the same walk without checkpoints;
* the time spent in checkpoint writes (a steadier view of the overhead than a difference of walls);
* the worst-case redo after a hard kill: the longest time, and the most batches, between two
  durable points of the walk (its start, the end of each checkpoint write, its end), from the write
  timestamps. A kill just before a write finishes redoes everything since the previous one.
"""

from __future__ import annotations

import itertools
import os
import statistics
import time
from typing import Any, ClassVar

from airflow.providers.resumable.mixins import Checkpoint, StatefulOperatorMixin
from airflow.providers.resumable.testing import dag_for_test, run_dag
from airflow.providers.resumable.version_compat import BaseOperator

PAGES = 1000
LATENCY = 0.005

#: label -> operator arguments. ``checkpoint_every`` larger than the walk: no write during it.
POLICIES: dict[str, dict[str, Any]] = {
    "none": {"checkpoint_every": 10**9},
    "default": {},
    "interval_5s": {"checkpoint_interval": 5},
}


class Page(Checkpoint):
    schema_version: ClassVar[int] = 1
    n: int


class SleepyWalk(StatefulOperatorMixin, BaseOperator):
    checkpoint_model = Page

    def __init__(self, *, pages: int, latency: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pages = pages
        self.latency = latency
        self._durable: list[tuple[float, int]] = []
        self._writing = 0.0

    def save_checkpoint(self, context: Any, checkpoint: Any, *, batches_done: int | None = None) -> None:
        began = time.perf_counter()
        super().save_checkpoint(context, checkpoint, batches_done=batches_done)
        done = time.perf_counter()
        self._writing += done - began
        self._durable.append((done, batches_done or 0))

    def execute(self, context: Any) -> dict[str, Any]:
        def process(cursor: Page, index: int) -> Page | None:
            time.sleep(self.latency)
            return Page(n=cursor.n + 1) if cursor.n + 1 < self.pages else None

        start = time.perf_counter()
        run = self.run_batches(context, process, start=Page(n=0))
        end = time.perf_counter()
        points = [(start, 0), *self._durable, (end, run.batches_done)]
        gaps = [(b[0] - a[0], b[1] - a[1]) for a, b in itertools.pairwise(points)]
        return {
            "seconds": end - start,
            "writes": run.checkpoints_written,
            "writing": self._writing,
            "redo_seconds": max(g[0] for g in gaps),
            "redo_pages": max(g[1] for g in gaps),
            # Which gap was the longest (0: before the first write; len - 1: before the walk's end).
            "redo_gap": f"{max(range(len(gaps)), key=lambda i: gaps[i][0])} of {len(gaps)}",
        }


#: The metadata DB's journal modes measured: Airflow's default (a rollback journal, one more fsync per
#: commit) and WAL, which docs/deployment.rst asks for on any SQLite deployment. A checkpoint write's
#: cost, and so what the default policy can promise, is mostly that commit.
JOURNAL_MODES = ("delete", "wal")


def set_journal_mode(mode: str) -> None:
    """Switch the SQLite metadata DB between runs (a property of the file; the pool reconnects)."""
    import sqlite3

    from airflow import settings

    url = settings.engine.url
    if url.get_backend_name() != "sqlite" or not url.database:
        raise RuntimeError(f"the redo benchmark compares SQLite journal modes, the metadata DB is {url!r}")
    settings.engine.dispose()
    with sqlite3.connect(url.database, timeout=30) as db:
        got = db.execute(f"PRAGMA journal_mode={mode}").fetchone()[0]
    if got != mode:
        raise RuntimeError(f"could not switch {url.database} to journal_mode={mode}, it stays {got!r}")


def measure(repeats: int) -> list[dict[str, Any]]:
    """One row per (journal mode, backend, policy): medians over ``repeats``, worst redo over all of them."""
    rows = []
    for journal in JOURNAL_MODES:
        set_journal_mode(journal)
        rows += _measure_backends(repeats, journal)
    return rows


def _measure_backends(repeats: int, journal: str) -> list[dict[str, Any]]:
    rows = []
    for backend in ("task_state_store", "variable"):
        os.environ["AIRFLOW__RESUMABLE__STATE_BACKEND"] = backend
        samples: dict[str, list[dict[str, Any]]] = {label: [] for label in POLICIES}
        for i in range(repeats):
            for label, kwargs in POLICIES.items():
                dag = dag_for_test(f"bench_redo_{journal}_{backend}_{label}_{i}")
                SleepyWalk(task_id="walk", pages=PAGES, latency=LATENCY, dag=dag, **kwargs)
                result = run_dag(dag)
                assert result.state == "success", result
                samples[label].append(result.xcom("walk"))
        base = statistics.median(s["seconds"] for s in samples["none"])
        for label, runs in samples.items():
            wall = statistics.median(r["seconds"] for r in runs)
            row = {
                "journal": journal,
                "backend": backend,
                "policy": label,
                "seconds": wall,
                "overhead": (wall - base) / base,
                "writing_share": statistics.median(r["writing"] / (r["seconds"] - r["writing"]) for r in runs),
                "writes": statistics.median(r["writes"] for r in runs),
                "write_ms": statistics.median(r["writing"] / r["writes"] * 1000 for r in runs)
                if runs[0]["writes"]
                else 0,
                "redo_seconds": max(r["redo_seconds"] for r in runs),
                "redo_pages": max(r["redo_pages"] for r in runs),
                "redo_gap": max(runs, key=lambda r: r["redo_seconds"])["redo_gap"],
            }
            rows.append(row)
            print(
                f"redo {journal} {backend} {label}: {wall:.3f} s, overhead {row['overhead']:+.2%}, writing "
                f"{row['writing_share']:.2%}, {row['writes']} writes of {row['write_ms']:.1f} ms, "
                f"worst redo {row['redo_seconds']:.3f} s (gap {row['redo_gap']}) / "
                f"{row['redo_pages']} pages"
            )
    return rows
