"""
When ``run_batches`` writes a checkpoint: small strategies composed with ``|``, as tenacity's stops.

A policy answers ``should_checkpoint(batches_since, seconds_since)`` after every batch but the last.
``run_batches`` calls ``start()`` once per walk and asks the object it returns, then reports each
write's duration to that object with ``record_write(seconds)``. Stateless policies return
themselves from ``start()``. A policy that learns during a walk (``checkpoint_within_budget``)
returns a fresh object, so one policy instance can be shared by many operators (a module constant, a
DAG-level default, every deep copy of an operator) without one walk's measurements leaking into
another's.

The policies take durations, never read a clock: ``run_batches`` times the walk and the writes, and
tests drive a policy with whatever durations they like.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from datetime import timedelta
from typing import Any


class CheckpointPolicy:
    """When to write a checkpoint, given batches and seconds since the last one."""

    def should_checkpoint(self, batches_since: int, seconds_since: float) -> bool:
        raise NotImplementedError

    def start(self) -> CheckpointPolicy:
        """The object to ask during one walk; a policy that keeps per-walk state returns a fresh one."""
        return self

    def record_write(self, seconds: float) -> str | None:
        """
        Told after each checkpoint write of the walk how long it took.

        Returns a message for the task log when the policy has something to say about the store (at
        most once per walk), else None.
        """
        return None

    def checkpoint_taken(self) -> None:
        """
        Told when the walk takes a checkpoint (before its write, which may end later on a writer thread).

        From then on ``should_checkpoint`` counts batches and seconds from this checkpoint.
        """

    def writes_in_background(self) -> None:
        """
        Told once, before the first question, that this walk's writes do not stop the walk.

        A write then costs the walk nothing, but what a hard kill redoes still runs until the *next*
        write has ended (``checkpoint_writer``).
        """

    def __or__(self, other: CheckpointPolicy) -> CheckpointPolicy:
        return checkpoint_any(self, other)


def _seconds(name: str, value: float | timedelta, *, allow_zero: bool = False) -> float:
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise TypeError(f"{name} must be a number of seconds or a timedelta, got {type(value).__name__} {value!r}")
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number of seconds {bound}, got {value!r}")
    return float(seconds)


class checkpoint_every_n_batches(CheckpointPolicy):
    def __init__(self, n: int) -> None:
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError(f"checkpoint_every must be an int (a number of batches), got {type(n).__name__} {n!r}")
        if n < 1:
            raise ValueError(f"checkpoint_every must be >= 1, got {n!r}")
        self.n = n

    def should_checkpoint(self, batches_since: int, seconds_since: float) -> bool:
        return batches_since >= self.n

    def __repr__(self) -> str:
        return f"checkpoint_every_n_batches({self.n})"


class checkpoint_every_seconds(CheckpointPolicy):
    def __init__(self, seconds: float | timedelta) -> None:
        self.seconds = _seconds("checkpoint_interval", seconds)

    def should_checkpoint(self, batches_since: int, seconds_since: float) -> bool:
        return batches_since > 0 and seconds_since >= self.seconds

    def __repr__(self) -> str:
        return f"checkpoint_every_seconds({self.seconds:g})"


class checkpoint_any(CheckpointPolicy):
    def __init__(self, *policies: CheckpointPolicy) -> None:
        self.policies = policies

    def should_checkpoint(self, batches_since: int, seconds_since: float) -> bool:
        # Every policy is asked, not only up to the first yes: one that learns sees every batch.
        return any([p.should_checkpoint(batches_since, seconds_since) for p in self.policies])

    def start(self) -> CheckpointPolicy:
        started = tuple(p.start() for p in self.policies)
        if all(s is p for s, p in zip(started, self.policies, strict=True)):
            return self
        return checkpoint_any(*started)

    def record_write(self, seconds: float) -> str | None:
        notes = [p.record_write(seconds) for p in self.policies]
        return next((n for n in notes if n), None)

    def checkpoint_taken(self) -> None:
        for p in self.policies:
            p.checkpoint_taken()

    def writes_in_background(self) -> None:
        for p in self.policies:
            p.writes_in_background()

    def __repr__(self) -> str:
        return " | ".join(repr(p) for p in self.policies)


class checkpoint_within_budget(CheckpointPolicy):
    """
    Checkpoint as often as an overhead budget allows, but at least every ``max_redo`` seconds.

    Each write's duration is measured; with ``cost`` the median of the last ``window`` writes (one slow
    write, such as the first on a cold connection, does not move it), the walk writes once
    ``cost / overhead`` seconds of batches have passed since the last write, so writing takes about
    ``overhead`` of the walk's time: a fast store checkpoints often, a slow one rarely. Two bounds:

    * never more often than every ``floor`` seconds, whatever the store's speed, so a fast walk on a
      fast store does not load the metadata database with a write every few milliseconds;
    * never later than ``max_redo`` seconds after the last durable checkpoint, counting the next
      batch and the write itself, so a hard kill (SIGKILL, OOM, a lost node) redoes at most
      ``max_redo`` seconds of batches. On a loaded machine batches and writes vary, so the bound plans
      for the longest batch since the last write and for a write twice as slow as the second
      slowest of the recent ones (not the slowest, so one outlier does not shorten every interval;
      the slowest while there are fewer than three).

    On a store too slow for both (a write costing more than ``overhead * max_redo / (1 + 2 *
    overhead)``: 19 ms with the defaults), **the redo bound wins**: writes come a little more often
    than every ``max_redo`` seconds and take more than ``overhead`` of the walk, and the task log
    says so once per walk, with the write cost and the resulting overhead. Only a store slower
    still, whose write takes longer than the batches between two writes, is written to less often
    than ``max_redo``: the interval never drops below the cost of a write, so at most half of the
    walk is spent writing.

    Before the first write there is no measurement: the first checkpoint is written after ``floor``
    seconds, which measures the store early in the walk.

    The object holds only configuration; ``start()`` returns the per-walk state (``run_batches`` calls
    it), so one instance may be shared by any number of operators and walks.

    :param overhead: the share of the walk's wall time that checkpoint writes may take (0 < overhead < 1).
    :param max_redo: the most work, in seconds (or a ``timedelta``), a hard kill should redo.
    :param floor: the shortest time between two writes, in seconds (or a ``timedelta``); <= ``max_redo``.
    :param window: how many recent writes the cost estimate is the median of.
    """

    def __init__(
        self,
        overhead: float = 0.02,
        max_redo: float | timedelta = 1.0,
        floor: float | timedelta = 0.2,
        window: int = 5,
    ) -> None:
        if isinstance(overhead, bool) or not isinstance(overhead, int | float):
            raise TypeError(f"overhead must be a fraction of wall time, got {type(overhead).__name__} {overhead!r}")
        if not (math.isfinite(overhead) and 0 < overhead < 1):
            raise ValueError(f"overhead must be a fraction of wall time between 0 and 1 (0.02 = 2%), got {overhead!r}")
        self.overhead = float(overhead)
        self.max_redo = _seconds("max_redo", max_redo)
        self.floor = _seconds("floor", floor)
        if self.floor > self.max_redo:
            raise ValueError(f"floor must be <= max_redo ({self.max_redo:g} s), got {floor!r}")
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ValueError(f"window must be an int >= 1 (a number of writes), got {window!r}")
        self.window = window

    def start(self) -> CheckpointPolicy:
        return _BudgetWalk(self)

    def should_checkpoint(self, batches_since: int, seconds_since: float) -> bool:
        raise TypeError(
            f"{self!r} keeps per-walk measurements: ask the object its start() returns, once per walk "
            "(run_batches does)"
        )

    def interval(
        self,
        write_cost: float | None,
        batch_seconds: float = 0.0,
        slow_write: float | None = None,
        *,
        background: bool = False,
    ) -> float:
        """
        Seconds of batches between two checkpoints.

        ``write_cost`` is a typical write (it sets the budget); ``slow_write`` a slow one (default: the
        typical one) and ``batch_seconds`` a long batch, which the redo bound plans for: the next batch
        and a write of up to twice ``slow_write`` still end within ``max_redo``. Pure, so the whole
        policy can be tabled: ``None`` (nothing measured yet) gives ``floor``.

        ``background``: the writes do not stop the walk (``checkpoint_writer``), so the overhead
        budget does not bind; the walk checkpoints every ``max_redo / 2`` (within the same redo
        bound, never more often than ``floor`` or than the store can write), which leaves half the
        bound for a write that stalls: what a kill redoes runs until the next write has *ended*.
        """
        if write_cost is None:
            return self.floor
        deadline = self.max_redo - 2 * max(write_cost, slow_write or 0.0) - batch_seconds
        target = self.max_redo / 2 if background else write_cost / self.overhead
        return max(self.floor, write_cost, min(target, deadline))

    def over_budget(self, write_cost: float, *, background: bool = False) -> bool:
        """
        Whether writes of this cost break a promise: the overhead budget (the redo bound wins).

        In the background there is no overhead to break; writes too slow for the redo bound itself
        (two of them, the one in flight and the next, outlast ``max_redo``) are.
        """
        if background:
            return 2 * write_cost > self.max_redo
        return write_cost / self.overhead > self.max_redo - 2 * write_cost

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, checkpoint_within_budget):
            return NotImplemented
        return (self.overhead, self.max_redo, self.floor, self.window) == (
            other.overhead,
            other.max_redo,
            other.floor,
            other.window,
        )

    def __hash__(self) -> int:
        return hash((self.overhead, self.max_redo, self.floor, self.window))

    def __repr__(self) -> str:
        return f"checkpoint_within_budget(overhead={self.overhead:g}, max_redo={self.max_redo:g}, floor={self.floor:g})"


class _BudgetWalk(CheckpointPolicy):
    """One walk's state for ``checkpoint_within_budget``: the recent write costs."""

    def __init__(self, config: checkpoint_within_budget) -> None:
        self.config = config
        self.costs: deque[float] = deque(maxlen=config.window)
        self._warned = False
        # Since the last write: where the previous question left off, and the longest batch seen.
        self._asked = (0, 0.0)
        self.longest_batch = 0.0
        self.background = False
        self._taken = False

    @property
    def write_cost(self) -> float | None:
        """
        The smoothed cost of one write, None before the first.

        The median of the recent writes (the lower middle one of an even count), so one slow write
        moves it only once the window is mostly slow writes.
        """
        return statistics.median_low(self.costs) if self.costs else None

    @property
    def slow_write(self) -> float | None:
        """
        A slow write, for the redo bound: the second slowest of the recent writes.

        One outlier is ignored only once there are three writes to tell it from the rest: the first
        writes of a walk are often all slow (cold connections and caches), and the bench showed a
        redo past 1 s when the second of two slow writes was trusted.
        """
        if not self.costs:
            return None
        ordered = sorted(self.costs)
        return ordered[-2] if len(ordered) >= 3 else ordered[-1]

    def should_checkpoint(self, batches_since: int, seconds_since: float) -> bool:
        if batches_since <= 0:
            return False
        before, at = self._asked
        if batches_since < before:  # a checkpoint this walk was not told about: a new window anyway
            before, at, self.longest_batch = 0, 0.0, 0.0
        if batches_since > before:
            self.longest_batch = max(self.longest_batch, (seconds_since - at) / (batches_since - before))
        self._asked = (batches_since, seconds_since)
        interval = self.config.interval(
            self.write_cost, self.longest_batch, self.slow_write, background=self.background
        )
        return seconds_since >= interval

    def start(self) -> CheckpointPolicy:
        return _BudgetWalk(self.config)

    def writes_in_background(self) -> None:
        self.background = True

    def checkpoint_taken(self) -> None:
        self._asked, self.longest_batch = (0, 0.0), 0.0
        self._taken = True

    def record_write(self, seconds: float) -> str | None:
        # A walk that never says checkpoint_taken() (a caller of 0.1.0's protocol) takes each write
        # as the start of the next window, as before.
        if not self._taken:
            self._asked, self.longest_batch = (0, 0.0), 0.0
        self.costs.append(max(0.0, seconds))
        cost = self.write_cost
        assert cost is not None
        # Judged on three writes at least, so a single slow one (a cold connection) does not warn.
        if (
            self._warned
            or len(self.costs) < min(3, self.config.window)
            or not self.config.over_budget(cost, background=self.background)
        ):
            return None
        self._warned = True
        every = self.config.interval(cost, background=self.background)
        if self.background:
            return (
                f"Checkpoint writes take {cost * 1000:.0f} ms on this state store, too slow for "
                f"{self.config.max_redo:g} s of redo after a hard kill even with writes in the background: "
                f"checkpointing every {every:.2f} s, so a hard kill may redo about {every + cost:.2f} s. "
                "Use a faster state backend, or pass checkpoint_interval (seconds) to choose the redo."
            )
        return (
            f"Checkpoint writes take {cost * 1000:.0f} ms on this state store, too slow for both "
            f"{self.config.overhead:.0%} overhead and {self.config.max_redo:g} s of redo after a hard kill: "
            f"writing every {every:.2f} s to bound the redo, which spends about {cost / (every + cost):.1%} "
            "of the walk on checkpoints. Pass checkpoint_interval (seconds) to trade redo for speed."
        )

    def __repr__(self) -> str:
        return repr(self.config)


#: Checkpoint as often as 2% of the walk's wall time allows, at most every 0.2 s and within a second
#: of the last checkpoint, so a hard crash (SIGKILL, OOM, a lost node) redoes about a second of batches at most. A
#: failure that raises in the task (an exception, a timeout, and SIGTERM on Airflow 2) flushes the
#: checkpoint first, so it redoes nothing. Airflow 3's SIGTERM handler only calls on_kill() and does
#: not raise, and writing state from inside a signal handler could interleave with a write in
#: progress, so a SIGTERM on Airflow 3 is treated like a hard crash.
DEFAULT_CHECKPOINT_POLICY: CheckpointPolicy = checkpoint_within_budget()


def make_checkpoint_policy(
    checkpoint_every: int | None = None, checkpoint_interval: float | timedelta | None = None
) -> CheckpointPolicy:
    """Build the policy from operator arguments; both None means ``DEFAULT_CHECKPOINT_POLICY``."""
    parts: list[CheckpointPolicy] = []
    if checkpoint_every is not None:
        parts.append(checkpoint_every_n_batches(checkpoint_every))
    if checkpoint_interval is not None:
        parts.append(checkpoint_every_seconds(checkpoint_interval))
    if not parts:
        return DEFAULT_CHECKPOINT_POLICY
    return parts[0] if len(parts) == 1 else checkpoint_any(*parts)


def checkpoint_arguments(
    checkpoint_every: int | None,
    checkpoint_interval: float | timedelta | None,
    allow_secrets_in_state: Any,
    background_checkpoints: Any = True,
) -> CheckpointPolicy:
    """
    Check what a checkpointing task was given when the DAG is parsed, and return its policy.

    Shared by ``StatefulOperatorMixin`` and ``@task.resumable``: a bad value fails the DAG at parse
    time naming it, and so does a typo in ``[resumable] state_backend``.
    """
    from airflow.providers.resumable.state.selection import validate_backend

    if not isinstance(allow_secrets_in_state, bool):
        raise TypeError(f"allow_secrets_in_state must be True or False, got {allow_secrets_in_state!r}")
    if not isinstance(background_checkpoints, bool):
        raise TypeError(f"background_checkpoints must be True or False, got {background_checkpoints!r}")
    policy = make_checkpoint_policy(checkpoint_every, checkpoint_interval)
    validate_backend()
    return policy
