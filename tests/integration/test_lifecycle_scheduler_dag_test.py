"""
Lifecycle holes found under a real scheduler (issue 22), reproduced inside Airflow's own task runner.

Each test is the report as a user met it: a store picked per operator that outlived the success, an
extra try after a success (Airflow 2.11's late zombie callback), a mapped list that changed between a
failed run and its clear.
"""

from __future__ import annotations

import json
import pathlib
from datetime import timedelta

import pytest

from airflow.providers.resumable.state import get_state_store
from airflow.providers.resumable.testing import clear_and_rerun, resumable_variables, run_dag
from tests.integration.harness import make_dag
from tests.support.toy_operators import ToyBatchOperator, read_parts

pytestmark = pytest.mark.integration


# ---- 1. a store picked per operator is finished like the mixin's own ----------------------------------


class VariableBatchOperator(ToyBatchOperator):
    """Keeps its checkpoint in Variables whatever the setting says, as the report's operator did."""

    def state_store(self, context):
        return get_state_store(context, "variable")

    def execute(self, context, **kwargs):
        # What a person would see in the Variable list while the try runs.
        seen = pathlib.Path(self.out_dir) / "variables.jsonl"
        seen.parent.mkdir(parents=True, exist_ok=True)
        with seen.open("a") as fh:
            fh.write(json.dumps(resumable_variables(context["ti"].dag_id)) + "\n")
        return super().execute(context, **kwargs)


def test_a_store_picked_by_overriding_state_store_is_used_and_dropped_after_success(tmp_path, request):
    dag = make_dag(request)
    VariableBatchOperator(
        task_id="copy",
        out_dir=str(tmp_path),
        total=50,
        batch_size=10,
        fail_on={1: 3},
        checkpoint_every=1,
        retries=1,
        retry_delay=timedelta(0),
        dag=dag,
    )
    run = run_dag(dag)
    assert run.state == "success"
    assert run.ti("copy").try_number == 2
    assert run.xcom("copy") == {"batches": 5, "resumed_from": 3}, "try 2 resumed at the batch try 1 reached"
    seen = [json.loads(line) for line in (tmp_path / "variables.jsonl").read_text().splitlines()]
    assert seen[0] == [] and len(seen[1]) == 1, f"the checkpoint lived in a Variable between the tries: {seen}"
    assert resumable_variables(dag.dag_id) == [], "the Variable the override picked was dropped after the success"
    assert read_parts(str(tmp_path)) == list(range(50))

    again = clear_and_rerun(dag, run)
    assert again.state == "success"
    assert again.xcom("copy") == {"batches": 5, "resumed_from": 0}, "a clear after success starts afresh"
    assert resumable_variables(dag.dag_id) == []


def test_the_raw_store_of_another_backend_is_dropped_after_success(request):
    seen: list[object] = []

    def write_then_read(**context):
        store = get_state_store(context, backend="variable")
        seen.append(store.get("page"))
        store.set("page", 7)
        return "ok"

    dag = make_dag(request)
    from airflow.providers.resumable.compat.version_compat import AIRFLOW_V_3_0_PLUS

    if AIRFLOW_V_3_0_PLUS:
        from airflow.sdk import task
    else:
        from airflow.decorators import task
    with dag:
        task(task_id="raw")(write_then_read)()
    run = run_dag(dag)
    assert run.state == "success"
    assert resumable_variables(dag.dag_id) == [], "the Variable written through get_state_store(..., 'variable') was dropped"
    again = clear_and_rerun(dag, run)
    assert again.state == "success"
    assert seen == [None, None], "a clear after success found nothing of the ended life"
