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
        "region_id": None,
        "region_index": None,
        "key": None,
        "backend": "all",
        "output": "table",
        "name": None,
        "yes": False,
        "ti_state": None,
        "all_keys": False,
    }
    return Namespace(**{**base, **given})


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


# ---- Airflow 3.4's regions and expiring rows, on listed state (no DB: the reader is replaced) --------

REGION = "01a242e2-b892-7467-ad21-85819799aafb"


def _states():
    from airflow.providers.resumable.inventory.state import TaskState
    from airflow.providers.resumable.state.base import TaskScope

    plain = TaskState("task_state_store", TaskScope("d", "r", "t"), "task_state_store", {"job": 1})
    looped = TaskState(
        "task_state_store",
        TaskScope("d", "r", "t", -1, REGION, 2),
        "task_state_store",
        {"job": 2},
        expires_at={"job": "2027-01-01T00:00:00+00:00"},
    )
    return [plain, looped]


def test_list_shows_the_region_and_expiry_columns_when_a_row_has_them(monkeypatch, capsys):
    monkeypatch.setattr(state_command, "_read", lambda args: _states())
    state_command.state_list(args(output="json"))
    rows = json.loads(capsys.readouterr().out)
    assert "region_id" not in rows[0]
    assert "expires_at" not in rows[0]
    assert (rows[1]["region_id"], rows[1]["region_index"], rows[1]["expires_at"]) == (
        REGION,
        2,
        "2027-01-01T00:00:00+00:00",
    )
    assert rows[1]["delete_with"].endswith(f"--key job --region-id {REGION} --region-index 2")

    state_command.state_list(args(output="plain"))
    header = capsys.readouterr().out.splitlines()[0].split()
    assert header == [
        "backend", "dag_id", "run_id", "task_id", "map_index", "region_id", "region_index", "ti_state", "key", "meaning",
        "expires_at",
    ]  # fmt: skip


def test_list_without_regions_or_expiry_keeps_the_columns_it_had(monkeypatch, capsys):
    monkeypatch.setattr(state_command, "_read", lambda args: _states()[:1])
    state_command.state_list(args(output="plain"))
    header = capsys.readouterr().out.splitlines()[0].split()
    assert header == ["backend", "dag_id", "run_id", "task_id", "map_index", "ti_state", "key", "meaning"]


def test_show_names_the_region_and_when_a_key_expires(monkeypatch, capsys):
    monkeypatch.setattr(state_command, "_read", lambda args: _states())
    state_command.state_show(args())
    out = capsys.readouterr().out
    assert f"d / r / t region {REGION} [2]  (task_state_store: task_state_store)" in out
    assert "expires at 2027-01-01T00:00:00+00:00: `airflow state-store clean` deletes it after that" in out


def test_the_region_filters_reach_the_reader_in_the_stores_form():
    filters = state_command._filters(args(region_id=REGION.replace("-", "").upper(), region_index=2))
    assert (filters.region_id, filters.region_index) == (REGION, 2)
    assert state_command._asked(args(dag_id="d", region_index=2)) == "dag_id='d', region_index=2"


def test_list_shows_a_taskflow_loop_in_the_functions_terms(monkeypatch, capsys):
    from airflow.providers.resumable.inventory.state import TaskState
    from airflow.providers.resumable.state.base import TaskScope
    from airflow.providers.resumable.state.codec import CheckpointEnvelope

    loop = CheckpointEnvelope(try_number=1, saved_at="2026-12-04T10:00:00+00:00", batches_done=12, data={"next": 12})
    state = TaskState(
        "variable", TaskScope("d", "r", "convert"), "resumable.d.r.convert.x", {"taskflow/files": loop.dump()}
    )
    monkeypatch.setattr(state_command, "_read", lambda args: [state])
    state_command.state_list(args(output="json"))
    (row,) = json.loads(capsys.readouterr().out)
    assert row["key"] == "taskflow/files"
    assert row["meaning"].startswith("loop 'files' of the @task.resumable function (handle.iterate): 12 items done")
    assert row["delete_with"].endswith("--task-id convert --key taskflow/files")


def test_show_cuts_a_large_value_and_says_how_to_get_all_of_it(monkeypatch, capsys):
    from airflow.providers.resumable.inventory.state import TaskState
    from airflow.providers.resumable.state.base import TaskScope

    big = {"rows": ["x" * 100] * 50_000}  # about 5 MB, as a checkpoint that carried its data was
    state = TaskState("variable", TaskScope("d", "r", "t"), "resumable.d.r.t.x", {"big": big, "small": {"n": 1}})
    monkeypatch.setattr(state_command, "_read", lambda args: [state])
    state_command.state_show(args())
    out = capsys.readouterr().out
    assert len(out) < 10_000, "a person's terminal gets a screenful, not 5 MB"
    assert '"n": 1' in out, "a small value is shown whole"
    size = len(json.dumps(big, indent=2, sort_keys=True))
    assert f"… cut at 2000 of {size} characters; the whole value: " in out
    assert "state show --dag-id d --run-id r --task-id t --key big --output json`" in out

    state_command.state_show(args(output="json"))
    (row, _) = json.loads(capsys.readouterr().out)
    assert row["value"] == big, "json output keeps the whole value for scripts"


# ---- the listing a person on call reads ---------------------------------------------------------------

LONG_RUN = "scheduled__2026-12-04T03:00:00+00:00_" + "backfill-of-the-nightly-export-" * 4


def _failed_state(**values):
    from airflow.providers.resumable.inventory.state import TaskState
    from airflow.providers.resumable.state.base import TaskScope

    state = TaskState("task_state_store", TaskScope("nightly_etl", LONG_RUN, "copy"), "task_state_store", values)
    state.ti_state = "up_for_retry"
    return state


def test_plain_output_never_cuts_or_wraps_an_id(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "60")
    monkeypatch.setattr(state_command, "_read", lambda args: [_failed_state(job=1)])
    state_command.state_list(args(output="plain"))
    header, line = capsys.readouterr().out.splitlines()
    assert header.split() == ["backend", "dag_id", "run_id", "task_id", "map_index", "ti_state", "key", "meaning"]
    assert line.split()[:7] == ["task_state_store", "nightly_etl", LONG_RUN, "copy", "-1", "up_for_retry", "job"]


def test_bookkeeping_keys_are_hidden_unless_asked(monkeypatch, capsys):
    index = {"stateful/__keys__": ["checkpoint"], "resumable_finished": {"kind": "resumable-finished", "try_number": 1}}
    monkeypatch.setattr(state_command, "_read", lambda args: [_failed_state(**index, job=1)])
    state_command.state_list(args(output="json"))
    assert [row["key"] for row in json.loads(capsys.readouterr().out)] == ["job"]
    state_command.state_list(args(output="plain"))
    assert capsys.readouterr().out.splitlines()[-1] == (
        "(2 bookkeeping key(s) hidden: namespace indexes, finished markers, mapped-input fingerprints; "
        "--all lists them)"
    )
    state_command.state_list(args(output="json", all_keys=True))
    keys = [row["key"] for row in json.loads(capsys.readouterr().out)]
    assert keys == ["job", "resumable_finished", "stateful/__keys__"]
    state_command.state_list(args(output="json", key="stateful/__keys__"))
    assert [row["key"] for row in json.loads(capsys.readouterr().out)] == ["stateful/__keys__"], "asked by name"


def test_the_delete_prompt_names_the_key_its_task_instance_and_where_it_lives(monkeypatch, capsys):
    from airflow.providers.resumable.inventory.state import TaskState
    from airflow.providers.resumable.state.base import TaskScope

    variable = TaskState("variable", TaskScope("d", "r", "t", 2), "resumable.d.r.t.2.abc", {"job": 1})
    monkeypatch.setattr(state_command, "_read", lambda args: [_failed_state(job=1), variable])
    monkeypatch.setattr("builtins.input", lambda prompt: "n")
    with pytest.raises(SystemExit, match="Nothing deleted"):
        state_command.state_delete(args(dag_id="d", run_id="r", task_id="t"))
    out = capsys.readouterr().out
    assert "task_state_store task_state_store" not in out
    assert f"  key 'job' of nightly_etl / {LONG_RUN} / copy, in a task_state_store row" in out
    assert "  key 'job' of d / r / t [2], in Variable 'resumable.d.r.t.2.abc'" in out


JOB_RECORD = {
    "kind": "resumable-job",
    "seq": 1,
    "token": "rsm-abc",
    "generation": 3,
    "try_number": 1,
    "external_id": 1006,
    "submitted_at": "2026-01-01T00:00:01+00:00",
}


def test_list_and_show_say_what_a_clear_does_in_the_ui_tabs_words(monkeypatch, capsys):
    from airflow.providers.resumable.inventory.view import on_clear

    state = _failed_state(job=JOB_RECORD)
    sentence = on_clear(state).sentence
    assert sentence.startswith("A clear reattaches to job 1006 if it is still running")
    monkeypatch.setattr(state_command, "_read", lambda args: [state])
    state_command.state_show(args())
    assert f"  on clear: {sentence}" in capsys.readouterr().out.splitlines()
    state_command.state_list(args(output="json"))
    assert [row["on_clear"] for row in json.loads(capsys.readouterr().out)] == [sentence]
    state_command.state_list(args(output="table"))
    assert capsys.readouterr().out.splitlines()[-2:] == [
        "What a clear does now:",
        f"  nightly_etl / {LONG_RUN} / copy: {sentence}",
    ]
