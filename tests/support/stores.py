"""A state backend for unit tests, selected through ``[resumable] state_backend`` like a user's own."""

from __future__ import annotations

from airflow.providers.resumable.testing import SharedMemoryStore

__all__ = ["EphemeralMemoryStore", "SharedMemoryStore", "UnreachableVariableStore"]


class EphemeralMemoryStore(SharedMemoryStore):
    """Like the Variable backend: the mixins must wipe it when the task succeeds."""

    clears_on_success = True


class UnreachableVariables:
    """Variable calls that fail as a down metadata DB / API server would."""

    def get(self, key):
        raise ConnectionError("could not connect to the metadata database")

    set = delete = get


class UnreachableVariableStore:
    """The Variable backend with its Variables unreachable, selected by dotted path."""

    @classmethod
    def from_context(cls, context):
        from airflow.providers.resumable.state import TaskScope, VariableStateStore

        return VariableStateStore(TaskScope.from_context(context), access=UnreachableVariables())
