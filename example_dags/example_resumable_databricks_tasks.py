"""
Example DAG: a Databricks notebook, a Spark task and a SQL statement that a retry does not run twice.

* ``run_notebook``: ``ResumableDatabricksNotebookOperator``; a retry reattaches to the notebook run the
  earlier try submitted (every ``runs/submit`` carries a stored ``idempotency_token``).
* ``run_spark_task``: ``ResumableDatabricksTaskOperator``, the same for any task config, waiting in the
  triggerer (``deferrable=True``).
* ``load_sales``: ``ResumableDatabricksSQLStatementsOperator``; the statement id is stored once
  Databricks answers, so a retry follows the statement instead of inserting twice. Needs
  ``apache-airflow-providers-databricks`` with the official ``DatabricksSQLStatementsOperator`` (not
  7.0.0); on an older provider the DAG runs without this task.

Each operator is the official one with the class name changed. The connection ``databricks_default``
comes from the environment (``AIRFLOW_CONN_DATABRICKS_DEFAULT``); the tests point it at the local fake
(``demo/fake_databricks_workspace.py``).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.providers.resumable.operators.databricks_tasks import (
    ResumableDatabricksNotebookOperator,
    ResumableDatabricksTaskOperator,
)
from airflow.providers.resumable.version_compat import AIRFLOW_V_3_0_PLUS

if AIRFLOW_V_3_0_PLUS:
    from airflow.sdk import DAG
else:
    from airflow.models.dag import DAG

try:
    from airflow.providers.resumable.operators.databricks_sql import ResumableDatabricksSQLStatementsOperator
except ImportError:  # the installed Databricks provider has no DatabricksSQLStatementsOperator (7.0.0)
    ResumableDatabricksSQLStatementsOperator = None  # type: ignore[assignment,misc]

# 5 s is the official default for the task operators; the tests poll the fake without waiting.
POLL_SECONDS = int(os.environ.get("RESUMABLE_DATABRICKS_POLL_SECONDS", "5"))
CLUSTER = {"spark_version": "15.4.x-scala2.12", "node_type_id": "i3.xlarge", "num_workers": 2}

with DAG(
    dag_id="example_resumable_databricks_tasks",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "resumable", "databricks"],
    doc_md=__doc__,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=1), "polling_period_seconds": POLL_SECONDS},
) as dag:
    run_notebook = ResumableDatabricksNotebookOperator(
        task_id="run_notebook",
        notebook_path="/Shared/resumable/etl",
        source="WORKSPACE",
        new_cluster=CLUSTER,
        notebook_params={"day": "{{ ds }}"},
    )
    run_spark_task = ResumableDatabricksTaskOperator(
        task_id="run_spark_task",
        task_config={"spark_python_task": {"python_file": "dbfs:/resumable/aggregate.py", "parameters": ["{{ ds }}"]}},
        new_cluster=CLUSTER,
        deferrable=True,
    )
    run_notebook >> run_spark_task

    if ResumableDatabricksSQLStatementsOperator is not None:
        load_sales = ResumableDatabricksSQLStatementsOperator(
            task_id="load_sales",
            statement="INSERT INTO sales SELECT * FROM staged_sales WHERE day = :day",
            parameters=[{"name": "day", "value": "2026-01-01", "type": "DATE"}],
            warehouse_id="1234567890abcdef",
        )
        run_spark_task >> load_sales
