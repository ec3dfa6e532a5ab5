"""``state sweep`` on this leg's metadata DB: what it says when nothing matches, and that it takes no --key."""

from __future__ import annotations

from argparse import Namespace

from airflow.providers.resumable.cli import sweep_command
from airflow.providers.resumable.cli.definition import STATE_COMMANDS


def test_a_sweep_that_finds_nothing_says_what_was_asked(capsys):
    asked = Namespace(
        dag_id="no_such_dag_anywhere",
        run_id=None,
        task_id=None,
        map_index=None,
        region_id=None,
        region_index=None,
        backend="all",
        yes=True,
    )
    sweep_command.state_sweep(asked)
    assert capsys.readouterr().out.strip() == (
        "No state of a succeeded task instance for dag_id='no_such_dag_anywhere'; nothing to sweep."
    )


def test_a_sweep_deletes_whole_task_instances_so_it_takes_no_key():
    (sweep,) = [command for command in STATE_COMMANDS if command.name == "sweep"]
    flags = {flag for arg in sweep.args for flag in arg.flags}
    assert "--key" not in flags
    assert "--yes" in flags
