"""
ResumableJobMixin inside Airflow's own task runner (``dag.test()``), with real retries.

The job system is a fake served over HTTP on 127.0.0.1, so its state lives outside the task
process; the state store is whatever ``[resumable] state_backend`` selects on this leg (native
``task_state_store`` on 3.3, Variables on 3.3-forced, 3.2 and 2.11).
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.integration.harness import clear_and_rerun, make_dag, run_dag
from tests.support.toy_operators import FindableToyJobOperator, ToyJobOperator, UpstreamStyleOperator

pytestmark = pytest.mark.integration

SPEC = {"cmd": "etl", "outcome": "SUCCEEDED"}


def job_task(dag, system, cls=ToyJobOperator, retries=2, **kwargs):
    kwargs.setdefault("spec", SPEC)
    return cls(task_id="job", base_url=system.url, retries=retries, retry_delay=timedelta(0), dag=dag, **kwargs)


def test_failure_mid_poll_reattaches_to_the_one_job(job_system, request):
    dag = make_dag(request)
    job_task(dag, job_system, crash_in_poll_on_tries=(1,))
    run = run_dag(dag)
    assert run.state == "success"
    assert run.ti("job").try_number == 2
    assert len(job_system.jobs) == 1
    assert job_system.submit_calls == 1
    assert run.xcom("job")["job_id"] == "job-1"


def test_lost_submit_response_starts_one_job(job_system, request):
    job_system.faults.drop_submit_responses = 1
    dag = make_dag(request)
    job_task(dag, job_system)
    run = run_dag(dag)
    assert run.state == "success"
    assert run.ti("job").try_number == 2
    assert len(job_system.jobs) == 1, "the retry re-submitted with the same token and got the same job"


def test_lost_submit_response_without_native_idempotency_is_found(job_system, request):
    job_system.idempotent = False
    job_system.faults.drop_submit_responses = 1
    dag = make_dag(request)
    job_task(dag, job_system, cls=FindableToyJobOperator)
    run = run_dag(dag)
    assert run.state == "success"
    assert len(job_system.jobs) == 1
    assert job_system.submit_calls == 1


def test_failed_job_is_resubmitted_with_a_new_token(job_system, request):
    dag = make_dag(request)
    job_task(dag, job_system, spec={"outcome": "FAILED"}, retries=1)
    run = run_dag(dag)
    assert run.state == "failed"
    assert run.ti("job").try_number == 2
    assert len(job_system.jobs) == 2
    tokens = {job.token for job in job_system.jobs.values()}
    assert len(tokens) == 2


def test_expired_job_is_resubmitted(job_system, request):
    class ExpireOnCrash(ToyJobOperator):
        def poll_until_complete(self, external_id, context):
            if context["ti"].try_number == 1:
                job_system.expire(external_id)
                raise RuntimeError("worker lost; meanwhile the job history expired")
            return super().poll_until_complete(external_id, context)

    dag = make_dag(request)
    job_task(dag, job_system, cls=ExpireOnCrash)
    run = run_dag(dag)
    assert run.state == "success"
    assert run.xcom("job")["job_id"] == "job-2"


def test_already_succeeded_is_not_resubmitted(job_system, request):
    class FailAfterSuccess(ToyJobOperator):
        """The job succeeds but the try dies before the task could finish (e.g. result upload fails)."""

        def get_job_result(self, external_id, context):
            if context["ti"].try_number == 1:
                raise RuntimeError("worker lost after the job finished")
            return super().get_job_result(external_id, context)

    dag = make_dag(request)
    job_task(dag, job_system, cls=FailAfterSuccess)
    run = run_dag(dag)
    assert run.state == "success"
    assert run.ti("job").try_number == 2
    assert job_system.submit_calls == 1
    assert run.xcom("job")["job_id"] == "job-1"


def test_cleared_by_hand_after_success_runs_again(job_system, request):
    dag = make_dag(request)
    job_task(dag, job_system)
    first = run_dag(dag)
    assert first.state == "success"
    assert len(job_system.jobs) == 1

    second = clear_and_rerun(dag, first)
    assert second.state == "success"
    assert second.run_id == first.run_id, "the clear re-ran the same DAG run"
    assert second.ti("job").max_tries != first.ti("job").max_tries
    assert len(job_system.jobs) == 2, "a person's clear is a deliberate re-run"
    assert second.xcom("job")["job_id"] == "job-2"


def test_upstream_style_operator_runs_unchanged(job_system, request):
    class CrashingUpstreamStyle(UpstreamStyleOperator):
        def poll_until_complete(self, external_id, context):
            if context["ti"].try_number == 1:
                raise RuntimeError("worker lost")
            super().poll_until_complete(external_id, context)

    dag = make_dag(request)
    CrashingUpstreamStyle(task_id="job", base_url=job_system.url, retries=1, retry_delay=timedelta(0), dag=dag)
    run = run_dag(dag)
    assert run.state == "success"
    assert len(job_system.jobs) == 1
