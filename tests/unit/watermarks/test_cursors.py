"""The boundary helpers: how far below the mark a run asks, and how a record version is identified."""

from __future__ import annotations

from datetime import timedelta

import pytest

from airflow.providers.resumable.watermarks.cursors import (
    WatermarkValueError,
    boundary_hash,
    boundary_step,
    keep_boundary,
    lag_from_json,
    normalize_key,
    read_since,
    record_key,
)


@pytest.mark.parametrize(
    ("base", "lag", "boundary", "expected"),
    [
        (8, None, False, 8),  # the mark itself: a reader that does not read the boundary
        (8, None, True, 7),  # one unit below: a strict source returns the records at 8
        (8.5, None, True, 7.5),
        ("2026-01-01T00:39:00Z", None, True, "2026-01-01T00:38:59Z"),
        ("2026-01-01T00:39:00+02:00", None, True, "2026-01-01T00:38:59+02:00"),
        ("2026-01-01T00:39:00Z", timedelta(minutes=5), True, "2026-01-01T00:34:00Z"),  # a lag replaces the step
        (8, 3, True, 5),
        (None, None, True, None),
    ],
)
def test_where_a_run_asks_from(base, lag, boundary, expected):
    assert read_since(base, lag, boundary=boundary) == expected


def test_the_step_and_the_recorded_lag_fit_the_kind_of_the_mark():
    assert boundary_step(3) == 1
    assert boundary_step("2026-01-01T00:00:00Z") == timedelta(seconds=1)
    assert lag_from_json(300.0, "2026-01-01T00:00:00Z") == timedelta(minutes=5)
    assert lag_from_json(3, 10) == 3
    assert lag_from_json(None, 10) is None


def test_the_boundary_keeps_what_the_next_run_reads_again():
    entries = {"a": 7, "b": 8, "c": 9}
    assert keep_boundary(entries, 8) == {"b": 8, "c": 9}
    assert keep_boundary(entries, None) == entries


@pytest.mark.parametrize(
    ("record", "key", "expected"),
    [
        ({"id": 1, "at": 5}, ("id",), [1]),
        ({"t": "x", "id": 1}, ("t", "id"), ["x", 1]),
        ({"id": 1, "at": 5}, (), {"id": 1, "at": 5}),  # no key: the whole record
    ],
)
def test_a_record_is_identified_by_its_key_or_as_a_whole(record, key, expected):
    assert record_key(record, key, lambda r, name: r.get(name)) == expected


def test_a_record_without_its_key_is_named():
    with pytest.raises(WatermarkValueError, match=r"record has no 'id' \(primary_key\).*record keys: \['at'\]"):
        record_key({"at": 5}, ("id",), lambda r, name: r.get(name))


def test_a_version_is_key_and_cursor():
    assert boundary_hash([1], 8) != boundary_hash([1], 9), "an update is a new version"
    assert boundary_hash([1], 8) != boundary_hash([2], 8), "two records at one cursor value are two"
    assert boundary_hash({"b": 1, "a": 2}, 8) == boundary_hash({"a": 2, "b": 1}, 8), "key order does not matter"


@pytest.mark.parametrize(("given", "expected"), [(None, ()), ("id", ("id",)), (["t", "id"], ("t", "id"))])
def test_a_primary_key_is_one_name_or_several(given, expected):
    assert normalize_key(given) == expected


@pytest.mark.parametrize("bad", [[], [""], [1], "", 5, {"id"}, {"id": 1}])
def test_a_primary_key_that_names_nothing_is_refused(bad):
    with pytest.raises(ValueError, match="primary_key must be a field name or a list of field names"):
        normalize_key(bad)
