"""
The resumable EMR operators under ``moto.mock_aws``, one try at a time, with an in-memory state store.

moto does not move EMR steps or job runs through their states and ignores a repeated ``clientToken``;
``tests/support/fake_aws.py`` adds exactly that (and says how), everything else is moto.
Counts asserted here (steps on the cluster, job runs, clusters) come from moto's backends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from airflow.providers.amazon.aws.utils.waiter import WaitPolicy
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError
from tenacity import wait_none

from airflow.providers.resumable.mixins import ResumableJobConflictError
from airflow.providers.resumable.operators.emr import (
    CLUSTER_TOKEN_TAG,
    ResumableEmrAddStepsOperator,
    ResumableEmrContainerOperator,
    ResumableEmrCreateJobFlowOperator,
    ResumableEmrServerlessStartJobOperator,
    is_transient_aws_error,
)
from tests.support.context import FakeTI
from tests.support.fake_aws import (
    REGION,
    ROLE_ARN,
    FakeAws,
    create_application,
    create_cluster,
    create_virtual_cluster,
)
from tests.support.job_run import while_polling

STEP = {
    "Name": "calculate_pi",
    "ActionOnFailure": "CONTINUE",
    "HadoopJarStep": {"Jar": "command-runner.jar", "Args": ["spark-example", "SparkPi", "10"]},
}
DRIVER = {"sparkSubmit": {"entryPoint": "s3://bucket/job.py"}}


@dataclass
class XComTI(FakeTI):
    """FakeTI plus the xcom_push the official operators call for links and ``job_flow_id``."""

    pushed: dict[str, Any] = field(default_factory=dict)

    def xcom_push(self, key: str, value: Any, **kwargs: Any) -> None:
        self.pushed[key] = value


def ctx(try_number=1, max_tries=2):
    return {"ti": XComTI(try_number=try_number, max_tries=max_tries)}


@pytest.fixture
def aws(monkeypatch, memory_store):
    """moto in-process, the fake layer on top, and clients for setting up resources."""
    from moto import mock_aws

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", '{"conn_type": "aws"}')
    with mock_aws(), FakeAws().installed() as fake:
        yield fake


def record(store, key):
    return store.get(key)


def step_names(fake, cluster_id):
    return [s.name for s in fake.steps(cluster_id)]


# ---------------------------------------------------------------------------------------------- steps


def steps_op(cluster_id, **kwargs):
    kwargs.setdefault("steps", [STEP])
    kwargs.setdefault("wait_for_completion", True)
    kwargs.setdefault("waiter_delay", 1)
    kwargs.setdefault("waiter_max_attempts", 3)
    return ResumableEmrAddStepsOperator(task_id="steps", job_flow_id=cluster_id, **kwargs)


class TestAddSteps:
    def test_no_steps_return_an_empty_list_and_record_nothing(self, aws, memory_store):
        cluster = create_cluster(boto3.client("emr", region_name=REGION))
        context = ctx()
        assert steps_op(cluster, steps=[]).execute(context) == []
        assert memory_store.get("emr_steps") is None
        assert aws.steps(cluster) == []
        assert context["ti"].pushed["job_flow_id"] == cluster, "the official operator's XCom, as upstream"

    def test_marks_each_step_stores_the_ids_and_returns_them(self, aws, memory_store):
        cluster = create_cluster(boto3.client("emr", region_name=REGION))
        context = ctx()
        result = steps_op(cluster, steps=[STEP, {**STEP, "Name": "second"}]).execute(context)
        stored = record(memory_store, "emr_steps")
        assert stored["external_id"] == {"cluster_id": cluster, "step_ids": result}
        assert len(result) == 2
        token = stored["token"]
        assert step_names(aws, cluster) == [f"calculate_pi [{token}:0/2]", f"second [{token}:1/2]"]
        assert context["ti"].pushed["job_flow_id"] == cluster

    def test_failure_mid_poll_reattaches_without_adding_steps(self, aws, memory_store):
        cluster = create_cluster(boto3.client("emr", region_name=REGION))
        aws.running_reads = 1  # the first try's only poll sees RUNNING, then its waiter gives up
        with pytest.raises(Exception, match="max attempts|Max attempts"):
            steps_op(cluster, waiter_max_attempts=1).execute(ctx(1))
        first = record(memory_store, "emr_steps")["external_id"]
        result = steps_op(cluster).execute(ctx(2))
        assert result == first["step_ids"]
        assert len(aws.steps(cluster)) == 1
        assert aws.calls["AddJobFlowSteps"] == 1

    def test_crash_between_add_and_state_write_finds_the_steps_by_marker(self, aws, memory_store, monkeypatch):
        cluster = create_cluster(boto3.client("emr", region_name=REGION))
        real_set = memory_store.set
        monkeypatch.setattr(memory_store, "set", _only_intents(memory_store))
        with pytest.raises(ConnectionError):
            steps_op(cluster).execute(ctx(1))
        monkeypatch.setattr(memory_store, "set", real_set)
        assert record(memory_store, "emr_steps")["external_id"] is None

        result = steps_op(cluster).execute(ctx(2))
        assert aws.calls["AddJobFlowSteps"] == 1
        assert [s.id for s in aws.steps(cluster)] == result
        assert record(memory_store, "emr_steps")["external_id"]["step_ids"] == result

    def test_failed_steps_are_added_again_with_a_new_marker(self, aws, memory_store):
        cluster = create_cluster(boto3.client("emr", region_name=REGION))
        aws.step_outcomes = ["FAILED"]
        with pytest.raises(Exception, match="EMR Steps failed|Waiter"):
            steps_op(cluster).execute(ctx(1))
        first_token = record(memory_store, "emr_steps")["token"]
        steps_op(cluster).execute(ctx(2))
        assert len(aws.steps(cluster)) == 2
        assert record(memory_store, "emr_steps")["token"] != first_token

    def test_completed_steps_are_returned_not_added_again(self, aws, memory_store):
        cluster = create_cluster(boto3.client("emr", region_name=REGION))
        first = steps_op(cluster).execute(ctx(1))
        assert steps_op(cluster).execute(ctx(2)) == first
        assert len(aws.steps(cluster)) == 1

    def test_cleared_by_hand_after_success_adds_fresh_steps(self, aws, memory_store):
        cluster = create_cluster(boto3.client("emr", region_name=REGION))
        steps_op(cluster).execute(ctx(1, max_tries=2))
        steps_op(cluster).execute(ctx(2, max_tries=4))
        assert len(aws.steps(cluster)) == 2

    def test_partial_set_is_a_conflict_not_a_resubmit(self, aws, memory_store, monkeypatch):
        cluster = create_cluster(boto3.client("emr", region_name=REGION))
        op = steps_op(cluster, steps=[STEP, {**STEP, "Name": "second"}])
        monkeypatch.setattr(memory_store, "set", _only_intents(memory_store))
        with pytest.raises(ConnectionError):
            op.execute(ctx(1))
        aws.emr().clusters[cluster].steps.pop()  # one of the two steps vanished
        with pytest.raises(ResumableJobConflictError, match="incomplete set of steps"):
            steps_op(cluster, steps=[STEP, {**STEP, "Name": "second"}]).execute(ctx(2))
        assert aws.calls["AddJobFlowSteps"] == 1

    def test_fingerprint_ignores_the_marker_and_spec_change_does_not_reattach(self, aws, memory_store):
        cluster = create_cluster(boto3.client("emr", region_name=REGION))
        aws.running_reads = 5  # the set is still running when the changed task retries
        op = steps_op(cluster, wait_for_completion=False)
        before = op.job_fingerprint(ctx())
        op.execute(ctx(1))
        assert op.job_fingerprint(ctx()) == before
        changed = steps_op(cluster, steps=[{**STEP, "Name": "other"}], wait_for_completion=False)
        with pytest.raises(ResumableJobConflictError, match="different spec"):
            changed.execute(ctx(2))
        assert len(aws.steps(cluster)) == 1

    def test_steps_gone_from_the_cluster_mean_fresh_steps(self, aws, memory_store):
        cluster = create_cluster(boto3.client("emr", region_name=REGION))
        steps_op(cluster).execute(ctx(1))
        stored = record(memory_store, "emr_steps")
        memory_store.set("emr_steps", {**stored, "external_id": {"cluster_id": cluster, "step_ids": ["s-EXPIRED"]}})
        steps_op(cluster).execute(ctx(2))
        assert len(aws.steps(cluster)) == 2
        assert record(memory_store, "emr_steps")["seq"] == stored["seq"] + 1

    def test_unknown_cluster_is_not_found_and_throttling_is_not(self, aws, memory_store, monkeypatch):
        from airflow.providers.resumable.mixins import JobNotFoundError

        op = steps_op("j-1")
        job = {"cluster_id": "j-1", "step_ids": ["s-1"]}

        def failing(code, status):
            def paginate(**kwargs):
                raise ClientError(
                    {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "ListSteps"
                )

            return type("P", (), {"paginate": staticmethod(paginate)})()

        monkeypatch.setattr(op.hook.conn, "get_paginator", lambda name: failing("InvalidRequestException", 400))
        with pytest.raises(JobNotFoundError):
            op.get_job_status(job, ctx())
        monkeypatch.setattr(op.hook.conn, "get_paginator", lambda name: failing("ThrottlingException", 400))
        with pytest.raises(ClientError) as raised:
            op.get_job_status(job, ctx())
        assert op.is_transient_error(raised.value)

    def test_a_set_added_twice_anyway_keeps_the_oldest_and_cancels_the_repeat(self, aws, memory_store, monkeypatch):
        """The last resort: a repeat that got in despite single-attempt submission (another client, a stale lookup)."""
        cluster = create_cluster(boto3.client("emr", region_name=REGION))
        op = steps_op(cluster, wait_for_completion=False)
        real_add = op.hook.add_job_flow_steps
        monkeypatch.setattr(op.hook, "add_job_flow_steps", lambda **kw: (real_add(**kw), real_add(**kw))[1])
        cancelled = []
        # moto has no CancelSteps; record the call instead.
        monkeypatch.setattr(op.hook.conn, "cancel_steps", lambda **kwargs: cancelled.append(kwargs))
        result = op.execute(ctx())
        first, second = aws.steps(cluster)
        assert result == [first.id]
        assert cancelled == [{"ClusterId": cluster, "StepIds": [second.id], "StepCancellationOption": "SEND_INTERRUPT"}]
        assert record(memory_store, "emr_steps")["external_id"]["step_ids"] == [first.id]

    def test_a_repeat_that_cannot_be_cancelled_fails_loudly(self, aws, memory_store, monkeypatch):
        cluster = create_cluster(boto3.client("emr", region_name=REGION))
        op = steps_op(cluster, wait_for_completion=False)
        real_add = op.hook.add_job_flow_steps
        monkeypatch.setattr(op.hook, "add_job_flow_steps", lambda **kw: (real_add(**kw), real_add(**kw))[1])
        with pytest.raises(ResumableJobConflictError, match="twice"):
            op.execute(ctx())  # moto answers CancelSteps with an error

    def test_add_job_flow_steps_goes_out_with_botocore_retries_off(self, aws, memory_store, monkeypatch):
        cluster = create_cluster(boto3.client("emr", region_name=REGION))
        op = steps_op(cluster, wait_for_completion=False)
        seen = []
        real_add = op.hook.add_job_flow_steps

        def add(**kwargs):
            seen.append(op.hook.get_conn())
            return real_add(**kwargs)

        monkeypatch.setattr(op.hook, "add_job_flow_steps", add)
        op.execute(ctx())
        (client,) = seen
        assert client is not op.hook.conn
        assert client.meta.config.retries == {"total_max_attempts": 1, "mode": "standard"}
        assert op.hook.get_conn() is op.hook.conn, "only that one call"

    def test_a_lost_response_is_looked_up_and_not_sent_again(self, aws, memory_store, monkeypatch):
        cluster = create_cluster(boto3.client("emr", region_name=REGION))
        op = steps_op(cluster, wait_for_completion=False)
        real_add = op.hook.add_job_flow_steps
        calls = []

        def accepted_but_lost(**kwargs):
            calls.append(kwargs)
            real_add(**kwargs)
            if len(calls) == 1:
                raise ConnectionClosedError(endpoint_url="https://elasticmapreduce.us-east-1.amazonaws.com")
            return real_add(**kwargs)

        monkeypatch.setattr(op.hook, "add_job_flow_steps", accepted_but_lost)
        result = op.execute(ctx())
        assert len(calls) == 1
        assert [s.id for s in aws.steps(cluster)] == result

    def test_a_throttled_submission_that_did_not_go_through_is_sent_again(self, aws, memory_store, monkeypatch):
        monkeypatch.setattr(ResumableEmrAddStepsOperator, "status_retry_wait", wait_none())
        cluster = create_cluster(boto3.client("emr", region_name=REGION))
        op = steps_op(cluster, wait_for_completion=False)
        real_add = op.hook.add_job_flow_steps
        calls = []

        def throttled_once(**kwargs):
            calls.append(kwargs)
            if len(calls) == 1:
                raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "AddJobFlowSteps")
            return real_add(**kwargs)

        monkeypatch.setattr(op.hook, "add_job_flow_steps", throttled_once)
        result = op.execute(ctx())
        assert len(calls) == 2, "looked up, found nothing, sent again"
        assert aws.calls["ListSteps"] >= 1
        assert [s.id for s in aws.steps(cluster)] == result

    def test_an_error_that_created_nothing_is_raised_without_a_lookup(self, aws, memory_store, monkeypatch):
        cluster = create_cluster(boto3.client("emr", region_name=REGION))
        op = steps_op(cluster, wait_for_completion=False)
        invalid = ClientError({"Error": {"Code": "ValidationException", "Message": "bad jar"}}, "AddJobFlowSteps")
        monkeypatch.setattr(op.hook, "add_job_flow_steps", lambda **kwargs: (_ for _ in ()).throw(invalid))
        with pytest.raises(ClientError, match="bad jar"):
            op.execute(ctx())
        assert aws.calls.get("ListSteps", 0) == 0
        assert memory_store.get("emr_steps")["external_id"] is None, "the intent stays for the retry"

    def test_giving_up_after_submit_attempts_raises_the_aws_error(self, aws, memory_store, monkeypatch):
        monkeypatch.setattr(ResumableEmrAddStepsOperator, "status_retry_wait", wait_none())
        cluster = create_cluster(boto3.client("emr", region_name=REGION))
        op = steps_op(cluster, wait_for_completion=False)
        throttled = ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "AddJobFlowSteps")
        attempts = []
        monkeypatch.setattr(
            op.hook, "add_job_flow_steps", lambda **kw: attempts.append(kw) or (_ for _ in ()).throw(throttled)
        )
        with pytest.raises(ClientError, match="slow down"):
            op.execute(ctx())
        assert len(attempts) == op.submit_attempts == 3
        assert aws.steps(cluster) == []

    def test_steps_from_a_string_literal(self, aws, memory_store):
        cluster = create_cluster(boto3.client("emr", region_name=REGION))
        assert len(steps_op(cluster, steps=repr([STEP])).execute(ctx())) == 1

    @pytest.mark.parametrize(
        ("steps", "message"),
        [
            ([{"HadoopJarStep": {}}], r"steps\[0\] must be a dict with a string 'Name'"),
            (["x"], r"steps\[0\] must be a dict"),
            ([{**STEP, "Name": "n" * 250}], r"steps\[0\]\['Name'\] is 250 characters"),
        ],
    )
    def test_bad_steps_fail_at_parse_time(self, steps, message):
        with pytest.raises(ValueError, match=message):
            ResumableEmrAddStepsOperator(task_id="steps", job_flow_id="j-1", steps=steps)

    def test_kill_leaves_steps_running_unless_asked(self, aws, memory_store):
        cluster = create_cluster(boto3.client("emr", region_name=REGION))
        op = steps_op(cluster)
        while_polling(op, {"cluster_id": cluster, "step_ids": ["s-1"]}, ctx())
        op.on_kill()  # no AWS call: the official operator has no cancel and ours is off
        op.cancel_on_kill = True
        calls = []
        op.cancel_job = lambda external_id, context: calls.append(external_id)
        op.on_kill()
        assert calls == [{"cluster_id": cluster, "step_ids": ["s-1"]}]


def _only_intents(store):
    real_set = store.set

    def set_intent_only(key, value):
        if value.get("external_id") is not None:
            raise ConnectionError("worker lost before the id was stored")
        real_set(key, value)

    return set_intent_only


# ---------------------------------------------------------------------------------------- serverless


def serverless_op(app_id, **kwargs):
    kwargs.setdefault("waiter_delay", 1)
    kwargs.setdefault("waiter_max_attempts", 3)
    return ResumableEmrServerlessStartJobOperator(
        task_id="spark", application_id=app_id, execution_role_arn=ROLE_ARN, job_driver=DRIVER, **kwargs
    )


class TestServerless:
    def test_the_generated_name_stays_set_as_upstream(self, aws, memory_store):
        app = create_application(boto3.client("emr-serverless", region_name=REGION))
        config = {"name": "from-config", "tags": {"team": "data"}}
        op = serverless_op(app, config=config)
        op.execute(ctx())
        assert op.name == "from-config"
        assert op.config == {"tags": {"team": "data"}}, "taken out of config, as the official execute() does"
        assert config == {"name": "from-config", "tags": {"team": "data"}}, "the caller's dict is not changed"
        op = serverless_op(app)
        op.execute(ctx())
        assert op.name == f"emr_serverless_job_airflow_{record(memory_store, 'emr_serverless_job_run')['token']}"

    def test_a_retry_on_the_same_object_is_not_a_changed_spec(self, aws, memory_store):
        app = create_application(boto3.client("emr-serverless", region_name=REGION))
        aws.running_reads = 1
        op = serverless_op(app, waiter_max_attempts=1)
        with pytest.raises(Exception, match="max attempts"):
            op.execute(ctx(1))
        assert op.name is not None
        assert op.execute(ctx(2)) == aws.job_runs(app)[0].id
        assert aws.calls["StartJobRun"] == 1

    def test_client_token_is_the_idempotency_token(self, aws, memory_store):
        app = create_application(boto3.client("emr-serverless", region_name=REGION))
        run_id = serverless_op(app).execute(ctx())
        stored = record(memory_store, "emr_serverless_job_run")
        assert stored["external_id"] == {"application_id": app, "job_run_id": run_id}
        (run,) = aws.job_runs(app)
        assert run.client_token == stored["token"]
        assert run.name == f"emr_serverless_job_airflow_{stored['token']}"

    def test_lost_response_resubmits_the_same_token_and_gets_the_same_run(self, aws, memory_store, monkeypatch):
        app = create_application(boto3.client("emr-serverless", region_name=REGION))
        real_set = memory_store.set
        monkeypatch.setattr(memory_store, "set", _only_intents(memory_store))
        with pytest.raises(ConnectionError):
            serverless_op(app).execute(ctx(1))
        monkeypatch.setattr(memory_store, "set", real_set)
        run_id = serverless_op(app).execute(ctx(2))
        assert aws.calls["StartJobRun"] == 2
        assert [r.id for r in aws.job_runs(app)] == [run_id]

    def test_failure_mid_poll_reattaches(self, aws, memory_store):
        app = create_application(boto3.client("emr-serverless", region_name=REGION))
        aws.running_reads = 1
        with pytest.raises(Exception, match="max attempts|Max attempts"):
            serverless_op(app, waiter_max_attempts=1).execute(ctx(1))
        run_id = serverless_op(app).execute(ctx(2))
        assert [r.id for r in aws.job_runs(app)] == [run_id]
        assert aws.calls["StartJobRun"] == 1

    def test_failed_run_is_resubmitted(self, aws, memory_store):
        app = create_application(boto3.client("emr-serverless", region_name=REGION))
        aws.run_outcomes = ["FAILED"]
        with pytest.raises(Exception, match="Serverless Job failed"):
            serverless_op(app).execute(ctx(1))
        serverless_op(app).execute(ctx(2))
        runs = aws.job_runs(app)
        assert [r.state for r in runs] == ["FAILED", "SUCCESS"]
        assert runs[0].client_token != runs[1].client_token

    def test_without_waiting_returns_the_id_at_once(self, aws, memory_store):
        app = create_application(boto3.client("emr-serverless", region_name=REGION))
        run_id = serverless_op(app, wait_for_completion=False).execute(ctx())
        assert aws.job_runs(app)[0].state == "RUNNING"
        assert aws.job_runs(app)[0].id == run_id

    def test_deferrable_stores_the_id_before_deferring_and_forgets_on_success(self, aws, memory_store):
        from airflow.providers.amazon.aws.triggers.emr import EmrServerlessStartJobTrigger

        from airflow.providers.resumable.version_compat import AIRFLOW_V_3_0_PLUS as V3

        if V3:
            from airflow.sdk.exceptions import TaskDeferred
        else:
            from airflow.exceptions import TaskDeferred

        app = create_application(boto3.client("emr-serverless", region_name=REGION))
        aws.running_reads = 1  # still RUNNING when the retry looks
        op = serverless_op(app, deferrable=True)
        with pytest.raises(TaskDeferred) as deferred:
            op.execute(ctx(1))
        assert isinstance(deferred.value.trigger, EmrServerlessStartJobTrigger)
        stored = record(memory_store, "emr_serverless_job_run")["external_id"]
        assert deferred.value.trigger.serialize()[1]["job_id"] == stored["job_run_id"]
        # A retry of a deferred try defers again on the same run.
        with pytest.raises(TaskDeferred):
            serverless_op(app, deferrable=True).execute(ctx(2))
        assert len(aws.job_runs(app)) == 1
        event = {"status": "success", "job_details": {"application_id": app, "job_id": stored["job_run_id"]}}
        assert op.execute_complete(ctx(2), event) == stored["job_run_id"]

    def test_explicit_client_token_is_replaced(self, aws, memory_store):
        app = create_application(boto3.client("emr-serverless", region_name=REGION))
        serverless_op(app, client_request_token="fixed").execute(ctx())
        assert aws.job_runs(app)[0].client_token.startswith("rsm-")

    def test_kill_does_not_cancel_by_default(self, aws, memory_store):
        app = create_application(boto3.client("emr-serverless", region_name=REGION))
        op = serverless_op(app)
        op.job_id = "run-1"  # what the official on_kill would cancel
        while_polling(op, {"application_id": app, "job_run_id": "run-1"}, ctx())
        op.on_kill()
        assert "CancelJobRun" not in aws.calls


# ------------------------------------------------------------------------------------------ on EKS


def container_op(vc_id, **kwargs):
    kwargs.setdefault("poll_interval", 0)
    return ResumableEmrContainerOperator(
        task_id="eks",
        name="etl",
        virtual_cluster_id=vc_id,
        execution_role_arn=ROLE_ARN,
        release_label="emr-7.1.0-latest",
        job_driver={"sparkSubmitJobDriver": {"entryPoint": "s3://bucket/job.py"}},
        **kwargs,
    )


class TestContainer:
    def test_reattach_after_failure_mid_poll(self, aws, memory_store):
        vc = create_virtual_cluster(boto3.client("emr-containers", region_name=REGION))
        aws.running_reads = 5
        with pytest.raises(Exception, match="Max tries"):
            container_op(vc, max_polling_attempts=2).execute(ctx(1))
        stored = record(memory_store, "emr_containers_job")
        assert stored["external_id"]["virtual_cluster_id"] == vc
        job_id = container_op(vc).execute(ctx(2))
        assert job_id == stored["external_id"]["job_id"]
        assert len(aws.container_jobs()) == 1
        assert aws.container_jobs()[0].client_token == stored["token"]

    def test_lost_response_gets_the_same_job(self, aws, memory_store, monkeypatch):
        vc = create_virtual_cluster(boto3.client("emr-containers", region_name=REGION))
        real_set = memory_store.set
        monkeypatch.setattr(memory_store, "set", _only_intents(memory_store))
        with pytest.raises(ConnectionError):
            container_op(vc).execute(ctx(1))
        monkeypatch.setattr(memory_store, "set", real_set)
        container_op(vc).execute(ctx(2))
        assert len(aws.container_jobs()) == 1

    def test_failed_job_is_resubmitted(self, aws, memory_store):
        vc = create_virtual_cluster(boto3.client("emr-containers", region_name=REGION))
        aws.container_outcomes = ["FAILED"]
        with pytest.raises(Exception, match="EMR Containers job failed"):
            container_op(vc).execute(ctx(1))
        container_op(vc).execute(ctx(2))
        assert sorted(j.state for j in aws.container_jobs()) == ["COMPLETED", "FAILED"]

    def test_throttled_status_is_retried_not_read_as_gone(self, aws, memory_store, monkeypatch):
        vc = create_virtual_cluster(boto3.client("emr-containers", region_name=REGION))
        op = container_op(vc)
        job = {"virtual_cluster_id": vc, "job_id": "j"}
        throttled = ClientError({"Error": {"Code": "ThrottlingException"}}, "DescribeJobRun")
        monkeypatch.setattr(op.hook.conn, "describe_job_run", lambda **kw: (_ for _ in ()).throw(throttled))
        with pytest.raises(ClientError):
            op.get_job_status(job, ctx())
        assert op.is_transient_error(throttled)


# ---------------------------------------------------------------------------------------- clusters

OVERRIDES = {
    "Name": "resumable-cluster",
    "ReleaseLabel": "emr-7.1.0",
    "Instances": {"InstanceCount": 1, "MasterInstanceType": "m5.xlarge", "KeepJobFlowAliveWhenNoSteps": True},
    "JobFlowRole": "EMR_EC2_DefaultRole",
    "ServiceRole": "EMR_DefaultRole",
    "Tags": [{"Key": "team", "Value": "data"}],
}


def cluster_op(**kwargs):
    kwargs.setdefault("job_flow_overrides", OVERRIDES)
    return ResumableEmrCreateJobFlowOperator(task_id="cluster", emr_conn_id=None, **kwargs)


class TestCreateJobFlow:
    def test_overrides_from_a_string_stay_parsed_as_upstream(self, aws, memory_store):
        op = cluster_op(job_flow_overrides=repr(OVERRIDES))
        op.execute(ctx())
        assert op.job_flow_overrides == OVERRIDES, "the parsed dict, without the operator's tag"

    def test_tags_the_cluster_with_the_token(self, aws, memory_store):
        cluster_id = cluster_op().execute(ctx())
        stored = record(memory_store, "emr_cluster")
        assert stored["external_id"] == {"cluster_id": cluster_id}
        tags = {
            t["Key"]: t["Value"]
            for t in boto3.client("emr", region_name=REGION).describe_cluster(ClusterId=cluster_id)["Cluster"]["Tags"]
        }
        assert tags == {"team": "data", CLUSTER_TOKEN_TAG: stored["token"]}

    def test_crash_before_the_state_write_reuses_the_tagged_cluster(self, aws, memory_store, monkeypatch):
        real_set = memory_store.set
        monkeypatch.setattr(memory_store, "set", _only_intents(memory_store))
        with pytest.raises(ConnectionError):
            cluster_op().execute(ctx(1))
        monkeypatch.setattr(memory_store, "set", real_set)
        create_cluster(boto3.client("emr", region_name=REGION), name="resumable-cluster")  # same name, no tag
        cluster_id = cluster_op().execute(ctx(2))
        assert len(aws.clusters()) == 2
        assert cluster_id == aws.clusters()[0].id

    def test_alive_cluster_is_reused_terminated_one_replaced(self, aws, memory_store):
        first = cluster_op().execute(ctx(1))
        assert cluster_op().execute(ctx(2)) == first
        boto3.client("emr", region_name=REGION).terminate_job_flows(JobFlowIds=[first])
        second = cluster_op().execute(ctx(3))
        assert second != first
        assert len(aws.clusters()) == 2

    def test_a_cluster_created_twice_anyway_is_terminated(self, aws, memory_store, monkeypatch):
        op = cluster_op()
        real_create = op.hook.create_job_flow
        monkeypatch.setattr(
            op.hook, "create_job_flow", lambda overrides: (real_create(overrides), real_create(overrides))[1]
        )
        cluster_id = op.execute(ctx())
        first, second = aws.clusters()
        assert cluster_id == first.id
        assert (first.state, second.state) == ("WAITING", "TERMINATED")

    @pytest.mark.parametrize(
        ("wait", "state", "code", "active", "succeeded"),
        [
            # No waiting: the task is done once the cluster exists.
            ({}, "STARTING", None, False, True),
            ({}, "WAITING", None, False, True),
            # WAIT_FOR_COMPLETION: done once it is RUNNING or WAITING.
            ({"wait_for_completion": True}, "BOOTSTRAPPING", None, True, False),
            ({"wait_for_completion": True}, "WAITING", None, False, True),
            ({"wait_for_completion": True}, "RUNNING", None, False, True),
            # WAIT_FOR_STEPS_COMPLETION: done once it terminated after its steps.
            ({"wait_policy": WaitPolicy.WAIT_FOR_STEPS_COMPLETION}, "WAITING", None, True, False),
            ({"wait_policy": WaitPolicy.WAIT_FOR_STEPS_COMPLETION}, "TERMINATING", "ALL_STEPS_COMPLETED", True, False),
            ({"wait_policy": WaitPolicy.WAIT_FOR_STEPS_COMPLETION}, "TERMINATED", "ALL_STEPS_COMPLETED", False, True),
            ({"wait_policy": WaitPolicy.WAIT_FOR_STEPS_COMPLETION}, "TERMINATED", "USER_REQUEST", False, False),
            ({"wait_for_completion": True}, "TERMINATING", "USER_REQUEST", False, False),
            ({}, "TERMINATED", "USER_REQUEST", False, False),
            ({}, "TERMINATED_WITH_ERRORS", "BOOTSTRAP_FAILURE", False, False),
        ],
    )
    def test_what_a_cluster_state_means(self, aws, monkeypatch, wait, state, code, active, succeeded):
        # moto sets no StateChangeReason code, so AWS's answer is given here.
        op = cluster_op(**wait)
        reason = {"Code": code} if code else {}
        answer = {"Cluster": {"Status": {"State": state, "StateChangeReason": reason}}}
        monkeypatch.setattr(op.hook.conn, "describe_cluster", lambda **kwargs: answer)
        status = op.get_job_status({"cluster_id": "j-1"}, ctx())
        assert (op.is_job_active(status), op.is_job_succeeded(status)) == (active, succeeded)

    def test_our_tag_in_overrides_is_rejected_at_parse_time(self):
        bad = {**OVERRIDES, "Tags": [{"Key": CLUSTER_TOKEN_TAG, "Value": "x"}]}
        with pytest.raises(ValueError, match="must not set 'airflow-resumable-token'"):
            cluster_op(job_flow_overrides=bad)


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (ClientError({"Error": {"Code": "ThrottlingException"}}, "X"), True),
        (ClientError({"Error": {"Code": "Boom"}, "ResponseMetadata": {"HTTPStatusCode": 503}}, "X"), True),
        (
            ClientError({"Error": {"Code": "ValidationException"}, "ResponseMetadata": {"HTTPStatusCode": 400}}, "X"),
            False,
        ),
        (EndpointConnectionError(endpoint_url="http://x"), True),
        (ValueError("x"), False),
    ],
)
def test_transient_aws_errors(exc, transient):
    assert is_transient_aws_error(exc) is transient


# ---------------------------------------------------------------------------------------- deferrable


def _task_deferred():
    from airflow.providers.resumable.version_compat import AIRFLOW_V_3_0_PLUS

    if AIRFLOW_V_3_0_PLUS:
        from airflow.sdk.exceptions import TaskDeferred
    else:
        from airflow.exceptions import TaskDeferred
    return TaskDeferred


@pytest.fixture
def ephemeral_store(aws, state_backend):
    """The Variable backend's behaviour: the record is wiped when the task succeeds."""
    from tests.support.stores import EphemeralMemoryStore, SharedMemoryStore

    # The subclass may carry its own ``current`` (another test module sets it), so set that one.
    EphemeralMemoryStore.current = store = EphemeralMemoryStore()
    state_backend("tests.support.stores.EphemeralMemoryStore")
    yield store
    EphemeralMemoryStore.current = None
    SharedMemoryStore.current = None


class TestDeferrable:
    def test_steps_defer_on_the_stored_ids_and_forget_them_on_success(self, aws, ephemeral_store):
        from airflow.providers.amazon.aws.triggers.emr import EmrAddStepsTrigger

        cluster = create_cluster(boto3.client("emr", region_name=REGION))
        op = steps_op(cluster, deferrable=True)
        with pytest.raises(_task_deferred()) as deferred:
            op.execute(ctx(1))
        stored = ephemeral_store.get("emr_steps")["external_id"]
        trigger = deferred.value.trigger
        assert isinstance(trigger, EmrAddStepsTrigger)
        assert trigger.serialize()[1]["step_ids"] == stored["step_ids"]
        assert deferred.value.method_name == "execute_complete"
        context = ctx(1)
        result = op.execute_complete(context, {"status": "success", "value": stored["step_ids"]})
        assert result == stored["step_ids"]
        assert ephemeral_store.get("emr_steps") is not None, "kept until Airflow records the success"
        from airflow.providers.resumable.plugins.resumable import listener

        listener.on_task_instance_success(previous_state=None, task_instance=context["ti"])
        assert ephemeral_store.get("emr_steps") is None

    def test_failed_trigger_keeps_the_record_for_the_retry(self, aws, ephemeral_store):
        cluster = create_cluster(boto3.client("emr", region_name=REGION))
        op = steps_op(cluster, deferrable=True)
        with pytest.raises(_task_deferred()):
            op.execute(ctx(1))
        with pytest.raises(Exception, match="Error while running steps"):
            op.execute_complete(ctx(1), {"status": "failure", "message": "waiter"})
        assert ephemeral_store.get("emr_steps")["external_id"] is not None

    def test_container_defers_on_the_stored_job(self, aws, memory_store):
        from airflow.providers.amazon.aws.triggers.emr import EmrContainerTrigger

        vc = create_virtual_cluster(boto3.client("emr-containers", region_name=REGION))
        aws.running_reads = 5
        op = container_op(vc, deferrable=True)
        with pytest.raises(_task_deferred()) as deferred:
            op.execute(ctx(1))
        assert isinstance(deferred.value.trigger, EmrContainerTrigger)
        stored = record(memory_store, "emr_containers_job")["external_id"]
        assert deferred.value.trigger.serialize()[1]["job_id"] == stored["job_id"]
        assert op.execute_complete(ctx(1), {"status": "success", "job_id": stored["job_id"]}) == stored["job_id"]

    def test_cluster_defers_with_the_policy_waiter(self, aws, memory_store):
        from airflow.providers.amazon.aws.triggers.emr import EmrCreateJobFlowTrigger

        op = cluster_op(wait_for_completion=True, deferrable=True, waiter_delay=1)
        with pytest.raises(_task_deferred()) as deferred:
            op.execute(ctx(1))
        assert isinstance(deferred.value.trigger, EmrCreateJobFlowTrigger)
        cluster_id = record(memory_store, "emr_cluster")["external_id"]["cluster_id"]
        assert deferred.value.trigger.serialize()[1]["job_flow_id"] == cluster_id
        assert len(aws.clusters()) == 1

    def test_serverless_application_start_deferral_resumes_with_the_same_token(self, aws, memory_store):
        client = boto3.client("emr-serverless", region_name=REGION)
        app = create_application(client)
        client.stop_application(applicationId=app)
        op = serverless_op(app, deferrable=True)
        with pytest.raises(_task_deferred()) as deferred:
            op.execute(ctx(1))  # the official operator starts the application and defers on that
        assert deferred.value.method_name == "execute"
        assert aws.job_runs(app) == []
        token = record(memory_store, "emr_serverless_job_run")["token"]
        with pytest.raises(_task_deferred()):  # the application is up: submit, then defer on the run
            op.execute(ctx(1), event={"status": "success"})
        (run,) = aws.job_runs(app)
        assert run.client_token == token


class TestKill:
    def test_container_kill_leaves_the_job_running(self, aws, memory_store):
        vc = create_virtual_cluster(boto3.client("emr-containers", region_name=REGION))
        op = container_op(vc, wait_for_completion=False)
        job_id = op.execute(ctx())
        op.job_id = job_id  # what the official on_kill would cancel
        while_polling(op, {"virtual_cluster_id": vc, "job_id": job_id}, ctx())
        op.on_kill()
        assert aws.container_jobs()[0].state == "RUNNING"
        op.cancel_on_kill = True
        op.on_kill()
        assert aws.container_jobs()[0].state in ("CANCEL_PENDING", "CANCELLED")

    def test_cluster_kill_leaves_the_cluster_unless_asked(self, aws, memory_store):
        op = cluster_op()
        cluster_id = op.execute(ctx())
        op._job_flow_id = cluster_id  # what the official on_kill would terminate
        while_polling(op, {"cluster_id": cluster_id}, ctx())
        op.on_kill()
        assert aws.clusters()[0].state == "WAITING"
        op.cancel_on_kill = True
        op.on_kill()
        assert aws.clusters()[0].state == "TERMINATED"
