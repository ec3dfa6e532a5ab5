"""
ResumablePaginatedHttpOperator against the official HttpOperator, side by side.

Both walk the newsletter service (``demo/newsletter_service.py``) on 127.0.0.1 with the same
cursor pagination. Measured per task, inside the task process:

* wall time of ``execute`` (1,000 pages, 5 ms latency per page), ours at the default checkpoint
  policy against the plain operator, under Airflow's real task supervisor
  (``benchmarks/supervised.py``, where checkpoints can be written off the walk) and in
  ``dag.test()`` (whose in-process comms make every write synchronous);
* peak RSS growth during ``execute`` over 10,000 pages (no latency), in ``dag.test()``;
* pages fetched twice after an outage at a random page (ours, default policy), in ``dag.test()``.

The measurement goes back as the task's XCom ``bench`` (the task may run in another process).
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
#: Pages of the wall-time comparison.
SPEED_PAGES = int(os.environ.get("BENCH_HTTP_PAGES", "1000"))
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
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, _rss())

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())


def measured(cls: type) -> type:
    class Measured(cls):  # type: ignore[misc, valid-type]
        def execute(self, context: Any) -> Any:
            with _Probe() as probe:
                result = super().execute(context)
            context["ti"].xcom_push(
                key="bench", value={"seconds": probe.seconds, "rss_growth": probe.peak - probe.base}
            )
            return result

    Measured.__name__ = f"Measured{cls.__name__}"
    return Measured


def next_cursor(response: Any) -> dict[str, Any] | None:
    cursor = response.json()["meta"]["next_cursor"]
    return {"data": {"cursor": cursor, "limit": PAGE}} if cursor else None


def http_dag(dag_id: str, *, kind: str, out: str, **kwargs: Any) -> Any:
    """One crawl task: ``kind`` "ours" (parts under ``out``) or "plain"; built where the task runs."""
    dag = dag_for_test(dag_id)
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
            output_path=f"file://{out}",
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
    return dag


def _run(kind: str, label: str, out: Path, **kwargs: Any) -> dict[str, float]:
    """One crawl in ``dag.test()``."""
    dag = http_dag(f"bench_http_{label}", kind=kind, out=str(out / label), **kwargs)
    result = run_dag(dag)
    assert result.state == "success", result
    measurement: dict[str, float] = result.xcom("crawl", key="bench")
    return measurement


def _run_supervised(kind: str, label: str, out: Path) -> dict[str, float]:
    """One crawl under the real task supervisor."""
    from benchmarks.supervised import run_task

    result = run_task(
        "benchmarks.http_bench:http_dag", f"bench_http_{label}", xcom_key="bench", kind=kind, out=str(out / label)
    )
    if result.state != "success" or not isinstance(result.value, dict):
        raise RuntimeError(f"benchmark crawl {result.dag_id} did not succeed: {result}")
    return result.value


#: Where a speed run's task runs: the real task supervisor, and ``dag.test()``.
ROUTES = ("supervisor", "dag_test")


def speed(out: Path, repeats: int) -> dict[str, dict[str, float]]:
    """Median wall time per route of "plain" and "ours" (default policy) over ``SPEED_PAGES`` pages."""
    runs: dict[str, dict[str, list[float]]] = {route: {"plain": [], "ours": []} for route in ROUTES}
    with NewsletterService(items=SPEED_PAGES * PAGE, page_size=PAGE, latency=0.005) as service:
        # Set before the supervisor forks the task process, which inherits it.
        os.environ["AIRFLOW_CONN_BENCH_NEWSLETTER"] = service.url
        for i in range(repeats):
            # Interleaved, so drift on the machine hits every cell alike.
            for route in ROUTES:
                for kind in ("plain", "ours"):
                    label = f"speed_{route}_{kind}_{i}"
                    run = _run_supervised(kind, label, out) if route == "supervisor" else _run(kind, label, out)
                    runs[route][kind].append(run["seconds"])
    return {route: {kind: statistics.median(s) for kind, s in kinds.items()} for route, kinds in runs.items()}


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
