"""
What a user of the provider meets when testing their own operators, run as they would: a pytest of
their own project (its own rootdir and conftest, none of ours) against this leg's metadata DB, and
the clear-and-rerun command on a DAG file of theirs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "testing"


def user_env() -> dict[str, str]:
    # The leg's AIRFLOW_HOME and backend, without pytest's own variables of this (outer) run.
    return {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=user_env(), capture_output=True, text=True, timeout=240, check=False
    )


def test_the_testing_guide_passes_as_a_users_own_pytest(tmp_path):
    """docs/testing.rst includes these files: they must pass in a project that is not ours."""
    for source in GUIDE.glob("*.py"):
        shutil.copy(source, tmp_path / source.name)
    result = run(["-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning"], tmp_path)
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert re.match(r"3 passed\b", summary), summary


def test_the_testing_module_does_not_need_pytest(tmp_path):
    """It ships in the wheel and pytest is no dependency: importing it must not import pytest."""
    code = "import sys, airflow.providers.resumable.testing; print('pytest' in sys.modules)"
    result = run(["-c", code], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "False"


DAG_FILE = """
    from datetime import datetime

    from airflow.providers.resumable.version_compat import AIRFLOW_V_3_0_PLUS, BaseOperator

    if AIRFLOW_V_3_0_PLUS:
        from airflow.sdk import DAG
    else:
        from airflow.models.dag import DAG


    class Report(BaseOperator):
        def execute(self, context):
            return context["ti"].try_number


    with DAG("{dag_id}", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
        Report(task_id="report")
        Report(task_id="other")
"""


def rows(output: str, title: str) -> dict[str, tuple[str, int, int]]:
    """task_id -> (state, try_number, max_tries) from the table printed under ``title``."""
    block = output.split(title, 1)[1].splitlines()[2:]
    table = {}
    for line in block:
        parts = line.split()
        if len(parts) != 5:
            break
        table[parts[0]] = (parts[2], int(parts[3]), int(parts[4]))
    return table


def test_clear_and_rerun_command(tmp_path, request):
    dag_id = re.sub(r"\W", "_", f"cli_{request.node.name}")
    (tmp_path / "my_dag.py").write_text(textwrap.dedent(DAG_FILE.format(dag_id=dag_id)))
    command = ["-m", "airflow.providers.resumable.testing", "clear-and-rerun", "my_dag.py", dag_id]

    first = run(command, tmp_path)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
    assert rows(first.stdout, "first run:") == {"other": ("success", 1, 0), "report": ("success", 1, 0)}
    # A clear moves max_tries, as the UI's "Clear" does; the run is the same one.
    assert rows(first.stdout, "after clear and re-run:") == {"other": ("success", 2, 1), "report": ("success", 2, 1)}
    run_id = re.search(r"first run: run (\S+) of", first.stdout).group(1)
    assert f"after clear and re-run: run {run_id} of {dag_id} ended success" in first.stdout

    # An existing run, one task only: the other keeps its try.
    again = run([*command, "--run-id", run_id, "--task-id", "report"], tmp_path)
    assert again.returncode == 0, again.stdout[-4000:] + again.stderr[-4000:]
    assert "first run:" not in again.stdout
    assert rows(again.stdout, "after clear and re-run:") == {"other": ("success", 2, 1), "report": ("success", 3, 2)}


def test_clear_and_rerun_command_names_what_is_wrong(tmp_path):
    (tmp_path / "my_dag.py").write_text(textwrap.dedent(DAG_FILE.format(dag_id="cli_some_dag")))
    command = ["-m", "airflow.providers.resumable.testing", "clear-and-rerun"]

    missing = run([*command, "nope.py", "cli_some_dag"], tmp_path)
    assert missing.returncode != 0
    assert "DAG file 'nope.py' does not exist" in missing.stderr

    unknown = run([*command, "my_dag.py", "cli_other"], tmp_path)
    assert unknown.returncode != 0
    assert "my_dag.py defines no DAG 'cli_other'; it defines ['cli_some_dag']" in unknown.stderr
