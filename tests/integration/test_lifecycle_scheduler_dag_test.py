"""
Lifecycle holes found under a real scheduler (issue 22), reproduced inside Airflow's own task runner.

Each test is the report as a user met it: a store picked per operator that outlived the success, an
extra try after a success (Airflow 2.11's late zombie callback), a mapped list that changed between a
failed run and its clear.
"""

from __future__ import annotations

import json
import os
import pathlib
from datetime import timedelta

import pytest

from airflow.providers.resumable.compat.version_compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_3_PLUS, AIRFLOW_V_3_4_PLUS
from airflow.providers.resumable.state import get_state_store
from airflow.providers.resumable.testing import clear_and_rerun, resumable_variables, run_dag
from tests.integration.harness import make_dag
from tests.support.toy_operators import ToyBatchOperator, read_parts

pytestmark = pytest.mark.integration

NATIVE = AIRFLOW_V_3_3_PLUS and os.environ.get("AIRFLOW__RESUMABLE__STATE_BACKEND", "auto") == "auto"


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
    assert len(seen[0]) == 0, f"nothing was kept before try 1: {seen}"
    assert len(seen[1]) == 1, f"the checkpoint lived in a Variable between the tries: {seen}"
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
    assert resumable_variables(dag.dag_id) == [], (
        "the Variable written through get_state_store(..., 'variable') was dropped"
    )
    again = clear_and_rerun(dag, run)
    assert again.state == "success"
    assert seen == [None, None], "a clear after success found nothing of the ended life"


# ---- 5. a mapped list that changed between a failed run and its clear ------------------------------


class BatchOperatorWithOutage(ToyBatchOperator):
    """Loses its worker at batch 3 while the file ``outage`` exists, whichever try it is."""

    def __init__(self, *, outage: str, **kwargs):
        super().__init__(**kwargs)
        self.outage = outage

    def execute(self, context, **kwargs):
        if pathlib.Path(self.outage).exists():
            self.fail_on = {context["ti"].try_number: 3}
        return super().execute(context, **kwargs)


def test_a_reexpanded_map_index_does_not_resume_another_items_checkpoint(tmp_path, request):
    listing, outage = tmp_path / "listing.json", tmp_path / "outage"
    listing.write_text(json.dumps([str(tmp_path / "a"), str(tmp_path / "b")]))

    def list_dirs() -> list[str]:
        return json.loads(listing.read_text())

    dag = make_dag(request)
    with dag:
        dirs = _task(list_dirs)
        BatchOperatorWithOutage.partial(
            task_id="copy", total=50, batch_size=10, outage=str(outage), checkpoint_every=1, retries=0
        ).expand(out_dir=dirs)
    outage.touch()
    first = run_dag(dag)
    assert first.state == "failed", "every map index lost its worker at batch 3"
    outage.unlink()

    # An item inserted at the front: map index 0 is now "new", index 1 "a", index 2 "b".
    listing.write_text(json.dumps([str(tmp_path / "new"), str(tmp_path / "a"), str(tmp_path / "b")]))
    again = clear_and_rerun(dag, first)
    assert again.state == "success"
    for name in ("new", "a", "b"):
        assert read_parts(str(tmp_path / name)) == list(range(50)), f"{name} is missing the batches another item did"
    starts = [json.loads(line)["start_item"] for line in (tmp_path / "new" / "tries.jsonl").read_text().splitlines()]
    assert starts == [0], "map index 0 started its new item from the beginning, not at item 'a''s batch 3"


def _task(function):
    from airflow.providers.resumable.compat.version_compat import AIRFLOW_V_3_0_PLUS

    if AIRFLOW_V_3_0_PLUS:
        from airflow.sdk import task
    else:
        from airflow.decorators import task
    return task(task_id=function.__name__)(function)()


def test_a_reexpanded_map_index_does_not_reattach_to_another_items_job(job_system, tmp_path, request):
    from tests.support.toy_operators import SimulatedCrash, ToyJobOperator

    class JobWithOutage(ToyJobOperator):
        def poll_until_complete(self, external_id, context):
            if outage.exists():
                raise SimulatedCrash(f"worker lost while polling {external_id}")
            return super().poll_until_complete(external_id, context)

    listing, outage = tmp_path / "listing.json", tmp_path / "outage"
    listing.write_text(json.dumps([{"cmd": "a"}, {"cmd": "b"}]))

    def list_specs() -> list[dict]:
        return json.loads(listing.read_text())

    dag = make_dag(request)
    with dag:
        specs = _task(list_specs)
        JobWithOutage.partial(task_id="job", base_url=job_system.url, retries=0).expand(spec=specs)
    outage.touch()
    first = run_dag(dag)
    assert first.state == "failed", "every map index lost its worker while polling its job"
    outage.unlink()
    assert sorted(job.spec["cmd"] for job in job_system.jobs.values()) == ["a", "b"]

    listing.write_text(json.dumps([{"cmd": "new"}, {"cmd": "a"}, {"cmd": "b"}]))
    again = clear_and_rerun(dag, first)
    assert again.state == "success"
    results = {i: again.xcom("job", map_index=i)["job_id"] for i in range(3)}
    spec_of = {job_id: job.spec["cmd"] for job_id, job in job_system.jobs.items()}
    assert [spec_of[results[i]] for i in range(3)] == ["new", "a", "b"], "each index returned its own item's job"


# ---- 4. a task that succeeded under airflow.sdk.ResumableJobMixin, cleared after the switch ----------


@pytest.mark.skipif(
    not NATIVE, reason="airflow.sdk.ResumableJobMixin keeps its id in the native task_state_store (Airflow 3.3+)"
)
def test_a_task_that_succeeded_under_upstreams_mixin_submits_afresh_once_its_bare_id_is_deleted(
    job_system, request, capsys
):
    from airflow.sdk import ResumableJobMixin as UpstreamMixin

    from tests.integration.test_state_cli import cli
    from tests.support.toy_operators import ToyJobOperator, plain_job_operator

    class Upstream(plain_job_operator(UpstreamMixin)):
        external_id_key = "toy_job"

    dag = make_dag(request)
    Upstream(task_id="job", base_url=job_system.url, retries=0, dag=dag)
    first = run_dag(dag)
    assert first.state == "success"
    assert len(job_system.jobs) == 1

    # The migration step docs/mixins.rst gives for a task instance that succeeded under upstream's
    # mixin: its bare id cannot say which life it belongs to, so delete it before the clear.
    cli("state", "delete", "--dag-id", dag.dag_id, "--run-id", first.run_id, "--task-id", "job", "--yes")
    ours = make_dag(request)
    ToyJobOperator(task_id="job", base_url=job_system.url, spec={}, retries=0, dag=ours)
    again = clear_and_rerun(ours, first, dag_changed=True)
    assert again.state == "success"
    assert len(job_system.jobs) == 2, "the clear after success ran a new job"
    assert again.xcom("job")["job_id"] == "job-2"


# ---- 2. a late failure of a try that succeeded (Airflow 2.11's zombie callback) ---------------------


def fail_late_and_retry(dag, previous, task_id: str):
    """
    What a late zombie callback does on Airflow 2.11: fail a try that already succeeded, with a retry
    left and ``max_tries`` as it was (no clear: the same life), then the scheduler runs that retry.
    """
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import select

    from airflow.providers.resumable.compat.airflow import map_task_instance_models
    from airflow.providers.resumable.testing.runner import _drive, collect

    map_task_instance_models()
    with create_session() as session:
        ti = session.scalars(
            select(TaskInstance).where(
                TaskInstance.dag_id == dag.dag_id,
                TaskInstance.run_id == previous.run_id,
                TaskInstance.task_id == task_id,
            )
        ).one()
        ti.state = TaskInstanceState.UP_FOR_RETRY
        session.commit()
        dr = session.scalars(select(DagRun).where(DagRun.dag_id == dag.dag_id, DagRun.run_id == previous.run_id)).one()
        _drive(dag, dr, session)
    return collect(dag.dag_id, previous.run_id)


@pytest.mark.skipif(AIRFLOW_V_3_4_PLUS, reason="3.4 numbers each try as a row of its own; the report is 2.11's")
@pytest.mark.skipif(
    AIRFLOW_V_3_0_PLUS and not NATIVE,
    reason="Airflow 3 fails no try after its recorded success, so Variables are deleted at the success there",
)
def test_a_late_failure_of_a_try_that_succeeded_does_not_start_a_second_job(job_system, request):
    from tests.support.toy_operators import ToyJobOperator

    dag = make_dag(request)
    ToyJobOperator(task_id="job", base_url=job_system.url, spec={}, retries=1, retry_delay=timedelta(0), dag=dag)
    first = run_dag(dag)
    assert first.state == "success"
    assert len(job_system.jobs) == 1

    extra = fail_late_and_retry(dag, first, "job")
    assert extra.ti("job").try_number == 2, "the extra try ran"
    assert extra.ti("job").max_tries == first.ti("job").max_tries, "no clear: the same life"
    assert len(job_system.jobs) == 1, "the extra try of the life that succeeded started no second job"
    assert extra.state == "success"
    assert extra.xcom("job")["job_id"] == "job-1"

    again = clear_and_rerun(dag, extra)
    assert again.state == "success"
    assert len(job_system.jobs) == 2, "a person's clear still starts the next life: a new job"


@pytest.mark.skipif(AIRFLOW_V_3_0_PLUS, reason="only Airflow 2 can fail a try after its success, so only it keeps")
def test_airflow_2_keeps_a_succeeded_variable_for_its_retention_and_a_later_success_deletes_it(
    job_system, request, monkeypatch
):
    import time

    from tests.support.toy_operators import ToyJobOperator

    monkeypatch.setenv("AIRFLOW__RESUMABLE__FINISHED_STATE_RETENTION", "1")
    dag = make_dag(request)
    ToyJobOperator(task_id="job", base_url=job_system.url, spec={}, retries=1, retry_delay=timedelta(0), dag=dag)
    first = run_dag(dag)
    assert first.state == "success"
    assert resumable_variables(dag.dag_id) == [], "no state of a running life is left"
    kept = resumable_variables(dag.dag_id, include_finished=True)
    assert len(kept) == 1, "the succeeded task instance's Variable is kept, marked finished"

    time.sleep(1.5)  # past the 1 s retention
    second = run_dag(dag)
    assert second.state == "success"
    assert second.run_id != first.run_id
    now_kept = resumable_variables(dag.dag_id, include_finished=True)
    assert kept[0] not in now_kept, "the next success of the DAG deleted the expired one"
    assert len(now_kept) == 1, "and kept its own"


# ---- 3. a person's "mark success", which Airflow 3 records in the API server ----------------------------


def mark_success_in_the_api_server(dag_id: str, run_id: str, task_id: str) -> None:
    """What the API server does for the UI's "mark success": set the state, then call the listeners."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import select

    with create_session() as session:
        ti = session.scalars(
            select(TaskInstance).where(
                TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id, TaskInstance.task_id == task_id
            )
        ).one()
        ti.state = TaskInstanceState.SUCCESS
        session.commit()
        try:
            from airflow.api_fastapi.core_api.services.public.task_instances import _emit_state_listener_hooks
        except ImportError:
            # 3.0-3.2 make the same call inline in _patch_task_instance_state.
            from airflow.listeners.listener import get_listener_manager

            get_listener_manager().hook.on_task_instance_success(previous_state=None, task_instance=ti)
        else:
            _emit_state_listener_hooks([ti], TaskInstanceState.SUCCESS)


@pytest.mark.skipif(not AIRFLOW_V_3_0_PLUS, reason="Airflow 2.11's webserver calls no listener for a mark")
def test_a_mark_success_in_the_api_server_drops_the_state_so_a_clear_runs_a_new_job(job_system, request):
    from airflow.utils.session import create_session

    from airflow.providers.resumable.inventory import state as inventory
    from tests.support.toy_operators import ToyJobOperator

    dag = make_dag(request)
    ToyJobOperator(task_id="job", base_url=job_system.url, spec={}, crash_in_poll_on_tries=(1,), retries=0, dag=dag)
    first = run_dag(dag)
    assert first.state == "failed"
    with create_session() as session:
        assert inventory.read(session, inventory.Filters(dag_id=dag.dag_id)), "the failed try kept its record"

    mark_success_in_the_api_server(dag.dag_id, first.run_id, "job")
    with create_session() as session:
        assert inventory.read(session, inventory.Filters(dag_id=dag.dag_id)) == [], "dropped at the mark"

    again = clear_and_rerun(dag, first)
    assert again.state == "success"
    assert len(job_system.jobs) == 2, "a clear after a mark success starts the next life: a new job"
