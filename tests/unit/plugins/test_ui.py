"""
The tab's routes behind Airflow's real auth manager (SimpleAuthManager, real JWTs), with the state
reader replaced: who gets what, and that stored values are never sent as markup. The browser tests
(tests/ui/) run the same routes in a real API server against real stored state.
"""

from __future__ import annotations

import pytest

from airflow.providers.resumable.compat.api_server import ui_tab_supported

pytestmark = pytest.mark.skipif(not ui_tab_supported(), reason="the UI tab needs Airflow 3.1+")

DAG = "etl"
STATE = f"/resumable/api/dags/{DAG}/dagRuns/manual__1/taskInstances/export/state"
JOB = {
    "kind": "resumable-job",
    "seq": 1,
    "token": "rsm-abc",
    "generation": 3,
    "try_number": 1,
    "external_id": "<img src=x onerror=alert(1)>",
    "submitted_at": "2026-01-01T00:00:01+00:00",
}


@pytest.fixture
def client(monkeypatch):
    from airflow.api_fastapi.app import init_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from airflow.providers.resumable.inventory.state import NATIVE, TaskState
    from airflow.providers.resumable.plugins import ui
    from airflow.providers.resumable.state.base import TaskScope

    monkeypatch.setenv(
        "AIRFLOW__CORE__AUTH_MANAGER", "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
    )
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "admin:admin,viewer:viewer,outsider:admin")
    manager = init_auth_manager()
    allowed = manager.is_authorized_dag

    def is_authorized_dag(*, method, user, access_entity=None, details=None):
        # outsider is an admin of every DAG but this one: a user without access to the DAG.
        if user.get_name() == "outsider" and details is not None and details.id == DAG:
            return False
        return allowed(method=method, user=user, access_entity=access_entity, details=details)

    monkeypatch.setattr(manager, "is_authorized_dag", is_authorized_dag)
    monkeypatch.setattr("airflow.models.dag.DagModel.get_team_name", staticmethod(lambda dag_id, session=None: None))

    stored = {"values": {"job": dict(JOB)}, "deleted": []}
    scope = TaskScope(DAG, "manual__1", "export", -1)

    def read(session, filters, backends=None):
        if not stored["values"]:
            return []
        return [TaskState(NATIVE, scope, NATIVE, dict(stored["values"]), ti_state="failed")]

    def delete(session, state, key=None):
        stored["deleted"].append(sorted(state.values))
        stored["values"] = {}
        return [f"task_state_store key {k!r}" for k in sorted(state.values)]

    monkeypatch.setattr(ui.inventory, "read", read)
    monkeypatch.setattr(ui.inventory, "delete", delete)
    monkeypatch.setattr(ui.inventory, "task_instance_state", lambda *args: "failed")
    monkeypatch.setattr(ui, "_marks", lambda *args, **kwargs: [])

    app = FastAPI()
    for mounted in ui.fastapi_apps():
        app.mount(mounted["url_prefix"], mounted["app"])
    test_client = TestClient(app)
    tokens = {
        name: manager.generate_jwt(SimpleAuthManagerUser(username=name, role=role))
        for name, role in (("admin", "admin"), ("viewer", "viewer"), ("outsider", "admin"))
    }

    def call(method, path, user=None, **kwargs):
        headers = {"Authorization": f"Bearer {tokens[user]}"} if user else {}
        return test_client.request(method, path, headers=headers, **kwargs)

    call.stored = stored  # type: ignore[attr-defined]
    return call


ROUTES = [
    ("GET", f"/resumable/tab?dag_id={DAG}&run_id=manual__1&task_id=export&map_index=-1", None),
    ("GET", STATE, None),
    ("DELETE", STATE, {"confirm": True}),
    ("POST", f"/resumable/api/dags/{DAG}/watermarks/export/reset", {"to": 5, "confirm": True}),
]


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_no_credentials_get_401(client, method, path, body):
    assert client(method, path, json=body).status_code == 401


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_a_user_without_access_to_the_dag_gets_nothing(client, method, path, body):
    answer = client(method, path, "outsider", json=body)
    assert answer.status_code == 403
    assert "rsm-abc" not in answer.text
    assert client.stored["deleted"] == []


def test_a_reader_reads_but_may_not_act(client):
    answer = client("GET", STATE, "viewer")
    assert answer.status_code == 200, answer.text
    assert answer.json()["can_edit"] is False
    assert client("DELETE", STATE, "viewer", json={"confirm": True}).status_code == 403
    assert client.stored["deleted"] == []


def test_the_state_is_json_and_markup_in_it_stays_text(client):
    answer = client("GET", STATE, "admin")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    data = answer.json()
    assert data["can_edit"] is True
    assert data["job"]["external_id"] == JOB["external_id"]  # a string in JSON; the page renders text nodes only
    assert data["clear"]["action"] == "reattach"


def test_the_page_holds_no_stored_value(client):
    page = client("GET", f"/resumable/tab?dag_id={DAG}&run_id=manual__1&task_id=export&map_index=-1", "viewer")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "rsm-abc" not in page.text
    assert "onerror" not in page.text
    script = client("GET", "/resumable/static/tab.js", "viewer").text
    assert "innerHTML" not in script
    assert "insertAdjacentHTML" not in script
    assert client("GET", "/resumable/static/../ui.py", "viewer").status_code == 404


def test_a_delete_must_be_confirmed(client):
    assert client("DELETE", STATE, "admin", json={"confirm": False}).status_code == 400
    assert client.stored["deleted"] == []
    answer = client("DELETE", STATE, "admin", json={"confirm": True})
    assert answer.status_code == 200
    assert answer.json() == {"deleted": ["task_state_store key 'job'"]}
    assert client("GET", STATE, "admin").json()["clear"]["action"] == "nothing"
