"""
Watermarks: where the last *successful run* of a task stopped, and the pure rules that move it.

A checkpoint answers "where did this try stop" and lives as long as one task instance. A watermark
answers "where did the last successful run stop" and outlives every run: an incremental extract
reads what changed since it, and only a run whose success Airflow has recorded moves it.

One watermark is one JSON document (:class:`WatermarkDocument`)::

    {"kind": "resumable-watermark", "value": "2026-01-01T00:05:00Z", "version": 7,
     "scope": {...}, "commits": [{"run_id": ..., "base": ..., "value": ..., "version": 7, ...}, ...]}

``version`` grows by one with every commit, so a run can tell at commit time whether another run
committed since it read the document (an overlap). ``commits`` keeps the last :data:`MAX_COMMITS`,
so a cleared run that had committed finds its own entry and re-reads its own window. Everything
here is pure; the mixin (``mixins/watermark.py``) and the listener do the I/O.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from airflow.providers.resumable.state.base import JsonValue  # noqa: TC001 - pydantic reads the annotations
from airflow.providers.resumable.state.codec import decode, safe_name

if TYPE_CHECKING:
    from collections.abc import Callable

#: Commits kept in the document: enough to find a run cleared after a few later runs committed.
MAX_COMMITS = 20
OVERLAP_RULES = ("max", "fail")
#: Every watermark Variable, and every asset-store key, starts with this.
WATERMARK_PREFIX = "resumable.watermark"


class WatermarkValueError(ValueError):
    """A cursor value that is neither an ISO-8601 timestamp nor a number, or two that do not compare."""


# ---- cursor values -------------------------------------------------------------------------------


def _timestamp(value: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    # A naive timestamp is read as UTC, so it compares with an aware one instead of raising.
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def cursor_key(value: Any, what: str = "cursor value") -> tuple[int, Any]:
    """
    ``value`` as something ``<`` orders: numbers by value, ISO-8601 strings by the instant they name.

    Raises :class:`WatermarkValueError` naming ``what`` and the value for anything else (opaque
    strings, bools, None, objects): a cursor that does not order cannot say what is newer.
    """
    if _is_number(value):
        return (0, value)
    if isinstance(value, str):
        parsed = _timestamp(value)
        if parsed is not None:
            return (1, parsed)
    raise WatermarkValueError(
        f"{what} must be an ISO-8601 timestamp (such as '2026-01-01T00:00:00Z') or a number, got {value!r}"
    )


def compare_cursors(a: Any, b: Any) -> int:
    """-1, 0 or 1 as ``a`` is older than, as new as, or newer than ``b``."""
    ka, kb = cursor_key(a), cursor_key(b)
    if ka[0] != kb[0]:
        raise WatermarkValueError(f"cannot compare a number with a timestamp: {a!r} and {b!r}")
    return (ka[1] > kb[1]) - (ka[1] < kb[1])


def cursor_max(a: Any, b: Any) -> Any:
    """The newer of two cursor values (``a`` when equal); None counts as older than anything."""
    if a is None:
        return b
    if b is None:
        return a
    return b if compare_cursors(b, a) > 0 else a


def subtract_lag(value: Any, lag: timedelta | float | None) -> Any:
    """
    ``value`` moved back by ``lag``, in the same format: a timedelta for timestamps, a number for numbers.

    A timestamp keeps its ``Z`` suffix (or offset) so the API receives what it sent.
    """
    if lag is None or value is None:
        return value
    kind, parsed = cursor_key(value, "the watermark")
    if kind == 0:
        if not _is_number(lag):
            raise WatermarkValueError(f"lag must be a number for a numeric watermark ({value!r}), got {lag!r}")
        return value - lag
    if not isinstance(lag, timedelta):
        raise WatermarkValueError(f"lag must be a timedelta for a timestamp watermark ({value!r}), got {lag!r}")
    if not lag:
        return value
    moved = parsed - lag
    text = moved.isoformat()
    if value.endswith(("Z", "z")) and text.endswith("+00:00"):
        text = text[: -len("+00:00")] + "Z"
    elif _timestamp_naive(value):
        text = moved.replace(tzinfo=None).isoformat()
    return text


def _timestamp_naive(value: str) -> bool:
    return datetime.fromisoformat(value).tzinfo is None


# ---- the stored document -------------------------------------------------------------------------


class CommitEntry(BaseModel):
    """One commit: which run moved the mark, from where to where, and the version it made."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    run_id: str
    map_index: int = -1
    base: JsonValue = None
    value: JsonValue = None
    version: int = Field(ge=1)
    committed_at: str | None = None
    try_number: int | None = None
    #: Runs that committed between this run's start and its commit (an overlap), and the rule applied.
    overlapped: list[str] = Field(default_factory=list)


class WatermarkDocument(BaseModel):
    """What one watermark Variable, or one asset-store key, holds."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    kind: Literal["resumable-watermark"] = "resumable-watermark"
    value: JsonValue = None
    version: int = Field(default=0, ge=0)
    #: dag_id, task_id, map_index and name: what the CLI lists, whatever store holds the document.
    scope: dict[str, Any] = Field(default_factory=dict)
    commits: list[CommitEntry] = Field(default_factory=list)

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
) -> Window:
    """
    The window a run starting now reads.

    Its base is the committed value, or ``initial_value`` when nothing was committed; but a run that
    finds its own commit in the document (a person cleared it after it succeeded) starts again from
    the base that commit started from, so it re-reads its own window rather than skipping it or
    reading everything.
    """
    version = document.version if document is not None else 0
    own = document.own_commit(run_id, map_index) if document is not None else None
    if own is not None:
        base, reread = own.base, True
    else:
        base = document.value if document is not None and document.value is not None else initial_value
        reread = False
    return Window(
        base=base,
        base_version=version,
        since=subtract_lag(base, lag) if lag else base,
        lag=lag_as_json(lag),
        reread_own=reread,
        try_number=try_number,
        planned_at=now,
    )


@dataclass(frozen=True)
class CommitPlan:
    """What the listener does with a staged value: write ``document``, or (``document`` None) nothing."""

    document: WatermarkDocument | None
    #: Runs that committed since this run planned its window; empty when there was no overlap.
    overlapped: tuple[str, ...]
    message: str

    @property
    def commits(self) -> bool:
        return self.document is not None


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
) -> CommitPlan:
    """
    Decide the commit of ``staged``, reading ``current`` as the listener found it just now.

    Without an overlap (the version is the one the window was planned from) the staged value
    becomes the mark. With one, ``on_overlap="max"`` commits ``merge(committed, staged)``, the newer of
    the two for monotonic cursors, so neither run's progress is lost and the mark never moves back;
    ``on_overlap="fail"`` commits nothing and the next run re-reads from the older mark.
    """
    if on_overlap not in OVERLAP_RULES:
        raise ValueError(f"on_overlap must be one of {', '.join(OVERLAP_RULES)}, got {on_overlap!r}")
    version = current.version if current is not None else 0
    overlapped: tuple[str, ...] = ()
    value = staged
    if version != window.base_version:
        others = current.commits_since(window.base_version) if current is not None else []
        names = tuple(dict.fromkeys(e.run_id for e in others if e.run_id != run_id)) or (
            f"a change to version {version}",
        )
        overlapped = names
        committed = current.value if current is not None else None
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
    else:
        message = f"committed {staged!r} (from {window.base!r})"
    entry = CommitEntry(
        run_id=run_id,
        map_index=map_index,
        base=window.base,
        value=value,
        version=version + 1,
        committed_at=now,
        try_number=try_number,
        overlapped=list(overlapped),
    )
    commits = [*(current.commits if current is not None else []), entry][-MAX_COMMITS:]
    document = WatermarkDocument(
        value=value,
        version=version + 1,
        scope=scope if scope is not None else (current.scope if current is not None else {}),
        commits=commits,
    )
    return CommitPlan(document, overlapped, message + f"; version {version + 1}")


def reset_document(
    current: WatermarkDocument | None, value: Any, *, now: str, scope: dict[str, Any] | None = None
) -> WatermarkDocument:
    """The document after a person set the mark to ``value``: a new version, so a run in flight sees an overlap."""
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
