"""A state backend for unit tests, selected through ``[resumable] state_backend`` like a user's own."""

from __future__ import annotations

from airflow.providers.resumable.state import InMemoryStateStore


class SharedMemoryStore(InMemoryStateStore):
    """Every task instance gets the same process-wide store, so a test can inspect and count calls."""

    current: SharedMemoryStore | None = None

    @classmethod
    def from_context(cls, context):
        if cls.current is None:
            cls.current = cls()
        return cls.current


class EphemeralMemoryStore(SharedMemoryStore):
    """Like the Variable backend: the mixins must wipe it when the task succeeds."""

    clears_on_success = True
