"""``python -m airflow.providers.resumable.testing``: loading the DAG file, and what it prints."""

from __future__ import annotations

import pytest

from airflow.providers.resumable.testing import RunResult, TaskInstanceResult
from airflow.providers.resumable.testing.__main__ import describe, load_dag, main


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(SystemExit, match="does not exist"):
        load_dag(str(tmp_path / "nope.py"), "d")


def test_a_file_that_does_not_import_shows_the_error(tmp_path):
    dag_file = tmp_path / "broken.py"
    dag_file.write_text("from airflow import DAG\nraise RuntimeError('boom in the dag file')\n")
    with pytest.raises(SystemExit, match="(?s)failed to import:.*boom in the dag file"):
        load_dag(str(dag_file), "d")


def test_a_dag_id_the_file_lacks_lists_the_ones_it_has(tmp_path):
    dag_file = tmp_path / "dags.py"
    dag_file.write_text(
        "from airflow.providers.resumable.testing import dag_for_test\nmy_dag = dag_for_test('present_dag')\n"
    )
    with pytest.raises(SystemExit, match=r"defines no DAG 'absent'; it defines \['present_dag'\]"):
        load_dag(str(dag_file), "absent")
    assert load_dag(str(dag_file), "present_dag").dag_id == "present_dag"


def test_describe_lists_every_task_instance():
    run = RunResult("d", "r1", "failed", (TaskInstanceResult("work", -1, "failed", 2, 1),))
    text = describe("after clear and re-run", run)
    assert text.splitlines()[0] == "after clear and re-run: run r1 of d ended failed"
    assert "work" in text.splitlines()[2]
    assert "failed" in text.splitlines()[2]


def test_the_command_needs_its_arguments(capsys):
    with pytest.raises(SystemExit):
        main(["clear-and-rerun"])
    assert "dag_file" in capsys.readouterr().err
