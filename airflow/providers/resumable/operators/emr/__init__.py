"""
Resumable drop-ins for the Amazon provider's EMR operators: steps, EMR Serverless, EMR on EKS, clusters.

Each class subclasses the official operator (same arguments, same hook, same return value) and adds
``ResumableJobMixin``'s write-ahead record, so a retry reattaches to the steps / job run / cluster an
earlier try started instead of starting a second one. The submission itself is the official
``execute()`` run with waiting switched off; waiting is done here, where a retry can resume it.
"""

from __future__ import annotations

from airflow.providers.resumable.operators.emr._common import (
    CLUSTER_TOKEN_TAG,
    is_transient_aws_error,
    step_marker,
)
from airflow.providers.resumable.operators.emr.clusters import ResumableEmrCreateJobFlowOperator
from airflow.providers.resumable.operators.emr.eks import ResumableEmrContainerOperator
from airflow.providers.resumable.operators.emr.serverless import ResumableEmrServerlessStartJobOperator
from airflow.providers.resumable.operators.emr.steps import ResumableEmrAddStepsOperator

__all__ = [
    "CLUSTER_TOKEN_TAG",
    "ResumableEmrAddStepsOperator",
    "ResumableEmrContainerOperator",
    "ResumableEmrCreateJobFlowOperator",
    "ResumableEmrServerlessStartJobOperator",
    "is_transient_aws_error",
    "step_marker",
]
