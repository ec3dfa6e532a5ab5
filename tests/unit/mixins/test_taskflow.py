"""The TaskFlow handle driven with a TaskTry and no operator: batches and the current handle."""

from __future__ import annotations

import asyncio

import pytest

from airflow.providers.resumable.mixins.taskflow import (
    get_resumable_handle,
    reset_current_handle,
    set_current_handle,
)
from tests.support.context import FakeTI
from tests.support.taskflow import handle


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


def test_the_current_handle_is_known_only_while_the_function_runs():
    with pytest.raises(RuntimeError, match="outside a @task.resumable function"):
        get_resumable_handle()
    h = handle()
    token = set_current_handle(h)
    try:
        assert get_resumable_handle() is h
    finally:
        reset_current_handle(token)
