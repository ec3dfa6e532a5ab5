"""
What the EMR operators share (``operators/emr/_common.py``): AWS's transient errors, and a submission
AWS has no idempotency token for sent at most once per lookup (shown on AddJobFlowSteps).
"""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError
from tenacity import wait_none

from airflow.providers.resumable.operators.emr import ResumableEmrAddStepsOperator, is_transient_aws_error
from tests.support.emr import ctx, steps_op


class TestSubmitUnrepeated:
    def test_add_job_flow_steps_goes_out_with_botocore_retries_off(self, aws, cluster, memory_store, monkeypatch):
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

    def test_a_lost_response_is_looked_up_and_not_sent_again(self, aws, cluster, memory_store, monkeypatch):
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

    def test_a_throttled_submission_that_did_not_go_through_is_sent_again(
        self, aws, cluster, memory_store, monkeypatch
    ):
        monkeypatch.setattr(ResumableEmrAddStepsOperator, "status_retry_wait", wait_none())
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

    def test_an_error_that_created_nothing_is_raised_without_a_lookup(self, aws, cluster, memory_store, monkeypatch):
        op = steps_op(cluster, wait_for_completion=False)
        invalid = ClientError({"Error": {"Code": "ValidationException", "Message": "bad jar"}}, "AddJobFlowSteps")
        monkeypatch.setattr(op.hook, "add_job_flow_steps", lambda **kwargs: (_ for _ in ()).throw(invalid))
        with pytest.raises(ClientError, match="bad jar"):
            op.execute(ctx())
        assert aws.calls.get("ListSteps", 0) == 0
        assert memory_store.get("emr_steps")["external_id"] is None, "the intent stays for the retry"

    def test_giving_up_after_submit_attempts_raises_the_aws_error(self, aws, cluster, memory_store, monkeypatch):
        monkeypatch.setattr(ResumableEmrAddStepsOperator, "status_retry_wait", wait_none())
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


@pytest.mark.parametrize(
    ("partition", "external_id", "url"),
    [
        ("aws", {"cluster_id": "j-1"}, "https://console.aws.amazon.com/emr/home?region=eu-west-1#/clusterDetails/j-1"),
        ("aws-cn", {"cluster_id": "j-1"}, "https://console.amazonaws.cn/emr/home?region=eu-west-1#/clusterDetails/j-1"),
        ("aws-unknown", {"cluster_id": "j-1"}, None),
        ("aws", {"step_ids": ["s-1"]}, None),
        ("aws", "j-1", None),
    ],
)
def test_cluster_console_url_is_the_official_link_built_without_a_call(partition, external_id, url):
    from types import SimpleNamespace

    from airflow.providers.resumable.operators.emr._common import cluster_console_url

    hook = SimpleNamespace(conn_partition=partition, conn_region_name="eu-west-1")
    assert cluster_console_url(hook, external_id) == url
