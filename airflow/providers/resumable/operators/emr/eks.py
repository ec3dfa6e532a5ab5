"""``ResumableEmrContainerOperator``: an EMR on EKS job run started once, its ``clientToken`` our token."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.resumable.compat.version_compat import AirflowException
from airflow.providers.resumable.extras import requires_extra
from airflow.providers.resumable.mixins.decisions import fingerprint_of
from airflow.providers.resumable.operators.emr._common import (
    ResumableEmrJob,
    attributes,
    gone_if_not_found,
    require_dict_id,
    supported_kwargs,
)

with requires_extra("amazon", __name__):
    from airflow.providers.amazon.aws.hooks.emr import EmrContainerHook
    from airflow.providers.amazon.aws.operators.emr import EmrContainerOperator
    from airflow.providers.amazon.aws.triggers.emr import EmrContainerTrigger

if TYPE_CHECKING:
    from airflow.providers.resumable.compat.version_compat import Context
    from airflow.providers.resumable.state.base import JsonValue


class ResumableEmrContainerOperator(ResumableEmrJob, EmrContainerOperator):
    """
    ``EmrContainerOperator`` (EMR on EKS) whose ``clientToken`` is the submission's idempotency token.

    Stored: ``{"virtual_cluster_id": ..., "job_id": ...}``. Returns the job id, as the official operator does.
    """

    external_id_key = "emr_containers_job"

    def __init__(self, *, client_request_token: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if client_request_token:
            self.log.warning(
                "client_request_token=%r is ignored: %s passes its own per-submission token",
                client_request_token,
                type(self).__name__,
            )

    def execute(self, context: Context) -> Any:
        return self.execute_resumable(context)

    def job_fingerprint(self, context: Context) -> str | None:
        return fingerprint_of(
            {
                "name": self.name,
                "virtual_cluster_id": self.virtual_cluster_id,
                "execution_role_arn": self.execution_role_arn,
                "release_label": self.release_label,
                "job_driver": self.job_driver,
                "configuration_overrides": self.configuration_overrides,
                "tags": self.tags,
                "job_retry_max_attempts": self.job_retry_max_attempts,
            }
        )

    def submit_job(self, context: Context) -> JsonValue:
        with attributes(self, client_request_token=self.idempotency_token, wait_for_completion=False, deferrable=False):
            job_id = super().execute(context)
        return {"virtual_cluster_id": self.virtual_cluster_id, "job_id": job_id}

    def get_job_status(self, external_id: JsonValue, context: Context) -> str:
        job = require_dict_id(external_id, ("virtual_cluster_id", "job_id"), "EMR on EKS job")
        # Not hook.check_query_status: it turns every other ClientError into None, which would read as
        # "job gone" and start a duplicate; here a throttle is retried and a 404 is a 404.
        with gone_if_not_found("ResourceNotFoundException"):
            response = self.hook.conn.describe_job_run(virtualClusterId=job["virtual_cluster_id"], id=job["job_id"])
        return response["jobRun"]["state"]

    def is_job_active(self, status: str) -> bool:
        return status in EmrContainerHook.INTERMEDIATE_STATES

    def is_job_succeeded(self, status: str) -> bool:
        return status in EmrContainerHook.SUCCESS_STATES

    def poll_until_complete(self, external_id: JsonValue, context: Context) -> None:
        job = require_dict_id(external_id, ("virtual_cluster_id", "job_id"), "EMR on EKS job")
        self.job_id = job["job_id"]
        if self.deferrable:
            trigger_kwargs: dict[str, Any] = {
                "virtual_cluster_id": job["virtual_cluster_id"],
                "job_id": job["job_id"],
                "aws_conn_id": self.aws_conn_id,
                "region_name": self.region_name,
                "verify": self.verify,
                "botocore_config": self.botocore_config,
                "waiter_delay": self.poll_interval,
                "cancel_on_kill": self.cancel_on_kill,
            }
            if self.max_polling_attempts:
                trigger_kwargs["waiter_max_attempts"] = self.max_polling_attempts
            timeout = (
                timedelta(seconds=self.max_polling_attempts * self.poll_interval)
                if self.max_polling_attempts
                else self.execution_timeout
            )
            self.defer(
                timeout=timeout,
                trigger=EmrContainerTrigger(**supported_kwargs(EmrContainerTrigger, **trigger_kwargs)),
                method_name="execute_complete",
            )
        if not self.wait_for_completion:
            return
        state = self.hook.poll_query_status(
            job["job_id"], max_polling_attempts=self.max_polling_attempts, poll_interval=self.poll_interval
        )
        self.check_failure(state)
        if not state or state in EmrContainerHook.INTERMEDIATE_STATES:
            raise AirflowException(
                f"Final state of EMR Containers job is {state}. Max tries of poll status exceeded, "
                f"query_execution_id is {job['job_id']}."
            )

    def get_job_result(self, external_id: JsonValue, context: Context) -> Any:
        return require_dict_id(external_id, ("virtual_cluster_id", "job_id"), "EMR on EKS job")["job_id"]

    def cancel_job(self, external_id: JsonValue, context: Context) -> None:
        job = require_dict_id(external_id, ("virtual_cluster_id", "job_id"), "EMR on EKS job")
        self.hook.conn.cancel_job_run(virtualClusterId=job["virtual_cluster_id"], id=job["job_id"])
