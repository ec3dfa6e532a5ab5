"""
Example DAG: one task per resumable EMR operator, each safe to retry without starting a second job.

* ``create_cluster`` (``ResumableEmrCreateJobFlowOperator``) tags the cluster with the submission's
  token; a retry reuses the cluster an earlier try created while it is alive.
* ``add_steps`` (``ResumableEmrAddStepsOperator``) marks each step name; a retry reattaches to the
  steps (found with ListSteps if their ids were never stored) instead of adding them again.
* ``serverless_job`` (``ResumableEmrServerlessStartJobOperator``) and ``eks_job``
  (``ResumableEmrContainerOperator``) pass the submission's token as ``clientToken``; a retry gets
  the same job run back, or reattaches to the stored one.
* ``terminate_cluster`` is the official ``EmrTerminateJobFlowOperator``: it runs whatever happened.
* ``watcher`` fails the run if any task failed, which ``terminate_cluster`` would otherwise hide.

With ``RESUMABLE_DEMO_COMPARE_OFFICIAL=1`` (``make demo-emr`` sets it) two more tasks add the same five
steps (``ActionOnFailure`` ``CANCEL_AND_WAIT``) to the cluster, ``pipeline_steps`` with
``ResumableEmrAddStepsOperator`` and ``official_pipeline_steps`` with the official
``EmrAddStepsOperator``; the demo fails step 4 of each once. The official retry adds all five steps
again; ours adds steps 4 and 5.

Everything account-specific comes from Airflow Variables (``AIRFLOW_VAR_*`` in the environment work
too), so the same file runs against AWS and against the moto server ``make demo-emr`` starts:

* ``emr_serverless_application_id``, ``emr_eks_virtual_cluster_id``: existing resources;
* ``emr_job_role_arn``: the execution role of the Serverless and EMR on EKS jobs;
* ``emr_waiter_delay`` (optional, seconds between status polls; default 30).

The ``aws_default`` connection says where AWS is (``endpoint_url`` in its extra for moto).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.providers.amazon.aws.operators.emr import EmrTerminateJobFlowOperator

from airflow.providers.resumable.operators.emr import (
    ResumableEmrAddStepsOperator,
    ResumableEmrContainerOperator,
    ResumableEmrCreateJobFlowOperator,
    ResumableEmrServerlessStartJobOperator,
)
from airflow.providers.resumable.version_compat import AIRFLOW_V_3_0_PLUS, AirflowException

if AIRFLOW_V_3_0_PLUS:
    from airflow.sdk import DAG, task
else:
    from airflow.decorators import task
    from airflow.models.dag import DAG

# Not every waiter argument is templated upstream, so the poll interval is read at parse time.
WAITER_DELAY = int(os.environ.get("AIRFLOW_VAR_EMR_WAITER_DELAY", "30"))

JOB_FLOW_OVERRIDES = {
    "Name": "resumable-example",
    "ReleaseLabel": "emr-7.1.0",
    "Applications": [{"Name": "Spark"}],
    "Instances": {
        "InstanceGroups": [
            {
                "Name": "Primary",
                "Market": "ON_DEMAND",
                "InstanceRole": "MASTER",
                "InstanceType": "m5.xlarge",
                "InstanceCount": 1,
            },
        ],
        "KeepJobFlowAliveWhenNoSteps": True,
        "TerminationProtected": False,
    },
    "JobFlowRole": "EMR_EC2_DefaultRole",
    "ServiceRole": "EMR_DefaultRole",
}

SPARK_PI_STEP = {
    "Name": "calculate_pi",
    "ActionOnFailure": "CONTINUE",
    "HadoopJarStep": {"Jar": "command-runner.jar", "Args": ["/usr/lib/spark/bin/run-example", "SparkPi", "10"]},
}

with DAG(
    dag_id="example_resumable_emr",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "resumable", "emr"],
    doc_md=__doc__,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=1)},
) as dag:
    create_cluster = ResumableEmrCreateJobFlowOperator(
        task_id="create_cluster",
        emr_conn_id=None,
        job_flow_overrides=JOB_FLOW_OVERRIDES,
        wait_for_completion=True,
        waiter_delay=WAITER_DELAY,
    )

    add_steps = ResumableEmrAddStepsOperator(
        task_id="add_steps",
        job_flow_id=create_cluster.output,
        steps=[SPARK_PI_STEP],
        wait_for_completion=True,
        waiter_delay=WAITER_DELAY,
    )

    serverless_job = ResumableEmrServerlessStartJobOperator(
        task_id="serverless_job",
        application_id="{{ var.value.emr_serverless_application_id }}",
        execution_role_arn="{{ var.value.emr_job_role_arn }}",
        job_driver={"sparkSubmit": {"entryPoint": "local:///usr/lib/spark/examples/src/main/python/pi.py"}},
        waiter_delay=WAITER_DELAY,
    )

    eks_job = ResumableEmrContainerOperator(
        task_id="eks_job",
        name="resumable-pi",
        virtual_cluster_id="{{ var.value.emr_eks_virtual_cluster_id }}",
        execution_role_arn="{{ var.value.emr_job_role_arn }}",
        release_label="emr-7.1.0-latest",
        job_driver={"sparkSubmitJobDriver": {"entryPoint": "local:///usr/lib/spark/examples/src/main/python/pi.py"}},
        poll_interval=WAITER_DELAY,
    )

    terminate_cluster = EmrTerminateJobFlowOperator(
        task_id="terminate_cluster",
        job_flow_id=create_cluster.output,
        trigger_rule="all_done",
    )

    create_cluster >> add_steps >> terminate_cluster

    if os.environ.get("RESUMABLE_DEMO_COMPARE_OFFICIAL"):
        from airflow.providers.amazon.aws.operators.emr import EmrAddStepsOperator

        def pipeline(prefix: str) -> list[dict]:
            return [
                {**SPARK_PI_STEP, "Name": f"{prefix}_step_{i}", "ActionOnFailure": "CANCEL_AND_WAIT"}
                for i in range(1, 6)
            ]

        pipeline_steps, official_pipeline_steps = (
            operator(
                task_id=task_id,
                job_flow_id=create_cluster.output,
                steps=pipeline(prefix),
                wait_for_completion=True,
                waiter_delay=WAITER_DELAY,
            )
            for task_id, operator, prefix in (
                ("pipeline_steps", ResumableEmrAddStepsOperator, "resumable"),
                ("official_pipeline_steps", EmrAddStepsOperator, "official"),
            )
        )
        add_steps >> pipeline_steps >> official_pipeline_steps >> terminate_cluster

    @task(trigger_rule="one_failed", retries=0)
    def watcher() -> None:
        """Fail the run when any task failed: terminate_cluster runs on all_done and would hide it."""
        raise AirflowException("a task of example_resumable_emr failed")

    [create_cluster, add_steps, serverless_job, eks_job, terminate_cluster] >> watcher()
