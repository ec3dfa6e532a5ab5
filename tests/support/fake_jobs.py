"""
A fake external job system: in-process for unit tests, over HTTP on 127.0.0.1 for ``dag.test()`` runs.

It behaves like the systems the provider targets: jobs go PENDING -> RUNNING -> a terminal state,
an idempotency token returns the job it first created (when ``idempotent``), old jobs can expire
(404), and faults can be injected: a submission that is committed but whose response is lost, and
bursts of 503s on status calls. It counts everything so tests can assert "exactly one job".
"""

from __future__ import annotations

import itertools
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

ACTIVE = ("PENDING", "RUNNING")
TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED")


class JobGone(KeyError):
    """The system does not know the job (never existed or expired)."""


class Unavailable(RuntimeError):
    """An injected transient error (HTTP 503)."""


@dataclass
class Job:
    job_id: str
    spec: Any
    token: str | None
    state: str = "PENDING"
    status_calls: int = 0


@dataclass
class Faults:
    #: Commit the next N submissions but fail to deliver the response.
    drop_submit_responses: int = 0
    #: Answer the next N status calls with a transient error.
    status_errors: int = 0


@dataclass
class FakeJobSystem:
    #: Whether a repeated token returns the first job (Databricks, EMR Serverless) or makes a new one.
    idempotent: bool = True
    #: Status calls a job spends RUNNING before it ends (with ``spec["outcome"]``, default SUCCEEDED).
    run_polls: int = 2
    jobs: dict[str, Job] = field(default_factory=dict)
    faults: Faults = field(default_factory=Faults)
    submit_calls: int = 0
    status_calls: int = 0
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # ---- the API ---------------------------------------------------------------------------------

    def submit(self, spec: Any, token: str | None) -> tuple[str, bool]:
        """Return (job id, response delivered)."""
        with self._lock:
            self.submit_calls += 1
            job = None
            if self.idempotent and token is not None:
                job = next((j for j in self.jobs.values() if j.token == token), None)
            if job is None:
                job = Job(job_id=f"job-{next(self._ids)}", spec=spec, token=token)
                self.jobs[job.job_id] = job
            if self.faults.drop_submit_responses > 0:
                self.faults.drop_submit_responses -= 1
                return job.job_id, False
            return job.job_id, True

    def status(self, job_id: str) -> str:
        with self._lock:
            self.status_calls += 1
            if self.faults.status_errors > 0:
                self.faults.status_errors -= 1
                raise Unavailable("503 Service Unavailable (injected)")
            job = self._job(job_id)
            job.status_calls += 1
            if job.state == "PENDING":
                job.state = "RUNNING"
            elif job.state == "RUNNING" and job.status_calls > self.run_polls:
                outcome = job.spec.get("outcome", "SUCCEEDED") if isinstance(job.spec, dict) else "SUCCEEDED"
                job.state = outcome
            return job.state

    def find(self, token: str) -> str | None:
        with self._lock:
            return next((j.job_id for j in self.jobs.values() if j.token == token), None)

    def cancel(self, job_id: str) -> None:
        with self._lock:
            job = self._job(job_id)
            if job.state in ACTIVE:
                job.state = "CANCELLED"

    # ---- test controls ---------------------------------------------------------------------------

    def expire(self, job_id: str) -> None:
        with self._lock:
            del self.jobs[job_id]

    def set_state(self, job_id: str, state: str) -> None:
        with self._lock:
            self._job(job_id).state = state

    def _job(self, job_id: str) -> Job:
        try:
            return self.jobs[job_id]
        except KeyError:
            raise JobGone(job_id) from None


class _Handler(BaseHTTPRequestHandler):
    system: FakeJobSystem

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self, code: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        url = urlparse(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        if url.path == "/jobs":
            job_id, delivered = self.system.submit(body.get("spec"), body.get("token"))
            if not delivered:
                # The job exists; the client sees the connection drop with no response.
                self.close_connection = True
                return
            self._reply(200, {"job_id": job_id})
        elif url.path.startswith("/jobs/") and url.path.endswith("/cancel"):
            try:
                self.system.cancel(url.path.split("/")[2])
            except JobGone:
                self._reply(404, {"error": "not found"})
                return
            self._reply(200, {})
        else:
            self._reply(404, {"error": "no such endpoint"})

    def do_GET(self) -> None:
        url = urlparse(self.path)
        if url.path == "/jobs":
            token = parse_qs(url.query).get("token", [""])[0]
            self._reply(200, {"job_id": self.system.find(token)})
        elif url.path.startswith("/jobs/"):
            try:
                state = self.system.status(url.path.split("/")[2])
            except Unavailable as err:
                self._reply(503, {"error": str(err)})
                return
            except JobGone:
                self._reply(404, {"error": "not found"})
                return
            self._reply(200, {"state": state})
        else:
            self._reply(404, {"error": "no such endpoint"})


class FakeJobServer:
    """Serves a FakeJobSystem on 127.0.0.1 (a free port) in a background thread."""

    def __init__(self, system: FakeJobSystem) -> None:
        self.system = system
        handler = type("Handler", (_Handler,), {"system": system})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FakeJobServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
