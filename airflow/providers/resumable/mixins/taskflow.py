"""
The handle a ``@task.resumable`` function works with: checkpointed loops, a resumable job, watermarks.

One :class:`ResumableHandle` per try, around the try's :class:`~.TaskTry` (its guarded store,
registered to be finished after the success). It holds no rules of its own: loops step
``checkpoint_runner.CheckpointWalk``, a job runs through ``job_runner.JobRun`` and a watermark is a
``watermark_runner.Watermark``, as for the operator mixins. Async functions use the same handle:
``async for`` over a loop, and the ``a``-prefixed methods, which keep store calls off the event loop:
checkpoint writes go through the store's ``aset`` (the native accessor's own on Airflow 3.4+,
``compat.airflow.async_state_accessors``), everything else runs in a worker thread.

The decorator (``decorators/resumable.py``) builds the handle, injects it as the ``resumable``
argument of the function when the function names one, and makes it :func:`get_resumable_handle`'s
answer while the function runs.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import itertools
from collections.abc import AsyncIterable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from airflow.providers.resumable.mixins.checkpoint_policies import DEFAULT_CHECKPOINT_POLICY
from airflow.providers.resumable.mixins.checkpoint_runner import (
    BatchRun,
    Checkpoints,
    CheckpointSettings,
    CheckpointWalk,
    walk_batches,
)
from airflow.providers.resumable.mixins.class_checks import check_model
from airflow.providers.resumable.mixins.decisions import SpecChangePolicy
from airflow.providers.resumable.mixins.job_runner import (
    STATUS_RETRY_STOP,
    STATUS_RETRY_WAIT,
    JobCalls,
    JobRun,
    JobSettings,
    is_transient_error,
)
from airflow.providers.resumable.mixins.watermark_runner import Watermark, WatermarkSettings
from airflow.providers.resumable.state.base import StateStoreError
from airflow.providers.resumable.state.codec import TASKFLOW_NAMESPACE
from airflow.providers.resumable.watermarks.rules import cursor_max
from airflow.providers.resumable.watermarks.stores import WatermarkScope, get_watermark_store

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
    from datetime import timedelta

    from pydantic import BaseModel

    from airflow.providers.resumable.mixins.checkpoint_policies import CheckpointPolicy
    from airflow.providers.resumable.state.base import JsonValue
    from airflow.providers.resumable.state.task_try import TaskTry
    from airflow.providers.resumable.watermarks.rules import Window

T = TypeVar("T")
C = TypeVar("C")

#: The argument name the decorator fills with the handle, as Airflow fills ``ti`` or ``params``.
HANDLE_ARGUMENT = "resumable"

_current: contextvars.ContextVar[ResumableHandle | None] = contextvars.ContextVar("resumable_handle", default=None)


class LoopItemsChangedError(StateStoreError):
    """A resumed loop's items are fewer than the checkpoint says were done: they are not the same items."""


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


async def _off_loop(func: Callable[..., T], *args: Any) -> T:
    """Run a blocking store call in a worker thread, so the event loop keeps serving other tasks."""
    return await asyncio.to_thread(func, *args)


class CheckpointedLoop(Generic[T]):
    """
    ``handle.iterate(items)``: the items after the last durable one, with ``for`` or ``async for``.

    An item counts as done once the loop body has finished with it and asked for the next one; the
    checkpoint (``{"next": <count>}``) is written as the policy says, at a failure Python sees, and
    marked complete when the items run out. Leaving the loop early (``break``, an exception) keeps
    the checkpoint where the last finished item put it: a retry resumes there.
    """

    def __init__(self, handle: ResumableHandle, items: Any, name: str, policy: CheckpointPolicy | None) -> None:
        self.handle = handle
        self.items = items
        self.name = name
        self.policy = policy
        self.walk: CheckpointWalk[dict[str, int]] | None = None

    def _open_walk(self) -> CheckpointWalk[dict[str, int]]:
        self.walk = self.handle._walk(self.name, None, self.policy)
        return self.walk

    def _skip(self, done: int, skipped: int) -> None:
        if skipped < done:
            raise LoopItemsChangedError(
                f"Loop {self.name!r} resumed after {done} items, but its items now hold only {skipped}: "
                "handle.iterate() needs the same items in the same order on every try. Make them "
                f"re-iterable and stable, or delete {self.handle.checkpoints(self.name).location} to start over."
            )

    def __iter__(self) -> Iterator[T]:
        walk = self._open_walk()
        if not walk.open({"next": 0}):
            return
        assert walk.cursor is not None
        done = int(walk.cursor["next"])
        iterator = iter(self.items)
        self._skip(done, sum(1 for _ in itertools.islice(iterator, done)))
        self.handle._open.append(walk)
        try:
            for item in iterator:
                yield item
                if walk.advance({"next": walk.index + 1}):
                    walk.checkpoint()
        except BaseException:
            walk.failed()
            raise
        finally:
            self.handle._forget(walk)
        walk.finish({"next": walk.index})

    async def __aiter__(self) -> AsyncIterator[T]:
        walk = self._open_walk()
        if not await _off_loop(walk.open, {"next": 0}):
            return
        assert walk.cursor is not None
        done = int(walk.cursor["next"])
        self.handle._open.append(walk)
        try:
            skipped = 0
            if isinstance(self.items, AsyncIterable):
                async for item in self.items:
                    if skipped < done:
                        skipped += 1
                        continue
                    yield item
                    if walk.advance({"next": walk.index + 1}):
                        await walk.acheckpoint()
                self._skip(done, skipped)
            else:
                iterator = iter(self.items)
                self._skip(done, sum(1 for _ in itertools.islice(iterator, done)))
                for item in iterator:
                    yield item
                    if walk.advance({"next": walk.index + 1}):
                        await walk.acheckpoint()
        except BaseException:
            # An async generator cannot await while it is being closed: one blocking write, on failure only.
            walk.failed()
            raise
        finally:
            self.handle._forget(walk)
        await walk.afinish({"next": walk.index})


class ResumableHandle:
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
        if not await _off_loop(walk.open, start):
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

    # ---- a resumable job -----------------------------------------------------------------------------

    def _job_run(
        self,
        *,
        submit: Callable[[str | None], JsonValue],
        status: Callable[[JsonValue], Any],
        is_active: Callable[[Any], bool],
        is_succeeded: Callable[[Any], bool],
        poll: Callable[[JsonValue], Any],
        result: Callable[[JsonValue], Any] | None,
        find: Callable[[str], JsonValue] | None,
        cancel: Callable[[JsonValue], Any] | None,
        key: str,
        fingerprint: str | None,
        spec_change_policy: str | SpecChangePolicy,
        is_transient: Callable[[BaseException], bool],
    ) -> JobRun:
        token: list[str | None] = [None]

        def use_token(value: str | None, resubmitting: bool) -> None:
            token[0] = value

        calls = JobCalls(
            submit=lambda: submit(token[0]),
            status=status,
            is_active=is_active,
            is_succeeded=is_succeeded,
            poll=poll,
            result=result if result is not None else (lambda external_id: external_id),
            use_token=use_token,
            find=find,
            cancel=cancel,
            is_transient=is_transient,
        )
        settings = JobSettings(
            key=key,
            spec_change_policy=SpecChangePolicy.parse(spec_change_policy),
            retry_stop=STATUS_RETRY_STOP,
            retry_wait=STATUS_RETRY_WAIT,
            fingerprint=fingerprint if self.task_try.durable else None,
        )
        return JobRun(calls, self.task_try, settings, self.log)

    def job(
        self,
        *,
        submit: Callable[[str | None], JsonValue],
        status: Callable[[JsonValue], Any],
        is_active: Callable[[Any], bool],
        is_succeeded: Callable[[Any], bool],
        poll: Callable[[JsonValue], Any],
        result: Callable[[JsonValue], Any] | None = None,
        find: Callable[[str], JsonValue] | None = None,
        cancel: Callable[[JsonValue], Any] | None = None,
        key: str = "job",
        fingerprint: str | None = None,
        spec_change_policy: str | SpecChangePolicy = SpecChangePolicy.FAIL,
        is_transient: Callable[[BaseException], bool] = is_transient_error,
    ) -> Any:
        """
        Run one external job per life of the task instance, as ``ResumableJobMixin`` does.

        ``submit(token)`` submits and returns the job's id; pass ``token`` (the idempotency token, the
        same on every retry of one submission) to a system that takes one. ``status(id)`` returns the
        raw status (raise ``JobNotFoundError`` when the job is gone), ``is_active`` / ``is_succeeded``
        read it, ``poll(id)`` waits for the end (raise when the job failed) and ``result(id)`` is the
        return value (default: the id). ``find(token)`` looks a lost submission up, ``cancel(id)``
        serves ``spec_change_policy="cancel_and_resubmit"``; ``fingerprint`` (``fingerprint_of(spec)``)
        refuses to reattach to a job built from another spec. ``key`` tells several jobs of one task apart.
        """
        return self._job_run(
            submit=submit,
            status=status,
            is_active=is_active,
            is_succeeded=is_succeeded,
            poll=poll,
            result=result,
            find=find,
            cancel=cancel,
            key=key,
            fingerprint=fingerprint,
            spec_change_policy=spec_change_policy,
            is_transient=is_transient,
        ).run()

    async def ajob(
        self,
        *,
        submit: Callable[[str | None], Any],
        status: Callable[[JsonValue], Any],
        is_active: Callable[[Any], bool],
        is_succeeded: Callable[[Any], bool],
        poll: Callable[[JsonValue], Any],
        result: Callable[[JsonValue], Any] | None = None,
        find: Callable[[str], Any] | None = None,
        cancel: Callable[[JsonValue], Any] | None = None,
        key: str = "job",
        fingerprint: str | None = None,
        spec_change_policy: str | SpecChangePolicy = SpecChangePolicy.FAIL,
        is_transient: Callable[[BaseException], bool] = is_transient_error,
    ) -> Any:
        """
        ``job`` for async functions: the callables may be ``async def``.

        The record's reads and writes run in a worker thread; ``async`` callables are sent back to
        this event loop, so polling with ``await asyncio.sleep`` leaves the loop free.
        """
        loop = asyncio.get_running_loop()

        def on_loop(func: Callable[..., Any] | None) -> Any:
            if func is None or not inspect.iscoroutinefunction(func):
                return func

            @functools.wraps(func)
            def blocking(*args: Any) -> Any:
                return asyncio.run_coroutine_threadsafe(func(*args), loop).result()

            return blocking

        run = self._job_run(
            submit=on_loop(submit),
            status=on_loop(status),
            is_active=is_active,
            is_succeeded=is_succeeded,
            poll=on_loop(poll),
            result=on_loop(result),
            find=on_loop(find),
            cancel=on_loop(cancel),
            key=key,
            fingerprint=fingerprint,
            spec_change_policy=spec_change_policy,
            is_transient=is_transient,
        )
        return await _off_loop(run.run)

    # ---- watermarks ----------------------------------------------------------------------------------

    def watermark(
        self,
        name: str | None = None,
        *,
        model: type[BaseModel] | None = None,
        on_overlap: str = "max",
        merge: Callable[[Any, Any], Any] | None = None,
        asset: Any = None,
    ) -> Watermark:
        """
        The watermark ``name`` of this task (``load``, ``window``, ``advance``), as ``WatermarkMixin`` keeps one.

        The first call of a try fixes its settings; a name tells several marks of one task apart.
        """
        found = self._watermarks.get(name)
        if found is not None:
            return found
        check_model(f"task {self.task_try.owner!r} (watermark {name!r})", "model", model)
        if model is not None and on_overlap == "max" and merge is None:
            raise TypeError(
                f"watermark {name!r} has model {model.__name__} and on_overlap='max', but no merge(committed, ours) "
                "to combine two marks; pass merge=..., or on_overlap='fail'"
            )
        task_try = self.task_try
        scope = task_try.scope
        region = scope.region_index if scope is not None and scope.region_id else None
        dag_id = scope.dag_id if scope is not None else "-"
        mark_scope = WatermarkScope(dag_id, task_try.owner, task_try.map_index, name, region)
        settings = WatermarkSettings(
            model=model,
            on_overlap=on_overlap,
            merge=merge or cursor_max,
            namespace=TASKFLOW_NAMESPACE,
            window_key="watermark_window" if name is None else f"watermark_window.{name}",
        )
        store = get_watermark_store(task_try, mark_scope, task=self.task, asset=asset)
        found = self._watermarks[name] = Watermark(task_try, store, mark_scope, settings, self.log)
        return found

    def load_watermark(self, *, initial_value: Any = None, name: str | None = None) -> Any:
        """The mark this run starts from (see ``WatermarkMixin.load_watermark``)."""
        return self.watermark(name).load(initial_value=initial_value)

    def watermark_window(
        self, *, initial_value: Any = None, lag: timedelta | float | None = None, name: str | None = None
    ) -> Window:
        """The window this run reads, the same on every retry (see ``WatermarkMixin.watermark_window``)."""
        return self.watermark(name).window(initial_value=initial_value, lag=lag)

    def advance_watermark(self, value: Any, *, name: str | None = None) -> None:
        """Stage ``value``; committed once Airflow has recorded this task instance's success."""
        self.watermark(name).advance(value)

    async def aload_watermark(self, *, initial_value: Any = None, name: str | None = None) -> Any:
        mark = await _off_loop(self.watermark, name)
        return await _off_loop(functools.partial(mark.load, initial_value=initial_value))

    async def awatermark_window(
        self, *, initial_value: Any = None, lag: timedelta | float | None = None, name: str | None = None
    ) -> Window:
        mark = await _off_loop(self.watermark, name)
        return await _off_loop(functools.partial(mark.window, initial_value=initial_value, lag=lag))

    async def aadvance_watermark(self, value: Any, *, name: str | None = None) -> None:
        mark = await _off_loop(self.watermark, name)
        await _off_loop(mark.advance, value)
