"""ResumablePaginatedHttpOperator with requests-mock: paging, resume logic, bad input, ``incremental=``."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import requests

from airflow.providers.resumable.compat.airflow import object_storage_path
from airflow.providers.resumable.operators.http import (
    CursorPagination,
    Incremental,
    LinkHeaderPagination,
    MalformedPageError,
    MaxPagesExceededError,
    PageNumberPagination,
    PaginationLoopError,
    PartSink,
    ResumablePaginatedHttpOperator,
    TransientHttpError,
)
from airflow.providers.resumable.plugins.resumable import listener
from airflow.providers.resumable.watermarks.stores import InMemoryWatermarkStore
from tests.support.context import FakeTI, make_context
from tests.support.paginated_http import BASE, incremental_op, items, op, parts, register_pages, stamp

pytestmark = pytest.mark.usefixtures("news_connection")


class TestPaging:
    def test_each_page_body_is_parsed_once(self, tmp_path, requests_mock, memory_store, monkeypatch):
        pages = {"": ("c1", items(0, 10)), "c1": (None, items(10, 15))}
        requests_mock.get(
            f"{BASE}/issues",
            json=lambda r, c: {
                "items": pages[r.qs.get("cursor", [""])[0]][1],
                "next": pages[r.qs.get("cursor", [""])[0]][0],
            },
        )
        parses = []
        original = requests.Response.json
        monkeypatch.setattr(requests.Response, "json", lambda self, **kw: parses.append(1) or original(self, **kw))
        o = op(tmp_path, endpoint="issues", pagination=CursorPagination(cursor_path="next"), records_path="items")
        assert o.execute(make_context())["pages"] == 2
        assert len(parses) == 2, "the operator's records and the strategy's cursor share one parse"

    def test_link_to_another_host_is_refused(self, tmp_path, requests_mock, memory_store):
        requests_mock.get(f"{BASE}/issues", json=items(0, 1), headers={"Link": '<http://evil.test/x>; rel="next"'})
        o = op(tmp_path, endpoint="issues", pagination=LinkHeaderPagination())
        with pytest.raises(ValueError, match=r"not under the connection's base URL 'http://api.test'"):
            o.execute(make_context())

    def test_scheme_relative_link_to_another_host_is_refused(self, tmp_path, requests_mock, memory_store):
        requests_mock.get(f"{BASE}/issues", json=items(0, 1), headers={"Link": '<//evil.test/x>; rel="next"'})
        o = op(tmp_path, endpoint="issues", pagination=LinkHeaderPagination())
        with pytest.raises(ValueError, match=r"'http://evil.test/x' is not under the connection's base URL"):
            o.execute(make_context())

    def test_relative_link_is_followed_on_the_same_host(self, tmp_path, requests_mock, memory_store):
        requests_mock.get(f"{BASE}/issues", json=items(0, 2), headers={"Link": '</issues/p2>; rel="next"'})
        requests_mock.get(f"{BASE}/issues/p2", json=items(2, 3))
        o = op(tmp_path, endpoint="issues", pagination=LinkHeaderPagination())
        assert o.execute(make_context())["records"] == 3

    def test_httpoperator_pagination_function_works_unchanged(self, tmp_path, requests_mock, memory_store):
        register_pages(requests_mock, "issues")

        def next_page(response):  # as written for HttpOperator
            page = int(response.json()["page"]) if "page" in response.json() else None
            if page is None:
                qs = requests.utils.urlparse(response.request.url).query
                page = int(dict(p.split("=") for p in qs.split("&"))["page"])
            return {"data": {"page": page + 1}} if response.json()["items"] else None

        o = op(tmp_path, endpoint="issues", data={"page": 1}, pagination_function=next_page, records_path="items")
        assert o.execute(make_context())["records"] == 25


class TestPartSink:
    """Parts keep the names, URIs and the write-then-rename of an ObjectStoragePath join."""

    RECORDS = [{"id": 1, "title": "ünïcode"}, {"id": 2, "tags": ["a", "b"]}]

    @pytest.mark.parametrize("index", [0, 7, 12345, 100000])
    def test_uri_is_the_object_storage_join(self, tmp_path, index):
        root = object_storage_path(f"file://{tmp_path}/")
        sink = PartSink(root)
        name = f"part-{index:05d}.jsonl"
        assert sink.uri(index) == str(root / name)
        assert sink.write(index, self.RECORDS) == str(root / name)

    def test_a_local_part_is_json_lines_and_replaced_when_written_again(self, tmp_path):
        sink = PartSink(object_storage_path(f"file://{tmp_path}"))
        sink.write(3, [{"id": 0}])
        sink.write(3, self.RECORDS)
        lines = (tmp_path / "part-00003.jsonl").read_text(encoding="utf-8").splitlines()
        assert [json.loads(line) for line in lines] == self.RECORDS
        assert lines[0] == json.dumps(self.RECORDS[0], separators=(",", ":"))
        assert sorted(p.name for p in tmp_path.iterdir()) == ["part-00003.jsonl"]

    def test_a_write_that_dies_before_the_rename_leaves_the_old_part_whole(self, tmp_path, monkeypatch):
        sink = PartSink(object_storage_path(f"file://{tmp_path}"))
        sink.write(0, [{"id": 0}])

        def killed(*args):
            raise OSError("killed before the rename")

        monkeypatch.setattr("airflow.providers.resumable.operators.http.os.replace", killed)
        with pytest.raises(OSError, match="killed"):
            sink.write(0, self.RECORDS)
        assert (tmp_path / "part-00000.jsonl").read_text() == '{"id":0}\n'

    def test_an_object_store_part_goes_through_the_filesystem(self):
        # The universal_pathlib path ObjectStoragePath builds on: Airflow 2.11's ObjectStoragePath
        # knows only the schemes of installed providers, and no leg installs an in-memory one.
        from upath import UPath

        root = UPath("memory://resumable-sink-test/run")
        sink = PartSink(root)
        uri = sink.write(1, self.RECORDS)
        assert uri == str(root / "part-00001.jsonl")
        text = (root / "part-00001.jsonl").read_text()
        assert [json.loads(line) for line in text.splitlines()] == self.RECORDS


class TestResume:
    def _outage(self, requests_mock, at_page, failures):
        """Page-number API whose page ``at_page`` answers 503 ``failures`` times."""
        state = {"left": failures}

        def respond(request, context):
            page = int(request.qs["page"][0])
            if page == at_page and state["left"] > 0:
                state["left"] -= 1
                context.status_code = 503
                return {"error": "outage"}
            return {"items": items((page - 1) * 10, min(page * 10, 100))}

        requests_mock.get(f"{BASE}/issues", json=respond)

    def test_retry_starts_at_the_failed_page_and_matches_an_uninterrupted_crawl(
        self, tmp_path, requests_mock, memory_store
    ):
        self._outage(requests_mock, at_page=4, failures=3)
        kwargs = dict(endpoint="issues", pagination=PageNumberPagination(), records_path="items", page_retry_attempts=3)
        with pytest.raises(TransientHttpError, match="page 3: HTTP 503"):
            op(tmp_path, **kwargs).execute(make_context(FakeTI(try_number=1)))
        stored = memory_store.get("http_pages/checkpoint")
        assert stored["batches_done"] == 3
        assert stored["data"]["next_page"] == {"data": {"page": 4}}

        requests_mock.reset_mock()
        manifest = op(tmp_path, **kwargs).execute(make_context(FakeTI(try_number=2)))
        assert requests_mock.request_history[0].qs["page"] == ["4"]
        assert manifest["resumed_from_page"] == 3
        assert manifest["records"] == 100
        assert parts(tmp_path) == items(0, 100)
        assert memory_store.get("http_pages/checkpoint")["complete"] is True

        # The try then failed after execute (say, the XCom push): the retry fetches nothing and
        # returns the same manifest.
        requests_mock.reset_mock()
        again = op(tmp_path, **kwargs).execute(make_context(FakeTI(try_number=3)))
        assert requests_mock.request_history == []
        assert {k: again[k] for k in ("pages", "records", "parts")} == {
            k: manifest[k] for k in ("pages", "records", "parts")
        }

    def test_transient_errors_within_the_budget_do_not_fail_the_task(self, tmp_path, requests_mock, memory_store):
        self._outage(requests_mock, at_page=2, failures=2)
        o = op(tmp_path, endpoint="issues", pagination=PageNumberPagination(), records_path="items")
        assert o.execute(make_context())["records"] == 100

    def test_credentials_never_reach_the_state_store(self, tmp_path, requests_mock, memory_store):
        self._outage(requests_mock, at_page=3, failures=5)
        o = op(
            tmp_path,
            endpoint="issues",
            headers={"Authorization": "Bearer s3cret-token"},
            pagination=PageNumberPagination(),
            records_path="items",
            page_retry_attempts=1,
        )
        with pytest.raises(TransientHttpError):
            o.execute(make_context())
        assert "s3cret-token" not in json.dumps(memory_store.data)
        assert requests_mock.request_history[0].headers["Authorization"] == "Bearer s3cret-token"

    def test_fresh_headers_are_used_on_the_retry(self, tmp_path, requests_mock, memory_store):
        self._outage(requests_mock, at_page=3, failures=1)
        kwargs = dict(endpoint="issues", pagination=PageNumberPagination(), records_path="items", page_retry_attempts=1)
        with pytest.raises(TransientHttpError):
            op(tmp_path, headers={"Authorization": "Bearer expired"}, **kwargs).execute(make_context())
        requests_mock.reset_mock()
        op(tmp_path, headers={"Authorization": "Bearer renewed"}, **kwargs).execute(make_context(FakeTI(try_number=2)))
        assert {r.headers["Authorization"] for r in requests_mock.request_history} == {"Bearer renewed"}


class TestBadInput:
    def test_pagination_loop(self, tmp_path, requests_mock, memory_store):
        requests_mock.get(f"{BASE}/issues", json={"items": items(0, 1), "next": "same"})
        o = op(
            tmp_path,
            endpoint="issues",
            pagination=CursorPagination(cursor_path="next"),
            records_path="items",
        )
        # page 0 -> cursor "same"; page 1 (cursor=same) -> cursor "same" again: the same request.
        with pytest.raises(PaginationLoopError, match="page 1: the pagination step asked for the same request"):
            o.execute(make_context())

    def test_not_json(self, tmp_path, requests_mock, memory_store):
        requests_mock.get(f"{BASE}/issues", text="<html>Gateway hiccup</html>", headers={"Content-Type": "text/html"})
        o = op(tmp_path, endpoint="issues", records_path="items")
        with pytest.raises(MalformedPageError, match=r"page 0 is not JSON \(HTTP 200, Content-Type 'text/html'\)"):
            o.execute(make_context())

    def test_records_path_missing(self, tmp_path, requests_mock, memory_store):
        requests_mock.get(f"{BASE}/issues", json={"data": []})
        o = op(tmp_path, endpoint="issues", records_path="items")
        with pytest.raises(
            MalformedPageError, match=r"records_path 'items' holds NoneType, not a list; page keys: \['data'\]"
        ):
            o.execute(make_context())

    def test_max_pages(self, tmp_path, requests_mock, memory_store):
        register_pages(requests_mock, "issues", total=100)
        o = op(tmp_path, endpoint="issues", pagination=PageNumberPagination(), records_path="items", max_pages=3)
        with pytest.raises(MaxPagesExceededError, match="more than max_pages=3 pages"):
            o.execute(make_context())

    def test_client_errors_are_not_retried(self, tmp_path, requests_mock, memory_store):
        requests_mock.get(f"{BASE}/issues", status_code=404, text="no such thing")
        with pytest.raises(Exception, match="page 0: HTTP 404"):
            op(tmp_path, endpoint="issues").execute(make_context())
        assert requests_mock.call_count == 1

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            (
                {"pagination": {"strategy": "cursor", "cursor": "x"}},
                r"unknown option\(s\) \['cursor'\] for pagination strategy 'cursor'",
            ),
            ({"pagination": {"strategy": "pages"}}, r"pagination strategy must be one of .* got 'pages'"),
            (
                {"pagination": PageNumberPagination(), "pagination_function": lambda r: None},
                "either pagination or pagination_function",
            ),
            ({"deferrable": True}, "deferrable=True is not supported"),
            ({"retry_args": {"stop": None}}, "retry_args is not used .* use page_retry_attempts"),
            ({"max_pages": 0}, r"max_pages must be an integer >= 1, got 0"),
            ({"page_retry_attempts": 0}, r"page_retry_attempts must be an integer >= 1, got 0"),
            ({"checkpoint_every": 0}, r"checkpoint_every must be >= 1, got 0"),
        ],
    )
    def test_bad_arguments_fail_at_parse_time(self, tmp_path, kwargs, message):
        with pytest.raises((ValueError, TypeError), match=message):
            op(tmp_path, endpoint="issues", **kwargs)


class TestExtensionPoints:
    """HttpOperator's hooks: process_response is honoured per page, the others are refused at definition."""

    def test_a_process_response_override_shapes_each_page(self, tmp_path, requests_mock, memory_store):
        register_pages(requests_mock, "issues", total=15)
        seen = []

        class Tagged(ResumablePaginatedHttpOperator):
            def process_response(self, context, response):
                seen.append(response.url)
                return [{**record, "tagged": True} for record in super().process_response(context, response)]

        o = Tagged(
            task_id="crawl",
            http_conn_id="news",
            method="GET",
            endpoint="issues",
            pagination=PageNumberPagination(),
            records_path="items",
            output_path=f"file://{tmp_path}/out",
        )
        manifest = o.execute(make_context())
        assert parts(tmp_path) == [{**item, "tagged": True} for item in items(0, 15)]
        assert len(seen) == manifest["pages"] == 3

    def test_process_response_returning_one_record_writes_it(self, tmp_path, requests_mock, memory_store):
        requests_mock.get(f"{BASE}/status", text="all good")

        class Text(ResumablePaginatedHttpOperator):
            def process_response(self, context, response):
                return response.text

        Text(
            task_id="t", http_conn_id="news", method="GET", endpoint="status", output_path=f"file://{tmp_path}/out"
        ).execute(make_context())
        assert parts(tmp_path) == ["all good"]

    @pytest.mark.parametrize(
        "method", ["execute_sync", "paginate_sync", "execute_async", "paginate_async", "execute_complete"]
    )
    def test_overriding_a_method_never_called_fails_at_class_definition(self, method):
        with pytest.raises(TypeError, match=rf"Custom overrides HttpOperator\.{method}, which .* never calls"):
            type("Custom", (ResumablePaginatedHttpOperator,), {method: lambda self, *a, **k: None})

    def test_an_inherited_override_is_refused_too(self):
        class Base(ResumablePaginatedHttpOperator):
            pass

        class Mixin:
            def paginate_sync(self, response):
                return response

        with pytest.raises(TypeError, match=r"Child overrides HttpOperator\.paginate_sync"):
            type("Child", (Mixin, Base), {})

    def test_process_response_refuses_a_list(self, tmp_path):
        with pytest.raises(TypeError, match="got a list of 2"):
            op(tmp_path).process_response(make_context(), [requests.Response(), requests.Response()])


# ---- incremental=: the request, the manifest, the mark ----------------------------------------------


@pytest.fixture
def mark(monkeypatch):
    store = InMemoryWatermarkStore()
    monkeypatch.setattr(ResumablePaginatedHttpOperator, "watermark_store", lambda self, context: store)
    return store


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


def test_every_page_sends_the_mark_and_the_highest_value_is_committed_after_success(tmp_path, api, mark, memory_store):
    ti = FakeTI(run_id="run1")
    manifest = incremental_op(tmp_path).execute(make_context(ti))
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
    second = incremental_op(tmp_path, incremental={"cursor_field": "updated_at", "lag": timedelta(minutes=3)}).execute(
        make_context(FakeTI(run_id="run2"))
    )
    assert [r.qs["since"] for r in api.request_history] == [[stamp(21).lower()]]
    window = second["window"]
    assert (window["since"], window["base"], window["until"], window["lag"]) == (stamp(21), stamp(24), stamp(24), 180.0)


def test_nothing_new_stages_the_mark_it_started_from(tmp_path, api, mark, memory_store):
    ti = FakeTI(run_id="run1")
    manifest = incremental_op(
        tmp_path, incremental=Incremental(cursor_field="updated_at", initial_value=stamp(30))
    ).execute(make_context(ti))
    assert (manifest["records"], manifest["window"]["until"]) == (0, None)
    listener.on_task_instance_success(None, ti)
    assert mark.document["value"] == stamp(30), "the run is recorded, the mark does not move"


def test_a_record_without_the_cursor_field_is_named(tmp_path, requests_mock, mark, memory_store):
    requests_mock.get(f"{BASE}/issues", json=[{"id": 1, "updated_at": stamp(1)}, {"id": 2}])
    with pytest.raises(ValueError, match=r"page 0, record 1: no 'updated_at' \(incremental cursor_field\)"):
        incremental_op(tmp_path, pagination=None).execute(make_context())


def test_data_must_be_a_dict_to_carry_the_parameter(tmp_path, api, mark, memory_store):
    with pytest.raises(ValueError, match="must then be a dict of parameters \\(or None\\), got str"):
        incremental_op(tmp_path, data="limit=10").execute(make_context())
