"""
The deployment suite's DAGs: one per scenario (``tests/deploy/scenarios.py``), built per family by
the files in ``tests/deploy/dags/`` so that a task process parses only its own family's imports.

The operators are the shipped ones (the toy and batch families are built on the mixins the way users
build theirs). The only test-only piece is ``on_execute_callback``: the task process tells the
driver its pid and its parent's pid (Airflow 3's supervisor, Airflow 2's ``airflow tasks run`` job)
before ``execute``, so the fake services can SIGKILL it at the scenario's moment.
"""

from __future__ import annotations

import os
import re
import time
from datetime import datetime, timedelta
from typing import Any

import requests

from airflow.providers.resumable.version_compat import AIRFLOW_V_3_0_PLUS, AirflowException, BaseOperator
from tests.deploy.scenarios import HELD_ANSWER_SECONDS, PAGE_SIZE, WALK_PAGES, Scenario, all_scenarios

if AIRFLOW_V_3_0_PLUS:
    from airflow.sdk import DAG
else:
    from airflow.models.dag import DAG

NAME = "{{ dag.dag_id }}/{{ ti.map_index }}"
CONTROL = os.environ.get("DEPLOY_CONTROL_URL", "http://127.0.0.1:9")
OUTPUT = os.environ.get("DEPLOY_OUTPUT_DIR", "/tmp/resumable-deploy")


def register(context: Any) -> None:
    ti = context["ti"]
    requests.post(
        f"{CONTROL}/start",
        json={
            "name": f"{ti.dag_id}/{ti.map_index}",
            "try": ti.try_number,
            "pid": os.getpid(),
            "ppid": os.getppid(),
        },
        timeout=60,
    ).raise_for_status()


def build(family: str) -> dict[str, Any]:
    dags: dict[str, Any] = {}
    only = os.environ.get("DEPLOY_ONLY")  # the driver's --only, so a debugging run starts no other DAG
    for scenario in all_scenarios():
        if scenario.family != family or (only and not re.search(only, scenario.dag_id)):
            continue
        with DAG(
            dag_id=scenario.dag_id,
            schedule="@once",
            start_date=datetime(2026, 1, 1),
            catchup=False,
            is_paused_upon_creation=False,
            tags=["resumable-deploy", family],
            default_args={
                # The driver sets them per leg (see Suite.leg_environment in run.py); a scenario whose
                # task must fail for good on its job's failure has none.
                "retries": int(os.environ.get("DEPLOY_RETRIES", "2")) if scenario.retries is None else scenario.retries,
                "retry_delay": timedelta(seconds=float(os.environ.get("DEPLOY_RETRY_DELAY", "1"))),
                "on_execute_callback": register,
            },
        ) as dag:
            BUILDERS[family](scenario)
        dags[scenario.dag_id] = dag
    return dags


# ---- toy: ResumableJobMixin ----------------------------------------------------------------------------------


def _toy(scenario: Scenario) -> None:
    from airflow.providers.resumable.mixins import JobNotFoundError
    from tests.support.toy_operators import ToyJobOperator

    class DeployToyJobOperator(ToyJobOperator):
        """Polls once a second, as a real operator would, so a person has time to act mid-poll."""

        def get_job_status(self, external_id: Any, context: Any) -> str:
            # The service holds a poll's answer while a person marks the task failed (services.py):
            # wait for it, as the official hooks do (Databricks 180 s; botocore asks again after 60 s).
            response = requests.get(f"{self.base_url}/jobs/{external_id}", timeout=HELD_ANSWER_SECONDS)
            if response.status_code == 404:
                raise JobNotFoundError(external_id)
            response.raise_for_status()
            return str(response.json()["state"])

        def poll_until_complete(self, external_id: Any, context: Any) -> None:
            while True:
                status = self.get_job_status(external_id, context)
                if not self.is_job_active(status):
                    break
                time.sleep(1)
            if not self.is_job_succeeded(status):
                raise AirflowException(f"job {external_id} ended {status}")

    # cancel_on_kill=True when marked failed (the other families, and the toy's clear_after_mark, keep
    # the default), so the suite sees both rows of docs/mixins.rst's table: this one cancels its job,
    # the others leave theirs running.
    common = {
        "task_id": "work",
        "base_url": os.environ.get("DEPLOY_TOY_URL", ""),
        "cancel_on_kill": scenario.cancel_on_kill,
    }
    if scenario.instances > 1:
        specs = [{"scenario": NAME, "part": i} for i in range(scenario.instances)]
        DeployToyJobOperator.partial(**common).expand(spec=specs)
    else:
        DeployToyJobOperator(spec={"scenario": NAME}, **common)


# ---- Databricks -----------------------------------------------------------------------------------------------


def _databricks(scenario: Scenario) -> None:
    from airflow.providers.resumable.operators.databricks import ResumableDatabricksSubmitRunOperator

    cluster = {"spark_version": "15.4.x-scala2.12", "node_type_id": "i3.xlarge", "num_workers": 1}
    common = {
        "task_id": "work",
        "databricks_conn_id": "databricks_deploy",
        "run_name": NAME,
        "new_cluster": cluster,
        "polling_period_seconds": 1,
        "databricks_retry_delay": 1,
    }
    if scenario.moment == "clear_after_job_failed":
        # The scenario promises a new job after a person clears a failed one; since issue 23 the
        # default repairs the run instead, which needs scenarios (and an evaluation) of its own.
        common["on_job_failure"] = "resubmit"
    if scenario.repairs_run:
        # A multi-task run (each task after the one before) whose last task the fake fails once; the
        # operator's default on_job_failure repairs it on the next try.
        keys = scenario.task_keys
        del common["new_cluster"]  # per task in a multi-task run
        tasks = [
            {
                "task_key": key,
                "new_cluster": cluster,
                "notebook_task": {"notebook_path": f"/Shared/deploy/{key}"},
                **({"depends_on": [{"task_key": keys[i - 1]}]} if i else {}),
            }
            for i, key in enumerate(keys)
        ]
        ResumableDatabricksSubmitRunOperator(tasks=tasks, **common)
    elif scenario.instances > 1:
        tasks = [{"notebook_path": f"/Shared/deploy/part-{i}"} for i in range(scenario.instances)]
        ResumableDatabricksSubmitRunOperator.partial(**common).expand(notebook_task=tasks)
    else:
        ResumableDatabricksSubmitRunOperator(notebook_task={"notebook_path": "/Shared/deploy/etl"}, **common)


# ---- EMR Serverless on moto -------------------------------------------------------------------------------------


def _emr(scenario: Scenario) -> None:
    from airflow.providers.resumable.operators.emr import ResumableEmrServerlessStartJobOperator

    common = {
        "task_id": "work",
        "aws_conn_id": "aws_deploy",
        "application_id": os.environ.get("DEPLOY_EMR_APPLICATION", "unset"),
        "execution_role_arn": os.environ.get("DEPLOY_EMR_ROLE", "unset"),
        "name": NAME,
        "waiter_delay": 1,
        "waiter_max_attempts": 120,
    }
    driver = {"sparkSubmit": {"entryPoint": "local:///usr/lib/spark/examples/src/main/python/pi.py"}}
    if scenario.instances > 1:
        drivers = [{"sparkSubmit": {**driver["sparkSubmit"], "entryPointArguments": [str(i)]}} for i in range(3)]
        ResumableEmrServerlessStartJobOperator.partial(**common).expand(job_driver=drivers)
    else:
        ResumableEmrServerlessStartJobOperator(job_driver=driver, **common)


# ---- HTTP: ResumablePaginatedHttpOperator --------------------------------------------------------------------


def _http(scenario: Scenario) -> None:
    from airflow.providers.resumable.operators.http import CursorPagination, ResumablePaginatedHttpOperator

    common = {
        "task_id": "work",
        "http_conn_id": "newsletter_deploy",
        "endpoint": "issues/cursor",
        "method": "GET",
        "headers": {"X-Client": NAME, "X-Try": "{{ ti.try_number }}"},
        "pagination": CursorPagination(cursor_path="meta.next_cursor"),
        "records_path": "data.items",
        "output_path": OUTPUT + "/{{ dag.dag_id }}/{{ ti.map_index }}",
        **scenario.checkpoint_kwargs,
    }
    if scenario.instances > 1:
        ResumablePaginatedHttpOperator.partial(**common).expand(data=[{"limit": PAGE_SIZE}] * scenario.instances)
    else:
        ResumablePaginatedHttpOperator(data={"limit": PAGE_SIZE}, **common)


# ---- run_batches: a StatefulOperatorMixin operator ---------------------------------------------------------


def _batches(scenario: Scenario) -> None:
    from airflow.providers.resumable.mixins import StatefulOperatorMixin

    class SinkBatchesOperator(StatefulOperatorMixin, BaseOperator):
        """Sends ``pages`` batches of records to the driver's sink, which stores batch i at slot i."""

        def __init__(self, *, pages: int, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.pages = pages

        def execute(self, context: Any) -> dict[str, int]:
            ti = context["ti"]
            name = f"{ti.dag_id}/{ti.map_index}"
            session = requests.Session()

            def process(cursor: dict[str, int], index: int) -> dict[str, int] | None:
                start = cursor["next"]
                items = list(range(start, start + PAGE_SIZE))
                body = {"name": name, "index": index, "try": ti.try_number, "items": items}
                session.post(f"{CONTROL}/batch", json=body, timeout=HELD_ANSWER_SECONDS).raise_for_status()
                return {"next": start + PAGE_SIZE} if index + 1 < self.pages else None

            run = self.run_batches(context, process, start={"next": 0})
            return {"batches": run.batches_done, "resumed_from": run.resumed_from}

    common = {"task_id": "work", **scenario.checkpoint_kwargs}
    if scenario.instances > 1:
        SinkBatchesOperator.partial(**common).expand(pages=[WALK_PAGES] * scenario.instances)
    else:
        SinkBatchesOperator(pages=WALK_PAGES, **common)


# ---- TaskFlow: @task.resumable --------------------------------------------------------------------------


def _task_decorator() -> Any:
    if AIRFLOW_V_3_0_PLUS:
        from airflow.sdk import task
    else:
        from airflow.decorators import task
    return task


def _taskflow(scenario: Scenario) -> None:
    """A loop over the batch indexes with ``handle.iterate``; each item sends one batch to the sink."""
    task = _task_decorator()

    @task.resumable(task_id="work", **scenario.checkpoint_kwargs)
    def work(batches: int, resumable: Any = None, ti: Any = None) -> dict[str, int]:
        name = f"{ti.dag_id}/{ti.map_index}"
        session = requests.Session()
        sent = 0
        # range(): the same items in the same order on every try, as iterate() needs.
        for index in resumable.iterate(range(batches)):
            items = list(range(index * PAGE_SIZE, (index + 1) * PAGE_SIZE))
            body = {"name": name, "index": index, "try": ti.try_number, "items": items}
            session.post(f"{CONTROL}/batch", json=body, timeout=HELD_ANSWER_SECONDS).raise_for_status()
            sent += 1
        return {"batches_sent": sent}

    if scenario.instances > 1:
        work.expand(batches=[WALK_PAGES] * scenario.instances)
    else:
        work(WALK_PAGES)


def _taskflow_job(scenario: Scenario) -> None:
    """One job on the toy job service with ``handle.job``: the function's own submit, status and poll."""
    from airflow.providers.resumable.mixins import JobNotFoundError

    task = _task_decorator()

    @task.resumable(task_id="work")
    def work(resumable: Any = None, ti: Any = None) -> dict[str, Any]:
        base = os.environ.get("DEPLOY_TOY_URL", "")
        spec = {"scenario": f"{ti.dag_id}/{ti.map_index}"}

        def submit(token: str | None) -> str:
            response = requests.post(f"{base}/jobs", json={"spec": spec, "token": token}, timeout=60)
            response.raise_for_status()
            return str(response.json()["job_id"])

        def find(token: str) -> str | None:
            response = requests.get(f"{base}/jobs", params={"token": token}, timeout=60)
            response.raise_for_status()
            return response.json()["job_id"]

        def status(job_id: Any) -> str:
            response = requests.get(f"{base}/jobs/{job_id}", timeout=HELD_ANSWER_SECONDS)
            if response.status_code == 404:
                raise JobNotFoundError(job_id)
            response.raise_for_status()
            return str(response.json()["state"])

        def poll(job_id: Any) -> None:
            # Once a second, as the toy operator family polls.
            while (state := status(job_id)) in ("PENDING", "RUNNING"):
                time.sleep(1)
            if state != "SUCCEEDED":
                raise AirflowException(f"job {job_id} ended {state}")

        return resumable.job(
            submit=submit,
            find=find,
            status=status,
            is_active=lambda state: state in ("PENDING", "RUNNING"),
            is_succeeded=lambda state: state == "SUCCEEDED",
            poll=poll,
            result=lambda job_id: {"job_id": job_id},
        )

    work()


BUILDERS = {
    "toy": _toy,
    "databricks": _databricks,
    "emr": _emr,
    "http": _http,
    "batches": _batches,
    "taskflow": _taskflow,
    "taskflow_job": _taskflow_job,
}
