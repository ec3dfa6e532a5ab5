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
    kwargs = {"steps": [STEP], "wait_for_completion": True, "waiter_delay": 1, "waiter_max_attempts": 3, **kwargs}
    return cls(task_id="steps", job_flow_id=cluster_id, **kwargs)


def serverless_op(app_id: str, cls: type = ResumableEmrServerlessStartJobOperator, **kwargs: Any) -> Any:
    kwargs = {"waiter_delay": 1, "waiter_max_attempts": 3, **kwargs}
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
