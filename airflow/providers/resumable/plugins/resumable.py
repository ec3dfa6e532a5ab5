"""
The provider's Airflow plugin: a listener that wires Airflow's task hooks to ``state/after_success.py``.

In Airflow 3.1+'s API server it also serves the task instance's Resumable tab (``plugins/ui.py``).

Registered through the ``airflow.plugins`` entry point, which Airflow loads in every process (the
scheduler, the API server, and the task runner) on 2.11 and 3.x alike; provider-declared plugins are
only loaded eagerly when ``[core] lazy_discover_providers`` is off.

``on_task_instance_success`` runs after Airflow has made the success durable: on Airflow 3 the task
runner calls it from ``finalize()``, after the supervisor's ``succeed`` call to the API server
returned; on Airflow 2 ``_run_raw_task`` calls it after the success was committed. Only then are the
try's success actions run and its state dropped (Variables) or marked finished (native store).
Should the worker die between the two, the state stays, and the next try (necessarily a person's
clear) still starts afresh; see docs/state-backends.rst, "State lifecycle".
"""

from __future__ import annotations

from typing import Any

import pluggy
from airflow.plugins_manager import AirflowPlugin

from airflow.providers.resumable.state import after_success
from airflow.providers.resumable.state.task_try import scope_of_ti, task_instance_of

hookimpl = pluggy.HookimplMarker("airflow")


def _scope_of(task_instance: Any) -> Any:
    return scope_of_ti(task_instance) if task_instance_of({"ti": task_instance}) is not None else None


class _SuccessListener:
    """Pluggy listener; Airflow passes more arguments on some versions, which pluggy leaves out."""

    @hookimpl
    def on_task_instance_success(self, previous_state: Any, task_instance: Any) -> None:
        scope = _scope_of(task_instance)
        if scope is None:
            return
        if previous_state is None and not after_success.has_pending(scope):
            # Airflow 3's API server, for a person's "mark success" (a worker passes RUNNING).
            after_success.drop_marked_success(scope)
            return
        after_success.finish_after_success(scope)

    @hookimpl
    def on_task_instance_failed(self, previous_state: Any, task_instance: Any) -> None:
        # The state must survive for the retry; only forget that it was to be finished.
        scope = _scope_of(task_instance)
        if scope is not None:
            after_success.forget(scope)


listener = _SuccessListener()


def _ui() -> tuple[list[Any], list[Any]]:
    """
    The Resumable tab (``plugins/ui.py``): built only inside the API server of Airflow 3.1+, and only while
    ``[resumable] ui_enabled`` is on; every other process (scheduler, workers, tasks) skips FastAPI.
    """
    from airflow.providers.resumable.compat import api_server

    if not (api_server.running_on_api_server() and api_server.ui_enabled()):
        return [], []
    from airflow.providers.resumable.plugins import ui

    return ui.fastapi_apps(), ui.external_views()


class ResumableProviderPlugin(AirflowPlugin):
    name = "resumable"
    listeners = [listener]
    fastapi_apps, external_views = _ui()
