"""
State store backends: Airflow 3.3's native ``task_state_store``, Airflow Variables, and memory.

Every backend turns a failure of the system behind it into :class:`StateStoreError`, never into a
silent default: an operator that reads "no job id" because the store was unreachable would submit a
duplicate job.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from airflow.providers.resumable.state.base import JsonValue, StateStoreError, TaskScope, check_json
from airflow.providers.resumable.version_compat import AIRFLOW_V_3_0_PLUS

if TYPE_CHECKING:
    from collections.abc import Mapping

F = TypeVar("F", bound=Callable[..., Any])


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


class NativeTaskStateStore:
    """Airflow 3.3+: ``context["task_state_store"]``, kept in the metadata DB by the API server."""

    name = "task_state_store"
    # The native store keeps state after success on purpose (observability, and the already-succeeded
    # short-circuit); Airflow's own [state_store] clear_on_success and retention settings govern it.
    clears_on_success = False

    def __init__(self, accessor: Any) -> None:
        self.accessor = accessor

    @classmethod
    def from_context(cls, context: Mapping[str, Any]) -> NativeTaskStateStore:
        accessor = context.get("task_state_store")
        if accessor is None:
            raise StateStoreError(
                "[resumable] state_backend selects 'task_state_store', but this task's context has no "
                "task_state_store (it needs Airflow 3.3 or later). Use state_backend = 'variable' or "
                "'auto' on this Airflow."
            )
        return cls(accessor)

    def __repr__(self) -> str:
        return f"NativeTaskStateStore({self.accessor!r})"

    @_wrap_errors("get")
    def get(self, key: str, default: JsonValue = None) -> JsonValue:
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


def variable_key(scope: TaskScope, prefix: str = "resumable") -> str:
    """
    The Variable that holds one task instance's state.

    Readable parts (dag and task id) let a person find it in the Variables UI; the scope hash makes it
    unique, since truncated or sanitised ids alone could collide. At most 250 characters, the
    Variable key limit.
    """
    dag = _UNSAFE.sub("-", scope.dag_id)[:80]
    task = _UNSAFE.sub("-", scope.task_id)[:80]
    suffix = f"{scope.map_index}" if scope.map_index >= 0 else ""
    key = f"{prefix}.{dag}.{task}{'.' + suffix if suffix else ''}.{scope.digest()[:32]}"
    return key[:250]


class VariableStateStore:
    """
    State in one Airflow Variable per task instance, for Airflow 2.11 and 3.0-3.2.

    The Variable's value is indented JSON with the scope and the keys, so a person can read it in the
    UI; it is deleted when the task succeeds because Variables are global and would otherwise pile up.
    Only one try of a task instance runs at a time, so this try's copy of the value is authoritative:
    it is read once and every write stores the whole document.
    """

    name = "variable"
    clears_on_success = True

    def __init__(self, scope: TaskScope, access: VariableAccess | None = None) -> None:
        self.scope = scope
        self.key = variable_key(scope)
        self.access = access or default_variable_access()
        self._values: dict[str, JsonValue] | None = None

    @classmethod
    def from_context(cls, context: Mapping[str, Any]) -> VariableStateStore:
        return cls(TaskScope.from_context(context))

    def __repr__(self) -> str:
        return f"VariableStateStore(variable={self.key!r})"

    def _load(self) -> dict[str, JsonValue]:
        if self._values is None:
            raw = self.access.get(self.key)
            if raw is None:
                self._values = {}
            else:
                self._values = self._parse(raw)
        return self._values

    def _parse(self, raw: str) -> dict[str, JsonValue]:
        try:
            document = json.loads(raw)
            values = document["values"]
            stored_scope = document["scope"]
        except (ValueError, KeyError, TypeError) as err:
            raise StateStoreError(
                f"Variable {self.key!r} does not hold state written by this provider ({err}); "
                f"refusing to guess. Inspect it, then delete it to start over."
            ) from err
        if stored_scope != self._scope_dict() or not isinstance(values, dict):
            raise StateStoreError(
                f"Variable {self.key!r} belongs to {stored_scope!r}, not {self._scope_dict()!r}; "
                "refusing to share state between task instances."
            )
        return values

    def _scope_dict(self) -> dict[str, Any]:
        return {
            "dag_id": self.scope.dag_id,
            "run_id": self.scope.run_id,
            "task_id": self.scope.task_id,
            "map_index": self.scope.map_index,
        }

    def _store(self, values: dict[str, JsonValue]) -> None:
        if not values:
            self.access.delete(self.key)
            return
        document = {"scope": self._scope_dict(), "values": values}
        description = (
            f"Retry state of {self.scope.dag_id}.{self.scope.task_id} in run {self.scope.run_id} "
            "(airflow-provider-resumable); deleted when the task succeeds."
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
        self.access.delete(self.key)
        self._values = {}
