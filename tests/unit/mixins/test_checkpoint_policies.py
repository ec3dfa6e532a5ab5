"""The default checkpoint policy, ``checkpoint_within_budget``: pure decisions, then the real walk on a fake clock."""

from __future__ import annotations

import copy
import itertools
import types
from datetime import timedelta
from typing import ClassVar

import pytest

from airflow.providers.resumable.mixins import (
    DEFAULT_CHECKPOINT_POLICY,
    Checkpoint,
    StatefulOperatorMixin,
    checkpoint_every_n_batches,
    checkpoint_every_seconds,
    checkpoint_within_budget,
    make_checkpoint_policy,
    stateful,
)
from airflow.providers.resumable.state import StateBackendConfigError
from airflow.providers.resumable.version_compat import BaseOperator
from tests.support.context import make_context

MS = 0.001


# ---- the interval, as a table -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "write_cost", "batch_seconds", "interval"),
    [
        ("nothing measured yet: the floor, to measure early", None, 0.0, 0.2),
        ("a 1 ms store would write every 50 ms: the floor", 1 * MS, 0.005, 0.2),
        ("5 ms writes: cost / 2%", 5 * MS, 0.005, 0.25),
        ("10 ms writes", 10 * MS, 0.005, 0.5),
        ("19 ms writes: still within the redo bound", 19 * MS, 0.0, 0.95),
        ("30 ms writes: the redo bound (less twice a write) wins over 2%", 30 * MS, 0.0, 0.94),
        ("the redo bound counts the next batch", 30 * MS, 0.1, 0.84),
        ("a write slower than the redo bound: never less than the write", 900 * MS, 0.005, 0.9),
        ("a write slower than max_redo", 2.0, 0.005, 2.0),
    ],
)
def test_interval(case, write_cost, batch_seconds, interval):
    assert DEFAULT_CHECKPOINT_POLICY.interval(write_cost, batch_seconds) == pytest.approx(interval), case


@pytest.mark.parametrize(
    ("case", "write_cost", "slow_write", "interval"),
    [
        ("a slow write shortens the redo bound", 19 * MS, 200 * MS, 0.595),
        ("but not the budget", 5 * MS, 20 * MS, 0.25),
        ("slower than usual is never faster than usual", 30 * MS, 1 * MS, 0.935),
    ],
)
def test_interval_plans_the_redo_bound_for_a_slow_write(case, write_cost, slow_write, interval):
    assert DEFAULT_CHECKPOINT_POLICY.interval(write_cost, 0.005, slow_write) == pytest.approx(interval), case


@pytest.mark.parametrize(
    ("policy", "write_cost", "interval"),
    [
        (checkpoint_within_budget(overhead=0.1), 5 * MS, 0.2),
        (checkpoint_within_budget(overhead=0.01), 5 * MS, 0.5),
        (checkpoint_within_budget(max_redo=5), 50 * MS, 2.5),
        (checkpoint_within_budget(max_redo=timedelta(seconds=10), floor=timedelta(seconds=1)), 1 * MS, 1.0),
    ],
)
def test_interval_with_other_settings(policy, write_cost, interval):
    assert policy.interval(write_cost) == pytest.approx(interval)


@pytest.mark.parametrize(
    ("write_cost", "over"),
    [(1 * MS, False), (19 * MS, False), (19.3 * MS, True), (50 * MS, True)],
)
def test_over_budget_when_two_percent_and_one_second_cannot_both_hold(write_cost, over):
    assert DEFAULT_CHECKPOINT_POLICY.over_budget(write_cost) is over


# ---- one walk's state ---------------------------------------------------------------------------------


def test_first_write_after_the_floor():
    walk = DEFAULT_CHECKPOINT_POLICY.start()
    assert not walk.should_checkpoint(0, 10.0)
    assert not walk.should_checkpoint(3, 0.19)
    assert walk.should_checkpoint(3, 0.2)


def test_write_cost_is_the_median_of_recent_writes():
    walk = DEFAULT_CHECKPOINT_POLICY.start()
    for cost in (5 * MS, 500 * MS, 5 * MS):  # one slow write among fast ones
        walk.record_write(cost)
    assert walk.write_cost == 5 * MS
    assert not walk.should_checkpoint(50, 0.24)
    assert walk.should_checkpoint(50, 0.25)


def test_the_redo_bound_plans_for_the_second_slowest_recent_write():
    walk = DEFAULT_CHECKPOINT_POLICY.start()
    for cost in (15 * MS, 600 * MS, 15 * MS, 300 * MS, 15 * MS):
        walk.record_write(cost)
    assert walk.write_cost == 15 * MS
    assert walk.slow_write == 300 * MS, "the 600 ms outlier alone does not count"
    # 100 batches of about 4 ms: the bound is 1 - 2 * 0.3 - 0.004 s, below the budget's 0.75 s.
    assert not walk.should_checkpoint(100, 0.38)
    assert walk.should_checkpoint(100, 0.40)


def test_the_redo_bound_plans_for_the_longest_batch_since_the_last_write():
    walk = DEFAULT_CHECKPOINT_POLICY.start()
    for _ in range(3):
        walk.record_write(10 * MS)  # budget: every 0.5 s
    assert not walk.should_checkpoint(1, 0.3)  # one batch of 0.3 s
    assert walk.longest_batch == pytest.approx(0.3)
    assert not walk.should_checkpoint(2, 0.45)
    # 1 - 2 * 0.01 - 0.3 = 0.68 s would be the bound; the budget's 0.5 s comes first.
    assert walk.should_checkpoint(3, 0.5)
    walk.record_write(10 * MS)
    assert walk.longest_batch == 0.0, "a new window after each write"
    slow = DEFAULT_CHECKPOINT_POLICY.start()
    for _ in range(3):
        slow.record_write(100 * MS)  # budget: every 5 s; bound: 1 - 0.2 - the longest batch
    assert not slow.should_checkpoint(1, 0.3)  # a batch of 0.3 s
    assert not slow.should_checkpoint(2, 0.45)  # then one of 0.15 s
    assert slow.should_checkpoint(3, 0.5), "1 - 0.2 - 0.3 = 0.5 s"


def test_the_first_writes_plan_for_the_slowest_until_an_outlier_can_be_told_apart():
    walk = DEFAULT_CHECKPOINT_POLICY.start()
    walk.record_write(80 * MS)
    walk.record_write(30 * MS)
    assert walk.slow_write == 80 * MS
    walk.record_write(30 * MS)
    assert walk.slow_write == 30 * MS


def test_one_slow_write_out_of_two_does_not_move_the_estimate():
    walk = DEFAULT_CHECKPOINT_POLICY.start()
    walk.record_write(5 * MS)
    walk.record_write(800 * MS)
    assert walk.write_cost == 5 * MS


def test_the_estimate_follows_a_store_that_became_slower():
    walk = DEFAULT_CHECKPOINT_POLICY.start()
    for _ in range(5):
        walk.record_write(5 * MS)
    for _ in range(3):
        walk.record_write(10 * MS)
    assert walk.write_cost == 10 * MS


def test_a_slow_store_is_reported_once_per_walk_after_three_writes():
    walk = DEFAULT_CHECKPOINT_POLICY.start()
    notes = [walk.record_write(50 * MS) for _ in range(6)]
    assert notes[:2] == [None, None]
    assert notes[3:] == [None, None, None]
    assert notes[2] == (
        "Checkpoint writes take 50 ms on this state store, too slow for both 2% overhead and 1 s of redo after "
        "a hard kill: writing every 0.90 s to bound the redo, which spends about 5.3% of the walk on checkpoints. "
        "Pass checkpoint_interval (seconds) to trade redo for speed."
    )
    assert DEFAULT_CHECKPOINT_POLICY.start().record_write(50 * MS) is None, "a new walk starts over"


def test_a_fast_store_is_not_reported():
    walk = DEFAULT_CHECKPOINT_POLICY.start()
    assert [walk.record_write(5 * MS) for _ in range(10)] == [None] * 10


def test_walks_of_a_shared_policy_do_not_share_measurements():
    shared = DEFAULT_CHECKPOINT_POLICY
    slow, fresh = shared.start(), shared.start()
    assert slow is not fresh
    assert slow is not shared
    for _ in range(5):
        slow.record_write(15 * MS)
    assert slow.should_checkpoint(10, 0.5) is False
    assert fresh.should_checkpoint(10, 0.5) is True, "the fresh walk has measured nothing: floor"
    assert fresh.write_cost is None


def test_the_shared_policy_itself_refuses_to_decide():
    with pytest.raises(TypeError, match=r"keeps per-walk measurements: ask the object its start\(\) returns"):
        DEFAULT_CHECKPOINT_POLICY.should_checkpoint(1, 1.0)


def test_composed_with_another_policy_each_walk_starts_fresh():
    policy = checkpoint_within_budget() | checkpoint_every_n_batches(100)
    walk = policy.start()
    assert walk is not policy
    assert walk.should_checkpoint(100, 0.0), "every 100 batches"
    assert walk.should_checkpoint(1, 0.2), "the budget's floor before any write"
    for _ in range(3):
        note = walk.record_write(50 * MS)
    assert note is not None
    assert note.startswith("Checkpoint writes take 50 ms")
    assert not walk.should_checkpoint(50, 0.5)
    assert policy.start().should_checkpoint(50, 0.5), "the next walk has not measured anything"


def test_stateless_policies_are_their_own_walk():
    every = checkpoint_every_n_batches(3) | checkpoint_every_seconds(10)
    assert every.start() is every
    assert every.record_write(1.0) is None


# ---- arguments --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"overhead": 0}, ValueError, r"overhead must be a fraction of wall time between 0 and 1 \(0.02 = 2%\), got 0"),
        ({"overhead": 2}, ValueError, r"overhead must be .* got 2"),
        ({"overhead": float("nan")}, ValueError, r"overhead must be .* got nan"),
        ({"overhead": "2%"}, TypeError, r"overhead must be a fraction of wall time, got str '2%'"),
        ({"max_redo": 0}, ValueError, r"max_redo must be a finite number of seconds > 0, got 0"),
        ({"max_redo": "1s"}, TypeError, r"max_redo must be a number of seconds or a timedelta, got str '1s'"),
        ({"floor": -1}, ValueError, r"floor must be a finite number of seconds > 0, got -1"),
        ({"floor": 2}, ValueError, r"floor must be <= max_redo \(1 s\), got 2"),
        ({"window": 0}, ValueError, r"window must be an int >= 1 \(a number of writes\), got 0"),
    ],
)
def test_bad_arguments_say_which_and_what(kwargs, error, message):
    with pytest.raises(error, match=message):
        checkpoint_within_budget(**kwargs)


def test_repr_is_what_the_task_log_shows():
    assert repr(DEFAULT_CHECKPOINT_POLICY) == "checkpoint_within_budget(overhead=0.02, max_redo=1, floor=0.2)"
    assert repr(DEFAULT_CHECKPOINT_POLICY.start()) == repr(DEFAULT_CHECKPOINT_POLICY)


def test_make_checkpoint_policy():
    assert make_checkpoint_policy() is DEFAULT_CHECKPOINT_POLICY
    assert repr(make_checkpoint_policy(checkpoint_interval=5)) == "checkpoint_every_seconds(5)"
    assert repr(make_checkpoint_policy(checkpoint_every=1)) == "checkpoint_every_n_batches(1)"


# ---- the real walk (run_batches) on a fake clock ------------------------------------------------------


class Cursor(Checkpoint):
    schema_version: ClassVar[int] = 1
    n: int


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


class TimedWalk(StatefulOperatorMixin, BaseOperator):
    """``batches`` batches of ``batch_seconds`` each on the fake clock; records where each write landed."""

    checkpoint_model = Cursor

    def __init__(self, *, clock: FakeClock, batches: int, batch_seconds: float, **kwargs):
        super().__init__(**kwargs)
        self.clock = clock
        self.batches = batches
        self.batch_seconds = batch_seconds
        self.writes: list[tuple[float, int]] = []

    def save_checkpoint(self, context, checkpoint, *, batches_done=None):
        super().save_checkpoint(context, checkpoint, batches_done=batches_done)
        self.writes.append((self.clock.now, batches_done))

    def execute(self, context):
        def process(cursor: Cursor, index: int) -> Cursor | None:
            self.clock.now += self.batch_seconds
            return Cursor(n=cursor.n + 1) if cursor.n + 1 < self.batches else None

        return self.run_batches(context, process, start=Cursor(n=0))


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(stateful, "time", types.SimpleNamespace(monotonic=fake.monotonic))
    return fake


@pytest.fixture
def store_costing(memory_store, clock):
    """Every state write takes ``cost`` seconds on the fake clock."""

    def _cost(cost: float):
        inner_set = memory_store.set

        def timed_set(key, value):
            inner_set(key, value)
            clock.now += cost

        memory_store.set = timed_set
        return memory_store

    return _cost


def walk(clock, **kwargs):
    # The synchronous policy on a fake clock (test_checkpoint_writer.py covers writes in the background).
    kwargs.setdefault("background_checkpoints", False)
    op = TimedWalk(task_id="walk", clock=clock, **kwargs)
    started = clock.now
    run = op.execute(make_context())
    # A kill before the first write redoes from the start; the walk's end is durable too (complete).
    durable = [(started, 0), *op.writes, (clock.now, run.batches_done)]
    gaps = [(b[0] - a[0], b[1] - a[1]) for a, b in itertools.pairwise(durable)]
    return op, run, clock.now - started, gaps


@pytest.mark.parametrize(("write_ms", "expected_writes"), [(5, 19), (10, 9)])
def test_fast_store_stays_within_two_percent_and_one_second(clock, store_costing, write_ms, expected_writes):
    store_costing(write_ms * MS)
    _, run, wall, gaps = walk(clock, batches=1000, batch_seconds=5 * MS)
    assert run.checkpoints_written == expected_writes
    written = run.checkpoints_written * write_ms * MS
    assert written / (wall - written) <= 0.02
    assert max(seconds for seconds, _ in gaps) <= 1.0


def test_slow_store_keeps_the_redo_bound_and_says_so(clock, store_costing, monkeypatch):
    store_costing(50 * MS)
    warnings: list[str] = []
    monkeypatch.setattr(
        TimedWalk, "log", types.SimpleNamespace(info=lambda *a: None, warning=warnings.append), raising=False
    )
    _, run, _, gaps = walk(clock, batches=1000, batch_seconds=5 * MS)
    assert max(seconds for seconds, _ in gaps) <= 1.0
    # 5 s of batches: the first write at 0.2 s, then one per 1 - 2 * 0.05 - 0.005 s of batches.
    assert run.checkpoints_written == 6
    said = [w for w in warnings if w.startswith("Checkpoint writes take")]
    assert len(said) == 1
    assert said[0].startswith("Checkpoint writes take 50 ms on this state store")


def test_explicit_interval_keeps_its_meaning(clock, store_costing):
    store_costing(5 * MS)
    op, run, _, gaps = walk(clock, batches=1000, batch_seconds=5 * MS, checkpoint_interval=2)
    assert repr(op.checkpoint_policy) == "checkpoint_every_seconds(2)"
    assert run.checkpoints_written == 2, "5 s of batches, one write per 2 s"
    # 2 s of 5 ms batches (400, or 401 as floating point adds them up), not a budget's interval.
    assert [batches in (400, 401) for _, batches in gaps[:-1]] == [True, True]


def test_deep_copied_operators_measure_their_own_walks(clock, store_costing):
    store = store_costing(50 * MS)
    # Binary fractions of a second add up exactly: the floor (0.2 s) is reached at batch 26 (26/128 s).
    first = TimedWalk(task_id="walk", clock=clock, batches=400, batch_seconds=1 / 128)
    second = copy.deepcopy(first, {id(clock): clock})  # the copy walks on the same fake clock
    assert second.checkpoint_policy == first.checkpoint_policy
    first.execute(make_context())
    store.clear()  # else the second walk finds the first one's complete checkpoint and returns at once
    second.execute(make_context())
    assert first.writes[0][1] == 26
    assert [b for _, b in second.writes] == [b for _, b in first.writes], "the second walk starts unmeasured"


def test_checkpoint_arguments_are_checked_when_the_dag_is_parsed(state_backend):
    from airflow.providers.resumable.mixins.checkpoint_policies import checkpoint_arguments

    assert checkpoint_arguments(None, None, False) is DEFAULT_CHECKPOINT_POLICY
    with pytest.raises(TypeError, match="allow_secrets_in_state must be True or False, got 'yes'"):
        checkpoint_arguments(None, None, "yes")
    state_backend("varaible")
    with pytest.raises(StateBackendConfigError, match="'varaible'"):
        checkpoint_arguments(5, None, False)
