"""The TaskFlow handle driven with a TaskTry and no operator: loops, batches, jobs, watermarks, async."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import pytest

from airflow.providers.resumable.mixins.checkpoint_policies import checkpoint_every_n_batches
from airflow.providers.resumable.mixins.taskflow import (
    LoopItemsChangedError,
    ResumableHandle,
    get_resumable_handle,
    reset_current_handle,
    set_current_handle,
)
from airflow.providers.resumable.plugins.resumable import listener
from airflow.providers.resumable.state.task_try import TaskTry
from tests.support.context import FakeTI, make_context

log = logging.getLogger(__name__)


def handle(ti: FakeTI | None = None, every: int = 3) -> ResumableHandle:
    task_try = TaskTry.from_context(make_context(ti or FakeTI()), owner="task", kind="test")
    return ResumableHandle(task_try, log=log, policy=checkpoint_every_n_batches(every))


def consume(loop, fail_at=None):
    seen = []
    for item in loop:
        if item == fail_at:
            raise RuntimeError(f"failed at {item}")
        seen.append(item)
    return seen


# ---- iterate ---------------------------------------------------------------------------------------


def test_a_loop_resumes_after_the_last_finished_item(memory_store):
    items = list("abcdefgh")
    with pytest.raises(RuntimeError):
        consume(handle().iterate(items), fail_at="f")
    assert memory_store.get("taskflow/loop0")["data"] == {"next": 5}

    assert consume(handle(FakeTI(try_number=2)).iterate(items)) == list("fgh")
    assert memory_store.get("taskflow/loop0")["complete"] is True
    # A retry of the same life after the loop finished does not walk it again.
    assert consume(handle(FakeTI(try_number=3)).iterate(items)) == []


def test_a_clear_after_success_walks_every_item_again(memory_store):
    ti = FakeTI()
    consume(handle(ti).iterate(range(4)))
    listener.on_task_instance_success(None, ti)
    assert consume(handle(FakeTI(try_number=2, max_tries=3)).iterate(range(4))) == [0, 1, 2, 3]


def test_loops_of_one_task_are_told_apart_by_their_order_or_name(memory_store):
    first = handle()
    consume(first.iterate([1, 2]))
    consume(first.iterate([3], name="other"))
    consume(first.iterate([4]))
    assert {"taskflow/loop0", "taskflow/other", "taskflow/loop2"} <= set(memory_store.data)


def test_fewer_items_on_a_retry_is_an_error_naming_the_key(memory_store):
    with pytest.raises(RuntimeError):
        consume(handle().iterate(range(10)), fail_at=6)
    with pytest.raises(LoopItemsChangedError, match=r"resumed after 6 items, but its items now hold only 3"):
        consume(handle(FakeTI(try_number=2)).iterate(range(3)))


def test_an_abandoned_loop_is_flushed_when_the_function_fails(memory_store):
    h = handle(every=100)
    loop = iter(h.iterate(range(10)))
    next(loop), next(loop), next(loop)  # items 0 and 1 are done, 2 is in the body
    h.close(failed=True)
    assert memory_store.get("taskflow/loop0")["data"] == {"next": 2}


# ---- batches ---------------------------------------------------------------------------------------


def test_run_batches_walks_from_the_stored_cursor(memory_store):
    def pages(fail_at=None):
        def process(cursor, index):
            if index == fail_at:
                raise RuntimeError("lost")
            return {"page": cursor["page"] + 1} if cursor["page"] < 4 else None

        return process

    with pytest.raises(RuntimeError):
        handle().run_batches(pages(fail_at=2), start={"page": 0})
    run = handle(FakeTI(try_number=2)).run_batches(pages(), start={"page": 0})
    assert (run.resumed_from, run.batches_done) == (2, 5)


def test_async_batches_may_be_coroutines(memory_store):
    async def process(cursor, index):
        await asyncio.sleep(0)
        return cursor + 1 if cursor < 3 else None

    run = asyncio.run(handle().arun_batches(process, start=0))
    assert run.batches_done == 4


# ---- async -----------------------------------------------------------------------------------------


def test_async_for_resumes_like_for(memory_store):
    async def walk(h, items, fail_at=None):
        seen = []
        async for item in h.iterate(items):
            if item == fail_at:
                raise RuntimeError("lost")
            seen.append(item)
        return seen

    async def agen():
        for item in range(6):
            yield item

    h = handle()
    with pytest.raises(RuntimeError):
        asyncio.run(walk(h, list(range(6)), fail_at=4))
    h.close(failed=True)
    assert asyncio.run(walk(handle(FakeTI(try_number=2)), agen())) == [4, 5]


def test_a_slow_store_does_not_block_the_event_loop(memory_store, monkeypatch):
    inner_set = memory_store.set
    writing = threading.Event()

    def slow_set(key, value):
        writing.set()
        time.sleep(0.2)
        inner_set(key, value)

    monkeypatch.setattr(memory_store, "set", slow_set)

    async def main():
        ticks = 0
        stop = asyncio.Event()

        async def ticker():
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0.01)

        beat = asyncio.create_task(ticker())
        started = time.monotonic()
        async for _ in handle(every=1).iterate(range(3)):
            pass
        elapsed = time.monotonic() - started
        stop.set()
        await beat
        return ticks, elapsed

    ticks, elapsed = asyncio.run(main())
    assert writing.is_set()
    assert elapsed >= 0.6  # three slow writes (two checkpoints and the complete mark)
    assert ticks >= 20, "the ticker kept running while the store was writing"


# ---- jobs ------------------------------------------------------------------------------------------


class Jobs:
    def __init__(self) -> None:
        self.by_token: dict[str, str] = {}
        self.state: dict[str, str] = {}
        self.submits = 0
        self.lose_next_response = False

    def calls(self):
        def submit(token):
            self.submits += 1
            job = self.by_token.setdefault(token, f"job-{len(self.by_token) + 1}")
            self.state.setdefault(job, "RUNNING")
            if self.lose_next_response:
                self.lose_next_response = False
                raise ConnectionResetError("response lost")
            return job

        def poll(job):
            self.state[job] = "SUCCEEDED"

        return {
            "submit": submit,
            "status": self.state.get,
            "is_active": lambda s: s == "RUNNING",
            "is_succeeded": lambda s: s == "SUCCEEDED",
            "poll": poll,
        }


def test_a_job_resubmits_a_lost_submission_with_the_same_token(memory_store):
    jobs = Jobs()
    jobs.lose_next_response = True
    with pytest.raises(ConnectionResetError):
        handle().job(**jobs.calls())
    assert handle(FakeTI(try_number=2)).job(**jobs.calls()) == "job-1"
    assert len(jobs.by_token) == 1
    assert jobs.submits == 2


def test_an_async_job_takes_async_callables(memory_store):
    jobs = Jobs()
    calls = jobs.calls()
    sync_poll = calls["poll"]

    async def poll(job):
        await asyncio.sleep(0)
        sync_poll(job)

    calls["poll"] = poll
    assert asyncio.run(handle().ajob(**calls, result=lambda job: {"id": job})) == {"id": "job-1"}


# ---- watermarks and the current handle -------------------------------------------------------------


@pytest.fixture
def mark(monkeypatch):
    """One in-memory watermark store for every handle in the test."""
    from airflow.providers.resumable.mixins import taskflow
    from airflow.providers.resumable.watermarks.stores import InMemoryWatermarkStore

    store = InMemoryWatermarkStore()
    monkeypatch.setattr(taskflow, "get_watermark_store", lambda *args, **kwargs: store)
    return store


def test_a_watermark_moves_only_after_success(memory_store, mark):
    ti = FakeTI()
    h = handle(ti)
    assert h.load_watermark(initial_value=0) == 0
    h.advance_watermark(10)
    listener.on_task_instance_success(None, ti)
    assert handle(FakeTI(run_id="next")).load_watermark() == 10


def test_async_watermark_calls(memory_store, mark):
    async def main():
        h = handle(FakeTI(run_id="async"))
        since = await h.aload_watermark(initial_value=5)
        await h.aadvance_watermark(since + 1)
        return since, (await h.awatermark_window()).base

    assert asyncio.run(main()) == (5, 5)


def test_a_typed_watermark_needs_a_merge_for_max(memory_store):
    from pydantic import BaseModel

    class Position(BaseModel):
        offset: int

    with pytest.raises(TypeError, match="no merge"):
        handle().watermark(model=Position)


def test_the_current_handle_is_known_only_while_the_function_runs():
    with pytest.raises(RuntimeError, match="outside a @task.resumable function"):
        get_resumable_handle()
    h = handle()
    token = set_current_handle(h)
    try:
        assert get_resumable_handle() is h
    finally:
        reset_current_handle(token)
