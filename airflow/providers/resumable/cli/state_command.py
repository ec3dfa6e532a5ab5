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
_LIST_COLUMNS = ("backend", "dag_id", "run_id", "task_id", "map_index", "region_id", "region_index", "key", "meaning")
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
        return inventory.read(session, _filters(args), _backends(args))


def _rows(states: list[inventory.TaskState], key: str | None) -> list[dict[str, Any]]:
    return [row for state in states for row in state.entries(key)]


def _print(rows: list[dict[str, Any]], output: str) -> None:
    # json and yaml keep the values' types (Airflow's console would turn them into strings), so a
    # script can read the stored record back; tables go through Airflow's console as its own CLI does.
    if output == "json":
        print(json.dumps(rows, indent=2, sort_keys=True, default=str))
    elif output == "yaml":
        import yaml

        print(yaml.safe_dump(rows, sort_keys=True), end="")
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


def state_list(args: Namespace) -> None:
    rows = _rows(_read(args), args.key)
    if args.output in ("table", "plain"):
        present = {column for row in rows for column in _WHEN_PRESENT if column in row}
        columns = [c for c in (*_LIST_COLUMNS, "expires_at") if c not in _WHEN_PRESENT or c in present]
        rows = [{column: row.get(column) for column in columns} for row in rows]
    if not rows and args.output in ("table", "plain"):
        print(f"No state of airflow-provider-resumable for {_asked(args)}.")
        return
    _print(rows, args.output)


def state_show(args: Namespace) -> None:
    states = _read(args)
    if not states:
        sys.exit(f"No state of airflow-provider-resumable for {_asked(args)}.")
    if args.output not in ("table", "plain"):
        _print(_rows(states, args.key), args.output)
        return
    for state in states:
        scope = state.scope
        region = f" region {scope.region_id} [{scope.region_index}]" if scope.region_id is not None else ""
        print(
            f"{scope.dag_id} / {scope.run_id} / {scope.task_id}"
            f"{f' [{scope.map_index}]' if scope.map_index >= 0 else ''}{region}  ({state.backend}: {state.location}"
            f"{', ' + state.updated_at if state.updated_at else ''})"
        )
        if state.problem:
            print(f"  unreadable: {state.problem}")
        for row in state.entries(args.key):
            print(f"  {row['key']}: {row['meaning']}")
            if "expires_at" in row:
                print(f"    expires at {row['expires_at']}: `airflow state-store clean` deletes it after that")
            for line in json.dumps(row["value"], indent=2, sort_keys=True, default=str).splitlines():
                print(f"      {line}")
            print(f"    delete with: {row['delete_with']}")


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
        print(f"  {state.backend} {state.location}: {key}")
    _confirm(args, "Delete it? A clear then starts these task instances afresh.", "Nothing deleted.")
    from airflow.utils.session import create_session

    with create_session() as session:
        for state in states:
            for line in inventory.delete(session, state, args.key):
                print(f"Deleted {line}")
