"""Pick the state backend for a task: ``[resumable] state_backend`` or, by default, the best available."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from airflow.providers.resumable.state.backends import NativeTaskStateStore, VariableStateStore
from airflow.providers.resumable.state.base import StateBackendConfigError, StateStore

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


def _load_class(path: str) -> Any:
    module_name, _, attr = path.rpartition(".")
    if not module_name:
        raise StateBackendConfigError(
            f"[{CONFIG_SECTION}] {CONFIG_OPTION} must be one of {', '.join(BUILTIN_BACKENDS)} or a dotted "
            f"class path, got {path!r}"
        )
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise StateBackendConfigError(
            f"[{CONFIG_SECTION}] {CONFIG_OPTION} = {path!r} cannot be loaded: {type(err).__name__}: {err}"
        ) from err


def get_state_store(context: Mapping[str, Any], backend: str | None = None) -> StateStore:
    """
    Return the state store of the task instance running with ``context``.

    ``backend`` defaults to ``[resumable] state_backend``: ``auto`` uses the native
    ``task_state_store`` when the context has one (Airflow 3.3+) and Airflow Variables otherwise;
    ``task_state_store`` and ``variable`` force one; anything else is a dotted path to a class whose
    ``from_context(context)`` (or constructor, called with the context) returns a ``StateStore``.
    """
    choice = configured_backend() if backend is None else backend.strip()
    if choice == AUTO:
        if context.get("task_state_store") is not None:
            return NativeTaskStateStore.from_context(context)
        return VariableStateStore.from_context(context)
    if choice == "task_state_store":
        return NativeTaskStateStore.from_context(context)
    if choice == "variable":
        return VariableStateStore.from_context(context)

    cls = _load_class(choice)
    factory = getattr(cls, "from_context", cls)
    store = factory(context)
    if not isinstance(store, StateStore):
        raise StateBackendConfigError(
            f"[{CONFIG_SECTION}] {CONFIG_OPTION} = {choice!r} built a {type(store).__name__}, which lacks "
            "the StateStore methods get/set/delete/clear"
        )
    return store


def clears_on_success(store: Any) -> bool:
    """Whether the mixins should wipe their state when the task succeeds (Variables: yes)."""
    inner = getattr(store, "inner", store)
    return bool(getattr(inner, "clears_on_success", False))
