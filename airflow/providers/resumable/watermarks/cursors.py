"""
Cursor values and the boundary of a mark: how values order, how far back a run asks, and which
records near the top were already delivered. Pure; ``rules.py`` builds the documents on it.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.resumable.state.base import JsonValue

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

#: hash of (record key, cursor value) -> cursor value: the records delivered at the top of a mark.
Boundary = dict[str, JsonValue]


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


def boundary_step(value: Any) -> timedelta | int:
    """
    How far below the mark a run reading the boundary asks: one second for a timestamp, 1 for a number.

    Any value below the mark makes a strict (``>``) API return the records *at* the mark; the unit
    is small so the records re-read (and dropped by key) are few, and coarse enough for APIs that
    compare timestamps to the second.
    """
    return 1 if cursor_key(value, "the watermark")[0] == 0 else timedelta(seconds=1)


def lag_from_json(lag: JsonValue, value: Any) -> timedelta | float | None:
    """The lag as a window records it (seconds for a timestamp mark), back in the form ``subtract_lag`` takes."""
    if lag is None or value is None or not _is_number(lag):
        return None
    return timedelta(seconds=lag) if cursor_key(value, "the watermark")[0] == 1 else lag  # type: ignore[arg-type]


def read_since(base: Any, lag: timedelta | float | None, *, boundary: bool) -> Any:
    """Where a run from ``base`` asks from: minus the lag, or (reading the boundary) one unit below it."""
    if base is None:
        return None
    if lag:
        return subtract_lag(base, lag)
    if boundary:
        return subtract_lag(base, boundary_step(base))
    return base


def boundary_hash(key: Any, cursor: Any) -> str:
    """
    The identity of one record version: its key (the ``primary_key`` values, or the whole record
    when there is no key) and its cursor value, as a short hash kept with the mark.
    """
    payload = json.dumps([key, cursor], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def record_key(record: Any, primary_key: tuple[str, ...] | None, get: Callable[[Any, str], Any]) -> Any:
    """
    What identifies ``record`` at the boundary: its ``primary_key`` values (read with ``get``), or,
    without a key, the whole record, so an identical copy is dropped and a changed one delivered.
    """
    if not primary_key:
        return record
    values = [get(record, name) for name in primary_key]
    missing = [name for name, value in zip(primary_key, values, strict=True) if value is None]
    if missing:
        shown = sorted(record) if isinstance(record, dict) else type(record).__name__
        raise WatermarkValueError(
            f"record has no {', '.join(map(repr, missing))} (primary_key), so its boundary copy cannot be told "
            f"apart; record keys: {shown}"
        )
    return values


def normalize_key(primary_key: str | Sequence[str] | None, what: str = "primary_key") -> tuple[str, ...]:
    """``"id"`` or ``["tenant", "id"]`` as a tuple of names; anything else is refused by name."""
    if primary_key is None:
        return ()
    if isinstance(primary_key, str):
        names: tuple[Any, ...] = (primary_key,)
    elif isinstance(primary_key, list | tuple):
        names = tuple(primary_key)
    else:
        names = ()  # a number, a set, a mapping: not a field name nor an ordered list of them
    if not names or not all(isinstance(n, str) and n.strip() for n in names):
        raise ValueError(f"{what} must be a field name or a list of field names, got {primary_key!r}")
    return names


def keep_boundary(entries: dict[str, Any], since: Any) -> Boundary:
    """The entries a run asking from ``since`` reads again: cursor at or after it."""
    if since is None:
        return dict(entries)
    return {h: c for h, c in entries.items() if compare_cursors(c, since) >= 0}
