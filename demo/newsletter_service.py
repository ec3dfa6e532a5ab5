"""
A fake paginated "newsletter" JSON API on 127.0.0.1, for tests, the demo and benchmarks.

Resumable HTTP operators must survive what real APIs do part way through a walk: outages, rate
limits, an HTML error page from a proxy, a "next" link that points back at itself. One service
speaks all four common pagination styles, so every test and the demo share one set of faults.

Faults are keyed on the first item a request asks for, not on the request count, so they land
at the same place in the data whatever the page size or pagination style. They are tracked per
client (the ``X-Client`` header), so two operators sharing one service each meet a fault once,
as two independent jobs would against a real API. Every request is logged (``log``, and a JSON
line file if asked) so tests and the demo can show where each try started and what it re-read.

For incremental loads every item has an ``updated_at`` (item ``i`` starts at ``EPOCH`` + ``i``
minutes) and every endpoint takes ``since``: only items with ``updated_at`` strictly after it are
listed, oldest change first, so a client that sends back the highest ``updated_at`` it saw gets
exactly what changed since. ``add_items`` and ``touch`` (or ``POST /_admin``, for a service in
another process) add items and update existing ones between runs, one minute later each;
``add_items(n, late=True)`` adds them *at* the latest minute, as writers whose transaction commits
after a reader saw that minute. ``since_inclusive=True`` lists ``updated_at >= since`` instead, as
many APIs do.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import math
import signal
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

HOST = "127.0.0.1"
ENDPOINTS = ("/issues", "/issues/offset", "/issues/cursor", "/issues/linked", "/_health")
#: ``updated_at`` of item 0; item ``i`` was last updated ``tick`` minutes later (``i`` until touched).
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def updated_at(tick: int) -> str:
    return (EPOCH + timedelta(minutes=tick)).isoformat().replace("+00:00", "Z")


def make_item(i: int, tick: int | None = None) -> dict[str, Any]:
    """Item ``i`` (last changed at ``tick``, default ``i``), derived from those alone so walks can be compared."""
    digest = hashlib.sha256(f"issue-{i}".encode()).hexdigest()
    body = (f"Issue {i} of the newsletter, digest {digest}. " * 4)[:200]
    return {"id": i, "title": f"Issue {i}", "body": body, "updated_at": updated_at(i if tick is None else tick)}


def parse_since(value: str) -> float:
    """``since`` as minutes after ``EPOCH``; 400 unless it is an ISO-8601 timestamp."""
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise BadRequest(f"since must be an ISO-8601 timestamp, got {value!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - EPOCH).total_seconds() / 60


def encode_cursor(start: int) -> str:
    """Opaque on purpose: clients must store the cursor they were given, not compute one."""
    return base64.urlsafe_b64encode(f"i={start}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except ValueError as err:
        raise BadRequest(f"bad cursor {cursor!r}") from err
    if not text.startswith("i="):
        raise BadRequest(f"bad cursor {cursor!r}")
    return _int(text[2:], "cursor", minimum=0)


class BadRequest(ValueError):
    """Answered with 400, like a real API given a parameter it cannot parse."""


def _int(value: str, name: str, *, minimum: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise BadRequest(f"{name} must be an integer, got {value!r}") from None
    if number < minimum:
        raise BadRequest(f"{name} must be >= {minimum}, got {number}")
    return number


class NewsletterService:
    """
    The service and its fault switches. Fault attributes may be changed while it runs; they are
    read on every request. Use as a context manager, or ``start()``/``stop()``.
    """

    def __init__(
        self,
        *,
        items: int = 100,
        page_size: int = 10,
        latency: float = 0.0,
        outage_at_item: int | None = None,
        outage_requests: int | None = 0,
        rate_limit_at_item: int | None = None,
        retry_after: int = 1,
        malformed_at_item: int | None = None,
        loop_at_item: int | None = None,
        echo_params: tuple[str, ...] = (),
        port: int = 0,
        log_file: str | Path | None = None,
        since_inclusive: bool = False,
    ) -> None:
        self.items = items
        self.since_inclusive = since_inclusive
        self.page_size = page_size
        self.latency = latency
        self.outage_at_item = outage_at_item
        self.outage_requests = outage_requests
        self.rate_limit_at_item = rate_limit_at_item
        self.retry_after = retry_after
        self.malformed_at_item = malformed_at_item
        self.loop_at_item = loop_at_item
        #: Query parameters repeated from the request into the next link, as APIs that carry an
        #: ``api_key`` in every link do.
        self.echo_params = echo_params
        self.log_file = Path(log_file) if log_file is not None else None
        self.log: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._outages_served: dict[str | None, int] = {}
        self._outage_try: dict[str | None, str | None] = {}
        self._rate_limited: set[str | None] = set()
        #: Items changed since they were created: id -> minute of the last change.
        self._ticks: dict[int, int] = {}
        self._clock = items - 1
        self._log_stream: IO[str] | None = None
        handler = type("Handler", (_Handler,), {"service": self})
        self._httpd = ThreadingHTTPServer((HOST, port), handler)
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> NewsletterService:
        if self.log_file is not None:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            # Append: a service restarted mid-demo must not erase the requests before the restart.
            self._log_stream = self.log_file.open("a", encoding="utf-8")
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="newsletter", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Waits for requests in flight, so no log line is written after the file is closed."""
        if self._thread is not None:  # shutdown() blocks forever if serve_forever never ran
            self._httpd.shutdown()
            self._thread = None
        self._httpd.server_close()
        if self._log_stream is not None:
            self._log_stream.close()
            self._log_stream = None

    def __enter__(self) -> NewsletterService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset_log(self) -> None:
        with self._lock:
            self.log.clear()

    def reset_faults(self) -> None:
        """Forget which clients already met the outage and the rate limit, so they meet them again."""
        with self._lock:
            self._outages_served.clear()
            self._outage_try.clear()
            self._rate_limited.clear()

    def add_items(self, count: int, *, late: bool = False) -> list[int]:
        """
        Append ``count`` new items, each a minute after the latest change (``late``: all at the
        latest change's minute, as late writers in the same second as the newest item); returns their ids.
        """
        with self._lock:
            new = list(range(self.items, self.items + count))
            for i in new:
                self._clock += 0 if late else 1
                if self._clock != i:
                    self._ticks[i] = self._clock
            self.items += count
        return new

    def touch(self, ids: list[int]) -> None:
        """Update existing items: each gets a new ``updated_at``, a minute after the latest change."""
        with self._lock:
            for i in ids:
                if not 0 <= i < self.items:
                    raise BadRequest(f"no item {i}; there are {self.items}")
                self._clock += 1
                self._ticks[i] = self._clock

    def tick(self, i: int) -> int:
        return self._ticks.get(i, i)

    def listing(self, since: float | None) -> list[int] | range:
        """Ids in the order the API lists them: by last change, then id; with ``since``, newer ones only."""
        with self._lock:
            ticks, count = dict(self._ticks), self.items
        if not ticks:  # creation order is change order: no sort needed however many items there are
            first = math.ceil(since) if self.since_inclusive else math.floor(since) + 1 if since is not None else 0
            start = 0 if since is None else max(0, min(count, first))
            return range(start, count)
        ids = sorted(range(count), key=lambda i: (ticks.get(i, i), i))
        if since is None:
            return ids
        if self.since_inclusive:
            return [i for i in ids if ticks.get(i, i) >= since]
        return [i for i in ids if ticks.get(i, i) > since]

    def _fault(
        self, client: str | None, first_item: int, attempt: str | None = None
    ) -> tuple[int, dict[str, str], Any] | None:
        """
        The injected answer for this request, or None to serve it; counts it against the client.

        ``outage_requests=None`` makes the outage last until the client's next try (the ``X-Try``
        header): the try that meets it gets nothing but 503s, however often it retries the page,
        and the next try finds the service back, as after a real outage that outlasts one attempt.
        """
        if self.outage_at_item is not None and first_item >= self.outage_at_item:
            with self._lock:
                if self.outage_requests is None:
                    down = self._outage_try.setdefault(client, attempt) == attempt
                else:
                    served = self._outages_served.get(client, 0)
                    down = served < self.outage_requests
                    if down:
                        self._outages_served[client] = served + 1
            if down:
                return 503, {"Retry-After": "0"}, {"error": "outage"}
        return self._other_faults(client, first_item)

    def _other_faults(self, client: str | None, first_item: int) -> tuple[int, dict[str, str], Any] | None:
        with self._lock:
            limited = self.rate_limit_at_item is not None and first_item >= self.rate_limit_at_item
            if limited and client not in self._rate_limited:
                self._rate_limited.add(client)
                return 429, {"Retry-After": str(int(self.retry_after))}, {"error": "rate limited"}
        if first_item == self.malformed_at_item:
            return 200, {"Content-Type": "text/html"}, "<html>Gateway hiccup</html>"
        return None

    def _record(self, record: dict[str, Any]) -> None:
        with self._lock:
            self.log.append(record)
            if self._log_stream is not None:
                self._log_stream.write(json.dumps(record) + "\n")
                self._log_stream.flush()

    def _window(self, path: str, query: dict[str, str]) -> tuple[int, int] | None:
        """(first item, page length) the request asks for; None for requests that ask for no items."""
        if path not in ENDPOINTS[:4]:
            return None
        size = query.get("per_page" if path == "/issues" else "limit", str(self.page_size))
        limit = _int(size, "per_page/limit", minimum=1)
        if path == "/issues":
            return (_int(query.get("page", "1"), "page", minimum=1) - 1) * limit, limit
        if path == "/issues/cursor":
            return decode_cursor(query.get("cursor", "")), limit
        name = "offset" if path == "/issues/offset" else "start"
        return _int(query.get(name, "0"), name, minimum=0), limit

    def _page(
        self, path: str, start: int, limit: int, query: dict[str, str] | None = None
    ) -> tuple[Any, dict[str, str]]:
        since = (query or {}).get("since")
        listed = self.listing(parse_since(since) if since is not None else None)
        total = len(listed)
        page = [make_item(i, self.tick(i)) for i in listed[start : start + limit]]
        looping = start == self.loop_at_item
        following = looping or start + limit < total
        next_start = start if looping else start + limit
        if path == "/issues":
            number = start // limit + 1
            next_page = (number if looping else number + 1) if following else None
            total_pages = math.ceil(total / limit)
            return {"items": page, "page": number, "total_pages": total_pages, "next_page": next_page}, {}
        if path == "/issues/offset":  # the client computes the next offset itself, so no loop here
            return {"items": page, "offset": start, "limit": limit, "total": total}, {}
        if path == "/issues/cursor":
            cursor = encode_cursor(next_start) if following else None
            return {"data": {"items": page}, "meta": {"next_cursor": cursor}}, {}
        if not following:
            return page, {}
        echoed = {name: value for name, value in (query or {}).items() if name in self.echo_params}
        next_url = f"{self.url}/issues/linked?{urlencode({**echoed, 'start': next_start, 'limit': limit})}"
        return page, {"Link": f'<{next_url}>; rel="next"'}


class _Handler(BaseHTTPRequestHandler):
    service: NewsletterService
    timeout = 10  # a half-sent request must not keep stop() waiting forever

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: the request log is the record, and stderr noise would drown test output."""

    def do_GET(self) -> None:
        svc = self.service
        t = time.monotonic()
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        client = self.headers.get("X-Client")
        first_item: int | None = None
        if svc.latency > 0:
            time.sleep(svc.latency)
        headers: dict[str, str] = {}
        served: list[int] | None = None
        try:
            window = svc._window(url.path, query)
            first_item = window[0] if window is not None else None
            attempt = self.headers.get("X-Try")
            fault = svc._fault(client, first_item, attempt) if first_item is not None else None
            if fault is not None:
                status, headers, body = fault
            elif window is not None:
                status = 200
                body, headers = svc._page(url.path, *window, query)
                if "since" in query:  # positions are not ids once filtered: log which items went out
                    since = parse_since(query["since"])
                    served = list(svc.listing(since)[window[0] : window[0] + window[1]])
            elif url.path == "/_health":
                status, body = 200, {"ok": True}
            else:
                status, body = 404, {"error": f"no such endpoint; try one of {', '.join(ENDPOINTS)}"}
        except BadRequest as err:
            status, body = 400, {"error": str(err)}
        record = {"t": t, "path": url.path, "query": query, "status": status, "client": client}
        extra = {"ids": served} if served is not None else {}
        svc._record({**record, "try": self.headers.get("X-Try"), "first_item": first_item, **extra})
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        headers.setdefault("Content-Type", "application/json")
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        """``POST /_admin`` ``{"add": n, "touch": [ids], "malformed_at_item": k}``: change the data between runs."""
        svc = self.service
        length = int(self.headers.get("Content-Length") or 0)
        try:
            if urlsplit(self.path).path != "/_admin":
                raise LookupError
            order = json.loads(self.rfile.read(length) or b"{}")
            if not isinstance(order, dict):
                raise BadRequest(f"expected a JSON object, got {order!r}")
            added = svc.add_items(int(order.get("add", 0)))
            svc.touch([int(i) for i in order.get("touch", [])])
            if "malformed_at_item" in order:
                svc.malformed_at_item = order["malformed_at_item"]
            status, body = 200, {"items": svc.items, "added": added, "latest": updated_at(svc._clock)}
        except LookupError:
            status, body = 404, {"error": "POST only to /_admin"}
        except (BadRequest, ValueError, TypeError) as err:
            status, body = 400, {"error": str(err)}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def start_in_thread(**kwargs: Any) -> NewsletterService:
    """For benchmarks, which start the service once and ``stop()`` it at the end."""
    return NewsletterService(**kwargs).start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0 = a free port (see --port-file)")
    parser.add_argument("--items", type=int, default=100)
    parser.add_argument("--page-size", type=int, default=10)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds to wait before every answer")
    parser.add_argument("--outage-at-item", type=int)
    parser.add_argument(
        "--outage-requests", type=int, default=0, help="503s per client; -1 = until the client's next try"
    )
    parser.add_argument("--rate-limit-at-item", type=int)
    parser.add_argument("--retry-after", type=int, default=1)
    parser.add_argument("--malformed-at-item", type=int)
    parser.add_argument("--loop-at-item", type=int)
    parser.add_argument("--log-file", type=Path, help="append every request here as a JSON line")
    parser.add_argument("--port-file", type=Path, help="write the bound port here once listening")
    args = parser.parse_args(argv)
    options = {k: v for k, v in vars(args).items() if k != "port_file"}
    if options["outage_requests"] == -1:
        options["outage_requests"] = None

    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    with NewsletterService(**options) as svc:
        if args.port_file is not None:
            # Written then renamed, so a script polling for the file never reads it half-written.
            args.port_file.parent.mkdir(parents=True, exist_ok=True)
            partial = args.port_file.with_name(args.port_file.name + ".tmp")
            partial.write_text(f"{svc.port}\n")
            partial.replace(args.port_file)
        print(f"newsletter service listening on {svc.url}", file=sys.stderr, flush=True)
        while not stopping.wait(0.2):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
