"""
The integration tests run DAGs with the shipped ``airflow.providers.resumable.testing`` (the helper
users get), so there is one implementation; this adds only the DAG naming these tests use.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.resumable.testing import clear_and_rerun, dag_for_test, resumable_variables, run_dag


def make_dag(request: Any, **kwargs: Any) -> Any:
    """A DAG named after the test (module included), so every test has its own runs and state."""
    module = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    return dag_for_test(f"it_{module}_{request.node.name}", **kwargs)


__all__ = ["clear_and_rerun", "make_dag", "resumable_variables", "run_dag"]
