"""What ``run_dag`` and ``clear_and_rerun`` return, read without a DAG run."""

from __future__ import annotations

import pytest

from airflow.providers.resumable.testing import RunResult, TaskInstanceResult


def test_a_mapped_task_needs_its_map_index():
    tis = tuple(TaskInstanceResult("t", i, "success", 1, 0) for i in range(2))
    run = RunResult("d", "r", "success", tis, {("t", 0): "a", ("t", 1): "b"})
    assert run.xcom("t", map_index=1) == "b"
    with pytest.raises(KeyError, match=r"task 't' is mapped \(2 task instances\): pass map_index"):
        run.ti("t")
    with pytest.raises(KeyError, match="has no task instance task_id='u'"):
        run.ti("u")
