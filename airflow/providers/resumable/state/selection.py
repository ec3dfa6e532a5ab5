"""
Which state backend a task uses: ``[resumable] state_backend``, read and checked.

The store itself is built for the running try in ``task_try.py`` (``get_state_store``), the one place
that reads the running task.
"""

from __future__ import annotations

import importlib
from typing import Any

from airflow.providers.resumable.state.base import StateBackendConfigError

CONFIG_SECTION = "resumable"
CONFIG_OPTION = "state_backend"
AUTO = "auto"
BUILTIN_BACKENDS = ("auto", "task_state_store", "variable")


def configured_backend() -> str:
    from airflow.configuration import conf

    value = conf.get(CONFIG_SECTION, CONFIG_OPTION, fallback=AUTO)
    return (value or AUTO).strip()


def setting(value: str) -> str:
    return f"[{CONFIG_SECTION}] {CONFIG_OPTION} (AIRFLOW__RESUMABLE__STATE_BACKEND) = {value!r}"


def load_class(path: str) -> Any:
    module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise StateBackendConfigError(
            f"{setting(path)} is neither one of {', '.join(BUILTIN_BACKENDS)} nor a dotted class path "
            "such as 'mypackage.stores.MyStore'"
        )
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise StateBackendConfigError(
            f"{setting(path)} cannot be loaded: {type(err).__name__}: {err}. Fix the setting or install the "
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
        load_class(choice)
    return choice


def is_durable(store: Any) -> bool:
    """False for the store that stands in when there is no task instance: nothing survives the call."""
    return bool(getattr(getattr(store, "inner", store), "durable", True))


def __getattr__(name: str) -> Any:
    # 0.1.0 exported get_state_store from here; it reads the running task, so it lives in task_try.py now.
    if name == "get_state_store":
        from airflow.providers.resumable.state.task_try import get_state_store

        return get_state_store
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
