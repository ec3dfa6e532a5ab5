"""What the UI tab takes from the API server: when it is built, under which path, and how values are masked."""

from __future__ import annotations

import pytest

from airflow.providers.resumable.compat import api_server
from airflow.providers.resumable.compat.version_compat import AIRFLOW_VERSION


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["airflow", "api-server", "--port", "8080"], True),
        (["airflow", "scheduler"], False),
        (["airflow", "tasks", "run", "api-server"], False),
        (["python"], False),
    ],
)
def test_only_the_api_server_builds_the_tab(argv, expected):
    assert api_server.running_on_api_server(argv) is expected


def test_the_tab_needs_airflow_3_1():
    assert api_server.ui_tab_supported() is (AIRFLOW_VERSION >= api_server.UI_TAB_SINCE)


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        ("http://localhost:8080", "/resumable/tab"),
        ("https://airflow.example.com/team-a/", "/team-a/resumable/tab"),
        ("/team-a", "/team-a/resumable/tab"),
    ],
)
def test_links_follow_the_base_url(monkeypatch, base_url, expected):
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", base_url)
    assert api_server.base_url_path("/resumable/tab") == expected


def test_values_under_sensitive_names_are_masked():
    redact = api_server.display_redactor()
    shown = redact({"password": "hunter2", "offset": 700})
    assert shown["offset"] == 700
    assert shown["password"] != "hunter2"


def test_links_to_the_tab_only_where_there_is_one(monkeypatch):
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example.com")
    expected = "https://airflow.example.com" if api_server.ui_tab_supported() else None
    assert api_server.tab_base_url() == expected
    monkeypatch.setenv("AIRFLOW__RESUMABLE__UI_ENABLED", "False")
    assert api_server.tab_base_url() is None
