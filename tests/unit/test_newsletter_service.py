"""
The fake newsletter API that the resumable HTTP operator tests and the demo run against.

If the fake pages or faults drift, operator tests would pass or fail for the wrong reason, so the
walks, the per-client faults and the request log are pinned down here.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from demo.newsletter_service import NewsletterService, decode_cursor, encode_cursor, make_item, start_in_thread

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def svc():
    with NewsletterService(items=100, page_size=10) as service:
        yield service


def get(svc: NewsletterService, path: str, client: str | None = None, **params: Any) -> requests.Response:
    headers = {"X-Client": client} if client is not None else {}
    return requests.get(svc.url + path, params=params, headers=headers, timeout=5)


def walk_pages(svc: NewsletterService) -> tuple[list[int], int]:
    ids: list[int] = []
    page, requests_made = 1, 0
    while True:
        body = get(svc, "/issues", page=page).json()
        requests_made += 1
        ids += [item["id"] for item in body["items"]]
        if body["page"] >= body["total_pages"]:
            assert body["next_page"] is None
            return ids, requests_made
        assert body["next_page"] == page + 1
        page += 1


def walk_offsets(svc: NewsletterService) -> tuple[list[int], int]:
    ids: list[int] = []
    offset, requests_made = 0, 0
    while True:
        body = get(svc, "/issues/offset", offset=offset, limit=10).json()
        requests_made += 1
        ids += [item["id"] for item in body["items"]]
        offset += body["limit"]
        if offset >= body["total"]:
            return ids, requests_made


def walk_cursor(svc: NewsletterService) -> tuple[list[int], int]:
    ids: list[int] = []
    cursor, requests_made = None, 0
    while True:
        body = get(svc, "/issues/cursor", **({"cursor": cursor} if cursor else {})).json()
        requests_made += 1
        ids += [item["id"] for item in body["data"]["items"]]
        cursor = body["meta"]["next_cursor"]
        if cursor is None:
            return ids, requests_made
        assert isinstance(cursor, str)


def walk_links(svc: NewsletterService) -> tuple[list[int], int]:
    ids: list[int] = []
    url: str | None = svc.url + "/issues/linked"
    requests_made = 0
    while url is not None:
        response = requests.get(url, timeout=5)
        requests_made += 1
        ids += [item["id"] for item in response.json()]
        url = response.links.get("next", {}).get("url")
        assert url is None or url.startswith(svc.url + "/issues/linked?")
    assert "Link" not in response.headers
    return ids, requests_made


@pytest.mark.parametrize("walk", [walk_pages, walk_offsets, walk_cursor, walk_links])
def test_each_style_walks_every_item_once(svc, walk):
    ids, requests_made = walk(svc)
    assert ids == list(range(100))
    assert requests_made == 10
    assert all(r["status"] == 200 for r in svc.log)


def test_responses_are_json(svc):
    for path in ("/issues", "/issues/offset", "/issues/cursor", "/issues/linked", "/_health", "/nope"):
        assert get(svc, path).headers["Content-Type"] == "application/json"
    assert get(svc, "/_health").json() == {"ok": True}
    assert get(svc, "/nope").status_code == 404


def test_page_past_the_end_is_empty(svc):
    assert get(svc, "/issues", page=11).json() == {"items": [], "page": 11, "total_pages": 10, "next_page": None}
    assert get(svc, "/issues", page=1, per_page=30).json()["total_pages"] == 4


def test_bad_parameters_are_400(svc):
    for path, params in [
        ("/issues", {"page": 0}),
        ("/issues/offset", {"limit": "x"}),
        ("/issues/cursor", {"cursor": "!!"}),
    ]:
        response = get(svc, path, **params)
        assert response.status_code == 400
        assert "error" in response.json()
    assert svc.log[-1]["first_item"] is None


def test_items_are_deterministic(svc):
    assert make_item(7) == make_item(7)
    assert make_item(7) != make_item(8)
    assert 150 <= len(json.dumps(make_item(7)["body"]).encode()) <= 250
    expected = [make_item(i) for i in range(20, 30)]
    assert get(svc, "/issues", page=3).json()["items"] == expected
    assert get(svc, "/issues/offset", offset=20).json()["items"] == expected
    assert get(svc, "/issues/cursor", cursor=encode_cursor(20)).json()["data"]["items"] == expected
    assert get(svc, "/issues/linked", start=20).json() == expected
    with NewsletterService() as other:
        assert get(other, "/issues", page=3).json()["items"] == expected


def test_cursor_round_trips():
    assert decode_cursor(encode_cursor(26)) == 26
    assert decode_cursor("") == 0
    assert "26" not in encode_cursor(26)


def test_outage_is_per_client(svc):
    svc.outage_at_item, svc.outage_requests = 30, 3
    assert get(svc, "/issues", "a", page=3).status_code == 200  # before the outage
    for _ in range(3):
        response = get(svc, "/issues", "a", page=4)
        assert response.status_code == 503
        assert response.json() == {"error": "outage"}
        assert response.headers["Retry-After"] == "0"
    assert get(svc, "/issues", "a", page=4).status_code == 200
    assert get(svc, "/issues/offset", "a", offset=90).status_code == 200  # over for client a
    statuses = [get(svc, "/issues/cursor", "b", cursor=encode_cursor(50)).status_code for _ in range(4)]
    assert statuses == [503, 503, 503, 200]
    assert get(svc, "/issues/linked", start=30).status_code == 503  # no X-Client is a client too
    svc.reset_faults()
    assert get(svc, "/issues", "a", page=4).status_code == 503


def test_outage_until_the_next_try(svc):
    svc.outage_at_item, svc.outage_requests = 30, None

    def status(client, attempt, page):
        url = f"{svc.url}/issues"
        return requests.get(url, params={"page": page}, headers={"X-Client": client, "X-Try": attempt}, timeout=5)

    assert status("a", "1", 3).status_code == 200
    assert [status("a", "1", 4).status_code for _ in range(5)] == [503] * 5, "down for the whole try"
    assert status("a", "2", 4).status_code == 200, "back on the next try"
    assert status("a", "2", 9).status_code == 200
    assert status("b", "2", 4).status_code == 503, "each client meets it once"


def test_no_outage_when_outage_requests_is_zero():
    with NewsletterService(outage_at_item=0, outage_requests=0) as svc:
        assert get(svc, "/issues").status_code == 200


def test_rate_limit_once_per_client(svc):
    svc.rate_limit_at_item, svc.retry_after = 40, 2
    assert get(svc, "/issues/offset", "a", offset=30).status_code == 200
    response = get(svc, "/issues/offset", "a", offset=40)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "2"
    assert get(svc, "/issues/offset", "a", offset=40).status_code == 200
    assert get(svc, "/issues/offset", "a", offset=50).status_code == 200
    assert get(svc, "/issues/offset", "b", offset=60).status_code == 429
    assert get(svc, "/issues/offset", "b", offset=60).status_code == 200


def test_malformed_page_every_time(svc):
    svc.malformed_at_item = 20
    for _ in range(2):
        response = get(svc, "/issues", page=3)
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "text/html"
        assert response.text == "<html>Gateway hiccup</html>"
    assert get(svc, "/issues/linked", start=20).text == "<html>Gateway hiccup</html>"
    assert get(svc, "/issues", page=2).json()["page"] == 2


def test_loop_points_back_at_the_same_request(svc):
    svc.loop_at_item = 20
    assert get(svc, "/issues", page=3).json()["next_page"] == 3
    cursor = encode_cursor(20)
    assert get(svc, "/issues/cursor", cursor=cursor).json()["meta"]["next_cursor"] == cursor
    url = f"{svc.url}/issues/linked?start=20&limit=10"
    assert requests.get(url, timeout=5).links["next"]["url"] == url
    assert get(svc, "/issues/offset", offset=20).json()["offset"] == 20  # not applicable, served as usual
    assert get(svc, "/issues", page=2).json()["next_page"] == 3


def test_request_log(tmp_path):
    log_file = tmp_path / "logs" / "requests.jsonl"
    with NewsletterService(outage_at_item=10, outage_requests=1, log_file=log_file) as svc:
        headers = {"X-Client": "copy", "X-Try": "2"}
        requests.get(svc.url + "/issues", params={"page": 2}, headers=headers, timeout=5)
        requests.get(svc.url + "/issues/offset", params={"offset": 5}, timeout=5)
        requests.get(svc.url + "/_health", timeout=5)
        first, second, health = svc.log
        assert first["path"] == "/issues"
        assert first["query"] == {"page": "2"}
        assert (first["client"], first["try"], first["first_item"], first["status"]) == ("copy", "2", 10, 503)
        assert (second["client"], second["try"], second["first_item"], second["status"]) == (None, None, 5, 200)
        assert (health["path"], health["first_item"]) == ("/_health", None)
        assert first["t"] <= second["t"] <= health["t"] <= time.monotonic()
        assert [json.loads(line) for line in log_file.read_text().splitlines()] == svc.log
        svc.reset_log()
        assert svc.log == []


def test_start_in_thread():
    svc = start_in_thread(items=5, page_size=2, latency=0.01)
    try:
        assert get(svc, "/issues", page=3).json()["items"] == [make_item(4)]
    finally:
        svc.stop()
    with pytest.raises(requests.ConnectionError):
        get(svc, "/_health")


def test_process_mode(tmp_path):
    port_file = tmp_path / "out" / "newsletter.port"
    log_file = tmp_path / "out" / "requests.jsonl"
    command = [sys.executable, "-m", "demo.newsletter_service", "--port", "0", "--items", "100", "--page-size", "10"]
    command += [
        "--outage-at-item",
        "26",
        "--outage-requests",
        "3",
        "--log-file",
        str(log_file),
        "--port-file",
        str(port_file),
    ]
    proc = subprocess.Popen(command, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while not port_file.exists():
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "no port file"
            time.sleep(0.02)
        url = f"http://127.0.0.1:{int(port_file.read_text())}"
        assert requests.get(url + "/_health", timeout=5).json() == {"ok": True}
        assert requests.get(url + "/issues", params={"page": 4}, timeout=5).status_code == 503
    finally:
        proc.send_signal(signal.SIGTERM)
        returncode = proc.wait(timeout=10)
        if proc.stderr:
            proc.stderr.close()
    assert returncode == 0
    assert [json.loads(line)["status"] for line in log_file.read_text().splitlines()] == [200, 503]


# ---- incremental: updated_at, since, and changes between runs ----------------------------------


def test_items_carry_updated_at_in_creation_order(svc):
    items = get(svc, "/issues/offset", offset=0, limit=3).json()["items"]
    assert [i["updated_at"] for i in items] == ["2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z", "2026-01-01T00:02:00Z"]


@pytest.mark.parametrize(
    ("since", "first_ids"),
    [
        ("2026-01-01T00:00:00Z", [1, 2, 3]),  # strictly after: item 0 itself is not listed again
        ("2026-01-01T01:35:00Z", [96, 97, 98]),
        ("2026-01-01T01:34:30Z", [95, 96, 97]),
        ("2026-01-01T01:35:00+00:00", [96, 97, 98]),
        ("2025-12-31T00:00:00Z", [0, 1, 2]),
        ("2027-01-01T00:00:00Z", []),
    ],
)
def test_since_lists_only_items_changed_after_it(svc, since, first_ids):
    body = get(svc, "/issues/offset", offset=0, limit=3, since=since).json()
    assert [i["id"] for i in body["items"]] == first_ids


@pytest.mark.parametrize("walk", ["page", "offset", "cursor", "linked"])
def test_every_style_walks_only_the_changes(svc, walk):
    svc.add_items(12)
    svc.touch([5, 50])
    since = "2026-01-01T01:39:00Z"  # item 99's updated_at: everything after it
    ids: list[int] = []
    if walk == "page":
        page = 1
        while page is not None:
            body = get(svc, "/issues", page=page, per_page=5, since=since).json()
            ids += [i["id"] for i in body["items"]]
            page = body["next_page"]
    elif walk == "offset":
        offset = 0
        while True:
            body = get(svc, "/issues/offset", offset=offset, limit=5, since=since).json()
            ids += [i["id"] for i in body["items"]]
            offset += 5
            if offset >= body["total"]:
                break
    elif walk == "cursor":
        cursor = ""
        while cursor is not None:
            body = get(svc, "/issues/cursor", cursor=cursor, limit=5, since=since).json()
            ids += [i["id"] for i in body["data"]["items"]]
            cursor = body["meta"]["next_cursor"]
    else:
        response = get(svc, "/issues/linked", start=0, limit=5, since=since)
        while True:
            ids += [i["id"] for i in response.json()]
            if "next" not in response.links:
                break
            # The link does not repeat since (like many APIs): the client sends it with every page.
            response = requests.get(response.links["next"]["url"], params={"since": since}, timeout=5)
    assert ids == [*range(100, 112), 5, 50], "new items, then the touched ones, oldest change first"


def test_touched_items_move_to_the_end_with_a_new_updated_at(svc):
    svc.touch([3])
    items = get(svc, "/issues/offset", offset=97, limit=5).json()["items"]
    assert [(i["id"], i["updated_at"]) for i in items] == [
        (98, "2026-01-01T01:38:00Z"),
        (99, "2026-01-01T01:39:00Z"),
        (3, "2026-01-01T01:40:00Z"),
    ]
    assert get(svc, "/issues/offset", offset=0, limit=200).json()["total"] == 100, "an update adds no item"


def test_the_admin_endpoint_changes_data_for_a_service_in_another_process(svc):
    answer = requests.post(svc.url + "/_admin", json={"add": 2, "touch": [0], "malformed_at_item": 4}, timeout=5)
    assert answer.status_code == 200
    assert answer.json() == {"items": 102, "added": [100, 101], "latest": "2026-01-01T01:42:00Z"}
    assert svc.malformed_at_item == 4
    assert requests.post(svc.url + "/_admin", json={"touch": [500]}, timeout=5).status_code == 400
    assert requests.post(svc.url + "/elsewhere", json={}, timeout=5).status_code == 404


def test_a_bad_since_is_400(svc):
    response = get(svc, "/issues", since="yesterday")
    assert response.status_code == 400
    assert "since must be an ISO-8601 timestamp, got 'yesterday'" in response.json()["error"]


def test_the_log_names_the_items_served_when_filtered(svc):
    svc.add_items(3)
    get(svc, "/issues/offset", offset=0, limit=2, since="2026-01-01T01:39:00Z")
    get(svc, "/issues/offset", offset=0, limit=2)
    assert svc.log[0]["ids"] == [100, 101]
    assert "ids" not in svc.log[1], "unfiltered walks keep the log as it was"
