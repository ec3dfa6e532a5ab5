"""ResumableEmrServerlessStartJobOperator (``operators/emr/serverless.py``): the run found by its clientToken."""

from __future__ import annotations

import boto3
import pytest

from tests.support.emr import ctx, deferred, serverless_op
from tests.support.fake_aws import REGION
from tests.support.job_run import while_polling


class TestServerless:
    def test_the_generated_name_stays_set_as_upstream(self, aws, app, memory_store):
        config = {"name": "from-config", "tags": {"team": "data"}}
        op = serverless_op(app, config=config)
        op.execute(ctx())
        assert op.name == "from-config"
        assert op.config == {"tags": {"team": "data"}}, "taken out of config, as the official execute() does"
        assert config == {"name": "from-config", "tags": {"team": "data"}}, "the caller's dict is not changed"
        op = serverless_op(app)
        op.execute(ctx())
        assert op.name == f"emr_serverless_job_airflow_{memory_store.get('emr_serverless_job_run')['token']}"

    def test_a_retry_on_the_same_object_is_not_a_changed_spec(self, aws, app, memory_store):
        aws.running_reads = 1
        op = serverless_op(app, waiter_max_attempts=1)
        with pytest.raises(Exception, match="max attempts"):
            op.execute(ctx(1))
        assert op.name is not None
        assert op.execute(ctx(2)) == aws.job_runs(app)[0].id
        assert aws.calls["StartJobRun"] == 1

    def test_client_token_is_the_idempotency_token(self, aws, app, memory_store):
        run_id = serverless_op(app).execute(ctx())
        stored = memory_store.get("emr_serverless_job_run")
        assert stored["external_id"] == {"application_id": app, "job_run_id": run_id}
        (run,) = aws.job_runs(app)
        assert run.client_token == stored["token"]
        assert run.name == f"emr_serverless_job_airflow_{stored['token']}"

    def test_lost_response_resubmits_the_same_token_and_gets_the_same_run(self, aws, app, memory_store, id_write_lost):
        with id_write_lost(), pytest.raises(ConnectionError):
            serverless_op(app).execute(ctx(1))
        run_id = serverless_op(app).execute(ctx(2))
        assert aws.calls["StartJobRun"] == 2
        assert [r.id for r in aws.job_runs(app)] == [run_id]

    def test_failure_mid_poll_reattaches(self, aws, app, memory_store):
        aws.running_reads = 1
        with pytest.raises(Exception, match="max attempts|Max attempts"):
            serverless_op(app, waiter_max_attempts=1).execute(ctx(1))
        run_id = serverless_op(app).execute(ctx(2))
        assert [r.id for r in aws.job_runs(app)] == [run_id]
        assert aws.calls["StartJobRun"] == 1

    def test_failed_run_is_resubmitted(self, aws, app, memory_store):
        aws.run_outcomes = ["FAILED"]
        with pytest.raises(Exception, match="Serverless Job failed"):
            serverless_op(app).execute(ctx(1))
        serverless_op(app).execute(ctx(2))
        runs = aws.job_runs(app)
        assert [r.state for r in runs] == ["FAILED", "SUCCESS"]
        assert runs[0].client_token != runs[1].client_token

    def test_without_waiting_returns_the_id_at_once(self, aws, app, memory_store):
        run_id = serverless_op(app, wait_for_completion=False).execute(ctx())
        assert aws.job_runs(app)[0].state == "RUNNING"
        assert aws.job_runs(app)[0].id == run_id

    def test_deferrable_stores_the_id_before_deferring_and_forgets_on_success(self, aws, app, memory_store):
        from airflow.providers.amazon.aws.triggers.emr import EmrServerlessStartJobTrigger

        aws.running_reads = 1  # still RUNNING when the retry looks
        op = serverless_op(app, deferrable=True)
        deferral = deferred(op, ctx(1))
        assert isinstance(deferral.trigger, EmrServerlessStartJobTrigger)
        stored = memory_store.get("emr_serverless_job_run")["external_id"]
        assert deferral.trigger.serialize()[1]["job_id"] == stored["job_run_id"]
        # A retry of a deferred try defers again on the same run.
        deferred(serverless_op(app, deferrable=True), ctx(2))
        assert len(aws.job_runs(app)) == 1
        event = {"status": "success", "job_details": {"application_id": app, "job_id": stored["job_run_id"]}}
        assert op.execute_complete(ctx(2), event) == stored["job_run_id"]

    def test_explicit_client_token_is_replaced(self, aws, app, memory_store):
        serverless_op(app, client_request_token="fixed").execute(ctx())
        assert aws.job_runs(app)[0].client_token.startswith("rsm-")

    def test_kill_does_not_cancel_by_default(self, aws, app, memory_store):
        op = serverless_op(app)
        op.job_id = "run-1"  # what the official on_kill would cancel
        while_polling(op, {"application_id": app, "job_run_id": "run-1"}, ctx())
        op.on_kill()
        assert "CancelJobRun" not in aws.calls


class TestDeferrable:
    def test_serverless_application_start_deferral_resumes_with_the_same_token(self, aws, app, memory_store):
        boto3.client("emr-serverless", region_name=REGION).stop_application(applicationId=app)
        op = serverless_op(app, deferrable=True)
        deferral = deferred(op, ctx(1))  # the official operator starts the application and defers on that
        assert deferral.method_name == "execute"
        assert aws.job_runs(app) == []
        token = memory_store.get("emr_serverless_job_run")["token"]
        deferred(op, ctx(1), event={"status": "success"})  # the application is up: submit, then defer on the run
        (run,) = aws.job_runs(app)
        assert run.client_token == token
