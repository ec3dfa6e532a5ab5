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


# ---- multi-task runs and repairs (demo/fake_databricks_tasks.py) -------------------------------------

TEN = [{"task_key": "t1"}] + [{"task_key": f"t{i}", "depends_on": [{"task_key": f"t{i - 1}"}]} for i in range(2, 11)]


def finish(api, run_id):
    """Poll until the run terminates (the fake advances one step per runs/get)."""
    for _ in range(10):
        run = get(api, "runs/get", run_id=run_id).json()
        if run["state"]["life_cycle_state"] == "TERMINATED":
            return run
    raise AssertionError(f"run {run_id} did not terminate")


def repair(api, run_id, **body):
    return post(api, "runs/repair", {"run_id": run_id, "rerun_all_failed_tasks": True, **body})


def history(api, run_id):
    return get(api, "runs/get", run_id=run_id, include_history="true").json()["repair_history"]


def test_a_failure_at_task_9_of_10_is_repaired_by_running_only_what_did_not_succeed(api):
    api.fake.fail_task_once("t9")
    run_id = post(api, "runs/submit", {"run_name": "etl", "tasks": TEN}).json()["run_id"]
    run = finish(api, run_id)
    assert run["state"]["result_state"] == "FAILED"
    states = {t["task_key"]: t["state"]["result_state"] for t in run["tasks"]}
    assert states["t8"] == "SUCCESS"
    assert (states["t9"], states["t10"]) == ("FAILED", "UPSTREAM_FAILED")
    assert api.fake.executed(run_id) == [f"t{i}" for i in range(1, 10)], "t10 never ran"

    repair_id = repair(api, run_id).json()["repair_id"]
    run = finish(api, run_id)
    assert run["run_id"] == run_id
    assert run["state"]["result_state"] == "SUCCESS"
    assert api.fake.executed(run_id)[9:] == ["t9", "t10"], "the failed task and its dependant, nothing else"
    attempts = {t["task_key"]: t["attempt_number"] for t in run["tasks"]}
    assert (attempts["t8"], attempts["t9"], attempts["t10"]) == (0, 1, 1)
    assert [h["type"] for h in history(api, run_id)] == ["ORIGINAL", "REPAIR"]
    assert history(api, run_id)[-1]["id"] == repair_id


def test_the_repair_history_starts_with_the_original_run(api):
    """The shape ``DatabricksHook.get_latest_repair_id`` reads: one entry (the original) means no repair yet."""
    api.fake.plan_results("FAILED")
    run_id = post(api, "runs/submit", SUBMIT).json()["run_id"]
    finish(api, run_id)
    assert len(history(api, run_id)) == 1
    assert "repair_history" not in get(api, "runs/get", run_id=run_id).json(), "only with include_history"


def test_repair_only_of_a_run_that_is_not_in_progress(api):
    run_id = post(api, "runs/submit", SUBMIT).json()["run_id"]
    response = repair(api, run_id)
    assert response.status_code == 400
    assert response.json()["error_code"] == "INVALID_STATE"
    assert history_len(api, run_id) == 1


def history_len(api, run_id):
    return len(history(api, run_id))


def test_a_second_repair_needs_the_latest_repair_id_and_a_stale_one_is_refused(api):
    api.fake.fail_task_once("etl", times=2)
    run_id = post(api, "runs/submit", SUBMIT).json()["run_id"]
    finish(api, run_id)
    first = repair(api, run_id).json()["repair_id"]
    finish(api, run_id)  # fails again
    missing = repair(api, run_id)
    assert missing.status_code == 400
    assert missing.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "latest repair ID needs to be provided" in missing.json()["message"]
    stale = repair(api, run_id, latest_repair_id=first - 1)
    assert stale.status_code == 400
    assert stale.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    second = repair(api, run_id, latest_repair_id=first).json()["repair_id"]
    assert second > first, "repair ids in order"
    finish(api, run_id)
    # Two tries that both read repair `first` cannot both repair: the second is refused as stale.
    assert repair(api, run_id, latest_repair_id=first).status_code == 400
    assert [h["type"] for h in history(api, run_id)] == ["ORIGINAL", "REPAIR", "REPAIR"]


def test_a_run_with_nothing_failed_has_nothing_to_repair(api):
    run_id = post(api, "runs/submit", SUBMIT).json()["run_id"]
    finish(api, run_id)
    response = repair(api, run_id)
    assert response.status_code == 400
    assert "no failed tasks" in response.json()["message"]


def test_rerun_tasks_with_dependants_and_unknown_tasks(api):
    run_id = post(api, "runs/submit", {"run_name": "etl", "tasks": TEN}).json()["run_id"]
    finish(api, run_id)
    assert post(api, "runs/repair", {"run_id": run_id, "rerun_tasks": ["t99"]}).status_code == 400
    both = post(api, "runs/repair", {"run_id": run_id, "rerun_tasks": ["t8"], "rerun_all_failed_tasks": True})
    assert both.status_code == 400
    post(api, "runs/repair", {"run_id": run_id, "rerun_tasks": ["t8"], "rerun_dependent_tasks": True})
    finish(api, run_id)
    assert api.fake.executed(run_id)[10:] == ["t8", "t9", "t10"]


def test_run_now_runs_the_jobs_tasks_and_task_output_is_per_task(api):
    job_id = api.fake.add_job("nightly", tasks=TEN[:3])
    api.fake.fail_task_once("t2")
    run_id = post(api, "run-now", {"job_id": job_id}).json()["run_id"]
    run = finish(api, run_id)
    failed = next(t for t in run["tasks"] if t["task_key"] == "t2")
    assert "t2" in get(api, "runs/get-output", run_id=failed["run_id"]).json()["error"]
    assert get(api, "runs/get-output", run_id=run_id).status_code == 400, "the parent of a multi-task run"


def test_a_cancelled_run_can_be_repaired(api):
    run_id = post(api, "runs/submit", {"run_name": "etl", "tasks": TEN[:2]}).json()["run_id"]
    post(api, "runs/cancel", {"run_id": run_id})
    assert finish(api, run_id)["state"]["result_state"] == "CANCELED"
    assert api.fake.executed(run_id) == []
    repair(api, run_id)
    assert finish(api, run_id)["state"]["result_state"] == "SUCCESS"
    assert api.fake.executed(run_id) == ["t1", "t2"]
