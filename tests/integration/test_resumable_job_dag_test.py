"""
ResumableJobMixin inside Airflow's own task runner (``dag.test()``), with real retries.

The job system is a fake served over HTTP on 127.0.0.1, so its state lives outside the task
process; the state store is whatever ``[resumable] state_backend`` selects on this leg (native
``task_state_store`` on 3.3, Variables on 3.3-forced, 3.2 and 2.11).
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from airflow.providers.resumable.testing import clear_and_rerun, dag_for_test, in_memory_state_backend, run_dag
from airflow.providers.resumable.version_compat import AIRFLOW_V_3_3_PLUS
from tests.integration.harness import make_dag, run_failing_first_try
from tests.support.toy_operators import (
    FindableToyJobOperator,
    ToyJobOperator,
    UpstreamStyleOperator,
    plain_job_operator,
)

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
    dag = make_dag(request)
    job_task(dag, job_system)
    # The job succeeds but the try dies before the task could finish (e.g. result upload fails).
    run = run_failing_first_try(dag, ToyJobOperator, "get_job_result")
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


def test_the_record_keeps_what_each_try_decided_across_a_retry_and_a_clear(job_system, request):
    """What a UI shows for the task instance: which try submitted which job, what each later try did."""

    class LinkedToyJobOperator(ToyJobOperator):
        def job_url(self, external_id, context):
            return f"{self.base_url}/jobs/{external_id}"

    dag = make_dag(request)
    job_task(dag, job_system, cls=LinkedToyJobOperator, crash_in_poll_on_tries=(1,))
    # One store the test can read after the runs, whatever backend this leg selects.
    with in_memory_state_backend() as store:
        first = run_dag(dag)
        assert first.state == "success"
        retried = [(e["try_number"], e["decision"], e["external_id"]) for e in store.get("toy_job")["history"]]
        assert retried == [(1, "submit", "job-1"), (2, "reattach", "job-1")]
        second = clear_and_rerun(dag, first)
        assert second.state == "success"
        record = store.get("toy_job")
    history = [(e["try_number"], e["decision"], e["external_id"]) for e in record["history"]]
    assert history == [*retried, (second.ti("job").try_number, "cleared_fresh", "job-2")]
    assert record["url"] == f"{job_system.url}/jobs/job-2", "the link of the job the record holds now"
    assert all(entry["at"].endswith("+00:00") for entry in record["history"])


def test_upstream_style_operator_runs_unchanged(job_system, request):
    dag = make_dag(request)
    UpstreamStyleOperator(task_id="job", base_url=job_system.url, retries=1, retry_delay=timedelta(0), dag=dag)
    run = run_failing_first_try(dag, UpstreamStyleOperator, "poll_until_complete")
    assert run.state == "success"
    assert len(job_system.jobs) == 1


def test_mapped_instances_each_get_their_own_job(job_system, request):
    dag = make_dag(request)
    ToyJobOperator.partial(
        task_id="job",
        base_url=job_system.url,
        retries=1,
        retry_delay=timedelta(0),
        crash_in_poll_on_tries=(1,),
        dag=dag,
    ).expand(spec=[{"part": 0}, {"part": 1}, {"part": 2}])
    run = run_dag(dag)
    assert run.state == "success"
    assert len(job_system.jobs) == 3, "one job per map index, none duplicated by the retries"
    assert len({job.token for job in job_system.jobs.values()}) == 3


@pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason="airflow.sdk.ResumableJobMixin exists from Airflow 3.3")
def test_where_upstream_duplicates_and_we_do_not(job_system, request):
    """The same upstream-style operator, on Airflow's mixin and on ours, after a lost submit response."""
    from airflow.sdk import ResumableJobMixin as UpstreamMixin

    from airflow.providers.resumable.mixins import ResumableJobMixin as OurMixin

    def operator_on(mixin):
        class TokenPassingOperator(plain_job_operator(mixin)):
            sends_token = True

        return TokenPassingOperator

    jobs_per_mixin = {}
    for name, mixin in (("upstream", UpstreamMixin), ("ours", OurMixin)):
        before = len(job_system.jobs)
        job_system.faults.drop_submit_responses = 1
        dag = dag_for_test(f"it_gap_{name}")
        operator_on(mixin)(task_id="job", base_url=job_system.url, retries=1, retry_delay=timedelta(0), dag=dag)
        assert run_dag(dag).state == "success"
        jobs_per_mixin[name] = len(job_system.jobs) - before
    assert jobs_per_mixin == {"upstream": 2, "ours": 1}
