"""The in-memory test backend, selected through ``[resumable] state_backend`` like a user's own."""

from __future__ import annotations

import os

from airflow.providers.resumable.state import get_state_store
from airflow.providers.resumable.testing import SharedMemoryStore, in_memory_state_backend


def test_in_memory_backend_is_selected_and_the_setting_restored(monkeypatch):
    monkeypatch.setenv("AIRFLOW__RESUMABLE__STATE_BACKEND", "variable")
    monkeypatch.setattr(SharedMemoryStore, "current", None)
    with in_memory_state_backend() as store:
        assert (
            os.environ["AIRFLOW__RESUMABLE__STATE_BACKEND"]
            == "airflow.providers.resumable.testing.stores.SharedMemoryStore"
        )
        get_state_store(None).set("k", {"v": 1})
    assert store.get("k") == {"v": 1}
    assert store.calls == [("set", "k"), ("get", "k")]
    assert os.environ["AIRFLOW__RESUMABLE__STATE_BACKEND"] == "variable"
    assert SharedMemoryStore.current is None
