"""StatefulOperatorMixin inside Airflow's own task runner (``dag.test()``), with real retries."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from airflow.providers.resumable.testing import clear_and_rerun, resumable_variables, run_dag
from tests.integration.harness import make_dag
from tests.support.toy_operators import SleepyBatchOperator, ToyBatchOperator, read_parts

pytestmark = pytest.mark.integration


def copy_task(dag, out_dir, **kwargs):
    kwargs.setdefault("retry_delay", timedelta(0))
    return ToyBatchOperator(task_id="copy", out_dir=str(out_dir), dag=dag, **kwargs)


def tries_log(out_dir):
    return [json.loads(line) for line in (out_dir / "tries.jsonl").read_text().splitlines()]


def test_typed_checkpoint_resumes_after_the_last_committed_batch(tmp_path, request):
    dag = make_dag(request)
    # try 1 dies at batch 4, try 2 at batch 7
    copy_task(dag, tmp_path, total=100, batch_size=10, fail_on={1: 4, 2: 7}, checkpoint_every=1, retries=2)
    run = run_dag(dag)
    assert run.state == "success"
    assert run.ti("copy").try_number == 3
    assert [t["start_item"] for t in tries_log(tmp_path)] == [0, 40, 70]
    assert read_parts(tmp_path) == list(range(100)), "every item exactly once"
    assert run.xcom("copy") == {"batches": 10, "resumed_from": 7}


def test_sparse_checkpoints_still_resume_at_the_failed_batch(tmp_path, request):
    # checkpoint_every=1000 never fires during the walk: the failure flushes the cursor itself.
    dag = make_dag(request)
    copy_task(dag, tmp_path, total=50, batch_size=5, fail_on={1: 6}, checkpoint_every=1000, retries=1)
    run = run_dag(dag)
    assert run.state == "success"
    assert [t["start_item"] for t in tries_log(tmp_path)] == [0, 30]
    assert read_parts(tmp_path) == list(range(50))


def test_the_default_policy_checkpoints_during_a_long_walk(request):
    # 150 batches of at least 10 ms: more than a second, the most the default policy lets pass
    # without a checkpoint, so one is stored before the last batch on any store and any machine.
    dag = make_dag(request)
    SleepyBatchOperator(task_id="walk", batches=150, batch_seconds=0.01, dag=dag)
    run = run_dag(dag)
    assert run.state == "success"
    out = run.xcom("walk")
    assert out["checkpoints_written"] >= 1
    stored = out["stored_before_the_end"]
    assert stored["complete"] is False
    assert 0 < stored["batches_done"] < 150


def test_a_hard_kill_resumes_from_the_default_policys_last_checkpoint(request):
    # Killed at batch 140 (after at least 1.4 s of batches) without the flush a Python error gets:
    # the retry starts from a checkpoint the policy wrote during the walk, not from batch 0.
    dag = make_dag(request)
    SleepyBatchOperator(
        task_id="walk",
        batches=150,
        batch_seconds=0.01,
        hard_kill_on={1: 140},
        retries=1,
        retry_delay=timedelta(0),
        dag=dag,
    )
    run = run_dag(dag)
    assert run.state == "success"
    assert run.ti("walk").try_number == 2
    assert 0 < run.xcom("walk")["resumed_from"] <= 140


def test_a_finished_walk_starts_afresh_when_cleared(tmp_path, request):
    dag = make_dag(request)
    copy_task(dag, tmp_path, total=20, batch_size=5)
    first = run_dag(dag)
    assert first.state == "success"
    second = clear_and_rerun(dag, first)
    assert second.state == "success"
    assert [t["start_item"] for t in tries_log(tmp_path)] == [0, 0]
    assert read_parts(tmp_path) == list(range(20))


def test_no_state_is_left_behind_on_variables(tmp_path, request):
    """Variables are global: a succeeded task must not leave its state there."""
    dag = make_dag(request)
    copy_task(dag, tmp_path, total=20, batch_size=5, fail_on={1: 2}, checkpoint_every=1, retries=1)
    assert run_dag(dag).state == "success"
    assert resumable_variables(dag.dag_id) == []


def test_the_backend_this_leg_is_meant_to_exercise(request):
    """Guards the test matrix: each leg must really run on the store it claims to."""
    import os

    from airflow.providers.resumable.state import get_state_store
    from airflow.providers.resumable.version_compat import AIRFLOW_V_3_3_PLUS, BaseOperator

    class WhichStore(BaseOperator):
        def execute(self, context):
            from airflow.providers.resumable.compat.airflow import variable_access

            store = get_state_store(context)
            store.set("probe", 1)
            key = getattr(store, "key", None)
            return {
                "store": store.__class__.__name__,  # the backend under the guard, which type() would name
                # Read back through Airflow's own Variable API while the task runs (dropped after success).
                "variable": key is not None and variable_access().get(key) is not None,
            }

    dag = make_dag(request)
    WhichStore(task_id="probe", dag=dag)
    run = run_dag(dag)
    forced = os.environ.get("AIRFLOW__RESUMABLE__STATE_BACKEND", "auto")
    expected = "NativeTaskStateStore" if AIRFLOW_V_3_3_PLUS and forced == "auto" else "VariableStateStore"
    assert run.xcom("probe")["store"] == expected
    if expected == "VariableStateStore":
        # Written through real Airflow Variables, readable in the UI under the task's name while it runs;
        # get_state_store's store is finished after the success like the mixins', so the Variable is gone.
        assert run.xcom("probe")["variable"] is True
        assert resumable_variables(dag.dag_id) == []


def where_written() -> type:
    """A ``SleepyBatchOperator`` recording the threads its checkpoints were written on (a fresh set per test)."""
    import threading

    class WhereWritten(SleepyBatchOperator):
        threads: set[str] = set()

        def save_checkpoint(self, context, checkpoint, *, batches_done=None):
            WhereWritten.threads.add(threading.current_thread().name)
            super().save_checkpoint(context, checkpoint, batches_done=batches_done)

    return WhereWritten


def test_checkpoints_are_written_where_airflow_lets_a_thread_write(request):
    """
    Airflow 2: on a writer thread (a session per thread). Airflow 3's dag.test(): synchronously, as its
    in-process comms are not safe for two threads (the deployment suite covers the real supervisor).
    """
    from airflow.providers.resumable.version_compat import AIRFLOW_V_3_0_PLUS

    WhereWritten = where_written()

    dag = make_dag(request)
    WhereWritten(task_id="walk", batches=60, batch_seconds=0.01, checkpoint_every=5, dag=dag)
    run = run_dag(dag)
    assert run.state == "success"
    assert WhereWritten.threads, "no checkpoint was written during the walk"
    on_writer = {name.startswith("checkpoint-writer-") for name in WhereWritten.threads}
    assert on_writer == ({False} if AIRFLOW_V_3_0_PLUS else {True})
    # Every checkpoint the walk took landed or was replaced by a newer one; the walk ended complete.
    assert 1 <= run.xcom("walk")["checkpoints_written"] <= 11


def test_background_checkpoints_false_keeps_every_write_on_the_walk(request):
    WhereWritten = where_written()

    dag = make_dag(request)
    WhereWritten(
        task_id="walk", batches=20, batch_seconds=0.0, checkpoint_every=5, background_checkpoints=False, dag=dag
    )
    assert run_dag(dag).state == "success"
    assert len(WhereWritten.threads) == 1
    assert not next(iter(WhereWritten.threads)).startswith("checkpoint-writer-")


def test_a_hard_kill_resumes_at_a_durable_checkpoint_never_past_the_written_data(tmp_path, request):
    """
    The testing helper's hard kill at batch 120 (no flush, the writer abandoned, as a SIGKILL leaves
    it): the retry resumes at a checkpoint the default policy made durable during the walk, at or
    before the last part try 1 wrote, and every part ends written once by the try that wrote it last.
    """
    import json

    from airflow.providers.resumable.testing import fail_on_tries
    from tests.support.toy_operators import PartsWalkOperator

    dag = make_dag(request)
    PartsWalkOperator(
        task_id="walk",
        out_dir=str(tmp_path),
        batches=150,
        batch_seconds=0.01,
        retries=1,
        retry_delay=timedelta(0),
        dag=dag,
    )
    with fail_on_tries(PartsWalkOperator, "write_part", tries={1}, at_call=121, hard=True) as fault:
        run = run_dag(dag)
    assert fault.fired == [1]
    assert run.state == "success"
    resumed = run.xcom("walk")["resumed_from"]
    # Batches 0..119 were written by try 1 before the kill at the 121st write; the walk had been
    # running over a second, so the policy had made a checkpoint durable: never 0, never past 120.
    assert 0 < resumed <= 120
    parts = {p.name: json.loads(p.read_text()) for p in tmp_path.glob("part-*.json")}
    assert sorted(parts) == [f"part-{i:05d}.json" for i in range(150)]
    assert {p["try"] for i, p in enumerate(sorted(parts.values(), key=lambda p: p["index"])) if i < resumed} == {1}
    assert all(p["try"] == 2 for p in parts.values() if p["index"] >= resumed)


def test_a_hard_kill_fault_is_not_an_ordinary_failure(tmp_path, request):
    """Without hard=True the same fault is an error Python sees: the walk flushes, the retry redoes nothing."""
    from airflow.providers.resumable.testing import fail_on_tries
    from tests.support.toy_operators import PartsWalkOperator

    dag = make_dag(request)
    PartsWalkOperator(
        task_id="walk",
        out_dir=str(tmp_path),
        batches=30,
        batch_seconds=0.0,
        retries=1,
        retry_delay=timedelta(0),
        dag=dag,
    )
    with fail_on_tries(PartsWalkOperator, "write_part", tries={1}, at_call=21):
        run = run_dag(dag)
    assert run.state == "success"
    assert run.xcom("walk")["resumed_from"] == 20


def test_a_hard_kill_writes_nothing_more(tmp_path, request):
    """No checkpoint during the walk (checkpoint_every beyond it) and a hard kill: nothing to resume from."""
    from airflow.providers.resumable.testing import SimulatedHardKill, fail_on_tries
    from tests.support.toy_operators import PartsWalkOperator

    dag = make_dag(request)
    PartsWalkOperator(
        task_id="walk",
        out_dir=str(tmp_path),
        batches=30,
        batch_seconds=0.0,
        checkpoint_every=1000,
        retries=1,
        retry_delay=timedelta(0),
        dag=dag,
    )
    with fail_on_tries(PartsWalkOperator, "write_part", tries={1}, at_call=21, hard=True) as fault:
        run = run_dag(dag)
    assert fault.fired == [1]
    assert run.state == "success"
    assert run.xcom("walk")["resumed_from"] == 0
    assert issubclass(SimulatedHardKill, Exception), "Airflow retries it as any task error"
