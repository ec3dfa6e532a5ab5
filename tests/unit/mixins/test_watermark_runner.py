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


# ---- the records a run delivers (watermark_records of the mixin and of the TaskFlow handle) ----------


def source(*rows: tuple[str, int]) -> list[dict]:
    return [{"id": item, "seq": seq} for item, seq in rows]


def test_records_at_the_mark_are_delivered_once_across_runs(memory_store):
    store = InMemoryWatermarkStore()
    first = FakeTI(run_id="one")
    one = mark(first, store)
    assert one.window(initial_value=0, read_boundary=True).since == 0, "the initial value is sent as it is"
    assert one.records(source(("a", 1), ("b", 2)), cursor_field="seq", primary_key="id") == source(("a", 1), ("b", 2))
    one.advance(2)
    listener.on_task_instance_success(None, first)

    second = FakeTI(run_id="two")
    two = mark(second, store)
    assert two.window(read_boundary=True).since == 1, "one unit below the mark"
    # b is at the mark and was delivered; c is a late writer at the mark; d is new; d twice is one version.
    read = source(("b", 2), ("c", 2), ("d", 3), ("d", 3))
    assert two.records(read, cursor_field=lambda r: r["seq"], primary_key=["id"]) == source(("c", 2), ("d", 3))


def test_records_read_objects_by_attribute(memory_store):
    class Row:
        def __init__(self, id: str, seq: int) -> None:
            self.id, self.seq = id, seq

    store = InMemoryWatermarkStore()
    one = mark(FakeTI(), store)
    one.window(initial_value=0, read_boundary=True)
    rows = [Row("a", 1), Row("a", 1)]
    assert one.records(rows, cursor_field="seq", primary_key="id") == rows[:1]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cursor_field": ""}, "cursor_field must be the name of the records' cursor field .*, got ''"),
        ({"cursor_field": 5}, "cursor_field must be .*, got 5"),
        ({"cursor_field": "seq", "primary_key": 5}, "primary_key must be a field name or a list of field names, got 5"),
        ({"cursor_field": "seq", "primary_key": []}, r"primary_key must be .*, got \[\]: the field\(s\) that identify"),
        ({"cursor_field": "seq", "records": "ab"}, "records must be a list of the records this run read .*, got str"),
        ({"cursor_field": "seq", "records": {"id": 1}}, "records must be a list .*, got dict"),
    ],
)
def test_bad_record_arguments_fail_the_task_at_once_by_name(memory_store, kwargs, message):
    from airflow.providers.resumable.compat.version_compat import AirflowFailException
    from airflow.providers.resumable.mixins.watermark_runner import WatermarkArgumentError

    records = kwargs.pop("records", [])
    with pytest.raises(WatermarkArgumentError, match=message) as raised:
        mark(FakeTI(), InMemoryWatermarkStore()).records(records, **kwargs)
    assert isinstance(raised.value, AirflowFailException), "no retry: the same call would fail again"


def test_a_bad_read_boundary_fails_the_task_at_once_before_anything_is_read(memory_store):
    from airflow.providers.resumable.mixins.watermark_runner import WatermarkArgumentError

    store = InMemoryWatermarkStore()
    with pytest.raises(WatermarkArgumentError, match="read_boundary must be True or False, got 'yes'"):
        mark(FakeTI(), store).window(initial_value=0, read_boundary="yes")
    assert memory_store.data == {}, "no window was kept"


def test_records_without_the_boundary_window_drop_nothing_and_say_so(memory_store, caplog):
    one = mark(FakeTI(), InMemoryWatermarkStore())
    one.window(initial_value=0)
    with caplog.at_level("WARNING"):
        assert one.records(source(("a", 1), ("a", 1)), cursor_field="seq", primary_key="id") == source(
            ("a", 1), ("a", 1)
        )
    assert "drops nothing on this run" in caplog.text
    assert "read_boundary=True" in caplog.text
