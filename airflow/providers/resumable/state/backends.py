"""
State store backends: Airflow 3.3's native ``task_state_store``, Airflow Variables, and memory.

Every backend turns a failure of the system behind it into :class:`~.StateStoreError`, never into a
silent default: an operator that reads "no job id" because the store was unreachable would submit a
duplicate job.
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from airflow.providers.resumable.compat.version_compat import AIRFLOW_V_3_0_PLUS
from airflow.providers.resumable.state.base import (
    CorruptStateError,
    JsonValue,
    StateStoreError,
    TaskScope,
    check_json,
    state_command,
    task_instance_of,
)
from airflow.providers.resumable.state.lifecycle import FINISHED_KEY, TryInfo, foreign_to

if TYPE_CHECKING:
    from collections.abc import Mapping

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger(__name__)


def _wrap_errors(operation: str) -> Callable[[F], F]:
    """Re-raise anything but a caller error as StateStoreError naming the backend and the key."""

    def decorator(func: F) -> F:
        @functools.wraps(func)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return func(self, *args, **kwargs)
            except (StateStoreError, ValueError):
                raise
            except Exception as err:
                target = f"({args[0]!r})" if args else "()"
                raise StateStoreError(
                    f"{self!r} failed on {operation}{target}: {type(err).__name__}: {err}. "
                    "Refusing to continue without durable state; the task fails so that a retry "
                    "can resume once the store is reachable again."
                ) from err

        return wrapper  # type: ignore[return-value]

    return decorator


class InMemoryStateStore:
    """A dict-backed store for unit tests; values are JSON round-tripped like the real backends."""

    def __init__(self, data: dict[str, str] | None = None) -> None:
        self.data: dict[str, str] = data if data is not None else {}
        self.calls: list[tuple[str, str | None]] = []

    def __repr__(self) -> str:
        return f"InMemoryStateStore(keys={sorted(self.data)})"

    def get(self, key: str, default: JsonValue = None) -> JsonValue:
        self.calls.append(("get", key))
        raw = self.data.get(key)
        return default if raw is None else json.loads(raw)

    def set(self, key: str, value: JsonValue) -> None:
        check_json(key, value)
        self.calls.append(("set", key))
        self.data[key] = json.dumps(value)

    def delete(self, key: str) -> None:
        self.calls.append(("delete", key))
        self.data.pop(key, None)

    def clear(self) -> None:
        self.calls.append(("clear", None))
        self.data.clear()

    def locate(self, key: str) -> str:
        return f"key {key!r} of the in-memory store {type(self).__name__}"


class EphemeralStateStore(InMemoryStateStore):
    """
    What an operator gets when it runs outside a task instance (``op.execute(None)`` in a unit test).

    Nothing outlives the call, so the operator behaves as the official one does: not durable.
    """

    durable = False

    def __repr__(self) -> str:
        return "EphemeralStateStore(no task instance: nothing survives this call)"


#: A key nobody writes: reading it tells "the store works" from "this value is broken".
_PROBE_KEY = "resumable_probe"


class NativeTaskStateStore:
    """Airflow 3.3+: ``context["task_state_store"]``, kept in the metadata DB by the API server."""

    name = "task_state_store"
    # The native store keeps state after success on purpose (observability, and Airflow's own
    # [state_store] clear_on_success and retention settings govern it); the provider's listener
    # writes the finished marker there instead of deleting.
    clears_on_success = False

    def __init__(self, accessor: Any, scope: TaskScope | None = None) -> None:
        self.accessor = accessor
        self.scope = scope

    @classmethod
    def from_context(cls, context: Mapping[str, Any]) -> NativeTaskStateStore:
        accessor = context.get("task_state_store")
        if accessor is None:
            raise StateStoreError(
                "[resumable] state_backend selects 'task_state_store', but this task's context has no "
                "task_state_store (it needs Airflow 3.3 or later). Use state_backend = 'variable' or "
                "'auto' on this Airflow."
            )
        scope = TaskScope.from_context(context) if task_instance_of(context) is not None else None
        return cls(accessor, scope)

    def __repr__(self) -> str:
        return f"NativeTaskStateStore({self.accessor!r})"

    def locate(self, key: str) -> str:
        if self.scope is None:
            return f"task_state_store key {key!r}"
        sc = self.scope
        return (
            f"task_state_store key {key!r} of task {sc.task_id!r} (map_index {sc.map_index}) in DAG {sc.dag_id!r}, "
            f"run {sc.run_id!r}; inspect it with `{state_command('show', sc, key)}`, delete it with "
            f"`{state_command('delete', sc, key)}` (or the REST API: DELETE /api/v2/dags/{sc.dag_id}/dagRuns/"
            f"{sc.run_id}/taskInstances/{sc.task_id}/state-store/{key}?map_index={sc.map_index})"
        )

    def get(self, key: str, default: JsonValue = None) -> JsonValue:
        try:
            return self._get(key, default)
        except StateStoreError as err:
            # The API server answers a value it cannot decode with a bare 500, as it would a lost
            # database. If it answers another key of this task instance, the store is fine and this
            # value is bad: no retry can fix that.
            try:
                self._get(_PROBE_KEY, None)
            except StateStoreError:
                raise err from err.__cause__
            raise CorruptStateError(
                f"The stored value of {self.locate(key)} cannot be read, although the store answers other keys "
                f"({err.__cause__!r}): the API server could not decode it, so it is not JSON written by "
                "Airflow's task_state_store. Delete the key, then clear the task."
            ) from err

    @_wrap_errors("get")
    def _get(self, key: str, default: JsonValue = None) -> JsonValue:
        return self.accessor.get(key, default)

    @_wrap_errors("set")
    def set(self, key: str, value: JsonValue) -> None:
        check_json(key, value)
        self.accessor.set(key, value)

    @_wrap_errors("delete")
    def delete(self, key: str) -> None:
        self.accessor.delete(key)

    @_wrap_errors("clear")
    def clear(self) -> None:
        self.accessor.clear()

    def mark_finished(self, marker: dict[str, Any]) -> str:
        from airflow.configuration import conf

        if conf.getboolean("state_store", "clear_on_success", fallback=False):
            # Airflow deleted every key atomically with the success; writing now would bring one back.
            return "dropped by Airflow ([state_store] clear_on_success)"
        self.set(FINISHED_KEY, marker)
        return "marked finished"


class VariableAccess(Protocol):
    """The three Variable calls the Variable backend needs; one implementation per Airflow line."""

    def get(self, key: str) -> str | None: ...

    def set(self, key: str, value: str, description: str) -> None: ...

    def delete(self, key: str) -> None: ...


class _SdkVariables:
    """
    Airflow 3.x: Variables through the supervisor to the Execution API, as the Task SDK does.

    Not through ``airflow.sdk.Variable``: its ``set``/``delete`` log and swallow a failed write, and
    its ``get`` asks secrets backends and a cache first. A state write that silently did not happen
    is the one failure this backend must never have.
    """

    @staticmethod
    def _send(msg: Any, *, missing_ok: bool = False) -> Any:
        """Send ``msg``; an error answer raises, except "not found" when ``missing_ok`` (then None)."""
        from airflow.sdk.exceptions import AirflowRuntimeError
        from airflow.sdk.execution_time.comms import ErrorResponse
        from airflow.sdk.execution_time.task_runner import SUPERVISOR_COMMS

        try:
            response = SUPERVISOR_COMMS.send(msg)
        except AirflowRuntimeError as err:
            # Some Airflow versions raise error answers, others return them.
            response = err.error
        if isinstance(response, ErrorResponse):
            kind = getattr(response.error, "value", response.error)
            if missing_ok and kind == "VARIABLE_NOT_FOUND":
                return None
            raise RuntimeError(f"Execution API answered {kind}: {response.detail}")
        return response

    def get(self, key: str) -> str | None:
        from airflow.sdk.execution_time.comms import GetVariable

        value = getattr(self._send(GetVariable(key=key), missing_ok=True), "value", None)
        return None if value is None else str(value)

    def set(self, key: str, value: str, description: str) -> None:
        from airflow.sdk.execution_time.comms import PutVariable

        self._send(PutVariable(key=key, value=value, description=description))

    def delete(self, key: str) -> None:
        from airflow.sdk.execution_time.comms import DeleteVariable

        self._send(DeleteVariable(key=key))


class _OrmVariables:
    """Airflow 2.x: the ORM Variable, written straight to the metadata DB."""

    def get(self, key: str) -> str | None:
        from airflow.models import Variable

        value = Variable.get(key, default_var=None)
        return None if value is None else str(value)

    def set(self, key: str, value: str, description: str) -> None:
        from airflow.models import Variable

        Variable.set(key, value, description=description)

    def delete(self, key: str) -> None:
        from airflow.models import Variable

        Variable.delete(key)


def default_variable_access() -> VariableAccess:
    return _SdkVariables() if AIRFLOW_V_3_0_PLUS else _OrmVariables()


_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


#: Every Variable this provider writes starts with this; the state CLI lists them by it.
VARIABLE_PREFIX = "resumable"


def variable_key(scope: TaskScope, prefix: str = VARIABLE_PREFIX) -> str:
    """
    The Variable that holds one task instance's state: ``resumable.<dag>.<run>.<task>[.<map>].<hash>``.

    Readable parts (dag, run and task id) let a person find a run's state in the Variables UI or with
    ``airflow resumable state list --run-id``; the scope hash makes it unique, since truncated or
    sanitised ids alone could collide. At most 250 characters, the Variable key limit.
    """
    dag = _UNSAFE.sub("-", scope.dag_id)[:60]
    run = _UNSAFE.sub("-", scope.run_id)[:60]
    task = _UNSAFE.sub("-", scope.task_id)[:60]
    mapped = f".{scope.map_index}" if scope.map_index >= 0 else ""
    return f"{prefix}.{dag}.{run}.{task}{mapped}.{scope.digest()[:16]}"[:250]


def legacy_variable_key(scope: TaskScope, prefix: str = VARIABLE_PREFIX) -> str:
    """The 0.1.0 key (no run id). Still read, so an upgrade in the middle of a task's retries resumes."""
    dag = _UNSAFE.sub("-", scope.dag_id)[:80]
    task = _UNSAFE.sub("-", scope.task_id)[:80]
    suffix = f"{scope.map_index}" if scope.map_index >= 0 else ""
    key = f"{prefix}.{dag}.{task}{'.' + suffix if suffix else ''}.{scope.digest()[:32]}"
    return key[:250]


class VariableStateStore:
    """
    State in one Airflow Variable per task instance, for Airflow 2.11 and 3.0-3.2.

    The Variable's value is indented JSON with the scope, the try that last wrote it and the keys,
    so a person can read it in the UI. The provider's listener deletes it once Airflow has recorded
    the task instance's success, because Variables are global and would otherwise pile up. A
    Variable left by a DAG run that was deleted and created again under the same run_id is
    recognised by the try that wrote it and ignored. Only one try of a task instance runs at a
    time, so this try's copy of the value is authoritative: it is read once and every write stores
    the whole document.
    """

    name = "variable"
    clears_on_success = True

    def __init__(self, scope: TaskScope, access: VariableAccess | None = None, info: TryInfo | None = None) -> None:
        self.scope = scope
        self.key = variable_key(scope)
        self.access = access or default_variable_access()
        self.info = info or TryInfo()
        self._values: dict[str, JsonValue] | None = None
        # Set when this task instance's state was found under the 0.1.0 key: moved on the next write.
        self._legacy_key: str | None = None

    @classmethod
    def from_context(cls, context: Mapping[str, Any]) -> VariableStateStore:
        return cls(TaskScope.from_context(context), info=TryInfo.from_context(context))

    def __repr__(self) -> str:
        return f"VariableStateStore(variable={self.key!r})"

    def locate(self, key: str | None = None) -> str:
        inside = f"key {key!r} inside " if key is not None else ""
        name = self._legacy_key or self.key
        return (
            f"{inside}Airflow Variable {name!r} (the whole state of task {self.scope.task_id!r}, map_index "
            f"{self.scope.map_index}, in DAG {self.scope.dag_id!r}, run {self.scope.run_id!r}); inspect it with "
            f"`{state_command('show', self.scope)}`, delete {'the key' if key is not None else 'it'} with "
            f"`{state_command('delete', self.scope, key)}` (or the whole Variable with "
            f"`airflow variables delete {name}`)"
        )

    def _load(self) -> dict[str, JsonValue]:
        if self._values is None:
            raw = self.access.get(self.key)
            if raw is None:
                legacy = legacy_variable_key(self.scope)
                raw = self.access.get(legacy)
                if raw is not None:
                    self._legacy_key = legacy
            self._values = {} if raw is None else self._parse(raw)
        return self._values

    def _parse(self, raw: str) -> dict[str, JsonValue]:
        try:
            document = json.loads(raw)
            values = document["values"]
            stored_scope = document["scope"]
        except (ValueError, KeyError, TypeError) as err:
            problem = "is not JSON" if isinstance(err, ValueError) else f"lacks {err}"
            raise CorruptStateError(
                f"The value of {self.locate()} {problem}, so it was not written by this provider; refusing to "
                "guess. Inspect it, delete it, then clear the task."
            ) from err
        if stored_scope != self._scope_dict() or not isinstance(values, dict):
            raise CorruptStateError(
                f"{self.locate()} belongs to {stored_scope!r}, not {self._scope_dict()!r}; refusing to share "
                "state between task instances. Delete it, then clear the task."
            )
        life = document.get("life")
        reason = foreign_to(TryInfo.from_dict(life), self.info) if isinstance(life, dict) else None
        if reason is not None:
            # Left by a DAG run deleted and created again under the same run_id: not ours to resume.
            log.warning(
                "Ignoring %s: %s, so it was left by an earlier DAG run with run_id %r that has since been "
                "deleted; this task instance starts afresh and the Variable is replaced on the first write.",
                self.locate(),
                reason,
                self.scope.run_id,
            )
            return {}
        return values

    def _scope_dict(self) -> dict[str, Any]:
        return {
            "dag_id": self.scope.dag_id,
            "run_id": self.scope.run_id,
            "task_id": self.scope.task_id,
            "map_index": self.scope.map_index,
        }

    def _store(self, values: dict[str, JsonValue]) -> None:
        self._drop_legacy_after(lambda: self._write(values))

    def _drop_legacy_after(self, write: Callable[[], None]) -> None:
        # The new Variable is written before the old one goes, so a crash in between loses nothing:
        # the next try reads the new key first.
        write()
        if self._legacy_key is not None:
            self.access.delete(self._legacy_key)
            self._legacy_key = None

    def _write(self, values: dict[str, JsonValue]) -> None:
        if not values:
            self.access.delete(self.key)
            return
        document = {"scope": self._scope_dict(), "life": self.info.as_dict(), "values": values}
        description = (
            f"Retry state of {self.scope.dag_id}.{self.scope.task_id} in run {self.scope.run_id} "
            "(airflow-provider-resumable); deleted once the task instance succeeds."
        )
        self.access.set(self.key, json.dumps(document, indent=2, sort_keys=True), description)

    @_wrap_errors("get")
    def get(self, key: str, default: JsonValue = None) -> JsonValue:
        values = self._load()
        return copy.deepcopy(values[key]) if key in values else default

    @_wrap_errors("set")
    def set(self, key: str, value: JsonValue) -> None:
        check_json(key, value)
        values = dict(self._load())
        values[key] = json.loads(json.dumps(value))
        self._store(values)
        self._values = values

    @_wrap_errors("delete")
    def delete(self, key: str) -> None:
        values = dict(self._load())
        if key in values:
            del values[key]
            self._store(values)
            self._values = values

    @_wrap_errors("clear")
    def clear(self) -> None:
        if self._values is None and self.access.get(legacy_variable_key(self.scope)) is not None:
            self._legacy_key = legacy_variable_key(self.scope)
        self._drop_legacy_after(lambda: self.access.delete(self.key))
        self._values = {}

    def mark_finished(self, marker: dict[str, Any]) -> str:
        self.clear()
        return f"dropped (Variable {self.key!r} deleted)"
