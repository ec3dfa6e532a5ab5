"""``Incremental``: how ``ResumablePaginatedHttpOperator`` reads only what changed since its last successful run."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from airflow.providers.resumable.operators.pagination import get_path
from airflow.providers.resumable.watermarks.rules import (
    BoundaryFilter,
    WatermarkValueError,
    cursor_key,
    normalize_key,
    record_key,
)


def _templated(value: Any) -> bool:
    return isinstance(value, str) and "{{" in value


@dataclasses.dataclass(frozen=True)
class Incremental:
    """
    Read only the records changed since the last successful run, by a cursor field in each record.

    Every page's request carries ``param`` = the committed watermark, less one second (or 1 for a
    numeric cursor) so that an API comparing strictly (``updated_at > since``) also returns the
    records written late *at* the mark, less ``lag`` when given (``initial_value``, as it is, before
    the first success). The records an earlier run already delivered there are dropped, by their
    ``primary_key`` and cursor value, before they are written: across successful runs every record
    version is written once, on strict and inclusive (``>=``) APIs alike. The highest
    ``cursor_field`` seen becomes the new watermark once the run's success is recorded.
    ``cursor_field`` values must be ISO-8601 timestamps or numbers.

    :param cursor_field: dotted path to the cursor in each record (``"updated_at"``, ``"meta.version"``).
    :param param: the request parameter (in ``data``: the query string of a GET) to send it as.
    :param initial_value: where the first run starts (a timestamp string or a number; may be a Jinja
        template such as ``"{{ data_interval_start.isoformat() }}"``); None sends no parameter, so
        the first run reads everything.
    :param lag: re-read this much before the mark, for records that appear late with an older cursor:
        a ``timedelta`` for timestamps, a number for numeric cursors. Records inside the lag are read
        again by the next run and dropped when already delivered (their keys are kept with the mark).
    :param primary_key: the field (dotted path) or fields that identify a record, such as ``"id"``.
        A record is one version per (key, cursor value): an update with a newer cursor is written
        again, a copy read a second time is not. Without a key the whole record is its identity: an
        identical copy is dropped, and a copy whose content changed without its cursor moving is
        written again. Give one when pages carry fields that change on every read (a fetch time).
    :param read_boundary: False sends the mark itself (less ``lag``) and drops nothing: for an API
        whose cursor is unique and strictly increasing (an auto-increment id), where no record can
        appear late at the mark.
    """

    cursor_field: str
    param: str = "since"
    initial_value: Any = None
    lag: timedelta | float | None = None
    primary_key: str | tuple[str, ...] | None = None
    read_boundary: bool = True

    def __post_init__(self) -> None:
        # A list (as JSON or a DAG gives it) becomes a tuple, so the frozen spec stays hashable.
        key = normalize_key(self.primary_key, "Incremental primary_key")
        object.__setattr__(self, "primary_key", key or None)
        if not isinstance(self.read_boundary, bool):
            raise ValueError(f"Incremental read_boundary must be True or False, got {self.read_boundary!r}")
        for name in ("cursor_field", "param"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"Incremental {name} must be a non-empty string, got {value!r}")
        if self.initial_value is not None and not _templated(self.initial_value):
            try:
                cursor_key(self.initial_value, "Incremental initial_value")
            except WatermarkValueError as err:
                raise ValueError(str(err)) from None
        lag = self.lag
        if lag is not None:
            numeric = isinstance(lag, int | float) and not isinstance(lag, bool)
            ok = lag >= timedelta(0) if isinstance(lag, timedelta) else numeric and lag >= 0
            if not ok:
                raise ValueError(f"Incremental lag must be a timedelta or a number >= 0, got {lag!r}")
            if self.initial_value is not None and not _templated(self.initial_value):
                kind = cursor_key(self.initial_value)[0]
                if (kind == 0) != numeric:
                    raise ValueError(
                        f"Incremental lag {lag!r} does not fit initial_value {self.initial_value!r}: a timestamp "
                        "cursor takes a timedelta, a numeric one a number"
                    )

    @classmethod
    def build(cls, spec: Incremental | Mapping[str, Any]) -> Incremental:
        """From itself or from a dict of its fields, such as ``{"cursor_field": "updated_at"}``."""
        if isinstance(spec, Incremental):
            return spec
        if not isinstance(spec, Mapping):
            raise TypeError(f"incremental must be an Incremental or a dict of its fields, got {type(spec).__name__}")
        allowed = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(spec) - allowed)
        if unknown:
            raise ValueError(f"unknown incremental option(s) {unknown}; allowed: {sorted(allowed)}")
        if "cursor_field" not in spec:
            raise ValueError(f"incremental needs a cursor_field, got {dict(spec)!r}")
        return cls(**spec)

    def fresh(self, records: list[Any], page: int, seen: BoundaryFilter) -> list[Any]:
        """
        The records of ``page`` not delivered before (see ``primary_key``); ``seen`` keeps the highest
        cursor and the delivered boundary. A record without a cursor (or a key) is an error.
        """
        kept = []
        names = normalize_key(self.primary_key)  # a tuple already (__post_init__); typed for the checker
        for n, record in enumerate(records):
            value = get_path(record, self.cursor_field)
            if value is None:
                raise ValueError(
                    f"page {page}, record {n}: no {self.cursor_field!r} (incremental cursor_field), so the run cannot "
                    f"say how far it read; record keys: {sorted(record) if isinstance(record, Mapping) else record!r}"
                )
            try:
                if seen.admit(record_key(record, names, get_path), value):
                    kept.append(record)
            except WatermarkValueError as err:
                raise ValueError(f"page {page}, record {n}, {self.cursor_field!r}: {err}") from None
        return kept

    def with_param(self, data: Any, since: Any) -> dict[str, Any]:
        """The operator's ``data`` with ``param`` set to ``since``; ``data`` must be a dict (or None)."""
        if data is not None and not isinstance(data, Mapping):
            raise ValueError(
                f"incremental adds {self.param!r} to the request's data, which must then be a dict of parameters "
                f"(or None), got {type(data).__name__}: {data!r}"
            )
        return {**(data or {}), self.param: since}
