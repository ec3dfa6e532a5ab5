"""Airflow 2's kept Variables: until when a finished state is kept, read from its description or marker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from airflow.providers.resumable.state import finished_variables
from airflow.providers.resumable.state.base import StateBackendConfigError, TaskScope


class TestKeptUntil:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            (None, None),
            ("Retry state of d.t in run r (airflow-provider-resumable); finished once it succeeds.", None),
            (
                "... deleted after resumable-finished-until=2026-12-06T03:00:00+00:00",
                datetime(2026, 12, 6, 3, tzinfo=UTC),
            ),
            ("... resumable-finished-until=2026-12-06T03:00:00", datetime(2026, 12, 6, 3, tzinfo=UTC)),
            ("... resumable-finished-until=tomorrow", None),
        ],
        ids=["none", "live", "kept", "naive-is-utc", "unreadable"],
    )
    def test_the_description_says_until_when_a_variable_is_kept(self, text, expected):
        assert finished_variables.kept_until(text) == expected

    @pytest.mark.parametrize(
        ("finished_at", "keep", "expected"),
        [
            ("2026-12-05T03:00:00+00:00", timedelta(days=1), datetime(2026, 12, 6, 3, tzinfo=UTC)),
            ("2026-12-05T03:00:00+00:00", None, None),
            (None, timedelta(days=1), None),
            ("not a time", timedelta(days=1), None),
        ],
        ids=["kept", "not-kept", "no-time", "unreadable"],
    )
    def test_a_finished_state_is_kept_for_the_retention(self, finished_at, keep, expected):
        assert finished_variables.kept_until_finished(finished_at, keep) == expected


def test_the_description_of_a_kept_variable_carries_its_time():
    scope = TaskScope("d", "r", "t", -1)
    until = datetime(2026, 12, 6, 3, tzinfo=UTC)
    text = finished_variables.description(scope, until)
    assert text.startswith("Finished retry state of d.t in run r")
    assert finished_variables.kept_until(text) == until


def test_a_retention_that_is_no_number_is_named(monkeypatch):
    monkeypatch.setattr(finished_variables, "late_failure_after_success", lambda: True)
    monkeypatch.setenv("AIRFLOW__RESUMABLE__FINISHED_STATE_RETENTION", "1d")
    with pytest.raises(StateBackendConfigError, match=r"^\[resumable\] finished_state_retention must be .*'1d'"):
        finished_variables.retention()


def test_airflow_3_keeps_nothing_whatever_the_setting(monkeypatch):
    monkeypatch.setattr(finished_variables, "late_failure_after_success", lambda: False)
    monkeypatch.setenv("AIRFLOW__RESUMABLE__FINISHED_STATE_RETENTION", "3600")
    assert finished_variables.retention() is None
