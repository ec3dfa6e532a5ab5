"""
The resumable Databricks operators inside Airflow's own task runner (``dag.test()``), with real retries.

Databricks is the fake Jobs API in ``demo/fake_databricks.py`` on 127.0.0.1, reached through a normal
Databricks connection by the official ``DatabricksHook``. Faults are injected at the HTTP level: 500
storms that outlast the hook's own retries, ``runs/submit`` responses lost after the run was created.
Each test counts the runs the service created.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from airflow.providers.resumable.operators.databricks import (
    ResumableDatabricksRunNowOperator,
    ResumableDatabricksSubmitRunOperator,
)
from airflow.providers.resumable.testing import clear_and_rerun, resumable_variables, run_dag
from airflow.providers.resumable.version_compat import AIRFLOW_V_3_3_PLUS
from tests.integration.harness import make_dag

pytestmark = pytest.mark.integration

NOTEBOOK = {"notebook_path": "/Shared/etl", "base_parameters": {"day": "{{ ds }}"}}
# The hook's own retries: two attempts, no back-off, so a burst of two 5xx fails the try.
FAST = {
    "databricks_conn_id": "databricks_fake",
    "polling_period_seconds": 0,
    "databricks_retry_limit": 2,
    "databricks_retry_delay": 0,
}


def submit_task(dag, cls=ResumableDatabricksSubmitRunOperator, retries=2, **kwargs):
    kwargs.setdefault("notebook_task", NOTEBOOK)
    kwargs.setdefault("existing_cluster_id", "0101-etl")
    return cls(task_id="run", retries=retries, retry_delay=timedelta(0), dag=dag, **FAST, **kwargs)


def try_number(context) -> int:
    return context["ti"].try_number


def test_failure_mid_poll_reattaches_to_the_one_run(databricks, request):
    # Two for the run page looked up once the run id is known (job_url: it gives up without failing
    # the try), then two that outlast the poll's retries: the first try fails mid-poll.
    databricks.fail_requests("runs/get", 4)
    dag = make_dag(request)
    submit_task(dag)
    run = run_dag(dag)
    assert run.state == "success"
    assert run.ti("run").try_number == 2
    assert len(databricks.runs) == 1
    assert databricks.count("jobs/runs/submit") == 1
    assert run.xcom("run", "run_id") == 1001
    assert run.xcom("run", "run_page_url").endswith("/run/1001")


def test_lost_submit_response_starts_one_run(databricks, request):
    databricks.drop_responses("runs/submit", 2)  # the run exists; neither of the hook's attempts hears so
    dag = make_dag(request)
    submit_task(dag)
    run = run_dag(dag)
    assert run.state == "success"
    assert run.ti("run").try_number == 2
    assert databricks.count("jobs/runs/submit") == 3
    assert len(databricks.runs) == 1, "every request carried the same idempotency_token"
    assert run.xcom("run", "run_id") == 1001
    assert resumable_variables(run.dag_id) == [], "the Variable backend's record is gone after success"


def test_the_official_operator_duplicates_on_a_lost_response(databricks, request):
    """The gap we close: the hook retries the lost POST and, without a token, Databricks starts a second run."""
    from airflow.providers.databricks.operators.databricks import DatabricksSubmitRunOperator

    databricks.drop_responses("runs/submit", 1)
    dag = make_dag(request)
    submit_task(dag, cls=DatabricksSubmitRunOperator)
    assert run_dag(dag).state == "success"
    assert len(databricks.runs) == 2


def test_already_succeeded_is_not_resubmitted_and_pushes_the_xcoms(databricks, request):
    class LostAfterTheRun(ResumableDatabricksSubmitRunOperator):
        def poll_until_complete(self, external_id, context):
            super().poll_until_complete(external_id, context)
            if try_number(context) == 1:
                raise RuntimeError("worker lost after the run finished")

    dag = make_dag(request)
    submit_task(dag, cls=LostAfterTheRun)
    run = run_dag(dag)
    assert run.state == "success"
    assert run.ti("run").try_number == 2
    assert len(databricks.runs) == 1
    assert run.xcom("run", "run_id") == 1001, "pushed again by the retry that found the run succeeded"
    assert run.xcom("run", "run_page_url").endswith("/run/1001")


def test_failed_run_gets_a_new_run_with_a_new_token(databricks, request):
    # on_job_failure="resubmit": 0.1's behaviour (the default repairs; test_databricks_repair_dag_test.py).
    databricks.plan_results("FAILED", "SUCCESS")
    dag = make_dag(request)
    submit_task(dag, retries=1, on_job_failure="resubmit")
    run = run_dag(dag)
    assert run.state == "success"
    assert run.ti("run").try_number == 2
    assert len(databricks.runs) == 2
    assert len({r.token for r in databricks.runs.values()}) == 2
    assert run.xcom("run", "run_id") == 1002


def test_expired_run_is_submitted_afresh(databricks, request):
    class ExpireOnCrash(ResumableDatabricksSubmitRunOperator):
        def poll_until_complete(self, external_id, context):
            if try_number(context) == 1:
                databricks.expire(external_id)
                raise RuntimeError("worker lost; meanwhile the run's history expired")
            super().poll_until_complete(external_id, context)

    dag = make_dag(request)
    submit_task(dag, cls=ExpireOnCrash)
    run = run_dag(dag)
    assert run.state == "success"
    assert databricks.count("jobs/runs/submit") == 2
    assert run.xcom("run", "run_id") == 1002


def test_cleared_by_hand_after_success_runs_again(databricks, request):
    dag = make_dag(request)
    submit_task(dag)
    first = run_dag(dag)
    assert first.state == "success"
    second = clear_and_rerun(dag, first)
    assert second.state == "success"
    assert second.run_id == first.run_id
    assert len(databricks.runs) == 2, "a person's clear is a deliberate re-run"
    assert second.xcom("run", "run_id") == 1002


@pytest.mark.parametrize(
    ("policy", "state", "runs", "first_run_cancelled"),
    [("fail", "failed", 1, False), ("cancel_and_resubmit", "success", 2, True)],
)
def test_changed_spec_is_not_reattached(databricks, request, policy, state, runs, first_run_cancelled):
    databricks.running_polls = 50  # still running when the retry looks
    databricks.fail_requests("runs/get", 4)  # the run page lookup's two, then the poll's: try 1 fails
    dag = make_dag(request)
    # The submitted spec renders differently on each try, as after a deploy that changed the DAG.
    submit_task(
        dag,
        retries=1,
        notebook_task={"notebook_path": "/Shared/etl", "base_parameters": {"v": "{{ ti.try_number }}"}},
        spec_change_policy=policy,
    )
    run = run_dag(dag)
    assert run.state == state
    assert len(databricks.runs) == runs
    assert databricks.runs[1001].cancelled is first_run_cancelled


def test_wait_for_termination_false_does_not_submit_again(databricks, request):
    class LostAfterSubmit(ResumableDatabricksSubmitRunOperator):
        def get_job_result(self, external_id, context):
            if try_number(context) == 1:
                raise RuntimeError("worker lost after submitting")
            return super().get_job_result(external_id, context)

    databricks.running_polls = 50
    dag = make_dag(request)
    submit_task(dag, cls=LostAfterSubmit, wait_for_termination=False)
    run = run_dag(dag)
    assert run.state == "success"
    assert run.ti("run").try_number == 2
    assert databricks.count("jobs/runs/submit") == 1
    assert databricks.runs[1001].life_cycle_state in ("PENDING", "RUNNING"), "left running, as asked"


def test_deferrable_retry_defers_again_on_the_same_run(databricks, request):
    deferred_on = []

    class LostBeforeDeferring(ResumableDatabricksSubmitRunOperator):
        def defer(self, *, trigger, **kwargs):
            deferred_on.append(trigger.run_id)
            if len(deferred_on) == 1:
                # dag.test() cannot fail a running trigger into a retry, so the first try dies at
                # the hand-over instead: after the run id was stored, before the deferral.
                raise RuntimeError("worker lost while deferring")
            super().defer(trigger=trigger, **kwargs)

    databricks.running_polls = 20  # still running when the retry looks, so it must defer again
    dag = make_dag(request)
    submit_task(dag, cls=LostBeforeDeferring, deferrable=True)
    run = run_dag(dag)
    assert run.state == "success"
    assert run.ti("run").try_number == 2
    assert deferred_on == [1001, 1001], "the retry deferred on the run the first try started"
    assert databricks.count("jobs/runs/submit") == 1
    assert databricks.runs[1001].life_cycle_state == "TERMINATED", "the trigger waited for the run to end"
    assert run.xcom("run", "run_id") == 1001
    assert resumable_variables(run.dag_id) == [], "execute_complete forgot the record after success"


def test_run_now_lost_response_with_cancel_previous_runs_keeps_its_run(databricks, request):
    job_id = databricks.add_job("nightly-etl")
    databricks.drop_responses("run-now", 2)
    dag = make_dag(request)
    ResumableDatabricksRunNowOperator(
        task_id="run",
        job_name="nightly-etl",
        job_parameters={"day": "{{ ds }}"},
        cancel_previous_runs=True,
        retries=1,
        retry_delay=timedelta(0),
        dag=dag,
        **FAST,
    )
    run = run_dag(dag)
    assert run.state == "success"
    assert len(databricks.runs) == 1
    assert databricks.runs[1001].job_id == job_id
    assert not databricks.runs[1001].cancelled, "the retry did not cancel the run it was about to get back"
    assert databricks.count("jobs/runs/cancel-all") == 1, "only the first request cancelled earlier runs"


@pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason="the official operators are durable only on Airflow 3.3+")
def test_official_durable_operator_duplicates_where_we_do_not(databricks, request):
    """Official 7.23 on Airflow 3.3 persists the run id after submit; a lost response still costs a run."""
    from airflow.providers.databricks.operators.databricks import DatabricksSubmitRunOperator

    runs = {}
    for cls in (DatabricksSubmitRunOperator, ResumableDatabricksSubmitRunOperator):
        before = len(databricks.runs)
        databricks.drop_responses("runs/submit", 2)
        dag = make_dag(request, dag_display_name=cls.__name__)
        dag.dag_id = f"{dag.dag_id}_{cls.__name__}"
        submit_task(dag, cls=cls)
        assert run_dag(dag).state == "success"
        runs[cls.__name__] = len(databricks.runs) - before
    # Official: one run per lost POST (the hook retries it) and a third from the task's retry.
    assert runs == {"DatabricksSubmitRunOperator": 3, "ResumableDatabricksSubmitRunOperator": 1}


def test_mapped_run_now_gets_one_run_per_map_index(databricks, request):
    databricks.add_job("per-region")
    databricks.fail_requests("runs/get", 2)  # the first mapped instance's first try dies mid-poll
    dag = make_dag(request)
    ResumableDatabricksRunNowOperator.partial(
        task_id="run", job_name="per-region", retries=1, retry_delay=timedelta(0), dag=dag, **FAST
    ).expand(job_parameters=[{"region": "eu"}, {"region": "us"}, {"region": "ap"}])
    run = run_dag(dag)
    assert run.state == "success"
    assert len(databricks.runs) == 3, "one run per map index, none duplicated by the retry"
    assert len({r.token for r in databricks.runs.values()}) == 3
    assert sorted(r.payload["job_parameters"]["region"] for r in databricks.runs.values()) == ["ap", "eu", "us"]


@pytest.mark.parametrize("kind", ["submit", "run_now"])
def test_the_payload_is_the_official_operators_plus_the_token(databricks, request, kind):
    """Drop-in parity on every provider leg: same arguments and DAG params, same request body."""
    from airflow.providers.databricks.operators.databricks import (
        DatabricksRunNowOperator,
        DatabricksSubmitRunOperator,
    )

    databricks.add_job("parity")
    payloads = {}
    for name, ours in (("official", False), ("ours", True)):
        dag = make_dag(request, params={"day": "2026-01-01", "region": "eu"})
        dag.dag_id = f"{dag.dag_id}_{name}"
        if kind == "submit":
            cls = ResumableDatabricksSubmitRunOperator if ours else DatabricksSubmitRunOperator
            cls(
                task_id="run",
                dag=dag,
                json={"timeout_seconds": 600, "tasks": [{"task_key": "etl", "notebook_task": {"notebook_path": "/x"}}]},
                run_name="nightly {{ ds }}",
                **FAST,
            )
        else:
            cls = ResumableDatabricksRunNowOperator if ours else DatabricksRunNowOperator
            cls(task_id="run", dag=dag, job_name="parity", **FAST)
        assert run_dag(dag).state == "success"
        endpoint = "jobs/runs/submit" if kind == "submit" else "jobs/run-now"
        payloads[name] = [r["params"] for r in databricks.requests if r["endpoint"] == endpoint][-1]
    token = payloads["ours"].pop("idempotency_token")
    assert token.startswith("rsm-")
    assert payloads["ours"] == payloads["official"]
