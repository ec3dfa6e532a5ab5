# conftest.py of your project: the provider's fixtures (resumable_dag, resumable_memory_store).
from __future__ import annotations

pytest_plugins = ["airflow.providers.resumable.testing.pytest_plugin"]
