"""The pytest plugin's fixtures, used here as a user's conftest would enable them."""

from __future__ import annotations

import os

from airflow.providers.resumable.state import get_state_store
from airflow.providers.resumable.testing import SharedMemoryStore

# What `pytest_plugins = ["airflow.providers.resumable.testing.pytest_plugin"]` brings into a conftest.
from airflow.providers.resumable.testing.pytest_plugin import resumable_dag, resumable_memory_store  # noqa: F401


def test_the_memory_store_is_what_every_operator_gets(resumable_memory_store):  # noqa: F811
    assert os.environ["AIRFLOW__RESUMABLE__STATE_BACKEND"].endswith("SharedMemoryStore")
    assert get_state_store(None) is resumable_memory_store
    assert isinstance(resumable_memory_store, SharedMemoryStore)


def test_each_test_gets_its_own_dag(resumable_dag, request):  # noqa: F811
    assert resumable_dag.dag_id
    assert request.node.name.split("[")[0] in resumable_dag.dag_id or len(resumable_dag.dag_id) <= 250
