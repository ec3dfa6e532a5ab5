"""
``handle.iterate(items)``: the TaskFlow handle's checkpointed loop, with ``for`` or ``async for``.

The loop steps ``checkpoint_runner.CheckpointWalk`` as ``run_batches`` does; it keeps no rule of its
own. :func:`off_loop` and :func:`off_loop_form` are how every part of the handle keeps a blocking
store call off an event loop.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
from collections.abc import AsyncIterable
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, TypeVar

from airflow.providers.resumable.state.base import StateStoreError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Coroutine, Iterator

    from airflow.providers.resumable.mixins.checkpoint_policies import CheckpointPolicy
    from airflow.providers.resumable.mixins.checkpoint_runner import CheckpointWalk
    from airflow.providers.resumable.mixins.taskflow import ResumableHandle

T = TypeVar("T")
S = TypeVar("S")
P = ParamSpec("P")


class LoopItemsChangedError(StateStoreError):
    """A resumed loop's items are fewer than the checkpoint says were done: they are not the same items."""


async def off_loop(func: Callable[..., T], *args: Any) -> T:
    """Run a blocking store call in a worker thread, so the event loop keeps serving other tasks."""
    return await asyncio.to_thread(func, *args)


def off_loop_form(method: Callable[Concatenate[S, P], T]) -> Callable[Concatenate[S, P], Coroutine[Any, Any, T]]:
    """
    The ``async`` form of a handle method: awaited, the method runs in a worker thread. It keeps the
    method's signature, so the sync and async forms of a call cannot drift apart.
    """

    @functools.wraps(method)
    async def run(self: S, *args: P.args, **kwargs: P.kwargs) -> T:
        return await off_loop(functools.partial(method, self, *args, **kwargs))

    run.__doc__ = f"``{method.__name__}`` for ``async def`` functions: its store calls run in a worker thread."
    return run


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
        if not await off_loop(walk.open, {"next": 0}):
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
