"""ResumableEmrContainerOperator (``operators/emr/eks.py``): EMR on EKS, the job found by its client token."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tests.support.emr import container_op, ctx, deferred
from tests.support.job_run import while_polling


class TestContainer:
    def test_reattach_after_failure_mid_poll(self, aws, vc, memory_store):
        aws.running_reads = 5
        with pytest.raises(Exception, match="Max tries"):
            container_op(vc, max_polling_attempts=2).execute(ctx(1))
        stored = memory_store.get("emr_containers_job")
        assert stored["external_id"]["virtual_cluster_id"] == vc
        job_id = container_op(vc).execute(ctx(2))
        assert job_id == stored["external_id"]["job_id"]
        assert len(aws.container_jobs()) == 1
        assert aws.container_jobs()[0].client_token == stored["token"]

    def test_lost_response_gets_the_same_job(self, aws, vc, memory_store, id_write_lost):
        with id_write_lost(), pytest.raises(ConnectionError):
            container_op(vc).execute(ctx(1))
        container_op(vc).execute(ctx(2))
        assert len(aws.container_jobs()) == 1

    def test_failed_job_is_resubmitted(self, aws, vc, memory_store):
        aws.container_outcomes = ["FAILED"]
        with pytest.raises(Exception, match="EMR Containers job failed"):
            container_op(vc).execute(ctx(1))
        container_op(vc).execute(ctx(2))
        assert sorted(j.state for j in aws.container_jobs()) == ["COMPLETED", "FAILED"]

    def test_throttled_status_is_retried_not_read_as_gone(self, aws, vc, memory_store, monkeypatch):
        op = container_op(vc)
        job = {"virtual_cluster_id": vc, "job_id": "j"}
        throttled = ClientError({"Error": {"Code": "ThrottlingException"}}, "DescribeJobRun")
        monkeypatch.setattr(op.hook.conn, "describe_job_run", lambda **kw: (_ for _ in ()).throw(throttled))
        with pytest.raises(ClientError):
            op.get_job_status(job, ctx())
        assert op.is_transient_error(throttled)


class TestDeferrable:
    def test_container_defers_on_the_stored_job(self, aws, vc, memory_store):
        from airflow.providers.amazon.aws.triggers.emr import EmrContainerTrigger

        aws.running_reads = 5
        op = container_op(vc, deferrable=True)
        deferral = deferred(op, ctx(1))
        assert isinstance(deferral.trigger, EmrContainerTrigger)
        stored = memory_store.get("emr_containers_job")["external_id"]
        assert deferral.trigger.serialize()[1]["job_id"] == stored["job_id"]
        assert op.execute_complete(ctx(1), {"status": "success", "job_id": stored["job_id"]}) == stored["job_id"]


class TestKill:
    def test_container_kill_leaves_the_job_running(self, aws, vc, memory_store):
        op = container_op(vc, wait_for_completion=False)
        job_id = op.execute(ctx())
        op.job_id = job_id  # what the official on_kill would cancel
        while_polling(op, {"virtual_cluster_id": vc, "job_id": job_id}, ctx())
        op.on_kill()
        assert aws.container_jobs()[0].state == "RUNNING"
        op.cancel_on_kill = True
        op.on_kill()
        assert aws.container_jobs()[0].state in ("CANCEL_PENDING", "CANCELLED")
