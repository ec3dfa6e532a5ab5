"""
The state CLI on what ``@task.resumable`` functions stored, written inside Airflow's own task runner
(``dag.test()``) on the leg's backend: a loop's checkpoint, a batch walk's cursor and a job's record
are listed with what they mean for the next try, as an operator's are.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from airflow.providers.resumable.compat.version_compat import AIRFLOW_V_3_0_PLUS
from airflow.providers.resumable.testing import clear_and_rerun, run_dag
from tests.integration.harness import make_dag
from tests.integration.test_state_cli import BACKEND, cli_json
from tests.integration.test_taskflow_dag_test import job_calls

if AIRFLOW_V_3_0_PLUS:
    from airflow.sdk import task
else:
    from airflow.decorators import task

pytestmark = pytest.mark.integration

NO_RETRIES = {"retries": 0, "retry_delay": timedelta(0)}


def meanings(capsys, dag, task_id, *more):
    rows = cli_json(capsys, "state", "list", "--dag-id", dag.dag_id, "--task-id", task_id, *more)
    return {row["key"]: row["meaning"] for row in rows}


def test_a_failed_loop_batches_and_job_are_listed_with_what_the_next_try_does(job_system, request, capsys):
    dag = make_dag(request)

    @task.resumable(checkpoint_every=5, **NO_RETRIES)
    def convert(items: list[int], resumable):
        for item in resumable.iterate(items, name="files"):
            if item == 12:
                raise RuntimeError("worker lost at item 12")

    @task.resumable(checkpoint_every=1, **NO_RETRIES)
    def pages(resumable):
        def page(cursor, index):
            if index == 3:
                raise RuntimeError("the API went away at page 3")
            return {"page": cursor["page"] + 1}

        resumable.run_batches(page, start={"page": 10})

    @task.resumable(**NO_RETRIES)
    def run_job(resumable):
        return resumable.job(**job_calls(job_system, crash_in_poll_on_try=1))

    with dag:
        convert(list(range(20)))
        pages()
        run_job()
    run = run_dag(dag)
    assert run.state == "failed"

    loop = meanings(capsys, dag, "convert", "--all")  # the index is bookkeeping: listed when asked
    assert loop["taskflow/files"].startswith(
        "loop 'files' of the @task.resumable function (handle.iterate): 12 items done, written at try 1 ("
    ), loop
    assert loop["taskflow/files"].endswith("the next try resumes at item 12")
    assert loop["taskflow/__keys__"].endswith("(its loops, batches and watermark windows): files")

    walk = meanings(capsys, dag, "pages")
    assert walk["taskflow/batches"].startswith(
        "batches 'batches' of the @task.resumable function (handle.run_batches): 3 batches done"
    ), walk
    assert walk["taskflow/batches"].endswith('the next try resumes at batch 3 from cursor {"page": 13}')

    job = meanings(capsys, dag, "run_job")
    (token,) = {j.token for j in job_system.jobs.values()}
    assert list(job) == ["job"], job
    assert job["job"].startswith("job job-1, submitted at try 1 ("), "the same codec and words as an operator's record"
    assert f"token {token}" in job["job"]


@pytest.mark.skipif(BACKEND != "task_state_store", reason="Variables drop a task's state after its success")
def test_after_success_the_listing_says_a_clear_starts_over(job_system, request, capsys):
    dag = make_dag(request)

    @task.resumable(**NO_RETRIES)
    def convert(items: list[int], resumable):
        for _ in resumable.iterate(items):
            pass

    @task.resumable(**NO_RETRIES)
    def run_job(resumable):
        return resumable.job(**job_calls(job_system))

    with dag:
        convert(list(range(7)))
        run_job()
    run = run_dag(dag)
    assert run.state == "success"

    loop = meanings(capsys, dag, "convert")["taskflow/loop0"]
    assert "complete after 7 items" in loop, loop
    assert loop.endswith("its task instance succeeded at try 1, so a clear starts the function over"), loop
    job = meanings(capsys, dag, "run_job")["job"]
    assert job.endswith("its task instance succeeded at try 1, so a clear submits a new job"), job

    rerun = clear_and_rerun(dag, run)
    assert rerun.state == "success"
    assert len(job_system.jobs) == 2, "the listing said a clear submits a new job: it did"
