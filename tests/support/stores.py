"""A state backend for unit tests, selected through ``[resumable] state_backend`` like a user's own."""

from __future__ import annotations

from airflow.providers.resumable.testing import SharedMemoryStore

__all__ = ["DictVariables", "EphemeralMemoryStore", "SharedMemoryStore", "UnreachableVariableStore"]


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


class DictVariables:
    """Stands in for Airflow Variables: a dict of key -> (text, description)."""

    def __init__(self):
        self.rows: dict[str, tuple[str, str]] = {}
        self.calls: list[tuple[str, str]] = []
        self.fail_with: Exception | None = None

    def _maybe_fail(self):
        if self.fail_with is not None:
            raise self.fail_with

    def get(self, key):
        self.calls.append(("get", key))
        self._maybe_fail()
        row = self.rows.get(key)
        return None if row is None else row[0]

    def set(self, key, value, description):
        self.calls.append(("set", key))
        self._maybe_fail()
        self.rows[key] = (value, description)

    def delete(self, key):
        self.calls.append(("delete", key))
        self._maybe_fail()
        self.rows.pop(key, None)
