"""A watermark driven with a TaskTry, a store and settings, without any operator."""

from __future__ import annotations

import logging

import pytest
from pydantic import BaseModel

from airflow.providers.resumable.mixins.watermark_runner import Watermark, WatermarkSettings
from airflow.providers.resumable.plugins.resumable import listener
from airflow.providers.resumable.state.base import CorruptStateError
from airflow.providers.resumable.state.task_try import TaskTry
from airflow.providers.resumable.watermarks.stores import InMemoryWatermarkStore, WatermarkScope
from tests.support.context import FakeTI, make_context

log = logging.getLogger(__name__)
SCOPE = WatermarkScope("dag", "task", -1, None, None)


def mark(ti: FakeTI, store: InMemoryWatermarkStore, **settings) -> Watermark:
    task_try = TaskTry.from_context(make_context(ti), owner="task", kind="test")
    return Watermark(task_try, store, SCOPE, WatermarkSettings(**settings), log)


def test_retries_read_one_window_and_only_a_success_commits(memory_store):
    store = InMemoryWatermarkStore()
    first = FakeTI()
    assert mark(first, store).load(initial_value=0) == 0
    mark(first, store).advance(5)
    listener.on_task_instance_failed(None, first)
    assert store.read() is None

    second = FakeTI(try_number=2)
    window = mark(second, store)
    assert window.load() == 0  # the same window as try 1
    window.advance(7)
    listener.on_task_instance_success(None, second)
    assert store.read()["value"] == 7

    assert mark(FakeTI(run_id="next"), store).load() == 7


def test_values_are_checked_before_anything_is_staged(memory_store):
    store = InMemoryWatermarkStore()
    with pytest.raises(ValueError, match="must not be None"):
        mark(FakeTI(), store).advance(None)
    with pytest.raises(ValueError, match="must be a JSON value"):
        mark(FakeTI(), store).advance(object())

    class Position(BaseModel):
        offset: int

    typed = mark(FakeTI(), store, model=Position, on_overlap="fail")
    with pytest.raises(TypeError, match="must be a Position"):
        typed.advance(3)
    with pytest.raises(CorruptStateError, match="does not fit Position"):
        typed.decode({"offset": "not a number"})


def test_an_unknown_overlap_rule_is_refused():
    with pytest.raises(ValueError, match="on_overlap must be one of"):
        WatermarkSettings(on_overlap="newest")
