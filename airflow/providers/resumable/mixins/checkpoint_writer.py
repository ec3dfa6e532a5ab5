"""
Checkpoint writes off the walk: one writer thread per walk, at most one write in flight.

The batch after a checkpoint does not need that checkpoint to be durable; only the order of the
checkpoints matters. So the walk hands each checkpoint to a :class:`CheckpointWriter` and goes on:

* at most one write is in flight; a checkpoint handed over while one is in flight waits, and a
  newer one replaces it (coalescing: only the newest cursor is worth writing). The walk itself waits
  for a write still in flight before it hands over the next checkpoint, so a store that stalls cannot
  let it run more than one checkpoint ahead of durable state;
* writes land in the order they were taken, and a checkpoint is only ever taken after the batches it
  covers are durable, so a stored checkpoint is never ahead of the data;
* a failed write is kept and raised in the walk at its next step (``raise_if_failed``), so the try
  fails with the store's own error, as a synchronous write would have failed it;
* ``close`` (the walk's end, a failure the walk sees) and ``flush`` (``on_kill``) wait for what was
  handed over; ``abandon`` (a hard kill, in tests) stops without waiting.

What a hard kill redoes is measured from the last *durable* checkpoint: the policy counts time from
when a checkpoint was taken, not from when its write ended (``checkpoint_policies``).

Whether a second thread may write at all is Airflow's to say (``compat.airflow.checkpoint_writes_off_thread``);
where it may not, the walk writes synchronously as before.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable


class CheckpointWriter:
    """
    Writes a walk's checkpoints on one daemon thread, in order, newest first when they pile up.

    ``write(cursor, index)`` is called on the writer thread with what ``submit`` was given; the caller
    hands over a cursor it will not change afterwards (the walk passes a copy).
    """

    def __init__(self, write: Callable[[Any, int], None], *, name: str, clock: Callable[[], float] = time.monotonic):
        self._write = write
        self._name = name
        self._clock = clock
        self._cond = threading.Condition()
        self._pending: tuple[Any, int, float] | None = None
        self._writing = False
        self._closed = False
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._costs: list[float] = []
        #: Writes that landed, and checkpoints replaced by a newer one before their write began.
        self.written = 0
        self.coalesced = 0
        #: (batch index, when its cursor was taken) of the newest checkpoint known to be durable.
        self.durable: tuple[int, float] | None = None

    # ---- the walk's side ------------------------------------------------------------------------------

    def submit(self, cursor: Any, index: int) -> None:
        """Hand over the checkpoint of batch ``index``; returns at once (raises an earlier write's error)."""
        with self._cond:
            self._raise_if_failed()
            if self._closed:
                raise RuntimeError(f"checkpoint writer {self._name!r} is closed")
            if self._pending is not None:
                self.coalesced += 1
            self._pending = (cursor, index, self._clock())
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"checkpoint-writer-{self._name}", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def raise_if_failed(self) -> None:
        """Raise the error of a write that failed (once handed over, the walk must not go on without it)."""
        if self._error is not None:
            with self._cond:
                self._raise_if_failed()

    def take_costs(self) -> list[float]:
        """Durations of the writes that landed since the last call (for the policy, on the walk's thread)."""
        if not self._costs:
            return []
        with self._cond:
            costs, self._costs = self._costs, []
        return costs

    @property
    def busy(self) -> bool:
        """A checkpoint is being written or waits to be."""
        return self._writing or self._pending is not None

    def flush(self, timeout: float | None = None) -> bool:
        """
        Wait until every handed-over checkpoint is written; raise if one failed.

        False when ``timeout`` seconds passed first (``on_kill`` cannot wait forever: the signal may
        have interrupted the walk's own thread in the middle of a store call the writer waits for).
        """
        with self._cond:
            done = self._cond.wait_for(lambda: self._error is not None or not self.busy, timeout)
            self._raise_if_failed()
            return bool(done)

    def close(self, timeout: float | None = None) -> None:
        """Write what was handed over, stop the thread and wait for it; raise if a write failed."""
        try:
            self.flush(timeout)
        finally:
            self._stop(timeout)

    def abandon(self) -> None:
        """Stop without writing what waits (a simulated hard kill); a write in flight may still land."""
        with self._cond:
            self._pending = None
        self._stop(0)

    def _stop(self, timeout: float | None) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    # ---- the writer thread ----------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending is not None or self._closed)
                if self._pending is None:
                    return
                cursor, index, taken = self._pending
                self._pending = None
                self._writing = True
            began = self._clock()
            try:
                self._write(cursor, index)
            except BaseException as error:  # raised in the walk, which decides what it means
                with self._cond:
                    self._error = error
                    self._writing = False
                    self._pending = None
                    self._cond.notify_all()
                return
            ended = self._clock()
            with self._cond:
                self._writing = False
                self.written += 1
                self._costs.append(ended - began)
                self.durable = (index, taken)
                self._cond.notify_all()
