from __future__ import annotations

import pytest

from tests.support.paginated_http import BASE


@pytest.fixture
def news_connection(monkeypatch):
    """Connection ``news``: the API that ``tests/support/paginated_http.py`` mocks."""
    monkeypatch.setenv("AIRFLOW_CONN_NEWS", BASE)
