"""
Where retry state lives.

``get_state_store`` returns the store of the running task instance: the native
``task_state_store`` on Airflow 3.3+, Airflow Variables below it, or what ``[resumable] state_backend``
forces. Every backend has the four methods of :class:`~.StateStore`.
"""

from __future__ import annotations

from airflow.providers.resumable.state.backends import (
    EphemeralStateStore,
    InMemoryStateStore,
    NativeTaskStateStore,
    VariableAccess,
    VariableStateStore,
    variable_key,
)
from airflow.providers.resumable.state.base import (
    CorruptStateError,
    JsonValue,
    NamespacedStateStore,
    StateBackendConfigError,
    StateStore,
    StateStoreError,
    TaskScope,
)
from airflow.providers.resumable.state.codec import CheckpointEnvelope, JobRecord
from airflow.providers.resumable.state.selection import is_durable, validate_backend
from airflow.providers.resumable.state.task_try import TaskTry, get_state_store, task_instance_of

__all__ = [
    "CheckpointEnvelope",
    "CorruptStateError",
    "EphemeralStateStore",
    "InMemoryStateStore",
    "JobRecord",
    "JsonValue",
    "NamespacedStateStore",
    "NativeTaskStateStore",
    "StateBackendConfigError",
    "StateStore",
    "StateStoreError",
    "TaskScope",
    "TaskTry",
    "VariableAccess",
    "VariableStateStore",
    "get_state_store",
    "is_durable",
    "task_instance_of",
    "validate_backend",
    "variable_key",
]
