"""
The running try: built once from the task context and handed to everything below the mixins.

As tenacity hands one ``RetryCallState`` to every strategy, a mixin builds one :class:`TaskTry` per
try and passes it down: the task instance's scope, which try and which life this is, the guarded
store of the configured backend, whether it is durable, and the tags every metric carries. This is
the one module of ``state/`` that reads a task context; the stores, the guard, the lifecycle rules
and the after-success registry take a ``TaskTry`` or what it holds.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow.providers.resumable.compat.airflow import dag_run_key, mapped_kwargs, region_of, try_stamp
from airflow.providers.resumable.state import after_success
from airflow.providers.resumable.state.backends import (
    LEDGER_PREFIX,
    EphemeralStateStore,
    NativeTaskStateStore,
    VariableStateStore,
)
from airflow.providers.resumable.state.base import (
    BASIC_METHODS,
    MarkerFinishing,
    NamespacedStateStore,
    StateBackendConfigError,
    StateStore,
    StateStoreError,
    TaskScope,
    backend_name,
)
from airflow.providers.resumable.state.codec import (
    FINISHED_KEY,
    MAPPED_INPUT_KEY,
    FinishedMarker,
    MappedInput,
    input_fingerprint,
    located,
)
from airflow.providers.resumable.state.guard import GuardedStateStore, guard
from airflow.providers.resumable.state.lifecycle import TryInfo, ended_life, extra_try_after_success
from airflow.providers.resumable.state.selection import (
    AUTO,
    BUILTIN_BACKENDS,
    is_durable,
    load_class,
    setting,
    validate_backend,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from airflow.providers.resumable.state.after_success import SuccessAction

log = logging.getLogger(__name__)

#: Where :meth:`TaskTry.of` keeps the try of an operator (or a TaskFlow handle) between calls.
_CACHE_ATTRIBUTE = "_resumable_try"
#: Where it keeps the tries of backends picked per call (``get_state_store(context, "variable")``).
_PICKED_ATTRIBUTE = "_resumable_picked_tries"


# ---- reading the context ----------------------------------------------------------------------------


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


def scope_of_ti(ti: Any) -> TaskScope:
    """The scope of a task instance (the listener has one without a context), with its Task Loop region."""
    map_index = getattr(ti, "map_index", -1)
    region_id, region_index = region_of(ti)
    return TaskScope(
        dag_id=ti.dag_id,
        run_id=ti.run_id,
        task_id=ti.task_id,
        map_index=-1 if map_index is None else int(map_index),
        region_id=region_id,
        region_index=region_index,
    )


def scope_of(context: Any) -> TaskScope:
    """The scope of the task instance running with ``context``; raises without one."""
    ti = task_instance_of(context)
    if ti is None:
        raise StateStoreError(
            "The task context has no task instance, so the task instance that owns the state is "
            "unknown; state stores can only be used while a task instance runs."
        )
    return scope_of_ti(ti)


def _as_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def operator_name(holder: Any) -> str:
    """
    The operator's name as Airflow shows it, for metrics and spans: its ``custom_operator_name`` when
    it has one (``@task.resumable`` for a TaskFlow function, as Airflow shows ``@task``), else its class.
    """
    custom = getattr(holder, "custom_operator_name", None)
    return custom if isinstance(custom, str) and custom else type(holder).__name__


def try_info_of(context: Any) -> TryInfo:
    """What the running try knows about itself and its DAG run (empty without a task instance)."""
    ti = task_instance_of(context)
    if ti is None:
        return TryInfo()
    dag_run = context.get("dag_run")
    try_number = _as_int(getattr(ti, "try_number", None))
    return TryInfo(
        try_number=try_number,
        max_tries=_as_int(getattr(ti, "max_tries", None)),
        try_stamp=try_stamp(ti, lambda: after_success.process_stamp(scope_of_ti(ti), try_number)),
        run_key=dag_run_key(dag_run),
        clear_number=_as_int(getattr(dag_run, "clear_number", None)),
    )


def mapped_input_fingerprint(context: Any, scope: TaskScope) -> str | None:
    """
    The fingerprint of the arguments ``expand()`` gave this map index (None: not mapped, or not knowable).

    What it covers, and why an input without a stable form is left unchecked: ``codec.input_fingerprint``.
    """
    if scope.map_index < 0:
        return None
    try:
        kwargs = mapped_kwargs(context)
    except Exception as err:
        log.warning(
            "Could not resolve the expanded arguments of map index %s of %s.%s (%s: %s), so its state is not "
            "checked against them: a changed mapped list may resume another item's state",
            scope.map_index,
            scope.dag_id,
            scope.task_id,
            type(err).__name__,
            err,
        )
        return None
    if kwargs is None:
        return None
    fingerprint = input_fingerprint(kwargs)
    if fingerprint is None:
        log.info(
            "The expanded arguments of map index %s of %s.%s have no stable serialised form, so its state is not "
            "checked against them",
            scope.map_index,
            scope.dag_id,
            scope.task_id,
        )
    return fingerprint


# ---- the backend ------------------------------------------------------------------------------------


def _custom_store(choice: str, context: Any) -> StateStore:
    cls = load_class(choice)
    factory = getattr(cls, "from_context", cls)
    try:
        store = factory(context)
    except StateStoreError:
        raise
    except (TypeError, AttributeError, ValueError) as err:
        raise StateBackendConfigError(
            f"{setting(choice)}: building the store failed with {type(err).__name__}: {err}. The class needs a "
            "from_context(context) classmethod (or a constructor taking the context) that returns a StateStore."
        ) from err
    except Exception as err:
        raise StateStoreError(
            f"{setting(choice)}: building the store failed with {type(err).__name__}: {err}; failing the task "
            "rather than running without durable state."
        ) from err
    if not all(callable(getattr(store, method, None)) for method in BASIC_METHODS):
        raise StateBackendConfigError(
            f"{setting(choice)} built a {type(store).__name__}, which lacks the StateStore methods get/set/delete/clear"
        )
    return store if callable(getattr(store, "finish", None)) else MarkerFinishing(store)


def get_state_store(context: Mapping[str, Any] | None, backend: str | None = None) -> StateStore:
    """
    Return the state store of the task instance running with ``context``, for code that keeps raw keys.

    Inside a task instance this is the running try's store (:attr:`TaskTry.store`): every write is
    checked for secrets and size, it is finished once Airflow has recorded the task instance's
    success, and the first call after a person's clear of a succeeded task instance finds it empty
    (raw keys carry no try number, so what the ended life left is cleared, on every backend). The
    guard is transparent: ``isinstance(store, NativeTaskStateStore)`` still holds.

    ``backend`` defaults to ``[resumable] state_backend``: ``auto`` uses the native
    ``task_state_store`` when the context has one (Airflow 3.3+) and Airflow Variables otherwise;
    ``task_state_store`` and ``variable`` force one; anything else is a dotted path to a class whose
    ``from_context(context)`` (or constructor, called with the context) returns a ``StateStore``.

    Without a task instance in the context (a unit test calling ``op.execute({})``) a configured
    class is still used, so a test store works; the built-in backends need a task instance, so an
    :class:`~.EphemeralStateStore` stands in and nothing is durable, as with the official operators.
    """
    ti = task_instance_of(context)
    if ti is None:
        return backend_store(context, backend)
    task = None
    with contextlib.suppress(Exception):
        task = context.get("task") if context is not None else None
    # Another backend than the configured one is a try of its own, kept on the task beside the
    # configured one, so every call in this try returns the same store, finished after success.
    task_try = TaskTry.of(task if task is not None else ti, context, backend=backend)
    task_try.start_fresh_at_first_use()
    return task_try.store


def backend_store(context: Mapping[str, Any] | None, backend: str | None = None) -> StateStore:
    """
    The backend's own store for ``context``, unguarded and unregistered (what :class:`TaskTry` wraps).

    Which backend, and the stand-in without a task instance: as :func:`get_state_store` says.
    """
    choice = validate_backend(backend)
    if task_instance_of(context) is None:
        return _custom_store(choice, context) if choice not in BUILTIN_BACKENDS else EphemeralStateStore()
    assert context is not None
    native = context.get("task_state_store")
    if choice == "task_state_store" or (choice == AUTO and native is not None):
        if native is None:
            raise StateStoreError(
                "[resumable] state_backend selects 'task_state_store', but this task's context has no "
                "task_state_store (it needs Airflow 3.3 or later). Use state_backend = 'variable' or "
                "'auto' on this Airflow."
            )
        return NativeTaskStateStore(native, scope_of(context))
    if choice in (AUTO, "variable"):
        return VariableStateStore(scope_of(context), info=try_info_of(context))
    return _custom_store(choice, context)


# ---- the try ----------------------------------------------------------------------------------------


@dataclass
class TaskTry:
    """
    One try of one task instance, as everything below the mixins sees it.

    Built once per try (:meth:`of` caches it on the operator for the context it ran with) and, when
    its store is durable, registered once to be finished after the task instance's success.
    """

    #: Which task instance (None outside one: a unit test calling ``execute()``).
    scope: TaskScope | None
    #: Which try, and of which life and DAG run row.
    info: TryInfo
    #: The backend's store, every write checked for secrets and size (unguarded when not durable).
    store: StateStore
    #: ``task_state_store``, ``variable``, or a configured class's name.
    backend: str
    #: False when nothing outlives the call (no task instance and a built-in backend).
    durable: bool
    #: The task id named in errors and logs.
    owner: str
    #: What every metric and span of this try carries: operator, dag_id, task_id, backend.
    tags: dict[str, str]
    #: ``context["asset_state_store"]`` (Airflow 3.3+), for watermarks kept with an asset.
    asset_accessors: Any = field(default=None, repr=False)
    #: Built for an operator that keeps nothing (``durable=False``).
    ephemeral: bool = False
    allow_secrets: bool = field(default=False, repr=False)
    _ledger: StateStore | None = field(default=None, repr=False)
    _namespaces: dict[str, NamespacedStateStore] = field(default_factory=dict, repr=False)
    _marker: tuple[FinishedMarker | None] | None = field(default=None, repr=False)
    _fresh_checked: bool = field(default=False, repr=False)
    #: Checkpoint writers of this try's walks (``mixins/checkpoint_writer.py``), while they run.
    _writers: list[Any] = field(default_factory=list, repr=False)
    #: The fingerprint of this map index's expanded arguments (None: not mapped, or not knowable).
    input_fingerprint: str | None = field(default=None, repr=False)
    #: The stores (by id) whose mapped input this try has checked.
    _input_checked: set[int] = field(default_factory=set, repr=False)

    @classmethod
    def from_context(
        cls,
        context: Any,
        *,
        owner: str,
        kind: str,
        dag_id: str | None = None,
        allow_secrets: bool = False,
        ephemeral: bool = False,
        backend: str | None = None,
    ) -> TaskTry:
        """
        Read the try from ``context``: its scope, its identity, and the store ``[resumable] state_backend`` picks.

        ``kind`` is the operator class (or TaskFlow function) named in metrics; ``dag_id`` stands in
        for the tags when there is no task instance. ``ephemeral`` (an operator with ``durable=False``)
        opens no store at all: nothing is read, kept or finished.
        """
        ti = task_instance_of(context)
        scope = scope_of_ti(ti) if ti is not None else None
        info = try_info_of(context)
        raw = EphemeralStateStore() if ephemeral else backend_store(context, backend)
        durable = is_durable(raw)
        store: StateStore = (
            guard(raw, owner=owner, allow_secrets=allow_secrets, scope=scope, try_id=info.try_id) if durable else raw
        )
        name = backend_name(raw)
        tags = {
            "operator": kind,
            "dag_id": scope.dag_id if scope is not None else (dag_id or ""),
            "task_id": owner,
            "backend": name,
        }
        accessors = None
        if ti is not None:
            with contextlib.suppress(Exception):
                accessors = context.get("asset_state_store")
        if scope is not None and scope.region_id is not None:
            tags["region_index"] = str(scope.region_index)
        found = cls(scope, info, store, name, durable, owner, tags, accessors, ephemeral, allow_secrets)
        if durable and scope is not None:
            found.input_fingerprint = mapped_input_fingerprint(context, scope)
            found._check_input_at_first_use(store)
            # Dropped or marked finished by the provider's listener once Airflow has recorded the
            # task instance's success; never inside execute, which can still fail after it returns.
            after_success.register_store(scope, info, store)
        return found

    @classmethod
    def running(cls, holder: Any) -> TaskTry | None:
        """The try ``holder`` runs now, if it built one (``on_kill`` has no context to build one from)."""
        cached = holder.__dict__.get(_CACHE_ATTRIBUTE)
        return cached[1] if cached is not None else None

    @classmethod
    def of(
        cls,
        holder: Any,
        context: Any,
        *,
        allow_secrets: bool = False,
        ephemeral: bool = False,
        backend: str | None = None,
    ) -> TaskTry:
        """
        The try ``holder`` (an operator) runs with ``context``, built on first use and kept for that context.

        A retry, or the try that resumes after a deferral, brings a new context and so a new try.
        ``backend`` other than the configured one (a store picked per operator) is a try of its own,
        kept beside the configured one: its store is guarded and finished after success alike.
        """
        if backend is not None and validate_backend(backend) != validate_backend():
            return cls._picked(holder, context, validate_backend(backend), allow_secrets)
        cached = holder.__dict__.get(_CACHE_ATTRIBUTE)
        if cached is not None and cached[0] is context and cached[1].ephemeral is ephemeral:
            return cached[1]
        dag_id = None
        with contextlib.suppress(Exception):
            # Airflow 3 raises on ``dag_id`` of an operator without a Dag (a unit test).
            dag_id = holder.dag_id
        found = cls.from_context(
            context,
            owner=str(getattr(holder, "task_id", type(holder).__name__)),
            kind=operator_name(holder),
            dag_id=dag_id if isinstance(dag_id, str) else None,
            allow_secrets=allow_secrets,
            ephemeral=ephemeral,
        )
        # The context is kept with it so that its id cannot be reused by the next try's context.
        holder.__dict__[_CACHE_ATTRIBUTE] = (context, found)
        return found

    @classmethod
    def _picked(cls, holder: Any, context: Any, backend: str, allow_secrets: bool) -> TaskTry:
        picked: dict[str, tuple[Any, TaskTry]] = holder.__dict__.setdefault(_PICKED_ATTRIBUTE, {})
        cached = picked.get(backend)
        if cached is not None and cached[0] is context:
            return cached[1]
        owner = str(getattr(holder, "task_id", type(holder).__name__))
        found = cls.from_context(
            context, owner=owner, kind=type(holder).__name__, allow_secrets=allow_secrets, backend=backend
        )
        picked[backend] = (context, found)
        return found

    @classmethod
    def owning(cls, holder: Any, store: Any) -> TaskTry | None:
        """
        The try of ``holder`` whose store ``store`` is (or a namespaced view of it), if one is.

        What lets a mixin keep its state where an overridden ``state_store()`` says, with that
        store's lifecycle, instead of ignoring the override.
        """
        inner = store.inner if isinstance(store, NamespacedStateStore) else store
        tries = [cached[1] for cached in holder.__dict__.get(_PICKED_ATTRIBUTE, {}).values()]
        configured = holder.__dict__.get(_CACHE_ATTRIBUTE)
        if configured is not None:
            tries.append(configured[1])
        return next((task_try for task_try in tries if task_try.store is inner), None)

    # ---- what the layers below ask of it -------------------------------------------------------------

    @property
    def run_id(self) -> str:
        return self.scope.run_id if self.scope is not None else "(no task instance)"

    @property
    def map_index(self) -> int:
        return self.scope.map_index if self.scope is not None else -1

    def namespaced(self, namespace: str) -> NamespacedStateStore:
        """This try's store seen under ``namespace`` (one view per namespace, so its key index is shared)."""
        view = self._namespaces.get(namespace)
        if view is None:
            view = self._namespaces[namespace] = NamespacedStateStore(self.store, namespace)
        return view

    def locate(self, key: str, namespace: str | None = None) -> str:
        """Where ``key`` (under ``namespace``) lives, and the command that deletes it."""
        return located(self.namespaced(namespace) if namespace else self.store, key)

    def marker(self) -> FinishedMarker | None:
        """The finished marker of this task instance, read once per try (only the listener writes it)."""
        if self._marker is None:
            raw = self.store.get(FINISHED_KEY)
            self._marker = (FinishedMarker.parse(raw, located(self.store, FINISHED_KEY)),)
            marker = self._marker[0]
            if marker is not None and extra_try_after_success(marker, self.info):
                log.warning(
                    "This task instance succeeded at try %s and Airflow started try %s without a clear since (a late "
                    "failure of that try, such as Airflow 2.11's zombie callback): resuming from its state, so "
                    "what it ran is not started again",
                    marker.try_number,
                    self.info.try_number,
                )
        return self._marker[0]

    def ended_life(
        self, written_at_try: int | None, *, complete: bool = False, written_max_tries: int | None = None
    ) -> str | None:
        """Why a value written at ``written_at_try`` belongs to an ended life (see ``lifecycle.ended_life``)."""
        return ended_life(
            written_at_try=written_at_try,
            marker=self.marker(),
            current=self.info,
            complete=complete,
            written_max_tries=written_max_tries,
        )

    def ledger(self) -> StateStore | None:
        """
        On the native store, where job records are copied: a Variable that neither a person's clear
        (which discards task state on Airflow 3.4) nor ``[state_store] default_retention_days`` removes.

        None on the other backends, whose state a clear keeps already. Built on first use and then
        dropped once Airflow has recorded the task instance's success, like the task's own state.
        """
        if (
            self._ledger is None
            and self.durable
            and self.scope is not None
            and self.backend == NativeTaskStateStore.name
        ):
            self._ledger = guard(
                VariableStateStore(self.scope, info=self.info, prefix=LEDGER_PREFIX),
                owner=self.owner,
                allow_secrets=self.allow_secrets,
                scope=self.scope,
                try_id=self.info.try_id,
            )
            self._check_input_at_first_use(self._ledger)
            after_success.register_store(self.scope, self.info, self._ledger)
        return self._ledger

    def note_killed(self, *, flush_timeout: float = 5.0) -> None:
        """
        This try was told to stop: whatever it returns, nothing is finished or committed after it.

        The checkpoints its walks already handed to a writer are written first (they cover only work
        that is durable), waiting at most ``flush_timeout`` seconds in all: a signal may have stopped
        the walk's thread inside a store call the writer waits for.
        """
        self.flush_writers(flush_timeout)
        if self.scope is not None:
            after_success.note_killed(self.scope, self.info)

    def _check_input_at_first_use(self, store: StateStore) -> None:
        if self.input_fingerprint is not None and isinstance(store, GuardedStateStore):
            # At the first call, not here: building the store must not reach the backend.
            store.before_first_use = lambda: self.check_mapped_input(store)

    def check_mapped_input(self, store: StateStore) -> bool:
        """
        Clear ``store`` when it was kept for other expanded arguments than this map index runs with.

        A mapped list that changed between a failed run and a person's clear (an item inserted)
        moves items to other map indexes; state is keyed by map index, so without this index *i*
        would resume item *j*'s checkpoint or reattach to its job. State without a fingerprint
        (written before 0.2.0) is kept. Once per store and try; True when it cleared.
        """
        if self.input_fingerprint is None or self.scope is None or id(store) in self._input_checked:
            return False
        self._input_checked.add(id(store))
        wanted = MappedInput(map_index=self.scope.map_index, fingerprint=self.input_fingerprint)
        stored = MappedInput.parse(store.get(MAPPED_INPUT_KEY), located(store, MAPPED_INPUT_KEY))
        if stored == wanted:
            return False
        cleared = stored is not None
        if cleared:
            kept = dict(getattr(store, "written_this_try", {}))
            store.clear()
            for key, value in kept.items():
                store.set(key, value)
            if store is self.store:
                self._marker = None
                self._namespaces.clear()
            log.warning(
                "Map index %s of %s.%s runs with other expanded arguments than its stored state was kept for "
                "(the mapped list changed since): starting afresh, that state cleared (%s)",
                self.scope.map_index,
                self.scope.dag_id,
                self.scope.task_id,
                located(store, MAPPED_INPUT_KEY),
            )
        store.set(MAPPED_INPUT_KEY, wanted.dump())
        return cleared

    def start_fresh_at_first_use(self) -> None:
        """
        Run :meth:`first_use_of_raw_store` at the store's first call, not now.

        Building the store must not reach the backend: a task that never touches its state reads nothing.
        """
        if isinstance(self.store, GuardedStateStore) and not self._fresh_checked:
            self.store.before_first_use = self.first_use_of_raw_store

    def first_use_of_raw_store(self) -> None:
        """What the first call of ``get_state_store``'s store checks: an ended life, then the mapped input."""
        self.start_fresh_after_success()
        self.check_mapped_input(self.store)

    def adopt_writer(self, writer: Any) -> None:
        """A walk of this try writes in the background through ``writer`` (flushed on kill, stopped at the end)."""
        self._writers.append(writer)

    def release_writer(self, writer: Any) -> None:
        self._writers = [w for w in self._writers if w is not writer]

    def flush_writers(self, timeout: float) -> None:
        """Wait, ``timeout`` seconds at most in all, for the checkpoints handed to this try's writers."""
        deadline = time.monotonic() + timeout
        for writer in list(self._writers):
            try:
                if not writer.flush(max(0.0, deadline - time.monotonic())):
                    log.warning("Gave up on a checkpoint write after %s s; a retry redoes its batches", timeout)
            except Exception:
                log.exception("A checkpoint write failed while the task was being stopped")

    def close_writers(self) -> None:
        """The task's code returned or failed: no writer thread outlives it (a loop left open keeps its last write)."""
        for writer in list(self._writers):
            try:
                writer.close()
            except Exception:
                log.exception("A checkpoint write failed after the task's code ended")
            finally:
                self.release_writer(writer)

    def start_fresh_after_success(self) -> bool:
        """
        Clear what an ended life left, when the finished marker says one ended: the raw route's lifecycle.

        Raw keys (``get_state_store``) carry no try number, so only the marker tells that they belong
        to a life that succeeded; the first try after a person's clear finds the marker and clears the
        store, keeping what this try already wrote (a mixin's first checkpoint of the new life).
        Variables need nothing: they are dropped after success. Once per try; True when it cleared.
        """
        if self._fresh_checked or not self.durable or self.scope is None:
            return False
        self._fresh_checked = True
        marker = self.marker()
        if marker is None or extra_try_after_success(marker, self.info):
            return False
        kept = dict(getattr(self.store, "written_this_try", {}))
        self.store.clear()
        for key, value in kept.items():
            self.store.set(key, value)
        self._marker = (None,)
        self._namespaces.clear()
        log.info(
            "The task instance succeeded at try %s and was cleared since: starting afresh, its stored state cleared "
            "(%s)",
            marker.try_number,
            located(self.store, FINISHED_KEY),
        )
        return True

    def on_success(self, action: SuccessAction) -> None:
        """Run ``action`` once Airflow has recorded this task instance's success (dropped if the try fails)."""
        if self.scope is not None:
            after_success.register_action(self.scope, self.info, action)
