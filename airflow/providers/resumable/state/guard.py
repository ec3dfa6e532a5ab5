"""
What may be written to state: no registered secret (unless an operator opts in), a size warning, and
no value (or Variable document) over ``[resumable] max_state_bytes``.

Every write the mixins make goes through :func:`guard`'s wrapper, whatever the backend (the
native store, Variables, or a class configured by dotted path), so the checks live in one place
instead of in each backend or operator. Reads, deletes and the listener's finished marker pass
through untouched: they cannot leak a secret.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import threading
from typing import TYPE_CHECKING, NoReturn, SupportsIndex
from urllib.parse import unquote_plus

from airflow.providers.resumable.compat.airflow import secrets_redactor
from airflow.providers.resumable.compat.version_compat import AirflowFailException
from airflow.providers.resumable.state.base import StateBackendConfigError, StoreWrapper, aget, aset, backend_name
from airflow.providers.resumable.state.codec import located as where

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from airflow.providers.resumable.state.base import JsonValue, StateStore, TaskScope
    from airflow.providers.resumable.state.codec import FinishedMarker

log = logging.getLogger(__name__)

#: The bound this provider warns at for a task instance's Variable (the whole document: every key).
#: The column itself holds far more (MEDIUMTEXT on MySQL, TEXT on Postgres and SQLite), but every
#: write rewrites, and with a fernet_key re-encrypts, the whole document, and the Variables UI shows
#: it; 64 KiB matches Airflow 3.3's default ``[state_store] max_value_storage_bytes``.
VARIABLE_DOCUMENT_LIMIT_BYTES = 65535

#: Airflow 3.3's default for ``[state_store] max_value_storage_bytes``.
NATIVE_DEFAULT_LIMIT_BYTES = 65535

#: The default of ``[resumable] max_state_bytes``: a write over it is refused. Far above the warning
#: bound, so state that only grew past it keeps working; low enough that a checkpoint carrying data (a
#: 5 MB one made every Variable write take about a second) fails on its first write, not after hours.
DEFAULT_MAX_STATE_BYTES = 1048576


class StateTooLargeError(AirflowFailException, ValueError):
    """
    A value (on Variables: the task instance's whole document) is over ``[resumable] max_state_bytes``.

    The next try would compute the same value, so the task fails without using its retries.
    """


class SecretInStateError(AirflowFailException, ValueError):
    """
    A value about to be stored contains a secret that Airflow's secrets masker knows.

    The next try would compute the same value, so the task fails without using its retries.
    """


# ---- secrets -------------------------------------------------------------------------------------


def _strings(value: JsonValue, path: str) -> Iterator[tuple[str, str]]:
    """
    Every string value in a JSON value with a dotted path to where it sits.

    Dict keys are not checked: they are the structure of a record or cursor, and a registered
    secret as short as ``token`` (the minimum is five characters) would flag every job record.
    """
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _strings(item, f"{path}[{index}]")


def secret_paths(value: JsonValue) -> list[str]:
    """
    Where ``value`` contains a secret registered with Airflow's secrets masker (paths, never the secret).

    Each string is checked on its own and without a name: the masker also hides whole values by key
    name (``token``, ``password``), which would flag this provider's own idempotency ``token``. Only
    what Airflow registered as a secret (connection passwords and extras, sensitive Variables,
    ``mask_secret`` calls) counts, exactly what the task log shows as ``***``.
    """
    redact = secrets_redactor()
    if redact is None:
        return []
    found: list[str] = []
    for path, text in _strings(value, ""):
        # A secret in a URL is percent-encoded (``p%40ss`` for ``p@ss``); Airflow 3 registers only the
        # plain form, so the decoded string is checked too.
        candidates = {text, unquote_plus(text)} if "%" in text or "+" in text else {text}
        if any(c and redact(c) != c for c in candidates) and (path or "<value>") not in found:
            found.append(path or "<value>")
    return found


# ---- once per task instance ------------------------------------------------------------------------

_said: set[tuple[str, TaskScope | None, str | None]] = set()
_said_lock = threading.Lock()


def _first_time(what: str, scope: TaskScope | None, try_id: str | None) -> bool:
    """True the first time ``what`` happens in this try of this task instance (in this process)."""
    with _said_lock:
        token = (what, scope, try_id)
        if token in _said:
            return False
        _said.add(token)
        return True


# ---- size ----------------------------------------------------------------------------------------


def _native_limit() -> int:
    from airflow.configuration import conf

    try:
        return conf.getint("state_store", "max_value_storage_bytes", fallback=NATIVE_DEFAULT_LIMIT_BYTES)
    except Exception:  # an unparsable setting is Airflow's to report, not ours
        return NATIVE_DEFAULT_LIMIT_BYTES


def max_state_bytes() -> int:
    """``[resumable] max_state_bytes``: the size over which a write is refused; 0 (or less) is no limit."""
    from airflow.configuration import conf

    try:
        return conf.getint("resumable", "max_state_bytes", fallback=DEFAULT_MAX_STATE_BYTES)
    except Exception as err:
        raise StateBackendConfigError(
            f"[resumable] max_state_bytes must be a whole number of bytes (0: no limit), got "
            f"{conf.get('resumable', 'max_state_bytes', fallback='')!r}: {err}. Fix the setting."
        ) from err


def size_of(value: JsonValue) -> int:
    """Bytes of ``value`` as Airflow measures a task_state_store value (``len(json.dumps(value))``)."""
    return len(json.dumps(value))


# ---- the wrapper ---------------------------------------------------------------------------------


class GuardedStateStore(StoreWrapper):
    """
    A store whose ``set`` refuses registered secrets and warns once when a value grows past the limit.

    ``inner`` is the backend, so ``where``, ``is_durable`` and the success listener see through it.

    It passes for its backend: ``isinstance(store, VariableStateStore)`` is true of a guarded Variable
    store, and ``store.__class__`` is the backend's class, while ``type(store)`` tells the truth
    (``GuardedStateStore``, and ``isinstance(store, GuardedStateStore)`` holds too). Decided on review:
    ``get_state_store(context)`` returned the bare backend in 0.1.0, and users branch on its class
    (``isinstance(store, VariableStateStore)``, ``functools.singledispatch`` on it); the guard adds
    checks to ``set`` and must not change what the store is. A subclass per backend class would do
    the same for this provider's backends only, not for one configured by dotted path. The costs, and
    how each is handled: ``copy``/``deepcopy`` build a ``GuardedStateStore`` (``__copy__``), and
    ``pickle`` fails at once saying why (``__reduce_ex__``), since a try's store cannot outlive its try.
    """

    def __init__(
        self,
        inner: StateStore,
        *,
        owner: str,
        allow_secrets: bool = False,
        scope: TaskScope | None = None,
        try_id: str | None = None,
    ) -> None:
        super().__init__(inner)
        self.owner = owner
        self.allow_secrets = allow_secrets
        self.scope = scope
        self.try_id = try_id
        #: Sizes of the values this try has read or written, by key: a Variable holds them all in one document.
        self._sizes: dict[str, int] = {}
        #: Run once, before the first call through this store (``TaskTry.start_fresh_after_success``).
        self.before_first_use: Callable[[], object] | None = None
        #: What this try wrote, so clearing what an ended life left can keep it.
        self.written_this_try: dict[str, JsonValue] = {}

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        # Transparent to isinstance(), as the unguarded backend was before 0.2.0: code that checks
        # ``isinstance(get_state_store(context), VariableStateStore)`` keeps working. type() tells.
        inner = self.inner
        while isinstance(inner, StoreWrapper):
            inner = inner.inner
        return type(inner)

    def __copy__(self) -> GuardedStateStore:
        # copy and deepcopy would rebuild from __class__, the backend's class: build this class instead.
        twin = object.__new__(GuardedStateStore)
        twin.__dict__.update(self.__dict__)
        return twin

    def __reduce_ex__(self, protocol: SupportsIndex) -> NoReturn:
        # Without this pickle would rebuild the backend's class (``__class__``) with the guard's
        # attributes, and fail with "args[0] from __newobj__ args has the wrong class".
        raise TypeError(
            f"The state store of task {self.owner!r} cannot be pickled: it is the running try's own (its "
            "secrets guard, its finishing after success). Pickle the values read from it, or call "
            "get_state_store(context) where they are needed."
        )

    def __deepcopy__(self, memo: dict[int, object]) -> GuardedStateStore:
        twin = object.__new__(GuardedStateStore)
        memo[id(self)] = twin
        for name, value in self.__dict__.items():
            twin.__dict__[name] = copy.deepcopy(value, memo)
        return twin

    def _first_use(self) -> None:
        hook, self.before_first_use = self.before_first_use, None
        if hook is not None:
            hook()

    def locate(self, key: str) -> str:
        return where(self.inner, key)

    def get(self, key: str, default: JsonValue = None) -> JsonValue:
        self._first_use()
        value = self.inner.get(key, default)
        if value is not None and value is not default:
            self._sizes[key] = size_of(value)
        return value

    def set(self, key: str, value: JsonValue) -> None:
        self._first_use()
        if not self.allow_secrets:
            self._refuse_secrets(key, value)
        size = size_of(value)
        self._refuse_oversize(key, size)
        self.inner.set(key, value)
        self.written_this_try[key] = value
        self._sizes[key] = size
        self._check_size(key, size)

    async def aget(self, key: str, default: JsonValue = None) -> JsonValue:
        if self.before_first_use is not None:
            await asyncio.to_thread(self._first_use)
        value = await aget(self.inner, key, default)
        if value is not None and value is not default:
            self._sizes[key] = size_of(value)
        return value

    async def aset(self, key: str, value: JsonValue) -> None:
        if self.before_first_use is not None:
            await asyncio.to_thread(self._first_use)
        if not self.allow_secrets:
            self._refuse_secrets(key, value)
        size = size_of(value)
        self._refuse_oversize(key, size)
        await aset(self.inner, key, value)
        self.written_this_try[key] = value
        self._sizes[key] = size
        self._check_size(key, size)

    def delete(self, key: str) -> None:
        self._first_use()
        self.inner.delete(key)
        self.written_this_try.pop(key, None)
        self._sizes.pop(key, None)

    def clear(self) -> None:
        self.before_first_use = None
        self.written_this_try.clear()
        self.inner.clear()
        self._sizes.clear()

    def finish(self, marker: FinishedMarker) -> str:
        # The listener's marker cannot leak a secret: it is not checked.
        return str(self.inner.finish(marker))

    def _refuse_secrets(self, key: str, value: JsonValue) -> None:
        paths = secret_paths(value)
        if not paths:
            return
        raise SecretInStateError(
            "Refusing to store a value that contains a secret Airflow's secrets masker knows (a connection "
            f"password or extra, a sensitive Variable, or a mask_secret() value) at {', '.join(paths)}. The task "
            "log shows it as ***, but state is stored as written and anyone who "
            "can read task state or Variables would see it. Keep secrets out of what is stored: send them as "
            "headers or leave them in the connection (HttpHook adds its login, password and extra headers to "
            "every request), and strip them from next-page URLs and cursors (LinkHeaderPagination("
            "drop_params=['api_key']) or a pagination_function that removes them). If storing this value is "
            f"intended, pass allow_secrets_in_state=True to task {self.owner!r}. Key: {where(self.inner, key)}."
        )

    def _measured(self, size: int, key: str | None = None) -> int:
        """Bytes a write of ``size`` under ``key`` is measured by: the value, or on Variables the whole document."""
        if backend_name(self.inner) != "variable":
            return size
        # The Variable stores every key in one JSON document, indented for people; this counts the
        # keys this try has seen, which for the provider's mixins is every key of the task instance.
        sizes = dict(self._sizes) if key is None else {**self._sizes, key: size}
        return sum(sizes.values()) + 64 * len(sizes)

    def _refuse_oversize(self, key: str, size: int) -> None:
        limit = max_state_bytes()
        measured = self._measured(size, key)
        if limit <= 0 or measured <= limit:
            return
        variable = backend_name(self.inner) == "variable"
        what = f"the Variable would hold about {measured} bytes" if variable else f"the value is {size} bytes"
        raise StateTooLargeError(
            f"Refusing to store a value this large: {what}, over [resumable] max_state_bytes ({limit}). Task "
            "state is for ids and cursors, not data: store where to resume (a page token, an offset, a file "
            "name) and keep the data in the sink; every write sends the whole value"
            f"{' (on Variables, the whole document of every key)' if variable else ''}. If it must be this "
            f"large, raise [resumable] max_state_bytes (0: no limit). Key: {where(self.inner, key)}."
        )

    def _limit(self, size: int) -> tuple[int, str, int]:
        """(limit, what the limit is, bytes measured against it) for this backend; a limit <= 0 is none."""
        kind = backend_name(self.inner)
        if kind == "variable":
            bound = "this provider's bound for one task instance's Variable"
            return VARIABLE_DOCUMENT_LIMIT_BYTES, bound, self._measured(size)
        if kind == "task_state_store":
            return _native_limit(), "[state_store] max_value_storage_bytes", size
        return NATIVE_DEFAULT_LIMIT_BYTES, "this provider's bound for one value of a custom backend", size

    def _check_size(self, key: str, size: int) -> None:
        limit, what, measured = self._limit(size)
        if limit <= 0 or measured <= limit or not _first_time("size", self.scope, self.try_id):
            return
        from airflow.providers.resumable.observability import emit_oversize

        backend = backend_name(self.inner)
        emit_oversize(owner=self.owner, backend=backend)
        variable = backend == "variable"
        log.warning(
            "A state value is large: %s, over %s (%s bytes). Task state is meant for ids and cursors, not "
            "data: store where to resume (a page token, an offset, a file name) and keep the data in the "
            "sink; every write sends the whole value%s. Warned once per task instance; writes over "
            "[resumable] max_state_bytes (%s) are refused; see 'Sizing' in the provider's security docs. "
            "Key: %s.",
            f"the Variable now holds about {measured} bytes" if variable else f"the value is {size} bytes",
            what,
            limit,
            " (on Variables, the whole document of every key)" if variable else "",
            max_state_bytes(),
            where(self.inner, key),
        )


def guard(
    store: StateStore, *, owner: str, allow_secrets: bool, scope: TaskScope | None, try_id: str | None
) -> GuardedStateStore:
    """
    Wrap the try's ``store`` so that every write is checked.

    ``owner`` is the task id named in errors; ``allow_secrets`` is the operator's
    ``allow_secrets_in_state``, which turns the refusal into one warning per try.
    """
    if isinstance(store, GuardedStateStore):
        return store
    if allow_secrets and _first_time("allow_secrets", scope, try_id):
        log.warning(
            "allow_secrets_in_state=True on task %r: values it stores are not checked for secrets, so a "
            "connection password in a cursor is stored in plain text, readable by anyone who can read task "
            "state or Variables.",
            owner,
        )
    return GuardedStateStore(store, owner=owner, allow_secrets=allow_secrets, scope=scope, try_id=try_id)
