"""
Flags for the running Airflow, and the classes whose import path moved between its lines.

Flags only, as in the official providers' ``version_compat.py``: what differs in *behaviour* lives in
:mod:`airflow.providers.resumable.compat.airflow`, next to these flags.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from packaging.version import Version


def _airflow_version() -> Version:
    from airflow import __version__

    return Version(Version(__version__).base_version)


AIRFLOW_VERSION = _airflow_version()
AIRFLOW_V_3_0_PLUS = AIRFLOW_VERSION >= Version("3.0.0")
AIRFLOW_V_3_2_PLUS = AIRFLOW_VERSION >= Version("3.2.0")
AIRFLOW_V_3_3_PLUS = AIRFLOW_VERSION >= Version("3.3.0")
# 3.4.0b2 counts as 3.4 (base_version): its beta is what the 3.4 leg runs.
AIRFLOW_V_3_4_PLUS = AIRFLOW_VERSION >= Version("3.4.0")

# Airflow 3.0+ (Task SDK) | 2.11 (airflow.models).
if TYPE_CHECKING or AIRFLOW_V_3_0_PLUS:
    from airflow.sdk import BaseOperator
    from airflow.sdk.bases.operator import BaseOperatorMeta
    from airflow.sdk.definitions.context import Context
    from airflow.sdk.exceptions import AirflowException, AirflowFailException
else:
    from airflow.exceptions import AirflowException, AirflowFailException
    from airflow.models import BaseOperator
    from airflow.models.baseoperator import BaseOperatorMeta
    from airflow.utils.context import Context


def apply_defaults(func: Any) -> Any:
    """
    Wrap a mixin ``__init__`` the way ``BaseOperatorMeta`` wraps an operator's.

    The metaclass only wraps ``__init__`` methods defined on operator classes. A mixin's ``__init__``
    that an operator inherits without defining its own would otherwise skip ``default_args``
    handling, exactly as Airflow's own ``ResumableJobMixin`` works around.
    """
    return BaseOperatorMeta._apply_defaults(func)


__all__ = [
    "AIRFLOW_VERSION",
    "AIRFLOW_V_3_0_PLUS",
    "AIRFLOW_V_3_2_PLUS",
    "AIRFLOW_V_3_3_PLUS",
    "AIRFLOW_V_3_4_PLUS",
    "AirflowException",
    "AirflowFailException",
    "BaseOperator",
    "BaseOperatorMeta",
    "Context",
    "apply_defaults",
]
