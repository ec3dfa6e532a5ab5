"""The checkpoint walk driven with a TaskTry and settings, without any operator."""

from __future__ import annotations

import logging
from typing import ClassVar

import pytest
from pydantic import BaseModel

from airflow.providers.resumable.mixins.checkpoint_policies import checkpoint_every_n_batches
from airflow.providers.resumable.mixins.checkpoint_runner import (
    Checkpoints,
    CheckpointSchemaError,
    CheckpointSettings,
    CheckpointWalk,
    walk_batches,
)
from airflow.providers.resumable.state.task_try import TaskTry
from tests.support.context import FakeTI, make_context

log = logging.getLogger(__name__)


class Cursor(BaseModel):
    schema_version: ClassVar[int] = 1
    n: int


def checkpoints(ti: FakeTI | None = None, model=Cursor) -> Checkpoints:
    task_try = TaskTry.from_context(make_context(ti or FakeTI()), owner="task", kind="test")
    return Checkpoints(task_try, CheckpointSettings("walk", "checkpoint", model), log)


def walk(ti: FakeTI | None = None, every: int = 2, **kwargs) -> CheckpointWalk:
    return CheckpointWalk(checkpoints(ti), checkpoint_every_n_batches(every), **kwargs)


def counting(until: int, done: list[int], fail_at: int | None = None):
    def process(cursor: Cursor, index: int) -> Cursor | None:
        if index == fail_at:
            raise RuntimeError(f"failed at {index}")
        done.append(index)
        return Cursor(n=cursor.n + 1) if cursor.n + 1 < until else None

    return process


def test_a_walk_resumes_after_the_last_flushed_batch(memory_store):
    done: list[int] = []
    with pytest.raises(RuntimeError):
        walk_batches(walk(), counting(6, done, fail_at=3), start=Cursor(n=0))
    assert done == [0, 1, 2]
    # The flush on failure wrote batch 3's cursor although the policy wanted every 2.
    assert memory_store.get("walk/checkpoint")["batches_done"] == 3

    done.clear()
    run = walk_batches(walk(FakeTI(try_number=2)), counting(6, done), start=Cursor(n=0))
    assert done == [3, 4, 5]
    assert (run.resumed_from, run.batches_done, run.batches_this_try) == (3, 6, 3)
    assert memory_store.get("walk/checkpoint")["complete"] is True


def test_a_completed_walk_is_not_redone_in_the_same_life(memory_store):
    walk_batches(walk(), counting(2, []), start=Cursor(n=0))
    done: list[int] = []
    run = walk_batches(walk(FakeTI(try_number=2)), counting(2, done), start=Cursor(n=0))
    assert run.already_complete
    assert done == []
    assert run.batches_done == 2


def test_the_walk_can_be_stepped_by_hand_like_an_iterator(memory_store):
    steps = walk(every=1)
    assert steps.open(Cursor(n=0))
    assert steps.advance(Cursor(n=1))
    steps.checkpoint()
    assert not steps.advance(None)
    steps.finish()
    assert memory_store.get("walk/checkpoint")["complete"] is True
    assert steps.result().checkpoints_written == 1


def test_failed_flushes_only_once_and_only_pending_work(memory_store):
    saved: list[int] = []
    steps = walk(every=100, save=lambda cursor, index: saved.append(index))
    steps.open(Cursor(n=0))
    steps.failed()
    assert saved == []  # nothing pending
    steps.advance(Cursor(n=1))
    steps.failed()
    steps.failed()
    assert saved == [1]


def test_a_failed_flush_is_logged_not_raised(memory_store, caplog):
    def broken(cursor, index):
        raise ConnectionError("store down")

    steps = walk(every=100, save=broken)
    steps.open(Cursor(n=0))
    steps.advance(Cursor(n=1))
    steps.failed()
    assert "Could not save the checkpoint at batch 1" in caplog.text


def test_checkpoints_refuse_the_wrong_type_and_name_the_key_on_a_bad_document(memory_store):
    points = checkpoints()
    with pytest.raises(TypeError, match="expects a Cursor"):
        points.save({"n": 1})
    points.save(Cursor(n=4), batches_done=4)
    assert points.load() == Cursor(n=4)

    class Other(BaseModel):
        schema_version: ClassVar[int] = 1
        pages: list[int]

    other = Checkpoints(points.task_try, CheckpointSettings("walk", "checkpoint", Other), log)
    with pytest.raises(CheckpointSchemaError, match="does not fit Other"):
        other.load()
    points.clear()
    assert points.load() is None


def test_plain_json_checkpoints_need_no_model(memory_store):
    points = checkpoints(model=None)
    points.save({"next": 3})
    assert points.load() == {"next": 3}


def test_async_steps_write_through_the_stores_async_path(memory_store):
    import asyncio

    steps = walk(every=1)
    assert steps.open(Cursor(n=0))
    steps.advance(Cursor(n=1))
    asyncio.run(steps.acheckpoint())
    assert memory_store.get("walk/checkpoint")["batches_done"] == 1
    steps.advance(None)
    asyncio.run(steps.afinish())
    assert memory_store.get("walk/checkpoint")["complete"] is True
    assert steps.result().checkpoints_written == 1
