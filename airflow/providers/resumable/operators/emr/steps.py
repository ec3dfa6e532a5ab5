"""``ResumableEmrAddStepsOperator``: EMR steps added once per task instance, found again by their marker."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow.providers.resumable.compat.version_compat import AirflowException
from airflow.providers.resumable.extras import requires_extra
from airflow.providers.resumable.mixins.decisions import fingerprint_of
from airflow.providers.resumable.mixins.resumable_job import (
    JobNotFoundError,
    ResumableJobConflictError,
)
from airflow.providers.resumable.operators.emr._common import (
    LOOKUP_SLACK,
    MARKER_BUDGET,
    MARKER_RE,
    STEP_ACTIVE,
    STEP_NAME_MAX,
    ResumableEmrJob,
    attributes,
    gone_if_not_found,
    intent_time,
    literal,
    require_dict_id,
    sent_once,
    step_marker,
    supported_kwargs,
)

with requires_extra("amazon", __name__):
    from airflow.providers.amazon.aws.operators.emr import EmrAddStepsOperator
    from airflow.providers.amazon.aws.triggers.emr import EmrAddStepsTrigger
    from airflow.providers.amazon.aws.utils.waiter_with_logging import wait

if TYPE_CHECKING:
    from airflow.providers.resumable.compat.version_compat import Context
    from airflow.providers.resumable.state.base import JsonValue


class ResumableEmrAddStepsOperator(ResumableEmrJob, EmrAddStepsOperator):
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
        if len(name) + MARKER_BUDGET > STEP_NAME_MAX:
            raise ValueError(
                f"steps[{index}]['Name'] is {len(name)} characters; at most {STEP_NAME_MAX - MARKER_BUDGET} "
                f"leave room for the resumable marker within EMR's {STEP_NAME_MAX}, got {name!r}"
            )

    def execute(self, context: Context) -> Any:
        if not self._rendered_steps():
            # Nothing to submit, so nothing to resume: the official operator's call, and its result.
            self.log.info("No steps to add; nothing is recorded in task state")
            return EmrAddStepsOperator.execute(self, context)
        return self.execute_resumable(context)

    def _rendered_steps(self) -> list[dict[str, Any]]:
        steps = literal(self.steps)
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
        token = self.idempotency_token
        since = datetime.now(tz=UTC) - LOOKUP_SLACK

        def add() -> list[str]:
            # The official execute() adds the steps (links, OpenLineage, XCom job_flow_id included); the
            # waiting it would do happens in poll_until_complete, where a retry can take it over.
            with (
                attributes(self, job_flow_id=cluster_id, steps=marked, wait_for_completion=False, deferrable=False),
                sent_once(self.hook),
            ):
                return list(EmrAddStepsOperator.execute(self, context))

        step_ids = self.submit_unrepeated(
            f"AddJobFlowSteps to {cluster_id} (token {token})",
            add,
            lambda: self._settle(cluster_id, token, since, returned=None) or None,
        )
        # One ListSteps page, usually: the last resort for a set added twice anyway (by another client
        # of this task, or a lookup that did not see the first set yet). If even this check keeps
        # failing the try fails, and the retry's lookup by marker settles it.
        step_ids = self._retrying(self._settle, cluster_id, token, since, step_ids)
        return {"cluster_id": cluster_id, "step_ids": step_ids}

    def find_job(self, idempotency_token: str, context: Context) -> JsonValue:
        cluster_id = self._cluster_id()
        step_ids = self._settle(cluster_id, idempotency_token, intent_time(self), returned=None)
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
                match = MARKER_RE.search(step.get("Name", ""))
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
                "job record and clear the task."
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
        job = require_dict_id(external_id, ("cluster_id", "step_ids"), "EMR steps")
        states: dict[str, str] = {}
        step_ids = list(job["step_ids"])
        with gone_if_not_found("ResourceNotFoundException", "InvalidRequestException"):
            # ListSteps filters by at most 10 ids per call.
            for start in range(0, len(step_ids), 10):
                chunk = step_ids[start : start + 10]
                for page in self.hook.conn.get_paginator("list_steps").paginate(
                    ClusterId=job["cluster_id"], StepIds=chunk
                ):
                    states.update({s["Id"]: s["Status"]["State"] for s in page.get("Steps", [])})
        missing = [s for s in step_ids if s not in states]
        if missing:
            raise JobNotFoundError(f"steps {missing} are not on cluster {job['cluster_id']}")
        values = set(states.values())
        if values & STEP_ACTIVE:
            # Some steps still run: even if one failed, adding the set again would run those twice.
            return "RUNNING" if "RUNNING" in values else sorted(values & STEP_ACTIVE)[0]
        if values == {"COMPLETED"}:
            return "COMPLETED"
        return ",".join(f"{s}={states[s]}" for s in step_ids)

    def is_job_active(self, status: str) -> bool:
        return status in STEP_ACTIVE

    def is_job_succeeded(self, status: str) -> bool:
        return status == "COMPLETED"

    def _push_job_flow_id(self, context: Context, cluster_id: str) -> None:
        # The official operator pushes it when it adds the steps; a reattaching try must as well.
        if self.do_xcom_push:
            context["ti"].xcom_push(key="job_flow_id", value=cluster_id)

    def poll_until_complete(self, external_id: JsonValue, context: Context) -> None:
        job = require_dict_id(external_id, ("cluster_id", "step_ids"), "EMR steps")
        self._push_job_flow_id(context, job["cluster_id"])
        if self.deferrable:
            self.defer(
                trigger=EmrAddStepsTrigger(
                    **supported_kwargs(
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

    def get_job_result(self, external_id: JsonValue, context: Context) -> Any:
        job = require_dict_id(external_id, ("cluster_id", "step_ids"), "EMR steps")
        self._push_job_flow_id(context, job["cluster_id"])
        return list(job["step_ids"])

    def cancel_job(self, external_id: JsonValue, context: Context) -> None:
        job = require_dict_id(external_id, ("cluster_id", "step_ids"), "EMR steps")
        self.hook.conn.cancel_steps(
            ClusterId=job["cluster_id"], StepIds=job["step_ids"], StepCancellationOption="SEND_INTERRUPT"
        )
