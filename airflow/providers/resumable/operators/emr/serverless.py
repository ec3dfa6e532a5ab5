"""``ResumableEmrServerlessStartJobOperator``: an EMR Serverless job run started once, its ``clientToken`` our token."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.resumable.extras import requires_extra
from airflow.providers.resumable.mixins.decisions import fingerprint_of
from airflow.providers.resumable.operators.emr._common import (
    ResumableEmrJob,
    attributes,
    gone_if_not_found,
    require_dict_id,
    spec_as_given,
    supported_kwargs,
)

with requires_extra("amazon", __name__):
    from airflow.providers.amazon.aws.hooks.emr import EmrServerlessHook
    from airflow.providers.amazon.aws.operators.emr import EmrServerlessStartJobOperator
    from airflow.providers.amazon.aws.triggers.emr import EmrServerlessStartJobTrigger
    from airflow.providers.amazon.aws.utils.waiter_with_logging import wait

if TYPE_CHECKING:
    from airflow.providers.resumable.compat.version_compat import Context
    from airflow.providers.resumable.state.base import JsonValue


class ResumableEmrServerlessStartJobOperator(ResumableEmrJob, EmrServerlessStartJobOperator):
    """
    ``EmrServerlessStartJobOperator`` whose ``clientToken`` is the submission's idempotency token.

    StartJobRun is idempotent on ``clientToken``, so a retry after a lost response gets the same job run
    back; a retry after the run id was stored reattaches to it. Stored:
    ``{"application_id": ..., "job_run_id": ...}``. Returns the job run id, as the official operator does.
    """

    external_id_key = "emr_serverless_job_run"

    def __init__(self, *, client_request_token: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if client_request_token:
            # One fixed token for every run of the DAG would make AWS hand later runs the first run's job.
            self.log.warning(
                "client_request_token=%r is ignored: %s passes its own per-submission token",
                client_request_token,
                type(self).__name__,
            )

    def execute(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        # ``event`` is set when the official application-start deferral resumes here: the intent is
        # stored, so execute_resumable submits again with the same token.
        return self.execute_resumable(context)

    def _job_spec(self) -> dict[str, Any]:
        return {
            "application_id": self.application_id,
            "execution_role_arn": self.execution_role_arn,
            "job_driver": self.job_driver,
            "configuration_overrides": self.configuration_overrides,
            "config": self.config,
            "name": self.name,
        }

    def job_fingerprint(self, context: Context) -> str | None:
        return fingerprint_of(spec_as_given(self, self._job_spec))

    def submit_job(self, context: Context) -> JsonValue:
        token = self.idempotency_token
        assert token is not None
        # The official default name has a fresh uuid per try; a repeated StartJobRun must be identical.
        name = self.name or self.config.get("name") or f"emr_serverless_job_airflow_{token}"
        # As the official execute() does: the name is taken out of ``config`` when ``name`` is unset
        # (on a copy here, so a dict shared between tasks is not changed), and both stay set after.
        config = dict(self.config) if self.name else {k: v for k, v in self.config.items() if k != "name"}
        self.name, self.config = name, config
        with attributes(self, client_request_token=token, wait_for_completion=False):
            job_run_id = super().execute(context)
        return {"application_id": self.application_id, "job_run_id": job_run_id}

    def get_job_status(self, external_id: JsonValue, context: Context) -> str:
        job = require_dict_id(external_id, ("application_id", "job_run_id"), "EMR Serverless job run")
        with gone_if_not_found("ResourceNotFoundException"):
            response = self.hook.conn.get_job_run(applicationId=job["application_id"], jobRunId=job["job_run_id"])
        return response["jobRun"]["state"]

    def is_job_active(self, status: str) -> bool:
        # QUEUED exists in the API but not in older hooks' state sets.
        return status in EmrServerlessHook.JOB_INTERMEDIATE_STATES or status == "QUEUED"

    def is_job_succeeded(self, status: str) -> bool:
        return status in EmrServerlessHook.JOB_SUCCESS_STATES

    def poll_until_complete(self, external_id: JsonValue, context: Context) -> None:
        job = require_dict_id(external_id, ("application_id", "job_run_id"), "EMR Serverless job run")
        self.job_id = job["job_run_id"]
        if not self.wait_for_completion:
            return
        if self.deferrable:
            self.defer(
                trigger=EmrServerlessStartJobTrigger(
                    **supported_kwargs(
                        EmrServerlessStartJobTrigger,
                        application_id=job["application_id"],
                        job_id=job["job_run_id"],
                        waiter_delay=self.waiter_delay,
                        waiter_max_attempts=self.waiter_max_attempts,
                        aws_conn_id=self.aws_conn_id,
                        region_name=self.region_name,
                        verify=self.verify,
                        botocore_config=self.botocore_config,
                        cancel_on_kill=self.cancel_on_kill,
                    )
                ),
                method_name="execute_complete",
                timeout=timedelta(seconds=self.waiter_max_attempts * self.waiter_delay),
            )
        wait(
            waiter=self.hook.get_waiter("serverless_job_completed"),
            waiter_delay=self.waiter_delay,
            waiter_max_attempts=self.waiter_max_attempts,
            args={"applicationId": job["application_id"], "jobRunId": job["job_run_id"]},
            failure_message="Serverless Job failed",
            status_message="Serverless Job status is",
            status_args=["jobRun.state", "jobRun.stateDetails"],
        )

    def get_job_result(self, external_id: JsonValue, context: Context) -> Any:
        return require_dict_id(external_id, ("application_id", "job_run_id"), "EMR Serverless job run")["job_run_id"]

    def cancel_job(self, external_id: JsonValue, context: Context) -> None:
        job = require_dict_id(external_id, ("application_id", "job_run_id"), "EMR Serverless job run")
        self.hook.conn.cancel_job_run(applicationId=job["application_id"], jobRunId=job["job_run_id"])
