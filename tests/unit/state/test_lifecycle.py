"""The pure lifecycle rules, as tables: which life of a task instance a stored value belongs to."""

from __future__ import annotations

from datetime import timedelta

import pytest

from airflow.providers.resumable.state.codec import FinishedMarker
from airflow.providers.resumable.state.lifecycle import (
    TryInfo,
    ended_life,
    finished_before,
    foreign_to,
    outlives_retention,
)

NOW = TryInfo(try_number=3, max_tries=4, try_stamp="ti-3", run_key="2026-01-01T00:00:00", clear_number=1)

FOREIGN = [
    # (case, stored, foreign?)
    ("an earlier try of this run", TryInfo(2, 4, "ti-2", NOW.run_key, 1), None),
    ("this very try", TryInfo(3, 4, "ti-3", NOW.run_key, 1), None),
    ("an earlier life (fewer clears)", TryInfo(1, 1, "ti-1", NOW.run_key, 0), None),
    ("nothing known", TryInfo(), None),
    ("another DAG run row", TryInfo(2, 4, "ti-2", "2025-12-31T00:00:00", 1), "created as"),
    ("more clears than this run", TryInfo(2, 4, "ti-2", NOW.run_key, 2), "clear number 2"),
    ("a higher try", TryInfo(5, 6, "ti-5", NOW.run_key, 1), "at try 5"),
    ("another try with the same number", TryInfo(3, 4, "ti-other", NOW.run_key, 1), "another try 3"),
]


@pytest.mark.parametrize(("case", "stored", "reason"), FOREIGN, ids=[row[0] for row in FOREIGN])
def test_foreign_to(case, stored, reason):
    found = foreign_to(stored, NOW)
    if reason is None:
        assert found is None
    else:
        assert found is not None
        assert reason in found


MARKER = FinishedMarker(try_number=2, max_tries=2)
#: NOW (try 3, max_tries 4, clear number 1) after a success at try 2 with the same max_tries and clears.
SAME_LIFE = FinishedMarker(try_number=2, max_tries=4, clear_number=1)
#: A clear that landed on the same max_tries (retries lowered) still moved the clear number.
CLEARED_SAME_MAX = FinishedMarker(try_number=2, max_tries=4, clear_number=0)
CLEARED_OTHER_MAX = FinishedMarker(try_number=2, max_tries=2, clear_number=1)

FINISHED = [
    ("no marker", 1, None, False),
    ("written before the successful try", 1, MARKER, True),
    ("written by the successful try", 2, MARKER, True),
    ("written after a clear (a later try)", 3, MARKER, False),
    ("a bare id without a try predates any marker", None, MARKER, True),
]


@pytest.mark.parametrize(("case", "written", "marker", "expected"), FINISHED, ids=[row[0] for row in FINISHED])
def test_finished_before(case, written, marker, expected):
    assert finished_before(written, marker) is expected


ENDED = [
    # (case, written_at_try, marker, complete, written_max_tries, ended?)
    ("unfinished work of this life", 2, None, False, 4, False),
    ("unfinished work, cleared after a failure (max_tries moved): resumes", 2, None, False, 2, False),
    ("complete work of this life", 3, None, True, 4, False),
    ("complete work, cleared after success without a marker", 2, None, True, 2, True),
    ("complete work, max_tries unknown", 2, None, True, None, False),
    ("anything the marker covers", 2, MARKER, False, 4, True),
    ("complete work the marker covers", 1, MARKER, True, 4, True),
    ("work after the marker, same max_tries", 3, MARKER, True, 4, False),
    # A marker that knows the clear number (0.2.0+): a try started after the success without a clear.
    ("an extra try of the life that succeeded (no clear since)", 2, SAME_LIFE, False, 4, False),
    ("complete work, an extra try of the life that succeeded", 2, SAME_LIFE, True, 4, False),
    ("a clear after success: the clear number moved", 2, CLEARED_SAME_MAX, False, 4, True),
    ("a clear after success: max_tries moved", 2, CLEARED_OTHER_MAX, False, 4, True),
]


@pytest.mark.parametrize(
    ("case", "written", "marker", "complete", "written_max_tries", "ended"), ENDED, ids=[row[0] for row in ENDED]
)
def test_ended_life(case, written, marker, complete, written_max_tries, ended):
    reason = ended_life(
        written_at_try=written, marker=marker, current=NOW, complete=complete, written_max_tries=written_max_tries
    )
    assert (reason is not None) is ended
    if ended:
        assert "succeeded" in reason or "cleared since" in reason


def test_the_marker_names_the_try_that_succeeded():
    marker = NOW.marker("2026-12-04T00:00:00+00:00")
    assert (marker.try_number, marker.max_tries, marker.finished_at) == (3, 4, "2026-12-04T00:00:00+00:00")
    assert TryInfo().marker("now").try_number == 0


def test_try_info_round_trips_through_its_stored_form_and_ignores_junk():
    assert TryInfo.from_dict(NOW.as_dict()) == NOW
    assert TryInfo.from_dict({"try_number": True, "try_stamp": 5, "max_tries": "2"}) == TryInfo()
    assert NOW.try_id == "ti-3"
    assert TryInfo(try_number=2).try_id == "2"


DAY = timedelta(days=1)
RETENTION = [
    # (case, retries, retry_delay, execution_timeout, retention, outlives?)
    ("no retention: rows never expire", 3, DAY, None, None, False),
    ("no retries", 0, DAY, None, 30 * DAY, False),
    ("delays fit", 3, DAY, None, 30 * DAY, False),
    ("delays alone exceed", 40, DAY, None, 30 * DAY, True),
    ("tries and delays exceed", 3, DAY, 7 * DAY, 30 * DAY, True),
    ("exactly the retention fits", 30, DAY, None, 30 * DAY, False),
]


@pytest.mark.parametrize(
    ("case", "retries", "delay", "timeout", "retention", "outlives"), RETENTION, ids=[row[0] for row in RETENTION]
)
def test_outlives_retention(case, retries, delay, timeout, retention, outlives):
    reason = outlives_retention(retries=retries, retry_delay=delay, execution_timeout=timeout, retention=retention)
    assert (reason is not None) is outlives
    if outlives:
        assert f"{retries} retries" in reason
        assert str(retention) in reason


EXTRA = [
    # (case, marker, current, extra?)
    ("no clear since the success", SAME_LIFE, NOW, True),
    ("the clear number moved", CLEARED_SAME_MAX, NOW, False),
    ("max_tries moved", CLEARED_OTHER_MAX, NOW, False),
    ("a marker from before 0.2.0 (no clear number)", FinishedMarker(try_number=2, max_tries=4), NOW, False),
    ("the try that succeeded itself", FinishedMarker(try_number=3, max_tries=4, clear_number=1), NOW, False),
    ("the running try knows no clear number", SAME_LIFE, TryInfo(try_number=3, max_tries=4), False),
    ("no marker", None, NOW, False),
]


@pytest.mark.parametrize(("case", "marker", "current", "extra"), EXTRA, ids=[row[0] for row in EXTRA])
def test_extra_try_after_success(case, marker, current, extra):
    from airflow.providers.resumable.state.lifecycle import extra_try_after_success

    assert extra_try_after_success(marker, current) is extra


def test_the_marker_keeps_the_clear_number():
    assert NOW.marker("now").clear_number == 1
