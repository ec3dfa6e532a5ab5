"""
The 0.1.0 home of the version flags; they live in :mod:`airflow.providers.resumable.compat` now.

Kept so that ``from airflow.providers.resumable.version_compat import BaseOperator`` (in users' code
and the 0.1.0 docs) goes on working.
"""

from __future__ import annotations

from airflow.providers.resumable.compat.version_compat import (
    AIRFLOW_V_3_0_PLUS,
    AIRFLOW_V_3_2_PLUS,
    AIRFLOW_V_3_3_PLUS,
    AIRFLOW_VERSION,
    AirflowException,
    AirflowFailException,
    BaseOperator,
    BaseOperatorMeta,
    Context,
    apply_defaults,
)

__all__ = [
    "AIRFLOW_VERSION",
    "AIRFLOW_V_3_0_PLUS",
    "AIRFLOW_V_3_2_PLUS",
    "AIRFLOW_V_3_3_PLUS",
    "AirflowException",
    "AirflowFailException",
    "BaseOperator",
    "BaseOperatorMeta",
    "Context",
    "apply_defaults",
]
