"""
Resumable drop-ins for the Amazon provider's EMR operators: steps, EMR Serverless, EMR on EKS, clusters.

Each class subclasses the official operator (same arguments, same hook, same return value) and adds
``ResumableJobMixin``'s write-ahead record, so a retry reattaches to the steps / job run / cluster an
earlier try started instead of starting a second one. The submission itself is the official
``execute()`` run with waiting switched off; waiting is done here, where a retry can resume it.
"""

from __future__ import annotations

import ast
import contextlib
import inspect
import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.hooks.emr import EmrContainerHook, EmrServerlessHook
from airflow.providers.amazon.aws.operators.emr import (
    EmrAddStepsOperator,
    EmrContainerOperator,
    EmrCreateJobFlowOperator,
    EmrServerlessStartJobOperator,
)
from airflow.providers.amazon.aws.triggers.emr import (
    EmrAddStepsTrigger,
    EmrContainerTrigger,
    EmrCreateJobFlowTrigger,
    EmrServerlessStartJobTrigger,
)
from airflow.providers.amazon.aws.utils.waiter import WAITER_POLICY_NAME_MAPPING, WaitPolicy
from airflow.providers.amazon.aws.utils.waiter_with_logging import wait

from airflow.providers.resumable.mixins.decisions import fingerprint_of
from airflow.providers.resumable.mixins.resumable_job import (
    JobNotFoundError,
    ResumableJobConflictError,
    ResumableJobMixin,
    is_transient_error,
)
from airflow.providers.resumable.state.records import JobRecord
from airflow.providers.resumable.state.selection import get_state_store
from airflow.providers.resumable.version_compat import AirflowException

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow.providers.resumable.state.base import JsonValue
    from airflow.providers.resumable.version_compat import Context

__all__ = [
    "CLUSTER_TOKEN_TAG",
    "ResumableEmrAddStepsOperator",
    "ResumableEmrContainerOperator",
    "ResumableEmrCreateJobFlowOperator",
    "ResumableEmrServerlessStartJobOperator",
    "step_marker",
]

#: Tag key that carries the idempotency token on clusters created by ResumableEmrCreateJobFlowOperator.
CLUSTER_TOKEN_TAG = "airflow-resumable-token"
#: EMR's limit on a step name.
STEP_NAME_MAX = 256
#: How far before the stored intent a lookup still searches, for clock skew between worker and AWS.
LOOKUP_SLACK = timedelta(minutes=15)

_MARKER_RE = re.compile(r" \[(?P<token>rsm-[0-9a-f]{48}):(?P<index>\d+)/(?P<count>\d+)\]$")
_THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalFailure",
        "InternalServerError",
        "InternalServerException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
_CLUSTER_ALIVE = frozenset({"STARTING", "BOOTSTRAPPING", "RUNNING", "WAITING"})
_STEP_ACTIVE = frozenset({"PENDING", "RUNNING", "CANCEL_PENDING"})


def step_marker(token: str, index: int, count: int) -> str:
    """The suffix that makes step ``index`` of ``count`` findable by the submission's token."""
    return f" [{token}:{index}/{count}]"


# Longest marker a submission of up to 256 steps can get: the budget a step name must leave free.
_MARKER_BUDGET = len(step_marker("rsm-" + "0" * 48, 255, 256))


def _client_error_code(exc: BaseException) -> tuple[str | None, int | None]:
    from botocore.exceptions import ClientError

    if not isinstance(exc, ClientError):
        return None, None
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return error.get("Code"), status


def is_transient_aws_error(exc: BaseException) -> bool:
    """Throttling, 5xx and connection trouble from botocore: worth another status call, never a resubmit."""
    from botocore.exceptions import (
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        ReadTimeoutError,
    )

    if isinstance(exc, EndpointConnectionError | ConnectionClosedError | ConnectTimeoutError | ReadTimeoutError):
        return True
    code, status = _client_error_code(exc)
    if code in _THROTTLING_CODES or (status is not None and status >= 500):
        return True
    return is_transient_error(exc)


def _is_not_found(exc: BaseException, *codes: str) -> bool:
    code, status = _client_error_code(exc)
    return code in codes or (code is not None and status == 404)


def _supported_kwargs(cls: type, **kwargs: Any) -> dict[str, Any]:
    """The keyword arguments ``cls`` accepts: triggers gained region/verify/botocore_config after 9.23."""
    params = inspect.signature(cls).parameters
    return {name: value for name, value in kwargs.items() if name in params}


@contextlib.contextmanager
def _attributes(obj: Any, **values: Any) -> Iterator[None]:
    """Set attributes for the duration of a call to the official ``execute()`` and restore them after."""
    saved = {name: getattr(obj, name) for name in values}
    for name, value in values.items():
        setattr(obj, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(obj, name, value)


def _literal(value: Any) -> Any:
    """Steps / overrides may arrive as the string of a Python literal (XCom, a .json file): parse it."""
    return ast.literal_eval(value) if isinstance(value, str) else value


def _intent_time(operator: ResumableJobMixin, context: Context) -> datetime | None:
    """When the pending submission was announced: a lookup by token need not look further back."""
    record = JobRecord.parse(operator.external_id_key, get_state_store(context).get(operator.external_id_key))
    if record is None or record.intent_at is None:
        return None
    return datetime.fromisoformat(record.intent_at) - LOOKUP_SLACK


def _require_dict_id(external_id: JsonValue, keys: tuple[str, ...], what: str) -> dict[str, Any]:
    if not isinstance(external_id, dict) or any(not external_id.get(k) for k in keys):
        raise ResumableJobConflictError(
            f"The stored {what} id {external_id!r} lacks {', '.join(keys)}; refusing to guess which job it "
            "means. Check AWS, then delete the task's state key to start over."
        )
    return external_id


class _OfficialOnKillSkipped:
    """
    Ends the ``on_kill`` chain before the official operator's, which cancels or terminates unconditionally.

    It sits between ``ResumableJobMixin`` and the official operator in the bases, so the mixin's
    ``on_kill`` (which cancels only with ``cancel_on_kill=True``, via ``cancel_job``) is the only one.
    """

    def on_kill(self) -> None:
        return None


# ---------------------------------------------------------------------------------------------- steps


class ResumableEmrAddStepsOperator(ResumableJobMixin, _OfficialOnKillSkipped, EmrAddStepsOperator):
    """
    ``EmrAddStepsOperator`` that adds its steps once per task instance, however often the task retries.

    AddJobFlowSteps has no idempotency token, so each step's ``Name`` gets a marker, ``" [<token>:i/n]"``,
    and a try that may have added steps without recording their ids looks them up with ListSteps
    before adding anything. Stored: ``{"cluster_id": ..., "step_ids": [...]}``. Returns the step ids,
    as the official operator does, on every path.
    """

    external_id_key = "emr_steps"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        steps = self.steps
        if isinstance(steps, list):
            for index, step in enumerate(steps):
                self._check_step(index, step)

    @staticmethod
    def _check_step(index: int, step: Any) -> None:
        if not isinstance(step, dict) or not isinstance(step.get("Name"), str):
            raise ValueError(f"steps[{index}] must be a dict with a string 'Name', got {step!r}")
        name = step["Name"]
        if len(name) + _MARKER_BUDGET > STEP_NAME_MAX:
            raise ValueError(
                f"steps[{index}]['Name'] is {len(name)} characters; at most {STEP_NAME_MAX - _MARKER_BUDGET} "
                f"leave room for the resumable marker within EMR's {STEP_NAME_MAX}, got {name!r}"
            )

    def execute(self, context: Context) -> Any:
        return self.execute_resumable(context)

    def _rendered_steps(self) -> list[dict[str, Any]]:
        steps = _literal(self.steps)
        if not isinstance(steps, list):
            raise ValueError(f"steps must render to a list of step dicts, got {steps!r}")
        for index, step in enumerate(steps):
            self._check_step(index, step)
        return steps

    def _cluster_id(self) -> str:
        cluster_id = self.job_flow_id or self.hook.get_cluster_id_by_name(str(self.job_flow_name), self.cluster_states)
        if not cluster_id:
            raise AirflowException(f"No cluster found for name: {self.job_flow_name}")
        return cluster_id

    def job_fingerprint(self, context: Context) -> str | None:
        return fingerprint_of(
            {
                "job_flow_id": self.job_flow_id,
                "job_flow_name": self.job_flow_name,
                "steps": self._rendered_steps(),
                "execution_role_arn": self.execution_role_arn,
            }
        )

    def submit_job(self, context: Context) -> JsonValue:
        assert self.idempotency_token is not None
        steps = self._rendered_steps()
        marked = [
            {**step, "Name": step["Name"] + step_marker(self.idempotency_token, index, len(steps))}
            for index, step in enumerate(steps)
        ]
        cluster_id = self._cluster_id()
        # The official execute() adds the steps (links, OpenLineage, XCom job_flow_id included); the
        # waiting it would do happens in poll_until_complete, where a retry can take it over.
        with _attributes(self, job_flow_id=cluster_id, steps=marked, wait_for_completion=False, deferrable=False):
            step_ids = super().execute(context)
        # One ListSteps page, usually: catches a set botocore added twice while retrying the call.
        since = datetime.now(tz=UTC) - LOOKUP_SLACK
        step_ids = self._settle(cluster_id, self.idempotency_token, since, returned=list(step_ids))
        return {"cluster_id": cluster_id, "step_ids": step_ids}

    def find_job(self, idempotency_token: str, context: Context) -> JsonValue:
        cluster_id = self._cluster_id()
        step_ids = self._settle(cluster_id, idempotency_token, _intent_time(self, context), returned=None)
        return {"cluster_id": cluster_id, "step_ids": step_ids} if step_ids else None

    def _marked_steps(
        self, cluster_id: str, token: str, since: datetime | None
    ) -> tuple[dict[int, list[str]], set[int]]:
        """Ids of the steps carrying ``token``'s marker, per index, oldest first; and the set sizes seen."""
        found: dict[int, list[str]] = {}
        counts: set[int] = set()
        for page in self.hook.conn.get_paginator("list_steps").paginate(ClusterId=cluster_id):
            steps = page.get("Steps", [])
            for step in steps:
                match = _MARKER_RE.search(step.get("Name", ""))
                if match and match["token"] == token:
                    # ListSteps lists newest first.
                    found.setdefault(int(match["index"]), []).insert(0, step["Id"])
                    counts.add(int(match["count"]))
            # Once a page ends before the intent, older pages cannot hold this submission.
            created = steps[-1].get("Status", {}).get("Timeline", {}).get("CreationDateTime") if steps else None
            if since is not None and isinstance(created, datetime) and created.tzinfo and created < since:
                break
        return found, counts

    def _settle(self, cluster_id: str, token: str, since: datetime | None, returned: list[str] | None) -> list[str]:
        """
        The one set of steps submitted with ``token``, in submission order; [] when there is none.

        More than one set means AddJobFlowSteps was sent twice for one submission (botocore retries a
        throttled or 5xx call whose first attempt EMR had already accepted): the oldest set is kept and
        the others are cancelled. If that fails, or a set is incomplete, only a person can sort it out.
        """
        found, counts = self._marked_steps(cluster_id, token, since)
        if returned is not None and all(i in returned for ids in found.values() for i in ids):
            # Only the steps this call added (or a listing that has not caught up with them yet).
            return returned
        if not found:
            return []
        count = next(iter(counts)) if len(counts) == 1 else -1
        sets = {len(ids) for ids in found.values()}
        if sorted(found) != list(range(count)) or len(sets) != 1:
            raise ResumableJobConflictError(
                f"Cluster {cluster_id} holds an incomplete set of steps for token {token}: {found!r} (index -> "
                "step ids). Refusing to add or reattach. Cancel the steps that should not run, then delete the "
                "task's state key and clear the task."
            )
        keep = [found[i][0] for i in range(count)]
        extra = [step_id for i in range(count) for step_id in found[i][1:]]
        if extra:
            self.log.warning("Steps %s repeat steps %s (token %s); cancelling the repeats", extra, keep, token)
            try:
                self.hook.conn.cancel_steps(
                    ClusterId=cluster_id, StepIds=extra, StepCancellationOption="SEND_INTERRUPT"
                )
            except Exception as exc:
                raise ResumableJobConflictError(
                    f"Cluster {cluster_id} holds the steps of token {token} twice ({keep} and {extra}) and "
                    f"cancelling {extra} failed: {exc!r}. Cancel them by hand, then clear the task."
                ) from exc
        return keep

    def get_job_status(self, external_id: JsonValue, context: Context) -> str:
        job = _require_dict_id(external_id, ("cluster_id", "step_ids"), "EMR steps")
        states: dict[str, str] = {}
        step_ids = list(job["step_ids"])
        try:
            # ListSteps filters by at most 10 ids per call.
            for start in range(0, len(step_ids), 10):
                chunk = step_ids[start : start + 10]
                for page in self.hook.conn.get_paginator("list_steps").paginate(
                    ClusterId=job["cluster_id"], StepIds=chunk
                ):
                    states.update({s["Id"]: s["Status"]["State"] for s in page.get("Steps", [])})
        except Exception as exc:
            if _is_not_found(exc, "ResourceNotFoundException", "InvalidRequestException"):
                raise JobNotFoundError(f"cluster {job['cluster_id']}: {exc}") from exc
            raise
        missing = [s for s in step_ids if s not in states]
        if missing:
            raise JobNotFoundError(f"steps {missing} are not on cluster {job['cluster_id']}")
        values = set(states.values())
        if values & _STEP_ACTIVE:
            # Some steps still run: even if one failed, adding the set again would run those twice.
            return "RUNNING" if "RUNNING" in values else sorted(values & _STEP_ACTIVE)[0]
        if values == {"COMPLETED"}:
            return "COMPLETED"
        return ",".join(f"{s}={states[s]}" for s in step_ids)

    def is_job_active(self, status: str) -> bool:
        return status in _STEP_ACTIVE

    def is_job_succeeded(self, status: str) -> bool:
        return status == "COMPLETED"

    def _push_job_flow_id(self, context: Context, cluster_id: str) -> None:
        # The official operator pushes it when it adds the steps; a reattaching try must as well.
        if self.do_xcom_push:
            context["ti"].xcom_push(key="job_flow_id", value=cluster_id)

    def poll_until_complete(self, external_id: JsonValue, context: Context) -> None:
        job = _require_dict_id(external_id, ("cluster_id", "step_ids"), "EMR steps")
        self._push_job_flow_id(context, job["cluster_id"])
        if self.deferrable:
            self.defer(
                trigger=EmrAddStepsTrigger(
                    **_supported_kwargs(
                        EmrAddStepsTrigger,
                        job_flow_id=job["cluster_id"],
                        step_ids=job["step_ids"],
                        aws_conn_id=self.aws_conn_id,
                        region_name=self.region_name,
                        verify=self.verify,
                        botocore_config=self.botocore_config,
                        waiter_max_attempts=self.waiter_max_attempts,
                        waiter_delay=self.waiter_delay,
                    )
                ),
                method_name="execute_complete",
            )
        if not self.wait_for_completion:
            return
        for step_id in job["step_ids"]:
            wait(
                waiter=self.hook.get_waiter("step_wait_for_terminal"),
                waiter_delay=self.waiter_delay,
                waiter_max_attempts=self.waiter_max_attempts,
                args={"ClusterId": job["cluster_id"], "StepId": step_id},
                failure_message=f"EMR Steps failed: {step_id}",
                status_message="EMR Step status is",
                status_args=["Step.Status.State", "Step.Status.StateChangeReason"],
            )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        result = super().execute_complete(context, event)
        self.forget_job(context)
        return result

    def get_job_result(self, external_id: JsonValue, context: Context) -> Any:
        job = _require_dict_id(external_id, ("cluster_id", "step_ids"), "EMR steps")
        self._push_job_flow_id(context, job["cluster_id"])
        return list(job["step_ids"])

    def cancel_job(self, external_id: JsonValue, context: Context) -> None:
        job = _require_dict_id(external_id, ("cluster_id", "step_ids"), "EMR steps")
        self.hook.conn.cancel_steps(
            ClusterId=job["cluster_id"], StepIds=job["step_ids"], StepCancellationOption="SEND_INTERRUPT"
        )

    def is_transient_error(self, exc: BaseException) -> bool:
        return is_transient_aws_error(exc)


# ---------------------------------------------------------------------------------------- serverless


class ResumableEmrServerlessStartJobOperator(ResumableJobMixin, _OfficialOnKillSkipped, EmrServerlessStartJobOperator):
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
        return fingerprint_of(self._job_spec())

    def submit_job(self, context: Context) -> JsonValue:
        token = self.idempotency_token
        assert token is not None
        # The official default name has a fresh uuid per try; a repeated StartJobRun must be identical.
        name = self.name or self.config.get("name") or f"emr_serverless_job_airflow_{token}"
        with _attributes(
            self, client_request_token=token, name=name, wait_for_completion=False, config=dict(self.config)
        ):
            job_run_id = super().execute(context)
        return {"application_id": self.application_id, "job_run_id": job_run_id}

    def get_job_status(self, external_id: JsonValue, context: Context) -> str:
        job = _require_dict_id(external_id, ("application_id", "job_run_id"), "EMR Serverless job run")
        try:
            response = self.hook.conn.get_job_run(applicationId=job["application_id"], jobRunId=job["job_run_id"])
        except Exception as exc:
            if _is_not_found(exc, "ResourceNotFoundException"):
                raise JobNotFoundError(str(exc)) from exc
            raise
        return response["jobRun"]["state"]

    def is_job_active(self, status: str) -> bool:
        # QUEUED exists in the API but not in older hooks' state sets.
        return status in EmrServerlessHook.JOB_INTERMEDIATE_STATES or status == "QUEUED"

    def is_job_succeeded(self, status: str) -> bool:
        return status in EmrServerlessHook.JOB_SUCCESS_STATES

    def poll_until_complete(self, external_id: JsonValue, context: Context) -> None:
        job = _require_dict_id(external_id, ("application_id", "job_run_id"), "EMR Serverless job run")
        self.job_id = job["job_run_id"]
        if not self.wait_for_completion:
            return
        if self.deferrable:
            self.defer(
                trigger=EmrServerlessStartJobTrigger(
                    **_supported_kwargs(
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

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        result = super().execute_complete(context, event)
        self.forget_job(context)
        return result

    def get_job_result(self, external_id: JsonValue, context: Context) -> Any:
        return _require_dict_id(external_id, ("application_id", "job_run_id"), "EMR Serverless job run")["job_run_id"]

    def cancel_job(self, external_id: JsonValue, context: Context) -> None:
        job = _require_dict_id(external_id, ("application_id", "job_run_id"), "EMR Serverless job run")
        self.hook.conn.cancel_job_run(applicationId=job["application_id"], jobRunId=job["job_run_id"])

    def is_transient_error(self, exc: BaseException) -> bool:
        return is_transient_aws_error(exc)


# ------------------------------------------------------------------------------------------ on EKS


class ResumableEmrContainerOperator(ResumableJobMixin, _OfficialOnKillSkipped, EmrContainerOperator):
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
        with _attributes(
            self, client_request_token=self.idempotency_token, wait_for_completion=False, deferrable=False
        ):
            job_id = super().execute(context)
        return {"virtual_cluster_id": self.virtual_cluster_id, "job_id": job_id}

    def get_job_status(self, external_id: JsonValue, context: Context) -> str:
        job = _require_dict_id(external_id, ("virtual_cluster_id", "job_id"), "EMR on EKS job")
        # Not hook.check_query_status: it turns every other ClientError into None, which would read as
        # "job gone" and start a duplicate; here a throttle is retried and a 404 is a 404.
        try:
            response = self.hook.conn.describe_job_run(virtualClusterId=job["virtual_cluster_id"], id=job["job_id"])
        except Exception as exc:
            if _is_not_found(exc, "ResourceNotFoundException"):
                raise JobNotFoundError(str(exc)) from exc
            raise
        return response["jobRun"]["state"]

    def is_job_active(self, status: str) -> bool:
        return status in EmrContainerHook.INTERMEDIATE_STATES

    def is_job_succeeded(self, status: str) -> bool:
        return status in EmrContainerHook.SUCCESS_STATES

    def poll_until_complete(self, external_id: JsonValue, context: Context) -> None:
        job = _require_dict_id(external_id, ("virtual_cluster_id", "job_id"), "EMR on EKS job")
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
                trigger=EmrContainerTrigger(**_supported_kwargs(EmrContainerTrigger, **trigger_kwargs)),
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

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        result = super().execute_complete(context, event)
        self.forget_job(context)
        return result

    def get_job_result(self, external_id: JsonValue, context: Context) -> Any:
        return _require_dict_id(external_id, ("virtual_cluster_id", "job_id"), "EMR on EKS job")["job_id"]

    def cancel_job(self, external_id: JsonValue, context: Context) -> None:
        job = _require_dict_id(external_id, ("virtual_cluster_id", "job_id"), "EMR on EKS job")
        self.hook.conn.cancel_job_run(virtualClusterId=job["virtual_cluster_id"], id=job["job_id"])

    def is_transient_error(self, exc: BaseException) -> bool:
        return is_transient_aws_error(exc)


# ---------------------------------------------------------------------------------------- clusters


class ResumableEmrCreateJobFlowOperator(ResumableJobMixin, _OfficialOnKillSkipped, EmrCreateJobFlowOperator):
    """
    ``EmrCreateJobFlowOperator`` whose retry reuses the cluster an earlier try created while it is alive.

    RunJobFlow has no idempotency token, so the cluster is tagged ``airflow-resumable-token=<token>``
    and a try that may have created one without recording its id looks for the tag (ListClusters since
    the intent, then DescribeCluster). Stored: ``{"cluster_id": ...}``. Returns the cluster id.
    """

    external_id_key = "emr_cluster"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        overrides = self.job_flow_overrides
        if isinstance(overrides, dict):
            self._check_tags(overrides)

    @staticmethod
    def _check_tags(overrides: dict[str, Any]) -> None:
        for tag in overrides.get("Tags") or []:
            if isinstance(tag, dict) and tag.get("Key") == CLUSTER_TOKEN_TAG:
                raise ValueError(
                    f"job_flow_overrides['Tags'] must not set {CLUSTER_TOKEN_TAG!r}: the operator sets it, got {tag!r}"
                )

    def execute(self, context: Context) -> Any:
        return self.execute_resumable(context)

    def _overrides(self) -> dict[str, Any]:
        overrides = _literal(self.job_flow_overrides)
        if not isinstance(overrides, dict):
            raise ValueError(f"job_flow_overrides must render to a dict, got {overrides!r}")
        self._check_tags(overrides)
        return overrides

    def job_fingerprint(self, context: Context) -> str | None:
        return fingerprint_of({"emr_conn_id": self.emr_conn_id, "job_flow_overrides": self._overrides()})

    def _connection_tags(self) -> list[dict[str, str]]:
        """The emr connection's Tags, which overriding ``Tags`` would otherwise drop (RunJobFlow takes one list)."""
        if not self.emr_conn_id:
            return []
        try:
            extra = self.hook.get_connection(self.emr_conn_id).extra_dejson
        except Exception:
            # The hook itself falls back to an empty configuration when the connection is missing.
            return []
        return list(extra.get("Tags") or [])

    def submit_job(self, context: Context) -> JsonValue:
        token = self.idempotency_token
        assert token is not None
        overrides = self._overrides()
        base_tags = overrides["Tags"] if "Tags" in overrides else self._connection_tags()
        tagged = {**overrides, "Tags": [*base_tags, {"Key": CLUSTER_TOKEN_TAG, "Value": token}]}
        with _attributes(self, job_flow_overrides=tagged, wait_for_completion=False, deferrable=False):
            cluster_id = super().execute(context)
        # Catches a cluster botocore created twice while retrying the call.
        settled = self._settle(token, datetime.now(tz=UTC) - LOOKUP_SLACK, returned=cluster_id)
        return {"cluster_id": settled}

    def find_job(self, idempotency_token: str, context: Context) -> JsonValue:
        cluster_id = self._settle(idempotency_token, _intent_time(self, context), returned=None)
        return {"cluster_id": cluster_id} if cluster_id else None

    def _settle(self, token: str, since: datetime | None, returned: str | None) -> str | None:
        """
        The one cluster tagged with ``token``; None when there is none.

        Two mean RunJobFlow was sent twice for one submission (botocore retried a call AWS had already
        accepted): the oldest is kept and the others terminated. If that fails, a person decides.
        """
        name = self._overrides().get("Name")
        params: dict[str, Any] = {"CreatedAfter": since} if since is not None else {}
        tagged: list[tuple[Any, str]] = []
        for page in self.hook.conn.get_paginator("list_clusters").paginate(**params):
            for summary in page.get("Clusters", []):
                if name is not None and summary.get("Name") != name:
                    continue
                cluster = self.hook.conn.describe_cluster(ClusterId=summary["Id"])["Cluster"]
                tags = {t.get("Key"): t.get("Value") for t in cluster.get("Tags", [])}
                if tags.get(CLUSTER_TOKEN_TAG) == token:
                    created = cluster.get("Status", {}).get("Timeline", {}).get("CreationDateTime")
                    tagged.append((created, summary["Id"]))
        if not tagged:
            return returned
        tagged.sort(key=lambda c: (c[0] is None, c[0] or 0, c[1]))
        keep, extra = tagged[0][1], [cluster_id for _, cluster_id in tagged[1:]]
        if extra:
            self.log.warning("Clusters %s repeat cluster %s (token %s); terminating the repeats", extra, keep, token)
            try:
                self.hook.conn.terminate_job_flows(JobFlowIds=extra)
            except Exception as exc:
                raise ResumableJobConflictError(
                    f"Clusters {[keep, *extra]} all carry {CLUSTER_TOKEN_TAG}={token} and terminating {extra} "
                    f"failed: {exc!r}. Terminate them by hand, then clear the task."
                ) from exc
        return keep

    def _waits_for_steps(self) -> bool:
        return self.wait_policy == WaitPolicy.WAIT_FOR_STEPS_COMPLETION

    def get_job_status(self, external_id: JsonValue, context: Context) -> str:
        job = _require_dict_id(external_id, ("cluster_id",), "EMR cluster")
        try:
            status = self.hook.conn.describe_cluster(ClusterId=job["cluster_id"])["Cluster"]["Status"]
        except Exception as exc:
            if _is_not_found(exc, "ResourceNotFoundException", "InvalidRequestException"):
                raise JobNotFoundError(str(exc)) from exc
            raise
        reason = (status.get("StateChangeReason") or {}).get("Code")
        return f"{status['State']}:{reason}" if reason else status["State"]

    def is_job_active(self, status: str) -> bool:
        state = status.split(":", 1)[0]
        # A cluster that shuts down after its steps is on its way to success when the task waits for that.
        return state in _CLUSTER_ALIVE or (state == "TERMINATING" and self._waits_for_steps())

    def is_job_succeeded(self, status: str) -> bool:
        return self._waits_for_steps() and status == "TERMINATED:ALL_STEPS_COMPLETED"

    def poll_until_complete(self, external_id: JsonValue, context: Context) -> None:
        job = _require_dict_id(external_id, ("cluster_id",), "EMR cluster")
        self._job_flow_id = job["cluster_id"]
        if not self.wait_for_completion:
            return
        waiter_name = WAITER_POLICY_NAME_MAPPING[self.wait_policy or WaitPolicy.WAIT_FOR_COMPLETION]
        if self.deferrable:
            self.defer(
                trigger=EmrCreateJobFlowTrigger(
                    **_supported_kwargs(
                        EmrCreateJobFlowTrigger,
                        job_flow_id=job["cluster_id"],
                        aws_conn_id=self.aws_conn_id,
                        region_name=self.region_name,
                        verify=self.verify,
                        botocore_config=self.botocore_config,
                        waiter_delay=self.waiter_delay,
                        waiter_max_attempts=self.waiter_max_attempts,
                        waiter_name=waiter_name,
                    )
                ),
                method_name="execute_complete",
                timeout=timedelta(seconds=self.waiter_max_attempts * self.waiter_delay + 60),
            )
        self.hook.get_waiter(waiter_name).wait(
            ClusterId=job["cluster_id"],
            WaiterConfig={"Delay": self.waiter_delay, "MaxAttempts": self.waiter_max_attempts},
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        result = super().execute_complete(context, event)
        self.forget_job(context)
        return result

    def get_job_result(self, external_id: JsonValue, context: Context) -> Any:
        return _require_dict_id(external_id, ("cluster_id",), "EMR cluster")["cluster_id"]

    def cancel_job(self, external_id: JsonValue, context: Context) -> None:
        job = _require_dict_id(external_id, ("cluster_id",), "EMR cluster")
        self.hook.conn.terminate_job_flows(JobFlowIds=[job["cluster_id"]])

    def is_transient_error(self, exc: BaseException) -> bool:
        return is_transient_aws_error(exc)
