"""
The checkpoint walk: a typed checkpoint on a try, and the loop that writes it as a policy says.

``StatefulOperatorMixin`` (``stateful.py``) and the TaskFlow handle (``taskflow.py``) both run on
this module; it takes a :class:`~airflow.providers.resumable.state.task_try.TaskTry` and
:class:`CheckpointSettings` and never imports either of them, as ``job_runner.py`` runs a job from
bound callables. :class:`Checkpoints` loads and saves the typed checkpoint of one try (the
envelope, the schema version, the completion marker, the lifecycle check); :class:`CheckpointWalk`
is one walk's bookkeeping (where it resumed, what is pending, when the policy wants a write, the
flush on failure, the complete mark), stepped by a loop: :func:`walk_batches` here, or an iterator
that cannot hand its control flow to a callback (``handle.iterate``).
"""

from __future__ import annotations

import asyncio
import copy
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from airflow.providers.resumable.compat.airflow import checkpoint_writes_off_thread
from airflow.providers.resumable.mixins.checkpoint_writer import CheckpointWriter
from airflow.providers.resumable.observability import checkpoint_write
from airflow.providers.resumable.state.base import CorruptStateError, aset
from airflow.providers.resumable.state.codec import CheckpointEnvelope, utcnow_iso

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow.providers.resumable.mixins.checkpoint_policies import CheckpointPolicy
    from airflow.providers.resumable.state.base import NamespacedStateStore
    from airflow.providers.resumable.state.task_try import TaskTry

C = TypeVar("C")


class CheckpointSchemaError(CorruptStateError):
    """
    A stored checkpoint does not fit the operator's ``checkpoint_model`` and cannot be migrated.

    A retry would read the same checkpoint, so the task fails without using its retries.
    """


@dataclass(frozen=True)
class BatchRun(Generic[C]):
    """What ``run_batches`` did on this try."""

    resumed_from: int
    """Batch index this try started at (0 when there was no checkpoint)."""
    batches_done: int
    """Batches done in all, over every try."""
    batches_this_try: int
    checkpoints_written: int
    cursor: C | None
    already_complete: bool = False
    """An earlier try of this life finished the walk (and then failed after it): nothing was redone."""


@dataclass(frozen=True)
class CheckpointSettings:
    """Where a checkpoint lives and what it holds."""

    #: Prefix of the keys in the task's state store (``StatefulOperatorMixin.state_namespace``).
    namespace: str
    #: The key under the namespace.
    key: str = "checkpoint"
    #: pydantic model of the checkpoint (a ``Checkpoint`` subclass for versioning); None = plain JSON.
    model: type[BaseModel] | None = None

    @property
    def schema_version(self) -> int:
        return int(getattr(self.model, "schema_version", 1))


class Checkpoints:
    """The typed checkpoint of one try: read it (if it belongs to this life), write it, decode it."""

    def __init__(self, task_try: TaskTry, settings: CheckpointSettings, log: Any) -> None:
        self.task_try = task_try
        self.settings = settings
        self.log = log

    @property
    def store(self) -> NamespacedStateStore:
        return self.task_try.namespaced(self.settings.namespace)

    @property
    def location(self) -> str:
        return self.task_try.locate(self.settings.key, self.settings.namespace)

    def current(self) -> CheckpointEnvelope | None:
        """The stored checkpoint if it belongs to this life of the task instance, else None."""
        envelope = CheckpointEnvelope.parse(
            self.store.get(self.settings.key), self.location, error=CheckpointSchemaError
        )
        if envelope is None:
            return None
        ended = self.task_try.ended_life(
            envelope.try_number, complete=envelope.complete, written_max_tries=envelope.generation
        )
        if ended is not None:
            self.log.info(
                "Not resuming from the checkpoint: %s; the task was cleared by hand, so it starts afresh", ended
            )
            return None
        return envelope

    def load(self) -> Any:
        """The checkpoint of this life, as the model (or the JSON value), or None."""
        envelope = self.current()
        return None if envelope is None else self.decode(envelope)

    def write(self, checkpoint: Any, *, batches_done: int | None, complete: bool) -> None:
        document = self._document(checkpoint, batches_done=batches_done, complete=complete)
        with checkpoint_write(self.task_try.tags):
            self.store.set(self.settings.key, document)

    async def awrite(self, checkpoint: Any, *, batches_done: int | None, complete: bool) -> None:
        """``write`` from a coroutine: the store's async accessor where it has one, else a worker thread."""
        document = self._document(checkpoint, batches_done=batches_done, complete=complete)
        with checkpoint_write(self.task_try.tags):
            await aset(self.store, self.settings.key, document)

    def _document(self, checkpoint: Any, *, batches_done: int | None, complete: bool) -> Any:
        model = self.settings.model
        if model is not None and not isinstance(checkpoint, model):
            raise TypeError(
                f"save_checkpoint expects a {model.__name__} (checkpoint_model), got {type(checkpoint).__name__}"
            )
        data = checkpoint.model_dump(mode="json") if isinstance(checkpoint, BaseModel) else checkpoint
        info = self.task_try.info
        envelope = CheckpointEnvelope(
            schema_name=model.__name__ if model is not None else None,
            schema_version=self.settings.schema_version,
            generation=info.max_tries,
            try_number=info.try_number,
            saved_at=utcnow_iso(),
            batches_done=batches_done,
            complete=complete,
            data=data,
        )
        return envelope.dump()

    def save(self, checkpoint: Any, *, batches_done: int | None = None) -> None:
        """Store ``checkpoint``; call it only once the work it describes is durable."""
        self.write(checkpoint, batches_done=batches_done, complete=False)

    def clear(self) -> None:
        self.store.delete(self.settings.key)

    def decode(self, envelope: CheckpointEnvelope) -> Any:
        model = self.settings.model
        if model is None:
            return envelope.data
        data = envelope.data
        current = self.settings.schema_version
        location = self.location
        if envelope.schema_version != current:
            migrate = getattr(model, "migrate", None)
            try:
                if migrate is None:
                    raise NotImplementedError
                data = migrate(dict(data), envelope.schema_version)
            except NotImplementedError:
                raise CheckpointSchemaError(
                    f"The checkpoint in {location} was written by {envelope.schema_name} schema_version "
                    f"{envelope.schema_version}, but {model.__name__} is at schema_version {current} and "
                    f"its migrate() does not handle version {envelope.schema_version}. Implement "
                    "migrate(), or delete the key to start from the beginning."
                ) from None
        try:
            return model.model_validate(data)
        except ValidationError as err:
            raise CheckpointSchemaError(
                f"The checkpoint in {location} ({envelope.schema_name} schema_version {envelope.schema_version}) "
                f"does not fit {model.__name__}: {err}. Bump schema_version and implement migrate(), or "
                "delete the key to start from the beginning."
            ) from err


class CheckpointWalk(Generic[C]):
    """
    One walk's bookkeeping, stepped by a loop.

    ``open(start)`` reads where to begin; after each batch (its side effect durable) the loop calls
    ``advance(next_cursor)``, and ``checkpoint()`` when that returns True; on a failure it calls
    ``failed()`` (the flush), and at the end ``finish()``. ``save`` and ``flush`` default to this
    walk's own; the mixin passes its overridable ``save_checkpoint`` and ``_flush_on_failure``.
    """

    def __init__(
        self,
        checkpoints: Checkpoints,
        policy: CheckpointPolicy,
        *,
        save: Callable[[C, int], None] | None = None,
        flush: Callable[[C, int], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        background: bool | None = None,
    ) -> None:
        self.checkpoints = checkpoints
        # None: write in the background where Airflow lets a second thread write (the default);
        # False: every write stops the walk (``background_checkpoints=False``); True: always (tests).
        self.background = background
        self.writer: CheckpointWriter | None = None
        self._background_written = 0
        self.log = checkpoints.log
        # A fresh per-walk view: a policy that measures the store must not share its measurements
        # with another walk through a policy object shared by operators (DEFAULT_CHECKPOINT_POLICY).
        self.policy = policy.start()
        self._custom_save = save is not None
        self._save = save or (lambda cursor, index: checkpoints.save(cursor, batches_done=index))
        self._flush = flush or self.flush_on_failure
        self.clock = clock
        self.cursor: C | None = None
        self.last: C | None = None
        self.index = 0
        self.resumed_from = 0
        self.pending = 0
        self.written = 0
        self.already_complete = False
        self.finished = False
        self._last_save = 0.0

    def open(self, start: C) -> bool:
        """Read the checkpoint; False when an earlier try of this life already finished the walk."""
        envelope = self.checkpoints.current()
        if envelope is not None and envelope.complete:
            done = envelope.batches_done or 0
            self.log.info(
                "The walk already finished at try %s (%s batches) and that try failed afterwards; not redoing it",
                envelope.try_number,
                done,
            )
            self.index = self.resumed_from = done
            self.already_complete = self.finished = True
            return False
        if envelope is not None:
            self.cursor = self.checkpoints.decode(envelope)
            self.index = envelope.batches_done or 0
            self.log.info(
                "Resuming at batch %s from the checkpoint saved at try %s (%s)",
                self.index,
                envelope.try_number,
                envelope.saved_at,
            )
        else:
            self.cursor, self.index = start, 0
            self.log.info("Starting at batch 0: no checkpoint stored; checkpoints: %r", self.policy)
        self.resumed_from = self.index
        self.last = self.cursor
        self._last_save = self.clock()
        self._start_writer()
        return True

    def _start_writer(self) -> None:
        if self.background is False:
            return
        if self.background is None:
            reason = checkpoint_writes_off_thread()
            if reason is not None:
                _say_once(self.log, f"Checkpoint writes stop the walk here: {reason}")
                return
        self.writer = CheckpointWriter(self._save, name=self.checkpoints.location, clock=self.clock)
        self.policy.writes_in_background()
        # The try owns it: on_kill flushes it, the task's end stops it.
        self.checkpoints.task_try.adopt_writer(self.writer)

    def _stop_writer(self) -> None:
        """Write what the writer holds and stop it; raise if one of its writes failed."""
        writer, self.writer = self.writer, None
        if writer is None:
            return
        try:
            writer.close()
        finally:
            self._background_written += writer.written
            self.checkpoints.task_try.release_writer(writer)
            self._tell_policy(writer)

    def _tell_policy(self, writer: CheckpointWriter) -> None:
        for cost in writer.take_costs():
            note = self.policy.record_write(cost)
            if note:
                self.log.warning(note)

    def advance(self, next_cursor: C | None) -> bool:
        """The batch at ``cursor`` is done and durable; True when the policy wants a checkpoint now."""
        self.last = self.cursor
        self.index += 1
        self.pending += 1
        self.cursor = next_cursor
        if self.writer is not None:
            # A write that failed fails the walk at its next step, as a synchronous write would have;
            # after the bookkeeping, so the failure's flush covers the batch that just finished.
            self.writer.raise_if_failed()
            self._tell_policy(self.writer)
        return next_cursor is not None and self.policy.should_checkpoint(self.pending, self.clock() - self._last_save)

    def checkpoint(self) -> None:
        """Write the cursor of the next batch (or hand it to the writer), timed and reported to the policy."""
        assert self.cursor is not None
        self.policy.checkpoint_taken()
        if self._hand_over():
            return
        began = self.clock()
        self._save(self.cursor, self.index)
        self._after_write(began)

    def _hand_over(self) -> bool:
        """Give the checkpoint to the writer thread, if the walk has one; what a kill redoes counts from now."""
        if self.writer is None:
            return False
        assert self.cursor is not None
        if self.writer.busy:
            # The previous checkpoint is still being written (a store that stalls): wait for it, as a
            # synchronous write would have, so the walk never runs more than one checkpoint ahead of
            # durable state and a hard kill still redoes at most two intervals of batches.
            self.writer.flush()
        # A copy: the walk's code may change its cursor object in place once the batch after it runs.
        self.writer.submit(_snapshot(self.cursor), self.index)
        self._last_save = self.clock()
        self.pending = 0
        return True

    def _after_write(self, began: float) -> None:
        self._last_save = self.clock()
        self.written += 1
        self.pending = 0
        note = self.policy.record_write(self._last_save - began)
        if note:
            self.log.warning(note)

    async def acheckpoint(self) -> None:
        """``checkpoint`` from a coroutine, with the event loop free while the store writes."""
        assert self.cursor is not None
        self.policy.checkpoint_taken()
        if self._hand_over():
            return
        began = self.clock()
        if self._custom_save:
            await asyncio.to_thread(self._save, self.cursor, self.index)
        else:
            await self.checkpoints.awrite(self.cursor, batches_done=self.index, complete=False)
        self._after_write(began)

    def failed(self) -> None:
        """A failure Python sees: write the checkpoint of the last finished batch, once."""
        lost = False
        try:
            self._stop_writer()
        except Exception:
            # The walk's own error matters more; the flush below writes the newest cursor again.
            lost = True
            self.log.exception("A background checkpoint write failed; writing the last checkpoint again")
        if (self.pending or lost) and self.cursor is not None and not self.finished:
            self.pending = 0
            self._flush(self.cursor, self.index)

    def flush_on_failure(self, cursor: C, index: int) -> None:
        try:
            self._save(cursor, index)
            self.log.info("Saved the checkpoint at batch %s before failing", index)
        except Exception:
            # The original error matters more; the retry redoes the batches since the last checkpoint.
            self.log.exception("Could not save the checkpoint at batch %s while failing", index)

    def finish(self, final: C | None = None) -> None:
        """
        Mark the walk complete (``final``, or the last batch's cursor).

        Kept, marked complete, until Airflow records the task's success: a failure after the task
        returns (the XCom push, post_execute) then retries without redoing the walk, and a clear
        after success starts afresh.
        """
        self._stop_writer()
        self.checkpoints.write(final if final is not None else self.last, batches_done=self.index, complete=True)
        self._finished()

    async def afinish(self, final: C | None = None) -> None:
        """``finish`` from a coroutine."""
        if self.writer is not None:
            await asyncio.to_thread(self._stop_writer)
        await self.checkpoints.awrite(final if final is not None else self.last, batches_done=self.index, complete=True)
        self._finished()

    def _finished(self) -> None:
        self.finished = True
        self.pending = 0
        self.log.info(
            "Finished after batch %s: %s this try, %s checkpoints written%s (%r)",
            self.index - 1,
            self.index - self.resumed_from,
            self.checkpoints_written,
            " in the background" if self._background_written else "",
            self.policy,
        )

    @property
    def checkpoints_written(self) -> int:
        """Checkpoints that landed: written by the walk, or by its writer (a coalesced one never is)."""
        return self.written + self._background_written + (self.writer.written if self.writer else 0)

    def result(self) -> BatchRun[C]:
        if self.already_complete:
            return BatchRun(
                resumed_from=self.index,
                batches_done=self.index,
                batches_this_try=0,
                checkpoints_written=0,
                cursor=None,
                already_complete=True,
            )
        return BatchRun(
            resumed_from=self.resumed_from,
            batches_done=self.index,
            batches_this_try=self.index - self.resumed_from,
            checkpoints_written=self.checkpoints_written,
            cursor=self.cursor,
        )


_said: set[str] = set()


def _say_once(log: Any, message: str) -> None:
    """Log ``message`` once per process: every walk of a ``dag.test()`` session would say the same."""
    if message not in _said:
        _said.add(message)
        log.info(message)


def _snapshot(cursor: Any) -> Any:
    if isinstance(cursor, BaseModel):
        return cursor.model_copy(deep=True)
    if isinstance(cursor, int | float | str | bool) or cursor is None:
        return cursor
    return copy.deepcopy(cursor)


def walk_batches(walk: CheckpointWalk[C], process_batch: Callable[[C, int], C | None], *, start: C) -> BatchRun[C]:
    """
    Walk batches from the stored cursor (or ``start``), checkpointing as the walk's policy says.

    ``process_batch(cursor, index)`` does one batch, makes its side effect durable, and returns the
    cursor of the next batch, or None after the last one (see ``StatefulOperatorMixin.run_batches``).
    """
    if not walk.open(start):
        return walk.result()
    try:
        while walk.cursor is not None:
            if walk.advance(process_batch(walk.cursor, walk.index)):
                walk.checkpoint()
    except BaseException:
        walk.failed()
        raise
    walk.finish()
    return walk.result()
