"""
A real Airflow deployment on 127.0.0.1 in a throwaway AIRFLOW_HOME, started and stopped by PID.

Airflow 3: api-server, scheduler, dag-processor and triggerer; Airflow 2: scheduler and triggerer
(the scheduler parses the DAGs itself). Every component runs in its own process group, so stopping
it also stops what it started (LocalExecutor workers, supervisors); task processes that left the
group are stopped by the PIDs they registered with the driver.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Deployment:
    leg: str
    venv: Path
    home: Path
    airflow3: bool
    extra_env: dict[str, str] = field(default_factory=dict)
    #: Celery leg: the PostgreSQL URL and the Redis broker URL; empty = LocalExecutor on SQLite.
    database_url: str = ""
    broker_url: str = ""
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    #: Components that exited and were started again: what they left in their group goes at stop().
    retired: list[subprocess.Popen[bytes]] = field(default_factory=list)
    api_port: int = 0

    @property
    def airflow(self) -> str:
        return str(self.venv / "bin" / "airflow")

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_"))}
        db = self.home / "airflow.db"
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW_CONFIG": str(self.home / "airflow.cfg"),
                "PYTHONPATH": str(ROOT),
                "PATH": f"{self.venv / 'bin'}:{env.get('PATH', '')}",
                "VIRTUAL_ENV": str(self.venv),
                "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "tests" / "deploy" / "dags"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                # Every scenario runs in this one deployment, 16 tasks at a time.
                "AIRFLOW__CORE__PARALLELISM": "16",
                "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "8",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{db}",
                # SQLite under concurrent writers: WAL (set on the file after migrating) and a busy timeout.
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS": "tests.deploy.settings.SQLITE_CONNECT_ARGS",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
                "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "600",
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
                "AIRFLOW__RESUMABLE__STATE_BACKEND": "auto",
            }
        )
        if self.airflow3:
            self.api_port = self.api_port or free_port()
            api = f"http://127.0.0.1:{self.api_port}"
            env.update(
                {
                    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS_ASYNC": "tests.deploy.settings.SQLITE_CONNECT_ARGS",
                    "AIRFLOW__API__HOST": "127.0.0.1",
                    "AIRFLOW__API__PORT": str(self.api_port),
                    "AIRFLOW__API__WORKERS": "1",
                    "AIRFLOW__API__BASE_URL": api,
                    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api}/execution/",
                    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                    # Every component must sign and check the task tokens with the same secret.
                    "AIRFLOW__API_AUTH__JWT_SECRET": "resumable-deploy-suite-secret",
                    "AIRFLOW__API__SECRET_KEY": "resumable-deploy-suite-secret",
                    # A lost worker (supervisor killed) is noticed by heartbeat expiry only: make it under a
                    # minute (default 5), yet well above what a loaded 2-core machine delays a heartbeat by.
                    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "45",
                    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
                    "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
                    # On SQLite a write can wait out the busy timeout behind another; a task's call to the
                    # Execution API must outlast that instead of failing the try (default 5 s).
                    "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "60",
                    "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "600",
                }
            )
        else:
            env.update(
                {
                    # Airflow 2 refuses LocalExecutor on SQLite outright; this switch (the one Airflow's
                    # own tests use) lets the suite run without a server database on this leg.
                    "_AIRFLOW__SKIP_DATABASE_EXECUTOR_COMPATIBILITY_CHECK": "1",
                    # A SIGKILLed task stays "running" until the zombie scan finds its ended
                    # LocalTaskJob and queues a failure callback for the DAG processor. Until that runs
                    # each scan queues another, and a late one fails whatever try is current by then:
                    # scans every 30 s, and retries wait 60 s (run.py), so the callbacks land first.
                    "AIRFLOW__SCHEDULER__SCHEDULER_ZOMBIE_TASK_THRESHOLD": "45",
                    "AIRFLOW__SCHEDULER__ZOMBIE_DETECTION_INTERVAL": "30",
                    "AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC": "1",
                    "AIRFLOW__SCHEDULER__DAG_DIR_LIST_INTERVAL": "600",
                    "AIRFLOW__WEBSERVER__SECRET_KEY": "resumable-deploy-suite-secret",
                }
            )
        if self.celery:
            env.update(
                {
                    "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.database_url,
                    "AIRFLOW__CELERY__BROKER_URL": self.broker_url,
                    "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + self.database_url.replace("+psycopg2", ""),
                    "AIRFLOW__CELERY__WORKER_CONCURRENCY": "8",
                }
            )
            for key in (
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS_ASYNC",
            ):
                env.pop(key, None)
        env.update(self.extra_env)
        return env

    @property
    def celery(self) -> bool:
        return bool(self.database_url)

    def rows(self, query: str) -> list[tuple[Any, ...]]:
        """Read the metadata DB directly (no parameters: callers filter in Python)."""
        if not self.celery:
            return sqlite_rows(self.home / "airflow.db", query)
        import psycopg2

        conn = psycopg2.connect(self.database_url.replace("postgresql+psycopg2", "postgresql"))
        try:
            with conn.cursor() as cursor:
                cursor.execute(query)
                return list(cursor.fetchall())
        finally:
            conn.close()

    def migrate(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.run_cli(["db", "migrate"], log="db-migrate.log", timeout=600)
        if self.celery:
            return
        # WAL is a property of the database file: set once, every later connection uses it.
        with sqlite3.connect(self.home / "airflow.db") as db:
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode != "wal":
            raise RuntimeError(f"could not switch {self.home / 'airflow.db'} to WAL mode, got {mode!r}")

    def run_cli(self, args: list[str], *, log: str, timeout: float = 300) -> str:
        with (self.home / log).open("ab") as out:
            proc = subprocess.run(
                [self.airflow, *args],
                env=self.environment(),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                timeout=timeout,
                cwd=self.home,
                check=False,
            )
        if proc.returncode != 0:
            tail = (self.home / log).read_text(errors="replace")[-3000:]
            raise RuntimeError(f"airflow {' '.join(args)} failed (exit {proc.returncode}):\n{tail}")
        return (self.home / log).read_text(errors="replace")

    def components(self) -> list[list[str]]:
        if self.celery:
            # Two workers, as on two machines; they read and write the same log folder, so neither
            # needs to serve its logs (both would want port 8793).
            workers = [["celery", "worker", "-H", f"worker{i}@%h", "-c", "8", "--skip-serve-logs"] for i in (1, 2)]
            return [["api-server"], ["scheduler"], ["dag-processor"], ["triggerer"], *workers]
        if self.airflow3:
            return [["api-server"], ["scheduler"], ["dag-processor"], ["triggerer"]]
        return [["scheduler"], ["triggerer"]]

    def start(self, extra: list[list[str]] | None = None) -> None:
        components = self.components() + (extra or [])
        if self.airflow3:
            # Tasks that start before the Execution API answers fail at once (connection refused).
            self._spawn(components.pop(0))
            self.wait_for_api()
        for args in components:
            self._spawn(args)

    def _spawn(self, args: list[str]) -> None:
        name = f"celery-{args[3].split('@')[0]}" if args[:2] == ["celery", "worker"] else "-".join(args)
        with (self.home / f"{name}.log").open("ab") as log:
            env = self.environment()
            if args == ["api-server"] and not self.celery:
                # See tests/deploy/settings.py: the API server's short busy timeout on SQLite.
                for key in (
                    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS",
                    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS_ASYNC",
                ):
                    env[key] = "tests.deploy.settings.SQLITE_CONNECT_ARGS_API_SERVER"
            self.processes[name] = subprocess.Popen(
                [self.airflow, *args],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.home,
                start_new_session=True,
            )

    def wait_for_api(self, timeout: float = 180) -> None:
        import urllib.request

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.api_port}/api/v2/monitor/health", timeout=5):
                    return
            except OSError:
                time.sleep(1)
        raise RuntimeError(f"the API server did not answer within {timeout:.0f}s; see {self.home}/api-server.log")

    def check_alive(self) -> None:
        for name, returncode, tail in self.dead():
            raise RuntimeError(f"airflow {name} exited with {returncode}:\n{tail[-3000:]}")

    def dead(self) -> list[tuple[str, int, str]]:
        """``(component, exit code, the tail of its log)`` for each component that has exited."""
        found = []
        for name, proc in self.processes.items():
            if proc.poll() is not None:
                log = self.home / f"{name}.log"
                tail = log.read_text(errors="replace")[-20000:] if log.exists() else ""
                found.append((name, int(proc.returncode), tail))
        return found

    def restart(self, name: str) -> None:
        """Start the exited component ``name`` again (its log goes on in the same file)."""
        if name.startswith("celery-"):
            args = next(c for c in self.components() if c[:2] == ["celery", "worker"] and c[3].startswith(name[7:]))
        else:
            args = next(c for c in self.components() if "-".join(c) == name)
        with (self.home / f"{name}.log").open("a") as log:
            log.write(f"\n==> restarted by the suite after it exited with {self.processes[name].returncode}\n")
        # Its workers and their task processes may live on (a task keeps running as after a scheduler
        # failover); they are stopped with everything else at the end.
        self.retired.append(self.processes[name])
        self._spawn(args)

    def stop(self, stray_pids: set[int] | None = None) -> list[str]:
        """SIGTERM each component's process group, SIGKILL what is left after 20 s; returns what it had to kill."""
        killed: list[str] = []
        for proc in [*self.processes.values(), *self.retired]:
            _signal_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for name, proc in self.processes.items():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                killed.append(name)
            # Whatever the component left in its group (workers, supervisors) goes too.
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait()
        for proc in self.retired:
            _signal_group(proc.pid, signal.SIGKILL)
        self.retired.clear()
        for pid in stray_pids or set():
            if _alive(pid):
                killed.append(f"task pid {pid}")
                _kill(pid)
        self.processes.clear()
        return killed


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def _kill(pid: int) -> None:
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)


def sqlite_rows(db: Path, query: str, *args: Any) -> list[tuple[Any, ...]]:
    """Read the metadata DB (WAL lets a reader in while the deployment writes)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute(query, args).fetchall()
    finally:
        conn.close()
