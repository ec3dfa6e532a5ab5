"""
Example DAG: Databricks runs that a retry reattaches to instead of paying for twice.

* ``submit_notebook_run``: ``ResumableDatabricksSubmitRunOperator``, a one-time run on a new cluster.
* ``run_nightly_job``: ``ResumableDatabricksRunNowOperator``, the existing job ``resumable-demo-nightly``
  found by name, with the logical date as a job parameter.
* ``submit_deferrable_run``: the same submission, waiting in the triggerer (``deferrable=True``); the
  run id is stored before deferring, so a retry defers again on the same run.

Each operator is the official one with the class name changed. The connection ``databricks_default``
comes from the environment (``AIRFLOW_CONN_DATABRICKS_DEFAULT``): ``make demo-databricks`` points it at
the local fake of the Jobs API (``demo/fake_databricks.py``) and injects lost responses; pointed at a
real workspace (and with a real notebook and job) the DAG runs unchanged.

* ``repair_ten_task_run``: a one-time run of ten tasks (a setup task, then nine that depend on it); when
  one of them fails, the retry repairs the run: only the failed task runs again, in the same run.

With ``RESUMABLE_DEMO_COMPARE_OFFICIAL=1`` (the demo sets it) the official ``DatabricksSubmitRunOperator``
runs beside ours twice: once to show what a lost response costs it, once with the same ten tasks, to
show that its retry runs all ten again.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.providers.resumable.operators.databricks import (
    ResumableDatabricksRunNowOperator,
    ResumableDatabricksSubmitRunOperator,
)
from airflow.providers.resumable.version_compat import AIRFLOW_V_3_0_PLUS

if AIRFLOW_V_3_0_PLUS:
    from airflow.sdk import DAG
else:
    from airflow.models.dag import DAG

# 30 s is the official default; the demo polls the fake every second.
POLL_SECONDS = int(os.environ.get("RESUMABLE_DATABRICKS_POLL_SECONDS", "30"))
CLUSTER = {"spark_version": "15.4.x-scala2.12", "node_type_id": "i3.xlarge", "num_workers": 2}
NOTEBOOK = {"notebook_path": "/Shared/resumable/etl", "base_parameters": {"day": "{{ ds }}"}}


def ten_tasks(prefix: str) -> list[dict]:
    """A setup task, then nine notebook tasks that depend on it (and not on each other)."""
    setup = {"task_key": f"{prefix}_t1", "new_cluster": CLUSTER, "notebook_task": NOTEBOOK}
    rest = [
        {
            "task_key": f"{prefix}_t{n}",
            "depends_on": [{"task_key": f"{prefix}_t1"}],
            "new_cluster": CLUSTER,
            "notebook_task": NOTEBOOK,
        }
        for n in range(2, 11)
    ]
    return [setup, *rest]


with DAG(
    dag_id="example_resumable_databricks",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "resumable", "databricks"],
    doc_md=__doc__,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=1), "polling_period_seconds": POLL_SECONDS},
) as dag:
    submit_notebook_run = ResumableDatabricksSubmitRunOperator(
        task_id="submit_notebook_run",
        new_cluster=CLUSTER,
        notebook_task=NOTEBOOK,
        timeout_seconds=3600,
    )
    run_nightly_job = ResumableDatabricksRunNowOperator(
        task_id="run_nightly_job",
        job_name="resumable-demo-nightly",
        job_parameters={"day": "{{ ds }}"},
    )
    submit_deferrable_run = ResumableDatabricksSubmitRunOperator(
        task_id="submit_deferrable_run",
        new_cluster=CLUSTER,
        notebook_task=NOTEBOOK,
        deferrable=True,
    )
    repair_ten_task_run = ResumableDatabricksSubmitRunOperator(
        task_id="repair_ten_task_run", run_name="repair_ten_task_run", tasks=ten_tasks("ours")
    )
    submit_notebook_run >> run_nightly_job >> submit_deferrable_run >> repair_ten_task_run

    if os.environ.get("RESUMABLE_DEMO_COMPARE_OFFICIAL"):
        from airflow.providers.databricks.operators.databricks import DatabricksSubmitRunOperator

        official_submit_run = DatabricksSubmitRunOperator(
            task_id="official_submit_run", new_cluster=CLUSTER, notebook_task=NOTEBOOK
        )
        official_ten_task_run = DatabricksSubmitRunOperator(
            task_id="official_ten_task_run", run_name="official_ten_task_run", tasks=ten_tasks("official")
        )
        repair_ten_task_run >> official_submit_run >> official_ten_task_run
