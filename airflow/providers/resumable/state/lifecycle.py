"""
How long stored state lives: which life of a task instance a stored value belongs to, and what
happens to it once Airflow has recorded the task instance's success.

A *life* of a task instance runs from its first try (or the first try after a person's clear) to
its success. Automatic retries stay inside one life. A person's clear after success starts the next
life. A DAG run deleted and created again under the same ``run_id`` is another task instance
altogether, even though its scope (dag, run, task, map index) looks the same.

Two signals carry this, and neither can be reproduced by a retry:

* the *finished marker*: once Airflow has recorded success, the provider's listener (see
  ``airflow.providers.resumable.plugins``) drops the task instance's state (Variables, or the native
  store with ``[state_store] clear_on_success``) or writes ``resumable_finished`` with the try that
  succeeded (native store). Anything written at or before that try belongs to a finished life.
* the *try identity*: every write records the try that made it (try number, and a stamp unique to
  that try: the task instance id on Airflow 3, the try's start on Airflow 2) and the DAG run's own
  identity. A value from a higher try, from another try with the same number, or from another DAG
  run row cannot belong to this task instance's history.

``max_tries`` (which a clear moves) stays as a third, weaker signal for when the listener could not
run (the worker died between the success and the listener). The functions here are pure; the
registry at the bottom is the small piece of process state the listener drains.
"""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from airflow.providers.resumable.compat.version_compat import AIRFLOW_V_3_0_PLUS
from airflow.providers.resumable.state.base import CorruptStateError, TaskScope, task_instance_of

if TYPE_CHECKING:
    from collections.abc import Mapping

    from airflow.providers.resumable.state.base import StateStore

log = logging.getLogger(__name__)

#: Key of the finished marker in a store that keeps state after success (the native store).
FINISHED_KEY = "resumable_finished"
FINISHED_KIND = "resumable-finished"


def _as_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else None


@dataclass(frozen=True)
class TryInfo:
    """What a try knows about itself and its DAG run, read from the task context."""

    try_number: int | None = None
    #: ``ti.max_tries``: moved by a person's clear, never by a retry (but a clear can land on the same value).
    max_tries: int | None = None
    #: Unique to one try: the task instance id on Airflow 3 (a new one per try, kept across a
    #: deferral), the try's start date on Airflow 2 (kept across a deferral too).
    try_stamp: str | None = None
    #: Unique to one DAG run row: ``run_after`` on Airflow 3, the row id on Airflow 2.
    run_key: str | None = None
    #: ``dag_run.clear_number``: only ever grows during the life of a DAG run row.
    clear_number: int | None = None

    @classmethod
    def from_context(cls, context: Any) -> TryInfo:
        ti = task_instance_of(context)
        if ti is None:
            return cls()
        dag_run = context.get("dag_run")
        try_number = _as_int(getattr(ti, "try_number", None))
        if AIRFLOW_V_3_0_PLUS:
            ti_id = getattr(ti, "id", None)
            stamp = str(ti_id) if ti_id is not None else None
            run_key = _iso(getattr(dag_run, "run_after", None))
        else:
            # `airflow tasks run` sets the try's start (kept across a deferral); `dag.test()` does not.
            stamp = _iso(getattr(ti, "start_date", None)) or _process_stamp(TaskScope.from_context(context), try_number)
            row_id = _as_int(getattr(dag_run, "id", None))
            run_key = None if row_id is None else f"dag_run.id={row_id}"
        return cls(
            try_number=try_number,
            max_tries=_as_int(getattr(ti, "max_tries", None)),
            try_stamp=stamp,
            run_key=run_key,
            clear_number=_as_int(getattr(dag_run, "clear_number", None)),
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TryInfo:
        return cls(
            try_number=_as_int(data.get("try_number")),
            max_tries=_as_int(data.get("max_tries")),
            try_stamp=data.get("try_stamp") if isinstance(data.get("try_stamp"), str) else None,
            run_key=data.get("run_key") if isinstance(data.get("run_key"), str) else None,
            clear_number=_as_int(data.get("clear_number")),
        )


def foreign_to(stored: TryInfo, current: TryInfo) -> str | None:
    """
    Why a value written by ``stored`` cannot belong to the task instance now running as ``current``.

    None means it may (the same try, an earlier try of this life, or an earlier life of this task
    instance). A reason means the value was left by a DAG run that was deleted and created again
    under the same run_id, so it must not be resumed from.
    """
    if stored.run_key and current.run_key and stored.run_key != current.run_key:
        return f"it was written in a DAG run created as {stored.run_key}, this one is {current.run_key}"
    if (
        stored.clear_number is not None
        and current.clear_number is not None
        and stored.clear_number > current.clear_number
    ):
        return f"it was written after clear number {stored.clear_number}, this run is at {current.clear_number}"
    if stored.try_number is None or current.try_number is None:
        return None
    if stored.try_number > current.try_number:
        return f"it was written at try {stored.try_number}, this is try {current.try_number}"
    if (
        stored.try_number == current.try_number
        and stored.try_stamp
        and current.try_stamp
        and stored.try_stamp != current.try_stamp
    ):
        return f"it was written by another try {stored.try_number} ({stored.try_stamp})"
    return None


@dataclass(frozen=True)
class FinishedMarker:
    """``resumable_finished``: the life that ended with try ``try_number`` succeeded."""

    try_number: int
    max_tries: int | None
    finished_at: str

    def dump(self) -> dict[str, Any]:
        return {"kind": FINISHED_KIND, **asdict(self)}


def parse_marker(raw: Any, location: str) -> FinishedMarker | None:
    """Read a stored finished marker strictly: a hand-edited one is named as bad state, not ignored."""
    if raw is None:
        return None
    try_number = _as_int(raw.get("try_number")) if isinstance(raw, dict) else None
    if not isinstance(raw, dict) or raw.get("kind") != FINISHED_KIND or try_number is None or try_number < 0:
        raise CorruptStateError(
            f"{location} holds {raw!r}, not a finished marker of this provider (kind {FINISHED_KIND!r} with a "
            "try_number >= 0). Delete the key; a clear then starts the task afresh."
        )
    return FinishedMarker(
        try_number=try_number, max_tries=_as_int(raw.get("max_tries")), finished_at=str(raw.get("finished_at"))
    )


def read_marker(store: Any) -> FinishedMarker | None:
    """The finished marker of the task instance whose (raw, not namespaced) ``store`` this is."""
    from airflow.providers.resumable.state.records import where

    return parse_marker(store.get(FINISHED_KEY), where(store, FINISHED_KEY))


def finished_before(written_at_try: int | None, marker: FinishedMarker | None) -> bool:
    """
    Whether a value written at ``written_at_try`` belongs to a life that already succeeded.

    A value with no try number (a bare id written by ``airflow.sdk.ResumableJobMixin``) predates
    any marker. Only a person's clear can start a try after a success, so a finished value is never
    resumed from: the cleared task runs afresh.
    """
    if marker is None:
        return False
    return written_at_try is None or written_at_try <= marker.try_number


def cleared_since(
    *,
    written_at_try: int | None,
    written_max_tries: int | None,
    marker: FinishedMarker | None,
    current: TryInfo,
) -> bool:
    """A person cleared the task instance since the value was written (the marker, else ``max_tries``)."""
    if finished_before(written_at_try, marker):
        return True
    return written_max_tries is not None and current.max_tries is not None and written_max_tries != current.max_tries


# ---- what the success listener finishes ------------------------------------------------------------


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
class _Pending:
    stores: list[StateStore]
    info: TryInfo
    #: Run before the stores are finished, in the order registered.
    actions: list[SuccessAction] = field(default_factory=list)


_pending: dict[TaskScope, _Pending] = {}
_lock = threading.Lock()
#: Airflow 2 without a try start date: one stamp per try as this process sees it, dropped when the
#: listener sees the try end, so a DAG run deleted and created again in the same process (``dag.test``)
#: is not mistaken for the same try.
_process_stamps: dict[tuple[TaskScope, int | None], str] = {}


def _process_stamp(scope: TaskScope, try_number: int | None) -> str:
    with _lock:
        return _process_stamps.setdefault((scope, try_number), f"process-{uuid.uuid4().hex}")


def register_for_success(context: Any, store: StateStore) -> None:
    """
    Ask for ``store`` to be finished once Airflow has recorded this task instance's success.

    Called by the mixins whenever they use a store during a try (including the try that resumes
    after a deferral). Nothing is dropped inside ``execute``: the XCom push, ``post_execute`` or
    the worker itself can still fail the try after it returns.
    """
    if task_instance_of(context) is None:
        return
    scope = TaskScope.from_context(context)
    info = TryInfo.from_context(context)
    with _lock:
        entry = _pending.get(scope)
        if entry is None:
            _pending[scope] = _Pending([store], info)
        elif all(existing is not store for existing in entry.stores):
            entry.stores.append(store)


def register_on_success(context: Any, action: SuccessAction) -> None:
    """
    Ask for ``action`` to run once Airflow has recorded this task instance's success.

    A failed try drops it (the listener's ``on_task_instance_failed``), as does a worker that dies
    before the listener runs: what it would have done then simply does not happen.
    """
    if task_instance_of(context) is None:
        return
    scope = TaskScope.from_context(context)
    info = TryInfo.from_context(context)
    with _lock:
        entry = _pending.setdefault(scope, _Pending([], info))
        entry.actions = [existing for existing in entry.actions if existing.key != action.key]
        entry.actions.append(action)


def take_pending(scope: TaskScope) -> _Pending | None:
    """What is to be finished for ``scope``; called by the listener when a try of it ended."""
    with _lock:
        for key in [key for key in _process_stamps if key[0] == scope]:
            del _process_stamps[key]
        return _pending.pop(scope, None)


def finish_store(store: StateStore, info: TryInfo, now: str) -> str:
    """
    Finish one store after success: drop its state, or mark the life finished. Returns what it did.

    A backend may define ``mark_finished(marker)``; otherwise ``clears_on_success`` says whether to
    drop everything (``clear()``) or to write the marker.
    """
    inner = getattr(store, "inner", store)
    marker = FinishedMarker(try_number=info.try_number or 0, max_tries=info.max_tries, finished_at=now)
    finisher = getattr(inner, "mark_finished", None)
    if finisher is not None:
        return str(finisher(marker.dump()))
    if getattr(inner, "clears_on_success", False):
        inner.clear()
        return "dropped"
    inner.set(FINISHED_KEY, marker.dump())
    return "marked finished"
