"""
PostgreSQL and Redis for the Celery leg: the distribution's packages, run from a throwaway directory
on 127.0.0.1 and stopped by PID.

They are installed with ``apt-get install -y postgresql redis-server`` when missing (CI starts on a
fresh machine; the suite runs as root there). If that is impossible the leg fails with the reason:
a Celery leg that silently ran on SQLite, or not at all, would prove nothing.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

PACKAGES = {"postgresql": "initdb", "redis-server": "redis-server"}


class BackingServiceError(RuntimeError):
    """PostgreSQL or Redis could not be installed or started; the message says why."""


def _initdb() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return found[-1] if found else None


def ensure_installed() -> None:
    missing = [
        p for p, binary in PACKAGES.items() if (_initdb() if p == "postgresql" else shutil.which(binary)) is None
    ]
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise BackingServiceError(
            f"the Celery leg needs {' and '.join(missing)}, which are not installed, and cannot install them "
            f"(apt-get {'missing' if shutil.which('apt-get') is None else 'needs root'}); install them with "
            f"`apt-get install -y {' '.join(missing)}`"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for args in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *missing]):
        proc = subprocess.run(args, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
        if proc.returncode != 0:
            raise BackingServiceError(f"`{' '.join(args)}` failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
    # The package starts its own cluster and server as system services; the suite runs its own.
    for service in ("postgresql", "redis-server"):
        subprocess.run(["service", service, "stop"], capture_output=True, check=False)


def _as_postgres(args: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root.
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


class Postgres:
    def __init__(self, port: int) -> None:
        self.port = port
        self.dir = Path(tempfile.mkdtemp(prefix="resumable-deploy-pg-"))
        self.data = self.dir / "data"
        self.pid: int | None = None

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://airflow@127.0.0.1:{self.port}/airflow"

    def start(self) -> None:
        initdb = _initdb()
        if initdb is None:
            raise BackingServiceError("PostgreSQL's initdb not found under /usr/lib/postgresql/*/bin")
        bindir = Path(initdb).parent
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run(_as_postgres([initdb, "-D", str(self.data), "-U", "airflow", "--auth=trust", "-E", "UTF8"]))
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300"
        log = self.dir / "postgres.log"
        self._run(
            _as_postgres([str(bindir / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(log), "-w", "start"])
        )
        self.pid = int((self.data / "postmaster.pid").read_text().split()[0])
        self._run([str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "airflow", "airflow"])

    def stop(self) -> None:
        if self.pid is not None:
            # SIGINT is PostgreSQL's "fast" shutdown: roll back open transactions, exit.
            _stop(self.pid, signal.SIGINT)
            self.pid = None
        shutil.rmtree(self.dir, ignore_errors=True)

    @staticmethod
    def _run(args: list[str]) -> None:
        proc = subprocess.run(args, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False, timeout=120)
        if proc.returncode != 0:
            raise BackingServiceError(f"`{' '.join(args)}` failed (exit {proc.returncode}): {proc.stderr[-2000:]}")


class Redis:
    def __init__(self, port: int, log: Path) -> None:
        self.port = port
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise BackingServiceError("redis-server not found on PATH")
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        import socket

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BackingServiceError(f"redis-server exited with {self.proc.returncode}; see {self.log}")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.2)
        raise BackingServiceError(f"redis-server did not listen on 127.0.0.1:{self.port} within 30s")

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc.pid, signal.SIGTERM)
            self.proc.wait()
            self.proc = None


def _stop(pid: int, sig: int, timeout: float = 20) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        # Our own child must be reaped to disappear; PostgreSQL's postmaster is not our child.
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
