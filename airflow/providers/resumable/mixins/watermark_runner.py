"""
A watermark on one try: the window this run reads, the records it delivers, and the staged advance
committed after success.

``WatermarkMixin`` (``watermark.py``) and the TaskFlow handle (``taskflow_watermark.py``) both run on
this module; it takes a :class:`~airflow.providers.resumable.state.task_try.TaskTry`, the mark's
store and scope, and :class:`WatermarkSettings`, and never imports either of them. Both hand their
users' arguments to :meth:`Watermark.window` and :meth:`Watermark.records` as they got them, so one
check names a bad one. The rules themselves (planning a window, a commit, an overlap, the boundary)
are pure, in ``watermarks/rules.py``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from airflow.providers.resumable.compat.version_compat import AirflowFailException
from airflow.providers.resumable.state.base import CorruptStateError
from airflow.providers.resumable.state.codec import utcnow_iso
from airflow.providers.resumable.watermarks.rules import (
    MAX_COMMITS,
    OVERLAP_RULES,
    BoundaryFilter,
    WatermarkDocument,
    Window,
    cursor_max,
    normalize_key,
    plan_commit,
    plan_window,
    record_key,
)
from airflow.providers.resumable.watermarks.stores import watermark_command

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from datetime import timedelta

    from airflow.providers.resumable.state.task_try import TaskTry
    from airflow.providers.resumable.watermarks.stores import WatermarkScope, WatermarkStore


class WatermarkArgumentError(AirflowFailException, ValueError):
    """
    A watermark call got an argument no retry can fix (``primary_key=5``, ``read_boundary="yes"``):
    the task fails at once, naming the argument, its value and what it takes.
    """


def field_of(record: Any, name: str) -> Any:
    """A record's field: a key of a mapping, an attribute of anything else; None when it has none."""
    return record.get(name) if isinstance(record, Mapping) else getattr(record, name, None)


def _cursor_field(record: Any, *, name: str) -> Any:
    value = field_of(record, name)
    if value is None:
        raise ValueError(f"record has no {name!r} (cursor_field), so the run cannot say how far it read: {record!r}")
    return value


def record_reader(cursor_field: Any, primary_key: Any, records: Any) -> tuple[Callable[[Any], Any], tuple[str, ...]]:
    """
    ``watermark_records``' arguments checked, as (cursor of a record, key field names); the first bad
    one is refused by name, before a record is read or anything is kept.
    """
    if isinstance(records, str | bytes | Mapping) or not isinstance(records, Iterable):
        raise WatermarkArgumentError(
            f"records must be a list of the records this run read (dicts or objects), got {type(records).__name__} "
            f"{records!r:.80}; pass the list itself"
        )
    if callable(cursor_field):
        cursor: Callable[[Any], Any] = cursor_field
    elif isinstance(cursor_field, str) and cursor_field.strip():
        cursor = functools.partial(_cursor_field, name=cursor_field)
    else:
        raise WatermarkArgumentError(
            f"cursor_field must be the name of the records' cursor field (such as 'updated_at') or a function "
            f"returning a record's cursor value, got {cursor_field!r}"
        )
    try:
        names = normalize_key(primary_key)
    except ValueError as err:
        raise WatermarkArgumentError(
            f"{err}: the field(s) that identify a record (such as 'id' or ['tenant', 'id']), or None to identify "
            "it by its whole content"
        ) from None
    return cursor, names


@dataclass
class WatermarkCommit:
    """The success action that commits a staged watermark; built by ``Watermark.advance``."""

    key: str
    store: WatermarkStore
    window: Window
    staged: Any
    run_id: str
    map_index: int
    try_number: int | None
    on_overlap: str
    merge: Callable[[Any, Any], Any]
    scope: dict[str, Any]
    log: Any = field(repr=False, default=None)
    #: The records this run delivered near its top (the next run's boundary).
    boundary: dict[str, Any] = field(default_factory=dict)

    def __call__(self) -> str:
        location = self.store.locate()
        # Read again now, not when the run started: another run may have committed meanwhile.
        current = WatermarkDocument.parse(self.store.read(), location)
        plan = plan_commit(
            current,
            self.window,
            self.staged,
            run_id=self.run_id,
            map_index=self.map_index,
            try_number=self.try_number,
            now=utcnow_iso(),
            on_overlap=self.on_overlap,
            merge=self.merge,
            scope=self.scope,
            boundary=self.boundary,
        )
        if plan.document is None and plan.quiet:
            if self.log is not None:
                log_quiet = self.log.warning if plan.overlapped else self.log.info
                log_quiet("Watermark in %s not rewritten: %s", location, plan.message)
            return f"watermark unchanged ({plan.message})"
        if plan.document is None:
            if self.log is not None:
                self.log.error("Watermark overlap in %s: %s", location, plan.message)
            return f"watermark NOT committed ({plan.message})"
        if plan.overlapped and self.log is not None:
            self.log.warning(
                "Watermark overlap: run %s and %s both advanced %s from version %s: %s",
                self.run_id,
                ", ".join(plan.overlapped),
                location,
                self.window.base_version,
                plan.message,
            )
        # No compare-and-set on either store: a commit landing between this read and this write
        # is overwritten (see docs/mixins.rst, "Overlapping runs").
        self.store.write(plan.document.dump())
        return f"watermark in {self.store.name} {self.scope.get('dag_id')}.{self.scope.get('task_id')}: {plan.message}"


@dataclass(frozen=True)
class WatermarkSettings:
    """How a watermark is kept: its model, the overlap rule, and where this run's window is kept."""

    #: pydantic model of the mark; None = a JSON value (a timestamp string or a number).
    model: type[BaseModel] | None = None
    #: ``"max"`` or ``"fail"`` (see ``WatermarkMixin``).
    on_overlap: str = "max"
    #: How two marks combine on an overlap with ``on_overlap="max"``: (committed, ours) -> mark.
    merge: Callable[[Any, Any], Any] = cursor_max
    #: Namespace and key of this run's window in the task's own state.
    namespace: str = "stateful"
    window_key: str = "watermark_window"

    def __post_init__(self) -> None:
        if self.on_overlap not in OVERLAP_RULES:
            raise ValueError(
                f"on_overlap must be one of {', '.join(map(repr, OVERLAP_RULES))}, got {self.on_overlap!r}"
            )


class Watermark:
    """One try's view of one watermark: its window (planned once per run, kept in state) and its advance."""

    def __init__(
        self,
        task_try: TaskTry,
        store: WatermarkStore,
        scope: WatermarkScope,
        settings: WatermarkSettings,
        log: Any,
    ) -> None:
        self.task_try = task_try
        self.store = store
        self.scope = scope
        self.settings = settings
        self.log = log
        self._window: Window | None = None
        self._filter: BoundaryFilter | None = None

    def window(
        self, *, initial_value: Any = None, lag: timedelta | float | None = None, read_boundary: bool = False
    ) -> Window:
        """
        The window this run reads: planned on the first try from the committed mark (or
        ``initial_value``, or this run's own earlier commit after a clear) and kept in the task's
        state, so every retry of the run gets the same one whatever was committed meanwhile. With
        ``read_boundary`` it asks from just below the mark (see ``watermarks/cursors.py``) and
        :meth:`fresh` drops the records at the mark that an earlier run delivered.
        """
        if not isinstance(read_boundary, bool):
            raise WatermarkArgumentError(
                f"read_boundary must be True or False, got {read_boundary!r}; True reads from just below the mark "
                "and drops, with watermark_records(), the records an earlier run delivered there"
            )
        if self._window is not None:
            return self._window
        store = self.store
        state = self.task_try.namespaced(self.settings.namespace)
        window, ended = self._kept_window()
        if window is None:
            document = WatermarkDocument.parse(store.read(), store.locate())
            window = plan_window(
                document,
                run_id=self.task_try.run_id,
                map_index=self.scope.map_index,
                initial_value=self.encode(initial_value, "initial_value", allow_none=True),
                lag=lag,
                try_number=self.task_try.info.try_number,
                now=utcnow_iso(),
                read_boundary=read_boundary,
                previous=ended,
            )
            state.set(self.settings.window_key, window.model_dump(mode="json"))
            if ended is None and document is not None and document.commits and not window.reread_own:
                self._say_when_a_clear_cannot_find_its_window(document)
            if window.reread_own:
                self.log.info(
                    "This run committed the watermark before and was cleared since: re-reading its own window "
                    "from %s (the mark is at %s now, in %s)",
                    json.dumps(window.base, default=str),
                    json.dumps(document.value if document else None, default=str),
                    store.locate(),
                )
            else:
                self.log.info(
                    "Watermark window: from %s (mark %s, version %s, lag %s) in %s",
                    json.dumps(window.since, default=str),
                    json.dumps(window.base, default=str),
                    window.base_version,
                    window.lag,
                    store.name,
                )
        else:
            self.log.info(
                "Reading the same window as try %s: from %s (mark %s, version %s)",
                window.try_number,
                json.dumps(window.since, default=str),
                json.dumps(window.base, default=str),
                window.base_version,
            )
        self._window = window
        return window

    def _kept_window(self) -> tuple[Window | None, Window | None]:
        """(the window this life planned, the window of a life of this run that ended in success)."""
        state = self.task_try.namespaced(self.settings.namespace)
        key = self.settings.window_key
        window = Window.parse(state.get(key), self.task_try.locate(key, self.settings.namespace))
        if window is not None and self.task_try.ended_life(window.try_number) is not None:
            # A person cleared the run after its success: plan afresh, re-reading its own window
            # (from this one when the commit entry that records it was pushed out of the document).
            return None, window
        return window, None

    def _say_when_a_clear_cannot_find_its_window(self, document: WatermarkDocument) -> None:
        """A run cleared after success whose window is neither kept nor in the document: say so plainly."""
        if len(document.commits) < MAX_COMMITS or (self.task_try.info.try_number or 0) <= 1:
            return  # nothing was pushed out yet, or this is the run's first try: no earlier window
        self.log.warning(
            "If this run succeeded before and was cleared, its window is no longer known: its commit is not "
            "among the last %s kept in %s and its task state was dropped. It reads from the current mark, as a "
            "new run would; to re-read its old window, reset the mark to where it started (`%s`).",
            len(document.commits),
            self.store.locate(),
            watermark_command("reset", self.scope, "--to VALUE"),
        )

    def load(self, *, initial_value: Any = None) -> Any:
        """The mark this run starts from, as the model (or the JSON value), or None."""
        return self.decode(self.window(initial_value=initial_value).base)

    def boundary_filter(self) -> BoundaryFilter:
        """This try's pass over the records it reads (one per try: a retry reads its window again)."""
        if self._filter is None:
            self._filter = BoundaryFilter.start(self.window())
        return self._filter

    def fresh(
        self,
        records: list[Any],
        *,
        cursor: Callable[[Any], Any],
        primary_key: tuple[str, ...] = (),
        get: Callable[[Any, str], Any],
    ) -> list[Any]:
        """
        ``records`` without the versions already delivered (the boundary records an earlier run
        delivered, and copies read twice in this try); what is kept is remembered for the commit.
        """
        seen = self.boundary_filter()
        return [r for r in records if seen.admit(record_key(r, primary_key, get), cursor(r))]

    def records(
        self,
        records: list[Any],
        *,
        cursor_field: str | Callable[[Any], Any],
        primary_key: str | Sequence[str] | None = None,
    ) -> list[Any]:
        """
        ``watermark_records`` of ``WatermarkMixin`` and of the TaskFlow handle: the arguments checked,
        then :meth:`fresh` with fields read from mappings or attributes.
        """
        cursor, names = record_reader(cursor_field, primary_key, records)
        if not self.window().read_boundary and self._filter is None:
            # Said once a try: without the boundary window the call only remembers, it drops nothing.
            self.log.warning(
                "watermark_records() drops nothing on this run: its window was planned without read_boundary=True "
                "(call watermark_window(read_boundary=True) first, on the run's first try)"
            )
        return self.fresh(list(records), cursor=cursor, primary_key=names, get=field_of)

    def advance(self, value: Any, *, boundary: dict[str, Any] | None = None) -> None:
        """
        Stage ``value``; committed once Airflow has recorded this task instance's success, with the
        records delivered near the top (``boundary``, or what :meth:`fresh` let through).
        """
        encoded = self.encode(value, "advance_watermark value", allow_none=False)
        window = self.window()
        if boundary is None:
            boundary = self._filter.delivered if self._filter is not None else {}
        store = self.store
        if not store.durable:
            self.log.info("No task instance in the context: the watermark %r is not kept", value)
            return
        task_try = self.task_try
        task_try.on_success(
            WatermarkCommit(
                key=f"watermark {self.scope.key}",
                store=store,
                window=window,
                staged=encoded,
                run_id=task_try.run_id,
                map_index=task_try.map_index,
                try_number=task_try.info.try_number,
                on_overlap=self.settings.on_overlap,
                merge=self.settings.merge,
                scope=self.scope.as_dict(),
                log=self.log,
                boundary=dict(boundary),
            ),
        )
        self.log.info(
            "Staged watermark %s (from %s); committed once this task instance's success is recorded. Reset it "
            "with `%s`",
            json.dumps(encoded, default=str),
            json.dumps(window.base, default=str),
            watermark_command("reset", self.scope, "--to VALUE"),
        )

    def encode(self, value: Any, what: str, *, allow_none: bool) -> Any:
        if value is None:
            if allow_none:
                return None
            raise ValueError(f"{what} must not be None; to start over, reset the watermark instead")
        model = self.settings.model
        if model is not None:
            if isinstance(value, model):
                return value.model_dump(mode="json")
            raise TypeError(f"{what} must be a {model.__name__} (watermark_model), got {type(value).__name__}")
        try:
            return json.loads(json.dumps(value, allow_nan=False))
        except (TypeError, ValueError) as err:
            raise ValueError(f"{what} must be a JSON value (a timestamp string or a number), got {value!r}") from err

    def decode(self, raw: Any) -> Any:
        model = self.settings.model
        if model is None or raw is None:
            return raw
        try:
            return model.model_validate(raw)
        except ValidationError as err:
            raise CorruptStateError(
                f"The watermark in {self.store.locate()} does not fit {model.__name__}: {err}. "
                f"Reset it with `{watermark_command('reset', self.scope, '--to VALUE')}`."
            ) from err
