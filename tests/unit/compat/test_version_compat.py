"""The flags agree with the installed Airflow, and the moved classes are the running line's."""

from __future__ import annotations

import importlib.metadata

from packaging.version import Version

from airflow.providers.resumable.compat import version_compat


def test_the_flags_follow_the_installed_airflow():
    installed = Version(Version(importlib.metadata.version("apache-airflow")).base_version)
    assert version_compat.AIRFLOW_VERSION == installed
    assert version_compat.AIRFLOW_V_3_0_PLUS is (installed >= Version("3.0"))
    assert version_compat.AIRFLOW_V_3_2_PLUS is (installed >= Version("3.2"))
    assert version_compat.AIRFLOW_V_3_3_PLUS is (installed >= Version("3.3"))
    assert version_compat.AIRFLOW_V_3_4_PLUS is (installed >= Version("3.4"))


def test_the_base_operator_is_the_one_dags_use_on_this_line():
    module = "airflow.sdk" if version_compat.AIRFLOW_V_3_0_PLUS else "airflow.models"
    assert version_compat.BaseOperator.__module__.startswith(module)
    assert issubclass(version_compat.AirflowFailException, version_compat.AirflowException)


def test_apply_defaults_wraps_a_mixin_init_as_the_metaclass_wraps_an_operators():
    def __init__(self, **kwargs):
        pass

    wrapped = version_compat.apply_defaults(__init__)
    assert wrapped is not __init__
    assert wrapped.__wrapped__ is __init__
