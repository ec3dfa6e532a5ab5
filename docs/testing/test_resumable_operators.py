# Testing your own resumable operators: run on every supported Airflow (2.11, 3.x) with a migrated
# metadata DB (`airflow db migrate`) in the AIRFLOW_HOME your tests use. docs/testing.rst explains it.
from __future__ import annotations

import json
from datetime import timedelta

import pytest

from airflow.providers.resumable.mixins import Checkpoint, ResumableJobMixin, StatefulOperatorMixin
from airflow.providers.resumable.testing import clear_and_rerun, fail_on_tries, run_dag

# version_compat picks Airflow 2's or 3's classes, so this file runs on both; your code may import
# BaseOperator from airflow.sdk (Airflow 3) or airflow.models (Airflow 2) instead.
from airflow.providers.resumable.version_compat import AirflowException, BaseOperator

# --- the operators under test (yours live in your package) -----------------------------------------

# A job system that answers a repeated token with the job it already created, as Databricks and AWS
# do. Every try runs in the test's process, so a module-level dict is shared by all of them.
JOBS: dict[str, dict] = {}


class SubmitReport(ResumableJobMixin, BaseOperator):
    external_id_key = "report_job"

    def execute(self, context):
        return self.execute_resumable(context)

    def submit_job(self, context):
        for job_id, job in JOBS.items():
            if job["token"] == self.idempotency_token:
                return job_id
        job_id = f"job-{len(JOBS) + 1}"
        JOBS[job_id] = {"token": self.idempotency_token, "state": "SUCCEEDED"}
        return job_id

    def get_job_status(self, external_id, context):
        return JOBS[external_id]["state"]

    def is_job_active(self, status):
        return status in ("PENDING", "RUNNING")

    def is_job_succeeded(self, status):
        return status == "SUCCEEDED"

    def poll_until_complete(self, external_id, context):
        if JOBS[external_id]["state"] != "SUCCEEDED":
            raise AirflowException(f"{external_id} failed")

    def get_job_result(self, external_id, context):
        return {"job_id": external_id}


class Cursor(Checkpoint):
    next_row: int


class CopyRows(StatefulOperatorMixin, BaseOperator):
    """Copies rows 0..total-1 to part files, 10 per batch, checkpointing after each batch."""

    checkpoint_model = Cursor

    def __init__(self, *, out_dir: str, total: int, **kwargs):
        super().__init__(checkpoint_every=1, **kwargs)
        self.out_dir = out_dir
        self.total = total

    def execute(self, context):
        def copy_batch(cursor: Cursor, index: int) -> Cursor | None:
            rows = list(range(cursor.next_row, min(cursor.next_row + 10, self.total)))
            self.write_part(index, rows)
            end = cursor.next_row + len(rows)
            return Cursor(next_row=end) if end < self.total else None

        walk = self.run_batches(context, copy_batch, start=Cursor(next_row=0))
        return {"resumed_from": walk.resumed_from, "batches_this_try": walk.batches_this_try}

    def write_part(self, index: int, rows: list[int]) -> None:
        # A fixed name per batch: a batch done again replaces its part instead of duplicating it.
        with open(f"{self.out_dir}/part-{index:05d}.json", "w") as part:
            json.dump(rows, part)


# --- the tests --------------------------------------------------------------------------------------


@pytest.fixture
def jobs():
    JOBS.clear()
    yield JOBS
    JOBS.clear()


def test_a_lost_submit_response_does_not_start_a_second_job(resumable_dag, jobs):
    SubmitReport(task_id="report", dag=resumable_dag, retries=1, retry_delay=timedelta(0))

    # Try 1 creates the job, then its response is lost (after=True: the call ran, then raised).
    with fail_on_tries(SubmitReport, "submit_job", tries={1}, after=True) as fault:
        run = run_dag(resumable_dag)

    assert fault.fired == [1]
    assert run.state == "success"
    assert run.ti("report").try_number == 2
    assert len(jobs) == 1, "the retry found the job by its token instead of starting another"
    assert run.xcom("report") == {"job_id": "job-1"}


def test_a_clear_after_success_runs_the_job_again(resumable_dag, jobs):
    SubmitReport(task_id="report", dag=resumable_dag)
    first = run_dag(resumable_dag)
    assert first.state == "success"

    # What a person's "Clear" does in the UI, on the same run: it keeps the run's stored state.
    second = clear_and_rerun(resumable_dag, first)

    assert second.run_id == first.run_id
    assert second.state == "success"
    assert second.xcom("report") == {"job_id": "job-2"}, "a clear after success starts a fresh job"


def test_a_batch_walk_resumes_after_its_last_checkpoint(resumable_dag, resumable_memory_store, tmp_path):
    CopyRows(task_id="copy", out_dir=str(tmp_path), total=100, dag=resumable_dag, retries=1, retry_delay=timedelta(0))

    # The worker dies while writing the 4th batch of try 1: batches 0-2 are done and checkpointed.
    with fail_on_tries(CopyRows, "write_part", tries={1}, at_call=4) as fault:
        run = run_dag(resumable_dag)

    assert fault.fired == [1]
    assert run.state == "success"
    assert run.ti("copy").try_number == 2
    assert run.xcom("copy") == {"resumed_from": 3, "batches_this_try": 7}
    rows = [row for part in sorted(tmp_path.glob("part-*.json")) for row in json.loads(part.read_text())]
    assert rows == list(range(100)), "every row exactly once"
    # resumable_memory_store is the store every try used: read what the operator wrote there.
    assert ("set", "stateful/checkpoint") in resumable_memory_store.calls
