"""
The task instances the UI tests look at: one real run per state the Resumable tab explains.

Each scenario is a DAG run made inside Airflow's own task runner (``run_dag``: ``dag.test()``, real
tries and retries, no retry delay) against the metadata DB of the current ``AIRFLOW_HOME``, with the
state backend this leg selects (``[resumable] state_backend``: the native store on 3.3+ with
``auto``, Variables with ``variable``). ``run_dag`` also writes each DAG serialized to the DB, which
is all the api-server needs to show the task-instance page. The DAGs are built by the functions
below, so the api-server (which has the repository on its ``PYTHONPATH``) can import them too.

:func:`seed` runs everything once and returns a :class:`Scenario` per name (``SCENARIOS``), each
with what the stored state must show, checked against the inventory (the CLI's model) before any
browser opens, so a test failing later fails on the tab, not on the seeding.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.resumable.mixins import WatermarkMixin
from airflow.providers.resumable.state import codec
from airflow.providers.resumable.testing import dag_for_test, fail_on_tries, run_dag
from airflow.providers.resumable.version_compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_3_PLUS, BaseOperator
from tests.support.fake_jobs import FakeJobServer, FakeJobSystem
from tests.support.toy_operators import ToyBatchOperator, ToyJobOperator

if TYPE_CHECKING:
    from collections.abc import Iterator

#: The tab's four states, and the copies the action tests change (delete, reset), so that the tests
#: that only look never depend on the order the tests run in.
RUNNING_JOB = "running_job"
SUCCEEDED = "succeeded"
FAILED_MID_WALK = "failed_mid_walk"
INCREMENTAL_WINDOW = "incremental_window"
DELETE_ME = "delete_me"
RESET_ME = "reset_me"
#: A mapped task (two map indexes) whose walks both failed part way: the tab's route for a mapped
#: task instance (``.../tasks/T/mapped/M/plugin/resumable``); the scenario is map index 1.
MAPPED_WALK = "mapped_walk"
#: A DAG of no interest to the provider: the only one the test auth manager lets ``outsider`` see.
UNRELATED = "unrelated"
SCENARIOS = (RUNNING_JOB, SUCCEEDED, FAILED_MID_WALK, INCREMENTAL_WINDOW, DELETE_ME, RESET_ME, MAPPED_WALK, UNRELATED)
#: DAG id prefix; ``UNRELATED_DAG_ID`` is what tests/ui/auth_manager.py lets ``outsider`` read.
PREFIX = "ui_"
UNRELATED_DAG_ID = PREFIX + UNRELATED

#: The failed mid-walk copy: 100 items in batches of 10; try 1 dies at batch 4, try 2 (the last) at 6.
WALK_TOTAL, WALK_BATCH, WALK_DIES_AT = 100, 10, 6
#: The incremental source: items with sequence numbers; the mark is the highest sequence committed.
SOURCE: list[tuple[int, str]] = []


def native_store() -> bool:
    """Whether this leg keeps task state in Airflow's native store (3.3+ with backend ``auto``)."""
    return AIRFLOW_V_3_3_PLUS and os.environ.get("AIRFLOW__RESUMABLE__STATE_BACKEND", "auto") != "variable"


@dataclass
class Scenario:
    """One seeded task instance, and what its stored state holds."""

    name: str
    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    ti_state: str | None
    #: What the seeding checked was stored (keys, the job id, the batches done, the mark ...).
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def query(self) -> str:
        """The task instance as the tab's query string (a run id's ``+`` encoded: it is no space)."""
        from urllib.parse import urlencode

        return urlencode(
            {"dag_id": self.dag_id, "run_id": self.run_id, "task_id": self.task_id, "map_index": self.map_index}
        )


class ChangedItemsOperator(WatermarkMixin, BaseOperator):
    """Reads what changed since the mark from ``SOURCE``, writes it, stages the highest sequence seen."""

    def execute(self, context: Any) -> dict[str, Any]:
        since = self.load_watermark(context, initial_value=0)
        changed = [(seq, item) for seq, item in SOURCE if seq > since]
        self.write(changed)
        if changed:
            self.advance_watermark(context, max(seq for seq, _ in changed))
        return {"since": since, "items": [item for _, item in changed]}

    def write(self, changed: list[tuple[int, str]]) -> None:
        """Where the data becomes durable; the seeding makes it fail."""


class NothingOperator(BaseOperator):
    def execute(self, context: Any) -> None:
        return None


def add(*ids: str) -> None:
    start = SOURCE[-1][0] if SOURCE else 0
    SOURCE.extend((start + n + 1, item) for n, item in enumerate(ids))


# ---------------------------------------------------------------------------------------- the DAGs


def job_dag(name: str, base_url: str) -> Any:
    dag = dag_for_test(PREFIX + name)
    ToyJobOperator(
        task_id="job",
        base_url=base_url,
        spec={"cmd": "etl", "outcome": "SUCCEEDED"},
        retries=1,
        retry_delay=timedelta(0),
        dag=dag,
    )
    return dag


def walk_dag(name: str, out_dir: str) -> Any:
    dag = dag_for_test(PREFIX + name)
    ToyBatchOperator(
        task_id="copy",
        out_dir=out_dir,
        total=WALK_TOTAL,
        batch_size=WALK_BATCH,
        fail_on={1: 4, 2: WALK_DIES_AT},
        checkpoint_every=1,
        retries=1,
        retry_delay=timedelta(0),
        dag=dag,
    )
    return dag


def mapped_walk_dag(name: str, out_dir: str) -> Any:
    dag = dag_for_test(PREFIX + name)
    ToyBatchOperator.partial(
        task_id="copy",
        total=WALK_TOTAL,
        batch_size=WALK_BATCH,
        fail_on={1: WALK_DIES_AT},
        checkpoint_every=1,
        retries=0,
        retry_delay=timedelta(0),
        dag=dag,
    ).expand(out_dir=[os.path.join(out_dir, "0"), os.path.join(out_dir, "1")])
    return dag


def incremental_dag(name: str) -> Any:
    dag = dag_for_test(PREFIX + name)
    kwargs: dict[str, Any] = {}
    if AIRFLOW_V_3_0_PLUS:
        from airflow.sdk import Asset

        # The asset store keeps the mark on 3.3+ (backend auto); a Variable otherwise.
        kwargs["outlets"] = [Asset(name=f"{dag.dag_id}_items", uri=f"wm://{dag.dag_id}/items")]
    ChangedItemsOperator(task_id="extract", retries=0, retry_delay=timedelta(0), dag=dag, **kwargs)
    return dag


def unrelated_dag() -> Any:
    dag = dag_for_test(UNRELATED_DAG_ID)
    NothingOperator(task_id="nothing", dag=dag)
    return dag


# ------------------------------------------------------------------------------------- the seeding


def _scenario(name: str, run: Any, task_id: str, **facts: Any) -> Scenario:
    ti = run.ti(task_id)
    return Scenario(
        name=name,
        dag_id=run.dag_id,
        run_id=run.run_id,
        task_id=task_id,
        map_index=ti.map_index,
        ti_state=ti.state,
        facts={"run_state": run.state, "try_number": ti.try_number, **facts},
    )


def stored_state(dag_id: str, run_id: str | None = None) -> list[dict[str, Any]]:
    """Every stored key of the DAG's (run's) task instances, as ``airflow resumable state list`` shows them."""
    from airflow.utils.session import create_session

    from airflow.providers.resumable.inventory import state as inventory
    from airflow.providers.resumable.inventory.filters import Filters

    with create_session() as session:
        return [
            row for found in inventory.read(session, Filters(dag_id=dag_id, run_id=run_id)) for row in found.entries()
        ]


def stored_watermarks(dag_id: str) -> list[dict[str, Any]]:
    """The DAG's watermark documents, as ``airflow resumable watermark show`` reads them."""
    from airflow.utils.session import create_session

    from airflow.providers.resumable.inventory import watermarks as inventory

    with create_session() as session:
        return [found.document for found in inventory.read(session, inventory.WatermarkFilters(dag_id=dag_id))]


def _kinds(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """key -> value of the stored rows."""
    return {row["key"]: row["value"] for row in rows}


def _of_kind(run: Any, kind: str) -> list[dict[str, Any]]:
    """The stored documents of one kind (``codec.*_KIND``) of the run's task instances."""
    rows = stored_state(run.dag_id, run.run_id)
    return [v for v in _kinds(rows).values() if isinstance(v, dict) and v.get("kind") == kind]


def _running_job(system: FakeJobSystem, url: str) -> Scenario:
    """Try 1 submits and dies polling; try 2 (the last) reattaches and dies too: the job still runs."""
    dag = job_dag(RUNNING_JOB, url)
    with fail_on_tries(ToyJobOperator, "poll_until_complete", tries={1, 2}, hard=True) as fault:
        run = run_dag(dag)
    assert fault.fired == [1, 2], fault.fired
    assert run.state == "failed", run
    assert system.submit_calls == 1, "the retry reattached to the one job"
    (job,) = system.jobs.values()
    assert job.state in ("PENDING", "RUNNING"), job
    records = _of_kind(run, codec.JOB_RECORD_KIND)
    assert len(records) == 1, stored_state(dag.dag_id)
    record = records[0]
    assert (record["external_id"], record["token"]) == (job.job_id, job.token), record
    return _scenario(RUNNING_JOB, run, "job", external_id=job.job_id, token=job.token)


def _succeeded(system: FakeJobSystem, url: str) -> Scenario:
    """The job ran to success in try 1: native store keeps the record, marked finished; Variables drop it."""
    before = set(system.jobs)
    dag = job_dag(SUCCEEDED, url)
    run = run_dag(dag)
    assert run.state == "success", run
    (job_id,) = set(system.jobs) - before
    keys = _kinds(stored_state(dag.dag_id, run.run_id))
    if native_store():
        assert codec.FINISHED_KEY in keys, f"the native store keeps a succeeded task's state, marked finished: {keys}"
    else:
        assert codec.FINISHED_KEY not in keys or not keys, keys
    return _scenario(
        SUCCEEDED, run, "job", external_id=job_id, stored_keys=sorted(keys), finished=codec.FINISHED_KEY in keys
    )


def _failed_mid_walk(name: str, out_dir: str) -> Scenario:
    dag = walk_dag(name, out_dir)
    run = run_dag(dag)
    assert run.state == "failed", run
    assert run.ti("copy").try_number == 2, run
    checkpoints = _of_kind(run, codec.CHECKPOINT_KIND)
    assert len(checkpoints) == 1, stored_state(dag.dag_id)
    checkpoint = checkpoints[0]
    assert checkpoint["batches_done"] == WALK_DIES_AT, checkpoint
    assert checkpoint["data"] == {"next_item": WALK_DIES_AT * WALK_BATCH}, checkpoint
    return _scenario(
        name, run, "copy", batches_done=WALK_DIES_AT, next_item=WALK_DIES_AT * WALK_BATCH, checkpoint=checkpoint
    )


def _mapped_walk(out_dir: str) -> Scenario:
    """Both map indexes die at the same batch on their only try; the scenario is map index 1."""
    dag = mapped_walk_dag(MAPPED_WALK, out_dir)
    run = run_dag(dag)
    assert run.state == "failed", run
    rows = [r for r in stored_state(dag.dag_id, run.run_id) if r["map_index"] == 1]
    checkpoints = [
        r["value"] for r in rows if isinstance(r["value"], dict) and r["value"].get("kind") == codec.CHECKPOINT_KIND
    ]
    assert len(checkpoints) == 1, rows
    assert checkpoints[0]["batches_done"] == WALK_DIES_AT, checkpoints
    ti = run.ti("copy", 1)
    return Scenario(
        name=MAPPED_WALK,
        dag_id=run.dag_id,
        run_id=run.run_id,
        task_id="copy",
        map_index=1,
        ti_state=ti.state,
        facts={"run_state": run.state, "try_number": ti.try_number, "batches_done": WALK_DIES_AT},
    )


def _incremental_window(name: str) -> Scenario:
    """Run 1 commits the mark 2 (items a, b); run 2 plans the window from 2, reads c, d and fails writing."""
    SOURCE.clear()
    dag = incremental_dag(name)
    add("a", "b")
    first = run_dag(dag)
    assert first.state == "success", first
    add("c", "d")
    with fail_on_tries(ChangedItemsOperator, "write", tries={1}) as fault:
        failed = run_dag(dag)
    assert fault.fired == [1], fault.fired
    assert failed.state == "failed", failed
    (mark,) = stored_watermarks(dag.dag_id)
    assert mark["value"] == 2, mark
    assert [c["run_id"] for c in mark["commits"]] == [first.run_id], mark
    windows = _of_kind(failed, codec.WINDOW_KIND)
    assert len(windows) == 1, stored_state(dag.dag_id)
    return _scenario(
        name,
        failed,
        "extract",
        mark=2,
        committed_by=first.run_id,
        window=windows[0],
        source_high=SOURCE[-1][0],
    )


@dataclass
class Seeded:
    scenarios: dict[str, Scenario]
    job_system: FakeJobSystem
    out_dir: str


def seed(out_dir: str | None = None) -> Iterator[Seeded]:
    """
    Run every scenario (a generator: the fake job system serves until it is closed, so a test may
    still ask it whether the job runs). Seconds on a quiet machine: no retry delays, no sleeps.
    """
    out = out_dir or tempfile.mkdtemp(prefix="resumable-ui-")
    # The job stays RUNNING however often it is polled: the running-job scenario leaves it so.
    system = FakeJobSystem(run_polls=10**9)
    with FakeJobServer(system) as server:
        running = _running_job(system, server.url)
        # The succeeded job needs a job system whose jobs finish.
        system.run_polls = 2
        scenarios = [
            running,
            _succeeded(system, server.url),
            _failed_mid_walk(FAILED_MID_WALK, os.path.join(out, FAILED_MID_WALK)),
            _failed_mid_walk(DELETE_ME, os.path.join(out, DELETE_ME)),
            _incremental_window(INCREMENTAL_WINDOW),
            _incremental_window(RESET_ME),
            _mapped_walk(os.path.join(out, MAPPED_WALK)),
        ]
        unrelated = run_dag(unrelated_dag())
        assert unrelated.state == "success", unrelated
        scenarios.append(_scenario(UNRELATED, unrelated, "nothing"))
        yield Seeded(scenarios={s.name: s for s in scenarios}, job_system=system, out_dir=out)
