"""
Checkpoint policies side by side under Airflow's real task supervisor: overhead, blocking and redo.

Walks of batches that each sleep a fixed latency (5 ms x 1,000: a page of a fast API; 50 ms and
0.5 ms for slow and very fast batches) run as tasks under ``supervise_task``
(``benchmarks/supervised.py``), where the Task SDK's comms are thread-safe and checkpoints can be
written off the walk. Each walk runs with each policy, on the native ``task_state_store`` and on the
Variable backend, in both SQLite journal modes; every configuration once per repeat, interleaved, so
drift on the shared machine hits all of them alike. Measured inside the task:

* wall time of ``run_batches``, and its overhead against the same walk without checkpoints;
* the time the walk was *blocked*: its time outside the batches (from the first batch's start to its
  end), beyond what the walk without checkpoints spends there;
* the checkpoint writes: how many, what one costs, and on which thread they ran;
* the worst redo after a hard kill, from *durable* points (:func:`worst_redo`).

``save_checkpoint`` is wrapped to see each write: a background write calls it on the writer thread,
so the bookkeeping takes a lock.
"""

from __future__ import annotations

import bisect
import inspect
import os
import statistics
import threading
import time
from dataclasses import dataclass
from typing import Any, ClassVar

from airflow.providers.resumable.mixins import Checkpoint, StatefulOperatorMixin
from airflow.providers.resumable.version_compat import BaseOperator


@dataclass(frozen=True)
class Walk:
    """A walk of ``batches`` batches that each sleep ``latency`` seconds."""

    batches: int
    latency: float
    #: Policies measured on it: a 5 s interval says nothing about a walk shorter than 5 s.
    policies: tuple[str, ...]


_SHORT = ("none", "default", "sync")
WALKS = (
    Walk(int(os.environ.get("BENCH_REDO_BATCHES_5MS", "1000")), 0.005, (*_SHORT, "interval_5s")),
    Walk(int(os.environ.get("BENCH_REDO_BATCHES_50MS", "60")), 0.050, _SHORT),
    Walk(int(os.environ.get("BENCH_REDO_BATCHES_05MS", "6000")), 0.0005, _SHORT),
)

#: The argument that turns the background checkpoint writer off (issue 21).
BACKGROUND_FLAG = "background_checkpoints"


def accepts(cls: type, argument: str) -> bool:
    """Whether some ``__init__`` in ``cls``'s MRO names ``argument`` (a build with or without the writer)."""
    return any(
        argument in inspect.signature(klass.__init__).parameters  # type: ignore[misc]
        for klass in cls.__mro__
        if "__init__" in vars(klass)
    )


def policy_arguments(label: str, operator: type) -> dict[str, Any] | None:
    """Operator arguments of the policy ``label``; None when this build has no such policy."""
    if label == "none":
        return {"checkpoint_every": 10**9}  # larger than any walk: no write during it
    if label == "default":
        return {}
    if label == "interval_5s":
        return {"checkpoint_interval": 5}
    if label == "sync":
        return {BACKGROUND_FLAG: False} if accepts(operator, BACKGROUND_FLAG) else None
    raise ValueError(f"unknown policy {label!r}; one of none, default, sync, interval_5s")


@dataclass(frozen=True)
class Redo:
    """The most a hard kill could redo: seconds of work and batches, and which gap it was."""

    seconds: float
    batches: int
    gap: str


def worst_redo(start: float, end: float, batch_ends: list[float], writes: list[tuple[float, int]]) -> Redo:
    """
    The worst redo after a hard kill at any moment of a walk, from its durable points.

    ``batch_ends`` are the times batches 0, 1, ... ended; ``writes`` the checkpoints as
    ``(time the write ended, batches it covers)``. A checkpoint is durable once its write ends, and
    it covers the batches done when its cursor was taken, whenever the write itself ran (a background
    write may land batches later). A kill just before a durable point redoes everything since the
    cursor of the last checkpoint durable before it: from the end of that cursor's last batch (the
    walk's start for none) to the kill, and the batches ended in that time. The walk's start and end
    are durable points (nothing to redo before it started; a finished walk is written complete).
    """
    points = sorted(writes)
    points.append((end, len(batch_ends)))
    covered = 0  # batches the latest durable checkpoint covers
    worst = Redo(0.0, 0, "")
    for i, (durable_at, batches) in enumerate(points):
        taken_at = batch_ends[covered - 1] if covered else start
        redone = Redo(
            durable_at - taken_at, bisect.bisect_right(batch_ends, durable_at) - covered, f"{i} of {len(points)}"
        )
        if redone.seconds > worst.seconds:
            worst = redone
        covered = max(covered, batches)  # a write that lands late never moves the cursor back
    return worst


class Page(Checkpoint):
    schema_version: ClassVar[int] = 1
    n: int


class SleepyWalk(StatefulOperatorMixin, BaseOperator):
    checkpoint_model = Page

    def __init__(self, *, pages: int, latency: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pages = pages
        self.latency = latency
        self._lock = threading.Lock()
        self._writes: list[tuple[float, int]] = []
        self._write_seconds = 0.0
        self._writer_threads: set[int] = set()

    def save_checkpoint(self, context: Any, checkpoint: Any, *, batches_done: int | None = None) -> None:
        began = time.perf_counter()
        super().save_checkpoint(context, checkpoint, batches_done=batches_done)
        done = time.perf_counter()
        with self._lock:  # a background write runs on the writer thread
            self._writes.append((done, batches_done or 0))
            self._write_seconds += done - began
            self._writer_threads.add(threading.get_ident())

    def execute(self, context: Any) -> dict[str, Any]:
        batch_ends: list[float] = []
        in_batches = 0.0
        first_start: list[float] = []

        def process(cursor: Page, index: int) -> Page | None:
            nonlocal in_batches
            began = time.perf_counter()
            if not first_start:
                first_start.append(began)
            time.sleep(self.latency)
            ended = time.perf_counter()
            in_batches += ended - began
            batch_ends.append(ended)
            return Page(n=cursor.n + 1) if cursor.n + 1 < self.pages else None

        start = time.perf_counter()
        run = self.run_batches(context, process, start=Page(n=0))
        end = time.perf_counter()
        with self._lock:
            writes = list(self._writes)
            write_seconds = self._write_seconds
            off_walk = len(self._writer_threads - {threading.get_ident()})
        redo = worst_redo(start, end, batch_ends, writes)
        return {
            "seconds": end - start,
            "blocked": (end - first_start[0]) - in_batches,
            "writes": run.checkpoints_written,
            "write_seconds": write_seconds,
            "writes_off_walk": off_walk > 0,
            "redo_seconds": redo.seconds,
            "redo_pages": redo.batches,
            "redo_gap": redo.gap,
        }


def walk_dag(dag_id: str, *, pages: int, latency: float, policy: dict[str, Any]) -> Any:
    """The benchmark DAG: one :class:`SleepyWalk`; built in the task process from its DAG file."""
    from airflow.providers.resumable.testing import dag_for_test

    dag = dag_for_test(dag_id)
    SleepyWalk(task_id="walk", pages=pages, latency=latency, dag=dag, **policy)
    return dag


#: The metadata DB's journal modes measured: Airflow's default (a rollback journal, one more fsync per
#: commit) and WAL, which docs/deployment.rst asks for on any SQLite deployment.
JOURNAL_MODES = ("delete", "wal")
BACKENDS = ("task_state_store", "variable")


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
    """
    One row per (journal mode, backend, walk, policy): medians over ``repeats``, the worst redo over
    all of them. A policy this build does not have gets a row with ``"missing": True``.
    """
    from benchmarks.supervised import run_task

    samples: dict[tuple[str, str, Walk, str], list[dict[str, Any]]] = {}
    for i in range(repeats):
        for journal in JOURNAL_MODES:
            set_journal_mode(journal)
            for backend in BACKENDS:
                os.environ["AIRFLOW__RESUMABLE__STATE_BACKEND"] = backend
                for walk in WALKS:
                    for label in walk.policies:
                        key = (journal, backend, walk, label)
                        policy = policy_arguments(label, SleepyWalk)
                        runs = samples.setdefault(key, [])
                        if policy is None:
                            continue
                        result = run_task(
                            "benchmarks.redo_bench:walk_dag",
                            f"bench_redo_{journal}_{backend}_{walk.latency * 1e6:g}us_{label}_{i}",
                            pages=walk.batches,
                            latency=walk.latency,
                            policy=policy,
                        )
                        if result.state != "success" or not isinstance(result.value, dict):
                            raise RuntimeError(f"benchmark walk {result.dag_id} did not succeed: {result}")
                        runs.append(result.value)
    return [_row(key, runs, samples) for key, runs in samples.items()]


def _row(
    key: tuple[str, str, Walk, str], runs: list[dict[str, Any]], samples: dict[Any, list[dict[str, Any]]]
) -> dict[str, Any]:
    journal, backend, walk, label = key
    row: dict[str, Any] = {"journal": journal, "backend": backend, "walk": walk, "policy": label}
    if not runs:
        print(f"redo {journal} {backend} {walk.latency * 1000:g} ms {label}: not in this build")
        return {**row, "missing": True}
    none = samples[(journal, backend, walk, "none")]
    base = statistics.median(r["seconds"] for r in none)
    base_blocked = statistics.median(r["blocked"] for r in none)
    wall = statistics.median(r["seconds"] for r in runs)
    writes = statistics.median(r["writes"] for r in runs)
    worst = max(runs, key=lambda r: r["redo_seconds"])
    row |= {
        "missing": False,
        "seconds": wall,
        "overhead": (wall - base) / base,
        "blocked_share": (statistics.median(r["blocked"] for r in runs) - base_blocked) / base,
        "writes": writes,
        "write_ms": statistics.median(r["write_seconds"] / r["writes"] * 1000 for r in runs if r["writes"])
        if writes
        else 0.0,
        "off_walk": any(r["writes_off_walk"] for r in runs),
        "redo_seconds": worst["redo_seconds"],
        "redo_pages": max(r["redo_pages"] for r in runs),
        "redo_gap": worst["redo_gap"],
    }
    print(
        f"redo {journal} {backend} {walk.batches} x {walk.latency * 1000:g} ms {label}: {wall:.3f} s, overhead "
        f"{row['overhead']:+.2%}, blocked {row['blocked_share']:+.2%}, {writes:g} writes of {row['write_ms']:.1f} ms"
        f"{' off the walk' if row['off_walk'] else ''}, worst redo {row['redo_seconds']:.3f} s "
        f"(gap {row['redo_gap']}) / {row['redo_pages']} batches"
    )
    return row
