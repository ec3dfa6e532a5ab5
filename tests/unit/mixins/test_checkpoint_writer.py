"""The background checkpoint writer: order, coalescing, failures, flushes, and no thread left behind."""

from __future__ import annotations

import logging
import threading
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel

from airflow.providers.resumable.mixins.checkpoint_policies import (
    checkpoint_every_n_batches,
    checkpoint_within_budget,
)
from airflow.providers.resumable.mixins.checkpoint_runner import (
    Checkpoints,
    CheckpointSettings,
    CheckpointWalk,
    walk_batches,
)
from airflow.providers.resumable.mixins.checkpoint_writer import CheckpointWriter
from airflow.providers.resumable.state.task_try import TaskTry
from tests.support.context import FakeTI, make_context

log = logging.getLogger(__name__)

pytestmark = pytest.mark.background_writes


def writer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("checkpoint-writer-") and t.is_alive()]


@pytest.fixture(autouse=True)
def no_thread_left_behind():
    before = set(writer_threads())
    yield
    left = [t for t in writer_threads() if t not in before]
    for thread in left:
        thread.join(2)
    assert [t for t in left if t.is_alive()] == [], "a writer thread outlived its walk"


class GatedStore:
    """A slow store: each write waits until the test opens the gate; records what landed, in order."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.gate = threading.Event()
        self.started = threading.Event()
        self.landed: list[int] = []
        self.fail_at = fail_at
        self.failed = False

    def write(self, cursor: Any, index: int) -> None:
        self.started.set()
        assert self.gate.wait(5), "the test never opened the gate"
        if index == self.fail_at:
            raise ConnectionError(f"store down at {index}")
        self.landed.append(index)


def test_writes_land_in_order_and_newer_checkpoints_coalesce():
    store = GatedStore()
    writer = CheckpointWriter(store.write, name="t")
    writer.submit("c1", 1)
    assert store.started.wait(5)  # write 1 is in flight
    for index in (2, 3, 4):  # taken while it is: only the newest is worth writing
        writer.submit(f"c{index}", index)
    assert writer.busy
    store.gate.set()
    writer.close()
    assert store.landed == [1, 4]
    assert (writer.written, writer.coalesced) == (2, 2)
    assert writer.durable is not None
    assert writer.durable[0] == 4
    assert not writer.busy


def test_a_failed_write_is_raised_in_the_walk_and_refuses_more():
    store = GatedStore(fail_at=1)
    store.gate.set()
    writer = CheckpointWriter(store.write, name="t")
    writer.submit("c1", 1)
    with pytest.raises(ConnectionError, match="store down at 1"):
        writer.flush(5)
    with pytest.raises(ConnectionError):
        writer.raise_if_failed()
    with pytest.raises(ConnectionError):
        writer.submit("c2", 2)
    with pytest.raises(ConnectionError):
        writer.close()
    assert store.landed == []


def test_flush_waits_for_what_was_handed_over_and_times_out_when_the_store_hangs():
    store = GatedStore()
    writer = CheckpointWriter(store.write, name="t")
    writer.submit("c1", 1)
    assert writer.flush(0.05) is False  # a store call that hangs: the kill path gives up
    store.gate.set()
    assert writer.flush(5) is True
    assert store.landed == [1]
    writer.close()


def test_abandon_drops_what_waits_as_a_hard_kill_would():
    store = GatedStore()
    writer = CheckpointWriter(store.write, name="t")
    writer.submit("c1", 1)
    assert store.started.wait(5)
    writer.submit("c2", 2)
    writer.abandon()
    store.gate.set()
    writer._thread.join(5)  # the write in flight may land; the one waiting never does
    assert store.landed == [1]


def test_durable_says_when_the_covered_cursor_was_taken():
    ticks = iter([10.0, 11.0, 12.5])  # taken, write began, write ended
    store = GatedStore()
    store.gate.set()
    writer = CheckpointWriter(store.write, name="t", clock=lambda: next(ticks))
    writer.submit("c1", 7)
    writer.close()
    assert writer.durable == (7, 10.0)
    assert writer.take_costs() == [1.5]
    assert writer.take_costs() == []


# ---- the walk with a writer -------------------------------------------------------------------------


class Cursor(BaseModel):
    schema_version: ClassVar[int] = 1
    n: int


class RecordingCheckpoints(Checkpoints):
    """Checkpoints whose writes are slow and checked: never ahead of the batches the walk finished."""

    def __init__(self, task_try: TaskTry, finished: list[int], fail_at: int | None = None) -> None:
        super().__init__(task_try, CheckpointSettings("walk", "checkpoint", Cursor), log)
        self.finished = finished
        self.writes: list[tuple[int | None, bool, str]] = []
        self.fail_at = fail_at
        self.failed = False

    def write(self, checkpoint: Any, *, batches_done: int | None, complete: bool) -> None:
        # The cursor of batch N is written only once batches 0..N-1 are done (durable).
        assert batches_done is not None
        assert batches_done <= len(self.finished)
        assert checkpoint.n == batches_done or complete
        self.writes.append((batches_done, complete, threading.current_thread().name))
        if self.fail_at is not None and batches_done >= self.fail_at and not complete and not self.failed:
            # Once, at the first write from batch ``fail_at`` on (a coalesced write may skip it).
            self.failed = True
            raise ConnectionError(f"store down at batch {batches_done}")
        threading.Event().wait(0.002)  # a slow store
        super().write(checkpoint, batches_done=batches_done, complete=complete)


def background_walk(finished: list[int], fail_at: int | None = None, every: int = 1):
    task_try = TaskTry.from_context(make_context(FakeTI()), owner="task", kind="test")
    checkpoints = RecordingCheckpoints(task_try, finished, fail_at)
    walk: CheckpointWalk[Cursor] = CheckpointWalk(checkpoints, checkpoint_every_n_batches(every), background=True)
    return walk, checkpoints


def process_until(total: int, finished: list[int], fail_at: int | None = None):
    def process(cursor: Cursor, index: int) -> Cursor | None:
        if index == fail_at:
            raise RuntimeError(f"batch {index} failed")
        finished.append(index)
        threading.Event().wait(0.001)
        return Cursor(n=cursor.n + 1) if cursor.n + 1 < total else None

    return process


def test_a_background_walk_writes_off_its_thread_in_order_and_marks_complete_last(memory_store):
    finished: list[int] = []
    walk, checkpoints = background_walk(finished)
    run = walk_batches(walk, process_until(30, finished), start=Cursor(n=0))
    assert run.batches_done == 30
    progress = [w for w in checkpoints.writes if not w[1]]
    assert progress, "no checkpoint was written during the walk"
    assert all(thread.startswith("checkpoint-writer-") for _, _, thread in progress)
    indexes = [w[0] for w in progress]
    assert indexes == sorted(indexes), "writes out of order"
    assert len(set(indexes)) == len(indexes), "a checkpoint written twice"
    assert checkpoints.writes[-1][:2] == (30, True), "the complete mark is written after every background write"
    assert run.checkpoints_written == len(progress)
    assert memory_store.get("walk/checkpoint")["complete"] is True


def test_a_failure_in_the_walk_waits_for_the_writer_then_flushes_the_last_finished_batch(memory_store):
    finished: list[int] = []
    walk, checkpoints = background_walk(finished, every=4)
    with pytest.raises(RuntimeError, match="batch 10 failed"):
        walk_batches(walk, process_until(30, finished, fail_at=10), start=Cursor(n=0))
    assert memory_store.get("walk/checkpoint")["batches_done"] == 10
    assert checkpoints.writes[-1][0] == 10


def test_a_failed_background_write_fails_the_walk_with_the_stores_error(memory_store):
    finished: list[int] = []
    walk, _ = background_walk(finished, fail_at=3)
    with pytest.raises(ConnectionError, match="store down at batch"):
        walk_batches(walk, process_until(200, finished), start=Cursor(n=0))
    # Surfaced at one of the next steps, not at the end of the walk.
    assert len(finished) < 200
    # And the failure's flush wrote the newest cursor synchronously instead.
    stored = memory_store.get("walk/checkpoint")
    assert stored["batches_done"] == len(finished)
    assert stored["complete"] is False


def test_a_kill_flushes_what_the_writer_holds(memory_store):
    store = GatedStore()
    task_try = TaskTry.from_context(make_context(FakeTI()), owner="task", kind="test")
    writer = CheckpointWriter(store.write, name="t")
    task_try.adopt_writer(writer)
    writer.submit("c1", 1)
    store.gate.set()
    task_try.note_killed(flush_timeout=5)
    assert store.landed == [1]
    task_try.close_writers()
    assert writer_threads() == [] or all(t is not writer._thread for t in writer_threads())


def test_background_false_never_starts_a_thread(memory_store):
    finished: list[int] = []
    task_try = TaskTry.from_context(make_context(FakeTI()), owner="task", kind="test")
    checkpoints = RecordingCheckpoints(task_try, finished)
    walk: CheckpointWalk[Cursor] = CheckpointWalk(checkpoints, checkpoint_every_n_batches(1), background=False)
    walk_batches(walk, process_until(5, finished), start=Cursor(n=0))
    assert {thread for _, _, thread in checkpoints.writes} == {threading.current_thread().name}


def test_the_default_asks_airflow_and_writes_synchronously_outside_a_task(memory_store, caplog):
    from airflow.providers.resumable.compat.airflow import checkpoint_writes_off_thread

    finished: list[int] = []
    task_try = TaskTry.from_context(make_context(FakeTI()), owner="task", kind="test")
    checkpoints = RecordingCheckpoints(task_try, finished)
    walk: CheckpointWalk[Cursor] = CheckpointWalk(checkpoints, checkpoint_every_n_batches(1))
    walk_batches(walk, process_until(5, finished), start=Cursor(n=0))
    threads = {thread for _, _, thread in checkpoints.writes}
    if checkpoint_writes_off_thread() is None:  # Airflow 2: a thread has its own ORM session
        assert any(t.startswith("checkpoint-writer-") for t in threads)
    else:  # Airflow 3 outside a task process: no supervisor comms to share
        assert threads == {threading.current_thread().name}


def test_the_budget_policy_in_the_background_plans_for_half_the_redo_bound():
    policy = checkpoint_within_budget()
    # Synchronous: the overhead budget (20 ms / 2% = 1 s) meets the redo bound (1 - 2*20 ms - 5 ms).
    assert policy.interval(0.020, 0.005) == pytest.approx(0.955)
    # In the background the walk does not wait: half the bound, leaving the rest to a stalled write.
    assert policy.interval(0.020, 0.005, background=True) == pytest.approx(0.5)
    assert policy.interval(0.001, 0.0, background=True) == pytest.approx(0.5)
    # Never more often than the floor, nor than the store can write.
    assert policy.interval(0.7, 0.0, background=True) == pytest.approx(0.7)
    assert policy.over_budget(0.020) is True  # synchronous: 2% and 1 s cannot both hold
    assert policy.over_budget(0.020, background=True) is False
    assert policy.over_budget(0.6, background=True) is True


def test_the_budget_walk_counts_from_when_a_checkpoint_was_taken_not_when_it_landed():
    walk = checkpoint_within_budget().start()
    walk.writes_in_background()
    walk.checkpoint_taken()
    assert walk.should_checkpoint(10, 0.19) is False  # floor before any measurement
    assert walk.should_checkpoint(11, 0.21) is True
    walk.checkpoint_taken()  # the next window starts here ...
    assert walk.record_write(0.02) is None  # ... and a write that lands later does not restart it
    assert walk.should_checkpoint(40, 0.45) is False
    assert walk.should_checkpoint(45, 0.51) is True


def test_a_stalled_write_holds_the_walk_one_checkpoint_ahead_of_durable_state(memory_store):
    """A store that stalls must not let the walk run on: what a hard kill redoes stays bounded."""
    finished: list[int] = []
    walk, checkpoints = background_walk(finished)
    seen_when_first_landed: list[int] = []
    gate = threading.Event()
    original = checkpoints.write

    def stalled_first_write(checkpoint, *, batches_done, complete):
        if not seen_when_first_landed and not complete:
            assert gate.wait(5)
            seen_when_first_landed.append(len(finished))
        original(checkpoint, batches_done=batches_done, complete=complete)

    checkpoints.write = stalled_first_write
    threading.Timer(0.3, gate.set).start()
    walk_batches(walk, process_until(100, finished), start=Cursor(n=0))
    # The first checkpoint (after batch 0) stalled for 0.3 s while batches take ~1 ms: the walk took
    # the next checkpoint after batch 1 and waited there, instead of running on through all 100.
    assert seen_when_first_landed == [2]
