"""The ``state list|show|delete`` actions, on the ``airflow`` CLI's metadata DB (watermarks: watermark_command.py)."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

from airflow.providers.resumable.inventory import state as inventory

if TYPE_CHECKING:
    from argparse import Namespace

#: Columns of ``list`` as a table; json and yaml also carry the value, location and delete command.
#: ``region_id`` and ``region_index`` appear when a listed task instance is in a region (Airflow 3.4's
#: Task Loops), ``expires_at`` when a listed key expires.
_LIST_COLUMNS = (
    "backend",
    "dag_id",
    "run_id",
    "task_id",
    "map_index",
    "region_id",
    "region_index",
    "ti_state",
    "key",
    "meaning",
)
_WHEN_PRESENT = ("region_id", "region_index", "expires_at")
_FILTER_NAMES = ("dag_id", "run_id", "task_id", "map_index", "region_id", "region_index", "key")


def _region_id(text: str | None) -> str | None:
    """A region id as the store names it (canonical UUID text), however it was typed."""
    if text is None:
        return None
    from uuid import UUID

    try:
        return str(UUID(text))
    except ValueError:
        return text


def _filters(args: Namespace) -> inventory.Filters:
    return inventory.Filters(
        dag_id=args.dag_id,
        run_id=args.run_id,
        task_id=args.task_id,
        map_index=args.map_index,
        region_id=_region_id(getattr(args, "region_id", None)),
        region_index=getattr(args, "region_index", None),
        key=args.key,
    )


def _backends(args: Namespace) -> tuple[str, ...]:
    return inventory.BACKENDS if args.backend == "all" else (args.backend,)


def _read(args: Namespace) -> list[inventory.TaskState]:
    from airflow.utils.session import create_session

    with create_session() as session:
        states = inventory.read(session, _filters(args), _backends(args))
    wanted = _ti_states(args)
    return states if wanted is None else [state for state in states if state.ti_state in wanted]


def _ti_states(args: Namespace) -> set[str] | None:
    """``--ti-state failed,up_for_retry`` as a set; None when not given."""
    given = getattr(args, "ti_state", None)
    if not given:
        return None
    return {part.strip().lower() for part in given.split(",") if part.strip()}


def _rows(states: list[inventory.TaskState], key: str | None) -> list[dict[str, Any]]:
    return [row for state in states for row in state.entries(key)]


def _plain(rows: list[dict[str, Any]]) -> None:
    """
    One line per row, columns padded to their widest value and never cut or wrapped.

    Airflow's ``plain`` is a borderless rich table that wraps to the terminal: a run id broken over
    two lines cannot be copied into the next command. The last column (the meaning) is not padded.
    """
    if not rows:
        return
    columns = list(rows[0])
    cells = [[("" if row.get(c) is None else str(row.get(c))) for c in columns] for row in rows]
    widths = [max(len(c), *(len(line[i]) for line in cells)) for i, c in enumerate(columns)]
    for line in [columns, *cells]:
        padded = [text.ljust(width) for text, width in zip(line[:-1], widths[:-1], strict=True)]
        print("  ".join([*padded, line[-1]]).rstrip())


def _print(rows: list[dict[str, Any]], output: str) -> None:
    # json and yaml keep the values' types (Airflow's console would turn them into strings), so a
    # script can read the stored record back; tables go through Airflow's console as its own CLI does.
    if output == "json":
        print(json.dumps(rows, indent=2, sort_keys=True, default=str))
    elif output == "yaml":
        import yaml

        print(yaml.safe_dump(rows, sort_keys=True), end="")
    elif output == "plain":
        _plain(rows)
    else:
        from airflow.cli.simple_table import AirflowConsole

        AirflowConsole().print_as(data=rows, output=output)


def _asked(args: Namespace) -> str:
    parts = [f"{name}={value!r}" for name in _FILTER_NAMES if (value := getattr(args, name, None)) is not None]
    return ", ".join(parts) or "any task instance"


def _confirm(args: Namespace, question: str, refusal: str) -> None:
    """Ask ``question`` unless ``--yes``; anything but yes (or no terminal) exits with ``refusal``."""
    if args.yes:
        return
    try:
        answer = input(f"{question} (y/n) ")
    except EOFError:
        answer = ""
    if answer.strip().lower() not in ("y", "yes"):
        sys.exit(refusal)


def _on_clear(states: list[inventory.TaskState]) -> dict[Any, str]:
    """The sentence the UI tab shows too: what a person's clear of each task instance does now."""
    from airflow.providers.resumable.compat.airflow import clear_discards_task_state
    from airflow.providers.resumable.inventory.view import clear_outcomes

    outcomes = clear_outcomes(states, native_discards=clear_discards_task_state())
    return {scope: outcome.sentence for scope, outcome in outcomes.items()}


def _scope_line(scope: Any) -> str:
    mapped = f" [{scope.map_index}]" if scope.map_index >= 0 else ""
    region = f" region {scope.region_id} [{scope.region_index}]" if scope.region_id is not None else ""
    return f"{scope.dag_id} / {scope.run_id} / {scope.task_id}{mapped}{region}"


def state_list(args: Namespace) -> None:
    states = _read(args)
    sentences = _on_clear(states)
    rows = _rows(states, args.key)
    if args.output not in ("table", "plain"):
        # Scripts get the sentence per row, beside the meaning.
        rows = [{**row, "on_clear": sentences.get(state.scope)} for state in states for row in state.entries(args.key)]
    hidden = 0
    if not getattr(args, "all_keys", False) and args.key is None:
        # Bookkeeping keys are listed when asked for by name or with --all.
        kept = [row for row in rows if not inventory.is_internal(row["key"])]
        hidden, rows = len(rows) - len(kept), kept
    if args.output in ("table", "plain"):
        present = {column for row in rows for column in _WHEN_PRESENT if column in row}
        columns = [c for c in (*_LIST_COLUMNS, "expires_at") if c not in _WHEN_PRESENT or c in present]
        rows = [{column: row.get(column) for column in columns} for row in rows]
    if not rows and args.output in ("table", "plain"):
        more = f" ({hidden} bookkeeping key(s) hidden; --all lists them)" if hidden else ""
        print(f"No state of airflow-provider-resumable for {_asked(args)}{more}.")
        return
    _print(rows, args.output)
    if hidden and args.output in ("table", "plain"):
        print(
            f"({hidden} bookkeeping key(s) hidden: namespace indexes, finished markers, mapped-input "
            "fingerprints; --all lists them)"
        )
    if args.output == "table" and sentences:
        # Not in ``plain``: its lines are one per key, for scripts that cut columns.
        print("What a clear does now:")
        for scope, sentence in sentences.items():
            print(f"  {_scope_line(scope)}: {sentence}")


def state_show(args: Namespace) -> None:
    states = _read(args)
    if not states:
        sys.exit(f"No state of airflow-provider-resumable for {_asked(args)}.")
    if args.output not in ("table", "plain"):
        _print(_rows(states, args.key), args.output)
        return
    sentences = _on_clear(states)
    from airflow.providers.resumable.compat.api_server import tab_base_url
    from airflow.providers.resumable.inventory.view import tab_url

    base_url = tab_base_url()
    for state in states:
        print(
            f"{_scope_line(state.scope)}  ({state.backend}: {state.location}"
            f"{', ' + state.updated_at if state.updated_at else ''})"
            f"{f'  task instance: {state.ti_state}' if state.ti_state else ''}"
        )
        print(f"  on clear: {sentences[state.scope]}")
        if base_url is not None:
            print(f"  in Airflow's UI: {tab_url(base_url, state.scope)}")
        if state.problem:
            print(f"  unreadable: {state.problem}")
        for row in state.entries(args.key):
            print(f"  {row['key']}: {row['meaning']}")
            if "expires_at" in row:
                print(f"    expires at {row['expires_at']}: `airflow state-store clean` deletes it after that")
            print(_shown(row["value"], inventory.command_for("show", state.scope, row["key"])))
            print(f"    delete with: {row['delete_with']}")


#: Characters of one value ``show`` prints as text; json and yaml output keep every value whole.
SHOW_LIMIT = 2000


def _shown(value: Any, show: str) -> str:
    """``value`` as indented JSON for a person, cut at ``SHOW_LIMIT`` with the command that prints it all."""
    text = json.dumps(value, indent=2, sort_keys=True, default=str)
    cut = text[:SHOW_LIMIT]
    lines = [f"      {line}" for line in cut.splitlines()]
    if len(text) > SHOW_LIMIT:
        lines.append(f"      … cut at {SHOW_LIMIT} of {len(text)} characters; the whole value: `{show} --output json`")
    return "\n".join(lines)


def _where(state: inventory.TaskState, key: str) -> str:
    """One target of ``delete`` as a person reads it: the key, its task instance, where it is kept."""
    scope = state.scope
    mapped = f" [{scope.map_index}]" if scope.map_index >= 0 else ""
    region = f" region {scope.region_id} [{scope.region_index}]" if scope.region_id is not None else ""
    instance = f"{scope.dag_id} / {scope.run_id} / {scope.task_id}{mapped}{region}"
    place = "a task_state_store row" if state.backend == inventory.NATIVE else f"Variable {state.location!r}"
    if state.backend == inventory.LEDGER:
        place = f"the job record ledger, Variable {state.location!r}"
    return f"key {key!r} of {instance}, in {place}"


def state_delete(args: Namespace) -> None:
    missing = [
        flag
        for flag, value in (("--dag-id", args.dag_id), ("--run-id", args.run_id), ("--task-id", args.task_id))
        if value is None
    ]
    if missing:
        sys.exit(f"state delete needs {', '.join(missing)}: it deletes one task's state, never a whole DAG's.")
    states = _read(args)
    if not states:
        sys.exit(f"No state of airflow-provider-resumable for {_asked(args)}; nothing deleted.")
    targets = [(state, row["key"]) for state in states for row in state.entries(args.key)]
    if not targets:
        sys.exit(f"No key {args.key!r} in the state of {_asked(args)}; nothing deleted.")
    print("To delete:")
    for state, key in targets:
        print(f"  {_where(state, key)}")
    _confirm(args, "Delete it? A clear then starts these task instances afresh.", "Nothing deleted.")
    from airflow.utils.session import create_session

    with create_session() as session:
        for state in states:
            for line in inventory.delete(session, state, args.key):
                print(f"Deleted {line}")
