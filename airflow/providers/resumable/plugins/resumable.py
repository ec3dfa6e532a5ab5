"""
The provider's Airflow plugin: a listener that finishes resumable state after a task's success.

Registered through the ``airflow.plugins`` entry point, which Airflow loads in every process (the
scheduler, the API server, and the task runner) on 2.11 and 3.x alike; provider-declared plugins are
only loaded eagerly when ``[core] lazy_discover_providers`` is off.

``on_task_instance_success`` runs after Airflow has made the success durable: on Airflow 3 the task
runner calls it from ``finalize()``, after the supervisor's ``succeed`` call to the API server
returned; on Airflow 2 ``_run_raw_task`` calls it after the success was committed. Only then is the
state of the task instance dropped (Variables) or marked finished (native store), after the
actions registered for success (watermark commits, ``register_on_success``) have run. Should the worker
die between the two, the state stays, and the next try (necessarily a person's clear) still starts
afresh when ``max_tries`` moved; see docs/state-backends.rst, "State lifecycle".
"""

from __future__ import annotations

import logging
from typing import Any

import pluggy
from airflow.plugins_manager import AirflowPlugin

from airflow.providers.resumable.state.base import TaskScope, state_command, task_instance_of
from airflow.providers.resumable.state.lifecycle import finish_store, take_pending
from airflow.providers.resumable.state.records import utcnow_iso

log = logging.getLogger(__name__)

hookimpl = pluggy.HookimplMarker("airflow")


def _scope_of(task_instance: Any) -> TaskScope | None:
    context = {"ti": task_instance}
    return TaskScope.from_context(context) if task_instance_of(context) is not None else None


class _SuccessListener:
    """Pluggy listener; Airflow passes more arguments on some versions, which pluggy leaves out."""

    @hookimpl
    def on_task_instance_success(self, previous_state: Any, task_instance: Any) -> None:
        scope = _scope_of(task_instance)
        pending = take_pending(scope) if scope is not None else None
        if scope is None or pending is None:
            return
        # Actions first (watermark commits): they may read what this try left in its state, which
        # finishing the stores below can drop.
        for action in pending.actions:
            try:
                log.info("After the success of %s.%s: %s", scope.dag_id, scope.task_id, action())
            except Exception:
                # The task already succeeded and cannot be failed now; what the action would have
                # moved stays where it was, and the next run redoes that work (at least once).
                log.exception(
                    "%s.%s succeeded, but %s could not be done after it; it stays undone and the next run "
                    "repeats the work it covered",
                    scope.dag_id,
                    scope.task_id,
                    action.key,
                )
        now = utcnow_iso()
        for store in pending.stores:
            try:
                done = finish_store(store, pending.info, now)
                log.info("Resumable state of %s.%s after success: %s", scope.dag_id, scope.task_id, done)
            except Exception:
                # The task already succeeded; failing it now is impossible and would hide nothing.
                log.exception(
                    "Could not finish the resumable state of %s after its success: it stays in %r. A clear of "
                    "this task instance still starts afresh when max_tries moves; to be sure, delete it with `%s`.",
                    scope,
                    store,
                    state_command("delete", scope),
                )

    @hookimpl
    def on_task_instance_failed(self, previous_state: Any, task_instance: Any) -> None:
        # The state must survive for the retry; only forget that it was to be finished.
        scope = _scope_of(task_instance)
        if scope is not None:
            take_pending(scope)


listener = _SuccessListener()


class ResumableProviderPlugin(AirflowPlugin):
    name = "resumable"
    listeners = [listener]
