"""
The Resumable tab in a real browser: Airflow's own task-instance page in Debian's Chromium.

Each test opens the task instance's page in Airflow's UI (``/dags/D/runs/R/tasks/T``, mapped ones
``.../mapped/M``), whose ``plugin/resumable`` child route shows the plugin's tab in an iframe, and
checks what the tab shows for a seeded state (tests/ui/seed.py), then what its actions do. The
first tests check the harness itself (login, Airflow's page) and pass without the plugin.
Every wait is Playwright's auto-waiting ``expect`` (60 s); nothing sleeps.
"""

from __future__ import annotations

import contextlib
import re

import pytest

from tests.ui import harness
from tests.ui.seed import (
    DELETE_ME,
    FAILED_MID_WALK,
    INCREMENTAL_WINDOW,
    MAPPED_WALK,
    RESET_ME,
    RUNNING_JOB,
    SUCCEEDED,
    WALK_BATCH,
    WALK_DIES_AT,
    native_store,
    stored_state,
    stored_watermarks,
)

pytestmark = pytest.mark.skipif(harness.skip_reason() is not None, reason=harness.skip_reason() or "")


def expect(locator):
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def open_tab(ui_page, s, user="admin"):
    """The Resumable tab of ``s`` on Airflow's task-instance page, as ``user``: (page, the tab's frame)."""
    page = ui_page(user)
    page.goto(harness.tab_path(s.dag_id, s.run_id, s.task_id, s.map_index))
    return page, harness.tab_frame(page)


# ------------------------------------------------------------------------------- the harness itself


def test_a_logged_in_user_sees_airflows_task_instance_page(ui_page, scenarios):
    s = scenarios[FAILED_MID_WALK]
    page = ui_page("admin")
    response = page.goto(harness.ti_path(s.dag_id, s.run_id, s.task_id))
    assert response is not None
    assert response.ok, response.status
    expect(page.get_by_text(s.task_id).first).to_be_visible()
    expect(page.get_by_text(s.dag_id).first).to_be_visible()
    # The task instance's header: its operator and its try number come from the metadata DB.
    expect(page.get_by_text("ToyBatchOperator").first).to_be_visible()
    assert "login" not in page.url


def test_airflow_shows_a_mapped_task_instance_on_its_own_route(ui_page, scenarios):
    s = scenarios[MAPPED_WALK]
    page = ui_page("admin")
    path = harness.ti_path(s.dag_id, s.run_id, s.task_id, s.map_index)
    assert path.endswith(f"/tasks/{s.task_id}/mapped/{s.map_index}")
    response = page.goto(path)
    assert response is not None
    assert response.ok, response.status
    expect(page.get_by_text("ToyBatchOperator").first).to_be_visible()


def test_without_the_cookie_airflow_asks_for_a_login(ui_page, scenarios):
    s = scenarios[FAILED_MID_WALK]
    page = ui_page(None)
    page.goto(harness.ti_path(s.dag_id, s.run_id, s.task_id))
    expect(page).to_have_url(re.compile(r"login"))


# --------------------------------------------------------------------------- the tab, per state


def test_the_tab_is_listed_on_the_task_instance_page_and_opens(ui_page, scenarios):
    s = scenarios[RUNNING_JOB]
    page = ui_page("admin")
    page.goto(harness.ti_path(s.dag_id, s.run_id, s.task_id))
    page.get_by_role("tab", name=re.compile("Resumable", re.IGNORECASE)).or_(
        page.get_by_role("link", name=re.compile("Resumable", re.IGNORECASE))
    ).first.click()
    expect(page).to_have_url(re.compile(r"/plugin/resumable"))
    expect(harness.tab_frame(page).get_by_test_id("clear-sentence")).to_be_visible()


def test_a_running_job_the_clear_reattaches_to(ui_page, scenarios):
    s = scenarios[RUNNING_JOB]
    _, tab = open_tab(ui_page, s)
    expect(tab.get_by_test_id("clear-sentence")).to_contain_text("reattach", ignore_case=True)
    expect(tab.get_by_test_id("job-id")).to_contain_text(s.facts["external_id"])
    expect(tab.get_by_test_id("job-token")).to_contain_text(s.facts["token"])
    # One row per entry (a header row may come on top); tr whether or not the rows sit in a tbody.
    expect(tab.get_by_test_id("job-history").locator("tr")).not_to_have_count(0)
    expect(tab.get_by_test_id("empty")).to_have_count(0)


def test_a_walk_that_failed_part_way(ui_page, scenarios):
    s = scenarios[FAILED_MID_WALK]
    _, tab = open_tab(ui_page, s)
    expect(tab.get_by_test_id("checkpoint-batches")).to_contain_text(str(WALK_DIES_AT))
    expect(tab.get_by_test_id("checkpoint-cursor")).to_contain_text(str(WALK_DIES_AT * WALK_BATCH))
    expect(tab.get_by_test_id("clear-sentence")).to_contain_text(re.compile(r"resum|continu", re.IGNORECASE))
    expect(tab.get_by_test_id("entries")).to_contain_text("checkpoint")


def test_a_mapped_task_instance_shows_its_own_state(ui_page, scenarios):
    s = scenarios[MAPPED_WALK]
    page, tab = open_tab(ui_page, s)
    assert f"/mapped/{s.map_index}/plugin/resumable" in page.url
    expect(page.locator(harness.TAB_IFRAME)).to_have_attribute("src", re.compile(rf"map_index={s.map_index}\b"))
    expect(tab.get_by_test_id("checkpoint-batches")).to_contain_text(str(WALK_DIES_AT))


def test_an_incremental_run_with_its_window(ui_page, scenarios):
    s = scenarios[INCREMENTAL_WINDOW]
    _, tab = open_tab(ui_page, s)
    expect(tab.get_by_test_id("watermark")).to_have_count(1)
    expect(tab.get_by_test_id("watermark").get_by_test_id("watermark-mark")).to_contain_text("2")
    expect(tab.get_by_test_id("watermark").get_by_test_id("watermark-window")).to_contain_text("2")


def test_a_succeeded_job(ui_page, scenarios):
    s = scenarios[SUCCEEDED]
    _, tab = open_tab(ui_page, s)
    expect(tab.get_by_test_id("clear-sentence")).to_be_visible()
    if native_store():
        # The native store keeps the record (marked finished): shown, and a clear submits a new job.
        expect(tab.get_by_test_id("job-id")).to_contain_text(s.facts["external_id"])
        expect(tab.get_by_test_id("clear-sentence")).to_contain_text(re.compile(r"afresh|new job", re.IGNORECASE))
    else:
        # The Variable backend dropped the state at the success.
        expect(tab.get_by_test_id("empty")).to_be_visible()


# ---------------------------------------------------------------------------------- the actions


def test_delete_asks_first_and_deletes_only_when_confirmed(ui_page, scenarios):
    s = scenarios[DELETE_ME]
    assert stored_state(s.dag_id, s.run_id), "seeded with a checkpoint"
    _, tab = open_tab(ui_page, s)
    tab.get_by_test_id("delete-state").click()
    expect(tab.get_by_test_id("confirm-dialog")).to_be_visible()
    expect(tab.get_by_test_id("confirm-text")).to_contain_text("delete", ignore_case=True)
    tab.get_by_test_id("confirm-no").click()
    expect(tab.get_by_test_id("confirm-dialog")).to_be_hidden()
    expect(tab.get_by_test_id("checkpoint-batches")).to_contain_text(str(WALK_DIES_AT))
    assert stored_state(s.dag_id, s.run_id), "'no' deleted nothing"

    tab.get_by_test_id("delete-state").click()
    tab.get_by_test_id("confirm-yes").click()
    expect(tab.get_by_test_id("action-result")).to_be_visible()
    expect(tab.get_by_test_id("empty")).to_be_visible()
    assert stored_state(s.dag_id, s.run_id) == [], "the inventory (airflow resumable state list) finds nothing"


def test_reset_watermark_asks_first_and_resets_only_when_confirmed(ui_page, scenarios):
    s = scenarios[RESET_ME]
    _, tab = open_tab(ui_page, s)
    block = tab.get_by_test_id("watermark")
    expect(block.get_by_test_id("watermark-mark")).to_contain_text("2")
    block.get_by_test_id("reset-to").fill("1")
    block.get_by_test_id("reset-watermark").click()
    expect(tab.get_by_test_id("confirm-dialog")).to_be_visible()
    expect(tab.get_by_test_id("confirm-text")).to_contain_text("1")
    tab.get_by_test_id("confirm-no").click()
    expect(tab.get_by_test_id("confirm-dialog")).to_be_hidden()
    assert [m["value"] for m in stored_watermarks(s.dag_id)] == [2], "'no' moved nothing"

    block.get_by_test_id("reset-to").fill("1")
    block.get_by_test_id("reset-watermark").click()
    tab.get_by_test_id("confirm-yes").click()
    expect(tab.get_by_test_id("action-result")).to_be_visible()
    expect(tab.get_by_test_id("watermark").get_by_test_id("watermark-mark")).to_contain_text("1")
    assert [str(m["value"]) for m in stored_watermarks(s.dag_id)] == ["1"], "reset to what was typed"


def test_a_read_only_user_is_refused_the_actions(ui_page, scenarios):
    walk, incremental = scenarios[FAILED_MID_WALK], scenarios[INCREMENTAL_WINDOW]
    before_state, before_marks = stored_state(walk.dag_id, walk.run_id), stored_watermarks(incremental.dag_id)

    # The tab offers a reader no action (the API refuses them too: test_routes_auth.py).
    _, tab = open_tab(ui_page, walk, user="viewer")
    expect(tab.get_by_test_id("checkpoint-batches")).to_contain_text(str(WALK_DIES_AT))
    expect(tab.get_by_test_id("read-only")).to_be_visible()
    expect(tab.get_by_test_id("delete-state")).to_have_count(0)

    _, tab = open_tab(ui_page, incremental, user="viewer")
    expect(tab.get_by_test_id("watermark-mark")).to_contain_text("2")
    expect(tab.get_by_test_id("reset-watermark")).to_have_count(0)
    expect(tab.get_by_test_id("delete-state")).to_have_count(0)

    assert stored_state(walk.dag_id, walk.run_id) == before_state
    assert stored_watermarks(incremental.dag_id) == before_marks


def test_a_user_without_access_to_the_dag_sees_no_state(ui_page, ui_server, scenarios):
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    s = scenarios[FAILED_MID_WALK]
    page = ui_page("outsider")
    # The tab's own page, opened directly: refused.
    response = page.goto(f"{ui_server.url}/resumable/tab?{s.query}")
    assert response is not None
    assert response.status in (401, 403), response.status
    expect(page.locator("body")).not_to_contain_text(str(WALK_DIES_AT * WALK_BATCH))
    # Airflow's page of the task instance ("No Task Instance found" for this user): whatever the
    # tab's iframe shows there, none of the stored state.
    page.goto(harness.tab_path(s.dag_id, s.run_id, s.task_id))
    # A wait, not an assertion: Airflow may draw no iframe at all for a task instance it hides.
    with contextlib.suppress(PlaywrightTimeoutError):
        page.locator(harness.TAB_IFRAME).wait_for(state="attached", timeout=20_000)
    if page.locator(harness.TAB_IFRAME).count():
        tab = harness.tab_frame(page)
        expect(tab.locator("body")).to_be_attached()
        expect(tab.locator("body")).not_to_contain_text(s.facts["checkpoint"]["saved_at"])
        for testid in ("checkpoint-batches", "checkpoint-cursor", "entries", "delete-state"):
            expect(tab.get_by_test_id(testid)).to_have_count(0)
    expect(page.locator("body")).not_to_contain_text(s.facts["checkpoint"]["saved_at"])
