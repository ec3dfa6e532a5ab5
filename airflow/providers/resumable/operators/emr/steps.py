"""
``ResumableEmrAddStepsOperator``: EMR steps added once per task instance, found again by their marker;
after a step failed, a retry adds that step and the ones that did not complete, not the whole set.
"""

from __future__ import annotations

import contextlib
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
    CLUSTER_ALIVE,
    LOOKUP_SLACK,
    MARKER_BUDGET,
    MARKER_RE,
    STEP_ACTIVE,
    STEP_NAME_MAX,
    ResumableEmrJob,
    attributes,
    cluster_console_url,
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
    from collections.abc import Sequence

    from airflow.providers.resumable.compat.version_compat import Context
    from airflow.providers.resumable.state.base import JsonValue

#: Terminal step states a resume adds again: the failed step, the ones EMR cancelled after it
#: (ActionOnFailure CANCEL_AND_WAIT or TERMINATE_CLUSTER), and a step interrupted by its cluster.
STEP_REDO = frozenset({"FAILED", "CANCELLED", "INTERRUPTED"})
STEP_DONE = "COMPLETED"


def steps_to_resume(states: Sequence[str]) -> list[int]:
    """
    The positions of the requested steps a resume adds again, given each one's state, in order.

    Every step that did not complete: the failed one and the ones EMR cancelled after it
    (``CANCEL_AND_WAIT``, ``TERMINATE_CLUSTER``). After a ``CONTINUE`` failure the later steps ran
    anyway: those that completed are kept, as are the completed steps before the failure. A resume
    never runs a completed step again, and never starts while a step is still active (it would then
    run twice); both would be a bug in the caller, so they raise.
    """
    if not states:
        raise ValueError("steps_to_resume needs the state of at least one step, got none")
    unknown = sorted({s for s in states if s not in STEP_ACTIVE | STEP_REDO | {STEP_DONE}})
    if unknown:
        raise ValueError(f"unknown EMR step state(s) {unknown} in {list(states)}; refusing to guess what ran")
    active = [i for i, state in enumerate(states) if state in STEP_ACTIVE]
    if active:
        raise ValueError(f"steps {active} are still active in {list(states)}: resuming now would run them twice")
    redo = [i for i, state in enumerate(states) if state in STEP_REDO]
    if not redo:
        raise ValueError(f"every step completed ({list(states)}): there is nothing to resume")
    return redo


def resumed_step_ids(step_ids: Sequence[str], positions: Sequence[int], added: Sequence[str]) -> list[str]:
    """``step_ids`` with the step at each of ``positions`` replaced by the one added again for it."""
    if len(positions) != len(added) or any(not 0 <= p < len(step_ids) for p in positions):
        raise ValueError(f"{len(added)} step ids added for positions {list(positions)} of {len(step_ids)} steps")
    merged = list(step_ids)
    for position, step_id in zip(positions, added, strict=True):
        merged[position] = step_id
    return merged


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
        cluster_id = self._cluster_id()
        step_ids = self._add_marked(context, cluster_id, self.idempotency_token, range(len(self._rendered_steps())))
        return {"cluster_id": cluster_id, "step_ids": step_ids}

    def _add_marked(self, context: Context, cluster_id: str, token: str, positions: Sequence[int]) -> list[str]:
        """
        Add the requested steps at ``positions``, each marked with ``token`` and its position, once.

        The ids come back in the order of ``positions``. A first submission adds every position; a
        resume only those that did not complete, marked with the resume's own token.
        """
        steps = self._rendered_steps()
        marked = [{**steps[i], "Name": steps[i]["Name"] + step_marker(token, i, len(steps))} for i in positions]
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
            lambda: self._settle(cluster_id, token, since, returned=None, positions=positions) or None,
        )
        # One ListSteps page, usually: the last resort for a set added twice anyway (by another client
        # of this task, or a lookup that did not see the first set yet). If even this check keeps
        # failing the try fails, and the retry's lookup by marker settles it.
        return self._retrying(self._settle, cluster_id, token, since, step_ids, positions)

    def find_job(self, idempotency_token: str, context: Context) -> JsonValue:
        cluster_id = self._cluster_id()
        step_ids = self._settle(cluster_id, idempotency_token, intent_time(self), returned=None)
        return {"cluster_id": cluster_id, "step_ids": step_ids} if step_ids else None

    # ---- resuming a failed step set ------------------------------------------------------------------

    def resume_failed_job(self, external_id: JsonValue, status: str, context: Context) -> JsonValue:
        """
        Add again only the steps of ``external_id`` that did not complete, on the same cluster.

        They carry the resume's token (``self.idempotency_token``) in their marker, with their position
        in the task's step list, so a resume whose response was lost is found by
        :meth:`find_resumed_job`. Returns the step set with the re-added ids in place of the failed
        and cancelled ones: one id per requested step, as the official operator returns.
        """
        assert self.idempotency_token is not None
        job, positions = self._resumable(external_id)
        if not self._cluster_takes_steps(job, positions):
            return None
        added = self._add_marked(context, job["cluster_id"], self.idempotency_token, positions)
        self.log.info(
            "Resumed steps %s of %d on %s as %s; steps %s had completed and are kept",
            positions,
            len(job["step_ids"]),
            job["cluster_id"],
            added,
            [i for i in range(len(job["step_ids"])) if i not in positions],
        )
        return {"cluster_id": job["cluster_id"], "step_ids": resumed_step_ids(job["step_ids"], positions, added)}

    def find_resumed_job(self, external_id: JsonValue, idempotency_token: str, context: Context) -> JsonValue:
        """The step set as a resume with ``idempotency_token`` left it, found by marker; None if absent."""
        job = require_dict_id(external_id, ("cluster_id", "step_ids"), "EMR steps")
        positions = steps_to_resume(self._retrying(self._step_states, job))
        since = intent_time(self, resume=True)
        added = self._settle(job["cluster_id"], idempotency_token, since, returned=None, positions=positions)
        if not added:
            return None
        return {"cluster_id": job["cluster_id"], "step_ids": resumed_step_ids(job["step_ids"], positions, added)}

    def _resumable(self, external_id: JsonValue) -> tuple[dict[str, Any], list[int]]:
        """The stored step set and the positions to add again; a clear error when it cannot be resumed."""
        job = require_dict_id(external_id, ("cluster_id", "step_ids"), "EMR steps")
        count = len(job["step_ids"])
        if count != len(self._rendered_steps()):
            raise ResumableJobConflictError(
                f"The stored step set {job!r} has {count} steps and the task now has {len(self._rendered_steps())}; "
                "refusing to resume steps of a different list. Set on_job_failure='resubmit' to add them all again."
            )
        return job, steps_to_resume(self._retrying(self._step_states, job))

    def _cluster_takes_steps(self, job: dict[str, Any], positions: list[int]) -> bool:
        """
        Whether the set's cluster is alive, so its failed steps can be added there again.

        EMR adds steps only to a live cluster, and a step whose ActionOnFailure is TERMINATE_CLUSTER
        shuts it down (unless termination protection kept it), with whatever the completed steps left
        on its disks. When ``job_flow_name`` now names another live cluster the resume is declined (False):
        the core then adds every step there, as a fresh submission. Otherwise nothing a retry does can
        help, so the task fails, saying why.
        """
        cluster_id = job["cluster_id"]
        state = self._retrying(self._cluster_state, cluster_id)
        if state in CLUSTER_ALIVE:
            return True
        named = self._named_live_cluster()
        if named is not None and named != cluster_id:
            self.log.warning(
                "Cluster %s of the failed steps is %s; job_flow_name %r now names cluster %s: all steps go there",
                cluster_id,
                state,
                self.job_flow_name,
                named,
            )
            return False
        raise ResumableJobConflictError(
            f"Cannot resume steps {positions} of {job['step_ids']}: cluster {cluster_id} is {state}, and EMR adds "
            "steps only to a running or waiting cluster (a step with ActionOnFailure TERMINATE_CLUSTER shuts it "
            "down). Give the task a live cluster and clear it: a new job_flow_id (from the task that creates the "
            "cluster) is a new spec, so all steps are added there, as is a live cluster named by job_flow_name."
        )

    def _named_live_cluster(self) -> str | None:
        """
        The live cluster ``job_flow_name`` names now, resolved as a fresh submission would resolve it;
        None with ``job_flow_id``, or when the name names no single live cluster.
        """
        if self.job_flow_id or not self.job_flow_name:
            return None
        try:
            cluster_id = self._retrying(self._cluster_id)
        except AirflowException:  # no cluster of that name, or more than one
            return None
        return cluster_id if self._retrying(self._cluster_state, cluster_id) in CLUSTER_ALIVE else None

    def _cluster_state(self, cluster_id: str) -> str:
        with gone_if_not_found("ResourceNotFoundException", "InvalidRequestException"):
            return str(self.hook.conn.describe_cluster(ClusterId=cluster_id)["Cluster"]["Status"]["State"])

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

    def _settle(
        self,
        cluster_id: str,
        token: str,
        since: datetime | None,
        returned: list[str] | None,
        positions: Sequence[int] | None = None,
    ) -> list[str]:
        """
        The one set of steps submitted with ``token``, in submission order; [] when there is none.

        ``positions`` are the markers' indexes the set must hold: every step of the list for a first
        submission (the default), the ones added again for a resume.

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
        expected = list(range(count)) if positions is None else list(positions)
        sets = {len(ids) for ids in found.values()}
        if sorted(found) != expected or len(sets) != 1 or count < 0:
            raise ResumableJobConflictError(
                f"Cluster {cluster_id} holds an incomplete set of steps for token {token}: {found!r} (index -> "
                "step ids). Refusing to add or reattach. Cancel the steps that should not run, then delete the "
                "job record and clear the task."
            )
        keep = [found[i][0] for i in expected]
        extra = [step_id for i in expected for step_id in found[i][1:]]
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

    def job_url(self, external_id: JsonValue, context: Context) -> str | None:
        """The page of the cluster running the steps, which lists them (the official ``EmrClusterLink``)."""
        return cluster_console_url(self.hook, external_id)

    def get_job_status(self, external_id: JsonValue, context: Context) -> str:
        job = require_dict_id(external_id, ("cluster_id", "step_ids"), "EMR steps")
        states = self._step_states(job)
        values = set(states)
        if values & STEP_ACTIVE:
            # Some steps still run: even if one failed, adding the set (or its failed part) again now
            # would run those twice.
            return "RUNNING" if "RUNNING" in values else sorted(values & STEP_ACTIVE)[0]
        if values == {STEP_DONE}:
            return STEP_DONE
        # Neither active nor succeeded: the core's "failed", which a resume reads per step.
        return ",".join(f"{step_id}={state}" for step_id, state in zip(job["step_ids"], states, strict=True))

    def _step_states(self, job: dict[str, Any]) -> list[str]:
        """The state of each of the set's steps, in the set's order; ``JobNotFoundError`` if one is gone."""
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
        return [states[s] for s in step_ids]

    def is_job_active(self, status: str) -> bool:
        return status in STEP_ACTIVE

    def is_job_succeeded(self, status: str) -> bool:
        return status == STEP_DONE

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
        step_ids = list(job["step_ids"])
        for position, step_id in enumerate(step_ids):
            try:
                self._wait_for_step(job["cluster_id"], step_id)
            except AirflowException:
                if self._retrying(self._step_states, {**job, "step_ids": [step_id]}) != ["FAILED"]:
                    raise  # the waiter gave up, or the step was cancelled: nothing runs on because of it
                # After a failure with ActionOnFailure CONTINUE the later steps still run. The try ends
                # when they have, so its retry finds the set at rest and resumes it at once: while a
                # step is live the set counts as running, and a retry would only fail again here.
                later = step_ids[position + 1 :]
                states = self._retrying(self._step_states, {**job, "step_ids": later}) if later else []
                for step_id, state in zip(later, states, strict=True):
                    if state in STEP_ACTIVE:
                        with contextlib.suppress(AirflowException):
                            self._wait_for_step(job["cluster_id"], step_id)
                raise

    def _wait_for_step(self, cluster_id: str, step_id: str) -> None:
        """The official operator's wait for one step (its waiter and messages); raises if it did not complete."""
        wait(
            waiter=self.hook.get_waiter("step_wait_for_terminal"),
            waiter_delay=self.waiter_delay,
            waiter_max_attempts=self.waiter_max_attempts,
            args={"ClusterId": cluster_id, "StepId": step_id},
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
