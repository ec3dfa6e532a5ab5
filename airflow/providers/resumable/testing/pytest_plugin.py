"""
pytest fixtures for testing resumable operators. Enable them in your ``conftest.py``::

    pytest_plugins = ["airflow.providers.resumable.testing.pytest_plugin"]

This module imports pytest; ``airflow.providers.resumable.testing`` itself does not, since the
provider does not depend on pytest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from airflow.providers.resumable.testing.runner import dag_for_test
from airflow.providers.resumable.testing.stores import STATE_BACKEND_ENV, SharedMemoryStore

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture
def resumable_memory_store(monkeypatch: pytest.MonkeyPatch) -> Iterator[SharedMemoryStore]:
    """A fresh in-memory state store that every resumable operator uses during the test."""
    # monkeypatch, not in_memory_state_backend(): a test that also sets the variable with monkeypatch
    # then shares one undo stack with this fixture, so nothing leaks into the next test.
    saved = SharedMemoryStore.current
    SharedMemoryStore.current = store = SharedMemoryStore()
    monkeypatch.setenv(STATE_BACKEND_ENV, f"{SharedMemoryStore.__module__}.{SharedMemoryStore.__qualname__}")
    yield store
    SharedMemoryStore.current = saved


@pytest.fixture
def resumable_dag(request: pytest.FixtureRequest) -> Any:
    """A DAG named after the test (node id), so each test has its own runs, XComs and state."""
    return dag_for_test(request.node.nodeid)
