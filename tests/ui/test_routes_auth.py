"""
The Resumable plugin's HTTP routes against a real api-server, with Airflow's auth manager.

The first tests check the harness itself (the api-server answers, logins work, the seeded task
instances are there, the test auth manager keeps ``outsider`` out of the DAGs): they pass whether or
not the plugin is installed. The others are the plugin's contract: the state JSON per seeded state,
and who may read and change what (no credentials 401, no access to the DAG 403, read-only 403 on the
actions, and nothing changed by a refused action).
"""

from __future__ import annotations

import json
import re
from urllib.parse import quote

import pytest

from airflow.providers.resumable.compat.airflow import clear_discards_task_state
from tests.ui import harness
from tests.ui.seed import (
    FAILED_MID_WALK,
    INCREMENTAL_WINDOW,
    RUNNING_JOB,
    SUCCEEDED,
    UNRELATED,
    WALK_BATCH,
    WALK_DIES_AT,
    native_store,
    stored_state,
    stored_watermarks,
)

pytestmark = pytest.mark.skipif(harness.skip_reason() is not None, reason=harness.skip_reason() or "")


def q(value: str) -> str:
    return quote(value, safe="")


def state_path(s) -> str:
    return (
        f"/resumable/api/dags/{q(s.dag_id)}/dagRuns/{q(s.run_id)}/taskInstances/{q(s.task_id)}/state"
        f"?map_index={s.map_index}"
    )


def reset_path(s) -> str:
    return f"/resumable/api/dags/{q(s.dag_id)}/watermarks/{q(s.task_id)}/reset?map_index={s.map_index}"


def checkpoint_of(body: dict):
    """The state JSON's checkpoint: ``checkpoint`` (the contract), or the first of ``checkpoints`` (one per walk)."""
    if "checkpoint" in body:
        return body["checkpoint"]
    return (body.get("checkpoints") or [None])[0]


def routes(s) -> list[tuple[str, str, dict]]:
    """(method, path, request kwargs) of every plugin route, for the task instance ``s``."""
    return [
        ("GET", f"/resumable/tab?{s.query}", {}),
        ("GET", state_path(s), {}),
        ("DELETE", state_path(s), {}),
        ("POST", reset_path(s), {"json": {"to": 1, "name": None}}),
        ("GET", "/resumable/static/tab.js", {}),
    ]


# ------------------------------------------------------------------------------- the harness itself


def test_the_api_server_answers_and_every_user_logs_in(ui_server):
    assert ui_server.request("GET", "/api/v2/monitor/health", None).status_code == 200
    for user in harness.USERS:
        assert ui_server.token(user).count(".") == 2, f"{user}'s token is a JWT"


@pytest.mark.parametrize("name", [RUNNING_JOB, SUCCEEDED, FAILED_MID_WALK, INCREMENTAL_WINDOW])
def test_the_seeded_task_instance_is_in_airflow(ui_server, scenarios, name):
    s = scenarios[name]
    response = ui_server.request(
        "GET", f"/api/v2/dags/{q(s.dag_id)}/dagRuns/{q(s.run_id)}/taskInstances/{q(s.task_id)}", "admin"
    )
    assert response.status_code == 200, response.text
    assert response.json()["state"] == s.ti_state
    expected = {RUNNING_JOB: "failed", SUCCEEDED: "success", FAILED_MID_WALK: "failed", INCREMENTAL_WINDOW: "failed"}
    assert s.ti_state == expected[name]


def test_the_seeded_state_is_stored(scenarios):
    running, walk, incremental = scenarios[RUNNING_JOB], scenarios[FAILED_MID_WALK], scenarios[INCREMENTAL_WINDOW]
    values = {row["key"]: row["value"] for row in stored_state(running.dag_id, running.run_id)}
    assert any(isinstance(v, dict) and v.get("external_id") == running.facts["external_id"] for v in values.values())
    checkpoint = walk.facts["checkpoint"]
    assert (checkpoint["batches_done"], checkpoint["data"]) == (WALK_DIES_AT, {"next_item": WALK_DIES_AT * WALK_BATCH})
    (mark,) = stored_watermarks(incremental.dag_id)
    assert mark["value"] == 2
    assert incremental.facts["window"]["since"] == 2, "the failed run planned its window from the committed mark"


def test_the_test_auth_manager_keeps_the_outsider_out_of_the_dags(ui_server, scenarios):
    walk, unrelated = scenarios[FAILED_MID_WALK], scenarios[UNRELATED]
    assert ui_server.request("GET", f"/api/v2/dags/{q(walk.dag_id)}", "viewer").status_code == 200
    assert ui_server.request("GET", f"/api/v2/dags/{q(walk.dag_id)}", "outsider").status_code == 403
    assert ui_server.request("GET", f"/api/v2/dags/{q(unrelated.dag_id)}", "outsider").status_code == 200
    assert ui_server.request("GET", f"/api/v2/dags/{q(walk.dag_id)}", None).status_code == 401


def test_the_plugin_app_is_mounted(ui_server, scenarios):
    """The provider's plugin serves the tab from inside Airflow's own API server."""
    response = ui_server.request("GET", f"/resumable/tab?{scenarios[FAILED_MID_WALK].query}", "admin")
    assert response.status_code == 200, (response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("text/html")


# ------------------------------------------------------------------------------ the plugin: reading


def test_the_tab_takes_the_map_index_placeholder_airflow_leaves_for_an_unmapped_task(ui_server, scenarios):
    """
    Airflow's UI (3.3, 3.4) replaces ``{MAP_INDEX}`` in the view's href only on a mapped task
    instance's route (``.../mapped/M/plugin/resumable``): an unmapped one's iframe asks for
    ``map_index={MAP_INDEX}`` as is, which is the task instance of map index -1.
    """
    s = scenarios[FAILED_MID_WALK]
    query = s.query.replace("map_index=-1", "map_index={MAP_INDEX}")
    response = ui_server.request("GET", f"/resumable/tab?{query}", "admin")
    assert response.status_code == 200, (response.status_code, response.text[:300])


def test_state_json_of_a_running_job_says_a_clear_reattaches(ui_server, scenarios):
    s = scenarios[RUNNING_JOB]
    response = ui_server.request("GET", state_path(s), "admin")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["dag_id"], body["run_id"], body["task_id"], body["map_index"]) == (
        s.dag_id,
        s.run_id,
        s.task_id,
        s.map_index,
    )
    assert body["ti_state"] == "failed"
    assert body["job"]["external_id"] == s.facts["external_id"]
    assert body["job"]["token"] == s.facts["token"]
    assert body["job"]["history"], "the job record's history"
    assert body["clear"]["action"].startswith("reattach"), body["clear"]
    assert "reattach" in body["clear"]["sentence"].lower()
    assert checkpoint_of(body) is None
    assert body["can_edit"] is True


def test_state_json_of_a_walk_that_failed_part_way(ui_server, scenarios):
    s = scenarios[FAILED_MID_WALK]
    body = ui_server.request("GET", state_path(s), "admin").json()
    checkpoint = checkpoint_of(body)
    assert checkpoint["batches_done"] == WALK_DIES_AT
    assert str(WALK_DIES_AT * WALK_BATCH) in str(checkpoint["cursor"])
    assert checkpoint["complete"] is False
    if native_store() and clear_discards_task_state():
        # Airflow 3.4's Clear discards the native store: the walk starts over, unless the clear keeps it.
        assert body["clear"]["action"] == "start_walk", body["clear"]
    else:
        assert "resume" in body["clear"]["action"], body["clear"]
    assert re.search(rf"resum|batch {WALK_DIES_AT}\b", body["clear"]["sentence"], re.IGNORECASE), body["clear"]
    assert body["job"] is None


def test_state_json_of_an_incremental_run_with_its_window(ui_server, scenarios):
    s = scenarios[INCREMENTAL_WINDOW]
    body = ui_server.request("GET", state_path(s), "admin").json()
    (watermark,) = body["watermarks"]
    assert watermark["mark"] == 2
    assert watermark["window"] is not None
    assert "2" in str(watermark["window"]), "the window starts at the committed mark"
    assert s.facts["committed_by"] in json.dumps(watermark["commits"]), "the run that committed the mark"


def test_state_json_of_a_succeeded_job(ui_server, scenarios):
    s = scenarios[SUCCEEDED]
    body = ui_server.request("GET", state_path(s), "admin").json()
    assert body["ti_state"] == "success"
    if native_store():
        # The native store keeps the record (marked finished): shown, and a clear submits a new job.
        assert body["job"]["external_id"] == s.facts["external_id"], body["job"]
    else:
        # The Variable backend drops a succeeded task instance's state.
        assert (body["job"], checkpoint_of(body)) == (None, None), body
    assert body["clear"]["action"] in ("submit", "start_afresh", "nothing"), body["clear"]
    if body["job"] is not None:
        assert re.search(r"afresh|new job|submit", body["clear"]["sentence"], re.IGNORECASE), body["clear"]


# ------------------------------------------------------------------------------- the plugin: access


@pytest.mark.parametrize("route", range(5), ids=["tab", "state", "delete", "reset", "static"])
def test_no_credentials_get_401(ui_server, scenarios, route):
    method, path, kwargs = routes(scenarios[FAILED_MID_WALK])[route]
    response = ui_server.request(method, path, None, **kwargs)
    assert response.status_code == 401, (method, path, response.status_code, response.text[:300])


@pytest.mark.parametrize("route", range(4), ids=["tab", "state", "delete", "reset"])
def test_a_user_who_may_not_read_the_dag_gets_nothing(ui_server, scenarios, route):
    s = scenarios[INCREMENTAL_WINDOW] if route == 3 else scenarios[FAILED_MID_WALK]
    before_state, before_marks = stored_state(s.dag_id, s.run_id), stored_watermarks(s.dag_id)
    method, path, kwargs = routes(s)[route]
    response = ui_server.request(method, path, "outsider", **kwargs)
    assert response.status_code in (401, 403), (method, path, response.status_code, response.text[:300])
    assert str(WALK_DIES_AT * WALK_BATCH) not in response.text
    assert stored_state(s.dag_id, s.run_id) == before_state
    assert stored_watermarks(s.dag_id) == before_marks


def test_the_static_files_name_no_dag_and_hold_no_state(ui_server, scenarios):
    """
    The tab's script and style belong to no DAG, so no DAG permission can guard them: a logged-in
    user who may read some DAG (``outsider`` reads one) gets them, and they hold nothing stored.
    """
    s = scenarios[FAILED_MID_WALK]
    response = ui_server.request("GET", "/resumable/static/tab.js", "outsider")
    assert response.status_code in (200, 401, 403), response.status_code
    assert s.dag_id not in response.text
    assert s.facts["checkpoint"]["saved_at"] not in response.text


def test_a_read_only_user_reads_but_may_not_delete_or_reset(ui_server, scenarios):
    walk, incremental = scenarios[FAILED_MID_WALK], scenarios[INCREMENTAL_WINDOW]
    before_state, before_marks = stored_state(walk.dag_id, walk.run_id), stored_watermarks(incremental.dag_id)
    read = ui_server.request("GET", state_path(walk), "viewer")
    assert read.status_code == 200, read.text
    assert read.json()["can_edit"] is False
    assert ui_server.request("DELETE", state_path(walk), "viewer").status_code == 403
    reset = ui_server.request("POST", reset_path(incremental), "viewer", json={"to": 1, "name": None})
    assert reset.status_code == 403
    assert stored_state(walk.dag_id, walk.run_id) == before_state, "a refused delete deleted nothing"
    assert stored_watermarks(incremental.dag_id) == before_marks, "a refused reset moved nothing"
