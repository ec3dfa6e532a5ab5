"""The fake Jobs API keeps the promises the operators' tests rely on; if it did not, they would prove nothing."""

from __future__ import annotations

import pytest
import requests

from demo.fake_databricks import FakeDatabricks, FakeDatabricksServer

AUTH = {"Authorization": "Bearer t"}


@pytest.fixture
def api():
    with FakeDatabricksServer(FakeDatabricks()) as server:
        yield server


def post(api, endpoint, body, **kwargs):
    return requests.post(f"{api.url}/api/2.2/jobs/{endpoint}", json=body, headers=AUTH, timeout=5, **kwargs)


def get(api, endpoint, **params):
    return requests.get(f"{api.url}/api/2.2/jobs/{endpoint}", params=params, headers=AUTH, timeout=5)


SUBMIT = {"run_name": "etl", "notebook_task": {"notebook_path": "/x"}}


def test_an_idempotency_token_returns_the_first_run(api):
    first = post(api, "runs/submit", {**SUBMIT, "idempotency_token": "tok"}).json()
    again = post(api, "runs/submit", {**SUBMIT, "idempotency_token": "tok"}).json()
    other = post(api, "runs/submit", SUBMIT).json()
    assert first["run_id"] == again["run_id"] != other["run_id"]
    assert len(api.fake.runs) == 2


def test_tokens_over_64_characters_are_refused(api):
    response = post(api, "runs/submit", {**SUBMIT, "idempotency_token": "x" * 65})
    assert response.status_code == 400
    assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"


def test_requests_without_a_token_are_refused(api):
    assert requests.get(f"{api.url}/api/2.2/jobs/runs/get?run_id=1", timeout=5).status_code == 401


def test_a_run_goes_pending_running_terminated(api):
    api.fake.plan_results("FAILED")
    run_id = post(api, "runs/submit", SUBMIT).json()["run_id"]
    seen = [get(api, "runs/get", run_id=run_id).json()["state"] for _ in range(4)]
    assert [s["life_cycle_state"] for s in seen] == ["PENDING", "RUNNING", "RUNNING", "TERMINATED"]
    assert seen[-1]["result_state"] == "FAILED"


def test_a_cancelled_run_ends_canceled(api):
    run_id = post(api, "runs/submit", SUBMIT).json()["run_id"]
    post(api, "runs/cancel", {"run_id": run_id})
    state = get(api, "runs/get", run_id=run_id).json()["state"]
    assert state == {"life_cycle_state": "TERMINATED", "result_state": "CANCELED", "state_message": "Run cancelled."}


def test_an_expired_run_is_404(api):
    run_id = post(api, "runs/submit", SUBMIT).json()["run_id"]
    api.fake.expire(run_id)
    response = get(api, "runs/get", run_id=run_id)
    assert response.status_code == 404
    assert response.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"


def test_a_dropped_response_still_creates_the_run(api):
    api.fake.drop_responses("runs/submit")
    with pytest.raises(requests.ConnectionError):
        post(api, "runs/submit", SUBMIT)
    assert len(api.fake.runs) == 1


def test_a_burst_of_errors_does_nothing_then_passes(api):
    api.fake.fail_requests("runs/submit", 2, status=429)
    codes = [post(api, "runs/submit", SUBMIT).status_code for _ in range(3)]
    assert codes == [429, 429, 200]
    assert len(api.fake.runs) == 1
    assert api.fake.count("jobs/runs/submit") == 3


def test_run_now_needs_a_known_job_and_lists_it_by_name(api):
    assert post(api, "run-now", {"job_id": 9}).status_code == 400
    job_id = api.fake.add_job("nightly")
    assert get(api, "list", name="nightly").json()["jobs"][0]["job_id"] == job_id
    run = get(api, "runs/get", run_id=post(api, "run-now", {"job_id": job_id}).json()["run_id"]).json()
    assert run["job_id"] == job_id


def test_faults_and_state_over_http(api):
    requests.post(
        f"{api.url}/fake/faults", json={"fail": {"runs/get": [503, 1]}, "result_states": ["FAILED"]}, timeout=5
    )
    run_id = post(api, "runs/submit", SUBMIT).json()["run_id"]
    assert get(api, "runs/get", run_id=run_id).status_code == 503
    state = requests.get(f"{api.url}/fake/state", timeout=5).json()
    assert state["runs"][0]["run_id"] == run_id
    assert [r["endpoint"] for r in state["requests"]] == ["jobs/runs/submit", "jobs/runs/get"]


def test_a_fault_can_target_one_run_name(api):
    api.fake.drop_responses("runs/submit@other")
    assert post(api, "runs/submit", SUBMIT).status_code == 200
    with pytest.raises(requests.ConnectionError):
        post(api, "runs/submit", {**SUBMIT, "run_name": "other"})
