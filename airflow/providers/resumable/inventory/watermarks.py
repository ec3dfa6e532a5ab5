"""
The watermarks this provider keeps, read and reset from outside any task: the ``watermark`` CLI's model.

Two places hold them: Airflow Variables named ``resumable.watermark.<dag>.<task>[.<map>][.<name>].<hash>``
(any Airflow) and, on Airflow 3.3+, rows of the ``asset_state_store`` table under the same key. Each
document carries its scope (dag, task, map index, name), which is what the filters match.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow.providers.resumable.compat.metadata_db import asset_state_rows, write_asset_state_row
from airflow.providers.resumable.inventory.filters import Filters as WatermarkFilters  # noqa: TC001 - the CLI builds it
from airflow.providers.resumable.state.base import CorruptStateError
from airflow.providers.resumable.state.codec import WATERMARK_KIND, utcnow_iso
from airflow.providers.resumable.watermarks.rules import (
    WATERMARK_PREFIX,
    WatermarkDocument,
    describe_document,
    reset_document,
)
from airflow.providers.resumable.watermarks.stores import WatermarkScope, watermark_command

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

ASSET = "asset_state_store"
VARIABLE = "variable"


@dataclass
class StoredWatermark:
    """One watermark as found in the metadata DB."""

    backend: str
    scope: WatermarkScope
    #: The Variable's name, or ``asset <name>: key <key>``.
    location: str
    document: dict[str, Any]
    updated_at: str | None = None
    #: The row's primary key on the asset store (asset_id, key); None for a Variable.
    asset_row: tuple[int, str] | None = None
    #: False for a stale copy: the same task's mark is also in the other backend, committed later.
    live: bool = True
    #: Where the other copy is, when there is one.
    other: str | None = None
    #: Who Airflow recorded as the row's last writer (asset store only; see ``compat.AssetStateRow``).
    airflow_writer: dict[str, Any] | None = None

    def row(self) -> dict[str, Any]:
        try:
            meaning = describe_document(WatermarkDocument.parse(self.document, self.location))  # type: ignore[arg-type]
        except CorruptStateError as err:
            meaning = f"unreadable: {err}"
        if self.other is not None:
            meaning = (
                f"live copy (also in {self.other}, older): {meaning}"
                if self.live
                else f"STALE copy (the newer one is in {self.other}; the task carries that one over): {meaning}"
            )
        # Airflow 3.4's Task Loops: a document whose scope names a region says so (json, yaml).
        written = self.document.get("scope")
        region = (
            {"region_id": written["region_id"], "region_index": written.get("region_index")}
            if isinstance(written, dict) and written.get("region_id") is not None
            else {}
        )
        return {
            "backend": self.backend,
            "dag_id": self.scope.dag_id,
            "task_id": self.scope.task_id,
            "map_index": self.scope.map_index,
            **region,
            "name": self.scope.name,
            "value": self.document.get("value"),
            "version": self.document.get("version"),
            "live": self.live,
            "committed_by": committed_by(self.document),
            "airflow_writer": self.airflow_writer,
            "meaning": meaning,
            "location": self.location,
            "updated_at": self.updated_at,
            "document": self.document,
            "reset_with": watermark_command("reset", self.scope, "--to VALUE"),
        }


def committed_by(document: dict[str, Any]) -> dict[str, Any] | None:
    """
    Who moved the mark last, from the document: the task instance and try (``None`` for a reset by
    hand). Airflow's own ``last_updated_by_*`` columns cannot always say (a write through an
    in-process API is recorded as ``watcher``); the commit entry always can.
    """
    commits = document.get("commits")
    last = commits[-1] if isinstance(commits, list) and commits and isinstance(commits[-1], dict) else None
    if last is None or last.get("run_id") == "(reset by hand)":
        return None
    written = document.get("scope")
    scope: dict[str, Any] = written if isinstance(written, dict) else {}
    return {
        "dag_id": last.get("dag_id") or scope.get("dag_id"),
        "task_id": last.get("task_id") or scope.get("task_id"),
        "run_id": last.get("run_id"),
        "map_index": last.get("map_index", -1),
        "try_number": last.get("try_number"),
    }


def _scope_of(document: Any) -> WatermarkScope | None:
    if not isinstance(document, dict) or document.get("kind") != WATERMARK_KIND:
        return None
    scope = document.get("scope")
    if not isinstance(scope, dict):
        return None
    try:
        region = scope.get("region_index")
        return WatermarkScope(
            scope["dag_id"],
            scope["task_id"],
            int(scope.get("map_index", -1)),
            scope.get("name") or None,
            int(region) if region is not None else None,
        )
    except (KeyError, TypeError, ValueError):
        return None


def read_assets(session: Session, filters: WatermarkFilters) -> list[StoredWatermark]:
    found = []
    for row in asset_state_rows(session, f"{WATERMARK_PREFIX}."):
        try:
            document = json.loads(row.value)
        except ValueError:
            continue
        scope = _scope_of(document)
        if scope is None or not filters.admits(scope):
            continue
        stamp = row.updated_at.isoformat(timespec="seconds") if row.updated_at else None
        found.append(
            StoredWatermark(
                ASSET,
                scope,
                f"asset {row.asset_name!r}, key {row.key!r}",
                document,
                stamp,
                (row.asset_id, row.key),
                airflow_writer=row.writer,
            )
        )
    return found


def read_variables(session: Session, filters: WatermarkFilters) -> list[StoredWatermark]:
    from airflow.models import Variable
    from sqlalchemy import select

    found = []
    for variable in session.scalars(select(Variable).where(Variable.key.like(f"{WATERMARK_PREFIX}.%"))):
        raw = variable.get_val()
        try:
            document = json.loads(raw) if raw is not None else None
        except ValueError:
            continue
        scope = _scope_of(document)
        if scope is None or not filters.admits(scope):
            continue
        assert isinstance(document, dict)
        found.append(StoredWatermark(VARIABLE, scope, variable.key, document))
    return found


def _last_commit(mark: StoredWatermark) -> str:
    commits = mark.document.get("commits")
    last = commits[-1] if isinstance(commits, list) and commits and isinstance(commits[-1], dict) else {}
    return str(last.get("committed_at") or mark.updated_at or "")


def read(session: Session, filters: WatermarkFilters) -> list[StoredWatermark]:
    found = read_assets(session, filters) + read_variables(session, filters)
    # A task whose backend changed before 0.2.0 carried its mark over may have a copy in each: the
    # one committed last is what the task carries over (``CarriedWatermarkStore``), the other is stale.
    by_scope: dict[WatermarkScope, list[StoredWatermark]] = {}
    for mark in found:
        by_scope.setdefault(mark.scope, []).append(mark)
    for copies in by_scope.values():
        if len(copies) > 1:
            newest = max(copies, key=_last_commit)
            for mark in copies:
                mark.live = mark is newest
                mark.other = ", ".join(f"{m.backend} {m.location}" for m in copies if m is not mark)
    return sorted(found, key=lambda w: (w.scope.dag_id, w.scope.task_id, w.scope.map_index, w.scope.name or ""))


def reset(session: Session, mark: StoredWatermark, value: Any = None) -> str:
    """Set ``mark`` to ``value`` (a new version, so a run in flight sees an overlap), or delete it when None."""
    if value is None:
        if mark.asset_row is not None:
            write_asset_state_row(session, *mark.asset_row, None)
        else:
            from airflow.models import Variable

            Variable.delete(mark.location, session=session)
        return f"Deleted {mark.backend} {mark.location}; the next run starts from its initial value"
    current = WatermarkDocument.parse(mark.document, mark.location)
    document = reset_document(current, value, now=utcnow_iso(), scope=mark.scope.as_dict()).dump()
    text = json.dumps(document)
    if mark.asset_row is not None:
        write_asset_state_row(session, *mark.asset_row, text)
    else:
        from airflow.models import Variable
        from sqlalchemy import select

        variable = session.scalar(select(Variable).where(Variable.key == mark.location))
        assert variable is not None
        variable.set_val(json.dumps(document, indent=2, sort_keys=True))
        session.merge(variable)
    return f"Set {mark.backend} {mark.location} to {json.dumps(value)} (version {document['version']})"


def reset_refusal(marks: list[StoredWatermark], value: Any) -> str | None:
    """
    Why resetting ``marks`` to ``value`` (None: delete) must not happen, or None: the CLI and the UI tab refuse alike.

    One watermark kept in two places (a task whose backend changed) is never reset in both silently, and
    a reset never changes the mark's type (a number to a timestamp), which would break the next run.
    """
    from airflow.providers.resumable.watermarks.rules import WatermarkValueError, check_reset_value

    by_scope: dict[Any, list[StoredWatermark]] = {}
    for mark in marks:
        by_scope.setdefault(mark.scope, []).append(mark)
    for scope, copies in by_scope.items():
        if len(copies) < 2:
            continue
        live = next((m for m in copies if m.live), copies[0])
        places = "; ".join(f"{m.backend} {m.location} = {json.dumps(m.document.get('value'))}" for m in copies)
        return (
            f"The watermark of task {scope.task_id!r} in DAG {scope.dag_id!r} is kept in {len(copies)} places "
            f"(its backend changed): {places}. The newest commit is in {live.backend}, which the task carries over; "
            "nothing reset. Pass --backend asset_state_store or --backend variable to reset one of them (without "
            "--to, the stale one is deleted)."
        )
    if value is None:
        return None
    for mark in marks:
        try:
            check_reset_value(mark.document.get("value"), value)
        except WatermarkValueError as err:
            return f"Refusing to reset {mark.backend} {mark.location}: {err}"
    return None
