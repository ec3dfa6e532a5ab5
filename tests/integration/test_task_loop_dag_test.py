"""
Airflow 3.4's Task Loops (``@task_group`` + ``.loop()``): task instances that share dag, run, task and
map index and differ only by region. Each iteration must resume its own walk and reattach to its own
job, on the native store and on Variables.
"""

from __future__ import annotations

import json
import pathlib
from datetime import timedelta

import pytest

from airflow.providers.resumable.compat.version_compat import AIRFLOW_V_3_4_PLUS
from tests.integration.harness import make_dag, run_dag
from tests.support.toy_operators import ToyBatchOperator, ToyJobOperator

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not AIRFLOW_V_3_4_PLUS, reason="Task Loops are Airflow 3.4's"),
]

ITERATIONS = 3
ITEMS = 30


class IterationBatch(ToyBatchOperator):
    """The toy batch copy, into a directory of its own per loop iteration."""

    def execute(self, context):
        self.out_dir = str(pathlib.Path(self.base_dir) / f"r{context['ti'].region_index}")
        pathlib.Path(self.out_dir).mkdir(parents=True, exist_ok=True)
        # What this iteration's state is keyed by: its Variable's name and its ledger's derive from it.
        (pathlib.Path(self.out_dir) / "scope.txt").write_text(self.task_try(context).scope.digest())
        return super().execute(context)

    def __init__(self, *, base_dir: str, **kwargs):
        super().__init__(out_dir=base_dir, **kwargs)
        self.base_dir = base_dir


def test_each_iteration_resumes_its_own_walk_and_reattaches_to_its_own_job(job_system, tmp_path, request):
    from airflow.sdk import task_group

    dag = make_dag(request)
    with dag:

        @task_group
        def body():
            job = ToyJobOperator(
                task_id="job",
                base_url=job_system.url,
                spec={"cmd": "etl"},
                crash_in_poll_on_tries=(1,),  # every iteration loses its worker mid-poll on its first try
                retries=1,
                retry_delay=timedelta(0),
            )
            walk = IterationBatch(
                task_id="walk",
                base_dir=str(tmp_path),
                total=ITEMS,
                batch_size=3,
                fail_on={1: 5},
                checkpoint_every=1,
                retries=1,
                retry_delay=timedelta(0),
            )
            job >> walk

        body.loop(max_iterations=ITERATIONS)

    run = run_dag(dag)
    assert run.state == "success"
    scopes = {(tmp_path / f"r{region}" / "scope.txt").read_text() for region in range(ITERATIONS)}
    assert len(scopes) == ITERATIONS, "each iteration keeps its state apart from the others"
    assert len(job_system.jobs) == ITERATIONS, "one job per iteration, although each first try died mid-poll"
    for region in range(ITERATIONS):
        out = tmp_path / f"r{region}"
        tries = [json.loads(line) for line in (out / "tries.jsonl").read_text().splitlines()]
        assert [t["start_item"] for t in tries] == [0, 15], f"iteration {region} resumed at its own batch 5"
        items = sorted(i for part in out.glob("part-*.json") for i in json.loads(part.read_text()))
        assert items == list(range(ITEMS)), f"iteration {region}: every item once"
