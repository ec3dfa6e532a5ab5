"""
ResumablePaginatedHttpOperator inside Airflow's task runner, against the newsletter service on 127.0.0.1.

Every test crawls 100 items in pages of 13 (so the outage at item 26 falls on a page boundary,
as in ``make demo``) through a real ``http`` connection given by environment variable.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

from airflow.providers.resumable.operators.http import ResumablePaginatedHttpOperator
from airflow.providers.resumable.testing import dag_for_test, run_dag
from tests.integration.harness import make_dag
from tests.support.newsletter import cursor_crawl, serve
from tests.support.toy_operators import SimulatedCrash

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.integration

PAGE = 13
ALL_IDS = list(range(100))


@pytest.fixture
def newsletter(monkeypatch):
    yield from serve(monkeypatch, items=100, page_size=PAGE)


def crawl_task(dag, out: Path, cls=ResumablePaginatedHttpOperator, **kwargs):
    kwargs.setdefault("retries", 1)
    kwargs.setdefault("retry_delay", timedelta(0))
    kwargs.setdefault("page_retry_attempts", 2)
    kwargs.setdefault("page_retry_max_wait", 0)
    return cursor_crawl(
        dag,
        page=PAGE,
        cls=cls,
        task_id="crawl",
        headers={"X-Client": "resumable", "X-Try": "{{ ti.try_number }}"},
        output_path=f"file://{out}",
        **kwargs,
    )


def part_ids(out: Path) -> list[int]:
    ids = []
    for part in sorted(out.glob("part-*.jsonl")):
        ids.extend(json.loads(line)["id"] for line in part.read_text().splitlines())
    return ids


def first_item_per_try(service) -> dict[str, int]:
    firsts: dict[str, int] = {}
    for entry in service.log:
        firsts.setdefault(entry["try"], entry["first_item"])
    return firsts


def test_outage_mid_crawl_resumes_at_the_next_item(newsletter, tmp_path, request):
    newsletter.outage_at_item = 26
    newsletter.outage_requests = None  # 503 until the crawler's next try
    dag = make_dag(request)
    crawl_task(dag, tmp_path)
    run = run_dag(dag)
    assert run.state == "success"
    assert run.ti("crawl").try_number == 2
    assert first_item_per_try(newsletter) == {"1": 0, "2": 26}
    assert part_ids(tmp_path) == ALL_IDS
    manifest = run.xcom("crawl")
    assert manifest["records"] == 100
    assert manifest["pages"] == 8
    assert manifest["resumed_from_page"] == 2
    assert len(manifest["parts"]) == 8


def test_resumed_crawl_equals_an_uninterrupted_one(newsletter, tmp_path, request):
    clean, interrupted = tmp_path / "clean", tmp_path / "interrupted"
    dag = make_dag(request)
    crawl_task(dag, clean)
    assert run_dag(dag).state == "success"

    newsletter.outage_at_item = 52
    newsletter.outage_requests = None
    dag2 = dag_for_test(f"it_{request.node.name}_interrupted")
    crawl_task(dag2, interrupted)
    assert run_dag(dag2).state == "success"
    for a, b in zip(sorted(clean.glob("part-*")), sorted(interrupted.glob("part-*")), strict=True):
        assert a.name == b.name
        assert a.read_bytes() == b.read_bytes()


def test_rate_limit_honours_retry_after(newsletter, tmp_path, request):
    newsletter.rate_limit_at_item = 39
    newsletter.retry_after = 1
    dag = make_dag(request)
    crawl_task(dag, tmp_path, page_retry_max_wait=5)
    run = run_dag(dag)
    assert run.state == "success"
    assert run.ti("crawl").try_number == 1, "a 429 is retried within the try"
    limited = [i for i, e in enumerate(newsletter.log) if e["status"] == 429]
    assert len(limited) == 1
    waited = newsletter.log[limited[0] + 1]["t"] - newsletter.log[limited[0]]["t"]
    assert waited >= 0.9, f"Retry-After: 1 was not honoured (waited {waited:.2f}s)"
    assert part_ids(tmp_path) == ALL_IDS


def test_malformed_page_fails_clearly_and_keeps_what_was_written(newsletter, tmp_path, request):
    newsletter.malformed_at_item = 39
    dag = make_dag(request)
    crawl_task(dag, tmp_path)
    run = run_dag(dag)
    assert run.state == "failed"
    assert part_ids(tmp_path) == list(range(39))
    # Both tries resumed at the bad page rather than re-reading the good ones.
    assert first_item_per_try(newsletter) == {"1": 0, "2": 39}


def test_pagination_loop_fails_instead_of_spinning(newsletter, tmp_path, request):
    newsletter.loop_at_item = 26
    dag = make_dag(request)
    crawl_task(dag, tmp_path, retries=0)
    run = run_dag(dag)
    assert run.state == "failed"
    assert len(newsletter.log) <= 4, "stopped at the repeated request"


def test_crash_between_part_write_and_checkpoint_duplicates_nothing(newsletter, tmp_path, request):
    class CrashBeforeCheckpoint(ResumablePaginatedHttpOperator):
        """Try 1 dies right after page 3's part is written, before its checkpoint lands (e.g. SIGKILL)."""

        def save_checkpoint(self, context, checkpoint, *, batches_done=None):
            if context["ti"].try_number == 1 and batches_done == 4:
                raise SimulatedCrash("worker killed between part write and checkpoint")
            super().save_checkpoint(context, checkpoint, batches_done=batches_done)

    dag = make_dag(request)
    # Synchronous writes, so the crash in save_checkpoint stands for a kill on the walk's own thread
    # (on a writer thread it would be a failed write, which the walk flushes past).
    crawl_task(dag, tmp_path, cls=CrashBeforeCheckpoint, checkpoint_every=1, background_checkpoints=False)
    run = run_dag(dag)
    assert run.state == "success"
    # Try 2 starts from the last checkpoint that landed (after page 2) and rewrites page 3's part.
    assert first_item_per_try(newsletter) == {"1": 0, "2": 39}
    assert part_ids(tmp_path) == ALL_IDS, "page 3 was fetched twice but its records appear once"
