"""A TaskFlow handle on a fake try, with no operator: what the handle's unit tests share."""

from __future__ import annotations

import logging

from airflow.providers.resumable.mixins.checkpoint_policies import checkpoint_every_n_batches
from airflow.providers.resumable.mixins.taskflow import ResumableHandle
from airflow.providers.resumable.state.task_try import TaskTry
from tests.support.context import FakeTI, make_context

log = logging.getLogger(__name__)


def handle(ti: FakeTI | None = None, every: int = 3) -> ResumableHandle:
    task_try = TaskTry.from_context(make_context(ti or FakeTI()), owner="task", kind="test")
    return ResumableHandle(task_try, log=log, policy=checkpoint_every_n_batches(every))
