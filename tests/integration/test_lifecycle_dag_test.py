"""
The lifecycle of stored state, inside Airflow's own task runner (``dag.test()``), on every leg.

Each test is one of the reproductions of issue 9, written as a new user found them: when state must
live (a failure after ``execute`` returns), when it must die (a clear after success, whatever
``retries`` became; a DAG run deleted and created again), errors no retry can fix (fail on the
first try), and hand-edited state (named as bad state, not as an unreachable store).
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta

import pytest

from airflow.providers.resumable.state import get_state_store
from airflow.providers.resumable.testing import clear_and_rerun, resumable_variables, run_dag
from airflow.providers.resumable.version_compat import AIRFLOW_V_3_3_PLUS
from tests.integration.harness import make_dag
from tests.support.toy_operators import (
    FindableToyJobOperator,
    ToyBatchOperator,
    ToyJobOperator,
    plain_job_operator,
    read_parts,
)

pytestmark = pytest.mark.integration

NATIVE = AIRFLOW_V_3_3_PLUS and os.environ.get("AIRFLOW__RESUMABLE__STATE_BACKEND", "auto") == "auto"
LOGICAL_DATE = datetime(2026, 3, 1, tzinfo=UTC)

#: What each failing try raised, so tests can assert on the message a person reads in the log.
ERRORS: list[tuple[int, str, str]] = []


@pytest.fixture(autouse=True)
def _errors():
    ERRORS.clear()
    yield
    ERRORS.clear()


class Recording:
    """Record what ``execute`` raised (type, message) before Airflow handles it."""

    def execute(self, context, **kwargs):
        # Airflow 2 threads a sentinel keyword through overridden execute() methods.
        try:
            return super().execute(context, **kwargs)  # type: ignore[misc]
        except Exception as err:
            ERRORS.append((context["ti"].try_number, type(err).__name__, str(err)))
            raise


class NotXComSerializable:
    def __repr__(self) -> str:
        return "<not serializable>"


class ResultFailsOnFirstTry(FindableToyJobOperator):
    """The job succeeds; try 1 returns a value the XCom push cannot serialize, so it fails after execute."""

    def get_job_result(self, external_id, context):
        result = super().get_job_result(external_id, context)
        if context["ti"].try_number == 1:
            return {"job_id": result["job_id"], "payload": NotXComSerializable()}
        return result


# ---- 1. a failure after execute() returns ---------------------------------------------------------


def test_a_failure_after_execute_returns_the_job_that_succeeded(job_system, request):
    job_system.idempotent = False  # no native idempotency: the operator finds jobs by token
    dag = make_dag(request)
    ResultFailsOnFirstTry(
        task_id="job", base_url=job_system.url, spec={"cmd": "etl"}, retries=1, retry_delay=timedelta(0), dag=dag
    )
    run = run_dag(dag)
    assert run.ti("job").try_number == 2, "try 1 failed pushing its XCom after execute returned"
    assert run.state == "success"
    assert len(job_system.jobs) == 1, "the retry returned the job that succeeded instead of running another"
    assert run.xcom("job")["job_id"] == "job-1"
    assert resumable_variables(dag.dag_id) == [], "dropped once Airflow recorded the success"


def test_a_failure_after_a_finished_walk_does_not_walk_again(tmp_path, request):
    class XComFailsOnFirstTry(ToyBatchOperator):
        def execute(self, context, **kwargs):
            result = super().execute(context, **kwargs)
            return {**result, "bad": NotXComSerializable()} if context["ti"].try_number == 1 else result

    dag = make_dag(request)
    XComFailsOnFirstTry(
        task_id="copy", out_dir=str(tmp_path), total=30, batch_size=10, retries=1, retry_delay=timedelta(0), dag=dag
    )
    run = run_dag(dag)
    assert run.state == "success"
    assert run.ti("copy").try_number == 2
    parts_after_try_1 = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("part-*")}
    assert len((tmp_path / "tries.jsonl").read_text().splitlines()) == 2
    # resumed_from == batches: try 2 found the walk complete and processed no batch.
    assert run.xcom("copy") == {"batches": 3, "resumed_from": 3}
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("part-*")} == parts_after_try_1
    assert read_parts(str(tmp_path)) == list(range(30))


# ---- 2. a clear after success, whatever retries became ----------------------------------------------


def test_a_clear_after_success_runs_again_when_retries_were_lowered(job_system, request):
    dag = make_dag(request)
    ToyJobOperator(task_id="job", base_url=job_system.url, spec={"cmd": "etl"}, retries=3, dag=dag)
    first = run_dag(dag)
    assert first.state == "success"
    assert first.ti("job").max_tries == 3

    changed = make_dag(request)  # the same DAG, edited: retries=2
    ToyJobOperator(task_id="job", base_url=job_system.url, spec={"cmd": "etl"}, retries=2, dag=changed)
    second = clear_and_rerun(changed, first, dag_changed=True)
    assert second.ti("job").max_tries == first.ti("job").max_tries == 3, "the clear landed on the same max_tries"
    assert second.state == "success"
    assert len(job_system.jobs) == 2, "a person's clear after success is a deliberate re-run"
    assert second.xcom("job")["job_id"] == "job-2"


# ---- 3. an id written by upstream's mixin is adopted, and re-run on the next clear ---------------------


def _bare_id_writer():
    """An operator that leaves what airflow.sdk.ResumableJobMixin leaves: the bare job id, then dies."""

    if AIRFLOW_V_3_3_PLUS and NATIVE:
        # The real thing: Airflow's own mixin writing to the native store.
        from airflow.sdk import ResumableJobMixin as UpstreamMixin

        class UpstreamCrashesMidPoll(plain_job_operator(UpstreamMixin)):
            external_id_key = "toy_job"

            def poll_until_complete(self, external_id, context):
                time.sleep(0.01)
                raise RuntimeError("worker lost while polling")

        return UpstreamCrashesMidPoll

    class BareIdInOurStore(plain_job_operator(None)):
        """Variables (or Airflow < 3.3): the same bare id, written where our operator will read it."""

        def execute(self, context):
            get_state_store(context).set("toy_job", self.submit_job(context))
            raise RuntimeError("worker lost while polling")

    return BareIdInOurStore


def test_an_adopted_upstream_id_runs_again_on_the_next_clear(job_system, request):
    dag = make_dag(request)
    _bare_id_writer()(task_id="job", base_url=job_system.url, retries=0, dag=dag)
    first = run_dag(dag)
    assert first.state == "failed"
    assert len(job_system.jobs) == 1

    ours = make_dag(request)  # the operator swapped for ours, same task_id and key
    ToyJobOperator(task_id="job", base_url=job_system.url, spec={}, retries=0, dag=ours)
    # Airflow 3.4's Clear would discard the upstream mixin's bare id (it keeps no ledger): the
    # migration steps say to keep task state for this one clear (docs/mixins.rst).
    adopted = clear_and_rerun(ours, first, dag_changed=True, keep_task_state=True)
    assert adopted.state == "success"
    assert len(job_system.jobs) == 1, "the bare id was adopted: no second job"
    assert adopted.xcom("job")["job_id"] == "job-1"

    again = clear_and_rerun(ours, adopted)
    assert again.state == "success"
    assert len(job_system.jobs) == 2, "the adopted record was upgraded, so a clear after success re-runs"
    assert again.xcom("job")["job_id"] == "job-2"


# ---- 4. a DAG run deleted and created again under the same run_id -----------------------------------


def test_a_recreated_run_does_not_resume_the_deleted_runs_walk(tmp_path, request):
    dag = make_dag(request)
    ToyBatchOperator(
        task_id="copy", out_dir=str(tmp_path), total=100, batch_size=10, fail_on={1: 5}, checkpoint_every=1, dag=dag
    )
    first = run_dag(dag, logical_date=LOGICAL_DATE)
    assert first.state == "failed"

    again = make_dag(request)
    ToyBatchOperator(task_id="copy", out_dir=str(tmp_path), total=100, batch_size=10, dag=again)
    second = run_dag(again, logical_date=LOGICAL_DATE)
    assert second.run_id == first.run_id
    assert second.state == "success"
    starts = [json.loads(line)["start_item"] for line in (tmp_path / "tries.jsonl").read_text().splitlines()]
    assert starts == [0, 0], "the re-created run started at batch 0, not at the deleted run's batch 5"
    assert second.xcom("copy") == {"batches": 10, "resumed_from": 0}


def test_a_recreated_run_does_not_reattach_to_the_deleted_runs_job(job_system, request):
    dag = make_dag(request)
    ToyJobOperator(task_id="job", base_url=job_system.url, spec={}, crash_in_poll_on_tries=(1,), dag=dag)
    first = run_dag(dag, logical_date=LOGICAL_DATE)
    assert first.state == "failed"

    again = make_dag(request)
    ToyJobOperator(task_id="job", base_url=job_system.url, spec={}, dag=again)
    second = run_dag(again, logical_date=LOGICAL_DATE)
    assert second.run_id == first.run_id
    assert second.state == "success"
    assert len(job_system.jobs) == 2, "the new run submitted its own job"
    assert second.xcom("job")["job_id"] == "job-2"


def test_a_recreated_run_gets_a_new_token_from_an_idempotent_service(job_system, request):
    dag = make_dag(request)
    ToyJobOperator(task_id="job", base_url=job_system.url, spec={}, dag=dag)
    first = run_dag(dag, logical_date=LOGICAL_DATE)
    second = run_dag(dag, logical_date=LOGICAL_DATE)
    assert (first.state, second.state) == ("success", "success")
    assert second.run_id == first.run_id
    assert len(job_system.jobs) == 2, "the service did not hand the new run the old run's job"
    assert second.xcom("job")["token"] != first.xcom("job")["token"]


# ---- 5. errors no retry can fix fail on the first try ----------------------------------------------


def _failed_once(run, task_id):
    ti = run.ti(task_id)
    assert run.state == "failed"
    assert ti.try_number == 1, f"failed on try {ti.try_number}: the retries were used on an error no retry fixes"
    assert ti.max_tries == 3


def test_an_unknown_state_backend_fails_the_dag_at_parse_time(job_system, request, state_backend):
    from airflow.providers.resumable.state import StateBackendConfigError

    state_backend("varaible")
    with pytest.raises(StateBackendConfigError, match=r"state_backend .* = 'varaible'"):
        ToyJobOperator(task_id="job", base_url=job_system.url, spec={})


def test_an_unknown_state_backend_at_run_time_fails_on_the_first_try(job_system, request, state_backend):
    class Op(Recording, ToyJobOperator):
        pass

    dag = make_dag(request)
    Op(task_id="job", base_url=job_system.url, spec={}, retries=3, retry_delay=timedelta(0), dag=dag)
    state_backend("varaible")  # changed on the worker after the DAG was parsed
    run = run_dag(dag)
    _failed_once(run, "job")
    assert ERRORS[0][1] == "StateBackendConfigError"
    assert "'varaible'" in ERRORS[0][2]
    assert job_system.submit_calls == 0


class WritesStateFirst(Recording, ToyJobOperator):
    """Hand-edited state: writes ``raw`` under ``key`` through the real backend, then runs."""

    def __init__(self, *, raw, key="toy_job", **kwargs):
        super().__init__(**kwargs)
        self.raw = raw
        self.key = key

    def execute(self, context, **kwargs):
        if context["ti"].try_number == 1:
            get_state_store(context).set(self.key, self.raw)
        return super().execute(context, **kwargs)


CORRUPT_JOB_RECORDS = {
    "null-token": ({"kind": "resumable-job", "seq": 1, "token": None, "external_id": "job-9"}, r"token"),
    "negative-seq": ({"kind": "resumable-job", "seq": -1, "token": "rsm-x", "external_id": "job-9"}, r"seq"),
    "unknown-kind": ({"kind": "resumable-jobs", "seq": 1, "token": "rsm-x"}, r"unknown kind 'resumable-jobs'"),
    "a-list": ([1, 2], r"neither a job record of this provider nor a bare job id"),
}


@pytest.mark.parametrize("case", sorted(CORRUPT_JOB_RECORDS))
def test_a_corrupt_job_record_fails_on_the_first_try_and_says_where_it_is(job_system, request, case):
    raw, problem = CORRUPT_JOB_RECORDS[case]
    dag = make_dag(request)
    WritesStateFirst(
        task_id="job", base_url=job_system.url, spec={}, raw=raw, retries=3, retry_delay=timedelta(0), dag=dag
    )
    run = run_dag(dag)
    _failed_once(run, "job")
    (_, kind, message), *_ = ERRORS
    assert kind == "CorruptStateError"
    assert re_search(problem, message)
    assert "unreachable" not in message
    # The exact command a person runs to repair it, on every backend.
    assert f"state delete --dag-id {dag.dag_id} --run-id {run.run_id} --task-id job --key toy_job" in message
    if NATIVE:
        assert "task_state_store key 'toy_job'" in message
        assert "/state-store/toy_job?map_index=-1" in message
    else:
        assert "airflow variables delete resumable." in message
    assert job_system.submit_calls == 0, "corrupt state is never a reason to submit"


def re_search(pattern: str, text: str) -> bool:
    import re

    return re.search(pattern, text) is not None


class BatchesWithCheckpoint(Recording, ToyBatchOperator):
    def __init__(self, *, raw, **kwargs):
        super().__init__(**kwargs)
        self.raw = raw

    def execute(self, context, **kwargs):
        if context["ti"].try_number == 1:
            self.state_store(context).set(self.checkpoint_key, self.raw)
        return super().execute(context, **kwargs)


CORRUPT_CHECKPOINTS = {
    "negative-cursor": (
        {"kind": "resumable-checkpoint", "schema_name": "ItemsCursor", "batches_done": -5, "data": {"next_item": 0}},
        r"batches_done: Input should be greater than or equal to 0",
    ),
    "other-schema": (
        {"kind": "resumable-checkpoint", "schema_name": "PageCursor", "batches_done": 2, "data": {"page": 3}},
        r"does not fit ItemsCursor",
    ),
    "unknown-kind": ({"kind": "checkpoint", "batches_done": 2}, r"unknown kind 'checkpoint'"),
}


@pytest.mark.parametrize("case", sorted(CORRUPT_CHECKPOINTS))
def test_a_bad_checkpoint_fails_on_the_first_try_and_writes_nothing(tmp_path, request, case):
    raw, problem = CORRUPT_CHECKPOINTS[case]
    dag = make_dag(request)
    BatchesWithCheckpoint(
        task_id="copy",
        out_dir=str(tmp_path),
        total=20,
        batch_size=5,
        raw=raw,
        retries=3,
        retry_delay=timedelta(0),
        dag=dag,
    )
    run = run_dag(dag)
    _failed_once(run, "copy")
    (_, kind, message), *_ = ERRORS
    assert kind == "CheckpointSchemaError"
    assert re_search(problem, message), message
    assert "stateful/checkpoint" in message
    assert not list(tmp_path.glob("part-*")), "no batch ran, so nothing like part--0005 was written"


def test_a_spec_conflict_fails_without_using_the_retries(job_system, request):
    class SpecChangesOnRetry(Recording, ToyJobOperator):
        def job_fingerprint(self, context):
            return f"spec-of-try-{context['ti'].try_number}"

    dag = make_dag(request)
    SpecChangesOnRetry(
        task_id="job",
        base_url=job_system.url,
        spec={},
        crash_in_poll_on_tries=(1,),
        retries=3,
        retry_delay=timedelta(0),
        dag=dag,
    )
    run = run_dag(dag)
    assert run.state == "failed"
    assert run.ti("job").try_number == 2, "try 2 met the conflict and did not retry into it twice more"
    assert [kind for _, kind, _ in ERRORS] == ["SimulatedCrash", "ResumableJobConflictError"]
    assert "spec_change_policy" in ERRORS[1][2]
    assert len(job_system.jobs) == 1


# ---- 6. state that is not JSON at all --------------------------------------------------------------


def test_a_value_that_is_not_json_is_named_as_bad_state(job_system, request):
    class WritesRawBytes(Recording, ToyJobOperator):
        def execute(self, context, **kwargs):
            if context["ti"].try_number == 1:
                _write_raw(context, "toy_job", "{not json")
            return super().execute(context, **kwargs)

    dag = make_dag(request)
    WritesRawBytes(task_id="job", base_url=job_system.url, spec={}, retries=3, retry_delay=timedelta(0), dag=dag)
    run = run_dag(dag)
    _failed_once(run, "job")
    (_, kind, message), *_ = ERRORS
    assert kind == "CorruptStateError"
    assert "not JSON" in message
    assert "unreachable" not in message
    assert job_system.submit_calls == 0


def _write_raw(context, key: str, raw: str) -> None:
    """Put bytes that are not JSON where the configured backend keeps ``key``, as a hand edit would."""
    ti = context["ti"]
    if NATIVE:
        from airflow._shared.state import TaskScope as AirflowTaskScope
        from airflow.state.metastore import MetastoreBackend

        scope = AirflowTaskScope(dag_id=ti.dag_id, run_id=ti.run_id, task_id=ti.task_id, map_index=ti.map_index)
        MetastoreBackend().set(scope, key, raw)
    else:
        from airflow.models.variable import Variable

        store = get_state_store(context)
        Variable.set(store.key, raw)


# ---- a clear that discards task state (Airflow 3.4's default) never starts a second job --------------


def _job_dag(request, job_system, **kwargs):
    dag = make_dag(request)
    ToyJobOperator(task_id="job", base_url=job_system.url, retries=0, dag=dag, **kwargs)
    return dag


def test_a_clear_that_discards_task_state_reattaches_to_the_job_still_running(job_system, request):
    dag = _job_dag(request, job_system, spec={"cmd": "etl"}, crash_in_poll_on_tries=(1,))
    first = run_dag(dag)
    assert first.state == "failed", "the worker was lost while the job ran"
    (running,) = job_system.jobs.values()
    assert running.state in ("PENDING", "RUNNING")
    second = clear_and_rerun(dag, first, keep_task_state=False)
    assert second.state == "success"
    assert list(job_system.jobs) == [running.job_id], "one job, although the clear discarded the task's state"
    assert second.xcom("job")["job_id"] == running.job_id


def test_a_clear_that_discards_task_state_after_success_starts_a_new_job(job_system, request):
    dag = _job_dag(request, job_system, spec={"cmd": "etl"})
    first = run_dag(dag)
    assert first.state == "success"
    second = clear_and_rerun(dag, first, keep_task_state=False)
    assert second.state == "success"
    assert len(job_system.jobs) == 2, "a person's clear after success is a deliberate re-run"
    assert second.xcom("job")["job_id"] == "job-2"


def test_a_clear_that_discards_task_state_after_the_job_failed_submits_anew(job_system, request):
    dag = _job_dag(request, job_system, spec={"cmd": "etl", "outcome": "FAILED"})
    first = run_dag(dag)
    assert first.state == "failed"
    second = clear_and_rerun(dag, first, keep_task_state=False)
    assert second.state == "failed", "the new job fails the same way"
    tokens = [job.token for job in job_system.jobs.values()]
    assert len(tokens) == 2, "the failed job is not reattached to: one new submission"
    assert tokens[0] != tokens[1]
