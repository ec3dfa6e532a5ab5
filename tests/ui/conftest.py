"""
Package fixtures of the UI tests: the seeded task instances, one api-server, one Chromium.

The seeding runs first (in this process, against the leg's AIRFLOW_HOME), then the api-server
starts over the same metadata DB; both live as long as the tests of this package, as does the
browser. Not the whole session: Playwright's sync API keeps its event loop running in the main
thread until it stops, and every later test that calls ``asyncio.run()`` would fail on it.
Everything is skipped where :func:`tests.ui.harness.skip_reason` says the leg cannot run it.
"""

from __future__ import annotations

import pytest

from tests.ui import harness


@pytest.fixture(scope="package")
def ui_seeded():
    reason = harness.skip_reason()
    if reason:
        pytest.skip(reason)
    from tests.ui.seed import seed

    seeding = seed()
    try:
        yield next(seeding)
    finally:
        seeding.close()


@pytest.fixture(scope="package")
def ui_server(ui_seeded):
    with harness.api_server() as server:
        yield server


@pytest.fixture(scope="package")
def ui_browser(ui_server):
    with harness.chromium() as browser:
        yield browser


@pytest.fixture
def scenarios(ui_seeded):
    """name -> tests.ui.seed.Scenario."""
    return ui_seeded.scenarios


@pytest.fixture
def ui_page(ui_browser, ui_server):
    """``ui_page(user)``: a new page logged in as ``user`` (None: no cookie); closed after the test."""
    contexts = []

    def open_page(user):
        context = harness.logged_in_context(ui_browser, ui_server, user)
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()
