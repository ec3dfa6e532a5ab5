"""One set of CLI filters over task state and watermarks."""

from __future__ import annotations

import pytest

from airflow.providers.resumable.inventory.filters import Filters
from airflow.providers.resumable.state.base import TaskScope
from airflow.providers.resumable.watermarks.stores import WatermarkScope

STATE = TaskScope("d", "r", "t", 2)
MARK = WatermarkScope("d", "t", 2, "orders")
LOOPED = TaskScope("d", "r", "t", -1, "loop-1", 0)

CASES = [
    (Filters(), STATE, True),
    (Filters(dag_id="d", run_id="r", task_id="t", map_index=2), STATE, True),
    (Filters(run_id="other"), STATE, False),
    (Filters(map_index=-1), STATE, False),
    (Filters(name="orders"), STATE, False),
    (Filters(dag_id="d", task_id="t", name="orders"), MARK, True),
    (Filters(name="users"), MARK, False),
    (Filters(run_id="r"), MARK, False),
    # Airflow 3.4's regions: a scope outside any region never matches a region filter.
    (Filters(region_id="loop-1"), STATE, False),
    (Filters(region_index=0), STATE, False),
    (Filters(region_id="loop-1", region_index=0), LOOPED, True),
    (Filters(region_id="loop-1", region_index=1), LOOPED, False),
    (Filters(dag_id="d", map_index=-1), LOOPED, True),
    (Filters(region_id="loop-1"), MARK, False),
]


@pytest.mark.parametrize(("filters", "scope", "admitted"), CASES)
def test_admits(filters, scope, admitted):
    assert filters.admits(scope) is admitted


def test_the_key_is_a_filter_of_rows_not_of_scopes():
    assert Filters(key="job").admits(STATE)
    assert Filters(key="job").wanted("key") == "job"
