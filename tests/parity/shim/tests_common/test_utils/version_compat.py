"""``AIRFLOW_V_<major>_<minor>_PLUS``: True when the installed Airflow is at least that version."""

from __future__ import annotations

import re

from packaging.version import Version

from airflow import __version__

AIRFLOW_VERSION = Version(Version(__version__).base_version)
_FLAG = re.compile(r"AIRFLOW_V_(\d+)_(\d+)_PLUS")


def __getattr__(name: str) -> bool:
    match = _FLAG.fullmatch(name)
    if match is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return AIRFLOW_VERSION >= Version(f"{match[1]}.{match[2]}")
