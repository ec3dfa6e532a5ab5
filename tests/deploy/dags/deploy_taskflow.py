"""Airflow DAGs of the deployment suite: the TaskFlow scenarios (tests/deploy/scenarios.py), for its deployment only."""

from __future__ import annotations

from tests.deploy.dag_factory import build

globals().update(build("taskflow"))
globals().update(build("taskflow_job"))
