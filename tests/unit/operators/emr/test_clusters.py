"""ResumableEmrCreateJobFlowOperator (``operators/emr/clusters.py``): the cluster found by its token tag."""

from __future__ import annotations

import boto3
import pytest
from airflow.providers.amazon.aws.utils.waiter import WaitPolicy

from airflow.providers.resumable.operators.emr import CLUSTER_TOKEN_TAG
from tests.support.emr import OVERRIDES, cluster_op, ctx, deferred
from tests.support.fake_aws import REGION, create_cluster
from tests.support.job_run import while_polling


class TestCreateJobFlow:
    def test_overrides_from_a_string_stay_parsed_as_upstream(self, aws, memory_store):
        op = cluster_op(job_flow_overrides=repr(OVERRIDES))
        op.execute(ctx())
        assert op.job_flow_overrides == OVERRIDES, "the parsed dict, without the operator's tag"

    def test_tags_the_cluster_with_the_token(self, aws, memory_store):
        cluster_id = cluster_op().execute(ctx())
        stored = memory_store.get("emr_cluster")
        assert stored["external_id"] == {"cluster_id": cluster_id}
        tags = {
            t["Key"]: t["Value"]
            for t in boto3.client("emr", region_name=REGION).describe_cluster(ClusterId=cluster_id)["Cluster"]["Tags"]
        }
        assert tags == {"team": "data", CLUSTER_TOKEN_TAG: stored["token"]}

    def test_the_record_links_the_cluster_page_as_the_official_link_does(self, aws, memory_store):
        cluster_id = cluster_op().execute(ctx())
        assert memory_store.get("emr_cluster")["url"] == (
            f"https://console.aws.amazon.com/emr/home?region={REGION}#/clusterDetails/{cluster_id}"
        )

    def test_crash_before_the_state_write_reuses_the_tagged_cluster(self, aws, memory_store, id_write_lost):
        with id_write_lost(), pytest.raises(ConnectionError):
            cluster_op().execute(ctx(1))
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


class TestDeferrable:
    def test_cluster_defers_with_the_policy_waiter(self, aws, memory_store):
        from airflow.providers.amazon.aws.triggers.emr import EmrCreateJobFlowTrigger

        op = cluster_op(wait_for_completion=True, deferrable=True, waiter_delay=1)
        deferral = deferred(op, ctx(1))
        assert isinstance(deferral.trigger, EmrCreateJobFlowTrigger)
        cluster_id = memory_store.get("emr_cluster")["external_id"]["cluster_id"]
        assert deferral.trigger.serialize()[1]["job_flow_id"] == cluster_id
        assert len(aws.clusters()) == 1


class TestKill:
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
