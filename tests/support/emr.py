"""
The EMR jobs the tests submit, and the resumable EMR operators built for them.

The unit tests (``tests/unit/operators/emr/``, under ``moto.mock_aws``) and the integration tests
(``dag.test()`` against moto's server) build the same four operators on the same specs; each adds
only its own defaults (a ``dag``, retries, shorter waits).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from airflow.providers.resumable.operators.emr import (
    ResumableEmrAddStepsOperator,
    ResumableEmrContainerOperator,
    ResumableEmrCreateJobFlowOperator,
    ResumableEmrServerlessStartJobOperator,
)
from tests.support.context import FakeTI
from tests.support.fake_aws import ROLE_ARN

STEP = {
    "Name": "calculate_pi",
    "ActionOnFailure": "CONTINUE",
    "HadoopJarStep": {"Jar": "command-runner.jar", "Args": ["spark-example", "SparkPi", "10"]},
}


def step_list(count: int, action_on_failure: str = "CANCEL_AND_WAIT") -> list[dict[str, Any]]:
    """``count`` steps named ``step_1`` .. ``step_<count>``, all with ``action_on_failure``."""
    return [{**STEP, "Name": f"step_{i + 1}", "ActionOnFailure": action_on_failure} for i in range(count)]


def failing_at(steps: list[dict[str, Any]], index: int) -> list[str]:
    """
    The state each of ``steps`` ends in when step ``index`` fails, as EMR decides by its ActionOnFailure.

    The steps before it completed; after it, ``CONTINUE`` runs the next steps (they complete here),
    ``CANCEL_AND_WAIT`` cancels the pending ones, and ``TERMINATE_CLUSTER`` / ``TERMINATE_JOB_FLOW``
    cancel them as the cluster shuts down (``FakeAws`` terminates the cluster when the step fails).
    A step without ActionOnFailure gets moto's default, TERMINATE_CLUSTER.
    For ``FakeAws.step_outcomes``: ``aws.step_outcomes = [failing_at(steps, 3)]``.
    """
    action = steps[index].get("ActionOnFailure", "TERMINATE_CLUSTER")
    after = "COMPLETED" if action == "CONTINUE" else "CANCELLED"
    return ["COMPLETED"] * index + ["FAILED"] + [after] * (len(steps) - index - 1)


#: EMR Serverless.
DRIVER = {"sparkSubmit": {"entryPoint": "s3://bucket/job.py"}}
#: EMR on EKS.
EKS_DRIVER = {"sparkSubmitJobDriver": {"entryPoint": "s3://bucket/job.py"}}
OVERRIDES = {
    "Name": "resumable-cluster",
    "ReleaseLabel": "emr-7.1.0",
    "Instances": {"InstanceCount": 1, "MasterInstanceType": "m5.xlarge", "KeepJobFlowAliveWhenNoSteps": True},
    "JobFlowRole": "EMR_EC2_DefaultRole",
    "ServiceRole": "EMR_DefaultRole",
    "Tags": [{"Key": "team", "Value": "data"}],
}


def steps_op(cluster_id: str, cls: type = ResumableEmrAddStepsOperator, **kwargs: Any) -> Any:
    kwargs = {"steps": [STEP], "wait_for_completion": True, "waiter_delay": 0, "waiter_max_attempts": 3, **kwargs}
    return cls(task_id="steps", job_flow_id=cluster_id, **kwargs)


def serverless_op(app_id: str, cls: type = ResumableEmrServerlessStartJobOperator, **kwargs: Any) -> Any:
    kwargs = {"waiter_delay": 0, "waiter_max_attempts": 3, **kwargs}
    return cls(task_id="spark", application_id=app_id, execution_role_arn=ROLE_ARN, job_driver=DRIVER, **kwargs)


def container_op(vc_id: str, **kwargs: Any) -> Any:
    kwargs = {"poll_interval": 0, **kwargs}
    return ResumableEmrContainerOperator(
        task_id="eks",
        name="etl",
        virtual_cluster_id=vc_id,
        execution_role_arn=ROLE_ARN,
        release_label="emr-7.1.0-latest",
        job_driver=EKS_DRIVER,
        **kwargs,
    )


def cluster_op(
    job_flow_overrides: Any = OVERRIDES, cls: type = ResumableEmrCreateJobFlowOperator, **kwargs: Any
) -> Any:
    return cls(task_id="cluster", emr_conn_id=None, job_flow_overrides=job_flow_overrides, **kwargs)


# ---- for calling the operators directly, one try at a time ------------------------------------------


@dataclass
class XComTI(FakeTI):
    """FakeTI plus the xcom_push the official operators call for links and ``job_flow_id``."""

    pushed: dict[str, Any] = field(default_factory=dict)

    def xcom_push(self, key: str, value: Any, **kwargs: Any) -> None:
        self.pushed[key] = value


def ctx(try_number: int = 1, max_tries: int = 2) -> dict[str, Any]:
    return {"ti": XComTI(try_number=try_number, max_tries=max_tries)}


def deferred(op: Any, context: dict[str, Any], **kwargs: Any) -> Any:
    """Run ``op.execute``, which must defer; returns the ``TaskDeferred`` it raised."""
    import pytest

    with pytest.raises(task_deferred()) as raised:
        op.execute(context, **kwargs)
    return raised.value


def task_deferred() -> type[BaseException]:
    """The exception a deferring operator raises, where this Airflow version keeps it."""
    from airflow.providers.resumable.version_compat import AIRFLOW_V_3_0_PLUS

    if AIRFLOW_V_3_0_PLUS:
        from airflow.sdk.exceptions import TaskDeferred
    else:
        from airflow.exceptions import TaskDeferred
    return TaskDeferred
