"""
The resumable EMR operators inside Airflow's own task runner (``dag.test()``), with real retries.

AWS is moto's server on 127.0.0.1, reached through an ``aws`` connection whose ``endpoint_url``
points at it, exactly as a user's connection would point at AWS. moto does not move EMR steps or
job runs through their states and does not honour a repeated ``clientToken``; the in-process layer
in ``tests/support/fake_aws.py`` adds that (the server runs in this process, so it patches the
backends the server uses). Every count asserted comes from moto's backends.
"""

from __future__ import annotations

from datetime import timedelta

import boto3
import pytest
import requests

from airflow.providers.resumable.operators.emr import (
    ResumableEmrAddStepsOperator,
    ResumableEmrCreateJobFlowOperator,
    ResumableEmrServerlessStartJobOperator,
)
from airflow.providers.resumable.testing import clear_and_rerun, fail_on_tries, run_dag
from tests.integration.harness import make_dag, run_failing_first_try
from tests.support.emr import cluster_op, container_op, failing_at, serverless_op, step_list, steps_op
from tests.support.fake_aws import (
    REGION,
    FakeAws,
    aws_connection_json,
    create_application,
    create_cluster,
    create_virtual_cluster,
)
from tests.support.lossy_proxy import LossyProxy

pytestmark = pytest.mark.integration

RETRY = {"retries": 1, "retry_delay": timedelta(0)}
#: A smaller cluster than the unit tests': no roles, no tags of its own.
OVERRIDES = {
    "Name": "resumable-it",
    "ReleaseLabel": "emr-7.1.0",
    "Instances": {"InstanceCount": 1, "MasterInstanceType": "m5.xlarge", "KeepJobFlowAliveWhenNoSteps": True},
}


@pytest.fixture(scope="module")
def moto_server():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws(moto_server, monkeypatch):
    requests.post(f"{moto_server}/moto-api/reset", timeout=10)
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", aws_connection_json(moto_server))
    with FakeAws().installed() as fake:
        fake.url = moto_server  # type: ignore[attr-defined]
        yield fake


@pytest.fixture
def lossy(aws, monkeypatch):
    """The operators reach moto through a proxy that can lose responses; tests set up resources directly."""
    with LossyProxy(aws.url) as proxy:
        monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", aws_connection_json(proxy.url))
        yield proxy


@pytest.fixture
def cluster(aws):
    return create_cluster(client(aws, "emr"))


@pytest.fixture
def app(aws):
    return create_application(client(aws, "emr-serverless"))


@pytest.fixture
def vc(aws):
    return create_virtual_cluster(client(aws, "emr-containers"))


def client(aws, service):
    return boto3.client(
        service,
        endpoint_url=aws.url,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


# ---------------------------------------------------------------------------------------------- steps


def steps_dag(request, cluster_id, **kwargs):
    """A DAG named after the test whose one task adds ``STEP`` to the cluster."""
    dag = make_dag(request)
    steps_op(cluster_id, dag=dag, **{"waiter_max_attempts": 2, **RETRY, **kwargs})
    return dag


def test_steps_failure_mid_poll_adds_no_new_steps(aws, cluster, request):
    aws.running_reads = 2  # the first try's waiter gives up while the step still runs
    dag = steps_dag(request, cluster)
    run = run_dag(dag)
    assert run.state == "success"
    assert run.ti("steps").try_number == 2
    assert aws.calls["AddJobFlowSteps"] == 1
    assert [s.id for s in aws.steps(cluster)] == run.xcom("steps")


def test_steps_crash_before_the_state_write_is_found_by_marker(aws, cluster, request):
    dag = steps_dag(request, cluster)
    # The worker dies after AddJobFlowSteps returned and before the step ids reached the state store.
    run = run_failing_first_try(dag, ResumableEmrAddStepsOperator, "submit_job", after=True)
    assert run.state == "success"
    assert run.ti("steps").try_number == 2
    assert len(aws.steps(cluster)) == 1, "the retry found the steps by their marker instead of adding them again"
    assert run.xcom("steps") == [aws.steps(cluster)[0].id]


# ------------------------------------------------------------------------- resuming a failed step set

FIVE = step_list(5, "CANCEL_AND_WAIT")


def five_steps_failing_at_4(aws, request, cluster_id, **kwargs):
    """The DAG of one task adding ``FIVE``; its first AddJobFlowSteps fails at step 4 (index 3)."""
    aws.step_outcomes = [failing_at(FIVE, 3)]
    return steps_dag(request, cluster_id, steps=FIVE, **kwargs)


def on_cluster(aws, cluster_id):
    return [(s.name.split(" [")[0], s.state) for s in aws.steps(cluster_id)]


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_step_4_of_5_failed_retry_adds_steps_4_and_5_only(aws, cluster, request, deferrable):
    from airflow.providers.resumable.version_compat import AIRFLOW_V_3_0_PLUS

    dag = five_steps_failing_at_4(aws, request, cluster, deferrable=deferrable, waiter_max_attempts=5)
    run = run_dag(dag)
    assert run.state == "success"
    if AIRFLOW_V_3_0_PLUS or not deferrable:
        # Airflow 2.11's dag.test() runs the retry of a task that failed in execute_complete as try 1
        # again; the steps on the cluster below show the failed try and the retry all the same.
        assert run.ti("steps").try_number == 2
    assert aws.calls["AddJobFlowSteps"] == 2
    assert on_cluster(aws, cluster) == [
        ("step_1", "COMPLETED"),
        ("step_2", "COMPLETED"),
        ("step_3", "COMPLETED"),
        ("step_4", "FAILED"),
        ("step_5", "CANCELLED"),
        ("step_4", "COMPLETED"),
        ("step_5", "COMPLETED"),
    ]
    ids = [s.id for s in aws.steps(cluster)]
    assert run.xcom("steps") == ids[:3] + ids[5:], "one id per requested step: the completed three, the new two"


def test_a_resume_lost_before_it_was_recorded_is_found_by_marker(aws, cluster, request):
    """Try 2 resumes (adds steps 4-5) and dies before the record says so; try 3 finds them, adds nothing."""
    dag = five_steps_failing_at_4(aws, request, cluster, retries=2)
    with fail_on_tries(ResumableEmrAddStepsOperator, "resume_failed_job", tries={2}, after=True) as fault:
        run = run_dag(dag)
    assert fault.fired == [2]
    assert run.state == "success"
    assert run.ti("steps").try_number == 3
    assert aws.calls["AddJobFlowSteps"] == 2, "found by the resume token's marker, not added again"
    ids = [s.id for s in aws.steps(cluster)]
    assert len(ids) == 7
    assert run.xcom("steps") == ids[:3] + ids[5:]


def test_a_lost_resume_response_is_found_in_the_same_try(aws, cluster, lossy, request, monkeypatch):
    """The resume's AddJobFlowSteps reached EMR and its response was lost: looked up by marker, not sent again."""
    real_resume = ResumableEmrAddStepsOperator.resume_failed_job

    def losing_its_response(self, *args, **kwargs):
        lossy.lose("ElasticMapReduce.AddJobFlowSteps")
        return real_resume(self, *args, **kwargs)

    monkeypatch.setattr(ResumableEmrAddStepsOperator, "resume_failed_job", losing_its_response)
    dag = five_steps_failing_at_4(aws, request, cluster)
    run = run_dag(dag)
    assert run.state == "success"
    assert run.ti("steps").try_number == 2
    assert lossy.lost["ElasticMapReduce.AddJobFlowSteps"] == 1
    assert lossy.forwarded["ElasticMapReduce.AddJobFlowSteps"] == 2, "the first set and the resume, each once"
    ids = [s.id for s in aws.steps(cluster)]
    assert len(ids) == 7
    assert run.xcom("steps") == ids[:3] + ids[5:]


def test_on_job_failure_resubmit_adds_all_five_again(aws, cluster, request):
    dag = five_steps_failing_at_4(aws, request, cluster, on_job_failure="resubmit")
    run = run_dag(dag)
    assert run.state == "success"
    assert run.ti("steps").try_number == 2
    assert [name for name, _ in on_cluster(aws, cluster)] == [s["Name"] for s in FIVE] * 2
    assert run.xcom("steps") == [s.id for s in aws.steps(cluster)][5:]


def test_a_terminate_cluster_failure_fails_the_task_saying_why(aws, cluster, request, monkeypatch):
    raised = []
    real_resume = ResumableEmrAddStepsOperator.resume_failed_job

    def recording(self, *args, **kwargs):
        try:
            return real_resume(self, *args, **kwargs)
        except Exception as exc:
            raised.append(exc)
            raise

    monkeypatch.setattr(ResumableEmrAddStepsOperator, "resume_failed_job", recording)
    steps = step_list(5, "TERMINATE_CLUSTER")
    aws.step_outcomes = [failing_at(steps, 3)]
    dag = steps_dag(request, cluster, steps=steps, retries=2)
    run = run_dag(dag)
    assert run.state == "failed"
    assert len(raised) == 1
    assert f"cluster {cluster} is TERMINATED_WITH_ERRORS" in str(raised[0])
    assert run.ti("steps").try_number == 2, "no retry after the diagnosis: none could add steps to that cluster"
    assert aws.calls["AddJobFlowSteps"] == 1
    assert aws.emr().clusters[cluster].state == "TERMINATED_WITH_ERRORS"


# ---------------------------------------------------------------------------------------- serverless


def serverless_dag(request, app_id, **kwargs):
    dag = make_dag(request)
    serverless_op(app_id, dag=dag, **{"waiter_max_attempts": 2, **RETRY, **kwargs})
    return dag


def test_serverless_failure_mid_poll_starts_no_new_run(aws, app, request):
    aws.running_reads = 2
    dag = serverless_dag(request, app)
    run = run_dag(dag)
    assert run.state == "success"
    assert run.ti("spark").try_number == 2
    assert aws.calls["StartJobRun"] == 1
    assert [r.id for r in aws.job_runs(app)] == [run.xcom("spark")]


def test_serverless_lost_response_gets_the_same_run_by_client_token(aws, app, request):
    dag = serverless_dag(request, app)
    # StartJobRun started the run but the try died before the run id reached the state store.
    lost = ConnectionResetError("response of StartJobRun lost")
    run = run_failing_first_try(
        dag, ResumableEmrServerlessStartJobOperator, "submit_job", after=True, error=lambda n: lost
    )
    assert run.state == "success"
    assert aws.calls["StartJobRun"] == 2, "the retry asked again, with the same clientToken"
    assert [r.id for r in aws.job_runs(app)] == [run.xcom("spark")]


# ------------------------------------------------------------------ what steps and serverless runs share


def job_dag(request, aws, kind):
    """The DAG of one ``steps`` or ``serverless`` task, and what lists the jobs it made on AWS."""
    if kind == "steps":
        cluster = create_cluster(client(aws, "emr"))
        return steps_dag(request, cluster), lambda: aws.steps(cluster)
    app = create_application(client(aws, "emr-serverless"))
    return serverless_dag(request, app), lambda: aws.job_runs(app)


@pytest.mark.parametrize(
    ("kind", "outcomes", "succeeded"),
    [("steps", "step_outcomes", "COMPLETED"), ("serverless", "run_outcomes", "SUCCESS")],
    ids=["steps", "serverless"],
)
def test_a_failed_job_is_submitted_again(aws, request, kind, outcomes, succeeded):
    setattr(aws, outcomes, ["FAILED"])
    dag, jobs = job_dag(request, aws, kind)
    run = run_dag(dag)
    assert run.state == "success"
    assert [job.state for job in jobs()] == ["FAILED", succeeded]


@pytest.mark.parametrize("kind", ["steps", "serverless"])
def test_cleared_by_hand_after_success_runs_again(aws, request, kind):
    dag, jobs = job_dag(request, aws, kind)
    (task_id,) = dag.task_ids
    first = run_dag(dag)
    assert first.state == "success"
    second = clear_and_rerun(dag, first)
    assert second.state == "success"
    assert len(jobs()) == 2, "a person's clear is a deliberate re-run"
    assert second.xcom(task_id) != first.xcom(task_id)


# ------------------------------------------------------------------------------------ on EKS, clusters


def container_dag(request, vc_id, **kwargs):
    dag = make_dag(request)
    container_op(vc_id, dag=dag, **RETRY, **kwargs)
    return dag


def cluster_dag(request, **kwargs):
    dag = make_dag(request)
    cluster_op(OVERRIDES, dag=dag, **RETRY, **kwargs)
    return dag


def test_container_failure_mid_poll_starts_no_new_job(aws, vc, request):
    aws.running_reads = 2
    dag = container_dag(request, vc, max_polling_attempts=2)
    run = run_dag(dag)
    assert run.state == "success"
    assert run.ti("eks").try_number == 2
    assert [j.id for j in aws.container_jobs()] == [run.xcom("eks")]


def test_cluster_crash_before_the_state_write_reuses_the_tagged_cluster(aws, request):
    dag = cluster_dag(request)
    # The worker dies after RunJobFlow returned and before the cluster id reached the state store.
    run = run_failing_first_try(dag, ResumableEmrCreateJobFlowOperator, "submit_job", after=True)
    assert run.state == "success"
    assert run.ti("cluster").try_number == 2
    assert [c.id for c in aws.clusters()] == [run.xcom("cluster")]


# ---------------------------------------------------------------------------------------- deferrable


def test_deferrable_serverless_reattaches_after_a_failed_try(aws, app, request):
    """
    The trigger (aiobotocore, same connection) polls moto; the retry defers on the stored run.

    The official triggers need aiobotocore: the locks install the Amazon provider's ``aiobotocore`` extra.
    """
    aws.running_reads = 1
    dag = serverless_dag(request, app, deferrable=True)
    # The worker is lost after the run id was stored.
    run = run_failing_first_try(dag, ResumableEmrServerlessStartJobOperator, "poll_until_complete")
    assert run.state == "success"
    assert run.ti("spark").try_number == 2
    assert aws.calls["StartJobRun"] == 1
    assert [r.id for r in aws.job_runs(app)] == [run.xcom("spark")]


def test_deferrable_steps_reattach_through_the_official_trigger(aws, cluster, request):
    """EmrAddStepsTrigger (aiobotocore) polls ListSteps on moto; the retry defers on the stored steps."""
    aws.running_reads = 1
    dag = steps_dag(request, cluster, deferrable=True, waiter_max_attempts=5)
    # The worker is lost after the step ids were stored.
    run = run_failing_first_try(dag, ResumableEmrAddStepsOperator, "poll_until_complete")
    assert run.state == "success"
    assert run.ti("steps").try_number == 2
    assert aws.calls["AddJobFlowSteps"] == 1
    assert [s.id for s in aws.steps(cluster)] == run.xcom("steps")
    assert [s.state for s in aws.steps(cluster)] == ["COMPLETED"], "the trigger saw it finish"


def test_deferrable_container_job_completes_through_the_official_trigger(aws, vc, request):
    aws.running_reads = 1
    dag = container_dag(request, vc, poll_interval=1, max_polling_attempts=5, deferrable=True)
    run = run_dag(dag)
    assert run.state == "success"
    assert run.ti("eks").try_number == 1
    (job,) = aws.container_jobs()
    assert job.id == run.xcom("eks")
    assert job.state == "COMPLETED", "the trigger saw it finish"
    assert aws.calls["DescribeJobRun"] >= 2, "polled while RUNNING, then COMPLETED"


def test_cluster_cleared_by_hand_gets_a_fresh_cluster(aws, request):
    """A live cluster is the task's result: a retry returns it, a person's clear asks for a new one."""
    dag = cluster_dag(request)
    first = run_dag(dag)
    second = clear_and_rerun(dag, first)
    assert second.state == "success"
    assert len(aws.clusters()) == 2, "the same on the native store (kept record) and on Variables (deleted)"
    assert second.xcom("cluster") != first.xcom("cluster")


# ---------------------------------------------------------------------------- lost submission responses


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_a_lost_add_job_flow_steps_response_adds_one_step_set(aws, cluster, lossy, request, deferrable):
    """EMR accepted the steps, the response never arrived: no botocore retry, a lookup, one step set."""
    lossy.lose("ElasticMapReduce.AddJobFlowSteps")
    dag = steps_dag(request, cluster, deferrable=deferrable)
    run = run_dag(dag)
    assert run.state == "success"
    assert run.ti("steps").try_number == 1, "resolved in the same try"
    assert lossy.lost["ElasticMapReduce.AddJobFlowSteps"] == 1
    assert lossy.forwarded["ElasticMapReduce.AddJobFlowSteps"] == 1, "sent once: nothing to cancel"
    assert lossy.forwarded["ElasticMapReduce.CancelSteps"] == 0
    assert [s.id for s in aws.steps(cluster)] == run.xcom("steps")
    assert len(aws.steps(cluster)) == 1


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_a_lost_run_job_flow_response_creates_one_cluster(aws, lossy, request, deferrable):
    lossy.lose("ElasticMapReduce.RunJobFlow")
    dag = cluster_dag(request, deferrable=deferrable, waiter_delay=1, waiter_max_attempts=5)
    run = run_dag(dag)
    assert run.state == "success"
    assert run.ti("cluster").try_number == 1, "resolved in the same try"
    assert lossy.lost["ElasticMapReduce.RunJobFlow"] == 1
    assert lossy.forwarded["ElasticMapReduce.RunJobFlow"] == 1
    assert lossy.forwarded["ElasticMapReduce.TerminateJobFlows"] == 0
    assert [c.id for c in aws.clusters()] == [run.xcom("cluster")]
