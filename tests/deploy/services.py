"""
The fake external systems of the deployment suite, in the driver's process, with a fault plan.

Each service reports what the tasks do to it as events named after the task instance
(``<dag_id>/<map_index>``): ``start`` (the task process registered itself), ``submit`` (a job was
accepted: the service has committed it and has not answered yet), ``poll`` (a status read, before its
answer) and ``page`` (a page or batch served or stored, before its answer). ``Faults`` decides, per
scenario, at which event it SIGKILLs the task process (and, for a lost worker, its parent), or has a
person mark the task failed. Because the kill happens inside the service's request handler, the
moment is exact: the task dies with the request done and the answer unsent.

``Faults`` also says what a job service does to a scenario's jobs (``fails``: the first jobs of a
``clear_after_job_failed`` scenario end FAILED; ``holding``: the job of a ``clear_after_mark`` scenario
stays RUNNING until the marked try's process is gone and a later try has started).

Every service keeps a ledger for the assertions: jobs with their tokens and states, pages and batches
with the try that asked for them and when.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import re
import signal
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

from demo.fake_databricks import FakeDatabricks, FakeDatabricksServer
from demo.newsletter_service import NewsletterService
from tests.deploy.scenarios import PAGE_LATENCY, PAGE_SIZE, WALK_PAGES, all_scenarios, scenario_of
from tests.support.fake_aws import FakeAws
from tests.support.fake_jobs import FakeJobServer, FakeJobSystem

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.deploy.scenarios import Scenario


@dataclass
class Kill:
    name: str
    action: str
    event: str
    occurrence: int
    try_number: int
    pids: list[int]
    at: float


@dataclass
class Faults:
    """The fault plan: counts events per task instance and fires each scenario's fault once."""

    mark_failed: Callable[[Scenario, int], None]
    registrations: dict[str, list[dict[str, int]]] = field(default_factory=lambda: defaultdict(list))
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    kills: dict[str, Kill] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def register(self, name: str, try_number: int, pid: int, ppid: int) -> None:
        with self._lock:
            self.registrations[name].append({"try": try_number, "pid": pid, "ppid": ppid})
        self.event(name, "start")

    def event(self, name: str, event: str) -> None:
        scenario = scenario_of(name)
        if scenario is None:
            return
        map_index = _map_index(name)
        on, nth, action = scenario.fault
        with self._lock:
            self.counts[(name, event)] += 1
            count = self.counts[(name, event)]
            if action == "none" or event != on or count != nth or map_index != scenario.victim or name in self.kills:
                return
            latest = self.registrations[name][-1] if self.registrations[name] else None
            if latest is None:
                self.errors.append(f"{name}: {event} #{count} before the task registered its pid")
                return
            pids = [latest["pid"]] + ([latest["ppid"]] if action == "kill_worker" else [])
            self.kills[name] = Kill(name, action, event, count, latest["try"], pids, time.time())
        if action == "mark_failed":
            # In the request handler, before the answer: the task waits on this poll or page, so its
            # job cannot finish (nor its walk go on) before the mark has landed, however slow the
            # API server is under load.
            self.mark_failed(scenario, map_index)
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                self.errors.append(f"{name}: pid {pid} was already gone at {event} #{count}")

    def fails(self, name: str, nth: int) -> bool:
        """Whether the ``nth`` job (1-based, in submission order) of task instance ``name`` must fail."""
        scenario = scenario_of(name)
        return scenario is not None and _map_index(name) == scenario.victim and 1 <= nth <= scenario.failed_jobs

    def holding(self, name: str) -> bool:
        """
        Whether the job of task instance ``name`` must stay running (not advance towards its end).

        For a ``clear_after_mark`` scenario: until the marked try's process is gone (3.4's supervisor
        lets a marked task run on for ``killed_task_cleanup_time``) and a later try (the person's
        clear) has started, so that the next try always finds the job running, as a long job would be.
        For a ``mark_failed`` scenario: until the marked try's process is gone, so the mark, however late
        a loaded API server and heartbeat deliver it, finds the job still running.
        """
        scenario = scenario_of(name)
        if scenario is None or not scenario.holds_job or _map_index(name) != scenario.victim:
            return False
        with self._lock:
            kill = self.kills.get(name)
            tries = [r["try"] for r in self.registrations[name]]
        if kill is None:
            return True
        if scenario.moment == "mark_failed":
            # Marked for good: no later try comes; only until the marked try has stopped.
            return any(_alive(pid) for pid in kill.pids)
        if not any(t > kill.try_number for t in tries):
            return True
        return any(_alive(pid) for pid in kill.pids)

    def pids(self) -> set[int]:
        with self._lock:
            return {p for regs in self.registrations.values() for r in regs for p in (r["pid"],)}


def _map_index(name: str) -> int:
    return int(name.rsplit("/", 1)[1]) if "/" in name else -1


def _alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie waiting for its parent does not)."""
    try:
        os.kill(pid, 0)
        stat = Path(f"/proc/{pid}/stat").read_text()
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


# ---- the toy job system (ResumableJobMixin family) -------------------------------------------------------


class ToySystem(FakeJobSystem):
    plan: Faults

    def submit(self, spec: Any, token: str | None) -> tuple[str, bool]:
        answer = super().submit(spec, token)
        name = _name(spec)
        with self._lock:
            mine = [j for j in self.jobs.values() if _name(j.spec) == name]
            nth = next(n for n, j in enumerate(mine, 1) if j.job_id == answer[0])
            if self.plan.fails(name, nth):
                mine[nth - 1].spec["outcome"] = "FAILED"
        self.plan.event(name, "submit")
        return answer

    def status(self, job_id: str) -> str:
        job = self.jobs.get(job_id)
        if job is not None and self.plan.holding(_name(job.spec)):
            with self._lock:
                job.status_calls = 0  # it ends run_polls status reads after it is let go
        state = super().status(job_id)
        if job is not None:
            self.plan.event(_name(job.spec), "poll")
        return state

    def ledger(self) -> dict[str, list[dict[str, Any]]]:
        jobs: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for job in self.jobs.values():
            jobs[_name(job.spec)].append({"id": job.job_id, "token": job.token, "state": job.state})
        return jobs


def _name(spec: Any) -> str:
    return str(spec.get("scenario", "")) if isinstance(spec, dict) else ""


# ---- Databricks ---------------------------------------------------------------------------------------------


class Databricks(FakeDatabricks):
    plan: Faults

    def _create(self, job_id: int | None, run_name: str, params: dict[str, Any]) -> dict[str, Any]:
        answer = super()._create(job_id, run_name, params)
        mine = [r for r in self.runs.values() if r.run_name == run_name]
        nth = next(n for n, r in enumerate(mine, 1) if r.run_id == answer["run_id"])
        if self.plan.fails(run_name, nth):
            mine[nth - 1].result_state = "FAILED"
        return answer

    def handle(self, method: str, endpoint: str, params: dict[str, Any]) -> dict[str, Any]:
        if endpoint == "jobs/runs/get":
            with self._lock:
                held = self.runs.get(_int_or_none(params.get("run_id")))
                if held is not None and held.life_cycle_state == "RUNNING" and self.plan.holding(held.run_name):
                    held.polls = self.pending_polls  # it ends running_polls reads after it is let go
        answer = super().handle(method, endpoint, params)
        if endpoint == "jobs/runs/submit":
            self.plan.event(str(params.get("run_name")), "submit")
        elif endpoint == "jobs/runs/repair":
            # The repair is done (its tasks scheduled, its id spent) and the answer not yet sent.
            run = self.runs.get(int(params["run_id"]))
            if run is not None:
                self.plan.event(run.run_name, "repair")
        elif endpoint == "jobs/runs/get":
            run = self.runs.get(int(params["run_id"]))
            if run is not None:
                self.plan.event(run.run_name, "poll")
                if run.tasks is not None and run.tasks.repairs:
                    self.plan.event(run.run_name, "repaired_poll")
        return answer

    def fail_tasks(self, scenarios: list[Scenario]) -> None:
        """The first attempt of each repair scenario's failing task fails (its keys are the scenario's own)."""
        for scenario in scenarios:
            if scenario.failing_task is not None:
                self.fail_task_once(scenario.failing_task)

    def ledger(self) -> dict[str, list[dict[str, Any]]]:
        jobs: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for run in self.runs.values():
            state = run.state()
            jobs[run.run_name].append(
                {
                    "id": run.run_id,
                    "token": run.token,
                    "state": state.get("result_state", state["life_cycle_state"]),
                    "repairs": [r["id"] for r in run.tasks.repairs] if run.tasks else [],
                    "executed": self.executed(run.run_id),
                }
            )
        return jobs


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


# ---- the newsletter API (HTTP family) ----------------------------------------------------------------------


class Newsletter(NewsletterService):
    plan: Faults

    def _record(self, record: dict[str, Any]) -> None:
        record["wall"] = time.time()
        super()._record(record)
        if record["status"] == 200 and record.get("first_item") is not None and record.get("client"):
            self.plan.event(record["client"], "page")

    def pages(self) -> dict[str, list[dict[str, Any]]]:
        pages: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in list(self.log):
            if r["status"] == 200 and r.get("first_item") is not None:
                pages[r["client"]].append(
                    {"index": r["first_item"] // PAGE_SIZE, "try": int(r["try"] or 0), "at": r["wall"]}
                )
        return pages


# ---- the control server: task registration and the batch sink ----------------------------------------------


class Control:
    """
    ``POST /start`` {name, try, pid, ppid}: a task process says who it is (before ``execute``).
    ``POST /batch`` {name, index, try, items}: the ``run_batches`` family's sink; a batch stored
    again replaces its earlier copy, as a sink writing to a fixed place does.
    """

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self.batches: dict[str, dict[int, list[int]]] = defaultdict(dict)
        self.writes: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._lock = threading.Lock()
        control = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                if self.path == "/start":
                    control.faults.register(body["name"], int(body["try"]), int(body["pid"]), int(body["ppid"]))
                elif self.path == "/batch":
                    time.sleep(PAGE_LATENCY)
                    with control._lock:
                        control.batches[body["name"]][int(body["index"])] = list(body["items"])
                        control.writes[body["name"]].append(
                            {"index": int(body["index"]), "try": int(body["try"]), "at": time.time()}
                        )
                    control.faults.event(body["name"], "page")
                else:
                    self.send_error(404)
                    return
                data = b"{}"
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"


# ---- EMR Serverless on moto, behind a proxy that reports events -------------------------------------------


class Emr(FakeAws):
    """The moto layer, failing or holding a scenario's job runs by the name the task gave them."""

    plan: Faults

    def _mark(self, obj: Any, outcome: str) -> None:
        name = str(getattr(obj, "name", ""))
        mine = [r for runs in self.serverless().job_runs.values() for r in runs if r.name == name]
        nth = next((n for n, r in enumerate(mine, 1) if r is obj), 0)
        super()._mark(obj, "FAILED" if self.plan.fails(name, nth) else outcome)

    def _advance(self, obj: Any) -> None:
        if self.plan.holding(str(getattr(obj, "name", ""))):
            entry = self._targets.get(id(obj))
            if entry is not None:
                entry[2] = self.running_reads  # it ends running_reads reads after it is let go
            return
        super()._advance(obj)


_JOB_RUNS = re.compile(r"^/applications/(?P<app>[^/]+)/jobruns(?:/(?P<run>[^/?]+))?")


class EmrProxy:
    """Forwards to moto's server; reports StartJobRun (``submit``) and GetJobRun (``poll``) by job name."""

    def __init__(self, upstream: tuple[str, int], faults: Faults) -> None:
        self.upstream = upstream
        self.plan = faults
        self.names: dict[str, str] = {}  # job run id -> the name the task gave it
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _relay(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                skip = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}
                headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
                conn = http.client.HTTPConnection(*proxy.upstream, timeout=60)
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    response = conn.getresponse()
                    status, reason, out_headers, payload = (
                        response.status,
                        response.reason,
                        response.getheaders(),
                        response.read(),
                    )
                finally:
                    conn.close()
                proxy.observe(self.command, self.path, body, status, payload)
                self.send_response(status, reason)
                for key, value in out_headers:
                    if key.lower() not in skip:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _relay

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def observe(self, method: str, path: str, body: bytes, status: int, payload: bytes) -> None:
        match = _JOB_RUNS.match(path)
        if match is None or status >= 300:
            return
        if method == "POST" and match["run"] is None:
            name = str(json.loads(body or b"{}").get("name", ""))
            self.names[str(json.loads(payload).get("jobRunId"))] = name
            self.plan.event(name, "submit")
        elif method == "GET" and match["run"] is not None and match["run"] in self.names:
            self.plan.event(self.names[match["run"]], "poll")


def _quiet(httpd: ThreadingHTTPServer) -> None:
    """A task SIGKILLed mid-request resets its connection: expected here, so not printed as an error."""
    httpd.handle_error = lambda request, client_address: None  # type: ignore[method-assign]


# ---- all of them ------------------------------------------------------------------------------------------


class Services:
    """Starts every fake on 127.0.0.1 and says how the deployment reaches them (environment variables)."""

    def __init__(self, faults: Faults, output_dir: str) -> None:
        self.faults = faults
        self.output_dir = output_dir
        self.toy = ToySystem(run_polls=10)
        self.toy.plan = faults
        self.databricks = Databricks(pending_polls=1, running_polls=10)
        self.databricks.plan = faults
        self.databricks.fail_tasks(all_scenarios())
        self.newsletter = Newsletter(items=WALK_PAGES * PAGE_SIZE, page_size=PAGE_SIZE, latency=PAGE_LATENCY)
        self.newsletter.plan = faults
        self.control = Control(faults)
        self._stack: list[Callable[[], None]] = []
        self.emr: Any = None
        self.emr_application = ""

    def start(self) -> Services:
        toy_server = FakeJobServer(self.toy).__enter__()
        _quiet(toy_server.httpd)
        self._stack.append(lambda: toy_server.__exit__(None, None, None))
        self.toy_url = toy_server.url
        db_server = FakeDatabricksServer(self.databricks).__enter__()
        _quiet(db_server)
        self._stack.append(lambda: db_server.__exit__(None, None, None))
        self.databricks_conn = db_server.connection()
        _quiet(self.newsletter._httpd)
        self.newsletter.start()
        self._stack.append(self.newsletter.stop)
        _quiet(self.control.httpd)
        self.control.thread.start()
        self._stack.append(self._stop_server(self.control.httpd))
        self._start_emr()
        return self

    def _start_emr(self) -> None:
        import boto3
        from moto.server import ThreadedMotoServer

        from tests.support.fake_aws import REGION, create_application

        self.emr = Emr(running_reads=20)
        self.emr.plan = self.faults
        layer = self.emr.installed()
        layer.__enter__()
        self._stack.append(lambda: layer.__exit__(None, None, None))
        # moto's server logs every request through werkzeug; the ledger is the record here.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        self._stack.append(server.stop)
        host, port = server.get_host_and_port()
        self.emr_proxy = EmrProxy((host, port), self.faults)
        _quiet(self.emr_proxy.httpd)
        self.emr_proxy.thread.start()
        self._stack.append(self._stop_server(self.emr_proxy.httpd))
        client = boto3.client(
            "emr-serverless",
            endpoint_url=f"http://{host}:{port}",
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        self.emr_application = create_application(client, name="resumable-deploy")
        client.start_application(applicationId=self.emr_application)

    @staticmethod
    def _stop_server(httpd: ThreadingHTTPServer) -> Callable[[], None]:
        def stop() -> None:
            httpd.shutdown()
            httpd.server_close()

        return stop

    def stop(self) -> None:
        while self._stack:
            try:
                self._stack.pop()()
            except Exception as err:  # keep stopping the rest; the suite's verdict is already made
                print(f"WARNING: stopping a fake service failed: {err!r}")

    def environment(self) -> dict[str, str]:
        from tests.support.fake_aws import REGION, ROLE_ARN

        aws = {
            "conn_type": "aws",
            "login": "testing",
            "password": "testing",
            "extra": {"endpoint_url": self.emr_proxy.url, "region_name": REGION},
        }
        return {
            "AIRFLOW_CONN_DATABRICKS_DEPLOY": json.dumps(self.databricks_conn),
            "AIRFLOW_CONN_NEWSLETTER_DEPLOY": json.dumps(
                {"conn_type": "http", "host": "127.0.0.1", "port": self.newsletter.port, "schema": "http"}
            ),
            "AIRFLOW_CONN_AWS_DEPLOY": json.dumps(aws),
            "DEPLOY_TOY_URL": self.toy_url,
            "DEPLOY_CONTROL_URL": self.control.url,
            "DEPLOY_OUTPUT_DIR": self.output_dir,
            "DEPLOY_EMR_APPLICATION": self.emr_application,
            "DEPLOY_EMR_ROLE": ROLE_ARN,
        }

    # ---- ledgers ----------------------------------------------------------------------------------------

    def jobs(self, family: str) -> dict[str, list[dict[str, Any]]]:
        if family in ("toy", "taskflow_job"):  # the TaskFlow job family runs its jobs on the toy service
            return self.toy.ledger()
        if family == "databricks":
            return self.databricks.ledger()
        runs: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for run in self.emr.job_runs(self.emr_application):
            runs[run.name].append({"id": run.id, "token": run.client_token, "state": run.state})
        return runs

    def walked(self, family: str) -> dict[str, list[dict[str, Any]]]:
        """Pages (HTTP) or batches (sink: the batches and TaskFlow families) per task instance: index, try, time."""
        return self.newsletter.pages() if family == "http" else dict(self.control.writes)
