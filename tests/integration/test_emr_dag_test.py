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
    ResumableEmrContainerOperator,
    ResumableEmrCreateJobFlowOperator,
    ResumableEmrServerlessStartJobOperator,
)
from airflow.providers.resumable.testing import clear_and_rerun, run_dag
from tests.integration.harness import make_dag
from tests.support.fake_aws import (
    REGION,
    ROLE_ARN,
    FakeAws,
    aws_connection_json,
    create_application,
    create_cluster,
    create_virtual_cluster,
)
from tests.support.lossy_proxy import LossyProxy

pytestmark = pytest.mark.integration

STEP = {
    "Name": "calculate_pi",
    "ActionOnFailure": "CONTINUE",
    "HadoopJarStep": {"Jar": "command-runner.jar", "Args": ["spark-example", "SparkPi", "10"]},
}
DRIVER = {"sparkSubmit": {"entryPoint": "s3://bucket/job.py"}}
RETRY = {"retries": 1, "retry_delay": timedelta(0)}


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


def client(aws, service):
    return boto3.client(
        service,
        endpoint_url=aws.url,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


# ---------------------------------------------------------------------------------------------- steps


def steps_task(dag, cluster_id, cls=ResumableEmrAddStepsOperator, **kwargs):
    kwargs = {"wait_for_completion": True, "waiter_delay": 1, "waiter_max_attempts": 2, **RETRY, **kwargs}
    return cls(task_id="steps", job_flow_id=cluster_id, steps=[STEP], dag=dag, **kwargs)


class CrashAfterAddingSteps(ResumableEmrAddStepsOperator):
    """The worker dies after AddJobFlowSteps returned and before the step ids reached the state store."""

    def submit_job(self, context):
        result = super().submit_job(context)
        if context["ti"].try_number == 1:
            raise RuntimeError("worker lost before the step ids were stored")
        return result


def test_steps_failure_mid_poll_adds_no_new_steps(aws, request):
    cluster = create_cluster(client(aws, "emr"))
    aws.running_reads = 2  # the first try's waiter gives up while the step still runs
    dag = make_dag(request)
    steps_task(dag, cluster)
    run = run_dag(dag)
    assert run.state == "success"
    assert run.ti("steps").try_number == 2
    assert aws.calls["AddJobFlowSteps"] == 1
    assert [s.id for s in aws.steps(cluster)] == run.xcom("steps")


def test_steps_crash_before_the_state_write_is_found_by_marker(aws, request):
    cluster = create_cluster(client(aws, "emr"))
    dag = make_dag(request)
    steps_task(dag, cluster, cls=CrashAfterAddingSteps)
    run = run_dag(dag)
    assert run.state == "success"
    assert run.ti("steps").try_number == 2
    assert len(aws.steps(cluster)) == 1, "the retry found the steps by their marker instead of adding them again"
    assert run.xcom("steps") == [aws.steps(cluster)[0].id]


def test_failed_steps_are_added_again(aws, request):
    cluster = create_cluster(client(aws, "emr"))
    aws.step_outcomes = ["FAILED"]
    dag = make_dag(request)
    steps_task(dag, cluster)
    run = run_dag(dag)
    assert run.state == "success"
    assert [s.state for s in aws.steps(cluster)] == ["FAILED", "COMPLETED"]


def test_steps_cleared_by_hand_after_success_run_again(aws, request):
    cluster = create_cluster(client(aws, "emr"))
    dag = make_dag(request)
    steps_task(dag, cluster)
    first = run_dag(dag)
    assert first.state == "success"
    second = clear_and_rerun(dag, first)
    assert second.state == "success"
    assert len(aws.steps(cluster)) == 2, "a person's clear is a deliberate re-run"
    assert second.xcom("steps") != first.xcom("steps")


# ---------------------------------------------------------------------------------------- serverless


def serverless_task(dag, app_id, cls=ResumableEmrServerlessStartJobOperator, **kwargs):
    kwargs = {"waiter_delay": 1, "waiter_max_attempts": 2, **RETRY, **kwargs}
    return cls(
        task_id="spark", application_id=app_id, execution_role_arn=ROLE_ARN, job_driver=DRIVER, dag=dag, **kwargs
    )


class LoseStartJobRunResponse(ResumableEmrServerlessStartJobOperator):
    """StartJobRun started the run but the try died before the run id reached the state store."""

    def submit_job(self, context):
        result = super().submit_job(context)
        if context["ti"].try_number == 1:
            raise ConnectionResetError("response of StartJobRun lost")
        return result


def test_serverless_failure_mid_poll_starts_no_new_run(aws, request):
    app = create_application(client(aws, "emr-serverless"))
    aws.running_reads = 2
    dag = make_dag(request)
    serverless_task(dag, app)
    run = run_dag(dag)
    assert run.state == "success"
    assert run.ti("spark").try_number == 2
    assert aws.calls["StartJobRun"] == 1
    assert [r.id for r in aws.job_runs(app)] == [run.xcom("spark")]


def test_serverless_lost_response_gets_the_same_run_by_client_token(aws, request):
    app = create_application(client(aws, "emr-serverless"))
    dag = make_dag(request)
    serverless_task(dag, app, cls=LoseStartJobRunResponse)
    run = run_dag(dag)
    assert run.state == "success"
    assert aws.calls["StartJobRun"] == 2, "the retry asked again, with the same clientToken"
    assert [r.id for r in aws.job_runs(app)] == [run.xcom("spark")]


def test_failed_serverless_run_is_resubmitted(aws, request):
    app = create_application(client(aws, "emr-serverless"))
    aws.run_outcomes = ["FAILED"]
    dag = make_dag(request)
    serverless_task(dag, app)
    run = run_dag(dag)
    assert run.state == "success"
    assert [r.state for r in aws.job_runs(app)] == ["FAILED", "SUCCESS"]


def test_serverless_cleared_by_hand_after_success_runs_again(aws, request):
    app = create_application(client(aws, "emr-serverless"))
    dag = make_dag(request)
    serverless_task(dag, app)
    first = run_dag(dag)
    second = clear_and_rerun(dag, first)
    assert second.state == "success"
    assert len(aws.job_runs(app)) == 2
    assert second.xcom("spark") != first.xcom("spark")


# ------------------------------------------------------------------------------------ on EKS, clusters


def test_container_failure_mid_poll_starts_no_new_job(aws, request):
    vc = create_virtual_cluster(client(aws, "emr-containers"))
    aws.running_reads = 2
    dag = make_dag(request)
    ResumableEmrContainerOperator(
        task_id="eks",
        name="etl",
        virtual_cluster_id=vc,
        execution_role_arn=ROLE_ARN,
        release_label="emr-7.1.0-latest",
        job_driver={"sparkSubmitJobDriver": {"entryPoint": "s3://bucket/job.py"}},
        poll_interval=0,
        max_polling_attempts=2,
        dag=dag,
        **RETRY,
    )
    run = run_dag(dag)
    assert run.state == "success"
    assert run.ti("eks").try_number == 2
    assert [j.id for j in aws.container_jobs()] == [run.xcom("eks")]


class CrashAfterCreatingCluster(ResumableEmrCreateJobFlowOperator):
    def submit_job(self, context):
        result = super().submit_job(context)
        if context["ti"].try_number == 1:
            raise RuntimeError("worker lost before the cluster id was stored")
        return result


def test_cluster_crash_before_the_state_write_reuses_the_tagged_cluster(aws, request):
    dag = make_dag(request)
    CrashAfterCreatingCluster(
        task_id="cluster",
        emr_conn_id=None,
        job_flow_overrides={
            "Name": "resumable-it",
            "ReleaseLabel": "emr-7.1.0",
            "Instances": {"InstanceCount": 1, "MasterInstanceType": "m5.xlarge", "KeepJobFlowAliveWhenNoSteps": True},
        },
        dag=dag,
        **RETRY,
    )
    run = run_dag(dag)
    assert run.state == "success"
    assert run.ti("cluster").try_number == 2
    assert [c.id for c in aws.clusters()] == [run.xcom("cluster")]


# ---------------------------------------------------------------------------------------- deferrable


def test_deferrable_serverless_reattaches_after_a_failed_try(aws, request):
    """
    The trigger (aiobotocore, same connection) polls moto; the retry defers on the stored run.

    The official triggers need aiobotocore: the locks install the Amazon provider's ``aiobotocore`` extra.
    """

    class CrashAfterStart(ResumableEmrServerlessStartJobOperator):
        def poll_until_complete(self, external_id, context):
            if context["ti"].try_number == 1:
                raise RuntimeError("worker lost after the run id was stored")
            super().poll_until_complete(external_id, context)

    app = create_application(client(aws, "emr-serverless"))
    aws.running_reads = 1
    dag = make_dag(request)
    serverless_task(dag, app, cls=CrashAfterStart, deferrable=True)
    run = run_dag(dag)
    assert run.state == "success"
    assert run.ti("spark").try_number == 2
    assert aws.calls["StartJobRun"] == 1
    assert [r.id for r in aws.job_runs(app)] == [run.xcom("spark")]


def test_deferrable_steps_reattach_through_the_official_trigger(aws, request):
    """EmrAddStepsTrigger (aiobotocore) polls ListSteps on moto; the retry defers on the stored steps."""

    class CrashAfterAdding(ResumableEmrAddStepsOperator):
        def poll_until_complete(self, external_id, context):
            if context["ti"].try_number == 1:
                raise RuntimeError("worker lost after the step ids were stored")
            super().poll_until_complete(external_id, context)

    cluster = create_cluster(client(aws, "emr"))
    aws.running_reads = 1
    dag = make_dag(request)
    steps_task(dag, cluster, cls=CrashAfterAdding, deferrable=True, waiter_max_attempts=5)
    run = run_dag(dag)
    assert run.state == "success"
    assert run.ti("steps").try_number == 2
    assert aws.calls["AddJobFlowSteps"] == 1
    assert [s.id for s in aws.steps(cluster)] == run.xcom("steps")
    assert [s.state for s in aws.steps(cluster)] == ["COMPLETED"], "the trigger saw it finish"


def test_deferrable_container_job_completes_through_the_official_trigger(aws, request):
    vc = create_virtual_cluster(client(aws, "emr-containers"))
    aws.running_reads = 1
    dag = make_dag(request)
    ResumableEmrContainerOperator(
        task_id="eks",
        name="etl",
        virtual_cluster_id=vc,
        execution_role_arn=ROLE_ARN,
        release_label="emr-7.1.0-latest",
        job_driver={"sparkSubmitJobDriver": {"entryPoint": "s3://bucket/job.py"}},
        poll_interval=1,
        max_polling_attempts=5,
        deferrable=True,
        dag=dag,
        **RETRY,
    )
    run = run_dag(dag)
    assert run.state == "success"
    assert run.ti("eks").try_number == 1
    (job,) = aws.container_jobs()
    assert job.id == run.xcom("eks")
    assert job.state == "COMPLETED", "the trigger saw it finish"
    assert aws.calls["DescribeJobRun"] >= 2, "polled while RUNNING, then COMPLETED"


def test_cluster_cleared_by_hand_gets_a_fresh_cluster(aws, request):
    """A live cluster is the task's result: a retry returns it, a person's clear asks for a new one."""
    dag = make_dag(request)
    ResumableEmrCreateJobFlowOperator(
        task_id="cluster",
        emr_conn_id=None,
        job_flow_overrides={
            "Name": "resumable-it",
            "ReleaseLabel": "emr-7.1.0",
            "Instances": {"InstanceCount": 1, "MasterInstanceType": "m5.xlarge", "KeepJobFlowAliveWhenNoSteps": True},
        },
        dag=dag,
        **RETRY,
    )
    first = run_dag(dag)
    second = clear_and_rerun(dag, first)
    assert second.state == "success"
    assert len(aws.clusters()) == 2, "the same on the native store (kept record) and on Variables (deleted)"
    assert second.xcom("cluster") != first.xcom("cluster")


# ---------------------------------------------------------------------------- lost submission responses


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferrable"])
def test_a_lost_add_job_flow_steps_response_adds_one_step_set(aws, lossy, request, deferrable):
    """EMR accepted the steps, the response never arrived: no botocore retry, a lookup, one step set."""
    cluster = create_cluster(client(aws, "emr"))
    lossy.lose("ElasticMapReduce.AddJobFlowSteps")
    dag = make_dag(request)
    steps_task(dag, cluster, deferrable=deferrable)
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
    dag = make_dag(request)
    ResumableEmrCreateJobFlowOperator(
        task_id="cluster",
        emr_conn_id=None,
        job_flow_overrides={
            "Name": "resumable-it",
            "ReleaseLabel": "emr-7.1.0",
            "Instances": {"InstanceCount": 1, "MasterInstanceType": "m5.xlarge", "KeepJobFlowAliveWhenNoSteps": True},
        },
        deferrable=deferrable,
        waiter_delay=1,
        waiter_max_attempts=5,
        dag=dag,
        **RETRY,
    )
    run = run_dag(dag)
    assert run.state == "success"
    assert run.ti("cluster").try_number == 1, "resolved in the same try"
    assert lossy.lost["ElasticMapReduce.RunJobFlow"] == 1
    assert lossy.forwarded["ElasticMapReduce.RunJobFlow"] == 1
    assert lossy.forwarded["ElasticMapReduce.TerminateJobFlows"] == 0
    assert [c.id for c in aws.clusters()] == [run.xcom("cluster")]
