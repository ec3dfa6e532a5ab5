"""
What happens once Airflow has recorded a task instance's success: the registry, the actions, the finish.

A try registers itself here once (``TaskTry`` does, when it is built with a durable store), and may
add *success actions* (a watermark commit). When the try ends, the provider's listener (see
``plugins/resumable.py``, which only wires Airflow's hooks to this module) calls
:func:`finish_after_success` or :func:`forget`:

1. the actions run, in the order registered: they may read what the try left in its state;
2. every registered store is finished (``StateStore.finish``): dropped, or marked finished.

Nothing is finished inside ``execute``: the XCom push, ``post_execute`` or the worker itself can
still fail the try after it returns. A failed try, or a worker that dies before the listener runs,
leaves everything as it was: what an action would have done simply does not happen.
"""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from airflow.providers.resumable.state.backends import VariableStateStore
from airflow.providers.resumable.state.base import backend_name, state_command
from airflow.providers.resumable.state.codec import utcnow_iso

if TYPE_CHECKING:
    from airflow.providers.resumable.state.base import StateStore, TaskScope
    from airflow.providers.resumable.state.lifecycle import TryInfo

log = logging.getLogger(__name__)


class SuccessAction(Protocol):
    """
    Something to do once Airflow has recorded a task instance's success (a watermark commit).

    ``key`` names it: registering another action with the same key in the same try replaces the
    earlier one (the last value staged wins). Calling it does the work and returns what it did, for
    the log; it runs in the listener, where the task can no longer fail, so it must say in the log
    what went wrong rather than hope someone catches the exception.
    """

    key: str

    def __call__(self) -> str: ...


@dataclass
class Pending:
    """What one try of one task instance asked to have done after its success."""

    info: TryInfo
    stores: list[StateStore] = field(default_factory=list)
    #: Run before the stores are finished, in the order registered.
    actions: list[SuccessAction] = field(default_factory=list)


_pending: dict[TaskScope, Pending] = {}
#: Tries killed (SIGTERM: a person's mark, a shutdown) in this process: task instance -> the try's id.
_killed: dict[TaskScope, str | None] = {}
_lock = threading.Lock()
#: Airflow 2.11 without a try start date: one stamp per try as this process sees it, dropped when the
#: listener sees the try end, so a DAG run deleted and created again in the same process (``dag.test``)
#: is not mistaken for the same try.
_process_stamps: dict[tuple[TaskScope, int | None], str] = {}


def process_stamp(scope: TaskScope, try_number: int | None) -> str:
    """A stamp for this try of ``scope``, the same for as long as this process runs the try."""
    with _lock:
        return _process_stamps.setdefault((scope, try_number), f"process-{uuid.uuid4().hex}")


def register_store(scope: TaskScope, info: TryInfo, store: StateStore) -> None:
    """Finish ``store`` once Airflow has recorded the success of this try of ``scope``."""
    with _lock:
        entry = _pending.setdefault(scope, Pending(info))
        if all(existing is not store for existing in entry.stores):
            entry.stores.append(store)


def register_action(scope: TaskScope, info: TryInfo, action: SuccessAction) -> None:
    """Run ``action`` once Airflow has recorded the success of this try of ``scope``."""
    with _lock:
        entry = _pending.setdefault(scope, Pending(info))
        entry.actions = [existing for existing in entry.actions if existing.key != action.key]
        entry.actions.append(action)


def note_killed(scope: TaskScope, info: TryInfo) -> None:
    """
    The running try of ``scope`` was told to stop (its ``on_kill`` ran).

    A killed try can still return from ``execute`` before the process is killed (Airflow 3.4 waits
    ``[core] killed_task_cleanup_time``, 60 s, between SIGTERM and SIGKILL), and the task runner then
    calls the success listeners although Airflow has recorded no success: a person marked the task
    failed, or the worker is shutting down. Nothing is finished or committed for such a try.
    """
    with _lock:
        _killed[scope] = info.try_id


def forget(scope: TaskScope) -> Pending | None:
    """A try of ``scope`` ended: take (and drop) what it registered."""
    with _lock:
        for key in [key for key in _process_stamps if key[0] == scope]:
            del _process_stamps[key]
        _killed.pop(scope, None)
        return _pending.pop(scope, None)


def finish_after_success(scope: TaskScope) -> list[str]:
    """
    Airflow recorded the success of ``scope``'s try: run its actions, then finish its stores.

    Returns what was done, one line each, as logged. Nothing here raises: the task already
    succeeded and cannot be failed now.
    """
    with _lock:
        killed = _killed.get(scope, "") if scope in _killed else None
    pending = forget(scope)
    if pending is None:
        return []
    if killed is not None and killed == pending.info.try_id:
        log.warning(
            "%s.%s was killed (a person marked it, or its worker shut down) before it returned, so Airflow may "
            "not have recorded its success: its state is kept and %s after-success action(s) are not run; a "
            "retry or a person's clear decides from the state as it is",
            scope.dag_id,
            scope.task_id,
            len(pending.actions),
        )
        return []
    done: list[str] = []
    # Actions first (watermark commits): they may read what this try left in its state, which
    # finishing the stores below can drop.
    for action in pending.actions:
        try:
            said = action()
        except Exception:
            # What the action would have moved stays where it was, and the next run redoes that
            # work (at least once).
            log.exception(
                "%s.%s succeeded, but %s could not be done after it; it stays undone and the next run "
                "repeats the work it covered",
                scope.dag_id,
                scope.task_id,
                action.key,
            )
            continue
        log.info("After the success of %s.%s: %s", scope.dag_id, scope.task_id, said)
        done.append(said)
    marker = pending.info.marker(utcnow_iso())
    for store in pending.stores:
        try:
            said = store.finish(marker)
        except Exception:
            log.exception(
                "Could not finish the resumable state of %s after its success: it stays in %r. A clear of "
                "this task instance still starts afresh when max_tries moves; to be sure, delete it with `%s`.",
                scope,
                store,
                state_command("delete", scope),
            )
            continue
        log.info("Resumable state of %s.%s after success: %s", scope.dag_id, scope.task_id, said)
        done.append(said)
    if any(backend_name(store) == VariableStateStore.name for store in pending.stores):
        done.extend(_sweep_kept_variables(scope))
    return done


def _sweep_kept_variables(scope: TaskScope) -> list[str]:
    """Airflow 2: delete the Variables of ``scope``'s DAG kept after their success whose time is up."""
    from datetime import UTC, datetime

    from airflow.providers.resumable.state import finished_variables

    try:
        if finished_variables.retention() is None:
            return []
    except Exception:
        log.exception("Cannot read [resumable] %s; no kept Variable is deleted", finished_variables.OPTION)
        return []
    swept = finished_variables.sweep_expired(scope.dag_id, datetime.now(tz=UTC))
    for said in swept:
        log.info("Kept state of DAG %s after its time: %s", scope.dag_id, said)
    return swept


def has_pending(scope: TaskScope) -> bool:
    """Whether a try of ``scope`` running in this process registered anything to finish."""
    with _lock:
        return scope in _pending


def drop_marked_success(scope: TaskScope) -> list[str]:
    """
    A person marked ``scope`` success outside any try of it: drop its state through the metadata DB.

    Airflow 3's API server calls the success listeners for a "mark success" (no try ran to it, so
    nothing is registered); without this the state would stay until a clear relied on ``max_tries``.
    What a worker's listener does after a success, done where the mark is recorded: the Variable and
    the ledger are deleted, and the native store's rows too (there is no task here to write the
    finished marker through; an empty store starts the next life afresh just the same). Airflow 2.11
    calls no listener for a mark; ``airflow resumable state sweep`` covers it. Nothing here raises.
    """
    from airflow.utils.session import create_session

    from airflow.providers.resumable.compat.airflow import OrmVariables, loop_region
    from airflow.providers.resumable.compat.metadata_db import delete_task_state_rows, task_state_rows
    from airflow.providers.resumable.state.backends import LEDGER_PREFIX, VARIABLE_PREFIX, variable_key

    done: list[str] = []
    try:
        variables = OrmVariables()
        for prefix in (VARIABLE_PREFIX, LEDGER_PREFIX):
            key = variable_key(scope, prefix)
            if variables.get(key) is not None:
                variables.delete(key)
                done.append(f"Variable {key!r} deleted")
        with create_session() as session:
            rows = task_state_rows(session, dag_id=scope.dag_id, run_id=scope.run_id, task_id=scope.task_id)
            mine = [row for row in rows if row.map_index == scope.map_index]
            # Named as the CLI names them: a mapped expansion's region is no Task Loop region.
            regions = {row: loop_region(row.region_id, row.region_index, row.map_index) for row in mine}
            for region in set(regions.values()):
                keys = sorted(row.key for row in mine if regions[row] == region)
                deleted = delete_task_state_rows(
                    session,
                    dag_id=scope.dag_id,
                    run_id=scope.run_id,
                    task_id=scope.task_id,
                    map_index=scope.map_index,
                    region_id=region[0],
                    region_index=region[1],
                    keys=keys,
                )
                done.append(f"{deleted} task_state_store row(s) deleted")
    except Exception:
        log.exception(
            "%s was marked success, but its resumable state could not be dropped; delete it with `%s`",
            scope,
            state_command("delete", scope),
        )
        return done
    for said in done:
        log.info("Resumable state of %s.%s after a person marked it success: %s", scope.dag_id, scope.task_id, said)
    return done
