"""The watermark CLI's actions on this leg's metadata DB: refusals before anything is read or written."""

from __future__ import annotations

from argparse import Namespace

import pytest

from airflow.providers.resumable.cli import watermark_command


def args(**given):
    base = {"dag_id": None, "task_id": None, "map_index": None, "name": None, "backend": "all", "output": "table"}
    return Namespace(**{**base, "yes": False, "to": None, **given})


@pytest.mark.parametrize(
    ("text", "value"),
    [("42", 42), ('"abc"', "abc"), ("2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z"), ("1.5", 1.5), ("null", None)],
)
def test_a_value_is_json_when_it_parses_else_the_text(text, value):
    assert watermark_command._parse_value(text) == value


def test_watermark_reset_needs_the_task():
    with pytest.raises(SystemExit, match="--task-id"):
        watermark_command.watermark_reset(args(dag_id="d", to="5"))


def test_list_names_the_backend_asked_for_when_nothing_matches(capsys):
    watermark_command.watermark_list(args(dag_id="no_such_dag_anywhere", backend="variable"))
    assert capsys.readouterr().out.strip() == (
        "No watermark of airflow-provider-resumable for dag_id='no_such_dag_anywhere', backend='variable'."
    )
