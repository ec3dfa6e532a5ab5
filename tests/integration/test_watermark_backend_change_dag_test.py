"""
Issue 22: a task whose watermark backend changes (an ``Asset`` outlet on the native store, then
``[resumable] state_backend = variable``, or back) carries its mark over, inside Airflow's task
runner, instead of starting a second mark from the initial value; one mark remains.
"""

from __future__ import annotations

import pytest

from airflow.providers.resumable.testing import run_dag
from airflow.providers.resumable.version_compat import AIRFLOW_V_3_3_PLUS
from tests.integration.harness import make_dag
from tests.integration.test_watermark_dag_test import FETCHED, _source, add, extract_task  # noqa: F401

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason="the asset state store is Airflow 3.3+"),
]


def marks(dag_id: str) -> list[tuple[str, object]]:
    from airflow.utils.session import create_session

    from airflow.providers.resumable.inventory import watermarks as watermark_inventory

    with create_session() as session:
        found = watermark_inventory.read(session, watermark_inventory.WatermarkFilters(dag_id=dag_id))
    return [(m.backend, m.document["value"]) for m in found]


@pytest.mark.parametrize(("before", "after"), [("auto", "variable"), ("variable", "auto")])
def test_a_mark_is_carried_over_when_the_backend_changes(request, state_backend, before, after):
    dag = make_dag(request)
    extract_task(dag)  # with an Asset outlet: the native asset store unless state_backend=variable
    state_backend(before)
    add("a", "b")
    assert run_dag(dag).state == "success"
    state_backend(after)
    add("c")
    second = run_dag(dag)
    assert second.state == "success"
    assert FETCHED[second.run_id] == ["c"], "the run after the switch read from the mark, not from the start"
    live = "variable" if after == "variable" else "asset_state_store"
    assert marks(dag.dag_id) == [(live, 3)], "one mark, where the task keeps it now"
