"""``@task.resumable`` inside Airflow's own task runner (``dag.test()``), with real retries."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, timedelta

import pytest
import requests

from airflow.providers.resumable.compat.version_compat import AIRFLOW_V_3_0_PLUS
from airflow.providers.resumable.mixins import JobNotFoundError
from airflow.providers.resumable.state import get_state_store
from airflow.providers.resumable.testing import clear_and_rerun, run_dag
from tests.integration.harness import make_dag

if AIRFLOW_V_3_0_PLUS:
    from airflow.sdk import get_current_context, task
else:
    from airflow.decorators import task
    from airflow.operators.python import get_current_context

pytestmark = pytest.mark.integration

NO_DELAY = {"retry_delay": timedelta(0)}


def record(path, **entry):
    with path.open("a") as out:
        out.write(json.dumps(entry) + "\n")


def read(path):
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def by_try(entries, key="item"):
    tries: dict[int, list] = {}
    for entry in entries:
        tries.setdefault(entry["try"], []).append(entry[key])
    return tries


def test_a_sync_loop_fails_mid_way_and_resumes_at_the_durable_item(tmp_path, request):
    done = tmp_path / "done.jsonl"
    dag = make_dag(request)

    @task.resumable(retries=1, checkpoint_every=5, **NO_DELAY)
    def process(items: list[int], resumable, ti=None):
        for item in resumable.iterate(items):
            if ti.try_number == 1 and item == 17:
                raise RuntimeError("worker lost at item 17")
            record(done, item=item, **{"try": ti.try_number})
        return {"handle": repr(resumable)}

    with dag:
        process(list(range(30)))
    run = run_dag(dag)
    assert run.state == "success"
    assert run.ti("process").try_number == 2
    # The failure flushed the checkpoint after item 16 (checkpoint_every=5 alone would say 15).
    assert by_try(read(done)) == {1: list(range(17)), 2: list(range(17, 30))}


def test_an_async_loop_fails_mid_way_and_resumes_at_the_durable_item(tmp_path, request):
    done = tmp_path / "done.jsonl"
    dag = make_dag(request)

    @task.resumable(retries=1, checkpoint_every=4, **NO_DELAY)
    async def process(items: list[int], resumable):
        try_number = get_current_context()["ti"].try_number
        async for item in resumable.iterate(items):
            await asyncio.sleep(0)
            if try_number == 1 and item == 9:
                raise RuntimeError("worker lost at item 9")
            record(done, item=item, **{"try": try_number})
        return "done"

    with dag:
        process(list(range(12)))
    run = run_dag(dag)
    assert run.state == "success"
    assert run.xcom("process") == "done"
    assert by_try(read(done)) == {1: list(range(9)), 2: list(range(9, 12))}


def test_a_hard_kill_resumes_from_the_last_policy_checkpoint(tmp_path, request):
    done = tmp_path / "done.jsonl"
    dag = make_dag(request)

    @task.resumable(retries=1, checkpoint_every=5, **NO_DELAY)
    def process(items: list[int], resumable, ti=None):
        loop = resumable.iterate(items)
        for item in loop:
            if ti.try_number == 1 and item == 13:
                loop.walk.pending = 0  # a SIGKILL gives Python no chance to flush
                raise RuntimeError("killed at item 13")
            record(done, item=item, **{"try": ti.try_number})

    with dag:
        process(list(range(20)))
    run = run_dag(dag)
    assert run.state == "success"
    assert by_try(read(done))[2][0] == 10, "items 10-12 redone after the last checkpoint at 10"


def job_calls(system, *, crash_in_poll_on_try=None):
    base = system.url

    def submit(token):
        response = requests.post(f"{base}/jobs", json={"spec": {}, "token": token}, timeout=5)
        response.raise_for_status()
        return response.json()["job_id"]

    def status(job_id):
        response = requests.get(f"{base}/jobs/{job_id}", timeout=5)
        if response.status_code == 404:
            raise JobNotFoundError(job_id)
        response.raise_for_status()
        return response.json()["state"]

    def poll(job_id):
        while (state := status(job_id)) in ("PENDING", "RUNNING"):
            if get_current_context()["ti"].try_number == crash_in_poll_on_try:
                raise RuntimeError(f"worker lost while polling {job_id}")
        if state != "SUCCEEDED":
            raise RuntimeError(f"job {job_id} ended {state}")

    return {
        "submit": submit,
        "status": status,
        "is_active": lambda s: s in ("PENDING", "RUNNING"),
        "is_succeeded": lambda s: s == "SUCCEEDED",
        "poll": poll,
        "result": lambda job_id: {"job_id": job_id},
    }


def test_a_job_survives_a_lost_submit_response_with_one_job(job_system, request):
    job_system.faults.drop_submit_responses = 1
    dag = make_dag(request)

    @task.resumable(retries=1, **NO_DELAY)
    def run_job(resumable):
        return resumable.job(**job_calls(job_system))

    with dag:
        run_job()
    run = run_dag(dag)
    assert run.state == "success"
    assert run.ti("run_job").try_number == 2
    assert len(job_system.jobs) == 1, "the retry re-submitted with the same token and got the same job"
    assert run.xcom("run_job") == {"job_id": "job-1"}


def test_a_job_survives_a_crash_mid_poll_with_one_job(job_system, request):
    dag = make_dag(request)

    @task.resumable(retries=1, **NO_DELAY)
    async def run_job(resumable):
        return await resumable.ajob(**job_calls(job_system, crash_in_poll_on_try=1))

    with dag:
        run_job()
    run = run_dag(dag)
    assert run.state == "success"
    assert run.ti("run_job").try_number == 2
    assert job_system.submit_calls == 1
    assert len(job_system.jobs) == 1


def test_a_cleared_succeeded_task_starts_fresh(tmp_path, request):
    done = tmp_path / "done.jsonl"
    dag = make_dag(request)

    @task.resumable(checkpoint_every=3)
    def process(items: list[int], resumable, ti=None):
        for item in resumable.iterate(items):
            record(done, item=item, **{"try": ti.try_number})

    with dag:
        process(list(range(10)))
    first = run_dag(dag)
    assert first.state == "success"
    second = clear_and_rerun(dag, first)
    assert second.state == "success"
    items = [entry["item"] for entry in read(done)]
    assert items == list(range(10)) * 2, "the clear after success walked every item again"


def test_each_map_index_resumes_its_own_loop(tmp_path, request):
    done = tmp_path / "done.jsonl"
    dag = make_dag(request)

    @task.resumable(retries=1, checkpoint_every=2, **NO_DELAY)
    def process(part: int, resumable, ti=None):
        for item in resumable.iterate(range(6)):
            if ti.try_number == 1 and item == part + 2:
                raise RuntimeError(f"part {part} lost at item {item}")
            record(done, part=part, item=item, **{"try": ti.try_number})
        return part

    with dag:
        process.partial().expand(part=[0, 1, 2])
    run = run_dag(dag)
    assert run.state == "success"
    entries = read(done)
    for part in (0, 1, 2):
        mine = by_try([e for e in entries if e["part"] == part])
        assert mine == {1: list(range(part + 2)), 2: list(range(part + 2, 6))}, part


def test_a_raw_store_is_finished_after_success_so_a_clear_starts_fresh(tmp_path, request):
    """The issue's case: ``get_state_store`` in a plain ``@task``, saving ``next`` as it goes."""
    done = tmp_path / "done.jsonl"
    dag = make_dag(request)

    @task
    def process(items: list[int]):
        store = get_state_store(get_current_context())
        start = store.get("next") or 0
        for item in items[start:]:
            record(done, item=item, **{"try": 1})
            if (item + 1) % 5 == 0:
                store.set("next", item + 1)

    with dag:
        process(list(range(10)))
    first = run_dag(dag)
    assert first.state == "success"
    second = clear_and_rerun(dag, first)
    assert second.state == "success"
    assert [entry["item"] for entry in read(done)] == list(range(10)) * 2


def test_a_sync_job_survives_a_crash_mid_poll_with_one_job(job_system, request):
    dag = make_dag(request)

    @task.resumable(retries=1, **NO_DELAY)
    def run_job(resumable):
        return resumable.job(**job_calls(job_system, crash_in_poll_on_try=1))

    with dag:
        run_job()
    run = run_dag(dag)
    assert run.state == "success"
    assert run.ti("run_job").try_number == 2
    assert job_system.submit_calls == 1
    assert run.xcom("run_job") == {"job_id": "job-1"}


def test_each_map_index_runs_its_own_job_once(job_system, request):
    dag = make_dag(request)

    @task.resumable(retries=1, **NO_DELAY)
    def run_job(part: int, resumable):
        return resumable.job(**job_calls(job_system, crash_in_poll_on_try=1))

    with dag:
        run_job.partial().expand(part=[0, 1, 2])
    run = run_dag(dag)
    assert run.state == "success"
    assert len(job_system.jobs) == 3, "one job per map index, none duplicated by the retries"
    assert job_system.submit_calls == 3


def test_a_watermark_moves_only_with_a_successful_run(tmp_path, request):
    from airflow.providers.resumable.testing import dag_for_test

    seen = tmp_path / "seen.jsonl"
    changes = list(range(1, 11))
    name = f"{request.node.name}"

    def build(fail: bool):
        dag = dag_for_test(f"it_taskflow_{name}")

        @task.resumable
        def extract(resumable):
            since = resumable.load_watermark(initial_value=0)
            new = [c for c in changes if c > since]
            record(seen, since=since, new=new, **{"try": 1})
            if new:
                resumable.advance_watermark(max(new))
            if fail:
                raise RuntimeError("the load failed after staging the mark")

        with dag:
            extract()
        return dag

    from datetime import datetime

    assert run_dag(build(False), logical_date=datetime(2026, 1, 1, tzinfo=UTC)).state == "success"
    changes.extend([11, 12])
    assert run_dag(build(True), logical_date=datetime(2026, 1, 2, tzinfo=UTC)).state == "failed"
    assert run_dag(build(False), logical_date=datetime(2026, 1, 3, tzinfo=UTC)).state == "success"
    assert [entry["since"] for entry in read(seen)] == [0, 10, 10]
    assert read(seen)[-1]["new"] == [11, 12]


@pytest.mark.parametrize("route", ["raw", "handle"])
def test_a_secret_is_refused_on_both_routes_without_using_the_retries(monkeypatch, request, route):
    import secrets

    if AIRFLOW_V_3_0_PLUS:
        from airflow.sdk import BaseHook
    else:
        from airflow.hooks.base import BaseHook

    password = f"pw-{secrets.token_hex(10)}"
    monkeypatch.setenv("AIRFLOW_CONN_RAW_SECRET", f"http://reader:{password}@example.com")
    dag = make_dag(request)

    @task.resumable(retries=1, **NO_DELAY)
    def keep(resumable):
        BaseHook.get_connection("raw_secret")  # Airflow registers the password with its secrets masker
        cursor = {"next": f"https://example.com/items?page=2&key={password}"}
        if route == "raw":
            get_state_store(get_current_context()).set("cursor", cursor)
        else:
            resumable.checkpoints("cursor").save(cursor)

    with dag:
        keep()
    run = run_dag(dag)
    assert run.state == "failed"
    assert run.ti("keep").try_number == 1, "SecretInStateError fails at once: a retry would store it again"
