"""The ``StateStore`` protocol, the scope a store belongs to, and key namespacing."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from airflow.providers.resumable.compat.version_compat import AirflowFailException

if TYPE_CHECKING:
    from collections.abc import Mapping

JsonValue = Any
"""A value that survives ``json.dumps`` / ``json.loads`` unchanged (str, int, float, bool, list, dict)."""


class StateStoreError(RuntimeError):
    """
    The state store could not be read or written.

    Raised instead of carrying on without durable state: an operator that cannot remember its job id
    would start a duplicate job on the next retry, which is exactly what this provider exists to stop.
    A retry may succeed once the store is reachable again, so this error uses the task's retries.
    """


class CorruptStateError(AirflowFailException, StateStoreError):
    """
    The store answered, but what it holds is not state this provider can trust.

    A retry reads the same bytes and fails the same way, so the task fails without using its
    retries; the message names the backend, the key and what a person must do.
    """


class StateBackendConfigError(AirflowFailException, ValueError):
    """``[resumable] state_backend`` names a backend that does not exist or cannot be used here."""


@runtime_checkable
class StateStore(Protocol):
    """
    Key/value state of one task instance that survives retries.

    Same four methods and semantics as Airflow 3.3's ``context["task_state_store"]``: values are JSON,
    ``get`` returns ``default`` for a missing key, ``set`` overwrites, ``delete`` of a missing key is a
    no-op, ``clear`` removes every key of this store.
    """

    def get(self, key: str, default: JsonValue = None) -> JsonValue: ...

    def set(self, key: str, value: JsonValue) -> None: ...

    def delete(self, key: str) -> None: ...

    def clear(self) -> None: ...


@dataclass(frozen=True)
class TaskScope:
    """Identifies the task instance whose state a store holds; retries of it share one scope."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int = -1

    @classmethod
    def from_context(cls, context: Mapping[str, Any] | None) -> TaskScope:
        ti = task_instance_of(context)
        if ti is None:
            raise StateStoreError(
                "The task context has no task instance, so the task instance that owns the state is "
                "unknown; state stores can only be used while a task instance runs."
            )
        map_index = getattr(ti, "map_index", -1)
        return cls(
            dag_id=ti.dag_id,
            run_id=ti.run_id,
            task_id=ti.task_id,
            map_index=-1 if map_index is None else int(map_index),
        )

    def digest(self) -> str:
        """Stable hash of the scope, so keys derived from it never collide across task instances."""
        payload = json.dumps([self.dag_id, self.run_id, self.task_id, self.map_index], separators=(",", ":"))
        return hashlib.sha256(payload.encode()).hexdigest()


def task_instance_of(context: Any) -> Any:
    """
    The task instance running with ``context``, or None when there is no real one.

    Unit tests (the official providers' and users') call ``op.execute(context)`` with None, ``{}``
    or a ``MagicMock``; a mock's ``dag_id`` is not a string, so it does not count as a task instance.
    """
    if context is None or not hasattr(context, "get"):
        return None
    try:
        ti = context.get("ti") or context.get("task_instance")
    except Exception:
        return None
    if ti is None:
        return None
    ids = [getattr(ti, name, None) for name in ("dag_id", "run_id", "task_id")]
    if not all(isinstance(value, str) and value for value in ids):
        return None
    return ti


def check_json(key: str, value: JsonValue) -> None:
    """Reject values the native store would also reject, so every backend behaves the same."""
    if value is None:
        raise ValueError(f"Cannot set state key {key!r} to None; use delete({key!r}) to remove it")
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"State key {key!r} must hold a JSON value (str, int, float, bool, list, dict), "
            f"got {type(value).__name__}: {err}"
        ) from err


class NamespacedStateStore:
    """
    A view of a store in which every key is prefixed by ``namespace``.

    ``clear()`` removes only this namespace's keys, so two users of one task's state (a checkpoint
    and a job record, say) cannot wipe each other. The native store cannot list keys, so the view
    keeps an index of the keys it has written under ``<namespace>/__keys__``.
    """

    _INDEX = "__keys__"

    def __init__(self, inner: StateStore, namespace: str) -> None:
        if not namespace or "/" in namespace:
            raise ValueError(f"namespace must be a non-empty string without '/', got {namespace!r}")
        self.inner = inner
        self.namespace = namespace
        self._index: list[str] | None = None

    def __repr__(self) -> str:
        return f"NamespacedStateStore({self.inner!r}, namespace={self.namespace!r})"

    def _full(self, key: str) -> str:
        return f"{self.namespace}/{key}"

    def _load_index(self) -> list[str]:
        if self._index is None:
            stored = self.inner.get(self._full(self._INDEX), [])
            self._index = list(stored) if isinstance(stored, list) else []
        return self._index

    def get(self, key: str, default: JsonValue = None) -> JsonValue:
        return self.inner.get(self._full(key), default)

    def set(self, key: str, value: JsonValue) -> None:
        check_json(key, value)
        index = self._load_index()
        if key not in index:
            # Index first: a crash between the two writes leaves an index entry without a value,
            # which clear() tolerates; the reverse would leave a value clear() cannot find.
            self.inner.set(self._full(self._INDEX), [*index, key])
            index.append(key)
        self.inner.set(self._full(key), value)

    def delete(self, key: str) -> None:
        self.inner.delete(self._full(key))
        index = self._load_index()
        if key in index:
            index.remove(key)
            self.inner.set(self._full(self._INDEX), list(index))

    def clear(self) -> None:
        for key in self._load_index():
            self.inner.delete(self._full(key))
        self.inner.delete(self._full(self._INDEX))
        self._index = []


def state_cli_program() -> list[str]:
    """
    How a person runs this provider's state CLI on the installed Airflow.

    Airflow 3.2+ load provider CLI commands (``airflow resumable state ...``); older ones do not, and
    the same commands ship as the ``airflow-resumable`` console script.
    """
    try:
        from airflow.providers_manager import ProvidersManager
    except ImportError:  # pragma: no cover - every supported Airflow has it
        return ["airflow-resumable"]
    return ["airflow", "resumable"] if hasattr(ProvidersManager, "cli_command_functions") else ["airflow-resumable"]


def state_command(verb: str, scope: TaskScope, key: str | None = None) -> str:
    """The exact ``state <verb>`` command line for one task instance's state (and one key of it)."""
    import shlex

    args = ["state", verb, "--dag-id", scope.dag_id, "--run-id", scope.run_id, "--task-id", scope.task_id]
    if scope.map_index >= 0:
        args += ["--map-index", str(scope.map_index)]
    if key is not None:
        args += ["--key", key]
    return " ".join(state_cli_program()) + " " + shlex.join(args)
