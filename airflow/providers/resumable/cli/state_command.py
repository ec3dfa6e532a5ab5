"""The ``state list|show|delete`` actions, on the metadata DB the ``airflow`` CLI itself uses."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

from airflow.providers.resumable.state import inventory

if TYPE_CHECKING:
    from argparse import Namespace

#: Columns of ``list`` as a table; json and yaml also carry the value, location and delete command.
_LIST_COLUMNS = ("backend", "dag_id", "run_id", "task_id", "map_index", "key", "meaning")


def _filters(args: Namespace) -> inventory.Filters:
    return inventory.Filters(
        dag_id=args.dag_id, run_id=args.run_id, task_id=args.task_id, map_index=args.map_index, key=args.key
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
    parts = [
        f"{name}={value!r}"
        for name in ("dag_id", "run_id", "task_id", "map_index", "key")
        if (value := getattr(args, name)) is not None
    ]
    return ", ".join(parts) or "any task instance"


def state_list(args: Namespace) -> None:
    rows = _rows(_read(args), args.key)
    if args.output in ("table", "plain"):
        rows = [{column: row[column] for column in _LIST_COLUMNS} for row in rows]
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
        print(
            f"{scope.dag_id} / {scope.run_id} / {scope.task_id}"
            f"{f' [{scope.map_index}]' if scope.map_index >= 0 else ''}  ({state.backend}: {state.location}"
            f"{', ' + state.updated_at if state.updated_at else ''})"
        )
        if state.problem:
            print(f"  unreadable: {state.problem}")
        for row in state.entries(args.key):
            print(f"  {row['key']}: {row['meaning']}")
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
    if not args.yes:
        try:
            answer = input("Delete it? A clear then starts these task instances afresh. (y/n) ")
        except EOFError:
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            sys.exit("Nothing deleted.")
    from airflow.utils.session import create_session

    with create_session() as session:
        for state in states:
            for line in inventory.delete(session, state, args.key):
                print(f"Deleted {line}")
