"""
Where retry state lives.

``get_state_store(context)`` returns the store of the running task instance: the native
``task_state_store`` on Airflow 3.3+, Airflow Variables below it, or what ``[resumable] state_backend``
forces. Every backend has the four methods of :class:`StateStore`.
"""

from __future__ import annotations

from airflow.providers.resumable.state.backends import (
    InMemoryStateStore,
    NativeTaskStateStore,
    VariableAccess,
    VariableStateStore,
    variable_key,
)
from airflow.providers.resumable.state.base import (
    JsonValue,
    NamespacedStateStore,
    StateBackendConfigError,
    StateStore,
    StateStoreError,
    TaskScope,
)
from airflow.providers.resumable.state.records import CheckpointEnvelope, JobRecord
from airflow.providers.resumable.state.selection import clears_on_success, get_state_store

__all__ = [
    "CheckpointEnvelope",
    "InMemoryStateStore",
    "JobRecord",
    "JsonValue",
    "NamespacedStateStore",
    "NativeTaskStateStore",
    "StateBackendConfigError",
    "StateStore",
    "StateStoreError",
    "TaskScope",
    "VariableAccess",
    "VariableStateStore",
    "clears_on_success",
    "get_state_store",
    "variable_key",
]
