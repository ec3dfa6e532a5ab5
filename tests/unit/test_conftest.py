"""The suite's own selection rule: a -variable leg leaves out only the tests that pin their own store."""

from __future__ import annotations

from types import SimpleNamespace

from tests.conftest import pytest_collection_modifyitems


def _config(backend_dependent_only: bool, deselected: list):
    return SimpleNamespace(
        getoption=lambda name: {"backend_dependent_only": backend_dependent_only}[name],
        hook=SimpleNamespace(pytest_deselected=lambda items: deselected.extend(items)),
    )


def _items():
    return [
        SimpleNamespace(name="pinned", fixturenames=["monkeypatch", "memory_store"]),
        SimpleNamespace(name="ephemeral", fixturenames=["ephemeral_store"]),
        SimpleNamespace(name="configured", fixturenames=["state_backend", "job_system"]),
        SimpleNamespace(name="plain", fixturenames=[]),
    ]


def test_only_the_tests_that_pin_their_own_store_are_left_out_and_reported_deselected():
    items, deselected = _items(), []
    pytest_collection_modifyitems(_config(True, deselected), items)
    assert [i.name for i in items] == ["configured", "plain"]
    assert [i.name for i in deselected] == ["pinned", "ephemeral"]


def test_without_the_option_every_test_runs():
    items, deselected = _items(), []
    pytest_collection_modifyitems(_config(False, deselected), items)
    assert [i.name for i in items] == ["pinned", "ephemeral", "configured", "plain"]
    assert deselected == []
