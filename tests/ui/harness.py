"""
The real-browser harness of the UI tests: Airflow's api-server over the seeded metadata DB, logins,
and Debian's Chromium driven by Playwright. Plain context managers, so that pytest's fixtures
(tests/ui/conftest.py) and ``scripts/ui_screenshots.py`` share them.

Only the Python package of Playwright is installed (requirements/airflow-3.3.in, airflow-3.4.in);
the browser is ``/usr/bin/chromium`` (``apt-get install chromium``, scripts/ensure-chromium.sh),
started with the flags that keep it off the network, which is closed here.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator

REPO = pathlib.Path(__file__).resolve().parents[2]
#: Debian's Chromium; another binary with RESUMABLE_UI_CHROMIUM.
CHROMIUM = os.environ.get("RESUMABLE_UI_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Seconds the api-server may take to answer its health check (a loaded 2-core machine is slow).
START_TIMEOUT = float(os.environ.get("RESUMABLE_UI_START_TIMEOUT", "180"))
#: Milliseconds every Playwright wait and expectation may take.
TIMEOUT_MS = 60_000
#: user -> (role, password); ``outsider`` is a viewer that tests/ui/auth_manager.py keeps out of the DAGs.
USERS = {"admin": ("admin", "admin"), "viewer": ("viewer", "viewer"), "outsider": ("viewer", "outsider")}
AUTH_MANAGER = "tests.ui.auth_manager.OutsiderAuthManager"
#: The cookie Airflow's UI reads the JWT from (``base_auth_manager.COOKIE_NAME_JWT_TOKEN``).
COOKIE = "_token"
#: The Resumable tab's route segment (the plugin's external view ``url_route``).
TAB_ROUTE = "resumable"
#: The tab's iframe on Airflow's task-instance page: its ``src`` is the view's href, the plugin's tab page.
TAB_IFRAME = f'iframe[src*="/{TAB_ROUTE}/tab"]'


def airflow_version() -> tuple[int, int]:
    major, minor = importlib.metadata.version("apache-airflow").split(".")[:2]
    return int(major), int(minor)


def skip_reason() -> str | None:
    """Why the UI tests cannot run on this leg, or None when they can."""
    if airflow_version() < (3, 1):
        return "the Resumable tab is an external view of destination task_instance: Airflow 3.1+ only"
    if importlib.util.find_spec("playwright") is None:
        return (
            "playwright is not installed in this venv: the UI tests run on the 3.3 and 3.4 legs, whose locks "
            "have it (requirements/airflow-3.3.in, airflow-3.4.in)"
        )
    return None


def ti_path(dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> str:
    """Airflow's own UI page of a task instance (``dags/:dagId/runs/:runId/tasks/:taskId[/mapped/:mapIndex]``)."""
    from urllib.parse import quote

    path = f"/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}/tasks/{quote(task_id, safe='')}"
    return path if map_index < 0 else f"{path}/mapped/{map_index}"


def tab_path(dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> str:
    """The task instance's Resumable tab in Airflow's UI (the ``plugin/:page/*`` child route)."""
    return f"{ti_path(dag_id, run_id, task_id, map_index)}/plugin/{TAB_ROUTE}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ApiServer:
    url: str
    log: pathlib.Path
    process: subprocess.Popen[bytes]
    _tokens: dict[str, str] = field(default_factory=dict)

    def token(self, user: str) -> str:
        """A JWT for ``user`` from ``POST /auth/token`` (SimpleAuthManager's login)."""
        if user not in self._tokens:
            import requests

            response = requests.post(
                f"{self.url}/auth/token", json={"username": user, "password": USERS[user][1]}, timeout=60
            )
            assert response.status_code in (200, 201), f"login of {user}: {response.status_code} {response.text}"
            self._tokens[user] = response.json()["access_token"]
        return self._tokens[user]

    def headers(self, user: str | None) -> dict[str, str]:
        return {} if user is None else {"Authorization": f"Bearer {self.token(user)}"}

    def request(self, method: str, path: str, user: str | None, **kwargs: Any) -> Any:
        import requests

        return requests.request(method, f"{self.url}{path}", headers=self.headers(user), timeout=60, **kwargs)

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _wait_until_up(server: ApiServer) -> None:
    import requests

    deadline = time.monotonic() + START_TIMEOUT
    last = "no answer yet"
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"airflow api-server exited with {server.process.returncode} before answering; "
                f"its log ({server.log}):\n{server.log_tail()}"
            )
        try:
            response = requests.get(f"{server.url}/api/v2/monitor/health", timeout=5)
            if response.status_code == 200:
                return
            last = f"HTTP {response.status_code}"
        except requests.RequestException as err:
            last = type(err).__name__
        time.sleep(0.5)
    raise RuntimeError(
        f"airflow api-server did not answer {server.url} within {START_TIMEOUT:.0f}s ({last}); "
        f"its log ({server.log}):\n{server.log_tail()}"
    )


def api_server_env(auth_dir: pathlib.Path) -> dict[str, str]:
    """This process's Airflow settings (AIRFLOW_HOME, the DB, the state backend) plus the test auth."""
    passwords = auth_dir / "passwords.json"
    passwords.write_text(json.dumps({user: password for user, (_, password) in USERS.items()}))
    env = dict(os.environ)
    env.update(
        AIRFLOW__CORE__AUTH_MANAGER=AUTH_MANAGER,
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=",".join(f"{user}:{role}" for user, (role, _) in USERS.items()),
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(passwords),
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="False",
        # tests.ui.auth_manager (and the seeding's DAG module) are importable; the worktree's provider first.
        PYTHONPATH=os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p),
    )
    return env


@contextlib.contextmanager
def api_server() -> Iterator[ApiServer]:
    """``airflow api-server`` of this venv on 127.0.0.1 (a free port), against this AIRFLOW_HOME."""
    home = pathlib.Path(os.environ.get("AIRFLOW_HOME", tempfile.mkdtemp(prefix="airflow-home-ui-")))
    auth_dir = pathlib.Path(tempfile.mkdtemp(prefix="resumable-ui-auth-"))
    port = free_port()
    log = home / f"api-server-{port}.log"
    airflow = shutil.which("airflow", path=os.path.dirname(sys.executable)) or "airflow"
    command = [airflow, "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            env=api_server_env(auth_dir),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=str(REPO),
            start_new_session=True,
        )
    server = ApiServer(url=f"http://127.0.0.1:{port}", log=log, process=process)
    try:
        _wait_until_up(server)
        yield server
    finally:
        _stop(process)
        shutil.rmtree(auth_dir, ignore_errors=True)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the api-server's own process group (it started it: uvicorn and its worker), then SIGKILL."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """One headless Chromium (Debian's) for the session, with a fresh profile; yields the Browser."""
    if not os.access(CHROMIUM, os.X_OK):
        raise RuntimeError(
            f"{CHROMIUM} not found: the UI tests drive Debian's Chromium (apt-get install -y chromium; "
            "scripts/ensure-chromium.sh does it), never a browser Playwright downloads"
        )
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        # Playwright gives each launch a fresh temporary profile (user-data dir) and removes it after.
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def logged_in_context(browser: Any, server: ApiServer, user: str | None, **kwargs: Any) -> Any:
    """A browser context whose requests carry ``user``'s JWT in the UI's cookie (none for ``None``)."""
    context = browser.new_context(base_url=server.url, **kwargs)
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    if user is not None:
        context.add_cookies([{"name": COOKIE, "value": server.token(user), "url": server.url}])
    return context


def tab_frame(page: Any) -> Any:
    """The Resumable tab's iframe on an Airflow task-instance page (its ``src`` is the plugin's ``/resumable/tab``)."""
    return page.frame_locator(TAB_IFRAME)
