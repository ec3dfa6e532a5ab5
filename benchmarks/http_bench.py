"""
ResumablePaginatedHttpOperator against the official HttpOperator, side by side in ``dag.test()``.

Both walk the newsletter service (``demo/newsletter_service.py``) on 127.0.0.1 with the same
cursor pagination. Measured per task, inside the task process:

* wall time of ``execute`` (1,000 pages, 5 ms latency per page), ours at the default checkpoint
  policy and at a checkpoint per page, against the plain operator, and the CPU time of the task's
  thread (the service answers from another thread, so this is the operators' own work: on a loaded
  machine it shows a per-page regression that the wall time's noise hides);
* peak RSS growth during ``execute`` over 10,000 pages (no latency);
* pages fetched twice after an outage at a random page (ours, default policy).
"""

from __future__ import annotations

import os
import random
import statistics
import threading
import time
from typing import TYPE_CHECKING, Any

from airflow.providers.http.operators.http import HttpOperator

from airflow.providers.resumable.operators.http import CursorPagination, ResumablePaginatedHttpOperator
from airflow.providers.resumable.testing import dag_for_test, run_dag
from demo.newsletter_service import NewsletterService

if TYPE_CHECKING:
    from pathlib import Path

PAGE = 10
#: Pages of the speed comparison; the per-page cost is (ours - plain) / SPEED_PAGES.
SPEED_PAGES = 1000
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def _rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * _PAGE_BYTES


class _Probe:
    """Samples RSS every 10 ms while a block runs; reports wall time and peak growth."""

    def __enter__(self) -> _Probe:
        self.base = self.peak = _rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self.start = time.perf_counter()
        self.cpu_start = time.thread_time()
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, _rss())

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start
        self.cpu_seconds = time.thread_time() - self.cpu_start
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())


def measured(cls: type) -> type:
    class Measured(cls):  # type: ignore[misc, valid-type]
        def execute(self, context: Any) -> Any:
            with _Probe() as probe:
                result = super().execute(context)
            _RESULTS[self.dag_id] = {
                "seconds": probe.seconds,
                "cpu_seconds": probe.cpu_seconds,
                "rss_growth": probe.peak - probe.base,
            }
            return result

    Measured.__name__ = f"Measured{cls.__name__}"
    return Measured


_RESULTS: dict[str, dict[str, float]] = {}


def next_cursor(response: Any) -> dict[str, Any] | None:
    cursor = response.json()["meta"]["next_cursor"]
    return {"data": {"cursor": cursor, "limit": PAGE}} if cursor else None


def _run(kind: str, label: str, out: Path, **kwargs: Any) -> dict[str, float]:
    dag = dag_for_test(f"bench_http_{label}")
    common = dict(
        task_id="crawl",
        http_conn_id="bench_newsletter",
        endpoint="issues/cursor",
        method="GET",
        data={"limit": PAGE},
        dag=dag,
    )
    if kind == "ours":
        measured(ResumablePaginatedHttpOperator)(
            pagination=CursorPagination(cursor_path="meta.next_cursor"),
            records_path="data.items",
            output_path=f"file://{out / label}",
            **common,
            **kwargs,
        )
    else:
        measured(HttpOperator)(
            pagination_function=next_cursor,
            # The plain operator's result is every page's text; count it so XCom stays small.
            response_filter=lambda responses: len(responses),
            **common,
            **kwargs,
        )
    result = run_dag(dag)
    assert result.state == "success", result
    return _RESULTS[dag.dag_id]


def speed(out: Path, repeats: int) -> dict[str, dict[str, float]]:
    """Median wall time (``seconds``) and task-thread CPU time (``cpu_seconds``) of each operator."""
    cases: dict[str, dict[str, Any]] = {"plain": {}, "ours_default": {}, "ours_every_page": {"checkpoint_every": 1}}
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in cases}
    with NewsletterService(items=SPEED_PAGES * PAGE, page_size=PAGE, latency=0.005) as service:
        os.environ["AIRFLOW_CONN_BENCH_NEWSLETTER"] = service.url
        for i in range(repeats):
            # Interleaved, so drift on the machine hits all three alike.
            for name, kwargs in cases.items():
                kind = "plain" if name == "plain" else "ours"
                runs[name].append(_run(kind, f"speed_{name}_{i}", out, **kwargs))
    return {
        name: {key: statistics.median(sample[key] for sample in samples) for key in ("seconds", "cpu_seconds")}
        for name, samples in runs.items()
    }


def memory(out: Path) -> dict[str, float]:
    with NewsletterService(items=10_000 * PAGE, page_size=PAGE) as service:
        os.environ["AIRFLOW_CONN_BENCH_NEWSLETTER"] = service.url
        plain = _run("plain", "memory_plain", out)
        ours = _run("ours", "memory_ours", out)
    return {"plain": plain["rss_growth"], "ours": ours["rss_growth"]}


def refetch_after_outage(out: Path, trials: int, seed: int = 7) -> list[int]:
    rng = random.Random(seed)
    refetched = []
    for trial in range(trials):
        at_page = rng.randrange(1, 199)
        with NewsletterService(items=200 * PAGE, page_size=PAGE) as service:
            os.environ["AIRFLOW_CONN_BENCH_NEWSLETTER"] = service.url
            service.outage_at_item = at_page * PAGE
            service.outage_requests = None  # until the next try
            from datetime import timedelta

            _run(
                "ours",
                f"outage_{trial}",
                out,
                retries=1,
                retry_delay=timedelta(0),
                page_retry_attempts=2,
                page_retry_max_wait=0,
                headers={"X-Try": "{{ ti.try_number }}"},
            )
            ok = [(e["try"], e["first_item"]) for e in service.log if e["status"] == 200]
            first = {item for t, item in ok if t == "1"}
            refetched.append(sum(1 for t, item in ok if t == "2" and item in first))
    return refetched
