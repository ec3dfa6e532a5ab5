"""Unit tests: checkpoint writes stay on the walk's thread unless a test asks for the writer."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def synchronous_checkpoints(request, monkeypatch):
    """
    Unit tests count writes on fake clocks and fake stores, so the walk writes synchronously here.

    Outside a task, Airflow 2 would let a writer thread write (each thread has its own ORM session)
    and Airflow 3 would not (no supervisor comms), so the same test would count differently per
    leg. The writer has its own tests (``tests/unit/mixins/test_checkpoint_writer.py``, marked
    ``background_writes``), and every integration leg runs walks as Airflow decides.
    """
    if request.node.get_closest_marker("background_writes"):
        return
    from airflow.providers.resumable.mixins import checkpoint_runner

    monkeypatch.setattr(
        checkpoint_runner, "checkpoint_writes_off_thread", lambda: "unit tests write synchronously (tests/unit)"
    )
