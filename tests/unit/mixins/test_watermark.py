"""WatermarkMixin outside Airflow's runner: parse-time errors, staging vs committing, the listener's success actions."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from pydantic import BaseModel

from airflow.providers.resumable.mixins import WatermarkMixin
from airflow.providers.resumable.plugins.resumable import listener
from airflow.providers.resumable.version_compat import BaseOperator
from airflow.providers.resumable.watermarks.stores import EphemeralWatermarkStore, InMemoryWatermarkStore
from tests.support.context import FakeTI, make_context


class Extract(WatermarkMixin, BaseOperator):
    def __init__(self, *, changes: list[int] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.changes = changes or []

    def execute(self, context: Any) -> Any:
        since = self.load_watermark(context, initial_value=0)
        new = [c for c in self.changes if c > since]
        if new:
            self.advance_watermark(context, max(new))
        return {"since": since, "new": new}


@pytest.fixture
def mark(monkeypatch):
    """One in-memory watermark store for every Extract in the test."""
    store = InMemoryWatermarkStore()
    monkeypatch.setattr(Extract, "watermark_store", lambda self, context: store)
    return store


def succeed(ti: FakeTI) -> None:
    listener.on_task_instance_success(None, ti)


def fail(ti: FakeTI) -> None:
    listener.on_task_instance_failed(None, ti)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"on_overlap": "newest"}, ValueError, "on_overlap must be one of 'max', 'fail', got 'newest'"),
        ({"watermark_asset": "orders"}, TypeError, "watermark_asset must be an Asset"),
    ],
)
def test_bad_arguments_fail_when_the_dag_is_parsed(kwargs, error, message):
    with pytest.raises(error, match=message):
        Extract(task_id="t", **kwargs)


class Position(BaseModel):
    file: str
    offset: int


def test_a_model_watermark_needs_a_merge_rule_for_max():
    class ByModel(Extract):
        watermark_model: ClassVar[type[BaseModel] | None] = Position

    with pytest.raises(TypeError, match="no merge_watermarks"):
        ByModel(task_id="t")
    assert ByModel(task_id="t", on_overlap="fail").on_overlap == "fail"


def test_staged_is_not_committed_until_the_success_is_recorded(memory_store, mark):
    ti = FakeTI(run_id="run1")
    result = Extract(task_id="t", changes=[1, 2, 3]).execute(make_context(ti))
    assert result == {"since": 0, "new": [1, 2, 3]}
    assert mark.document is None, "execute returned, but the success is not recorded yet"
    succeed(ti)
    assert mark.document["value"] == 3
    assert mark.document["commits"][0]["run_id"] == "run1"

    ti2 = FakeTI(run_id="run2")
    assert Extract(task_id="t", changes=[1, 2, 3, 4]).execute(make_context(ti2)) == {"since": 3, "new": [4]}


def test_a_failed_try_drops_what_it_staged(memory_store, mark):
    ti = FakeTI(run_id="run1")
    Extract(task_id="t", changes=[5]).execute(make_context(ti))
    fail(ti)
    succeed(ti)  # nothing pending any more: a later success of another try must stage again
    assert mark.document is None


def test_the_last_value_staged_in_a_try_wins(memory_store, mark):
    ti = FakeTI(run_id="run1")
    op = Extract(task_id="t")
    context = make_context(ti)
    op.advance_watermark(context, 4)
    op.advance_watermark(context, 7)
    succeed(ti)
    assert (mark.document["value"], mark.document["version"]) == (7, 1)


def test_values_are_checked_when_staged(memory_store, mark):
    op = Extract(task_id="t")
    with pytest.raises(ValueError, match="advance_watermark value must not be None"):
        op.advance_watermark(make_context(), None)
    with pytest.raises(ValueError, match="must be a JSON value"):
        op.advance_watermark(make_context(), object())


def test_a_model_watermark_round_trips(memory_store, mark):
    class ByModel(Extract):
        watermark_model: ClassVar[type[BaseModel] | None] = Position

        def merge_watermarks(self, committed, ours):
            return max(committed, ours, key=lambda p: (p["file"], p["offset"]))

    ti = FakeTI(run_id="run1")
    op = ByModel(task_id="t")
    assert op.load_watermark(make_context(ti)) is None
    with pytest.raises(TypeError, match="must be a Position"):
        op.advance_watermark(make_context(ti), {"file": "a", "offset": 1})
    op.advance_watermark(make_context(ti), Position(file="a", offset=10))
    succeed(ti)
    assert ByModel(task_id="t").load_watermark(make_context(FakeTI(run_id="run2"))) == Position(file="a", offset=10)


def test_outside_a_task_instance_nothing_is_kept():
    op = Extract(task_id="t", changes=[1, 2])
    assert isinstance(op.watermark_store({}), EphemeralWatermarkStore)
    assert op.execute({}) == {"since": 0, "new": [1, 2]}
    assert Extract(task_id="t", changes=[1, 2]).execute({}) == {"since": 0, "new": [1, 2]}
