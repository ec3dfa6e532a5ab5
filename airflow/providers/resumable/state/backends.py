"""
State store backends: Airflow 3.3's native ``task_state_store``, Airflow Variables, and memory.

Every backend turns a failure of the system behind it into :class:`~.StateStoreError`, never into a
silent default: an operator that reads "no job id" because the store was unreachable would submit a
duplicate job.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from airflow.providers.resumable.compat.airflow import async_state_accessors, variable_access
from airflow.providers.resumable.state.base import (
    FinishByMarker,
    JsonValue,
    StateStoreError,
    TaskScope,
    check_json,
    state_command,
)
from airflow.providers.resumable.state.codec import VariableDocument, corrupt, safe_name
from airflow.providers.resumable.state.lifecycle import TryInfo, foreign_to

if TYPE_CHECKING:
    from airflow.providers.resumable.state.codec import FinishedMarker

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger(__name__)


def wrap_errors(operation: str) -> Callable[[F], F]:
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


class InMemoryStateStore(FinishByMarker):
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

    def finish(self, marker: FinishedMarker) -> str:
        return "nothing to finish (no task instance)"


#: A key nobody writes: reading it tells "the store works" from "this value is broken".
_PROBE_KEY = "resumable_probe"


class NativeTaskStateStore:
    """Airflow 3.3+: the task's own ``task_state_store``, kept in the metadata DB by the API server."""

    name = "task_state_store"

    def __init__(self, accessor: Any, scope: TaskScope | None = None) -> None:
        self.accessor = accessor
        self.scope = scope

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
            raise corrupt(
                f"The stored value cannot be read although the store answers other keys ({err.__cause__!r}): "
                "the API server could not decode it, so it is not JSON written by Airflow's task_state_store",
                "Delete the key, then clear the task.",
                self.locate(key),
            ) from err

    @wrap_errors("get")
    def _get(self, key: str, default: JsonValue = None) -> JsonValue:
        return self.accessor.get(key, default)

    @wrap_errors("set")
    def set(self, key: str, value: JsonValue) -> None:
        check_json(key, value)
        self.accessor.set(key, value)

    @wrap_errors("delete")
    def delete(self, key: str) -> None:
        self.accessor.delete(key)

    @wrap_errors("clear")
    def clear(self) -> None:
        self.accessor.clear()

    async def aget(self, key: str, default: JsonValue = None) -> JsonValue:
        """``get`` for a coroutine: the accessor's own ``aget`` where Airflow has one, else a worker thread."""
        if not async_state_accessors(self.accessor):
            return await asyncio.to_thread(self.get, key, default)
        try:
            return await self.accessor.aget(key, default)
        except (StateStoreError, ValueError):
            raise
        except Exception as err:
            raise StateStoreError(
                f"{self!r} failed on aget({key!r}): {type(err).__name__}: {err}. Refusing to continue without "
                "durable state; the task fails so that a retry can resume once the store is reachable again."
            ) from err

    async def aset(self, key: str, value: JsonValue) -> None:
        """``set`` for a coroutine: the accessor's own ``aset`` where Airflow has one, else a worker thread."""
        if not async_state_accessors(self.accessor):
            await asyncio.to_thread(self.set, key, value)
            return
        check_json(key, value)
        try:
            await self.accessor.aset(key, value)
        except (StateStoreError, ValueError):
            raise
        except Exception as err:
            raise StateStoreError(
                f"{self!r} failed on aset({key!r}): {type(err).__name__}: {err}. Refusing to continue without "
                "durable state; the task fails so that a retry can resume once the store is reachable again."
            ) from err

    def finish(self, marker: FinishedMarker) -> str:
        # The native store keeps state after success on purpose (observability; Airflow's own
        # [state_store] clear_on_success and retention govern it), so the marker is written instead.
        from airflow.configuration import conf

        from airflow.providers.resumable.state.codec import FINISHED_KEY

        if conf.getboolean("state_store", "clear_on_success", fallback=False):
            # Airflow deleted every key atomically with the success; writing now would bring one back.
            return "dropped by Airflow ([state_store] clear_on_success)"
        self.set(FINISHED_KEY, marker.dump())
        return "marked finished"


class VariableAccess(Protocol):
    """The three Variable calls the Variable backend needs; one implementation per Airflow line."""

    def get(self, key: str) -> str | None: ...

    def set(self, key: str, value: str, description: str) -> None: ...

    def delete(self, key: str) -> None: ...


def default_variable_access() -> VariableAccess:
    return variable_access()


#: Every Variable this provider writes starts with this; the state CLI lists them by it.
VARIABLE_PREFIX = "resumable"
#: The job-record ledger of a task on the native store (see ``TaskTry.ledger``).
LEDGER_PREFIX = f"{VARIABLE_PREFIX}.ledger"


def variable_key(scope: TaskScope, prefix: str = VARIABLE_PREFIX) -> str:
    """
    The Variable that holds one task instance's state: ``resumable.<dag>.<run>.<task>[.<map>].<hash>``.

    Readable parts (dag, run and task id) let a person find a run's state in the Variables UI or with
    ``airflow resumable state list --run-id``; the scope hash makes it unique, since truncated or
    sanitised ids alone could collide. At most 250 characters, the Variable key limit.
    """
    dag = safe_name(scope.dag_id, 60)
    run = safe_name(scope.run_id, 60)
    task = safe_name(scope.task_id, 60)
    mapped = f".{scope.map_index}" if scope.map_index >= 0 else ""
    region = f".r{scope.region_index}" if scope.region_id is not None else ""
    return f"{prefix}.{dag}.{run}.{task}{mapped}{region}.{scope.digest()[:16]}"[:250]


def legacy_variable_key(scope: TaskScope, prefix: str = VARIABLE_PREFIX) -> str:
    """The 0.1.0 key (no run id). Still read, so an upgrade in the middle of a task's retries resumes."""
    dag = safe_name(scope.dag_id, 80)
    task = safe_name(scope.task_id, 80)
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

    def __init__(
        self,
        scope: TaskScope,
        access: VariableAccess | None = None,
        info: TryInfo | None = None,
        *,
        prefix: str = VARIABLE_PREFIX,
    ) -> None:
        self.scope = scope
        self.prefix = prefix
        self.key = variable_key(scope, prefix)
        # Only the task state Variables existed in 0.1.0 (the ledger came later): only they have an old name.
        self._has_legacy = prefix == VARIABLE_PREFIX
        self.access = access or default_variable_access()
        self.info = info or TryInfo()
        self._values: dict[str, JsonValue] | None = None
        # Set when this task instance's state was found under the 0.1.0 key: moved on the next write.
        self._legacy_key: str | None = None

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
            if raw is None and self._has_legacy:
                legacy = legacy_variable_key(self.scope, self.prefix)
                raw = self.access.get(legacy)
                if raw is not None:
                    self._legacy_key = legacy
            self._values = {} if raw is None else self._parse(raw)
        return self._values

    def _parse(self, raw: str) -> dict[str, JsonValue]:
        document = VariableDocument.parse(raw, self.locate())
        if not document.scope_is(self._scope_dict()):
            raise corrupt(
                f"The stored Variable holds the state of another task instance ({document.scope!r}), not of this "
                f"one ({self._scope_dict()!r})",
                "Refusing to share state between task instances: delete this Variable (the other task instance's "
                "own Variable is not touched), then clear the task.",
                self.locate(),
            )
        reason = foreign_to(TryInfo.from_dict(document.life), self.info) if document.life is not None else None
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
        return document.values

    def _scope_dict(self) -> dict[str, Any]:
        return self.scope.as_dict()

    def _store(self, values: dict[str, JsonValue]) -> None:
        self._drop_legacy_after(lambda: self._write(values))

    def _drop_legacy_after(self, write: Callable[[], None]) -> None:
        # The new Variable is written before the old one goes, so a crash in between loses nothing:
        # the next try reads the new key first.
        write()
        if self._legacy_key is not None:
            self.access.delete(self._legacy_key)
            self._legacy_key = None

    def _write(self, values: dict[str, JsonValue], description: str | None = None) -> None:
        if not values:
            self.access.delete(self.key)
            return
        document = VariableDocument(scope=self._scope_dict(), life=self.info.as_dict(), values=values)
        what = "Job record ledger" if self.prefix == LEDGER_PREFIX else "Retry state"
        # A write of a running try always replaces a finished Variable's description, so the sweep,
        # which deletes only a Variable whose description is still the finished one, never takes it.
        description = description or (
            f"{what} of {self.scope.dag_id}.{self.scope.task_id} in run {self.scope.run_id} "
            "(airflow-provider-resumable); finished once the task instance succeeds."
        )
        self.access.set(self.key, document.dump(), description)

    @wrap_errors("get")
    def get(self, key: str, default: JsonValue = None) -> JsonValue:
        values = self._load()
        return copy.deepcopy(values[key]) if key in values else default

    @wrap_errors("set")
    def set(self, key: str, value: JsonValue) -> None:
        check_json(key, value)
        values = dict(self._load())
        values[key] = json.loads(json.dumps(value))
        self._store(values)
        self._values = values

    @wrap_errors("delete")
    def delete(self, key: str) -> None:
        values = dict(self._load())
        if key in values:
            del values[key]
            self._store(values)
            self._values = values

    @wrap_errors("clear")
    def clear(self) -> None:
        legacy = legacy_variable_key(self.scope, self.prefix)
        if self._values is None and self._has_legacy and self.access.get(legacy) is not None:
            self._legacy_key = legacy
        self._drop_legacy_after(lambda: self.access.delete(self.key))
        self._values = {}

    def finish(self, marker: FinishedMarker) -> str:
        from airflow.providers.resumable.state import finished_variables
        from airflow.providers.resumable.state.codec import FINISHED_KEY

        until = finished_variables.kept_until_finished(marker.finished_at, finished_variables.retention())
        if until is None:
            # Variables are global and would pile up: the state goes once the success is recorded.
            self.clear()
            return f"dropped (Variable {self.key!r} deleted)"
        # Airflow 2 can still fail this try and run a retry of the same life: it must find the job.
        values = {**self._load(), FINISHED_KEY: marker.dump()}
        self._drop_legacy_after(lambda: self._write(values, finished_variables.description(self.scope, until)))
        self._values = values
        return f"marked finished (Variable {self.key!r} kept until {until.isoformat()})"
