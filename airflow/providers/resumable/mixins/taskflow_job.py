"""
``handle.job(...)``: the TaskFlow handle's resumable job, one external job per life of the task instance.

A part of :class:`~airflow.providers.resumable.mixins.taskflow.ResumableHandle`: it binds the
function's callables into ``job_runner.JobCalls`` and runs them through ``job_runner.JobRun``, as
``ResumableJobMixin`` does for an operator; the decisions are the mixin's own.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from typing import TYPE_CHECKING, Any

from airflow.providers.resumable.mixins.decisions import SpecChangePolicy
from airflow.providers.resumable.mixins.job_runner import (
    STATUS_RETRY_STOP,
    STATUS_RETRY_WAIT,
    JobCalls,
    JobRun,
    JobSettings,
    is_transient_error,
)
from airflow.providers.resumable.mixins.taskflow_loop import off_loop

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow.providers.resumable.state.base import JsonValue
    from airflow.providers.resumable.state.task_try import TaskTry


class HandleJobs:
    """The handle's ``job`` and ``ajob``; ``ResumableHandle`` provides the try and the log."""

    task_try: TaskTry
    log: Any

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
        return await off_loop(run.run)
