"""
What this provider has stored, read from outside any task: the state CLI's model.

A task reaches its state through the Execution API; a person on call has the metadata DB (the
``airflow`` CLI's own access). This module lists, explains and deletes the state of task instances
on both durable backends: rows of Airflow 3.3+'s ``task_state_store`` table (read and deleted through
``compat/airflow.py``: 3.4 keys them by region and index) and this provider's Variables
(``resumable.<dag>.<run>.<task>[.<map>].<hash>``, Fernet-decrypted as Airflow does).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow.providers.resumable.compat.airflow import delete_task_state_rows, task_state_rows
from airflow.providers.resumable.inventory.filters import Filters  # noqa: TC001 - the CLI builds it from here
from airflow.providers.resumable.state.backends import LEDGER_PREFIX, VARIABLE_PREFIX, variable_key
from airflow.providers.resumable.state.base import CorruptStateError, JsonValue, TaskScope, state_command
from airflow.providers.resumable.state.codec import (
    CHECKPOINT_KIND,
    FINISHED_KEY,
    FINISHED_KIND,
    JOB_RECORD_KIND,
    MAPPED_INPUT_KEY,
    WATERMARK_KIND,
    WINDOW_KIND,
    VariableDocument,
    safe_name,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

NATIVE = "task_state_store"
VARIABLE = "variable"
#: The native store's job records copied to a Variable (``TaskTry.ledger``), listed with the native state.
LEDGER = "ledger"
BACKENDS = (NATIVE, VARIABLE)


@dataclass
class TaskState:
    """All keys one task instance holds on one backend."""

    backend: str
    scope: TaskScope
    #: The Variable's name; for the native store, the table.
    location: str
    values: dict[str, JsonValue] = field(default_factory=dict)
    updated_at: str | None = None
    #: Why the stored bytes could not be read as this provider's state (they are then shown raw).
    problem: str | None = None
    #: Per key, when Airflow's ``state-store clean`` may delete it (native rows that expire only).
    expires_at: dict[str, str] = field(default_factory=dict)

    def _ledger_note(self) -> str:
        if self.backend != LEDGER:
            return ""
        return (
            "kept only by the ledger (the task's own state lost it: a clear discarded it, or it expired); the "
            "next try reads it from here: "
        )

    def entries(self, key: str | None = None) -> list[dict[str, Any]]:
        """
        One row per key, with what it means: the CLI's ``list`` and ``show`` output.

        ``region_id`` and ``region_index`` are there only for a task instance in a region (Airflow
        3.4's Task Loops), ``expires_at`` only for a key that expires.
        """
        finished = self.values.get(FINISHED_KEY)
        rows = []
        for name in sorted(self.values):
            if key is not None and name != key:
                continue
            row: dict[str, Any] = {
                "backend": self.backend,
                "dag_id": self.scope.dag_id,
                "run_id": self.scope.run_id,
                "task_id": self.scope.task_id,
                "map_index": self.scope.map_index,
            }
            if self.scope.region_id is not None:
                row.update(region_id=self.scope.region_id, region_index=self.scope.region_index)
            row.update(
                key=name,
                meaning=self.problem or self._ledger_note() + describe(name, self.values[name], finished),
                location=self.location,
                updated_at=self.updated_at,
                value=self.values[name],
                delete_with=delete_command(self.scope, name),
            )
            if name in self.expires_at:
                row["expires_at"] = self.expires_at[name]
            rows.append(row)
        return rows


def delete_command(scope: TaskScope, key: str | None = None) -> str:
    """``state delete`` of ``scope`` (and ``key``), naming the region when the task instance has one."""
    command = state_command("delete", scope, key)
    if scope.region_id is None:
        return command
    import shlex

    return f"{command} {shlex.join(['--region-id', scope.region_id, '--region-index', str(scope.region_index)])}"


def _short(value: JsonValue, limit: int = 80) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe(key: str, value: JsonValue, finished: JsonValue = None) -> str:
    """One line a person can act on: what ``value`` under ``key`` means for the next try."""
    done = finished.get("try_number") if isinstance(finished, dict) else None
    kind = value.get("kind") if isinstance(value, dict) else None
    if key == FINISHED_KEY or kind == FINISHED_KIND:
        try_number = value.get("try_number") if isinstance(value, dict) else "?"
        at = value.get("finished_at") if isinstance(value, dict) else "?"
        return f"finished: try {try_number} succeeded at {at}; a clear starts this task instance afresh"
    if kind == JOB_RECORD_KIND:
        assert isinstance(value, dict)
        token = value.get("token")
        generation = value.get("generation")
        tried = value.get("try_number")
        if value.get("legacy"):
            text = f"job {value.get('external_id')} (bare id adopted from Airflow's ResumableJobMixin, no token)"
        elif value.get("external_id") is None:
            text = (
                f"intent: a submit started at try {tried} ({value.get('intent_at')}) with token {token} and no job "
                "id came back; the next try looks the job up by its token before submitting"
            )
        else:
            text = (
                f"job {value.get('external_id')}, submitted at try {tried} ({value.get('submitted_at')}), "
                f"token {token}, generation {generation}"
            )
        if done is not None and isinstance(tried, int) and tried <= done:
            text += f"; its task instance succeeded at try {done}, so a clear submits a new job"
        return text
    if kind == CHECKPOINT_KIND:
        assert isinstance(value, dict)
        name = value.get("schema_name") or "checkpoint"
        batches = value.get("batches_done")
        progress = f"{batches} batches done" if batches is not None else "saved"
        complete = ", walk complete" if value.get("complete") else ""
        return (
            f"checkpoint {name} v{value.get('schema_version', 1)}: {progress}{complete}, written at try "
            f"{value.get('try_number')} ({value.get('saved_at')}); data {_short(value.get('data'))}"
        )
    if kind == WINDOW_KIND:
        assert isinstance(value, dict)
        own = "; it re-reads its own window (cleared after success)" if value.get("reread_own") else ""
        return (
            f"watermark window of this run: from {_short(value.get('since'))} (mark {_short(value.get('base'))}, "
            f"version {value.get('base_version')}), planned at try {value.get('try_number')}; every retry of the run "
            f"reads the same{own}"
        )
    if key.endswith("/__keys__"):
        return f"index of the keys written under {key.rsplit('/', 1)[0]!r}"
    if key == MAPPED_INPUT_KEY:
        return "fingerprint of this map index's expanded arguments: a try with other arguments starts afresh"
    return f"value {_short(value)}"


# ---------------------------------------------------------------------------------------------- read


def _decode(raw: str) -> tuple[JsonValue, str | None]:
    try:
        return json.loads(raw), None
    except ValueError as err:
        return raw, f"not JSON ({err}); no try can read it: delete it"


def _stamp(value: Any) -> str | None:
    return value.isoformat(timespec="seconds") if value is not None else None


def read_native(session: Session, filters: Filters) -> list[TaskState]:
    rows = task_state_rows(
        session, dag_id=filters.dag_id, run_id=filters.run_id, task_id=filters.task_id, key=filters.key
    )
    states: dict[TaskScope, TaskState] = {}
    for row in rows:
        scope = TaskScope(row.dag_id, row.run_id, row.task_id, row.map_index, row.region_id, row.region_index)
        if not filters.admits(scope):
            continue
        state = states.setdefault(scope, TaskState(NATIVE, scope, NATIVE))
        value, problem = _decode(row.value)
        state.values[row.key] = value
        state.problem = state.problem or (f"{row.key!r}: {problem}" if problem else None)
        state.updated_at = max(filter(None, (state.updated_at, _stamp(row.updated_at))), default=None)
        if row.expires_at is not None:
            state.expires_at[row.key] = _stamp(row.expires_at) or ""
    return list(states.values())


def _variable_document(key: str, raw: str | None) -> tuple[TaskScope | None, dict[str, JsonValue], str | None]:
    """The scope and values of a Variable this provider wrote, read as the backend reads it, or why not."""
    if raw is None:
        return None, {}, "empty"
    try:
        document = VariableDocument.parse(raw, f"Airflow Variable {key!r}")
        scope = document.scope
        region_index = scope.get("region_index")
        found = TaskScope(
            scope["dag_id"],
            scope["run_id"],
            scope["task_id"],
            int(scope["map_index"]),
            scope.get("region_id"),
            None if region_index is None else int(region_index),
        )
    except CorruptStateError as err:
        return None, {}, str(err)
    except (KeyError, TypeError, ValueError) as err:
        return None, {}, f"not a document of this provider (lacks {err})"
    return found, document.values, None


def read_variables(session: Session, filters: Filters) -> list[TaskState]:
    from airflow.models import Variable
    from sqlalchemy import select

    states = []
    for variable in session.scalars(select(Variable).where(Variable.key.like(f"{VARIABLE_PREFIX}.%"))):
        raw = variable.get_val()
        document, _ = _decode(raw) if raw is not None else (None, None)
        if isinstance(document, dict) and document.get("kind") == WATERMARK_KIND:
            continue  # a watermark, not a task instance's state: `watermark list` shows it
        scope, values, bad = _variable_document(variable.key, raw)
        if scope is None:
            # Unreadable: shown when its name matches what was asked for, so it can be deleted.
            wanted = [safe_name(v, 250) for v in (filters.dag_id, filters.run_id, filters.task_id) if v]
            if not all(part in variable.key for part in wanted):
                continue
            scope = TaskScope(filters.dag_id or "?", filters.run_id or "?", filters.task_id or "?", -1)
            values = {"*": raw}
        elif not filters.admits(scope):
            continue
        if filters.key is not None and filters.key not in values and bad is None:
            continue
        life = document.get("life") if isinstance(document, dict) else None
        updated = None
        if isinstance(life, dict) and life.get("try_number") is not None:
            updated = f"written by try {life.get('try_number')}"
        backend = LEDGER if variable.key.startswith(f"{LEDGER_PREFIX}.") else VARIABLE
        states.append(TaskState(backend, scope, variable.key, dict(values), updated, bad))
    return sorted(states, key=_order)


def _order(state: TaskState) -> tuple[Any, ...]:
    scope = state.scope
    return (scope.dag_id, scope.run_id, scope.task_id, scope.map_index, scope.region_id or "", scope.region_index or 0)


def read(session: Session, filters: Filters, backends: tuple[str, ...] = BACKENDS) -> list[TaskState]:
    """
    What each task instance holds, as the runtime reads it.

    A ledger copy (the native store's job records, kept in a Variable) is listed only for keys the
    task's own state lacks: the next try reads the task's state first and the ledger only then.
    """
    native = read_native(session, filters) if NATIVE in backends else []
    variables = read_variables(session, filters) if NATIVE in backends or VARIABLE in backends else []
    held = {(state.scope, key) for state in native for key in state.values}
    found: list[TaskState] = list(native)
    for state in variables:
        if state.backend == VARIABLE and VARIABLE in backends:
            found.append(state)
        elif state.backend == LEDGER and NATIVE in backends:
            missing = {key: value for key, value in state.values.items() if (state.scope, key) not in held}
            if missing or state.problem:
                found.append(TaskState(LEDGER, state.scope, state.location, missing, state.updated_at, state.problem))
    return found


# ---------------------------------------------------------------------------------------------- delete


def delete(session: Session, state: TaskState, key: str | None = None) -> list[str]:
    """Delete one key of ``state`` (or all of it); returns what was deleted, for the CLI to print."""
    if state.backend == NATIVE:
        scope = state.scope
        keys = [key] if key is not None else sorted(state.values)
        delete_task_state_rows(
            session,
            dag_id=scope.dag_id,
            run_id=scope.run_id,
            task_id=scope.task_id,
            map_index=scope.map_index,
            region_id=scope.region_id,
            region_index=scope.region_index,
            keys=keys,
        )
        deleted = [f"{NATIVE} key {k!r}" for k in keys]
        # The ledger's copy would bring a deleted job record back on the next try.
        ledger = TaskState(LEDGER, state.scope, variable_key(state.scope, LEDGER_PREFIX))
        return deleted + _delete_variable_keys(session, ledger, key, missing_ok=True)
    return _delete_variable_keys(session, state, key)


def _delete_variable_keys(
    session: Session, state: TaskState, key: str | None, *, missing_ok: bool = False
) -> list[str]:
    """Delete ``key`` of the Variable ``state.location`` (the whole Variable when None or its last key)."""

    from airflow.models import Variable
    from sqlalchemy import select

    wanted = select(Variable).where(Variable.key == state.location)
    variable = None if key is None or state.problem is not None else session.scalar(wanted)
    if missing_ok and session.scalar(wanted) is None:
        return []
    if variable is not None and key is not None:
        # From the value as it is now, not as it was listed: a try may have written since.
        document = VariableDocument.parse(variable.get_val(), f"Airflow Variable {state.location!r}")
        document.values.pop(key, None)
        if document.values:
            variable.set_val(document.dump())
            session.merge(variable)
            return [f"key {key!r} of Variable {state.location!r}"]
    Variable.delete(state.location, session=session)
    return [f"Variable {state.location!r}"]
