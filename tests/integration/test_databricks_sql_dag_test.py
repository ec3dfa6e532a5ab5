"""
The resumable SQL statements operator inside Airflow's own task runner (``dag.test()``), with real retries.

Databricks is ``demo/fake_databricks_workspace.py`` on 127.0.0.1 (the Statement Execution API, with no
idempotency token, as the real one), reached by the official ``DatabricksHook``. Each test counts the
statements the warehouse ran.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from airflow.providers.resumable.testing import clear_and_rerun, resumable_variables, run_dag
from tests.integration.harness import make_dag, run_failing_first_try
from tests.support.databricks import FAST, sql_module_or_skip

pytestmark = pytest.mark.integration

sql = sql_module_or_skip()
Ours = sql.ResumableDatabricksSQLStatementsOperator

MERGE = "MERGE INTO sales USING staged ON sales.id = staged.id WHEN NOT MATCHED THEN INSERT *"


def statement_task(dag, cls=Ours, retries=2, **kwargs):
    kwargs.setdefault("statement", "INSERT INTO audit SELECT * FROM staged")
    kwargs.setdefault("warehouse_id", "wh-1")
    return cls(task_id="sql", retries=retries, retry_delay=timedelta(0), dag=dag, **FAST, **kwargs)


@pytest.mark.parametrize(
    "dies_in",
    ["_handle_execution", "get_job_result"],
    ids=["crash mid-poll: the retry reattaches", "succeeded, then the try failed: no second run"],
)
def test_a_lost_try_leaves_one_statement(databricks_workspace, request, dies_in):
    dag = make_dag(request)
    statement_task(dag)
    run = run_failing_first_try(dag, Ours, dies_in)
    assert run.state == "success"
    assert run.ti("sql").try_number == 2
    (statement,) = databricks_workspace.statements.values()
    assert statement.state == "SUCCEEDED"
    assert run.xcom("sql", "statement_id") == statement.statement_id, "pushed again by the retry"
    assert resumable_variables(run.dag_id) == []


def test_a_closed_statement_counts_as_succeeded(databricks_workspace, request):
    class ClosedBeforeTheRetry(Ours):
        def get_job_result(self, external_id, context):
            if context["ti"].try_number == 1:
                databricks_workspace.close(external_id)
                raise RuntimeError("worker lost; meanwhile the result expired")
            return super().get_job_result(external_id, context)

    dag = make_dag(request)
    statement_task(dag, cls=ClosedBeforeTheRetry)
    run = run_dag(dag)
    assert run.state == "success"
    assert len(databricks_workspace.statements) == 1


def test_lost_post_response_fails_loudly_instead_of_running_twice(databricks_workspace, request):
    from airflow.providers.resumable.mixins import ResumableJobConflictError

    raised = []

    class Recording(Ours):
        def execute(self, context):
            try:
                return super().execute(context)
            except Exception as e:
                raised.append(e)
                raise

    databricks_workspace.drop_responses("sql/statements", 1)  # the statement runs; the answer is lost
    dag = make_dag(request)
    statement_task(dag, cls=Recording, retries=3)
    run = run_dag(dag)
    assert run.state == "failed"
    assert run.ti("sql").try_number == 2, "the retry refused at once, without using the other retries"
    assert databricks_workspace.count("sql/statements") == 1, "posted once: the hook did not repeat it"
    assert len(databricks_workspace.statements) == 1
    assert isinstance(raised[-1], ResumableJobConflictError)
    assert str(raised[-1]).startswith("Not running the SQL statement again")


def test_lost_post_response_posts_again_when_declared_idempotent(databricks_workspace, request):
    databricks_workspace.drop_responses("sql/statements", 1)
    dag = make_dag(request)
    statement_task(dag, statement=MERGE, idempotent_statement=True)
    run = run_dag(dag)
    assert run.state == "success"
    assert run.ti("sql").try_number == 2
    assert len(databricks_workspace.statements) == 2, "declared harmless: posted again, as asked"


def test_the_official_operator_runs_twice_on_a_lost_response(databricks_workspace, request):
    """The gap: the hook repeats a POST whose answer it did not hear, and the statement runs twice."""
    from airflow.providers.databricks.operators.databricks import DatabricksSQLStatementsOperator

    databricks_workspace.drop_responses("sql/statements", 1)
    dag = make_dag(request)
    statement_task(dag, cls=DatabricksSQLStatementsOperator)
    assert run_dag(dag).state == "success"
    assert len(databricks_workspace.statements) == 2


def test_refused_post_leaves_nothing_to_doubt(databricks_workspace, request):
    databricks_workspace.fail_requests("sql/statements", 1, status=429)  # answered: nothing started
    dag = make_dag(request)
    statement_task(dag)
    run = run_dag(dag)
    assert run.state == "success"
    assert run.ti("sql").try_number == 2
    assert len(databricks_workspace.statements) == 1


def test_failed_statement_runs_again_on_retry(databricks_workspace, request):
    databricks_workspace.plan_statement_outcomes("FAILED", "SUCCEEDED")
    dag = make_dag(request)
    statement_task(dag, retries=1)
    run = run_dag(dag)
    assert run.state == "success"
    assert len(databricks_workspace.statements) == 2


def test_cleared_by_hand_after_success_runs_again(databricks_workspace, request):
    dag = make_dag(request)
    statement_task(dag)
    first = run_dag(dag)
    assert first.state == "success"
    second = clear_and_rerun(dag, first)
    assert second.state == "success"
    assert len(databricks_workspace.statements) == 2, "a person's clear is a deliberate re-run"


def test_deferrable_retry_defers_again_on_the_same_statement(databricks_workspace, request):
    deferred_on = []

    class LostBeforeDeferring(Ours):
        def defer(self, *, trigger, **kwargs):
            deferred_on.append(trigger.statement_id)
            if len(deferred_on) == 1:
                raise RuntimeError("worker lost while deferring")
            super().defer(trigger=trigger, **kwargs)

    databricks_workspace.statement_running_polls = 10  # still running when the retry looks
    dag = make_dag(request)
    statement_task(dag, cls=LostBeforeDeferring, deferrable=True)
    run = run_dag(dag)
    assert run.state == "success"
    assert run.ti("sql").try_number == 2
    (statement,) = databricks_workspace.statements.values()
    assert deferred_on == [statement.statement_id] * 2
    assert statement.state == "SUCCEEDED"
    assert resumable_variables(run.dag_id) == [], "execute_complete forgot the record after success"
