"""The TaskFlow handle's watermarks with a TaskTry and no operator; the rules are the runner's."""

from __future__ import annotations

import asyncio

import pytest

from airflow.providers.resumable.plugins.resumable import listener
from tests.support.context import FakeTI
from tests.support.taskflow import handle


@pytest.fixture
def mark(monkeypatch):
    """One in-memory watermark store for every handle in the test."""
    from airflow.providers.resumable.mixins import taskflow_watermark
    from airflow.providers.resumable.watermarks.stores import InMemoryWatermarkStore

    store = InMemoryWatermarkStore()
    monkeypatch.setattr(taskflow_watermark, "get_watermark_store", lambda *args, **kwargs: store)
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
