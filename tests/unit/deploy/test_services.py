"""
The deployment suite's job services (tests/deploy/services.py) fail and hold a scenario's jobs by the
name the task gives them, so a clear finds a failed job, or a running one.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.deploy.scenarios import Scenario
from tests.deploy.services import Databricks, Faults, ToySystem

FAILED_JOB = f"{Scenario('toy', 'clear_after_job_failed').dag_id}/-1"
MARKED = f"{Scenario('toy', 'clear_after_mark').dag_id}/-1"


@pytest.fixture
def faults():
    return Faults(mark_failed=lambda s, i: None)


def _toy(faults: Faults) -> ToySystem:
    system = ToySystem(run_polls=2)
    system.plan = faults
    return system


def _finish(read, job, limit=10):
    state = None
    for _ in range(limit):
        state = read(job)
        if state not in ("PENDING", "RUNNING"):
            break
    return state


def test_the_toy_fails_the_first_job_only(faults):
    system = _toy(faults)
    first, _ = system.submit({"scenario": FAILED_JOB}, "t1")
    again, _ = system.submit({"scenario": FAILED_JOB}, "t1")
    second, _ = system.submit({"scenario": FAILED_JOB}, "t2")
    assert first == again, "the same token is the same job"
    assert _finish(system.status, first) == "FAILED"
    assert _finish(system.status, second) == "SUCCEEDED"
    assert [j["state"] for j in system.ledger()[FAILED_JOB]] == ["FAILED", "SUCCEEDED"]


def test_the_toy_holds_the_marked_job_until_let_go(faults):
    system = _toy(faults)
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    faults.register(MARKED, 1, proc.pid, 1)  # the marked try (gone by the time anyone clears)
    job, _ = system.submit({"scenario": MARKED}, "t1")
    assert _finish(system.status, job, limit=20) == "RUNNING", "its second poll was the mark; no later try yet"
    assert faults.kills[MARKED].action == "mark_failed"
    faults.register(MARKED, 2, proc.pid, 1)
    assert _finish(system.status, job) == "SUCCEEDED"


def test_databricks_fails_the_first_run_and_holds_the_marked_one(faults):
    service = Databricks(pending_polls=1, running_polls=2)
    service.plan = faults
    name = f"{Scenario('databricks', 'clear_after_job_failed').dag_id}/-1"
    runs = [
        service.handle("POST", "jobs/runs/submit", {"run_name": name, "notebook_task": {}, "idempotency_token": t})
        for t in ("a", "b")
    ]

    def result(run_id: int) -> str | None:
        state = service.handle("GET", "jobs/runs/get", {"run_id": run_id})["state"]
        return state.get("result_state", state["life_cycle_state"])

    assert [_finish(result, r["run_id"]) for r in runs] == ["FAILED", "SUCCESS"]

    marked = f"{Scenario('databricks', 'clear_after_mark').dag_id}/-1"
    run = service.handle("POST", "jobs/runs/submit", {"run_name": marked, "notebook_task": {}})["run_id"]
    assert _finish(result, run, limit=20) == "RUNNING"


def test_emr_fails_the_first_run_and_holds_the_marked_one(faults, monkeypatch):
    import boto3
    from moto import mock_aws

    from tests.deploy.services import Emr
    from tests.support.fake_aws import REGION, ROLE_ARN, create_application

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    emr = Emr(running_reads=1)
    emr.plan = faults
    with mock_aws(), emr.installed():
        client = boto3.client("emr-serverless", region_name=REGION)
        app = create_application(client)
        client.start_application(applicationId=app)

        def start(name: str, token: str) -> str:
            driver = {"sparkSubmit": {"entryPoint": "local:///pi.py"}}
            return client.start_job_run(
                applicationId=app, clientToken=token, executionRoleArn=ROLE_ARN, jobDriver=driver, name=name
            )["jobRunId"]

        def state(run_id: str) -> str:
            return client.get_job_run(applicationId=app, jobRunId=run_id)["jobRun"]["state"]

        failing = f"{Scenario('emr', 'clear_after_job_failed').dag_id}/-1"
        runs = [start(failing, "a"), start(failing, "b")]
        assert [_finish(state, r) for r in runs] == ["FAILED", "SUCCESS"]
        held = start(f"{Scenario('emr', 'clear_after_mark').dag_id}/-1", "c")
        assert _finish(state, held, limit=20) == "RUNNING"
