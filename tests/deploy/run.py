"""
The deployment SIGKILL suite: ``python -m tests.deploy.run --leg 3.3`` (``make test-deploy`` runs it).

One real deployment per leg (``deployment.py``), every scenario of ``scenarios.py`` as its own DAG
run, all at once. The fake services kill the task processes at the scenario's moment; the scheduler
retries them. Then the suite checks, per task instance, the fake services' ledgers and the metadata
DB: one external job per task instance and generation, no record duplicated or missing, the recovery
logged as one decision line; it measures the redo (pages or batches, and seconds, done again after
the kill) and prints a table, also written as JSON to ``build/deploy/<leg>.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tests.deploy.backing import Postgres, Redis, ensure_installed
from tests.deploy.deployment import ROOT, Deployment, free_port
from tests.deploy.scenarios import (
    MARK_SECONDS,
    PAGE_LATENCY,
    PAGE_SIZE,
    REDO_GOAL_SECONDS,
    WALK_PAGES,
    Scenario,
    all_scenarios,
)
from tests.deploy.services import Faults, Services
from tests.deploy.upstream import known_bug, last_error, scenarios_named

#: The lines with which the mixins say what a try decided; a recovery logs exactly one.
DECISION = re.compile(
    r"Reattaching to job|already succeeded|Submitting again with token|Submitting job \(submission|"
    r"Found job .* submitted with token|Not submitting:|Resuming at batch|Starting at batch 0|The walk already finished|"
    r"Resuming job|Found the resume of job .* by an earlier try"
)
#: What the default checkpoint policy logs once a walk's writes are too slow for its redo bound.
SLOW_STORE = re.compile(r"Checkpoint writes take (\d+) ms on this state store, too slow for")
#: A found resume is polled next (or resumed once more): one recovery, whose log line comes with the
#: decision that follows it, as a job found by its token comes with its reattach (docs/monitoring.rst).
FOUND_RESUME = "Found the resume of job"
TERMINAL = {"success", "failed"}
#: How each job service spells a job that succeeded.
SUCCEEDED = ("SUCCESS", "SUCCEEDED")
#: The victim task instances. 3.4 keeps every try as a row (only the live one is in the working set)
#: and calls the stored map index region_index.
TASK_INSTANCES = "SELECT dag_id, map_index, state, try_number FROM task_instance WHERE task_id = 'work'"
TASK_INSTANCES_3_4 = (
    "SELECT dag_id, region_index, state, try_number FROM task_instance WHERE task_id = 'work' AND working_set = 1"
)
#: How often one component may die and be started again before the run gives up.
MAX_RESTARTS = 3


@dataclass
class Outcome:
    leg: str
    scenario: str
    family: str
    moment: str
    variant: str
    instances: int
    state: str = ""
    tries: int = 0
    jobs_started: int | None = None
    jobs_expected: int | None = None
    duplicates: int | None = None
    missing: int | None = None
    redo_pages: int | None = None
    redo_seconds: float | None = None
    decision_lines: str = ""
    #: Repairs of the victim's runs (Databricks), and how many the scenario expects.
    repairs: int | None = None
    repairs_expected: int | None = None
    problems: list[str] = field(default_factory=list)
    #: An upstream bug (named with its Airflow version) whose traceback named this scenario: its
    #: problems are reported, not counted as a failure.
    blocked: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def verdict(self) -> str:
        return "ok" if self.ok else "BLOCKED" if self.blocked else "FAIL"


class Suite:
    def __init__(self, leg: str, venv: Path, timeout: float) -> None:
        self.leg = leg
        self.venv = venv
        self.timeout = timeout
        self.home = ROOT / "build" / f"deploy-{leg}"
        self.scenarios = all_scenarios()
        self.airflow3 = not leg.startswith("2.")
        self.celery = leg.endswith("-celery")
        self.backing: list[Postgres | Redis] = []
        self.faults = Faults(mark_failed=self.mark_failed)
        self.services = Services(self.faults, str(self.home / "output"))
        self.deployment: Deployment | None = None
        self.cleared: dict[str, int] = {}
        self.not_cleared: set[str] = set()
        self.timings: dict[str, float] = {}
        self.notes: list[str] = []
        #: Airflow's version on this leg, as its package metadata says (3.4.0b2).
        self.airflow_version = ""
        #: dag_id -> the upstream bug (with its version) whose traceback named the scenario.
        self.blocked: dict[str, str] = {}
        #: Restarts per component; past MAX_RESTARTS the suite gives up (nothing left is meaningful).
        self.restarts: dict[str, int] = {}

    # ---- a person's actions ------------------------------------------------------------------------------

    def run_id(self, dag_id: str) -> str:
        assert self.deployment is not None
        return next(str(r) for d, r in self.deployment.rows("SELECT dag_id, run_id FROM dag_run") if d == dag_id)

    def api(self, method: str, path: str, body: dict[str, Any], attempts: int = 8, within: float = math.inf) -> Any:
        """
        A person's REST call; a 5xx is tried again, as a person would click again, a little later each time.

        On SQLite a 500 is the API server breaking its own deadlock (tests/deploy/settings.py); under
        heavy load several calls in a row can hit it. ``within`` bounds all attempts together, in seconds.
        """
        deadline = time.monotonic() + within
        assert self.deployment is not None
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.deployment.api_port}/api/v2/{path}",
            data=json.dumps(body).encode(),
            method=method,
            headers={"Content-Type": "application/json"},
        )
        for attempt in range(1, attempts + 1):
            try:
                left = deadline - time.monotonic()
                with urllib.request.urlopen(request, timeout=max(1.0, min(90.0, left))) as response:
                    return json.loads(response.read() or b"null")
            except urllib.error.HTTPError as err:
                pause = 2 * attempt
                if err.code < 500 or attempt == attempts or deadline - time.monotonic() < pause + 1:
                    raise
                self.notes.append(f"{method} {path} answered {err.code}; trying again")
                time.sleep(pause)

    def mark_failed(self, scenario: Scenario, map_index: int) -> None:
        """What a person's "Mark failed" on the running task does: the REST API on 3, the same call on 2."""
        try:
            run_id = self.run_id(scenario.dag_id)
            if self.airflow3:
                suffix = f"/{map_index}" if map_index >= 0 else ""
                self.api(
                    "PATCH",
                    f"dags/{scenario.dag_id}/dagRuns/{run_id}/taskInstances/work{suffix}",
                    {"new_state": "failed"},
                    within=MARK_SECONDS,
                )
            else:
                # What the 2.11 REST API's state change does to one task instance, without parsing the DAG.
                self.airflow2_python(
                    "from airflow.models.taskinstance import TaskInstance as TI\n"
                    "from airflow.utils.session import create_session\n"
                    "with create_session() as session:\n"
                    f"    ti = session.query(TI).filter_by(dag_id={scenario.dag_id!r}, task_id='work',"
                    f" run_id={run_id!r}, map_index={map_index}).one()\n"
                    "    ti.set_state('failed', session=session)\n"
                )
        except Exception as err:
            self.faults.errors.append(f"{scenario.dag_id}: marking the task failed did not work: {err!r}")

    def clear(self, scenario: Scenario) -> None:
        """
        A person's "Clear" on the task, once its run succeeded or failed (``Scenario.clear_on``).

        The REST API on Airflow 3 with the UI's default body: no ``keep_task_state``, so 3.4 discards
        the task's state (tried again on a 500: on SQLite the API server's action-logged calls
        deadlock it, docs/deployment.rst; 3.3's ``airflow tasks clear`` exits 0 without clearing
        these runs), the CLI on 2.11.
        """
        assert self.deployment is not None
        try:
            if self.airflow3:
                body = {"dry_run": False, "task_ids": ["work"], "only_failed": False, "reset_dag_runs": True}
                self.api("POST", f"dags/{scenario.dag_id}/clearTaskInstances", body)
            else:
                self.deployment.run_cli(["tasks", "clear", "-y", "-t", "^work$", scenario.dag_id], log="clear.log")
        except Exception as err:
            self.faults.errors.append(f"{scenario.dag_id}: clearing the task did not work: {err!r}")
            self.not_cleared.add(scenario.dag_id)  # nothing more to wait for: it fails with this error

    def airflow2_python(self, code: str) -> None:
        assert self.deployment is not None
        subprocess.run(
            [str(self.venv / "bin" / "python"), "-c", code],
            env=self.deployment.environment(),
            check=True,
            capture_output=True,
            timeout=MARK_SECONDS,
        )

    # ---- driving ------------------------------------------------------------------------------------------

    def run(self) -> list[Outcome]:
        start = time.monotonic()
        shutil.rmtree(self.home, ignore_errors=True)
        self.home.mkdir(parents=True)
        try:
            self.services.start()
            self.timings["services"] = time.monotonic() - start
            urls = self.start_backing() if self.celery else {}
            env = self.services.environment() | self.leg_environment()
            self.deployment = Deployment(self.leg, self.venv, self.home, self.airflow3, extra_env=env, **urls)
            self.airflow_version = self.installed_airflow()
            phase = time.monotonic()
            self.deployment.migrate()
            self.timings["db migrate"] = time.monotonic() - phase
            phase = time.monotonic()
            self.deployment.start()
            self.timings["start deployment"] = time.monotonic() - phase
            phase = time.monotonic()
            self.wait()
            self.timings["scenarios"] = time.monotonic() - phase
            # Late effects (a poll after a mark, a retry nobody expected) get a moment to show.
            time.sleep(3)
            outcomes = [self.evaluate(s) for s in self.scenarios]
        finally:
            phase = time.monotonic()
            if self.deployment is not None:
                leftovers = self.deployment.stop(self.faults.pids())
                if leftovers:
                    self.notes.append(f"had to SIGKILL at shutdown: {', '.join(leftovers)}")
            self.services.stop()
            for service in reversed(self.backing):
                service.stop()
            self.timings["stop"] = time.monotonic() - phase
            self.timings["total"] = time.monotonic() - start
        return outcomes

    def leg_environment(self) -> dict[str, str]:
        # Airflow 2.11 fails a SIGKILLed task through zombie callbacks that run late (deployment.py);
        # a retry must not start before they have run, or one of them fails the retry. Since 0.2.0
        # that costs tries, not jobs: with DEPLOY_LEG_RETRY_DELAY=1 the 14 kill scenarios started 7
        # jobs for 7 lives, no duplicate, but two mid-poll scenarios used up their retries.
        # DEPLOY_LEG_RETRY_DELAY overrides it, to watch 2.11's late callbacks meet a short delay.
        delay = os.environ.get("DEPLOY_LEG_RETRY_DELAY") or ("1" if self.airflow3 else "60")
        return {"DEPLOY_RETRIES": "2", "DEPLOY_RETRY_DELAY": delay}

    def start_backing(self) -> dict[str, str]:
        phase = time.monotonic()
        ensure_installed()
        self.timings["install postgresql, redis"] = time.monotonic() - phase
        phase = time.monotonic()
        postgres = Postgres(free_port())
        self.backing.append(postgres)
        postgres.start()
        redis = Redis(free_port(), self.home / "redis.log")
        self.backing.append(redis)
        redis.start()
        self.timings["start postgresql, redis"] = time.monotonic() - phase
        return {"database_url": postgres.url, "broker_url": redis.url}

    def installed_airflow(self) -> str:
        out = subprocess.run(
            [
                str(self.venv / "bin" / "python"),
                "-c",
                "import importlib.metadata as m; print(m.version('apache-airflow'))",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()

    def states(self) -> tuple[dict[str, str], dict[tuple[str, int], tuple[str, int]]]:
        assert self.deployment is not None
        runs = {d: s for d, s in self.deployment.rows("SELECT dag_id, state FROM dag_run")}
        tis = {
            (d, int(m)): (s or "", int(t or 0))
            for d, m, s, t in self.deployment.rows(TASK_INSTANCES_3_4 if self.leg.startswith("3.4") else TASK_INSTANCES)
        }
        return runs, tis

    def watch_components(self) -> None:
        """
        Say at once which component died and why (the last line of its traceback), and start it again.

        A death that matches a known upstream bug of this Airflow (``upstream.py``) blocks the scenarios
        its traceback names. A component that dies more than ``MAX_RESTARTS`` times ends the run.
        """
        assert self.deployment is not None
        for name, code, tail in self.deployment.dead():
            error = last_error(tail)
            bug = known_bug(self.airflow_version, name, tail)
            named = sorted(scenarios_named(tail[tail.rfind("Traceback (most recent call last)") :]))
            message = f"airflow {name} died (exit {code}): {error}"
            if bug is not None:
                message += f" -- {bug.describe(self.airflow_version)}"
                for dag_id in named:
                    self.blocked.setdefault(dag_id, bug.describe(self.airflow_version))
            if named:
                message += f"; its traceback names {', '.join(named)}"
            print(f"==> [deploy {self.leg}] {message}", flush=True)
            self.notes.append(message)
            self.restarts[name] = self.restarts.get(name, 0) + 1
            if self.restarts[name] > MAX_RESTARTS:
                raise RuntimeError(f"airflow {name} died {self.restarts[name]} times; last: {error}")
            self.deployment.restart(name)

    def wait(self) -> None:
        assert self.deployment is not None
        clock = LoadScaledDeadline(self.timeout)
        pending: list[str] = []
        clearing: list[threading.Thread] = []
        while not clock.expired():
            self.watch_components()
            runs, tis = self.states()
            pending = []
            for s in self.scenarios:
                state = runs.get(s.dag_id)
                if s.dag_id in self.not_cleared or s.dag_id in self.blocked:
                    continue
                if s.clear_on:
                    ti = tis.get((s.dag_id, -1))
                    if s.dag_id not in self.cleared:
                        if state == s.clear_on and ti is not None and ti[0] == s.clear_on:
                            self.cleared[s.dag_id] = ti[1]
                            thread = threading.Thread(target=self.clear, args=(s,), daemon=True)
                            thread.start()
                            clearing.append(thread)
                        pending.append(s.dag_id)
                        continue
                    if ti is None or ti[1] <= self.cleared[s.dag_id] or state not in TERMINAL:
                        pending.append(s.dag_id)
                        continue
                if state not in TERMINAL:
                    pending.append(s.dag_id)
            if not pending:
                if clock.stretched():
                    self.notes.append(clock.describe())
                return
            time.sleep(2)
        raise TimeoutError(f"{len(pending)} scenario(s) unfinished after {clock.describe()}: {', '.join(pending)}")

    # ---- checking -----------------------------------------------------------------------------------------

    def logs(self, dag_id: str, map_index: int, attempt: int) -> str:
        found = []
        for path in (self.home / "logs" / f"dag_id={dag_id}").glob(f"**/attempt={attempt}.log"):
            in_map = re.search(r"/map_index=(\d+)/", str(path))
            if (int(in_map[1]) if in_map else -1) == map_index:
                found.append(path.read_text(errors="replace"))
        return "\n".join(found)

    def ran(self, dag_id: str, map_index: int, attempt: int) -> bool:
        """
        Whether the try reached the task's code: a try failed before it started has no log, and one a late
        2.11 callback pushed back into its retry period logs only that it "is not able to be run".
        """
        text = self.logs(dag_id, map_index, attempt)
        return bool(text.strip()) and NOT_RUN not in text

    def first_attempt_after(self, dag_id: str, map_index: int, try_number: int) -> int:
        """The first try after ``try_number`` that ran (see :meth:`ran`)."""
        for attempt in range(try_number + 1, try_number + 4):
            if self.ran(dag_id, map_index, attempt):
                return attempt
        return try_number + 1

    def after_success(self, dag_id: str, map_index: int, tries: int) -> list[int]:
        """
        Tries Airflow 2.11 started after a try of the same life succeeded (a late zombie callback failed
        the success), which the product recognised and answered from the kept state: its own log line.
        """
        return [a for a in range(2, tries + 1) if AFTER_SUCCESS in self.logs(dag_id, map_index, a)]

    def succeeded_then_failed_late(self, s: Scenario, out: Outcome, run_state: str | None) -> bool:
        """
        2.11: the DAG run succeeded and the last try that ran logged its success, but a late zombie
        callback set the task instance to up_for_retry afterwards; a finished run's retry never runs.
        """
        return (
            not self.airflow3
            and s.expected_state == "success"
            and out.state == "up_for_retry"
            and run_state == "success"
            and SUCCESS_LINE in self.logs(s.dag_id, s.victim, out.tries)
            and self.zombie_detections(s.dag_id, s.victim) > 1
        )

    def zombie_detections(self, dag_id: str, map_index: int) -> int:
        """How often Airflow 2.11's scheduler reported this task instance a zombie."""
        log = self.home / "scheduler.log"
        if not log.exists():
            return 0
        wanted = f"'DAG Id': '{dag_id}', 'Task Id': 'work'"
        # The report names a map index only for a mapped task instance.
        index = f"'Map Index': {map_index}," if map_index >= 0 else "'Map Index'"
        return sum(
            1
            for line in log.read_text(errors="replace").splitlines()
            if "Detected zombie job" in line and wanted in line and (index in line) == (map_index >= 0)
        )

    def heartbeat_timeouts(self, dag_id: str, map_index: int) -> set[int]:
        """
        The tries of this task instance Airflow failed for a missing heartbeat (its audit log's
        "heartbeat timeout" rows, written by the scheduler on 2.11 and 3.x): the environment's doing.
        """
        assert self.deployment is not None
        rows = self.deployment.rows("SELECT dag_id, map_index, try_number FROM log WHERE event = 'heartbeat timeout'")
        # 3.4 keys a mapped instance by its region index; its audit rows keep the map index: by dag on 3.4.
        any_index = self.leg.startswith("3.4")
        return {
            int(t)
            for d, m, t in rows
            if d == dag_id and t is not None and (any_index or int(m if m is not None else -1) == map_index)
        }

    def evaluate(self, s: Scenario) -> Outcome:
        runs, tis = self.states()
        out = Outcome(self.leg, s.dag_id, s.family, s.moment, s.variant, s.instances)
        problems = out.problems
        indexes = list(range(s.instances)) if s.instances > 1 else [-1]
        victim = tis.get((s.dag_id, s.victim), ("missing", 0))
        out.state, out.tries = victim
        if self.succeeded_then_failed_late(s, out, runs.get(s.dag_id)):
            self.notes.append(
                f"{s.dag_id}: try {out.tries} succeeded and the DAG run with it, then a late zombie callback of "
                "Airflow 2.11 set the task instance to up_for_retry (a finished run's retry never runs)"
            )
        elif out.state != s.expected_state:
            problems.append(f"task instance {s.victim} ended {out.state!r}, expected {s.expected_state!r}")
        want_tries = s.expected_tries
        # Airflow 2.11's zombie scan queues a failure callback each time it finds the killed try still
        # "running"; one that lands after the retry was queued fails that retry before it starts
        # (docs/deployment.rst). Such a try never ran our code, so it is allowed, and named.
        spare = 0
        # Only a task instance with more tries than expected needs the scheduler log read for it.
        late: list[int] = []
        if out.tries > want_tries and not self.airflow3 and self.zombie_detections(s.dag_id, s.victim) > 1:
            spare = sum(1 for a in range(1, out.tries + 1) if not self.ran(s.dag_id, s.victim, a))
            # A try after a success of the same life, answered from the kept state (no job started:
            # judged below with the jobs), is the same late callback's doing.
            late = self.after_success(s.dag_id, s.victim, out.tries)
        # On a loaded machine a try can miss its heartbeat and be failed by the scheduler, which is the
        # environment, not the product: allowed and named, as long as the product's promises (jobs per
        # life, duplicates, missing, redo, one decision line per recovering try) hold, which are judged
        # below whatever the tries. The fault's own try is expected to time out when its worker is killed.
        killed = self.faults.kills.get(f"{s.dag_id}/{s.victim}")
        starved = sorted(
            t
            for t in self.heartbeat_timeouts(s.dag_id, s.victim)
            if out.tries > want_tries and (killed is None or t != killed.try_number)
        )
        if not want_tries <= out.tries <= want_tries + spare + len(late) + len(starved):
            problems.append(f"task instance {s.victim} took {out.tries} tries, expected {want_tries}")
        elif out.tries > want_tries:
            if spare:
                self.notes.append(
                    f"{s.dag_id}: {spare} extra try that never ran (no log, or not able to be run), failed by a "
                    "late zombie callback of Airflow 2.11 (the killed try was reported a zombie more than once)"
                )
            if late:
                self.notes.append(
                    f"{s.dag_id}: try {', '.join(map(str, late))} ran after a success of the same life (a late "
                    "zombie callback of Airflow 2.11 failed it) and returned the job's result from the kept state"
                )
            if starved:
                self.notes.append(
                    f"{s.dag_id}: try {', '.join(map(str, starved))} missed its heartbeat (machine load "
                    f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores) and was failed by the scheduler; "
                    "the retry after it is allowed"
                )
        for i in indexes:
            if i != s.victim and tis.get((s.dag_id, i)) != ("success", 1):
                problems.append(f"task instance {i} (not killed) ended {tis.get((s.dag_id, i))}, expected success in 1")
        action = s.fault[2]
        kill = self.faults.kills.get(f"{s.dag_id}/{s.victim}")
        if action != "none" and kill is None:
            problems.append(f"the fault ({s.fault}) never fired")
        problems.extend(e for e in self.faults.errors if e.startswith(s.dag_id + "/") or e.startswith(s.dag_id + ":"))

        # The attempt whose log must hold exactly one decision line: the retry after a kill, the
        # try after a person's clear.
        attempt = None
        if action in ("kill", "kill_worker") and kill is not None:
            attempt = self.first_attempt_after(s.dag_id, s.victim, kill.try_number)
        elif s.clear_on:
            attempt = out.tries
        if attempt is not None:
            problems.extend(self.judge_decision(s, out, attempt))
        # A repair scenario's killed try recovered from the failed run: it decided to repair, once.
        if s.repairing_decision is not None and kill is not None:
            problems.extend(self.judge_decision(s, out, kill.try_number, want=s.repairing_decision))
        if s.walk:
            self.evaluate_walk(s, out, indexes, kill)
        else:
            self.evaluate_jobs(s, out, indexes, action)
        if out.problems and s.dag_id in self.blocked:
            out.blocked = self.blocked[s.dag_id]
        return out

    def judge_decision(self, s: Scenario, out: Outcome, attempt: int, want: str | None = None) -> list[str]:
        """
        Exactly one decision line in the recovering try's log, of the kind the scenario promises
        (``want``, by default ``Scenario.expected_decision``).
        """
        text = self.logs(s.dag_id, s.victim, attempt)
        found = decisions(text)
        lines = f"try {attempt}: " + "; ".join(short for short, _ in found)
        out.decision_lines = "; ".join(sorted(filter(None, [out.decision_lines, lines])))
        if len(found) != 1:
            return [f"try {attempt} logged {len(found)} decision lines, expected 1: {[short for short, _ in found]}"]
        want = want if want is not None else s.expected_decision
        if want is not None and not re.search(want, found[0][1]):
            return [f"try {attempt} decided {found[0][1].strip()!r}, expected a line matching {want!r}"]
        return []

    def evaluate_jobs(self, s: Scenario, out: Outcome, indexes: list[int], action: str) -> None:
        ledger = self.services.jobs(s.family)
        out.jobs_expected = len(indexes) * s.jobs_per_instance
        out.jobs_started = sum(len(ledger.get(f"{s.dag_id}/{i}", [])) for i in indexes)
        out.duplicates = max(0, out.jobs_started - out.jobs_expected)
        out.missing = sum(max(0, s.jobs_per_instance - len(ledger.get(f"{s.dag_id}/{i}", []))) for i in indexes)
        if out.duplicates or out.missing:
            out.problems.append(f"{out.jobs_started} jobs started, expected {out.jobs_expected}")
        if s.family == "databricks":
            out.problems.extend(judge_repairs(s, out, [ledger.get(f"{s.dag_id}/{i}", []) for i in indexes]))
        # A mark that nobody clears leaves the job as the mark left it (checked below).
        marked_for_good = action == "mark_failed" and not s.clear_on
        for i in indexes:
            jobs = ledger.get(f"{s.dag_id}/{i}", [])
            if len({j["token"] for j in jobs}) != len(jobs):
                out.problems.append(f"instance {i}: two jobs share a token: {jobs}")
            failing = s.failed_jobs if i == s.victim else 0
            states = [
                "failed" if j["state"] == "FAILED" else "succeeded" if j["state"] in SUCCEEDED else j["state"]
                for j in jobs
            ]
            if not marked_for_good and states != ["failed"] * failing + ["succeeded"] * (len(jobs) - failing):
                want = f"the first {failing} failed, the rest succeeded" if failing else "every job succeeded"
                out.problems.append(f"instance {i}: expected {want}: {jobs}")
        if action == "mark_failed":
            text = self.logs(s.dag_id, s.victim, 1)
            jobs = ledger.get(f"{s.dag_id}/{s.victim}", [])
            # docs/mixins.rst, "Killing a task": the toy's mark_failed sets cancel_on_kill=True, every
            # other scenario keeps False.
            if s.cancel_on_kill:
                want, states = "Task killed: cancelling job", {"CANCELLED"}
            else:
                # Not cancelled: still running, or ended on its own while the killed try was given time
                # to stop (Airflow 3.4 waits [core] killed_task_cleanup_time, 60 s, before SIGKILL).
                want, states = "Task killed: leaving job", {"RUNNING", "PENDING", "SUCCESS", "SUCCEEDED"}
            if want not in text:
                out.problems.append(f"try 1 did not log {want!r} after the mark")
            if marked_for_good and (not jobs or jobs[0]["state"] not in states):
                out.problems.append(f"after the mark the job is {jobs}, expected one in {sorted(states)}")
            # A marked try that still returned must not finish its state: Airflow recorded no success.
            if "after success: marked finished" in text or "after success: dropped" in text:
                out.problems.append("the marked try's state was finished as if it had succeeded")
            if not out.decision_lines and want in text:
                out.decision_lines = f"try 1: {want}"

    def evaluate_walk(self, s: Scenario, out: Outcome, indexes: list[int], kill: Any) -> None:
        walked = self.services.walked(s.family)
        expected = set(range(WALK_PAGES * PAGE_SIZE))
        out.duplicates = out.missing = 0
        for i in indexes:
            records = self.records(s, i)
            out.duplicates += len(records) - len(set(records))
            if s.fault[2] != "mark_failed" or i != s.victim:
                out.missing += len(expected - set(records))
        if out.duplicates or out.missing:
            out.problems.append(f"{out.duplicates} records duplicated, {out.missing} missing")
        pages = walked.get(f"{s.dag_id}/{s.victim}", [])
        if kill is not None and kill.action in ("kill", "kill_worker"):
            before = {p["index"]: p["at"] for p in pages if p["try"] == kill.try_number}
            retry = min((p["try"] for p in pages if p["try"] > kill.try_number), default=kill.try_number + 1)
            after = {p["index"] for p in pages if p["try"] == retry}
            redone = sorted(set(before) & after)
            out.redo_pages = len(redone)
            out.redo_seconds = round(max(0.0, kill.at - min(before[i] for i in redone)), 2) if redone else 0.0
            # The default policy's promise (at most 1 s of work redone), as a count: a page or batch
            # takes at least PAGE_LATENCY, so 1 s never holds more of them than this, however slow the
            # pages; slow checkpoint writes can stretch it, and the killed try says so (judge_slow_store_redo).
            most = int(REDO_GOAL_SECONDS / PAGE_LATENCY)
            if s.variant == "default" and out.redo_pages > most:
                self.judge_slow_store_redo(s, out, kill.try_number, len(before), most)
        if s.clear_on:
            second = {p["index"] for p in pages if p["try"] == out.tries}
            if len(second) != WALK_PAGES:
                out.problems.append(f"the cleared task walked {len(second)} pages, expected all {WALK_PAGES} again")

    def judge_slow_store_redo(self, s: Scenario, out: Outcome, try_number: int, walked: int, most: int) -> None:
        """
        A default-policy redo past the 1 s bound: explained when the killed try logged that the store was
        too slow for it, a failure otherwise.

        The policy never checkpoints more often than a write takes (docs/mixins.rst), so writes slowed by
        load (over 0.5 s each on the 3.3 SQLite leg at a load average of 30) stretch what a kill redoes,
        and the try's log says so. Such a redo must still resume from a checkpoint the try wrote.
        """
        slow = SLOW_STORE.search(self.logs(s.dag_id, s.victim, try_number))
        if slow is None:
            out.problems.append(
                f"the default policy redid {out.redo_pages} pages or batches after the kill, more than the "
                f"{most} that {REDO_GOAL_SECONDS:g} s of work holds"
            )
        elif out.redo_pages >= walked:
            out.problems.append(
                f"the retry redid all {walked} pages or batches of try {try_number}: no checkpoint was used"
            )
        else:
            self.notes.append(
                f"{s.dag_id}: the default policy redid {out.redo_pages} pages or batches after the kill, more "
                f"than the {most} that {REDO_GOAL_SECONDS:g} s of work holds, and try {try_number} said why: "
                f"checkpoint writes took {slow[1]} ms on the loaded store"
            )

    def records(self, s: Scenario, map_index: int) -> list[int]:
        if s.family != "http":  # the batches and TaskFlow loops write to the sink
            stored = self.services.control.batches.get(f"{s.dag_id}/{map_index}", {})
            return [item for index in sorted(stored) for item in stored[index]]
        ids: list[int] = []
        for part in sorted((self.home / "output" / s.dag_id / str(map_index)).glob("part-*.jsonl")):
            ids.extend(json.loads(line)["id"] for line in part.read_text().splitlines() if line.strip())
        return ids


def decisions(text: str) -> list[tuple[str, str]]:
    """
    The decision lines of one try's log: (what matched, the whole line), in order. A found resume
    and the decision that follows it (reattach, or return the result) are one recovery: one entry,
    the found line followed by the next.
    """
    found = [(m.group(0), _line_at(text, m.start())) for m in DECISION.finditer(text)]
    merged: list[tuple[str, str]] = []
    for short, line in found:
        follows_found = merged and merged[-1][0].startswith(FOUND_RESUME) and "\n" not in merged[-1][1]
        if follows_found and short.startswith(("Reattaching to job", "already succeeded")):
            merged[-1] = (f"{merged[-1][0]} + {short}", f"{merged[-1][1]}\n{line}")
            continue
        merged.append((short, line))
    return merged


def judge_repairs(s: Scenario, out: Outcome, jobs_per_instance: list[list[dict[str, Any]]]) -> list[str]:
    """
    Databricks: each run repaired exactly as often as the scenario expects (a repair whose answer was
    lost is found, not repeated), and in a repair scenario's run only the failed task ran again.
    """
    problems: list[str] = []
    runs = [run for jobs in jobs_per_instance for run in jobs]
    out.repairs = sum(len(run.get("repairs", [])) for run in runs)
    out.repairs_expected = len(runs) * s.expected_repairs
    for run in runs:
        if len(run.get("repairs", [])) != s.expected_repairs:
            problems.append(
                f"run {run['id']} was repaired {len(run.get('repairs', []))} times, expected {s.expected_repairs}"
            )
        want = s.expected_executed
        if want is not None and run.get("executed") != want:
            problems.append(
                f"run {run['id']} ran tasks {run.get('executed')}, expected {want} (only the failed one again)"
            )
    return problems


def _line_at(text: str, position: int) -> str:
    """The whole log line around ``position``."""
    start = text.rfind("\n", 0, position) + 1
    end = text.find("\n", position)
    return text[start : end if end >= 0 else len(text)]


# ---- report ----------------------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


def table(outcomes: list[Outcome]) -> str:
    head = ["scenario", "state/tries", "jobs", "repairs", "dup", "missing", "redo pages", "redo s", "verdict"]
    rows = [head]
    for o in outcomes:
        jobs = "-" if o.jobs_started is None else f"{o.jobs_started}/{o.jobs_expected}"
        repairs = "-" if o.repairs is None else f"{o.repairs}/{o.repairs_expected}"
        rows.append(
            [
                o.scenario.removeprefix("deploy_"),
                f"{o.state}/{o.tries}",
                jobs,
                repairs,
                _cell(o.duplicates),
                _cell(o.missing),
                _cell(o.redo_pages),
                _cell(o.redo_seconds),
                o.verdict,
            ]
        )
    jobs = [o for o in outcomes if o.jobs_started is not None]
    rows.append(
        [
            f"total ({len(outcomes)})",
            "",
            f"{sum(o.jobs_started or 0 for o in jobs)}/{sum(o.jobs_expected or 0 for o in jobs)}",
            "",
            str(sum(o.duplicates or 0 for o in outcomes)),
            str(sum(o.missing or 0 for o in outcomes)),
            "",
            "",
            f"{sum(o.ok for o in outcomes)} ok"
            + (f", {blocked} blocked" if (blocked := sum(bool(o.blocked) and not o.ok for o in outcomes)) else ""),
        ]
    )
    widths = [max(len(r[c]) for r in rows) for c in range(len(head))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)) for r in rows)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


#: What Airflow 2.11's LocalTaskJob logs for a try it does not start (still in its retry period, say).
NOT_RUN = "Task is not able to be run"
#: What a try logs when Airflow 2.11 started it after a success of the same life (state/lifecycle.py).
AFTER_SUCCESS = "without a clear since"
#: What Airflow 2.11 logs for a try that succeeded.
SUCCESS_LINE = "Marking task as SUCCESS"


class LoadScaledDeadline:
    """
    A deadline that counts time at the rate the machine can give it: while the 1-minute load average
    is above the number of cores, a second of wall time counts as ``cores / load`` of a second (a
    scenario's tasks get that share of the CPU), up to three times ``seconds`` of wall time in all.
    """

    def __init__(self, seconds: float, *, clock: Any = time.monotonic, load: Any = None, cores: int | None = None):
        self.seconds = seconds
        self._clock = clock
        self._load = load or (lambda: os.getloadavg()[0])
        self._cores = cores or os.cpu_count() or 1
        self.began = self._last = clock()
        self.counted = 0.0

    def expired(self) -> bool:
        now = self._clock()
        share = min(1.0, self._cores / max(self._load(), 1e-9))
        self.counted += (now - self._last) * share
        self._last = now
        return self.counted >= self.seconds or now - self.began >= 3 * self.seconds

    def stretched(self) -> bool:
        return self._last - self.began > self.seconds * 1.05

    def describe(self) -> str:
        wall = self._last - self.began
        return f"{wall:.0f}s of wall time ({self.counted:.0f}s counted at the machine's load; deadline {self.seconds:.0f}s)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument(
        "--leg", required=True, help="3.4, 3.3 or 2.11 (LocalExecutor, SQLite), 3.3-celery (CeleryExecutor, PostgreSQL)"
    )
    parser.add_argument("--venv", required=True, type=Path)
    parser.add_argument("--timeout", type=float, default=480, help="seconds for every scenario to finish")
    parser.add_argument("--only", help="regex: run only the scenarios whose dag_id matches (for debugging)")
    args = parser.parse_args(argv)
    venv = args.venv if args.venv.is_absolute() else ROOT / args.venv
    # A cancelled CI job sends SIGTERM: unwind through the finally blocks that stop every process.
    signal.signal(signal.SIGTERM, _interrupt)
    suite = Suite(args.leg, venv, args.timeout)
    if args.only:
        suite.scenarios = [s for s in suite.scenarios if re.search(args.only, s.dag_id)]
        os.environ["DEPLOY_ONLY"] = args.only
    print(f"==> [deploy {args.leg}] {len(suite.scenarios)} scenarios in one deployment ({suite.home})", flush=True)
    error = None
    outcomes: list[Outcome] = []
    try:
        outcomes = suite.run()
    except Exception as err:  # reported below with the timings; the processes are already stopped
        error = f"{type(err).__name__}: {err}"
    print(table(outcomes) if outcomes else "(no outcomes)")
    for o in outcomes:
        for problem in o.problems:
            print(f"  {o.verdict} {o.scenario}: {problem}")
        if o.blocked and not o.ok:
            print(f"  BLOCKED {o.scenario}: {o.blocked}; judged again on the next build of this Airflow line")
    timings = ", ".join(f"{k} {v:.0f}s" for k, v in suite.timings.items())
    print(f"==> [deploy {args.leg}] timings: {timings}")
    for note in suite.notes:
        print(f"==> [deploy {args.leg}] note: {note}")
    report = {
        "leg": args.leg,
        "timings": suite.timings,
        "error": error,
        "airflow": suite.airflow_version,
        "outcomes": [asdict(o) | {"ok": o.ok, "verdict": o.verdict} for o in outcomes],
    }
    out_dir = ROOT / "build" / "deploy"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{args.leg}.json").write_text(json.dumps(report, indent=2) + "\n")
    if error:
        print(f"ERROR: [deploy {args.leg}] {error}", file=sys.stderr)
        return 1
    failed = [o.scenario for o in outcomes if not o.ok and not o.blocked]
    if failed:
        print(f"ERROR: [deploy {args.leg}] {len(failed)} scenario(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    blocked = [o.scenario for o in outcomes if not o.ok and o.blocked]
    print(
        f"==> [deploy {args.leg}] PASSED: {len(outcomes) - len(blocked)} scenarios"
        + (
            f", {len(blocked)} blocked by upstream bugs of Airflow {suite.airflow_version}: {', '.join(blocked)}"
            if blocked
            else ""
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
