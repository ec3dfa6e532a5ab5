"""
The resumable Notebook and Task operators inside Airflow's own task runner (``dag.test()``), with real retries.

Databricks is ``demo/fake_databricks_workspace.py`` on 127.0.0.1 (the fake Jobs API with task runs),
reached through a normal Databricks connection by the official ``DatabricksHook``. Each test counts
the runs the service created.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from airflow.providers.resumable.operators.databricks_tasks import (
    ResumableDatabricksNotebookOperator,
    ResumableDatabricksTaskOperator,
)
from airflow.providers.resumable.testing import clear_and_rerun, resumable_variables, run_dag
from tests.integration.harness import make_dag, run_failing_first_try
from tests.support.databricks import FAST

pytestmark = pytest.mark.integration


def notebook_task(dag, cls=ResumableDatabricksNotebookOperator, retries=2, **kwargs):
    kwargs.setdefault("notebook_path", "/Shared/etl")
    kwargs.setdefault("source", "WORKSPACE")
    kwargs.setdefault("existing_cluster_id", "0101-etl")
    kwargs.setdefault("notebook_params", {"day": "{{ ds }}"})
    return cls(task_id="nb", retries=retries, retry_delay=timedelta(0), dag=dag, **FAST, **kwargs)


def task_task(dag, cls=ResumableDatabricksTaskOperator, retries=2, **kwargs):
    kwargs.setdefault("task_config", {"spark_python_task": {"python_file": "dbfs:/etl.py", "parameters": ["{{ ds }}"]}})
    kwargs.setdefault("existing_cluster_id", "0101-etl")
    return cls(task_id="task", retries=retries, retry_delay=timedelta(0), dag=dag, **FAST, **kwargs)


@pytest.mark.parametrize("build", [notebook_task, task_task], ids=["notebook", "task"])
def test_crash_mid_poll_reattaches_to_the_one_run(databricks_workspace, request, build):
    dag = make_dag(request)
    op = build(dag)
    run = run_failing_first_try(dag, type(op), "monitor_databricks_job")
    assert run.state == "success"
    assert run.ti(op.task_id).try_number == 2
    assert databricks_workspace.count("jobs/runs/submit") == 1
    assert len(databricks_workspace.runs) == 1
    assert databricks_workspace.runs[1001].life_cycle_state == "TERMINATED"
    assert run.xcom(op.task_id, "run_id") == 1001, "pushed again by the retry that reattached"
    assert run.xcom(op.task_id, "run_page_url").endswith("/run/1001")
    assert str(databricks_workspace.runs[1001].token).startswith("rsm-")
    assert resumable_variables(run.dag_id) == []


def test_lost_submit_response_is_the_same_run(databricks_workspace, request):
    # Neither of the hook's two attempts hears back; the retry repeats the request with the stored token.
    databricks_workspace.drop_responses("runs/submit", 2)
    dag = make_dag(request)
    notebook_task(dag)
    run = run_dag(dag)
    assert run.state == "success"
    assert run.ti("nb").try_number == 2
    assert databricks_workspace.count("jobs/runs/submit") == 3
    assert len(databricks_workspace.runs) == 1, "every request carried the same idempotency_token"
    assert run.xcom("nb", "run_id") == 1001


def test_the_official_operator_duplicates_on_a_lost_response(databricks_workspace, request):
    """The gap we close: the hook repeats the lost POST and, without a token, Databricks starts a second run."""
    from airflow.providers.databricks.operators.databricks import DatabricksNotebookOperator

    databricks_workspace.drop_responses("runs/submit", 1)
    dag = make_dag(request)
    notebook_task(dag, cls=DatabricksNotebookOperator)
    assert run_dag(dag).state == "success"
    assert len(databricks_workspace.runs) == 2


def test_succeeded_then_failed_later_is_not_run_again(databricks_workspace, request):
    dag = make_dag(request)
    op = task_task(dag)
    run = run_failing_first_try(dag, type(op), "get_job_result")
    assert run.state == "success"
    assert run.ti("task").try_number == 2
    assert databricks_workspace.count("jobs/runs/submit") == 1
    assert run.xcom("task", "run_id") == 1001


@pytest.mark.parametrize("build", [notebook_task, task_task], ids=["notebook", "task"])
def test_failed_run_gets_a_new_run_not_a_repair(databricks_workspace, request, build):
    """The run failed; the retry submits a new one (a one-task run has nothing a repair would skip)."""
    databricks_workspace.plan_results("FAILED", "SUCCESS")
    dag = make_dag(request)
    op = build(dag, retries=1)
    run = run_dag(dag)
    assert run.state == "success"
    assert run.ti(op.task_id).try_number == 2
    assert [r.state()["result_state"] for r in databricks_workspace.runs.values()] == ["FAILED", "SUCCESS"]
    assert len({r.token for r in databricks_workspace.runs.values()}) == 2
    assert databricks_workspace.count("jobs/runs/repair") == 0
    assert (
        databricks_workspace.executed(1001) == databricks_workspace.executed(1002) == [op._get_run_json()["run_name"]]
    )
    assert run.xcom(op.task_id, "run_id") == 1002


def test_cleared_by_hand_after_success_runs_again(databricks_workspace, request):
    dag = make_dag(request)
    notebook_task(dag)
    first = run_dag(dag)
    assert first.state == "success"
    second = clear_and_rerun(dag, first)
    assert second.state == "success"
    assert len(databricks_workspace.runs) == 2, "a person's clear is a deliberate re-run"
    assert second.xcom("nb", "run_id") == 1002


@pytest.mark.parametrize(
    ("build", "ours"),
    [(notebook_task, ResumableDatabricksNotebookOperator), (task_task, ResumableDatabricksTaskOperator)],
    ids=["notebook", "task"],
)
def test_deferrable_retry_defers_again_on_the_same_run(databricks_workspace, request, build, ours):
    deferred_on = []

    class LostBeforeDeferring(ours):
        def defer(self, *, trigger, **kwargs):
            deferred_on.append(trigger.run_id)
            if len(deferred_on) == 1:
                # dag.test() cannot fail a running trigger into a retry, so the first try dies at
                # the hand-over: after the run id was stored, before the deferral.
                raise RuntimeError("worker lost while deferring")
            super().defer(trigger=trigger, **kwargs)

    databricks_workspace.running_polls = 20  # still running when the retry looks, so it defers again
    dag = make_dag(request)
    op = build(dag, cls=LostBeforeDeferring, deferrable=True)
    run = run_dag(dag)
    assert run.state == "success"
    assert run.ti(op.task_id).try_number == 2
    task_run = databricks_workspace.tasks_of(1001)[0].run_id
    assert deferred_on == [task_run, task_run], "the retry deferred on the task run the first try started"
    assert databricks_workspace.count("jobs/runs/submit") == 1
    assert databricks_workspace.runs[1001].life_cycle_state == "TERMINATED"
    assert resumable_variables(run.dag_id) == [], "execute_complete forgot the record after success"


def test_the_request_is_the_official_one_plus_the_token(databricks_workspace, request):
    """Drop-in parity on every provider leg: same arguments, same runs/submit body."""
    from airflow.providers.databricks.operators.databricks import DatabricksNotebookOperator

    payloads = {}
    for name, cls in (("official", DatabricksNotebookOperator), ("ours", ResumableDatabricksNotebookOperator)):
        dag = make_dag(request)
        dag.dag_id = f"{dag.dag_id}_{name}"
        cls(
            task_id="nb",
            dag=dag,
            notebook_path="/Shared/etl",
            source="WORKSPACE",
            new_cluster={"spark_version": "15.4.x-scala2.12", "num_workers": 1},
            notebook_params={"day": "{{ ds }}"},
            execution_timeout=timedelta(minutes=5),
            **FAST,
        )
        assert run_dag(dag).state == "success"
        payloads[name] = [r["params"] for r in databricks_workspace.requests if r["endpoint"] == "jobs/runs/submit"][-1]
    token = payloads["ours"].pop("idempotency_token")
    assert token.startswith("rsm-")
    # run_name is the task key, derived from the dag_id, which differs between the two DAGs.
    payloads["ours"].pop("run_name")
    payloads["official"].pop("run_name")
    assert payloads["ours"] == payloads["official"]
