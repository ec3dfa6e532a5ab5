"""
The state CLI against a real metadata DB, on every leg: list a failed run's state, show it, delete
one key, clear the task, and the next try starts afresh; the same for a mapped task.

The state is written by operators running inside Airflow's own task runner (``dag.test()``), on the
leg's backend (3.3's ``task_state_store`` or Variables). The commands go through Airflow's own CLI
parser where Airflow loads provider commands (3.2+), and through the ``airflow-resumable`` console
script where it does not (2.11); one test per leg runs the real executable in a subprocess.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest

from airflow.providers.resumable.state.base import state_cli_program
from airflow.providers.resumable.testing import resumable_variables
from airflow.providers.resumable.version_compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_3_PLUS
from tests.integration.harness import clear_and_rerun, make_dag, run_dag
from tests.support.toy_operators import ToyBatchOperator, ToyJobOperator

pytestmark = pytest.mark.integration

BACKEND = (
    "task_state_store"
    if AIRFLOW_V_3_3_PLUS and os.environ.get("AIRFLOW__RESUMABLE__STATE_BACKEND", "auto") == "auto"
    else "variable"
)
PROVIDER_CLI = state_cli_program() == ["airflow", "resumable"]


def cli(*argv: str) -> None:
    """Run one command in-process, through the parser a person's shell reaches."""
    if PROVIDER_CLI:
        from airflow.cli import cli_parser

        args = cli_parser.get_parser().parse_args(["resumable", *argv])
        args.func(args)
    else:
        from airflow.providers.resumable.cli.definition import main

        main(list(argv))


def cli_json(capsys, *argv: str) -> list[dict]:
    capsys.readouterr()
    cli(*argv, "--output", "json")
    return json.loads(capsys.readouterr().out)


def delete_state(dag, run, *more: str) -> None:
    """``state delete`` of the task ``job`` in ``run``, with ``more`` arguments."""
    cli("state", "delete", "--dag-id", dag.dag_id, "--run-id", run.run_id, "--task-id", "job", *more)


def failed_run(request, job_system, **task_args):
    """A run whose task submitted a job and then died polling it, with no retries left."""
    dag = make_dag(request)
    op = ToyJobOperator(
        task_id="job", base_url=job_system.url, crash_in_poll_on_tries=(1,), retries=0, dag=dag, **task_args
    )
    return dag, op, run_dag(dag)


def test_list_show_delete_then_a_clear_starts_afresh(job_system, request, capsys):
    dag, _, run = failed_run(request, job_system, spec={"cmd": "etl"})
    assert run.state == "failed"
    assert len(job_system.jobs) == 1

    rows = cli_json(capsys, "state", "list", "--dag-id", dag.dag_id)
    assert [(r["backend"], r["run_id"], r["task_id"], r["map_index"], r["key"]) for r in rows] == [
        (BACKEND, run.run_id, "job", -1, "toy_job")
    ]
    job = rows[0]
    assert job["meaning"].startswith("job job-1, submitted at try 1"), job["meaning"]
    assert job["value"]["token"] in job["meaning"]
    assert "--key toy_job" in job["delete_with"]

    cli("state", "show", "--dag-id", dag.dag_id, "--run-id", run.run_id, "--task-id", "job")
    shown = capsys.readouterr().out
    assert "toy_job: job job-1, submitted at try 1" in shown
    assert '"external_id": "job-1"' in shown
    assert f"delete with: {job['delete_with']}" in shown

    delete_state(dag, run, "--key", "toy_job", "--yes")
    assert "Deleted" in capsys.readouterr().out
    assert cli_json(capsys, "state", "list", "--dag-id", dag.dag_id) == []

    rerun = clear_and_rerun(dag, run)
    assert rerun.ti("job").state == "success"
    assert len(job_system.jobs) == 2, "with its job record deleted, the cleared task submitted a new job"
    assert job_system.jobs["job-2"].token != job["value"]["token"]


def test_mapped_task_one_instance_deleted(job_system, request, capsys):
    dag = make_dag(request)
    ToyJobOperator.partial(
        task_id="job", base_url=job_system.url, crash_in_poll_on_tries=(1,), retries=0, dag=dag
    ).expand(spec=[{"part": 0}, {"part": 1}])
    run = run_dag(dag)
    assert run.state == "failed"
    assert len(job_system.jobs) == 2

    rows = cli_json(capsys, "state", "list", "--dag-id", dag.dag_id, "--run-id", run.run_id)
    # Each mapped instance also keeps the fingerprint of its expanded arguments.
    assert sorted((r["map_index"], r["key"]) for r in rows if r["key"] != "resumable_mapped_input") == [
        (0, "toy_job"),
        (1, "toy_job"),
    ]
    one = cli_json(capsys, "state", "show", "--dag-id", dag.dag_id, "--task-id", "job", "--map-index", "1")
    assert {r["map_index"] for r in one} == {1}
    assert "--map-index 1" in one[0]["delete_with"]

    delete_state(dag, run, "--map-index", "1", "--yes")
    left = cli_json(capsys, "state", "list", "--dag-id", dag.dag_id)
    assert {r["map_index"] for r in left} == {0}

    rerun = clear_and_rerun(dag, run)
    assert rerun.state == "success"
    assert len(job_system.jobs) == 3, "map index 0 reattached to its job; map index 1 submitted a new one"


def test_deleting_one_key_of_a_namespace_takes_it_out_of_the_index_on_every_backend(request, capsys):
    """What the store's own delete does: the index that listed the key no longer does."""
    from airflow.providers.resumable.state import NamespacedStateStore, get_state_store
    from airflow.providers.resumable.version_compat import BaseOperator

    class TwoKeysThenFail(BaseOperator):
        def execute(self, context):
            store = NamespacedStateStore(get_state_store(context), "ns")
            store.set("a", 1)
            store.set("b", 2)
            raise RuntimeError("fails after writing two keys")

    dag = make_dag(request)
    TwoKeysThenFail(task_id="job", dag=dag)
    run = run_dag(dag)
    assert run.state == "failed"

    delete_state(dag, run, "--key", "ns/a", "--yes")
    rows = {r["key"]: r for r in cli_json(capsys, "state", "list", "--dag-id", dag.dag_id, "--all")}
    assert sorted(rows) == ["ns/__keys__", "ns/b"]
    assert rows["ns/__keys__"]["value"] == ["b"], "the index no longer lists the deleted key"


def test_deleting_the_last_key_of_a_namespace_takes_its_index_and_the_variable(request, tmp_path, capsys):
    """The checkpoint goes, and with it the index that listed it: on Variables, the Variable itself."""
    dag = make_dag(request)
    ToyBatchOperator(task_id="job", out_dir=str(tmp_path), total=50, batch_size=10, fail_on={1: 3}, dag=dag)
    run = run_dag(dag)
    assert run.state == "failed"
    keys = [r["key"] for r in cli_json(capsys, "state", "list", "--dag-id", dag.dag_id, "--all")]
    assert keys == ["stateful/__keys__", "stateful/checkpoint"]

    delete_state(dag, run, "--key", "stateful/checkpoint", "--yes")
    assert cli_json(capsys, "state", "list", "--dag-id", dag.dag_id, "--all") == []
    assert resumable_variables(dag.dag_id) == [], "the Variable goes with its last key"

    rerun = clear_and_rerun(dag, run)
    assert rerun.ti("job").state == "success"
    assert rerun.xcom("job")["resumed_from"] == 0, "with its checkpoint deleted, the walk started over"


def test_delete_asks_and_refuses_without_yes(job_system, request, capsys, monkeypatch):
    dag, _, run = failed_run(request, job_system, spec={"cmd": "etl"})
    monkeypatch.setattr("builtins.input", lambda prompt: "n")
    with pytest.raises(SystemExit, match="Nothing deleted"):
        delete_state(dag, run)
    assert len(cli_json(capsys, "state", "list", "--dag-id", dag.dag_id)) == 1
    with pytest.raises(SystemExit, match="needs --run-id, --task-id"):
        cli("state", "delete", "--dag-id", dag.dag_id, "--yes")


def test_the_installed_command_lists_a_runs_state(job_system, request):
    """The executable a person types, in a subprocess on this leg's metadata DB."""
    dag, _, run = failed_run(request, job_system, spec={"cmd": "etl"})
    program = state_cli_program()
    executable = shutil.which(program[0])
    assert executable, f"{program[0]} is not installed next to this Python"
    done = subprocess.run(
        [executable, *program[1:], "state", "list", "--dag-id", dag.dag_id, "--output", "json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    # Airflow may log to stdout before the command prints (3.2 does); the JSON array starts a line.
    start = re.search(r"(?m)^\[(\]|\s*$)", done.stdout)
    assert start, done.stdout[-2000:]
    rows = json.loads(done.stdout[start.start() :])
    assert [(r["run_id"], r["key"]) for r in rows] == [(run.run_id, "toy_job")]


@pytest.mark.skipif(BACKEND != "task_state_store", reason="the ledger backs the native store only")
def test_a_record_only_the_ledger_kept_is_listed_as_such_and_deleted_with_the_task_state(job_system, request, capsys):
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from airflow.providers.resumable.compat.airflow import discard_task_state

    dag, _, run = failed_run(request, job_system, spec={"cmd": "etl"})
    with create_session() as session:
        (ti,) = session.scalars(select(TaskInstance).where(TaskInstance.dag_id == dag.dag_id)).all()
        discard_task_state(ti, session)  # what Airflow 3.4's Clear does to the task's own state

    (row,) = cli_json(capsys, "state", "list", "--dag-id", dag.dag_id)
    assert (row["backend"], row["key"]) == ("ledger", "toy_job")
    assert row["meaning"].startswith("kept only by the ledger"), row["meaning"]
    assert "job job-1" in row["meaning"], "the next try reattaches to job-1: the listing says so"

    delete_state(dag, run, "--key", "toy_job", "--yes")
    assert cli_json(capsys, "state", "list", "--dag-id", dag.dag_id) == []
    again = clear_and_rerun(dag, run)
    assert again.state == "success"
    assert len(job_system.jobs) == 2, "with the record deleted everywhere, the clear submits afresh"


@pytest.mark.skipif(BACKEND != "task_state_store", reason="the ledger backs the native store only")
def test_deleting_the_task_state_takes_the_ledger_copy_with_it(job_system, request, capsys):
    dag, _, run = failed_run(request, job_system, spec={"cmd": "etl"})
    (row,) = cli_json(capsys, "state", "list", "--dag-id", dag.dag_id)
    assert row["backend"] == "task_state_store", "the ledger copy is not listed while the task's own state has it"
    delete_state(dag, run, "--yes")
    assert cli_json(capsys, "state", "list", "--dag-id", dag.dag_id) == []
    again = clear_and_rerun(dag, run, keep_task_state=False)
    assert again.state == "success"
    assert len(job_system.jobs) == 2, "nothing was left to reattach to"


# ---- the listing says what the runtime will do ------------------------------------------------------


def overwrite(dag, run, task_id: str, key: str, raw: str) -> None:
    """Replace the stored text of ``key`` of one task instance, as a hand edit would, on the leg's backend."""
    from airflow.utils.session import create_session

    if BACKEND == "task_state_store":
        from sqlalchemy import update

        from airflow.providers.resumable.compat.metadata_db import task_state_store_model

        model = task_state_store_model()
        with create_session() as session:
            done = session.execute(
                update(model)
                .where(model.dag_id == dag.dag_id, model.run_id == run.run_id, model.task_id == task_id)
                .where(model.key == key)
                .values(value=raw)
            )
            assert done.rowcount == 1
        return
    from airflow.models.variable import Variable

    from airflow.providers.resumable.state.backends import variable_key
    from airflow.providers.resumable.state.base import TaskScope

    name = variable_key(TaskScope(dag.dag_id, run.run_id, task_id))
    document = json.loads(Variable.get(name))
    document["values"][key] = json.loads(raw)
    Variable.set(name, json.dumps(document))


def test_a_job_record_the_runtime_rejects_is_listed_as_corrupt(job_system, request, capsys):
    """An intent with seq -1 looks valid to the eye; the runtime refuses it, and so must the listing."""
    dag, _, run = failed_run(request, job_system, spec={"cmd": "etl"})
    (row,) = cli_json(capsys, "state", "list", "--dag-id", dag.dag_id)
    bad = {**row["value"], "seq": -1, "external_id": None, "submitted_at": None}
    overwrite(dag, run, "job", "toy_job", json.dumps(bad))

    (row,) = cli_json(capsys, "state", "list", "--dag-id", dag.dag_id)
    assert row["meaning"].startswith("corrupt: The stored job record is corrupt (seq"), row["meaning"]
    assert "the next try fails at once" in row["meaning"]
    assert "looks the job up by its token" not in row["meaning"]

    # The state stays as listed (3.4's Clear would discard it and the ledger's valid copy would be read).
    again = clear_and_rerun(dag, run, keep_task_state=True)
    assert again.ti("job").state == "failed", "the runtime refuses the record, as the listing said"
    assert len(job_system.jobs) == 1, "nothing was submitted"


@pytest.mark.skipif(BACKEND != "task_state_store", reason="only native rows can hold text that is not JSON")
def test_an_unreadable_checkpoint_row_does_not_taint_the_index_beside_it(request, tmp_path, capsys):
    dag = make_dag(request)
    ToyBatchOperator(task_id="job", out_dir=str(tmp_path), total=50, batch_size=10, fail_on={1: 3}, dag=dag)
    run = run_dag(dag)
    overwrite(dag, run, "job", "stateful/checkpoint", "{not json")
    meanings = {r["key"]: r["meaning"] for r in cli_json(capsys, "state", "list", "--dag-id", dag.dag_id, "--all")}
    assert meanings["stateful/__keys__"] == "index of the keys written under 'stateful'"
    assert meanings["stateful/checkpoint"].startswith("not JSON"), meanings


@pytest.mark.skipif(BACKEND != "variable", reason="a Variable named for one task instance, holding another's")
def test_a_variable_holding_another_task_instances_state(job_system, request, capsys):
    """The runtime's command deletes the misplaced Variable; the other task's own state is never taken."""
    import shlex

    from airflow.models.variable import Variable

    from airflow.providers.resumable.compat.airflow import OrmVariables
    from airflow.providers.resumable.state.backends import VariableStateStore, variable_key
    from airflow.providers.resumable.state.base import CorruptStateError, TaskScope

    dag = make_dag(request)
    for task_id in ("a", "b"):
        ToyJobOperator(
            task_id=task_id,
            base_url=job_system.url,
            spec={"t": task_id},
            crash_in_poll_on_tries=(1,),
            retries=0,
            dag=dag,
        )
    run = run_dag(dag)
    mine, other = (TaskScope(dag.dag_id, run.run_id, t) for t in ("a", "b"))
    Variable.set(variable_key(mine), Variable.get(variable_key(other)))  # a hand copy gone wrong

    only_b = cli_json(capsys, "state", "list", "--dag-id", dag.dag_id, "--task-id", "b")
    assert [r["location"] for r in only_b] == [variable_key(other)], "b's listing holds b's own Variable only"

    with pytest.raises(CorruptStateError) as err:
        VariableStateStore(mine, access=OrmVariables()).get("toy_job")
    message = str(err.value)
    assert message.startswith("The stored Variable holds the state of another task instance"), message
    command = re.search(r"`([^`]* state delete [^`]*)`", message)
    assert command, message
    argv = shlex.split(command.group(1))
    argv = argv[argv.index("state") :]
    cli(*argv, "--yes")
    assert "Deleted Variable" in capsys.readouterr().out
    assert resumable_variables(dag.dag_id) == [variable_key(other)], "a's Variable went; b's stayed"


def test_each_row_says_its_task_instances_state_and_the_listing_filters_by_it(job_system, request, capsys):
    dag = make_dag(request)
    ToyJobOperator(task_id="job", base_url=job_system.url, spec={}, crash_in_poll_on_tries=(1,), retries=0, dag=dag)
    ToyJobOperator(task_id="done", base_url=job_system.url, spec={"n": 2}, retries=0, dag=dag)
    run = run_dag(dag)
    assert (run.ti("job").state, run.ti("done").state) == ("failed", "success")

    rows = cli_json(capsys, "state", "list", "--dag-id", dag.dag_id, "--all")
    states = {(r["task_id"], r["ti_state"]) for r in rows}
    assert ("job", "failed") in states
    if BACKEND == "task_state_store":
        assert ("done", "success") in states, "the native store keeps a succeeded task's state, marked finished"

    failed = cli_json(capsys, "state", "list", "--dag-id", dag.dag_id, "--ti-state", "failed,up_for_retry")
    assert [(r["task_id"], r["key"]) for r in failed] == [("job", "toy_job")]
    assert cli_json(capsys, "state", "list", "--dag-id", dag.dag_id, "--ti-state", "running") == []

    # The success's finished marker is bookkeeping: the task instance's state already says it.
    assert {r["task_id"] for r in cli_json(capsys, "state", "list", "--dag-id", dag.dag_id)} <= {"job", "done"}
    hidden = [r for r in cli_json(capsys, "state", "list", "--dag-id", dag.dag_id) if r["key"] == "resumable_finished"]
    assert hidden == []


def test_sweep_deletes_only_the_state_of_task_instances_that_succeeded(job_system, request, capsys):
    """A person's "mark success" runs no listener in a worker: the sweep finds that state and deletes it."""
    dag = make_dag(request)
    for task_id in ("marked", "failed"):
        ToyJobOperator(
            task_id=task_id, base_url=job_system.url, spec={}, crash_in_poll_on_tries=(1,), retries=0, dag=dag
        )
    run = run_dag(dag)
    assert run.state == "failed"
    mark_success(dag.dag_id, run.run_id, "marked")  # what the UI's "mark success" writes

    capsys.readouterr()
    cli("state", "sweep", "--dag-id", dag.dag_id)
    dry = capsys.readouterr().out
    assert "Would delete the state of 1 succeeded task instance(s)" in dry
    assert "/ marked" in dry
    assert "/ failed" not in dry
    assert "Nothing deleted (a dry run)" in dry
    assert {r["task_id"] for r in cli_json(capsys, "state", "list", "--dag-id", dag.dag_id)} == {"marked", "failed"}

    cli("state", "sweep", "--dag-id", dag.dag_id, "--yes")
    assert "Deleted" in capsys.readouterr().out
    left = cli_json(capsys, "state", "list", "--dag-id", dag.dag_id)
    assert {r["task_id"] for r in left} == {"failed"}, "the failed task instance keeps its state for a clear"


@pytest.mark.skipif(AIRFLOW_V_3_0_PLUS, reason="only Airflow 2 keeps a succeeded task instance's Variable")
def test_sweep_keeps_a_finished_variable_until_airflow_2_can_no_longer_fail_its_try(
    job_system, request, capsys, monkeypatch
):
    import time

    dag = make_dag(request)
    ToyJobOperator(task_id="job", base_url=job_system.url, spec={}, retries=0, dag=dag)
    assert run_dag(dag).state == "success"

    capsys.readouterr()
    cli("state", "sweep", "--dag-id", dag.dag_id, "--yes")
    out = capsys.readouterr().out
    assert "Kept resumable." in out
    assert "Airflow 2 can still fail the try that succeeded" in out
    assert "Deleted" not in out
    assert {r["task_id"] for r in cli_json(capsys, "state", "list", "--dag-id", dag.dag_id, "--all")} == {"job"}

    monkeypatch.setenv("AIRFLOW__RESUMABLE__FINISHED_STATE_RETENTION", "1")
    time.sleep(1.5)  # past the 1 s retention
    cli("state", "sweep", "--dag-id", dag.dag_id, "--yes")
    assert "Deleted" in capsys.readouterr().out
    assert cli_json(capsys, "state", "list", "--dag-id", dag.dag_id, "--all") == []


def mark_success(dag_id: str, run_id: str, task_id: str) -> None:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import update

    with create_session() as session:
        session.execute(
            update(TaskInstance)
            .where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id, TaskInstance.task_id == task_id)
            .values(state="success")
        )
