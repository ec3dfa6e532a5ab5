"""The fake's task runs and SQL statements keep the promises the drop-ins' tests rely on."""

from __future__ import annotations

import pytest
import requests

from demo.fake_databricks import FakeDatabricksServer
from demo.fake_databricks_workspace import FakeDatabricksWorkspace

AUTH = {"Authorization": "Bearer t"}


@pytest.fixture
def api():
    with FakeDatabricksServer(FakeDatabricksWorkspace()) as server:
        yield server


def jobs(api, method, endpoint, **body):
    call = requests.post if method == "POST" else requests.get
    kwargs = {"json": body} if method == "POST" else {"params": body}
    return call(f"{api.url}/api/2.2/jobs/{endpoint}", headers=AUTH, timeout=5, **kwargs)


def statements(api, method, path="", body=None):
    call = requests.post if method == "POST" else requests.get
    return call(f"{api.url}/api/2.0/sql/statements{path}", json=body, headers=AUTH, timeout=5)


class TestTaskRuns:
    """The base's task runs (``demo/fake_databricks_tasks.py``), as the Notebook and Task drop-ins call them."""

    def test_a_single_task_submit_has_one_task_run_keyed_by_its_run_name(self, api):
        run_id = jobs(api, "POST", "runs/submit", run_name="k1", notebook_task={"notebook_path": "/x"}).json()["run_id"]
        (task,) = jobs(api, "GET", "runs/get", run_id=run_id).json()["tasks"]
        assert task["task_key"] == "k1"
        assert task["run_id"] != run_id, "a task run has its own id"
        assert [t.run_id for t in api.fake.tasks_of(run_id)] == [task["run_id"]]
        assert list(api.fake.runs) == [run_id], "task runs are not counted as runs"

    def test_a_task_run_answers_by_its_own_id_and_its_parent_follows(self, api):
        api.fake.plan_results("FAILED")
        run_id = jobs(api, "POST", "runs/submit", run_name="r", tasks=[{"task_key": "load"}]).json()["run_id"]
        (task_run_id,) = [t.run_id for t in api.fake.tasks_of(run_id)]
        seen = [jobs(api, "GET", "runs/get", run_id=task_run_id).json() for _ in range(4)]
        assert [s["state"]["life_cycle_state"] for s in seen] == ["PENDING", "RUNNING", "RUNNING", "TERMINATED"]
        last = seen[-1]
        assert (last["run_id"], last["task_key"], last["state"]["result_state"]) == (task_run_id, "load", "FAILED")
        assert (last["job_id"], last["run_name"]) == (None, "r"), "its parent's job and name"
        assert [t["run_id"] for t in last["tasks"]] == [task_run_id], "its own entry, where errors are read"
        parent = jobs(api, "GET", "runs/get", run_id=run_id).json()
        assert parent["state"]["life_cycle_state"] == "TERMINATED"
        assert parent["state"]["result_state"] == "FAILED"
        assert "load" in jobs(api, "GET", "runs/get-output", run_id=task_run_id).json()["error"]

    def test_an_unknown_run_id_is_404(self, api):
        response = jobs(api, "GET", "runs/get", run_id=424242)
        assert response.status_code == 404
        assert response.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"

    def test_the_same_token_returns_the_same_run_and_no_new_task_runs(self, api):
        body = {"run_name": "k", "notebook_task": {"notebook_path": "/x"}, "idempotency_token": "tok"}
        first = jobs(api, "POST", "runs/submit", **body).json()["run_id"]
        assert jobs(api, "POST", "runs/submit", **body).json()["run_id"] == first
        assert [len(api.fake.tasks_of(run_id)) for run_id in api.fake.runs] == [1]

    def test_cancelling_the_parent_cancels_its_tasks(self, api):
        run_id = jobs(api, "POST", "runs/submit", run_name="k", tasks=[{"task_key": "a"}, {"task_key": "b"}]).json()
        jobs(api, "POST", "runs/cancel", run_id=run_id["run_id"])
        state = jobs(api, "GET", "runs/get", run_id=run_id["run_id"]).json()["state"]
        assert state["result_state"] == "CANCELED"
        assert [t.result_state for t in api.fake.tasks_of(run_id["run_id"])] == ["CANCELED", "CANCELED"]
        assert api.fake.executed(run_id["run_id"]) == []

    def test_cancelling_a_task_run_cancels_that_task_only(self, api):
        run_id = jobs(api, "POST", "runs/submit", run_name="k", tasks=[{"task_key": "a"}, {"task_key": "b"}]).json()
        run_id = run_id["run_id"]
        a, _ = api.fake.tasks_of(run_id)
        assert jobs(api, "POST", "runs/cancel", run_id=a.run_id).status_code == 200
        assert jobs(api, "GET", "runs/get", run_id=a.run_id).json()["state"]["result_state"] == "CANCELED"
        api.fake.terminate(run_id)
        assert {t.task_key: t.result_state for t in api.fake.tasks_of(run_id)} == {"a": "CANCELED", "b": "SUCCESS"}
        assert api.fake.executed(run_id) == ["b"]
        assert jobs(api, "GET", "runs/get", run_id=run_id).json()["state"]["result_state"] == "CANCELED"

    def test_a_failed_single_task_run_is_repaired_in_place(self, api):
        """The repair the RunNow / SubmitRun drop-ins ask for, on the runs/submit shape the Notebook drop-in sends."""
        api.fake.fail_task_once("k")
        run_id = jobs(api, "POST", "runs/submit", run_name="k", notebook_task={"notebook_path": "/x"}).json()["run_id"]
        refused = jobs(api, "POST", "runs/repair", run_id=run_id, rerun_all_failed_tasks=True)
        assert refused.status_code == 400, "only a run that is not in progress"
        api.fake.terminate(run_id)
        (failed,) = api.fake.tasks_of(run_id)
        failed_id = failed.run_id
        assert jobs(api, "POST", "runs/repair", run_id=run_id, rerun_all_failed_tasks=True).status_code == 200
        api.fake.terminate(run_id)
        (task,) = jobs(api, "GET", "runs/get", run_id=run_id).json()["tasks"]
        assert (task["attempt_number"], task["state"]["result_state"]) == (1, "SUCCESS")
        assert task["run_id"] != failed_id, "the repair's attempt has its own task run id"
        assert api.fake.executed(run_id) == ["k", "k"]


class TestStatements:
    BODY = {"statement": "SELECT 1", "warehouse_id": "wh", "wait_timeout": "0s"}

    def test_no_idempotency_the_same_body_twice_runs_twice(self, api):
        ids = {statements(api, "POST", body=self.BODY).json()["statement_id"] for _ in range(2)}
        assert len(ids) == 2 == len(api.fake.statements)

    def test_a_statement_goes_pending_running_succeeded_then_closed(self, api):
        sid = statements(api, "POST", body=self.BODY).json()["statement_id"]
        seen = [statements(api, "GET", f"/{sid}").json()["status"]["state"] for _ in range(3)]
        assert seen == ["PENDING", "RUNNING", "SUCCEEDED"]
        api.fake.close(sid)
        assert statements(api, "GET", f"/{sid}").json()["status"]["state"] == "CLOSED"

    def test_a_planned_failure_carries_an_error(self, api):
        api.fake.plan_statement_outcomes("FAILED")
        sid = statements(api, "POST", body=self.BODY).json()["statement_id"]
        status = [statements(api, "GET", f"/{sid}").json()["status"] for _ in range(3)][-1]
        assert status["state"] == "FAILED"
        assert status["error"]["error_code"] == "BAD_REQUEST"

    def test_cancel_ends_a_running_statement_canceled(self, api):
        sid = statements(api, "POST", body=self.BODY).json()["statement_id"]
        assert statements(api, "POST", f"/{sid}/cancel").status_code == 200
        assert statements(api, "GET", f"/{sid}").json()["status"]["state"] == "CANCELED"

    @pytest.mark.parametrize(
        "body",
        [
            {"warehouse_id": "wh"},
            {"statement": "SELECT 1"},
            {"statement": "SELECT 1", "warehouse_id": "wh", "wait_timeout": "3s"},
            {"statement": "SELECT 1", "warehouse_id": "wh", "wait_timeout": "51s"},
        ],
    )
    def test_bad_requests_are_refused(self, api, body):
        response = statements(api, "POST", body=body)
        assert response.status_code == 400
        assert response.json()["error_code"] == "INVALID_PARAMETER_VALUE"
        assert api.fake.statements == {}

    def test_an_unknown_statement_is_404(self, api):
        response = statements(api, "GET", "/01f0-nope")
        assert response.status_code == 404
        assert response.json()["error_code"] == "NOT_FOUND"
