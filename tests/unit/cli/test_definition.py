"""The command tree ``airflow resumable ...`` (and ``airflow-resumable`` before 3.2) is built from."""

from __future__ import annotations

from unittest import mock

import pytest

from airflow.providers.resumable.cli import definition


def _names(commands):
    return [command.name for command in commands]


def test_one_group_with_state_and_watermark_commands():
    (group,) = definition.get_resumable_cli_commands()
    assert group.name == "resumable"
    state, watermark = group.subcommands
    assert (state.name, _names(state.subcommands)) == ("state", ["list", "show", "delete", "sweep"])
    assert (watermark.name, _names(watermark.subcommands)) == ("watermark", ["list", "show", "reset"])


@pytest.mark.parametrize(
    ("argv", "function", "expected"),
    [
        (
            ["state", "list", "--dag-id", "d", "-m", "3"],
            "state_list",
            {"dag_id": "d", "map_index": 3, "backend": "all"},
        ),
        (
            ["state", "delete", "-d", "d", "-r", "r", "-t", "t", "-k", "job", "-y"],
            "state_delete",
            {"key": "job", "yes": True},
        ),
        (["watermark", "reset", "-d", "d", "-t", "t", "--to", "5"], "watermark_reset", {"to": "5", "name": None}),
    ],
)
def test_the_console_script_parses_and_dispatches(argv, function, expected):
    module = "watermark_command" if function.startswith("watermark_") else "state_command"
    with mock.patch(f"airflow.providers.resumable.cli.{module}.{function}") as called:
        definition.main(argv)
    (args,), _ = called.call_args
    assert {name: getattr(args, name) for name in expected} == expected


def test_a_backend_outside_the_choices_is_refused(capsys):
    with pytest.raises(SystemExit):
        definition.main(["state", "list", "--backend", "redis"])
    assert "invalid choice: 'redis'" in capsys.readouterr().err
