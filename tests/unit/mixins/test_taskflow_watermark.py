"""The TaskFlow handle's watermarks with a TaskTry and no operator; the rules are the runner's."""

from __future__ import annotations

import asyncio
import functools

import pytest

from airflow.providers.resumable.plugins.resumable import listener
from tests.support.context import FakeTI, make_context
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


# ---- records at the mark, once (the mixin's watermark_window(read_boundary) / watermark_records) -----


def rows(*pairs: tuple[str, int]) -> list[dict]:
    return [{"id": item, "seq": seq} for item, seq in pairs]


def strict(source: list[dict], since: int) -> list[dict]:
    return [r for r in source if r["seq"] > since]


def test_the_handle_delivers_late_writers_at_the_mark_once(memory_store, mark):
    source = rows(("a", 1), ("b", 2))
    first = FakeTI(run_id="one")
    h = handle(first)
    window = h.watermark_window(initial_value=0, read_boundary=True)
    new = h.watermark_records(strict(source, window.since), cursor_field="seq", primary_key="id")
    h.advance_watermark(max(r["seq"] for r in new))
    listener.on_task_instance_success(None, first)
    assert mark.read()["boundary"], "the records at the mark are kept with it"

    source += rows(("c", 2), ("d", 3))  # c: a late writer at the mark
    second = FakeTI(run_id="two")
    h = handle(second)
    window = h.watermark_window(read_boundary=True)
    assert window.since == 1, "one below the mark, so a strict source returns the mark's records"
    assert h.watermark_records(strict(source, window.since), cursor_field="seq", primary_key="id") == rows(
        ("c", 2), ("d", 3)
    )
    h.advance_watermark(3)
    listener.on_task_instance_success(None, second)
    assert mark.read()["value"] == 3


def test_named_marks_keep_their_own_boundary(memory_store, mark):
    h = handle(FakeTI(run_id="one"))
    h.watermark_window(initial_value=0, read_boundary=True, name="orders")
    h.watermark_window(initial_value=0, name="users")
    assert h.watermark_records(rows(("a", 1), ("a", 1)), cursor_field="seq", name="orders") == rows(("a", 1))
    assert h.watermark_records(rows(("a", 1), ("a", 1)), cursor_field="seq", name="users") == rows(("a", 1), ("a", 1))


def test_async_boundary_calls(memory_store, mark):
    async def main():
        h = handle(FakeTI(run_id="async"))
        window = await h.awatermark_window(initial_value=0, read_boundary=True)
        new = await h.awatermark_records(rows(("a", 1), ("a", 1)), cursor_field="seq", primary_key="id")
        return window.read_boundary, new

    assert asyncio.run(main()) == (True, rows(("a", 1)))


@pytest.mark.parametrize("route", ["handle", "mixin"])
@pytest.mark.parametrize(
    ("call", "message"),
    [
        ({"read_boundary": "yes"}, "read_boundary must be True or False, got 'yes'"),
        ({"primary_key": 5}, "primary_key must be a field name or a list of field names, got 5"),
        ({"cursor_field": None}, "cursor_field must be the name of the records' cursor field"),
    ],
)
def test_bad_boundary_arguments_get_one_error_on_both_routes(memory_store, mark, monkeypatch, route, call, message):
    """The handle and WatermarkMixin hand their arguments to the one runner: the same words, failing at once."""
    from airflow.providers.resumable.mixins.watermark_runner import WatermarkArgumentError
    from tests.unit.mixins.test_watermark import Extract

    read_boundary = call.get("read_boundary", True)
    record_args = {"cursor_field": call.get("cursor_field", "seq"), "primary_key": call.get("primary_key")}
    if route == "handle":
        h = handle()
        window = functools.partial(h.watermark_window, initial_value=0)
        records = h.watermark_records
    else:
        monkeypatch.setattr(Extract, "watermark_store", lambda self, context: mark)
        operator, context = Extract(task_id="task"), make_context(FakeTI())
        window = functools.partial(operator.watermark_window, context, initial_value=0)
        records = functools.partial(operator.watermark_records, context)

    def both() -> None:
        window(read_boundary=read_boundary)
        records(rows(("a", 1)), **record_args)

    with pytest.raises(WatermarkArgumentError, match=message):
        both()


@pytest.mark.parametrize("name", [5, "", "  "])
def test_a_mark_name_that_is_not_a_name_fails_at_once(memory_store, mark, name):
    from airflow.providers.resumable.mixins.watermark_runner import WatermarkArgumentError

    with pytest.raises(WatermarkArgumentError, match=rf"watermark name must be a non-empty string .*, got {name!r}"):
        handle().watermark_window(initial_value=0, read_boundary=True, name=name)
