"""TaskFlow decorators: ``@task.resumable``."""

from __future__ import annotations

from airflow.providers.resumable.decorators.resumable import get_resumable_handle, resumable_task

__all__ = ["get_resumable_handle", "resumable_task"]
