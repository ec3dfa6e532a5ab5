"""The ``StateStore`` protocol, the scope a store belongs to, and key namespacing."""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from airflow.providers.resumable.compat.metadata_db import state_cli_program
from airflow.providers.resumable.compat.version_compat import AirflowFailException

if TYPE_CHECKING:
    from airflow.providers.resumable.state.codec import FinishedMarker

__all__ = [
    "BASIC_METHODS",
    "CorruptStateError",
    "FinishByMarker",
    "JsonValue",
    "MarkerFinishing",
    "NamespacedStateStore",
    "StateBackendConfigError",
    "StateStore",
    "StateStoreError",
    "StoreWrapper",
    "TaskScope",
    "backend_name",
    "check_json",
    "state_cli_program",
    "state_command",
]

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

    #: The first sentence of the message alone (what is wrong, without where or what to do), for the
    #: state CLI, which explains a stored value as the runtime would read it; None when not given.
    diagnosis: str | None = None


class StateBackendConfigError(AirflowFailException, ValueError):
    """``[resumable] state_backend`` names a backend that does not exist or cannot be used here."""


@runtime_checkable
class StateStore(Protocol):
    """
    Key/value state of one task instance that survives retries.

    Same four methods and semantics as Airflow 3.3's native ``task_state_store``: values are JSON,
    ``get`` returns ``default`` for a missing key, ``set`` overwrites, ``delete`` of a missing key is a
    no-op, ``clear`` removes every key of this store. ``finish`` is called once, by the provider's
    listener, after Airflow has recorded the task instance's success: drop the state or keep it
    marked as finished, and say which. A class configured by dotted path that has only the four
    methods gets :class:`FinishByMarker`'s ``finish``.
    """

    def get(self, key: str, default: JsonValue = None) -> JsonValue: ...

    def set(self, key: str, value: JsonValue) -> None: ...

    def delete(self, key: str) -> None: ...

    def clear(self) -> None: ...

    def finish(self, marker: FinishedMarker) -> str: ...


#: The methods a store configured by dotted path must have; ``finish`` is optional for it.
BASIC_METHODS = ("get", "set", "delete", "clear")


class FinishByMarker:
    """
    The default ``finish``: keep the state and write the finished marker under ``resumable_finished``.

    Every value written at or before the marker's try then belongs to a finished life, so a person's
    clear starts afresh while the values stay readable. A class with ``clears_on_success = True``
    (how a 0.1.0 backend asked for it) is cleared instead.
    """

    def finish(self, marker: FinishedMarker) -> str:
        from airflow.providers.resumable.state.codec import FINISHED_KEY

        # 0.1.0 custom backends said "drop me after success" with a class attribute.
        if getattr(self, "clears_on_success", False):
            self.clear()  # type: ignore[attr-defined]
            return "dropped"
        self.set(FINISHED_KEY, marker.dump())  # type: ignore[attr-defined]
        return "marked finished"


class StoreWrapper:
    """
    A store around another one, ``inner``: shown as it, and its other attributes read through.

    ``located``, ``backend_name`` and ``is_durable`` walk ``inner`` down to the backend.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __repr__(self) -> str:
        return repr(self.inner)

    def __getattr__(self, name: str) -> Any:
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)


class MarkerFinishing(StoreWrapper, FinishByMarker):
    """A store with only the four methods (configured by dotted path), given the default ``finish``."""

    def get(self, key: str, default: JsonValue = None) -> JsonValue:
        return self.inner.get(key, default)

    def set(self, key: str, value: JsonValue) -> None:
        self.inner.set(key, value)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def clear(self) -> None:
        self.inner.clear()


@dataclass(frozen=True)
class TaskScope:
    """
    Identifies the task instance whose state a store holds; retries of it share one scope.

    ``region_id`` / ``region_index`` are the slot for Airflow 3.4's Task Loops (task instances that
    differ only in their region); None before 3.4, and then left out of :meth:`digest`, so every name
    derived from a scope without a region stays what it was.
    """

    dag_id: str
    run_id: str
    task_id: str
    map_index: int = -1
    region_id: str | None = None
    region_index: int | None = None

    @classmethod
    def from_context(cls, context: Any) -> TaskScope:
        """The scope of the task instance running with the task context; for backends configured by dotted path."""
        from airflow.providers.resumable.state.task_try import scope_of

        return scope_of(context)

    def digest(self) -> str:
        """Stable hash of the scope, so keys derived from it never collide across task instances."""
        parts: list[Any] = [self.dag_id, self.run_id, self.task_id, self.map_index]
        if self.region_id is not None:
            parts += [self.region_id, self.region_index]
        payload = json.dumps(parts, separators=(",", ":"))
        return hashlib.sha256(payload.encode()).hexdigest()

    def as_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "dag_id": self.dag_id,
            "run_id": self.run_id,
            "task_id": self.task_id,
            "map_index": self.map_index,
        }
        if self.region_id is not None:
            found.update(region_id=self.region_id, region_index=self.region_index)
        return found


def backend_name(store: Any) -> str:
    """The backend under any wrappers: ``task_state_store``, ``variable``, or a custom class's name."""
    seen = 0
    while hasattr(store, "inner") and seen < 5:
        store, seen = store.inner, seen + 1
    name = getattr(type(store), "name", None)
    return name if isinstance(name, str) else type(store).__name__


def __getattr__(name: str) -> Any:
    # 0.1.0 exported task_instance_of from here; it reads the running task, so it lives in task_try.py now.
    if name == "task_instance_of":
        from airflow.providers.resumable.state.task_try import task_instance_of

        return task_instance_of
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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


async def aget(store: Any, key: str, default: JsonValue = None) -> JsonValue:
    """``store.get`` from a coroutine: the store's own ``aget`` when it has one, else in a worker thread."""
    native = getattr(store, "aget", None)
    if native is not None:
        return await native(key, default)
    return await asyncio.to_thread(store.get, key, default)


async def aset(store: Any, key: str, value: JsonValue) -> None:
    """``store.set`` from a coroutine: the store's own ``aset`` when it has one, else in a worker thread."""
    native = getattr(store, "aset", None)
    if native is not None:
        await native(key, value)
    else:
        await asyncio.to_thread(store.set, key, value)


#: The key under a namespace that lists the keys written there (``<namespace>/__keys__``).
NAMESPACE_INDEX = "__keys__"


class NamespacedStateStore:
    """
    A view of a store in which every key is prefixed by ``namespace``.

    ``clear()`` removes only this namespace's keys, so two users of one task's state (a checkpoint
    and a job record, say) cannot wipe each other. The native store cannot list keys, so the view
    keeps an index of the keys it has written under ``<namespace>/__keys__``.
    """

    _INDEX = NAMESPACE_INDEX

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

    async def aget(self, key: str, default: JsonValue = None) -> JsonValue:
        return await aget(self.inner, self._full(key), default)

    async def aset(self, key: str, value: JsonValue) -> None:
        check_json(key, value)
        if self._index is None:
            stored = await aget(self.inner, self._full(self._INDEX), [])
            self._index = list(stored) if isinstance(stored, list) else []
        index = self._index
        if key not in index:
            await aset(self.inner, self._full(self._INDEX), [*index, key])
            index.append(key)
        await aset(self.inner, self._full(key), value)

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

    def finish(self, marker: FinishedMarker) -> str:
        """A life ends for the whole task instance: finishing a view finishes the store it views."""
        return str(self.inner.finish(marker))


def state_command(verb: str, scope: TaskScope, key: str | None = None) -> str:
    """The exact ``state <verb>`` command line for one task instance's state (and one key of it)."""
    import shlex

    args = ["state", verb, "--dag-id", scope.dag_id, "--run-id", scope.run_id, "--task-id", scope.task_id]
    if scope.map_index >= 0:
        args += ["--map-index", str(scope.map_index)]
    if key is not None:
        args += ["--key", key]
    return " ".join(state_cli_program()) + " " + shlex.join(args)
