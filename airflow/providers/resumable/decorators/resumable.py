"""
``@task.resumable``: a TaskFlow function that resumes where its last try stopped.

Registered as ``task-decorators`` in the provider info, as the official providers register
``@task.docker`` or ``@task.kubernetes``, so ``from airflow.sdk import task`` (``airflow.decorators``
on 2.11) offers it. It accepts every ``@task`` argument (``retries``, ``multiple_outputs``,
``.partial().expand()``, templated arguments) plus ``checkpoint_every``, ``checkpoint_interval`` and
``allow_secrets_in_state``, and hands the function a
:class:`~airflow.providers.resumable.mixins.taskflow.ResumableHandle`: as its ``resumable`` argument
when it names one, and from
:func:`~airflow.providers.resumable.mixins.taskflow.get_resumable_handle` anywhere it runs. Example::

    @task.resumable(retries=3)
    def process(files: list[str], resumable):
        for name in resumable.iterate(files):
            convert(name)  # idempotent: a redo after a hard kill replaces, never duplicates
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from typing import TYPE_CHECKING, Any

from airflow.providers.resumable.compat.airflow import (
    python_decorated_operator,
    runs_async_callables,
    task_decorator_factory,
)
from airflow.providers.resumable.mixins.checkpoint_policies import checkpoint_arguments
from airflow.providers.resumable.mixins.taskflow import (
    HANDLE_ARGUMENT,
    ResumableHandle,
    get_resumable_handle,
    reset_current_handle,
    set_current_handle,
)
from airflow.providers.resumable.state.task_try import TaskTry

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import timedelta

__all__ = ["get_resumable_handle", "resumable_task"]


def _handle_defaults_to_none(func: Callable[..., Any]) -> Callable[..., Any]:
    """
    ``func`` as Airflow's signature check should see it: its ``resumable`` parameter filled in at run
    time, like a context key, so a DAG file calls ``process(files)`` without passing it.
    """
    signature = inspect.signature(func)
    parameter = signature.parameters.get(HANDLE_ARGUMENT)
    if parameter is None or parameter.default is not inspect.Parameter.empty:
        return func
    if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.VAR_POSITIONAL):
        raise TypeError(f"{func.__name__}(): the `{HANDLE_ARGUMENT}` parameter must be passable by keyword")
    parameters = [p.replace(default=None) if p.name == HANDLE_ARGUMENT else p for p in signature.parameters.values()]
    # Positional parameters after it get a None default too, as Airflow does for context keys.
    seen = False
    for index, p in enumerate(parameters):
        seen = seen or p.name == HANDLE_ARGUMENT
        if seen and p.kind == p.POSITIONAL_OR_KEYWORD and p.default is inspect.Parameter.empty:
            parameters[index] = p.replace(default=None)
    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            return await func(*args, **kwargs)

    else:

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return func(*args, **kwargs)

    wrapper.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    return wrapper


def _in_own_event_loop(func: Callable[..., Any]) -> Callable[..., Any]:
    """An ``async def`` function as a blocking one, for an Airflow whose ``@task`` would return the coroutine."""

    @functools.wraps(func)
    def blocking(*args: Any, **kwargs: Any) -> Any:
        return asyncio.run(func(*args, **kwargs))

    blocking.__signature__ = inspect.signature(func)  # type: ignore[attr-defined]
    return blocking


class _ResumableDecoratedOperator(python_decorated_operator()):  # type: ignore[misc]
    """
    The operator behind ``@task.resumable``: ``@task``'s, with a handle per try.

    :param checkpoint_every: write a loop's checkpoint every N items or batches (>= 1).
    :param checkpoint_interval: write it when this many seconds (or a ``timedelta``) have passed since the
        last one. With neither, the default budget policy (see ``StatefulOperatorMixin``).
    :param allow_secrets_in_state: store values that contain a secret Airflow's secrets masker knows.
        Off by default: such a write fails the task (``SecretInStateError``).
    :param background_checkpoints: write loop checkpoints on a writer thread while the loop goes on
        (the default, where Airflow allows it: see ``StatefulOperatorMixin``); False: every write
        stops the loop until it is stored.
    """

    custom_operator_name = "@task.resumable"

    def __init__(
        self,
        *,
        python_callable: Callable[..., Any],
        checkpoint_every: int | None = None,
        checkpoint_interval: float | timedelta | None = None,
        allow_secrets_in_state: bool = False,
        background_checkpoints: bool = True,
        **kwargs: Any,
    ) -> None:
        self.checkpoint_policy = checkpoint_arguments(
            checkpoint_every, checkpoint_interval, allow_secrets_in_state, background_checkpoints
        )
        super().__init__(python_callable=_handle_defaults_to_none(python_callable), **kwargs)
        self.checkpoint_every = checkpoint_every
        self.checkpoint_interval = checkpoint_interval
        self.allow_secrets_in_state = allow_secrets_in_state
        self.background_checkpoints = background_checkpoints

    def on_kill(self) -> None:
        """Told to stop (a person's mark, a shutdown): a function that still returns finishes nothing."""
        task_try = TaskTry.running(self)
        if task_try is not None:
            task_try.note_killed()
        super().on_kill()

    def execute(self, context: Any) -> Any:
        task_try = TaskTry.of(self, context, allow_secrets=self.allow_secrets_in_state)
        # At the store's first call, before the function reads anything through it: a raw key it kept
        # (get_state_store) from a life that succeeded is gone after a person's clear, as the handle's
        # own state is. Not now: a function that never touches its state reads nothing.
        task_try.start_fresh_at_first_use()
        if not task_try.durable:
            self.log.info("No task instance in the context: loops and jobs last only as long as this call")
        handle = ResumableHandle(
            task_try,
            task=self,
            log=self.log,
            policy=self.checkpoint_policy,
            background=None if self.background_checkpoints else False,
        )
        # Filled in like a context key: the function gets it when it names a `resumable` parameter.
        context[HANDLE_ARGUMENT] = handle
        token = set_current_handle(handle)
        original: Callable[..., Any] = self.python_callable  # type: ignore[has-type]
        if inspect.iscoroutinefunction(original) and not runs_async_callables():
            self.python_callable = _in_own_event_loop(original)
        try:
            result = super().execute(context)
        except BaseException:
            handle.close(failed=True)
            raise
        finally:
            self.python_callable = original
            reset_current_handle(token)
            # A loop the function left without closing it: its writer thread ends with the task.
            task_try.close_writers()
        handle.close(failed=False)
        return result


def resumable_task(
    python_callable: Callable[..., Any] | None = None,
    multiple_outputs: bool | None = None,
    **kwargs: Any,
) -> Any:
    """
    Wrap a function into a resumable task: ``@task.resumable``.

    Takes every argument ``@task`` takes, and ``checkpoint_every``, ``checkpoint_interval``,
    ``allow_secrets_in_state``. The function receives the try's handle as its ``resumable``
    argument, or calls :func:`~airflow.providers.resumable.mixins.taskflow.get_resumable_handle`.
    """
    return task_decorator_factory()(
        python_callable=python_callable,
        multiple_outputs=multiple_outputs,
        decorated_operator_class=_ResumableDecoratedOperator,
        **kwargs,
    )
