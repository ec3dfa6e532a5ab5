"""The ``watermark list|show|reset`` actions, on the ``airflow`` CLI's metadata DB."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

from airflow.providers.resumable.cli.state_command import _confirm, _print

if TYPE_CHECKING:
    from argparse import Namespace

    from airflow.providers.resumable.inventory.watermarks import StoredWatermark

_WATERMARK_COLUMNS = ("backend", "dag_id", "task_id", "map_index", "name", "value", "meaning")


def _watermarks(args: Namespace) -> list[StoredWatermark]:
    from airflow.utils.session import create_session

    from airflow.providers.resumable.inventory import watermarks as watermark_inventory

    filters = watermark_inventory.WatermarkFilters(
        dag_id=args.dag_id, task_id=args.task_id, map_index=args.map_index, name=args.name
    )
    with create_session() as session:
        found = watermark_inventory.read(session, filters)
    backend = getattr(args, "backend", "all") or "all"
    return [mark for mark in found if backend in ("all", mark.backend)]


def _asked_watermark(args: Namespace) -> str:
    parts = [
        f"{name}={value!r}"
        for name in ("dag_id", "task_id", "map_index", "name")
        if (value := getattr(args, name)) is not None
    ]
    if getattr(args, "backend", "all") not in (None, "all"):
        parts.append(f"backend={args.backend!r}")
    return ", ".join(parts) or "any task"


def watermark_list(args: Namespace) -> None:
    rows = [mark.row() for mark in _watermarks(args)]
    if args.output in ("table", "plain"):
        if not rows:
            print(f"No watermark of airflow-provider-resumable for {_asked_watermark(args)}.")
            return
        columns = (
            (*_WATERMARK_COLUMNS[:-1], "live", "meaning") if any(not r["live"] for r in rows) else _WATERMARK_COLUMNS
        )
        rows = [{column: row[column] for column in columns} for row in rows]
    _print(rows, args.output)


def watermark_show(args: Namespace) -> None:
    marks = _watermarks(args)
    if not marks:
        sys.exit(f"No watermark of airflow-provider-resumable for {_asked_watermark(args)}.")
    if args.output not in ("table", "plain"):
        _print([mark.row() for mark in marks], args.output)
        return
    for mark in marks:
        row = mark.row()
        scope = mark.scope
        print(
            f"{scope.dag_id} / {scope.task_id}{f' [{scope.map_index}]' if scope.map_index >= 0 else ''}"
            f"{f' ({scope.name})' if scope.name else ''}  ({mark.backend}: {mark.location}"
            f"{', ' + mark.updated_at if mark.updated_at else ''})"
        )
        print(f"  {row['meaning']}")
        for commit in mark.document.get("commits", []):
            overlap = f", overlapped {', '.join(commit['overlapped'])}" if commit.get("overlapped") else ""
            print(
                f"    v{commit.get('version')} {commit.get('committed_at')} {commit.get('run_id')} (try "
                f"{commit.get('try_number')}): {json.dumps(commit.get('base'))} -> {json.dumps(commit.get('value'))}"
                f"{overlap}"
            )
        print(f"  reset with: {row['reset_with']}")


def _parse_value(text: str) -> Any:
    """JSON when it parses (``42``, ``"abc"``), else the text itself (a bare timestamp)."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def watermark_reset(args: Namespace) -> None:
    missing = [flag for flag, value in (("--dag-id", args.dag_id), ("--task-id", args.task_id)) if value is None]
    if missing:
        sys.exit(f"watermark reset needs {', '.join(missing)}: it resets one task's watermark, never a whole DAG's.")
    marks = _watermarks(args)
    if not marks:
        sys.exit(
            f"No watermark of airflow-provider-resumable for {_asked_watermark(args)}; nothing reset. The first "
            "successful run creates it (from the operator's initial value)."
        )
    value = _parse_value(args.to) if args.to is not None else None
    if value is None and args.to is not None:
        sys.exit("--to null would erase the mark's value; reset without --to to delete the watermark instead.")
    from airflow.providers.resumable.inventory.watermarks import reset_refusal

    refusal = reset_refusal(marks, value)
    if refusal is not None:
        sys.exit(refusal)
    action = (
        f"set to {json.dumps(value)}" if value is not None else "delete (the next run starts from its initial value)"
    )
    print(f"To reset ({action}):")
    for mark in marks:
        print(f"  {mark.backend} {mark.location}: now {json.dumps(mark.document.get('value'))}")
    _confirm(args, "Reset it? The next run reads from there.", "Nothing reset.")
    from airflow.utils.session import create_session

    from airflow.providers.resumable.inventory import watermarks as watermark_inventory

    with create_session() as session:
        for mark in marks:
            print(watermark_inventory.reset(session, mark, value))
