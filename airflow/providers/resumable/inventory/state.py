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

from airflow.providers.resumable.compat.metadata_db import (
    delete_task_state_rows,
    rewrite_task_state_row,
    task_state_rows,
)
from airflow.providers.resumable.inventory.filters import Filters
from airflow.providers.resumable.inventory.taskflow import describe_taskflow
from airflow.providers.resumable.state.backends import (
    LEDGER_PREFIX,
    VARIABLE_PREFIX,
    legacy_variable_key,
    variable_key,
)
from airflow.providers.resumable.state.base import (
    NAMESPACE_INDEX,
    CorruptStateError,
    JsonValue,
    TaskScope,
    state_command,
)
from airflow.providers.resumable.state.codec import (
    CHECKPOINT_KIND,
    FINISHED_KEY,
    FINISHED_KIND,
    JOB_RECORD_KIND,
    MAPPED_INPUT_KEY,
    WATERMARK_KIND,
    WINDOW_KIND,
    CheckpointEnvelope,
    FinishedMarker,
    JobRecord,
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
    #: Why the stored bytes could not be read as this provider's state (they are then shown raw): the
    #: whole document (a Variable) is unreadable, so every key of it is.
    problem: str | None = None
    #: Per key, when Airflow's ``state-store clean`` may delete it (native rows that expire only).
    expires_at: dict[str, str] = field(default_factory=dict)
    #: Per key, why its stored bytes cannot be read (a native row that is not JSON): only that key.
    problems: dict[str, str] = field(default_factory=dict)
    #: The task instance's state in Airflow (``failed``, ``up_for_retry``, ``running``, ``success`` ...),
    #: ``none`` when it has none, ``no task instance`` when the DB has no such task instance (a deleted
    #: run); None until :func:`read` looks it up.
    ti_state: str | None = None

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
                "ti_state": self.ti_state,
            }
            if self.scope.region_id is not None:
                row.update(region_id=self.scope.region_id, region_index=self.scope.region_index)
            row.update(
                key=name,
                meaning=self.problem
                or self.problems.get(name)
                or self._ledger_note() + describe(name, self.values[name], finished),
                location=self.location,
                updated_at=self.updated_at,
                value=self.values[name],
                delete_with=delete_command(self.scope, name),
            )
            if name in self.expires_at:
                row["expires_at"] = self.expires_at[name]
            rows.append(row)
        return rows


def is_internal(key: str) -> bool:
    """
    A key this provider keeps for its own bookkeeping: a namespace's index, the finished marker, a
    mapped task instance's input fingerprint.

    ``state list`` hides them unless asked (``--all``): the task instance's state column says what
    the finished marker says, an index only lists the keys beside it, and the fingerprint only tells
    a re-expanded map index apart.
    """
    return key in (FINISHED_KEY, MAPPED_INPUT_KEY) or key.endswith(f"/{NAMESPACE_INDEX}")


def delete_command(scope: TaskScope, key: str | None = None) -> str:
    """``state delete`` of ``scope`` (and ``key``), naming the region when the task instance has one."""
    return command_for("delete", scope, key)


def command_for(verb: str, scope: TaskScope, key: str | None = None) -> str:
    """``state <verb>`` of ``scope`` (and ``key``), naming the region when the task instance has one."""
    command = state_command(verb, scope, key)
    if scope.region_id is None:
        return command
    import shlex

    return f"{command} {shlex.join(['--region-id', scope.region_id, '--region-index', str(scope.region_index)])}"


def _short(value: JsonValue, limit: int = 80) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


#: What the runtime does with a stored document it cannot decode: the task fails at once, its retries
#: unused, and nothing is submitted or restarted (``CorruptStateError``).
_RUNTIME_REFUSES = "the next try fails at once, without using its retries"


def _corrupt(err: CorruptStateError, fix: str) -> str:
    return f"corrupt: {err.diagnosis or err}; {_RUNTIME_REFUSES}: {fix}"


def describe(key: str, value: JsonValue, finished: JsonValue = None) -> str:
    """
    One line a person can act on: what ``value`` under ``key`` means for the next try.

    A document of this provider is read with the runtime's own parser (``state/codec.py``), so a
    value the next try rejects as corrupt is never explained as if it were valid.
    """
    taskflow = describe_taskflow(key, value, finished)
    if taskflow is not None:
        return taskflow
    done = finished.get("try_number") if isinstance(finished, dict) else None
    kind = value.get("kind") if isinstance(value, dict) else None
    if key == FINISHED_KEY or kind == FINISHED_KIND:
        try:
            marker = FinishedMarker.parse(value, f"state key {key!r}")
        except CorruptStateError as err:
            return _corrupt(err, "delete the key, then clear the task")
        if marker is None:  # a stored null: nothing the runtime reads as finished
            return "value null"
        return (
            f"finished: try {marker.try_number} succeeded at {marker.finished_at}; a clear starts this task "
            "instance afresh"
        )
    if kind == JOB_RECORD_KIND:
        try:
            record = JobRecord.parse(key, value)
        except CorruptStateError as err:
            return _corrupt(err, "check the external system, delete the key, then clear the task")
        assert record is not None
        tried = record.try_number
        if record.legacy:
            text = f"job {record.external_id} (bare id adopted from Airflow's ResumableJobMixin, no token)"
        elif not record.has_external_id:
            text = (
                f"intent: a submit started at try {tried} ({record.intent_at}) with token {record.token} and no "
                "job id came back; the next try looks the job up by its token before submitting"
            )
        elif record.resume_pending:
            text = (
                f"resume intent: a resume of failed job {record.resume_of} started at try {tried} "
                f"({record.resume_intent_at}) with resume token {record.resume_token} and no answer came back; "
                "if the job still looks failed, the next try looks the resume up (find_resumed_job) before "
                "resuming again with the same token"
            )
        else:
            text = (
                f"job {record.external_id}, submitted at try {tried} ({record.submitted_at}), "
                f"token {record.token}, generation {record.generation}"
            )
        if record.history:
            # Before the clauses below: a listing ends with what the next try will do.
            last = record.history[-1]
            text += f"; last decision: {last.decision} at try {last.try_number} ({last.at})"
        if record.resumes and not record.resume_pending:
            text += f"; {record.resumes} resume(s) of failed jobs spent in this life (last {record.resumed_at})"
        if done is not None and isinstance(tried, int) and tried <= done:
            text += f"; its task instance succeeded at try {done}, so a clear submits a new job"
        return text
    if kind == CHECKPOINT_KIND:
        try:
            envelope = CheckpointEnvelope.parse(value, f"state key {key!r}")
        except CorruptStateError as err:
            return _corrupt(err, "delete the key to start the walk over, then clear the task")
        assert envelope is not None
        name = envelope.schema_name or "checkpoint"
        batches = envelope.batches_done
        progress = f"{batches} batches done" if batches is not None else "saved"
        complete = ", walk complete" if envelope.complete else ""
        return (
            f"checkpoint {name} v{envelope.schema_version}: {progress}{complete}, written at try "
            f"{envelope.try_number} ({envelope.saved_at}); data {_short(envelope.data)}"
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
        if problem:
            state.problems[row.key] = problem
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


def _scope_text(scope: TaskScope) -> str:
    mapped = f", map_index {scope.map_index}" if scope.map_index >= 0 else ""
    return f"DAG {scope.dag_id!r}, run {scope.run_id!r}, task {scope.task_id!r}{mapped}"


def _named_scope(name: str, prefix: str, filters: Filters) -> TaskScope | None:
    """
    The task instance a Variable whose document cannot be trusted is named for, as far as ``filters`` tell.

    When the filters name a whole task instance whose Variable is ``name``, that one (so ``state delete``
    with the runtime's own scope finds it); else, when the readable parts of the name hold every id
    asked for, a placeholder scope that lists it; else None (not asked for).
    """
    if filters.dag_id and filters.run_id and filters.task_id:
        asked = TaskScope(
            filters.dag_id,
            filters.run_id,
            filters.task_id,
            -1 if filters.map_index is None else filters.map_index,
            filters.region_id,
            filters.region_index,
        )
        if name in (variable_key(asked, prefix), legacy_variable_key(asked, prefix)):
            return asked
    wanted = [safe_name(v, 250) for v in (filters.dag_id, filters.run_id, filters.task_id) if v]
    if not all(part in name for part in wanted):
        return None
    return TaskScope(filters.dag_id or "?", filters.run_id or "?", filters.task_id or "?", -1)


def read_variables(session: Session, filters: Filters) -> list[TaskState]:
    from airflow.models import Variable
    from sqlalchemy import select

    states = []
    for variable in session.scalars(select(Variable).where(Variable.key.like(f"{VARIABLE_PREFIX}.%"))):
        raw = variable.get_val()
        document, _ = _decode(raw) if raw is not None else (None, None)
        if isinstance(document, dict) and document.get("kind") == WATERMARK_KIND:
            continue  # a watermark, not a task instance's state: `watermark list` shows it
        backend = LEDGER if variable.key.startswith(f"{LEDGER_PREFIX}.") else VARIABLE
        prefix = LEDGER_PREFIX if backend == LEDGER else VARIABLE_PREFIX
        scope, values, bad = _variable_document(variable.key, raw)
        if scope is not None and variable.key not in (variable_key(scope, prefix), legacy_variable_key(scope, prefix)):
            # Another task instance's document under this name: the task instance the name belongs to
            # fails on it, and the other one never reads it. It is listed under the name's task
            # instance (so the command the runtime's error proposes finds it), never under the
            # document's (whose own Variable a delete must not take).
            bad = (
                f"holds the state of another task instance ({_scope_text(scope)}), so the task instance this "
                f"Variable is named for fails on reading it ({_RUNTIME_REFUSES}): delete this Variable; the other "
                "task instance's own Variable is not touched"
            )
            scope, values = None, {"*": raw}
        if scope is None:
            scope = _named_scope(variable.key, prefix, filters)
            if scope is None:
                continue
            values = {"*": raw}
        elif not filters.admits(scope):
            continue
        if filters.key is not None and filters.key not in values and bad is None:
            continue
        life = document.get("life") if isinstance(document, dict) else None
        updated = None
        if isinstance(life, dict) and life.get("try_number") is not None:
            updated = f"written by try {life.get('try_number')}"
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
    found = _read(session, filters, backends)
    _look_up_task_instances(session, found)
    return found


def _state_text(ti_state: Any) -> str:
    """A task instance's state as the CLI and the tab print it (``none`` when it has none)."""
    return str(getattr(ti_state, "value", ti_state) or "none")


def task_instance_state(session: Session, dag_id: str, run_id: str, task_id: str, map_index: int) -> str | None:
    """The state of one task instance, as :func:`read` fills ``ti_state``; None when there is no such one."""
    from airflow.models.taskinstance import TaskInstance
    from sqlalchemy import select

    found = session.execute(
        select(TaskInstance.state).where(
            TaskInstance.dag_id == dag_id,
            TaskInstance.run_id == run_id,
            TaskInstance.task_id == task_id,
            TaskInstance.map_index == map_index,
        )
    ).first()
    return None if found is None else _state_text(found[0])


def _look_up_task_instances(session: Session, states: list[TaskState]) -> None:
    """Fill each state's ``ti_state`` from the ``task_instance`` table, in one query."""
    if not states:
        return
    from airflow.models.taskinstance import TaskInstance
    from sqlalchemy import select

    dag_ids = {state.scope.dag_id for state in states}
    run_ids = {state.scope.run_id for state in states}
    query = select(
        TaskInstance.dag_id, TaskInstance.run_id, TaskInstance.task_id, TaskInstance.map_index, TaskInstance.state
    ).where(TaskInstance.dag_id.in_(dag_ids), TaskInstance.run_id.in_(run_ids))
    known = {
        (dag, run, task, int(map_index)): _state_text(ti_state)
        for dag, run, task, map_index, ti_state in session.execute(query)
    }
    for state in states:
        scope = state.scope
        # 3.4's Task Loop iterations share their task instance's map index (-1): they show its state.
        state.ti_state = known.get((scope.dag_id, scope.run_id, scope.task_id, scope.map_index), "no task instance")


def _read(session: Session, filters: Filters, backends: tuple[str, ...]) -> list[TaskState]:
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


def index_after_delete(values: dict[str, JsonValue], key: str) -> tuple[str, list[str]] | None:
    """
    The namespace index that lists ``key`` and what it lists once ``key`` is deleted; None if none does.

    ``NamespacedStateStore`` keeps ``<namespace>/__keys__`` beside its keys. Like its own ``delete``,
    the CLI takes the deleted key out of that index; an index left empty indexes nothing and goes too,
    so a Variable goes with its last key.
    """
    namespace, slash, name = key.rpartition("/")
    if not slash or name == NAMESPACE_INDEX:
        return None
    index_key = f"{namespace}/{NAMESPACE_INDEX}"
    index = values.get(index_key)
    if not isinstance(index, list) or name not in index:
        return None
    return index_key, [entry for entry in index if entry != name]


def _all_native_keys(session: Session, scope: TaskScope) -> dict[str, JsonValue]:
    """Every native key of one task instance, whatever ``--key`` narrowed the listing to."""
    wanted = Filters(dag_id=scope.dag_id, run_id=scope.run_id, task_id=scope.task_id, map_index=scope.map_index)
    return next((state.values for state in read_native(session, wanted) if state.scope == scope), {})


def delete(session: Session, state: TaskState, key: str | None = None) -> list[str]:
    """Delete one key of ``state`` (or all of it); returns what was deleted, for the CLI to print."""
    if state.backend == NATIVE:
        scope = state.scope
        keys = [key] if key is not None else sorted(state.values)
        index = index_after_delete(_all_native_keys(session, scope), key) if key is not None else None
        coordinates: dict[str, Any] = {
            "dag_id": scope.dag_id,
            "run_id": scope.run_id,
            "task_id": scope.task_id,
            "map_index": scope.map_index,
            "region_id": scope.region_id,
            "region_index": scope.region_index,
        }
        rewritten = []
        if index is not None and not index[1]:
            keys.append(index[0])
        elif index is not None:
            # The namespace's index no longer lists the deleted key, as the store's own delete leaves it.
            rewrite_task_state_row(session, **coordinates, key=index[0], value=json.dumps(index[1]))
            rewritten.append(f"{NATIVE} key {index[0]!r} now lists {index[1]!r}")
        delete_task_state_rows(session, **coordinates, keys=keys)
        deleted = [f"{NATIVE} key {k!r}" for k in keys] + rewritten
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
        index = index_after_delete(document.values, key)
        document.values.pop(key, None)
        if index is not None:
            index_key, listed = index
            if listed:
                document.values[index_key] = listed
            else:
                document.values.pop(index_key, None)
        if document.values:
            variable.set_val(document.dump())
            session.merge(variable)
            return [f"key {key!r} of Variable {state.location!r}"]
    Variable.delete(state.location, session=session)
    return [f"Variable {state.location!r}"]
