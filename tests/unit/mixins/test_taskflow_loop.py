"""The TaskFlow handle's loops (``handle.iterate``), sync and async, with a TaskTry and no operator."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from airflow.providers.resumable.mixins.taskflow_loop import LoopItemsChangedError
from airflow.providers.resumable.plugins.resumable import listener
from tests.support.context import FakeTI
from tests.support.taskflow import handle


def consume(loop, fail_at=None):
    seen = []
    for item in loop:
        if item == fail_at:
            raise RuntimeError(f"failed at {item}")
        seen.append(item)
    return seen


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
