"""
A local fake of the Databricks Jobs API (2.0-2.2) on 127.0.0.1, for tests, the demo and the example DAG.

It serves the endpoints ``DatabricksHook`` calls for runs (``jobs/runs/submit``, ``jobs/run-now``,
``jobs/runs/get``, ``jobs/runs/get-output``, ``jobs/runs/cancel``, ``jobs/runs/cancel-all``,
``jobs/get``, ``jobs/list``), behind a normal Databricks connection (schema ``http``, host, port,
a token in the password). It keeps the promises the real service makes and the operators rely on:

* an ``idempotency_token`` (at most 64 characters) returns the run it first created, never a second;
* a run moves PENDING -> RUNNING -> TERMINATED with a result state; a cancelled run ends
  TERMINATED/CANCELED; a run that does not exist (or whose history expired) answers 404
  ``RESOURCE_DOES_NOT_EXIST``;
* requests without a bearer token are refused (401).

Runs advance one step per ``runs/get`` of that run (``pending_polls`` then ``running_polls`` answers),
so tests are deterministic without sleeping. Faults: ``drop_responses`` commits a request and then
closes the connection without answering (the lost ``runs/submit`` response), ``fail_requests``
answers a burst of 500s or 429s without doing anything, ``expire`` forgets a run. Every request is
recorded, so a test can count the runs it caused.

Run it stand-alone for ``airflow dags test`` (the demo does)::

    python -m demo.fake_databricks --port 0 --port-file /tmp/port --job nightly-etl
    export AIRFLOW_CONN_DATABRICKS_DEFAULT='{"conn_type": "databricks", "host": "127.0.0.1",
        "port": <port>, "schema": "http", "password": "fake-token"}'

and steer it over HTTP: ``POST /fake/faults`` with ``{"drop": {"runs/submit": 1}, "fail":
{"runs/get": [500, 4]}, "result_states": ["FAILED"]}``, ``GET /fake/state`` for runs and counts.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from demo import fake_databricks_tasks as tasks_api

MAX_TOKEN_LENGTH = 64
ACTIVE_STATES = ("PENDING", "QUEUED", "RUNNING", "TERMINATING")
RESULT_STATES = ("SUCCESS", "FAILED", "TIMEDOUT", "CANCELED")


class ApiError(Exception):
    def __init__(self, status: int, error_code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error_code, self.message = status, error_code, message


@dataclass
class Run:
    run_id: int
    job_id: int | None
    run_name: str
    payload: dict[str, Any]
    token: str | None
    #: Until the run first terminates: the result it is planned to end with (``plan_results``, or set by
    #: a test), which its last task's first attempt takes; then the result its tasks settled on.
    result_state: str
    life_cycle_state: str = "PENDING"
    polls: int = 0
    cancelled: bool = False
    start_time: int = field(default_factory=lambda: int(time.time() * 1000))
    #: The tasks, their latest attempts and the repairs (``fake_databricks_tasks``).
    tasks: tasks_api.RunTasks | None = None
    original_task_run_ids: list[int] = field(default_factory=list)

    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = {"life_cycle_state": self.life_cycle_state, "state_message": ""}
        if self.life_cycle_state == "TERMINATED":
            state["result_state"] = "CANCELED" if self.cancelled else self.result_state
            state["state_message"] = "Run cancelled." if self.cancelled else f"Run ended {self.result_state}."
        return state


@dataclass
class FakeDatabricks(tasks_api.TaskRunsMixin):
    """The service's state; ``FakeDatabricksServer`` puts it on a port."""

    #: ``runs/get`` answers a run spends in PENDING, then in RUNNING, before it terminates.
    pending_polls: int = 1
    running_polls: int = 2
    #: Result states for the next runs created, in order; SUCCESS once it is empty.
    result_states: deque[str] = field(default_factory=deque)
    #: Bearer token the service accepts (None: any).
    token: str | None = None
    runs: dict[int, Run] = field(default_factory=dict)
    jobs: dict[int, dict[str, Any]] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    base_url: str = "http://127.0.0.1"
    #: endpoint suffix -> how many more requests to commit and then leave unanswered.
    drop: dict[str, int] = field(default_factory=dict)
    #: endpoint suffix -> [status, how many more requests to refuse with it].
    fail: dict[str, list[int]] = field(default_factory=dict)
    #: task_key -> how many more attempts of that task fail (``fail_task_once``).
    task_failures: dict[str, int] = field(default_factory=dict)
    #: Every task attempt that ran: (run_id, task_key), in order.
    executions: list[tuple[int, str]] = field(default_factory=list)
    _run_ids: Any = field(default_factory=lambda: itertools.count(1001))
    _job_ids: Any = field(default_factory=lambda: itertools.count(501))
    _task_run_ids: Any = field(default_factory=lambda: itertools.count(5001))
    _last_repair_id: int = 9000
    _lock: threading.RLock = field(default_factory=threading.RLock)

    # ---- test controls ----------------------------------------------------------------------------

    def add_job(self, name: str, tasks: list[dict[str, Any]] | None = None) -> int:
        """A job; ``tasks`` as in the Jobs API (``task_key``, ``depends_on``), one task by default."""
        with self._lock:
            job_id = next(self._job_ids)
            self.jobs[job_id] = {"job_id": job_id, "settings": {"name": name, "tasks": list(tasks or [])}}
            return job_id

    def drop_responses(self, endpoint: str, count: int = 1) -> None:
        """
        Do the next ``count`` ``endpoint`` requests, then close the connection without answering.

        ``endpoint`` may name a run: ``runs/submit@etl`` only drops submissions with run_name ``etl``.
        """
        with self._lock:
            self.drop[endpoint] = self.drop.get(endpoint, 0) + count

    def fail_requests(self, endpoint: str, count: int, status: int = 500) -> None:
        """Refuse the next ``count`` ``endpoint`` requests with ``status`` (500, 503, 429) and do nothing."""
        with self._lock:
            self.fail[endpoint] = [status, count]

    def plan_results(self, *states: str) -> None:
        unknown = [s for s in states if s not in RESULT_STATES]
        if unknown:
            raise ValueError(f"result states must be among {RESULT_STATES}, got {unknown}")
        with self._lock:
            self.result_states.extend(states)

    def expire(self, run_id: int) -> None:
        """Forget a run, as Databricks does once a run's history is past retention."""
        with self._lock:
            del self.runs[run_id]

    def count(self, endpoint: str) -> int:
        """How many requests reached ``endpoint`` (faulted ones included)."""
        with self._lock:
            return sum(1 for r in self.requests if r["endpoint"] == endpoint)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "runs": [
                    {"run_id": r.run_id, "job_id": r.job_id, "run_name": r.run_name, "token": r.token}
                    | r.state()
                    | {
                        "tasks": [t.describe(r.life_cycle_state) for t in r.tasks.tasks] if r.tasks else [],
                        "repairs": list(r.tasks.repairs) if r.tasks else [],
                        "executed": [key for rid, key in self.executions if rid == r.run_id],
                    }
                    for r in self.runs.values()
                ],
                "requests": list(self.requests),
            }

    # ---- the API ------------------------------------------------------------------------------------

    def handle(self, method: str, endpoint: str, params: dict[str, Any]) -> dict[str, Any]:
        routes = {
            ("POST", "jobs/runs/submit"): self._submit,
            ("POST", "jobs/run-now"): self._run_now,
            ("GET", "jobs/runs/get"): self._get,
            ("GET", "jobs/runs/get-output"): self._get_output,
            ("POST", "jobs/runs/cancel"): self._cancel,
            ("POST", "jobs/runs/cancel-all"): self._cancel_all,
            ("POST", "jobs/runs/repair"): self._repair,
            ("GET", "jobs/get"): self._get_job,
            ("GET", "jobs/list"): self._list_jobs,
        }
        route = routes.get((method, endpoint))
        if route is None:
            raise ApiError(404, "ENDPOINT_NOT_FOUND", f"No API found for '{method} /{endpoint}'")
        with self._lock:
            try:
                return route(params)
            except tasks_api.RepairRefused as e:
                raise ApiError(400, e.error_code, e.message) from None

    def _create(self, job_id: int | None, run_name: str, params: dict[str, Any]) -> dict[str, Any]:
        token = params.get("idempotency_token")
        if token is not None:
            if not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN_LENGTH:
                raise ApiError(
                    400, "INVALID_PARAMETER_VALUE", f"idempotency_token must be 1-{MAX_TOKEN_LENGTH} characters"
                )
            existing = next((r for r in self.runs.values() if r.token == token), None)
            if existing is not None:
                return {"run_id": existing.run_id}
        specs = tasks_api.task_specs(params, self.jobs.get(job_id) if job_id is not None else None, run_name)
        run_tasks = tasks_api.new_run_tasks(specs, lambda: next(self._task_run_ids))
        result = self.result_states.popleft() if self.result_states else "SUCCESS"
        run = Run(next(self._run_ids), job_id, run_name, params, token, result, tasks=run_tasks)
        run.original_task_run_ids = [t.run_id for t in run_tasks.tasks]
        self.runs[run.run_id] = run
        return {"run_id": run.run_id, "number_in_job": run.run_id}

    def _submit(self, params: dict[str, Any]) -> dict[str, Any]:
        tasks = params.get("tasks")
        single = [k for k in params if k.endswith("_task")]
        if not tasks and not single:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", "One of tasks or a *_task field must be given")
        return self._create(None, str(params.get("run_name") or "Untitled"), params)

    def _run_now(self, params: dict[str, Any]) -> dict[str, Any]:
        job = self.jobs.get(_int(params.get("job_id"), "job_id"))
        if job is None:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Job {params.get('job_id')} does not exist.")
        return self._create(job["job_id"], job["settings"]["name"], params)

    def _run(self, params: dict[str, Any]) -> Run:
        run_id = _int(params.get("run_id"), "run_id")
        run = self.runs.get(run_id)
        if run is None:
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Run {run_id} does not exist.")
        return run

    def _task_run_of(self, params: dict[str, Any]) -> tuple[Run, tasks_api.TaskRun] | None:
        """The run and task of a request that names a task run's id; None for a run's id or an unknown one."""
        run_id = _int(params.get("run_id"), "run_id")
        return None if run_id in self.runs else self._task_run(run_id)

    def _describe(self, run: Run, history: bool = False) -> dict[str, Any]:
        described = {
            "run_id": run.run_id,
            "job_id": run.job_id,
            "run_name": run.run_name,
            "number_in_job": run.run_id,
            "start_time": run.start_time,
            "state": run.state(),
            "run_page_url": f"{self.base_url}/#job/{run.job_id or 0}/run/{run.run_id}",
            "tasks": [t.describe(run.life_cycle_state) for t in run.tasks.tasks] if run.tasks else [],
        }
        if history and run.tasks is not None:
            described["repair_history"] = tasks_api.repair_history(run.tasks, run.start_time, run.original_task_run_ids)
        return described

    def _get(self, params: dict[str, Any]) -> dict[str, Any]:
        task_run = self._task_run_of(params)
        if task_run is not None:
            # A task run answers by its own id; polling it moves its run as polling the run would.
            parent, task = task_run
            self._advance(parent)
            return self._describe_task_run(parent, task, self.base_url)
        run = self._run(params)
        self._advance(run)
        return self._describe(run, history=str(params.get("include_history", "")).lower() == "true")

    def _advance(self, run: Run) -> None:
        """One ``runs/get`` step of ``run``: PENDING, RUNNING, then TERMINATED (its tasks settle)."""
        if run.life_cycle_state in ("PENDING", "RUNNING", "TERMINATING"):
            run.polls += 1
            if run.life_cycle_state == "TERMINATING" or run.polls > self.pending_polls + self.running_polls:
                run.life_cycle_state = "TERMINATED"
                self._settle(run)
            elif run.polls > self.pending_polls:
                run.life_cycle_state = "RUNNING"

    def _get_output(self, params: dict[str, Any]) -> dict[str, Any]:
        found = self._task_run_of(params)
        if found is not None:
            parent, task = found
            task_output: dict[str, Any] = {"metadata": task.describe(parent.life_cycle_state)}
            if task.result_state == "FAILED":
                task_output["error"] = f"Injected failure of task {task.task_key}"
            return task_output
        run = self._run(params)
        if run.tasks is not None and len(run.tasks.tasks) > 1:
            raise ApiError(
                400,
                "INVALID_PARAMETER_VALUE",
                "Retrieving the output of runs with multiple tasks is not supported; ask for each task run",
            )
        output: dict[str, Any] = {"metadata": self._describe(run)}
        if run.life_cycle_state == "TERMINATED" and run.result_state == "FAILED":
            output["error"] = "Injected failure"
        return output

    def _cancel(self, params: dict[str, Any]) -> dict[str, Any]:
        task_run = self._task_run_of(params)
        if task_run is not None:
            self._cancel_task_run(*task_run)
            return {}
        run = self._run(params)
        # Its tasks that have not run end CANCELED when it terminates (``_settle``).
        if run.life_cycle_state in ACTIVE_STATES:
            run.cancelled = True
            run.life_cycle_state = "TERMINATING"
        return {}

    def _cancel_all(self, params: dict[str, Any]) -> dict[str, Any]:
        job_id = _int(params.get("job_id"), "job_id")
        for run in self.runs.values():
            if run.job_id == job_id and run.life_cycle_state in ACTIVE_STATES:
                run.cancelled = True
                run.life_cycle_state = "TERMINATING"
        return {}

    def _get_job(self, params: dict[str, Any]) -> dict[str, Any]:
        job = self.jobs.get(_int(params.get("job_id"), "job_id"))
        if job is None:
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Job {params.get('job_id')} does not exist.")
        return job

    def _list_jobs(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params.get("name")
        jobs = [j for j in self.jobs.values() if name is None or j["settings"]["name"] == name]
        return {"jobs": jobs, "has_more": False}


def _int(value: Any, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ApiError(400, "INVALID_PARAMETER_VALUE", f"{name} must be an integer, got {value!r}") from None


def _endpoint(path: str) -> str | None:
    """``/api/2.2/jobs/runs/get`` -> ``jobs/runs/get``; None for anything outside the API."""
    parts = path.strip("/").split("/")
    if len(parts) < 3 or parts[0] != "api" or parts[1] not in ("2.0", "2.1", "2.2"):
        return None
    return "/".join(parts[2:])


def _matches(key: str, endpoint: str, params: dict[str, Any]) -> bool:
    """``runs/submit`` matches every submission, ``runs/submit@etl`` only those with run_name ``etl``."""
    suffix, _, run_name = key.partition("@")
    return endpoint.endswith(suffix) and (not run_name or params.get("run_name") == run_name)


def _take(counters: dict[str, Any], endpoint: str, params: dict[str, Any]) -> Any:
    for key, value in counters.items():
        remaining = value[1] if isinstance(value, list) else value
        if _matches(key, endpoint, params) and remaining > 0:
            if isinstance(value, list):
                value[1] -= 1
            else:
                counters[key] -= 1
            return value
    return None


class _Handler(BaseHTTPRequestHandler):
    server: FakeDatabricksServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        fake = self.server.fake
        url = urlparse(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if url.path.startswith("/fake/"):
            self._admin(method, url.path, raw)
            return
        endpoint = _endpoint(url.path)
        # The async hook sends a GET's parameters as a JSON body, the sync one as a query string;
        # Databricks accepts both.
        params: dict[str, Any] = {k: v[-1] for k, v in parse_qs(url.query).items()}
        try:
            params.update(json.loads(raw or b"{}"))
        except ValueError:
            self._send(400, {"error_code": "MALFORMED_REQUEST", "message": "Body is not JSON"})
            return
        with fake._lock:
            entry = {"method": method, "endpoint": endpoint, "params": params, "at": time.time()}
            fake.requests.append(entry)
            failure = _take(fake.fail, endpoint or "", params)
            drop = _take(fake.drop, endpoint or "", params) is not None
        self.server.log_request_line(entry)
        if endpoint is None:
            self._send(404, {"error_code": "ENDPOINT_NOT_FOUND", "message": url.path})
            return
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or (fake.token is not None and auth != f"Bearer {fake.token}"):
            self._send(401, {"error_code": "UNAUTHENTICATED", "message": "Invalid access token."})
            return
        if failure is not None:
            status = failure[0]
            headers = {"Retry-After": "0"} if status == 429 else {}
            self._send(status, {"error_code": "TEMPORARILY_UNAVAILABLE", "message": "injected"}, headers)
            return
        try:
            body, status = fake.handle(method, endpoint, params), 200
        except ApiError as e:
            body, status = {"error_code": e.error_code, "message": e.message}, e.status
        if drop:
            # The request took effect; the client never learns of it, as when a response is lost.
            self.close_connection = True
            return
        self._send(status, body)

    def _admin(self, method: str, path: str, raw: bytes) -> None:
        fake = self.server.fake
        if method == "GET" and path == "/fake/state":
            self._send(200, fake.snapshot())
            return
        if method == "POST" and path == "/fake/faults":
            plan = json.loads(raw or b"{}")
            for endpoint, count in plan.get("drop", {}).items():
                fake.drop_responses(endpoint, int(count))
            for endpoint, (status, count) in plan.get("fail", {}).items():
                fake.fail_requests(endpoint, int(count), int(status))
            fake.plan_results(*plan.get("result_states", []))
            for task_key, times in plan.get("fail_tasks", {}).items():
                fake.fail_task_once(task_key, int(times))
            self._send(200, {})
            return
        self._send(404, {"error_code": "ENDPOINT_NOT_FOUND", "message": path})

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


class FakeDatabricksServer(ThreadingHTTPServer):
    """Serves a ``FakeDatabricks`` on 127.0.0.1; a context manager that runs it in a thread."""

    daemon_threads = True

    def __init__(self, fake: FakeDatabricks | None = None, port: int = 0, log_file: Path | None = None) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.fake = fake or FakeDatabricks()
        self.fake.base_url = self.url
        self._log_file = log_file
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def connection(self, token: str = "fake-token") -> dict[str, Any]:
        """The Databricks connection (``AIRFLOW_CONN_<ID>`` JSON) that reaches this server."""
        return {"conn_type": "databricks", "host": "127.0.0.1", "port": self.port, "schema": "http", "password": token}

    def log_request_line(self, entry: dict[str, Any]) -> None:
        if self._log_file is not None:
            with self._log_file.open("a") as f:
                f.write(json.dumps(entry) + "\n")

    def __enter__(self) -> FakeDatabricksServer:
        # shutdown() returns only when the loop next polls: at the default 0.5 s every test that used
        # the fake waited that long in its teardown (about 45 s per matrix leg).
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-databricks", daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0 = a free port (see --port-file)")
    parser.add_argument("--port-file", type=Path, help="write the bound port here once listening")
    parser.add_argument("--log-file", type=Path, help="append every request here as a JSON line")
    parser.add_argument("--job", action="append", default=[], help="create a job with this name (repeatable)")
    parser.add_argument("--pending-polls", type=int, default=1)
    parser.add_argument("--running-polls", type=int, default=2)
    args = parser.parse_args(argv)
    fake = FakeDatabricks(pending_polls=args.pending_polls, running_polls=args.running_polls)
    for name in args.job:
        print(f"job {fake.add_job(name)}: {name}", flush=True)
    server = FakeDatabricksServer(fake, port=args.port, log_file=args.log_file)
    if args.port_file is not None:
        args.port_file.write_text(str(server.port))
    print(f"fake Databricks Jobs API on {server.url}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
