"""
Watermarks: where the last *successful run* of a task stopped, and the pure rules that move it.

A checkpoint answers "where did this try stop" and lives as long as one task instance. A watermark
answers "where did the last successful run stop" and outlives every run: an incremental extract
reads what changed since it, and only a run whose success Airflow has recorded moves it.

One watermark is one JSON document (:class:`WatermarkDocument`)::

    {"kind": "resumable-watermark", "value": "2026-01-01T00:05:00Z", "version": 7,
     "scope": {...}, "commits": [{"run_id": ..., "base": ..., "value": ..., "version": 7, ...}, ...]}

``version`` grows by one with every commit that changes the document, so a run can tell at commit
time whether another run committed since it read the document (an overlap). A run that delivered
nothing new writes nothing, so quiet runs never push an older run's entry out of ``commits`` (the
last :data:`MAX_COMMITS` commits that moved something): a cleared run that had committed finds its
own entry and re-reads its own window. The mark never moves back: a staged value older than the
mark (a re-read of an old window, a run that read fewer records) leaves it where it is.

``boundary`` holds the records already delivered at the top of the mark (a hash of each record's
key and cursor value, with the cursor value): a run reading the boundary (``read_boundary``) asks
from one unit below the mark (one second, or 1), so a strict (``>``) API and an inclusive (``>=``)
one both return the records written late at the mark, and :class:`BoundaryFilter` drops the ones
already delivered. Everything here is pure; the mixin (``mixins/watermark.py``) and the listener do
the I/O.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from airflow.providers.resumable.state.base import JsonValue  # noqa: TC001 - pydantic reads the annotations
from airflow.providers.resumable.state.codec import decode, safe_name
from airflow.providers.resumable.watermarks.cursors import (
    Boundary,
    WatermarkValueError,
    boundary_hash,
    boundary_step,
    compare_cursors,
    cursor_key,
    cursor_max,
    keep_boundary,
    lag_from_json,
    normalize_key,
    read_since,
    record_key,
    subtract_lag,
)

if TYPE_CHECKING:
    from collections.abc import Callable

#: Commits kept in the document: enough to find a run cleared after a few later runs committed.
MAX_COMMITS = 20
OVERLAP_RULES = ("max", "fail")
#: Every watermark Variable, and every asset-store key, starts with this.
WATERMARK_PREFIX = "resumable.watermark"

#: The cursor helpers live in ``cursors.py``; they stay importable from here, where callers found them.
__all__ = [
    "MAX_COMMITS",
    "OVERLAP_RULES",
    "WATERMARK_PREFIX",
    "Boundary",
    "BoundaryFilter",
    "CommitEntry",
    "CommitPlan",
    "WatermarkDocument",
    "WatermarkValueError",
    "Window",
    "boundary_hash",
    "boundary_step",
    "check_reset_value",
    "compare_cursors",
    "cursor_key",
    "cursor_max",
    "describe_document",
    "keep_boundary",
    "lag_as_json",
    "lag_from_json",
    "next_boundary",
    "normalize_key",
    "plan_commit",
    "plan_window",
    "read_since",
    "record_key",
    "reset_document",
    "subtract_lag",
    "watermark_key",
]


# ---- the stored document -------------------------------------------------------------------------


class CommitEntry(BaseModel):
    """One commit: which run moved the mark, from where to where, and the version it made."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    run_id: str
    map_index: int = -1
    #: Who committed, beside run_id and map_index (what Airflow's asset-state columns cannot say
    #: when the write comes through an in-process API): None in documents older than 0.2.0.
    dag_id: str | None = None
    task_id: str | None = None
    base: JsonValue = None
    #: What the run asked from (the base, minus a lag or a boundary step): a clear asks the same.
    since: JsonValue = None
    value: JsonValue = None
    version: int = Field(ge=1)
    committed_at: str | None = None
    try_number: int | None = None
    #: Runs that committed between this run's start and its commit (an overlap), and the rule applied.
    overlapped: list[str] = Field(default_factory=list)
    #: The boundary this run read against, so a clear of it re-reads its window against the same one.
    base_boundary: Boundary = Field(default_factory=dict)


class WatermarkDocument(BaseModel):
    """What one watermark Variable, or one asset-store key, holds."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    kind: Literal["resumable-watermark"] = "resumable-watermark"
    value: JsonValue = None
    version: int = Field(default=0, ge=0)
    #: dag_id, task_id, map_index and name: what the CLI lists, whatever store holds the document.
    scope: dict[str, Any] = Field(default_factory=dict)
    commits: list[CommitEntry] = Field(default_factory=list)
    #: The records delivered at the top of the mark (see the module doc); empty without read_boundary.
    boundary: Boundary = Field(default_factory=dict)

    @classmethod
    def parse(cls, raw: Any, location: str) -> WatermarkDocument | None:
        """Read a stored document strictly: anything else is named as bad state, never taken as "no mark"."""
        if raw is None:
            return None
        advice = (
            "Refusing to guess where the last successful run stopped: reset it with `airflow resumable "
            "watermark reset` (--to VALUE, or without to delete it and start from the initial value)."
        )
        return decode(cls, raw, location, what="watermark", advice=advice)

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def own_commit(self, run_id: str, map_index: int) -> CommitEntry | None:
        """The latest commit this run made, if it is still among the kept ones."""
        for entry in reversed(self.commits):
            if entry.run_id == run_id and entry.map_index == map_index:
                return entry
        return None

    def commits_since(self, version: int) -> list[CommitEntry]:
        return [entry for entry in self.commits if entry.version > version]


def watermark_key(
    dag_id: str, task_id: str, map_index: int = -1, name: str | None = None, region_index: int | None = None
) -> str:
    """
    ``resumable.watermark.<dag>.<task>[.<map>][.r<iteration>][.<name>].<hash>``: the Variable, and the asset-store key.

    The readable parts let a person find it in the UI; the hash of the exact ids keeps two tasks
    apart whose ids only differ in characters the name cannot hold (``a.b``/``c`` and ``a``/``b.c``).
    A Task Loop's iteration (Airflow 3.4) keeps its own mark across runs, as a map index does; a
    task outside a loop hashes as before. At most 250 characters, the Variable key limit.
    """
    ids: list[Any] = [dag_id, task_id, map_index, name]
    if region_index is not None:
        ids.append(region_index)
    payload = json.dumps(ids, separators=(",", ":"))
    digest = hashlib.sha256(payload.encode()).hexdigest()[:16]
    parts = [safe_name(dag_id, 80), safe_name(task_id, 80)]
    if map_index >= 0:
        parts.append(str(map_index))
    if region_index is not None:
        parts.append(f"r{region_index}")
    if name:
        parts.append(safe_name(name, 40))
    return f"{WATERMARK_PREFIX}.{'.'.join(parts)}.{digest}"[:250]


# ---- the window of one run -----------------------------------------------------------------------


class Window(BaseModel):
    """
    What one run reads: from ``since`` (the base minus the lag) on. Recorded in the task's own state
    on the first try, so every retry of the run reads the same window.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    kind: Literal["resumable-watermark-window"] = "resumable-watermark-window"
    base: JsonValue = None
    #: The document's version when the window was planned; another at commit time means an overlap.
    base_version: int = Field(default=0, ge=0)
    since: JsonValue = None
    #: The lag as recorded (seconds for a timedelta), for the manifest.
    lag: JsonValue = None
    #: This run had committed before (it was cleared after success): it re-reads its own window.
    reread_own: bool = False
    try_number: int | None = None
    planned_at: str | None = None
    #: The run asks from below the mark and drops the records in ``boundary`` (already delivered).
    read_boundary: bool = False
    boundary: Boundary = Field(default_factory=dict)
    #: The run that planned it, so only that run's clear takes it for its own (a store shared by
    #: several task instances, as the test stores are, holds others' windows under the same key).
    run_id: str | None = None
    map_index: int | None = None

    @classmethod
    def parse(cls, raw: Any, location: str) -> Window | None:
        if raw is None:
            return None
        advice = "Delete the key with `airflow resumable state delete`, then clear the task."
        return decode(cls, raw, location, what="watermark window", advice=advice)


def lag_as_json(lag: timedelta | float | None) -> JsonValue:
    if isinstance(lag, timedelta):
        return lag.total_seconds()
    return lag


def plan_window(
    document: WatermarkDocument | None,
    *,
    run_id: str,
    map_index: int,
    initial_value: Any,
    lag: timedelta | float | None = None,
    try_number: int | None = None,
    now: str | None = None,
    read_boundary: bool = False,
    previous: Window | None = None,
) -> Window:
    """
    The window a run starting now reads.

    Its base is the committed value, or ``initial_value`` when nothing was committed; but a run that
    finds its own commit in the document (a person cleared it after it succeeded) starts again from
    the base that commit started from, so it re-reads its own window rather than skipping it or
    reading everything. With ``read_boundary`` a committed base is read from one unit below (see
    ``cursors.boundary_step``) and the window carries the records already delivered there; the initial
    value is where the user asked the first run to start, so it is sent as it is. ``previous`` is
    the window this run read before it succeeded, when its task state still has it (the native
    store keeps a finished life's state): it stands in for the commit entry once that was pushed
    out of the document by later commits.
    """
    version = document.version if document is not None else 0
    own = document.own_commit(run_id, map_index) if document is not None else None
    boundary: Boundary = {}
    if own is not None:
        base, reread, boundary = own.base, True, dict(own.base_boundary)
        # Ask from where it asked the first time (0.1 entries have no since: from its base).
        since = own.since if own.since is not None else read_since(base, lag, boundary=False)
    elif (
        previous is not None
        and previous.base is not None
        and (previous.run_id, previous.map_index)
        == (
            run_id,
            map_index,
        )
    ):
        base, reread, boundary, since = previous.base, True, dict(previous.boundary), previous.since
    elif document is not None and document.value is not None:
        base, reread, boundary = document.value, False, dict(document.boundary)
        since = read_since(base, lag, boundary=read_boundary)
    else:
        base, reread = initial_value, False
        since = read_since(base, lag, boundary=False)
    return Window(
        base=base,
        base_version=version,
        since=since,
        lag=lag_as_json(lag),
        reread_own=reread,
        try_number=try_number,
        planned_at=now,
        read_boundary=read_boundary,
        boundary=boundary if read_boundary else {},
        run_id=run_id,
        map_index=map_index,
    )


@dataclass(frozen=True)
class CommitPlan:
    """What the listener does with a staged value: write ``document``, or (``document`` None) nothing."""

    document: WatermarkDocument | None
    #: Runs that committed since this run planned its window; empty when there was no overlap.
    overlapped: tuple[str, ...]
    message: str
    #: Nothing to write because nothing moved (a quiet run, a re-read): not an error, unlike a refusal.
    quiet: bool = False

    @property
    def commits(self) -> bool:
        return self.document is not None


def _older(value: Any, than: Any) -> bool:
    """``value`` is an older cursor than ``than``; False for marks that do not order (models)."""
    try:
        return compare_cursors(value, than) < 0
    except WatermarkValueError:
        return False


def next_boundary(current: WatermarkDocument | None, window: Window, delivered: Boundary, value: Any) -> Boundary:
    """The records a run starting from ``value`` reads again, of those delivered up to now."""
    if not window.read_boundary or value is None:
        return {}
    since = read_since(value, lag_from_json(window.lag, value), boundary=True)
    kept = dict(current.boundary) if current is not None else {}
    kept.update(delivered)
    return keep_boundary(kept, since)


def plan_commit(
    current: WatermarkDocument | None,
    window: Window,
    staged: Any,
    *,
    run_id: str,
    map_index: int,
    try_number: int | None,
    now: str,
    on_overlap: str,
    merge: Callable[[Any, Any], Any] = cursor_max,
    scope: dict[str, Any] | None = None,
    boundary: Boundary | None = None,
) -> CommitPlan:
    """
    Decide the commit of ``staged``, reading ``current`` as the listener found it just now.

    Without an overlap (the version is the one the window was planned from) the staged value
    becomes the mark. With one, ``on_overlap="max"`` commits ``merge(committed, staged)``, the newer of
    the two for monotonic cursors, so neither run's progress is lost and the mark never moves back;
    ``on_overlap="fail"`` commits nothing and the next run re-reads from the older mark. A run that
    re-read its own window merges the same way. Whatever the rule, a staged cursor older than the
    mark leaves the mark; and a commit that would change nothing (no newer value, no newly
    delivered boundary record) writes nothing, so it neither adds a version nor evicts a commit.
    ``boundary`` is what the run delivered near its top (see :class:`BoundaryFilter`).
    """
    if on_overlap not in OVERLAP_RULES:
        raise ValueError(f"on_overlap must be one of {', '.join(OVERLAP_RULES)}, got {on_overlap!r}")
    version = current.version if current is not None else 0
    committed = current.value if current is not None else None
    overlapped: tuple[str, ...] = ()
    value = staged
    if version != window.base_version:
        others = current.commits_since(window.base_version) if current is not None else []
        names = tuple(dict.fromkeys(e.run_id for e in others if e.run_id != run_id)) or (
            f"a change to version {version}",
        )
        overlapped = names
        if on_overlap == "fail":
            return CommitPlan(
                None,
                overlapped,
                f"not committing {staged!r}: {', '.join(names)} committed {committed!r} (version {version}) after "
                f"this run read version {window.base_version}, and on_overlap='fail'. The mark stays at "
                f"{committed!r}; the next run reads from there.",
            )
        value = merge(committed, staged) if committed is not None else staged
        message = (
            f"{', '.join(names)} committed {committed!r} (version {version}) after this run read version "
            f"{window.base_version}; on_overlap='max' commits the newer of the two: {value!r}"
        )
    elif window.reread_own and committed is not None:
        # A cleared run re-read an old window: its top is usually behind the mark later runs moved.
        value = merge(committed, staged)
        message = f"re-read its own window up to {staged!r}; the mark is the newer of that and {committed!r}: {value!r}"
    else:
        message = f"committed {staged!r} (from {window.base!r})"
    if committed is not None and _older(value, committed):
        value = committed
        message = f"staged {staged!r}, older than the mark {committed!r}: the mark never moves back"
    kept = next_boundary(current, window, dict(boundary or {}), value)
    if current is not None and value == committed and kept == current.boundary:
        return CommitPlan(None, overlapped, f"nothing new ({message}); the mark stays at {committed!r}", quiet=True)
    who = scope or (current.scope if current is not None else {})
    entry = CommitEntry(
        run_id=run_id,
        map_index=map_index,
        dag_id=who.get("dag_id"),
        task_id=who.get("task_id"),
        base=window.base,
        since=window.since,
        value=value,
        version=version + 1,
        committed_at=now,
        try_number=try_number,
        overlapped=list(overlapped),
        base_boundary=window.boundary,
    )
    commits = [*(current.commits if current is not None else []), entry][-MAX_COMMITS:]
    document = WatermarkDocument(
        value=value,
        version=version + 1,
        scope=scope if scope is not None else (current.scope if current is not None else {}),
        commits=commits,
        boundary=kept,
    )
    return CommitPlan(document, overlapped, message + f"; version {version + 1}")


@dataclass
class BoundaryFilter:
    """
    One run's pass over the records it read: which to deliver, the highest cursor, and the records
    delivered near the top (the next run's boundary). Pure, so the HTTP operator can keep
    ``high`` and ``delivered`` in its checkpoint and resume it on a retry.
    """

    window: Window
    high: Any = None
    delivered: Boundary = field(default_factory=dict)

    @classmethod
    def start(cls, window: Window, high: Any = None, delivered: Boundary | None = None) -> BoundaryFilter:
        return cls(window, high, dict(delivered or {}))

    def admit(self, key: Any, cursor: Any) -> bool:
        """Whether the record version (``key``, ``cursor``) is new: not delivered by an earlier run or this one."""
        self.high = cursor_max(self.high, cursor)
        digest = boundary_hash(key, cursor)
        if not self.window.read_boundary:
            return True
        if digest in self.window.boundary or digest in self.delivered:
            return False
        self.delivered[digest] = cursor
        # Only what the next run reads again is worth keeping; prune as the top moves up.
        since = read_since(self.high, lag_from_json(self.window.lag, self.high), boundary=True)
        if len(self.delivered) > 64 and since is not None:
            self.delivered = keep_boundary(self.delivered, since)
        return True


def check_reset_value(current: Any, value: Any) -> None:
    """
    Refuse a reset that would change what kind of value the mark is (a number, a timestamp, an
    object): the next run would send it to an API that expects the other kind, or fail comparing.
    """
    if current is None:
        return
    kinds = {0: "a number", 1: "a timestamp"}

    def kind(v: Any) -> str:
        if isinstance(v, dict):
            return "a JSON object"
        if isinstance(v, list):
            return "a JSON list"
        try:
            return kinds[cursor_key(v)[0]]
        except WatermarkValueError:
            return "an opaque string" if isinstance(v, str) else type(v).__name__

    was, new = kind(current), kind(value)
    if was == "a timestamp" and new != was:
        cursor_key(value, "the new watermark")  # names the expected form
    if was != new:
        raise WatermarkValueError(
            f"the new watermark {value!r} is {new}, but the mark is {was} ({current!r}); the next run would fail or "
            f"send the API the wrong kind of value. Reset to {was}, or delete the watermark (reset without --to) to "
            "start from the initial value."
        )


def reset_document(
    current: WatermarkDocument | None, value: Any, *, now: str, scope: dict[str, Any] | None = None
) -> WatermarkDocument:
    """
    The document after a person set the mark to ``value``: a new version, so a run in flight sees an
    overlap. The boundary goes: its records belong to the old mark. A change of kind is refused.
    """
    check_reset_value(current.value if current is not None else None, value)
    version = (current.version if current is not None else 0) + 1
    entry = CommitEntry(
        run_id="(reset by hand)",
        base=current.value if current is not None else None,
        value=value,
        version=version,
        committed_at=now,
    )
    commits = [*(current.commits if current is not None else []), entry][-MAX_COMMITS:]
    return WatermarkDocument(
        value=value,
        version=version,
        scope=scope if scope is not None else (current.scope if current is not None else {}),
        commits=commits,
    )


def describe_document(document: WatermarkDocument) -> str:
    """One line for the CLI: the mark, and who moved it last."""
    last = document.commits[-1] if document.commits else None
    text = f"watermark {json.dumps(document.value, default=str)} (version {document.version})"
    if last is not None:
        text += f", committed by {last.run_id} at {last.committed_at} from {json.dumps(last.base, default=str)}"
        if last.overlapped:
            text += f" after an overlap with {', '.join(last.overlapped)}"
    return text
