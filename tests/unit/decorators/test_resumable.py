"""``@task.resumable`` when a DAG is parsed: arguments, the handle parameter, mapping, async on old Airflow."""

from __future__ import annotations

import asyncio
import inspect

import pytest

from airflow.providers.resumable.decorators import get_resumable_handle, resumable_task
from airflow.providers.resumable.decorators.resumable import (
    _handle_defaults_to_none,
    _in_own_event_loop,
    _ResumableDecoratedOperator,
)
from airflow.providers.resumable.testing import dag_for_test


def test_the_handle_parameter_needs_no_default_in_the_dag_file():
    def process(files, resumable, limit=3):
        return files, resumable, limit

    seen = _handle_defaults_to_none(process)
    assert inspect.signature(seen).parameters["resumable"].default is None
    assert seen(["a"], resumable="h") == (["a"], "h", 3)
    assert _handle_defaults_to_none(print) is print  # nothing to fill in


def test_an_async_function_stays_async_and_runs_in_its_own_loop_where_airflow_would_not():
    async def process(n, resumable):
        await asyncio.sleep(0)
        return n * 2

    seen = _handle_defaults_to_none(process)
    assert inspect.iscoroutinefunction(seen)
    blocking = _in_own_event_loop(seen)
    assert blocking(4, resumable=None) == 8
    assert list(inspect.signature(blocking).parameters) == ["n", "resumable"]


def test_a_positional_only_handle_is_refused():
    def process(resumable, /):
        return resumable

    with pytest.raises(TypeError, match="must be passable by keyword"):
        _handle_defaults_to_none(process)


def test_task_arguments_and_our_own_reach_the_operator():
    dag = dag_for_test("unit_decorators_arguments")

    @resumable_task(retries=3, checkpoint_every=10, multiple_outputs=True)
    def process(files: list[str], resumable):
        return {"n": len(files)}

    with dag:
        process(["a", "b"])
    op = dag.get_task("process")
    assert isinstance(op, _ResumableDecoratedOperator)
    assert op.retries == 3
    assert op.checkpoint_every == 10
    assert op.multiple_outputs is True
    assert repr(op.checkpoint_policy) == "checkpoint_every_n_batches(10)"
    assert op.custom_operator_name == "@task.resumable"


def test_metrics_and_spans_name_a_taskflow_task_as_airflow_shows_it(memory_store):
    """``@task.resumable`` (as Airflow shows ``@task``), not the private operator class; the function is the task_id."""
    from airflow.providers.resumable.state.task_try import TaskTry
    from tests.support.context import FakeTI, make_context

    dag = dag_for_test("unit_decorators_metrics")

    @resumable_task
    def convert_files(resumable):
        return None

    with dag:
        convert_files()
    op = dag.get_task("convert_files")
    tags = TaskTry.of(op, make_context(FakeTI(dag_id=dag.dag_id, task_id="convert_files"))).tags
    assert (tags["operator"], tags["task_id"]) == ("@task.resumable", "convert_files")


def test_mapping_keeps_the_handle_out_of_the_mapped_arguments():
    dag = dag_for_test("unit_decorators_mapping")

    @resumable_task
    def process(part: int, resumable):
        return part

    with dag:
        process.partial().expand(part=[0, 1, 2])
    assert dag.get_task("process").partial_kwargs.get("op_kwargs", {}) == {}


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"checkpoint_every": 0}, ValueError, "checkpoint_every must be >= 1, got 0"),
        ({"allow_secrets_in_state": "yes"}, TypeError, "allow_secrets_in_state must be True or False"),
    ],
)
def test_bad_arguments_fail_when_the_dag_is_parsed(kwargs, error, message):
    dag = dag_for_test("unit_decorators_bad")

    @resumable_task(**kwargs)
    def process(resumable):
        return None

    with pytest.raises(error, match=message), dag:
        process()


def test_the_helper_is_exported_with_the_decorator():
    with pytest.raises(RuntimeError, match="outside a @task.resumable function"):
        get_resumable_handle()
