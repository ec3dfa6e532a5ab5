"""Put an operator in the state of a try that is polling its job, as ``on_kill`` finds it."""

from __future__ import annotations

from typing import Any

from airflow.providers.resumable.mixins.job_runner import JobRun
from airflow.providers.resumable.state.task_try import TaskTry


def while_polling(op: Any, external_id: Any, context: Any) -> JobRun:
    """``op`` as it is while its try polls ``external_id``: what a kill (SIGTERM) interrupts."""
    run = JobRun(op._calls(context), TaskTry.of(op, context), op._job_settings(), op.log)
    run.running_external_id = external_id
    op.job_run = run
    return run
