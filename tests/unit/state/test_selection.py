from __future__ import annotations

import pytest

from airflow.providers.resumable.state import (
    InMemoryStateStore,
    NamespacedStateStore,
    NativeTaskStateStore,
    StateBackendConfigError,
    VariableStateStore,
    clears_on_success,
    get_state_store,
)
from tests.support.context import make_context

SHARED = InMemoryStateStore()


class ContextStore(InMemoryStateStore):
    """A custom backend as a user would write one: built from the context."""

    @classmethod
    def from_context(cls, context):
        store = cls()
        store.built_for = context["ti"].task_id
        return store


class NotAStore:
    def __init__(self, context):
        pass


class TestAuto:
    def test_native_when_the_context_has_it(self, state_backend):
        state_backend("auto")
        store = get_state_store(make_context(task_state_store=object()))
        assert isinstance(store, NativeTaskStateStore)

    def test_variables_otherwise(self, state_backend):
        state_backend("auto")
        assert isinstance(get_state_store(make_context()), VariableStateStore)

    def test_default_is_auto(self, monkeypatch):
        monkeypatch.delenv("AIRFLOW__RESUMABLE__STATE_BACKEND", raising=False)
        assert isinstance(get_state_store(make_context()), VariableStateStore)


class TestForced:
    def test_variable_even_when_native_exists(self, state_backend):
        state_backend("variable")
        assert isinstance(get_state_store(make_context(task_state_store=object())), VariableStateStore)

    def test_native_missing_is_a_clear_error(self, state_backend):
        state_backend("task_state_store")
        with pytest.raises(Exception, match="needs Airflow 3.3"):
            get_state_store(make_context())

    def test_dotted_class_path(self, state_backend):
        state_backend(f"{__name__}.ContextStore")
        store = get_state_store(make_context())
        assert isinstance(store, ContextStore)
        assert store.built_for == "task"

    def test_explicit_argument_wins_over_config(self, state_backend):
        state_backend("task_state_store")
        assert isinstance(get_state_store(make_context(), backend="variable"), VariableStateStore)

    @pytest.mark.parametrize("value", ["variables", "native", "Auto"])
    def test_unknown_word_names_the_value(self, state_backend, value):
        state_backend(value)
        with pytest.raises(StateBackendConfigError, match=rf"state_backend .*got '{value}'"):
            get_state_store(make_context())

    def test_unloadable_class_names_the_value(self, state_backend):
        state_backend("no.such.module.Store")
        with pytest.raises(StateBackendConfigError, match=r"'no.such.module.Store' cannot be loaded"):
            get_state_store(make_context())

    def test_class_that_is_not_a_store(self, state_backend):
        state_backend(f"{__name__}.NotAStore")
        with pytest.raises(StateBackendConfigError, match="lacks the StateStore methods"):
            get_state_store(make_context())


def test_clears_on_success_looks_through_namespaces():
    assert clears_on_success(VariableStateStore.from_context(make_context()))
    assert not clears_on_success(NativeTaskStateStore(object()))
    assert clears_on_success(NamespacedStateStore(VariableStateStore.from_context(make_context()), "x"))
    assert not clears_on_success(InMemoryStateStore())
