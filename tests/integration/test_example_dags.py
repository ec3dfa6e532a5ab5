"""The example DAGs parse on every leg, and the Databricks one runs end to end against the fake Jobs API."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

from airflow.providers.resumable.testing import run_dag
from airflow.providers.resumable.version_compat import AIRFLOW_V_3_0_PLUS

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "example_dags"


def load(path: Path):
    if AIRFLOW_V_3_0_PLUS:
        from airflow.dag_processing.dagbag import DagBag
    else:
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]

    bag = DagBag(dag_folder=str(path), safe_mode=False)
    assert bag.import_errors == {}, bag.import_errors
    return bag


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("example_*.py")), ids=lambda p: p.stem)
def test_example_dag_parses(path):
    bag = load(path)
    assert path.stem in bag.dag_ids


def test_databricks_example_survives_lost_responses(databricks, monkeypatch):
    monkeypatch.setenv("RESUMABLE_DATABRICKS_POLL_SECONDS", "0")
    monkeypatch.setenv("RESUMABLE_DEMO_COMPARE_OFFICIAL", "1")
    # The example uses databricks_default, unchanged from a real deployment: point it at the fake.
    monkeypatch.setenv("AIRFLOW_CONN_DATABRICKS_DEFAULT", os.environ["AIRFLOW_CONN_DATABRICKS_FAKE"])
    databricks.add_job("resumable-demo-nightly")
    databricks.drop_responses("runs/submit@submit_notebook_run", 3)
    databricks.drop_responses("jobs/run-now", 1)
    databricks.drop_responses("runs/submit@official_submit_run", 1)
    databricks.fail_task_once("ours_t9")
    databricks.fail_task_once("official_t9")

    dag = load(EXAMPLES / "example_resumable_databricks.py").get_dag("example_resumable_databricks")
    run = run_dag(dag)
    assert run.state == "success"
    runs_per_name = {}
    for r in databricks.runs.values():
        runs_per_name[r.run_name] = runs_per_name.get(r.run_name, 0) + 1
    assert runs_per_name == {
        "submit_notebook_run": 1,
        "resumable-demo-nightly": 1,
        "submit_deferrable_run": 1,
        "repair_ten_task_run": 1,
        "official_submit_run": 2,
        "official_ten_task_run": 2,
    }
    assert run.ti("submit_notebook_run").try_number == 2
    # Task 9 failed once in each ten-task run: ours repaired its run, the official operator ran a new one.
    executed = {
        name: sum(len(databricks.executed(r.run_id)) for r in databricks.runs.values() if r.run_name == name)
        for name in ("repair_ten_task_run", "official_ten_task_run")
    }
    assert executed == {"repair_ten_task_run": 11, "official_ten_task_run": 20}


def test_databricks_tasks_example_survives_a_lost_response_and_a_lost_worker(databricks_workspace, monkeypatch):
    from airflow.providers.resumable.testing import fail_on_tries

    monkeypatch.setenv("RESUMABLE_DATABRICKS_POLL_SECONDS", "0")
    monkeypatch.setenv("AIRFLOW_CONN_DATABRICKS_DEFAULT", os.environ["AIRFLOW_CONN_DATABRICKS_FAKE"])
    databricks_workspace.drop_responses("runs/submit", 3)  # the notebook's first try never hears back

    dag = load(EXAMPLES / "example_resumable_databricks_tasks.py").get_dag("example_resumable_databricks_tasks")
    has_sql = "load_sales" in dag.task_dict
    with (
        fail_on_tries(type(dag.task_dict["load_sales"]), "_handle_execution", tries={1})
        if has_sql
        else contextlib.nullcontext()
    ):
        run = run_dag(dag)
    assert run.state == "success"
    assert run.ti("run_notebook").try_number == 2
    assert len(databricks_workspace.runs) == 2, "one run per task, whatever was lost"
    if has_sql:
        assert run.ti("load_sales").try_number == 2
        assert len(databricks_workspace.statements) == 1, "the retry followed the statement, it did not insert again"


def test_incremental_example_reads_each_change_once_and_a_failed_run_keeps_the_mark(monkeypatch, tmp_path):
    from demo.incremental_story import DAG_ID, play, report
    from demo.newsletter_service import NewsletterService

    monkeypatch.setenv("RESUMABLE_DEMO_OUTPUT", str(tmp_path))
    dag = load(EXAMPLES / f"{DAG_ID}.py").get_dag(DAG_ID)
    with NewsletterService(items=40, page_size=13) as service:
        monkeypatch.setenv("AIRFLOW_CONN_NEWSLETTER_API", service.url)
        stories = play(dag, service)
    # From the second run on, each run asks from a second below the mark: the item at the mark is
    # fetched again (a late writer there would be too) and not written twice.
    assert [(s.state, s.fetched[:1], len(s.fetched), s.written[:1], len(s.written)) for s in stories] == [
        ("success", [0], 40, [0], 40),
        ("success", [39], 16, [40], 15),
        ("failed", [54], 13, [], 0),
        ("success", [54], 21, [55], 20),
    ]
    assert [s.mark for s in stories] == [
        "2026-01-01T00:39:00Z",
        "2026-01-01T00:54:00Z",
        "2026-01-01T00:54:00Z",
        "2026-01-01T01:14:00Z",
    ]
    assert report(stories, service.items) == 0


def test_taskflow_example_resumes_and_the_plain_task_starts_over(monkeypatch, tmp_path):
    import json

    monkeypatch.setenv("RESUMABLE_DEMO_OUTPUT", str(tmp_path))
    monkeypatch.setenv("RESUMABLE_DEMO_CRASH_AT", "517")
    dag = load(EXAMPLES / "example_resumable_taskflow.py").get_dag("example_resumable_taskflow")
    run = run_dag(dag)
    assert run.state == "success"

    def tries(task_id):
        (log,) = (tmp_path / "taskflow" / task_id).glob("*/tries.jsonl")
        done: dict[int, list[str]] = {}
        for line in log.read_text().splitlines():
            entry = json.loads(line)
            done.setdefault(entry["try"], []).append(entry["file"])
        return {number: (files[0], len(files)) for number, files in done.items()}

    assert tries("convert_files") == {1: ("invoice-0000.csv", 517), 2: ("invoice-0517.csv", 483)}
    assert tries("convert_files_plain") == {1: ("invoice-0000.csv", 517), 2: ("invoice-0000.csv", 1000)}
