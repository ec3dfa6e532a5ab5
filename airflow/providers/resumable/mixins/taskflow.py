"""
The handle a ``@task.resumable`` function works with: checkpointed loops, a resumable job, watermarks.

One :class:`ResumableHandle` per try, around the try's :class:`~.TaskTry` (its guarded store,
registered to be finished after the success). It holds no rules of its own: loops step
``checkpoint_runner.CheckpointWalk`` (``taskflow_loop.py``), a job runs through ``job_runner.JobRun``
(``taskflow_job.py``) and a watermark is a ``watermark_runner.Watermark`` (``taskflow_watermark.py``),
as for the operator mixins. Async functions use the same handle: ``async for`` over a loop, and the
``a``-prefixed methods, which keep store calls off the event loop: checkpoint writes go through the
store's ``aset`` (the native accessor's own on Airflow 3.4+, ``compat.airflow.async_state_accessors``),
everything else runs in a worker thread.

The decorator (``decorators/resumable.py``) builds the handle, injects it as the ``resumable``
argument of the function when the function names one, and makes it :func:`get_resumable_handle`'s
answer while the function runs.
"""

from __future__ import annotations

import contextvars
import inspect
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.providers.resumable.mixins.checkpoint_policies import DEFAULT_CHECKPOINT_POLICY
from airflow.providers.resumable.mixins.checkpoint_runner import (
    BatchRun,
    Checkpoints,
    CheckpointSettings,
    CheckpointWalk,
    walk_batches,
)
from airflow.providers.resumable.mixins.class_checks import check_model
from airflow.providers.resumable.mixins.taskflow_job import HandleJobs
from airflow.providers.resumable.mixins.taskflow_loop import CheckpointedLoop, off_loop

# The loop's error lived here until the handle was split; it stays importable from here.
from airflow.providers.resumable.mixins.taskflow_loop import LoopItemsChangedError as LoopItemsChangedError
from airflow.providers.resumable.mixins.taskflow_watermark import HandleWatermarks
from airflow.providers.resumable.state.codec import TASKFLOW_NAMESPACE

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable

    from pydantic import BaseModel

    from airflow.providers.resumable.mixins.checkpoint_policies import CheckpointPolicy
    from airflow.providers.resumable.mixins.watermark_runner import Watermark
    from airflow.providers.resumable.state.task_try import TaskTry

T = TypeVar("T")
C = TypeVar("C")

#: The argument name the decorator fills with the handle, as Airflow fills ``ti`` or ``params``.
HANDLE_ARGUMENT = "resumable"

_current: contextvars.ContextVar[ResumableHandle | None] = contextvars.ContextVar("resumable_handle", default=None)


def get_resumable_handle() -> ResumableHandle:
    """The handle of the ``@task.resumable`` function running now (like ``get_current_context()``)."""
    handle = _current.get()
    if handle is None:
        raise RuntimeError(
            "get_resumable_handle() was called outside a @task.resumable function; decorate the function with "
            "@task.resumable (or take the handle as its `resumable` argument)"
        )
    return handle


def set_current_handle(handle: ResumableHandle | None) -> contextvars.Token[ResumableHandle | None]:
    return _current.set(handle)


def reset_current_handle(token: contextvars.Token[ResumableHandle | None]) -> None:
    _current.reset(token)


class ResumableHandle(HandleJobs, HandleWatermarks):
    """
    What a ``@task.resumable`` function uses to resume: loops, batches, a job, watermarks.

    Example::

        @task.resumable(retries=3)
        def copy(files: list[str], resumable):
            for name in resumable.iterate(files):  # after a crash at file 517, the retry starts at 517
                upload(name)  # idempotent: a redo replaces, never duplicates

    ``task_try`` is the running try; ``task`` the operator (its ``task_id``, assets and ``log``).
    """

    def __init__(
        self,
        task_try: TaskTry,
        *,
        task: Any = None,
        log: Any,
        policy: CheckpointPolicy | None = None,
        background: bool | None = None,
    ) -> None:
        self.task_try = task_try
        self.task = task
        self.log = log
        self.policy = policy or DEFAULT_CHECKPOINT_POLICY
        # None: checkpoints written in the background where Airflow allows it; False: never.
        self.background = background
        self._open: list[CheckpointWalk[Any]] = []
        self._loops = 0
        self._watermarks: dict[str | None, Watermark] = {}

    def __repr__(self) -> str:
        return f"ResumableHandle({self.task_try.owner!r}, backend={self.task_try.backend!r})"

    # ---- checkpoints and loops -----------------------------------------------------------------------

    def checkpoints(self, name: str, model: type[BaseModel] | None = None) -> Checkpoints:
        """The typed checkpoint ``name`` of this task (``load()``, ``save(value)``, ``clear()``)."""
        # On try 1, before anything is saved: a model that cannot read a checkpoint back fails here,
        # not on the retry that needs it.
        check_model(f"task {self.task_try.owner!r} (checkpoint {name!r})", "model", model)
        return Checkpoints(self.task_try, CheckpointSettings(TASKFLOW_NAMESPACE, name, model), self.log)

    def _walk(self, name: str, model: type[BaseModel] | None, policy: CheckpointPolicy | None) -> Any:
        return CheckpointWalk(self.checkpoints(name, model), policy or self.policy, background=self.background)

    def iterate(
        self, items: Iterable[T] | Any, *, name: str | None = None, policy: CheckpointPolicy | None = None
    ) -> CheckpointedLoop[T]:
        """
        Loop over ``items``, resuming after the last durable item; use with ``for`` or ``async for``.

        ``items`` must be the same items in the same order on every try (a list, a sorted listing):
        a retry skips as many as the checkpoint says were done. ``name`` tells several loops of one
        task apart (default: ``loop0``, ``loop1``, ... in the order the function starts them).
        """
        name = name if name is not None else f"loop{self._loops}"
        self._loops += 1
        return CheckpointedLoop(self, items, name, policy)

    def run_batches(
        self,
        process_batch: Callable[[C, int], C | None],
        *,
        start: C,
        model: type[BaseModel] | None = None,
        name: str = "batches",
        policy: CheckpointPolicy | None = None,
    ) -> BatchRun[C]:
        """
        Walk batches from the stored cursor (or ``start``), as ``StatefulOperatorMixin.run_batches``.

        ``process_batch(cursor, index)`` does one batch, makes its side effect durable and returns
        the next cursor, or None after the last batch. ``model`` types the cursor (a ``Checkpoint``).
        """
        walk: CheckpointWalk[C] = self._walk(name, model, policy)
        self._open.append(walk)
        try:
            return walk_batches(walk, process_batch, start=start)
        finally:
            self._forget(walk)

    async def arun_batches(
        self,
        process_batch: Callable[[C, int], C | Awaitable[C | None] | None],
        *,
        start: C,
        model: type[BaseModel] | None = None,
        name: str = "batches",
        policy: CheckpointPolicy | None = None,
    ) -> BatchRun[C]:
        """``run_batches`` for async functions: ``process_batch`` may be ``async``; store calls run off the loop."""
        walk: CheckpointWalk[C] = self._walk(name, model, policy)
        if not await off_loop(walk.open, start):
            return walk.result()
        self._open.append(walk)
        try:
            while walk.cursor is not None:
                outcome = process_batch(walk.cursor, walk.index)
                next_cursor = await outcome if inspect.isawaitable(outcome) else outcome
                if walk.advance(next_cursor):
                    await walk.acheckpoint()
        except BaseException:
            walk.failed()
            raise
        finally:
            self._forget(walk)
        await walk.afinish()
        return walk.result()

    def _forget(self, walk: CheckpointWalk[Any]) -> None:
        self._open = [open_walk for open_walk in self._open if open_walk is not walk]

    def close(self, *, failed: bool) -> None:
        """The function ended: on a failure, flush the loops it left open (an abandoned ``async for``)."""
        if failed:
            for walk in self._open:
                walk.failed()
        self._open = []
