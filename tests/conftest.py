from __future__ import annotations

import os

import pytest

#: Fixtures that route the mixins to a store of the test's own, whatever ``[resumable] state_backend`` says.
PINNING_FIXTURES = frozenset({"memory_store", "ephemeral_store"})


def pytest_addoption(parser):
    parser.addoption(
        "--backend-dependent-only",
        action="store_true",
        help=(
            "leave out the tests that pin their own store (fixtures "
            f"{', '.join(sorted(PINNING_FIXTURES))}): their outcome does not depend on the configured "
            "state backend. For a leg that re-runs a venv another leg already ran on another backend."
        ),
    )


def pytest_report_header(config):
    from airflow import __version__

    lines = [
        f"airflow {__version__}; leg {os.environ.get('RESUMABLE_TEST_LEG', 'local')}; "
        f"state_backend {os.environ.get('AIRFLOW__RESUMABLE__STATE_BACKEND', 'auto')}"
    ]
    if config.getoption("backend_dependent_only"):
        lines.append(
            "--backend-dependent-only: tests that pin their own store are deselected (the native leg runs them)"
        )
    return lines


def pytest_collection_modifyitems(config, items):
    if not config.getoption("backend_dependent_only"):
        return
    pinned = [item for item in items if PINNING_FIXTURES.intersection(getattr(item, "fixturenames", ()))]
    if pinned:
        config.hook.pytest_deselected(items=pinned)
        left_out = set(map(id, pinned))
        items[:] = [item for item in items if id(item) not in left_out]


@pytest.fixture
def state_backend(monkeypatch):
    """Force ``[resumable] state_backend`` for one test."""

    def _set(value: str) -> None:
        monkeypatch.setenv("AIRFLOW__RESUMABLE__STATE_BACKEND", value)

    return _set


def _selected(state_backend, store_class, dotted_path):
    """A fresh ``store_class`` as the store its class hands out, selected as ``dotted_path``.

    Unset after the test by ``_no_memory_store_outlives_its_test``, which does so for every test.
    """
    store_class.current = store = store_class()
    state_backend(dotted_path)
    yield store


@pytest.fixture
def memory_store(state_backend):
    """Route the mixins to a fresh in-memory store (the shipped test backend); returns it for inspection."""
    # Through monkeypatch rather than in_memory_state_backend(): a test that also calls state_backend()
    # then has one undo stack, so the setting cannot leak into the next test whatever the fixture order.
    from airflow.providers.resumable.testing import SharedMemoryStore

    yield from _selected(state_backend, SharedMemoryStore, "airflow.providers.resumable.testing.SharedMemoryStore")


@pytest.fixture
def ephemeral_store(state_backend):
    """Like the Variable backend: the provider's listener drops it once a task instance succeeds."""
    from tests.support.stores import EphemeralMemoryStore

    yield from _selected(state_backend, EphemeralMemoryStore, "tests.support.stores.EphemeralMemoryStore")


@pytest.fixture
def job_system():
    from tests.support.fake_jobs import FakeJobServer, FakeJobSystem

    system = FakeJobSystem()
    with FakeJobServer(system) as server:
        system.url = server.url
        yield system


def _cache_in_process_api_server() -> None:
    """Tests that call dag.test() themselves get the shipped helper's cache too (3.0-3.2 only)."""
    from airflow.providers.resumable.testing.runner import cache_in_process_api_server

    cache_in_process_api_server()


_cache_in_process_api_server()


@pytest.fixture
def databricks(monkeypatch):
    """The fake Databricks Jobs API on 127.0.0.1, reachable as connection ``databricks_fake``."""
    import json

    from demo.fake_databricks import FakeDatabricks, FakeDatabricksServer

    with FakeDatabricksServer(FakeDatabricks()) as server:
        monkeypatch.setenv("AIRFLOW_CONN_DATABRICKS_FAKE", json.dumps(server.connection()))
        yield server.fake


@pytest.fixture
def databricks_workspace(monkeypatch):
    """The fake Jobs API with task runs and SQL statements (``demo/fake_databricks_workspace.py``), as ``databricks_fake``."""
    import json

    from demo.fake_databricks import FakeDatabricksServer
    from demo.fake_databricks_workspace import FakeDatabricksWorkspace

    with FakeDatabricksServer(FakeDatabricksWorkspace()) as server:
        monkeypatch.setenv("AIRFLOW_CONN_DATABRICKS_FAKE", json.dumps(server.connection()))
        yield server.fake


@pytest.fixture(autouse=True)
def _no_try_outlives_its_test():
    """
    A test that drives only part of a try (``on_kill`` with no listener after it, say) must not leave
    the process-wide after-success registry holding that try for the next test: in a worker every try
    ends with a listener call that forgets it.
    """
    yield
    from airflow.providers.resumable.state import after_success

    with after_success._lock:
        after_success._pending.clear()
        after_success._killed.clear()
        after_success._process_stamps.clear()


@pytest.fixture(autouse=True)
def _no_memory_store_outlives_its_test():
    """
    A test that selects the in-memory backend by name (not through ``memory_store``) gets a store its
    class creates on first use; the next test must not find that store, and its data, still current.
    """
    yield
    from airflow.providers.resumable.testing import SharedMemoryStore
    from tests.support.stores import EphemeralMemoryStore

    SharedMemoryStore.current = None
    EphemeralMemoryStore.current = None
