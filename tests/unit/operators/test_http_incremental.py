"""``incremental=`` of ResumablePaginatedHttpOperator with requests-mock: validation, the request, the manifest."""

from __future__ import annotations

from datetime import timedelta

import pytest

from airflow.providers.resumable.operators.http import Incremental, ResumablePaginatedHttpOperator
from airflow.providers.resumable.plugins.resumable import listener
from airflow.providers.resumable.watermarks.stores import InMemoryWatermarkStore
from tests.support.context import FakeTI, make_context

BASE = "http://api.test"


@pytest.fixture(autouse=True)
def http_connection(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_NEWS", BASE)


@pytest.fixture
def mark(monkeypatch):
    store = InMemoryWatermarkStore()
    monkeypatch.setattr(ResumablePaginatedHttpOperator, "watermark_store", lambda self, context: store)
    return store


def stamp(minute: int) -> str:
    return f"2026-01-01T00:{minute:02d}:00Z"


@pytest.fixture
def api(requests_mock):
    """Items 0..24 changed at minute i; ``since`` filters strictly after; pages of 10 by offset."""

    def respond(request, context):
        since = request.qs.get("since", [None])[0]
        offset = int(request.qs.get("offset", ["0"])[0])
        listed = [{"id": i, "updated_at": stamp(i)} for i in range(25)]
        if since is not None:
            listed = [r for r in listed if r["updated_at"] > since.upper()]
        return listed[offset : offset + 10]

    requests_mock.get(f"{BASE}/issues", json=respond)
    return requests_mock


def op(tmp_path, **kwargs):
    kwargs.setdefault("incremental", Incremental(cursor_field="updated_at", initial_value=stamp(0)))
    kwargs.setdefault("data", {"limit": 10})
    kwargs.setdefault("pagination", {"strategy": "offset_limit", "limit": 10})
    return ResumablePaginatedHttpOperator(
        task_id="crawl",
        http_conn_id="news",
        method="GET",
        endpoint="issues",
        page_retry_max_wait=0,
        output_path=f"file://{tmp_path}/out",
        **kwargs,
    )


@pytest.mark.parametrize(
    ("incremental", "message"),
    [
        ({"cursor_field": ""}, "Incremental cursor_field must be a non-empty string, got ''"),
        ({"cursor_field": "u", "param": None}, "Incremental param must be a non-empty string, got None"),
        ({"cursor_field": "u", "initial_value": "yesterday"}, "initial_value must be an ISO-8601 timestamp"),
        ({"cursor_field": "u", "lag": -5}, "Incremental lag must be a timedelta or a number >= 0, got -5"),
        ({"cursor_field": "u", "lag": "5m"}, "Incremental lag must be a timedelta or a number >= 0, got '5m'"),
        (
            {"cursor_field": "u", "initial_value": 0, "lag": timedelta(minutes=5)},
            r"Incremental lag datetime.timedelta\(seconds=300\) does not fit initial_value 0: a timestamp cursor",
        ),
        ({"cursor_field": "u", "since": "x"}, r"unknown incremental option\(s\) \['since'\]"),
        ({"param": "since"}, "incremental needs a cursor_field"),
    ],
)
def test_bad_incremental_fails_when_the_dag_is_parsed(tmp_path, incremental, message):
    with pytest.raises(ValueError, match=message):
        op(tmp_path, incremental=incremental)


def test_a_templated_initial_value_is_checked_when_rendered_not_parsed(tmp_path):
    config = Incremental(cursor_field="u", initial_value="{{ data_interval_start }}")
    assert op(tmp_path, incremental=config).incremental == config


def test_every_page_sends_the_mark_and_the_highest_value_is_committed_after_success(tmp_path, api, mark, memory_store):
    ti = FakeTI(run_id="run1")
    manifest = op(tmp_path).execute(make_context(ti))
    assert [r.qs["since"] for r in api.request_history] == [[stamp(0).lower()]] * 3
    assert manifest["records"] == 24
    assert manifest["window"] == {
        "since": stamp(0),
        "until": stamp(24),
        "base": stamp(0),
        "lag": None,
        "reread_own_window": False,
        "store": "memory",
    }
    assert mark.document is None, "staged only"
    listener.on_task_instance_success(None, ti)
    assert mark.document["value"] == stamp(24)

    api.reset_mock()
    second = op(tmp_path, incremental={"cursor_field": "updated_at", "lag": timedelta(minutes=3)}).execute(
        make_context(FakeTI(run_id="run2"))
    )
    assert [r.qs["since"] for r in api.request_history] == [[stamp(21).lower()]]
    window = second["window"]
    assert (window["since"], window["base"], window["until"], window["lag"]) == (stamp(21), stamp(24), stamp(24), 180.0)


def test_nothing_new_stages_the_mark_it_started_from(tmp_path, api, mark, memory_store):
    ti = FakeTI(run_id="run1")
    manifest = op(tmp_path, incremental=Incremental(cursor_field="updated_at", initial_value=stamp(30))).execute(
        make_context(ti)
    )
    assert (manifest["records"], manifest["window"]["until"]) == (0, None)
    listener.on_task_instance_success(None, ti)
    assert mark.document["value"] == stamp(30), "the run is recorded, the mark does not move"


def test_a_record_without_the_cursor_field_is_named(tmp_path, requests_mock, mark, memory_store):
    requests_mock.get(f"{BASE}/issues", json=[{"id": 1, "updated_at": stamp(1)}, {"id": 2}])
    with pytest.raises(ValueError, match=r"page 0, record 1: no 'updated_at' \(incremental cursor_field\)"):
        op(tmp_path, pagination=None).execute(make_context())


def test_data_must_be_a_dict_to_carry_the_parameter(tmp_path, api, mark, memory_store):
    with pytest.raises(ValueError, match="must then be a dict of parameters \\(or None\\), got str"):
        op(tmp_path, data="limit=10").execute(make_context())
