"""The pagination strategies (``operators/pagination.py``), walked by ResumablePaginatedHttpOperator against requests-mock."""

from __future__ import annotations

import pytest

from airflow.providers.resumable.operators.pagination import (
    LinkHeaderPagination,
    OffsetLimitPagination,
    PageNumberPagination,
    build_pagination,
)
from tests.support.context import make_context
from tests.support.paginated_http import BASE, items, op, parts, register_pages

pytestmark = pytest.mark.usefixtures("news_connection")


class TestStrategies:
    def test_page_number(self, tmp_path, requests_mock, memory_store):
        register_pages(requests_mock, "issues")
        o = op(tmp_path, endpoint="issues", pagination=PageNumberPagination(), records_path="items")
        manifest = o.execute(make_context())
        assert parts(tmp_path) == items(0, 25)
        # pages 1..3 have records, page 4 is empty and ends the walk
        assert manifest["pages"] == 4
        assert manifest["records"] == 25
        assert [r.qs["page"] for r in requests_mock.request_history] == [["1"], ["2"], ["3"], ["4"]]

    def test_page_number_stops_at_total_pages(self, tmp_path, requests_mock, memory_store):
        requests_mock.get(
            f"{BASE}/issues",
            json=lambda r, c: {"items": items(0, 1), "total_pages": 2},
        )
        o = op(
            tmp_path,
            endpoint="issues",
            pagination=PageNumberPagination(total_pages_path="total_pages"),
            records_path="items",
        )
        assert o.execute(make_context())["pages"] == 2

    def test_offset_limit(self, tmp_path, requests_mock, memory_store):
        def respond(request, context):
            offset, limit = int(request.qs["offset"][0]), int(request.qs["limit"][0])
            return items(offset, min(offset + limit, 25))

        requests_mock.get(f"{BASE}/issues", json=respond)
        o = op(tmp_path, endpoint="issues", pagination=OffsetLimitPagination(limit=10))
        manifest = o.execute(make_context())
        assert parts(tmp_path) == items(0, 25)
        assert manifest["pages"] == 3  # the short third page is the last

    def test_cursor_by_key_path(self, tmp_path, requests_mock, memory_store):
        pages = {"": ("c1", items(0, 10)), "c1": ("c2", items(10, 20)), "c2": (None, items(20, 25))}

        def respond(request, context):
            nxt, recs = pages[request.qs.get("cursor", [""])[0]]
            return {"data": {"items": recs}, "meta": {"next_cursor": nxt}}

        requests_mock.get(f"{BASE}/issues", json=respond)
        o = op(
            tmp_path,
            endpoint="issues",
            pagination={"strategy": "cursor", "cursor_path": "meta.next_cursor"},
            records_path="data.items",
        )
        assert o.execute(make_context())["records"] == 25
        assert parts(tmp_path) == items(0, 25)

    def test_link_header(self, tmp_path, requests_mock, memory_store):
        requests_mock.get(
            f"{BASE}/issues", json=items(0, 10), headers={"Link": f'<{BASE}/issues/p2?limit=10>; rel="next"'}
        )
        requests_mock.get(f"{BASE}/issues/p2", json=items(10, 15))
        o = op(tmp_path, endpoint="issues", data={"limit": 10}, pagination=LinkHeaderPagination())
        assert o.execute(make_context())["pages"] == 2
        second = requests_mock.request_history[1]
        assert second.qs == {"limit": ["10"]}, "merged, not repeated"


class TestOptions:
    def test_strategy_options_are_validated(self):
        with pytest.raises(ValueError, match=r"limit must be an integer >= 1, got 0"):
            build_pagination({"strategy": "offset_limit", "limit": 0})
