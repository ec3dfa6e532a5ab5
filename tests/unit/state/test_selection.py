from __future__ import annotations

from unittest import mock

import pytest

from airflow.providers.resumable.state import (
    EphemeralStateStore,
    InMemoryStateStore,
    NativeTaskStateStore,
    StateBackendConfigError,
    StateStoreError,
    VariableStateStore,
    get_state_store,
    is_durable,
    validate_backend,
)
from airflow.providers.resumable.version_compat import AirflowFailException
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


class BrokenSignature:
    @classmethod
    def from_context(cls):
        raise AssertionError("never called with the wrong arguments")


class Unreachable:
    @classmethod
    def from_context(cls, context):
        raise ConnectionError("redis down")


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
        with pytest.raises(StateBackendConfigError, match=rf"state_backend .* = '{value}' is neither one of auto"):
            get_state_store(make_context())

    def test_unloadable_class_names_the_value(self, state_backend):
        state_backend("no.such.module.Store")
        with pytest.raises(StateBackendConfigError, match=r"'no.such.module.Store' cannot be loaded"):
            get_state_store(make_context())

    def test_class_that_is_not_a_store(self, state_backend):
        state_backend(f"{__name__}.NotAStore")
        with pytest.raises(StateBackendConfigError, match="lacks the StateStore methods"):
            get_state_store(make_context())


class TestPermanence:
    """Bad configuration fails the task without retries; an unreachable store may recover."""

    def test_config_errors_do_not_use_retries(self, state_backend):
        state_backend("no.such.module.Store")
        with pytest.raises(AirflowFailException):
            get_state_store(make_context())

    def test_a_constructor_with_the_wrong_signature_names_the_setting(self, state_backend):
        state_backend(f"{__name__}.BrokenSignature")
        with pytest.raises(StateBackendConfigError, match=r"state_backend .*BrokenSignature.*TypeError.*from_context"):
            get_state_store(make_context())

    def test_a_constructor_that_cannot_connect_names_the_setting_and_may_retry(self, state_backend):
        state_backend(f"{__name__}.Unreachable")
        with pytest.raises(StateStoreError, match=r"state_backend .*Unreachable.*ConnectionError: redis down") as info:
            get_state_store(make_context())
        assert not isinstance(info.value, AirflowFailException)


class TestParseTime:
    @pytest.mark.parametrize("value", ["auto", "variable", "task_state_store", f"{__name__}.ContextStore"])
    def test_valid_values_pass(self, value):
        assert validate_backend(value) == value

    def test_a_typo_is_caught_before_any_task_runs(self, state_backend):
        state_backend("varaible")
        with pytest.raises(StateBackendConfigError, match="'varaible'"):
            validate_backend()


class TestOutsideATaskInstance:
    """``op.execute(None)``, ``{}`` or a MagicMock context: the official providers' own unit tests."""

    @pytest.mark.parametrize(
        "context", [None, {}, {"ti": None}, mock.MagicMock()], ids=["none", "empty", "no-ti", "mock"]
    )
    @pytest.mark.parametrize("backend", ["auto", "variable", "task_state_store"])
    def test_built_in_backends_give_an_ephemeral_store(self, state_backend, context, backend):
        state_backend(backend)
        store = get_state_store(context)
        assert isinstance(store, EphemeralStateStore)
        assert not is_durable(store)

    def test_a_configured_test_store_is_used(self, state_backend):
        state_backend("tests.support.stores.SharedMemoryStore")
        store = get_state_store(None)
        assert type(store).__name__ == "SharedMemoryStore"
        assert is_durable(store)

    def test_a_real_task_instance_is_durable(self, state_backend):
        state_backend("variable")
        assert is_durable(get_state_store(make_context()))
