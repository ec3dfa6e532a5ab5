"""Pick the state backend for a task: ``[resumable] state_backend`` or, by default, the best available."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from airflow.providers.resumable.state.backends import (
    EphemeralStateStore,
    NativeTaskStateStore,
    VariableStateStore,
)
from airflow.providers.resumable.state.base import (
    StateBackendConfigError,
    StateStore,
    StateStoreError,
    task_instance_of,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

CONFIG_SECTION = "resumable"
CONFIG_OPTION = "state_backend"
AUTO = "auto"
BUILTIN_BACKENDS = ("auto", "task_state_store", "variable")


def configured_backend() -> str:
    from airflow.configuration import conf

    value = conf.get(CONFIG_SECTION, CONFIG_OPTION, fallback=AUTO)
    return (value or AUTO).strip()


def _setting(value: str) -> str:
    return f"[{CONFIG_SECTION}] {CONFIG_OPTION} (AIRFLOW__RESUMABLE__STATE_BACKEND) = {value!r}"


def _load_class(path: str) -> Any:
    module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise StateBackendConfigError(
            f"{_setting(path)} is neither one of {', '.join(BUILTIN_BACKENDS)} nor a dotted class path "
            "such as 'mypackage.stores.MyStore'"
        )
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise StateBackendConfigError(
            f"{_setting(path)} cannot be loaded: {type(err).__name__}: {err}. Fix the setting or install the "
            "package that provides the class."
        ) from err


def validate_backend(value: str | None = None) -> str:
    """
    Check ``[resumable] state_backend`` and return it; raise ``StateBackendConfigError`` naming a bad value.

    The mixins call this when an operator is created, so a typo fails the DAG at parse time (an import
    error that names the value) instead of failing every task when it runs.
    """
    choice = configured_backend() if value is None else value.strip()
    if choice not in BUILTIN_BACKENDS:
        _load_class(choice)
    return choice


def _build(choice: str, context: Any) -> StateStore:
    cls = _load_class(choice)
    factory = getattr(cls, "from_context", cls)
    try:
        store = factory(context)
    except StateStoreError:
        raise
    except (TypeError, AttributeError, ValueError) as err:
        raise StateBackendConfigError(
            f"{_setting(choice)}: building the store failed with {type(err).__name__}: {err}. The class needs a "
            "from_context(context) classmethod (or a constructor taking the context) that returns a StateStore."
        ) from err
    except Exception as err:
        raise StateStoreError(
            f"{_setting(choice)}: building the store failed with {type(err).__name__}: {err}; failing the task "
            "rather than running without durable state."
        ) from err
    if not isinstance(store, StateStore):
        raise StateBackendConfigError(
            f"{_setting(choice)} built a {type(store).__name__}, which lacks the StateStore methods "
            "get/set/delete/clear"
        )
    return store


def get_state_store(context: Mapping[str, Any] | None, backend: str | None = None) -> StateStore:
    """
    Return the state store of the task instance running with ``context``.

    ``backend`` defaults to ``[resumable] state_backend``: ``auto`` uses the native
    ``task_state_store`` when the context has one (Airflow 3.3+) and Airflow Variables otherwise;
    ``task_state_store`` and ``variable`` force one; anything else is a dotted path to a class whose
    ``from_context(context)`` (or constructor, called with the context) returns a ``StateStore``.

    Without a task instance in the context (a unit test calling ``op.execute({})``) a configured
    class is still used, so a test store works; the built-in backends need a task instance, so an
    :class:`~.EphemeralStateStore` stands in and nothing is durable, as with the official operators.
    """
    choice = validate_backend(backend)
    if task_instance_of(context) is None:
        if choice not in BUILTIN_BACKENDS:
            return _build(choice, context)
        return EphemeralStateStore()
    assert context is not None
    if choice == AUTO:
        if context.get("task_state_store") is not None:
            return NativeTaskStateStore.from_context(context)
        return VariableStateStore.from_context(context)
    if choice == "task_state_store":
        return NativeTaskStateStore.from_context(context)
    if choice == "variable":
        return VariableStateStore.from_context(context)
    return _build(choice, context)


def is_durable(store: Any) -> bool:
    """False for the store that stands in when there is no task instance: nothing survives the call."""
    return bool(getattr(getattr(store, "inner", store), "durable", True))
