"""
An HTTP proxy on 127.0.0.1 that loses responses: the request reaches the server, which acts on it, and
the client gets its connection closed instead of the answer.

That is the window no retry policy can see into: the AWS call succeeded, the caller does not know.
Put it between an operator and moto's server (the connection's ``endpoint_url`` points at the proxy)
and say which AWS actions lose their response (``X-Amz-Target``, e.g.
``ElasticMapReduce.AddJobFlowSteps``) and how many times. It counts every action it forwarded.
"""

from __future__ import annotations

import http.client
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length"})


class LossyProxy:
    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        #: Requests forwarded (and answered by the server), per ``X-Amz-Target``.
        self.forwarded: Counter[str] = Counter()
        #: Responses thrown away, per ``X-Amz-Target``.
        self.lost: Counter[str] = Counter()
        self._to_lose: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        # A short poll: shutdown() waits for the next one (0.5 s by default, in every test's teardown).
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="lossy-proxy", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def lose(self, target: str, count: int = 1) -> None:
        """Throw away the next ``count`` responses to ``target`` (after the server handled the request)."""
        with self._lock:
            self._to_lose[target] += count

    def __enter__(self) -> LossyProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def _forward(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[bool, Any]:
        target = headers.get("X-Amz-Target", "")
        connection = http.client.HTTPConnection(*self.upstream, timeout=60)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            answer = (response.status, response.reason, response.getheaders(), response.read())
        finally:
            connection.close()
        with self._lock:
            self.forwarded[target] += 1
            lose = self._to_lose[target] > 0
            if lose:
                self._to_lose[target] -= 1
                self.lost[target] += 1
        return lose, answer

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _relay(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                headers["Content-Length"] = str(len(body))
                lose, (status, reason, response_headers, payload) = proxy._forward(
                    self.command, self.path, headers, body
                )
                if lose:
                    # The server has acted on the request; the client never hears about it.
                    self.close_connection = True
                    return
                self.send_response(status, reason)
                for key, value in response_headers:
                    if key.lower() not in _HOP_BY_HOP:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _relay

        return Handler
