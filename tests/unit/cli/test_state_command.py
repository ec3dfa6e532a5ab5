"""The CLI's actions on this leg's metadata DB: what they print when nothing matches, and how values parse."""

from __future__ import annotations

import json
from argparse import Namespace

import pytest

from airflow.providers.resumable.cli import state_command


def args(**given):
    base = {
        "dag_id": None,
        "run_id": None,
        "task_id": None,
        "map_index": None,
        "key": None,
        "backend": "all",
        "output": "table",
        "name": None,
        "yes": False,
    }
    return Namespace(**{**base, **given})


@pytest.mark.parametrize(
    ("text", "value"),
    [("42", 42), ('"abc"', "abc"), ("2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z"), ("1.5", 1.5), ("null", None)],
)
def test_a_value_is_json_when_it_parses_else_the_text(text, value):
    assert state_command._parse_value(text) == value


def test_list_says_what_was_asked_when_nothing_matches(capsys):
    state_command.state_list(args(dag_id="no_such_dag_anywhere", map_index=2))
    assert capsys.readouterr().out.strip() == (
        "No state of airflow-provider-resumable for dag_id='no_such_dag_anywhere', map_index=2."
    )


def test_list_as_json_is_an_empty_array_a_script_can_read(capsys):
    state_command.state_list(args(dag_id="no_such_dag_anywhere", output="json"))
    assert json.loads(capsys.readouterr().out) == []


def test_show_of_nothing_exits_non_zero_naming_the_filters():
    with pytest.raises(SystemExit, match="for task_id=.no_such_task_anywhere."):
        state_command.state_show(args(task_id="no_such_task_anywhere"))


def test_delete_needs_the_whole_task_instance():
    with pytest.raises(SystemExit, match="--run-id"):
        state_command.state_delete(args(dag_id="d", task_id="t"))


def test_watermark_reset_needs_the_task():
    with pytest.raises(SystemExit, match="--task-id"):
        state_command.watermark_reset(args(dag_id="d", to="5"))


@pytest.mark.parametrize(("answer", "goes_on"), [("y", True), ("YES ", True), ("n", False), ("", False)])
def test_a_destructive_action_asks_first(monkeypatch, answer, goes_on):
    monkeypatch.setattr("builtins.input", lambda prompt: answer)
    if goes_on:
        state_command._confirm(args(), "Delete it?", "Nothing deleted.")
    else:
        with pytest.raises(SystemExit, match="Nothing deleted."):
            state_command._confirm(args(), "Delete it?", "Nothing deleted.")


def test_yes_asks_nothing_and_no_terminal_means_no(monkeypatch):
    def no_terminal(prompt):
        raise EOFError

    monkeypatch.setattr("builtins.input", no_terminal)
    state_command._confirm(args(yes=True), "Delete it?", "Nothing deleted.")
    with pytest.raises(SystemExit, match="Nothing deleted."):
        state_command._confirm(args(), "Delete it?", "Nothing deleted.")
