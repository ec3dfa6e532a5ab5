"""
A retry after a failed Databricks run repairs it (issue 23), inside Airflow's own task runner (``dag.test()``).

The fake Jobs API (``demo/fake_databricks.py``, ``demo/fake_databricks_tasks.py``) runs a 10-task job
whose task ``t9`` fails once: the retry must re-run ``t9`` and its dependant ``t10`` only, inside the
same run (same run id, same page URL), and never repair twice on the same state.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from airflow.providers.resumable.operators.databricks import (
    ResumableDatabricksRunNowOperator,
    ResumableDatabricksSubmitRunOperator,
)
from airflow.providers.resumable.testing import fail_on_tries, in_memory_state_backend, resumable_variables, run_dag
from tests.integration.harness import make_dag

pytestmark = pytest.mark.integration

TEN = [{"task_key": "t1", "notebook_task": {"notebook_path": "/Shared/t1"}}] + [
    {
        "task_key": f"t{i}",
        "notebook_task": {"notebook_path": f"/Shared/t{i}"},
        "depends_on": [{"task_key": f"t{i - 1}"}],
    }
    for i in range(2, 11)
]
FAST = {
    "databricks_conn_id": "databricks_fake",
    "polling_period_seconds": 0,
    "databricks_retry_limit": 2,
    "databricks_retry_delay": 0,
}
ALL_TEN = [f"t{i}" for i in range(1, 10)]  # what the first attempt runs: t10 never starts after t9 failed


def ten_task_run(dag, databricks, kind, *, retries=1, deferrable=False, **kwargs):
    """A SubmitRun of the ten tasks, or a RunNow of a job made of them."""
    common = {"task_id": "run", "retries": retries, "retry_delay": timedelta(0), "dag": dag, **FAST, **kwargs}
    if deferrable:
        common["deferrable"] = True
    if kind == "submit":
        kwargs.setdefault("json", {})
        return ResumableDatabricksSubmitRunOperator(
            json={"run_name": "ten", "tasks": TEN, **common.pop("json", {})}, **common
        )
    databricks.add_job("ten", tasks=TEN)
    return ResumableDatabricksRunNowOperator(job_name="ten", **common)


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
@pytest.mark.parametrize("kind", ["submit", "run_now"])
def test_a_failure_at_task_9_is_repaired_and_only_task_9_and_its_dependant_run_again(
    databricks, request, kind, deferrable
):
    databricks.fail_task_once("t9")
    dag = make_dag(request)
    ten_task_run(dag, databricks, kind, deferrable=deferrable)
    run = run_dag(dag)
    assert run.state == "success"
    assert run.ti("run").try_number == 2
    assert len(databricks.runs) == 1, "repaired, not submitted again"
    assert databricks.executed(1001) == [*ALL_TEN, "t9", "t10"], "1 failed task re-ran (and t10, which never ran)"
    assert databricks.repair_ids(1001) == [9001]
    repair = next(r["params"] for r in databricks.requests if r["endpoint"] == "jobs/runs/repair")
    assert repair["rerun_all_failed_tasks"] is True
    assert "latest_repair_id" not in repair, "the first repair of the run"
    assert run.xcom("run", "run_id") == 1001
    assert run.xcom("run", "run_page_url").endswith("/run/1001")
    assert run.xcom("run", "repair_id") == 9001
    assert resumable_variables(run.dag_id) == []


def test_the_record_shows_the_submission_and_the_repair_with_the_run_page(databricks, request):
    databricks.fail_task_once("t9")
    dag = make_dag(request)
    ten_task_run(dag, databricks, "submit")
    with in_memory_state_backend() as store:
        run = run_dag(dag)
    assert run.state == "success"
    record = store.get("databricks_run_id")
    assert [(e["try_number"], e["decision"], e["external_id"]) for e in record["history"]] == [
        (1, "submit", 1001),
        (2, "failed_resume", 1001),
    ]
    assert record["url"] == run.xcom("run", "run_page_url"), "the page the official operator pushes"


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_a_lost_repair_response_is_found_in_the_same_try(databricks, request, deferrable):
    """The hook repeats the POST whose answer was lost; Databricks refuses the repeat; the repair is found."""
    databricks.fail_task_once("t9")
    databricks.drop_responses("runs/repair", 2)  # neither of the hook's attempts hears back
    dag = make_dag(request)
    ten_task_run(dag, databricks, "submit", deferrable=deferrable)
    run = run_dag(dag)
    assert run.state == "success"
    assert run.ti("run").try_number == 2
    assert databricks.count("jobs/runs/repair") == 2
    assert databricks.repair_ids(1001) == [9001], "one repair: the repeat was refused as built on stale state"
    assert databricks.executed(1001) == [*ALL_TEN, "t9", "t10"]


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_a_try_lost_after_asking_for_the_repair_reattaches_and_does_not_repair_again(databricks, request, deferrable):
    databricks.fail_task_once("t9")
    databricks.running_polls = 6  # the repaired run still runs when the next try looks
    dag = make_dag(request)
    ten_task_run(dag, databricks, "run_now", retries=2, deferrable=deferrable)
    with fail_on_tries(ResumableDatabricksRunNowOperator, "resume_failed_job", tries={2}, after=True) as fault:
        run = run_dag(dag)
    assert fault.fired == [2]
    assert run.state == "success"
    assert run.ti("run").try_number == 3
    assert databricks.repair_ids(1001) == [9001]
    assert databricks.executed(1001) == [*ALL_TEN, "t9", "t10"]


def test_a_lost_repair_that_failed_again_is_found_and_counted_not_repeated(databricks, request):
    """The earlier try's repair is found by the repair history; the retry repairs on top of it."""
    databricks.fail_task_once("t9", times=2)

    class LostAfterRepair(ResumableDatabricksSubmitRunOperator):
        def resume_failed_job(self, external_id, status, context):
            resumed = super().resume_failed_job(external_id, status, context)
            if context["ti"].try_number == 2:
                databricks.terminate(external_id)  # the repair ran, and t9 failed again
                raise RuntimeError("worker lost before the repair's answer was stored")
            return resumed

    dag = make_dag(request)
    LostAfterRepair(
        task_id="run", json={"run_name": "ten", "tasks": TEN}, retries=2, retry_delay=timedelta(0), dag=dag, **FAST
    )
    run = run_dag(dag)
    assert run.state == "success"
    assert run.ti("run").try_number == 3
    assert databricks.repair_ids(1001) == [9001, 9002]
    second = [r["params"] for r in databricks.requests if r["endpoint"] == "jobs/runs/repair"][-1]
    assert second["latest_repair_id"] == 9001, "built on the found repair, not on the state before it"
    assert databricks.executed(1001) == [*ALL_TEN, "t9", "t9", "t10"]


@pytest.mark.parametrize(
    ("after", "state", "runs"),
    [("resubmit", "success", 2), ("fail", "failed", 1)],
)
def test_when_the_resumes_are_spent_the_configured_fallback_runs(databricks, request, after, state, runs):
    databricks.fail_task_once("t9", times=2)
    dag = make_dag(request)
    ten_task_run(dag, databricks, "submit", retries=3, max_job_resumes=1, on_job_failure_after_resumes=after)
    run = run_dag(dag)
    assert run.state == state
    assert run.ti("run").try_number == 3, "'fail' does not use the retries left"
    assert len(databricks.runs) == runs
    assert databricks.repair_ids(1001) == [9001]


def test_a_changed_spec_is_resubmitted_never_repaired(databricks, request):
    databricks.fail_task_once("t9")
    dag = make_dag(request)
    # The spec renders differently on each try, as after a deploy that changed the DAG.
    tasks = [{**TEN[0], "notebook_task": {"notebook_path": "/x", "base_parameters": {"v": "{{ ti.try_number }}"}}}]
    ResumableDatabricksSubmitRunOperator(
        task_id="run", json={"run_name": "one", "tasks": tasks}, retries=1, retry_delay=timedelta(0), dag=dag, **FAST
    )
    databricks.fail_task_once("t1")
    run = run_dag(dag)
    assert run.state == "success"
    assert len(databricks.runs) == 2
    assert databricks.count("jobs/runs/repair") == 0


@pytest.mark.parametrize(("policy", "state", "runs"), [("resubmit", "success", 2), ("fail", "failed", 1)])
def test_on_job_failure_resubmit_keeps_the_old_behaviour_and_fail_stops(databricks, request, policy, state, runs):
    databricks.fail_task_once("t9")
    dag = make_dag(request)
    ten_task_run(dag, databricks, "submit", retries=2, on_job_failure=policy)
    run = run_dag(dag)
    assert run.state == state
    assert len(databricks.runs) == runs
    assert databricks.count("jobs/runs/repair") == 0
    if policy == "resubmit":
        assert databricks.executed(1002) == [f"t{i}" for i in range(1, 11)], "today's behaviour: all ten again"
    else:
        assert run.ti("run").try_number == 2, "failed at the first retry without using the second"


def test_the_official_in_try_repair_composes(databricks, request):
    """repair_run=True repairs once inside the failing try (official); the retry then repairs on top of it."""
    databricks.fail_task_once("t9", times=2)
    dag = make_dag(request)
    ten_task_run(dag, databricks, "run_now", repair_run=True)
    run = run_dag(dag)
    assert run.state == "success"
    assert len(databricks.runs) == 1
    assert databricks.repair_ids(1001) == [9001, 9002]
    assert databricks.executed(1001) == [*ALL_TEN, "t9", "t9", "t10"]


def test_a_successful_in_try_repair_is_returned_by_the_retry(databricks, request):
    """
    The official synchronous path raises the run's first error even after its in-try repair succeeded
    (provider 7.0 to 7.23): the official operator's retry then starts a new run; ours finds the
    repaired run succeeded and returns it.
    """
    databricks.fail_task_once("t9")
    dag = make_dag(request)
    ten_task_run(dag, databricks, "run_now", repair_run=True)
    run = run_dag(dag)
    assert run.state == "success"
    assert run.ti("run").try_number == 2
    assert len(databricks.runs) == 1
    assert databricks.repair_ids(1001) == [9001]
    assert databricks.executed(1001) == [*ALL_TEN, "t9", "t10"]


def test_a_repair_databricks_refuses_gets_a_new_run(databricks, request):
    """Whether Databricks repairs a one-time run is not promised; a refusal (4xx) falls back to a new run."""
    databricks.fail_task_once("t9")
    databricks.fail_requests("runs/repair", 1, status=400)
    dag = make_dag(request)
    ten_task_run(dag, databricks, "submit")
    run = run_dag(dag)
    assert run.state == "success"
    assert run.ti("run").try_number == 2
    assert databricks.count("jobs/runs/repair") == 1
    assert databricks.repair_ids(1001) == []
    assert len(databricks.runs) == 2
    assert run.xcom("run", "run_id") == 1002
