"""
The integration tests run DAGs with the shipped ``airflow.providers.resumable.testing`` (the helper
users get), so there is one implementation; this adds only the DAG naming these tests use.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.resumable.testing import (
    clear_and_rerun,
    dag_for_test,
    fail_on_tries,
    resumable_variables,
    run_dag,
)


def make_dag(request: Any, **kwargs: Any) -> Any:
    """A DAG named after the test (module included), so every test has its own runs and state."""
    module = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    return dag_for_test(f"it_{module}_{request.node.name}", **kwargs)


def run_failing_first_try(dag: Any, target: Any, attribute: str, **kwargs: Any) -> Any:
    """
    Run ``dag`` with ``target.attribute`` failing on the first try (``fail_on_tries``: a worker lost
    there, a response lost with ``after=True``), and check that it did fail there.
    """
    with fail_on_tries(target, attribute, tries={1}, **kwargs) as fault:
        run = run_dag(dag)
    assert fault.fired == [1], f"{fault.target} did not fail on the first try: {fault.fired}"
    return run


__all__ = ["clear_and_rerun", "make_dag", "resumable_variables", "run_dag", "run_failing_first_try"]
