"""``ResumableEmrCreateJobFlowOperator``: one EMR cluster per submission, found again by a tag."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.resumable.extras import requires_extra
from airflow.providers.resumable.mixins.decisions import fingerprint_of
from airflow.providers.resumable.mixins.resumable_job import (
    ResumableJobConflictError,
)
from airflow.providers.resumable.operators.emr._common import (
    CLUSTER_ALIVE,
    CLUSTER_TOKEN_TAG,
    LOOKUP_SLACK,
    ResumableEmrJob,
    attributes,
    cluster_console_url,
    gone_if_not_found,
    intent_time,
    literal,
    require_dict_id,
    sent_once,
    spec_as_given,
    supported_kwargs,
)

with requires_extra("amazon", __name__):
    from airflow.providers.amazon.aws.operators.emr import EmrCreateJobFlowOperator
    from airflow.providers.amazon.aws.triggers.emr import EmrCreateJobFlowTrigger
    from airflow.providers.amazon.aws.utils.waiter import WAITER_POLICY_NAME_MAPPING, WaitPolicy

if TYPE_CHECKING:
    from airflow.providers.resumable.compat.version_compat import Context
    from airflow.providers.resumable.state.base import JsonValue


class ResumableEmrCreateJobFlowOperator(ResumableEmrJob, EmrCreateJobFlowOperator):
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
        overrides = literal(self.job_flow_overrides)
        if not isinstance(overrides, dict):
            raise ValueError(f"job_flow_overrides must render to a dict, got {overrides!r}")
        self._check_tags(overrides)
        return overrides

    def job_fingerprint(self, context: Context) -> str | None:
        return fingerprint_of(
            spec_as_given(self, lambda: {"emr_conn_id": self.emr_conn_id, "job_flow_overrides": self._overrides()})
        )

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
        since = datetime.now(tz=UTC) - LOOKUP_SLACK

        def create() -> str:
            with (
                attributes(self, job_flow_overrides=tagged, wait_for_completion=False, deferrable=False),
                sent_once(self.hook),
            ):
                return str(EmrCreateJobFlowOperator.execute(self, context))

        try:
            cluster_id = self.submit_unrepeated(
                f"RunJobFlow (token {token})", create, lambda: self._settle(token, since, returned=None)
            )
        finally:
            # The official execute() leaves the parsed overrides in ``job_flow_overrides``; so do we,
            # without our tag.
            self.job_flow_overrides = overrides
        # The last resort for a cluster created twice anyway. If even this check keeps failing the try
        # fails, and the retry's lookup by tag settles it.
        settled = self._retrying(self._settle, token, since, cluster_id)
        return {"cluster_id": settled}

    def find_job(self, idempotency_token: str, context: Context) -> JsonValue:
        cluster_id = self._settle(idempotency_token, intent_time(self), returned=None)
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

    def job_url(self, external_id: JsonValue, context: Context) -> str | None:
        """The cluster's page in the AWS console (the official ``EmrClusterLink``)."""
        return cluster_console_url(self.hook, external_id)

    def get_job_status(self, external_id: JsonValue, context: Context) -> str:
        job = require_dict_id(external_id, ("cluster_id",), "EMR cluster")
        with gone_if_not_found("ResourceNotFoundException", "InvalidRequestException"):
            status = self.hook.conn.describe_cluster(ClusterId=job["cluster_id"])["Cluster"]["Status"]
        reason = (status.get("StateChangeReason") or {}).get("Code")
        return f"{status['State']}:{reason}" if reason else status["State"]

    def _done_states(self) -> frozenset[str]:
        """
        Live cluster states in which this task's work is done, as the official waiting decides it.

        Without waiting the task is done once the cluster exists; WAIT_FOR_COMPLETION waits until it is
        RUNNING or WAITING; WAIT_FOR_STEPS_COMPLETION until it terminated after its steps. A cluster in a
        done state is the task's *result*: a retry returns it, while a person's clear (a new generation)
        creates a fresh cluster, on every state backend alike.
        """
        if not self.wait_for_completion:
            return CLUSTER_ALIVE
        if (self.wait_policy or WaitPolicy.WAIT_FOR_COMPLETION) == WaitPolicy.WAIT_FOR_COMPLETION:
            return frozenset({"RUNNING", "WAITING"})
        return frozenset()

    def is_job_active(self, status: str) -> bool:
        state = status.split(":", 1)[0]
        if state in self._done_states():
            return False
        # A cluster shutting down after running all its steps is on its way to success, not a failure.
        return state in CLUSTER_ALIVE or status == "TERMINATING:ALL_STEPS_COMPLETED"

    def is_job_succeeded(self, status: str) -> bool:
        # TERMINATED after all steps: it ran the steps it was created with, and a new cluster would run
        # them again. The official "job_flow_waiting" waiter counts TERMINATED as success as well.
        return status.split(":", 1)[0] in self._done_states() or status == "TERMINATED:ALL_STEPS_COMPLETED"

    def poll_until_complete(self, external_id: JsonValue, context: Context) -> None:
        job = require_dict_id(external_id, ("cluster_id",), "EMR cluster")
        self._job_flow_id = job["cluster_id"]
        if not self.wait_for_completion:
            return
        waiter_name = WAITER_POLICY_NAME_MAPPING[self.wait_policy or WaitPolicy.WAIT_FOR_COMPLETION]
        if self.deferrable:
            self.defer(
                trigger=EmrCreateJobFlowTrigger(
                    **supported_kwargs(
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

    def get_job_result(self, external_id: JsonValue, context: Context) -> Any:
        return require_dict_id(external_id, ("cluster_id",), "EMR cluster")["cluster_id"]

    def cancel_job(self, external_id: JsonValue, context: Context) -> None:
        job = require_dict_id(external_id, ("cluster_id",), "EMR cluster")
        self.hook.conn.terminate_job_flows(JobFlowIds=[job["cluster_id"]])
