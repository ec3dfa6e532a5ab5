"""An in-memory state backend for tests, selected through ``[resumable] state_backend`` like any other."""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.resumable.state.backends import InMemoryStateStore

if TYPE_CHECKING:
    from collections.abc import Iterator

#: The environment variable of ``[resumable] state_backend``.
STATE_BACKEND_ENV = "AIRFLOW__RESUMABLE__STATE_BACKEND"


class SharedMemoryStore(InMemoryStateStore):
    """
    One store for every task instance in the process, so a test can read what an operator stored
    and count its calls (``data``, ``calls``) after the run.

    Airflow's test runner (``dag.test()``, :func:`~airflow.providers.resumable.testing.runner.run_dag`) runs
    every try in the test's process, so all tries of a task see the same store, as they would see
    the metadata DB. It is not scoped to a task instance: two resumable tasks of one DAG that use the
    same keys share them. Give each test one resumable task, or test on the real backend.
    """

    current: ClassVar[SharedMemoryStore | None] = None

    @classmethod
    def from_context(cls, context: Any) -> SharedMemoryStore:
        if cls.current is None:
            cls.current = cls()
        return cls.current


@contextmanager
def in_memory_state_backend(store: SharedMemoryStore | None = None) -> Iterator[SharedMemoryStore]:
    """
    Route every resumable operator to ``store`` (a fresh :class:`SharedMemoryStore` by default)
    while the block runs, by pointing ``[resumable] state_backend`` at its class; both are restored
    afterwards. Yields the store::

        with in_memory_state_backend() as store:
            run_dag(dag)
        assert store.get("stateful/checkpoint") is not None
    """
    store = SharedMemoryStore() if store is None else store
    cls = type(store)
    saved_store = cls.__dict__.get("current")
    saved_env = os.environ.get(STATE_BACKEND_ENV)
    cls.current = store
    os.environ[STATE_BACKEND_ENV] = f"{cls.__module__}.{cls.__qualname__}"
    try:
        yield store
    finally:
        cls.current = saved_store
        if saved_env is None:
            os.environ.pop(STATE_BACKEND_ENV, None)
        else:
            os.environ[STATE_BACKEND_ENV] = saved_env
