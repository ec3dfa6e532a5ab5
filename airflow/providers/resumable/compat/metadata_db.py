"""
The metadata DB as this provider's CLI and listener read it, per Airflow line (2.11, 3.0-3.2, 3.3, 3.4).

The rows of Airflow's own ``task_state_store`` and ``asset_state_store`` tables (3.3+), named the way
the CLI names a task instance, and how a person runs the CLI. Like ``compat/airflow.py``: one function
per difference, each branch saying which versions it covers, Airflow's internals imported inside.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from airflow.providers.resumable.compat.airflow import loop_region
from airflow.providers.resumable.compat.version_compat import AIRFLOW_V_3_4_PLUS


def task_state_store_model() -> Any:
    """3.3+: the ORM model of the ``task_state_store`` table; None before 3.3 (no native store)."""
    try:
        from airflow.models.task_state_store import TaskStateStoreModel
    except ImportError:
        return None
    return TaskStateStoreModel


def asset_state_store_model() -> Any:
    """3.3+: the ORM model of the ``asset_state_store`` table; None before 3.3."""
    try:
        from airflow.models.asset_state_store import AssetStateStoreModel
    except ImportError:
        return None
    return AssetStateStoreModel


class TaskStateRow(NamedTuple):
    """One row of the ``task_state_store`` table, the same on every Airflow line that has one."""

    dag_id: str
    run_id: str
    task_id: str
    #: The map index a person sees (and passes to ``--map-index``); -1 when not mapped.
    map_index: int
    #: 3.4+: the dynamic region the task instance belongs to (a Task Loop's iteration, or a mapped
    #: expansion), as the canonical UUID text; None outside one and on 3.3.
    region_id: str | None
    #: 3.4+: the stored index within ``region_id`` (an iteration of a loop, or the map index); None
    #: when ``region_id`` is.
    region_index: int | None
    key: str
    #: The stored JSON text, undecoded.
    value: str
    updated_at: datetime | None
    #: When ``airflow state-store clean`` may delete the row (``[state_store] default_retention_days``
    #: after its last write); None: never.
    expires_at: datetime | None


def task_state_rows(
    session: Any,
    *,
    dag_id: str | None = None,
    run_id: str | None = None,
    task_id: str | None = None,
    key: str | None = None,
) -> list[TaskStateRow]:
    """
    The rows of the ``task_state_store`` table with the given dag, run, task and key (None: any).

    Ordered by dag, run, task, map index and region. 3.4+: a row is keyed by ``(dag_run_id, task_id,
    region_id, region_index, key)``; ``region_index`` is 3.3's ``map_index`` renamed, and ``region_id``
    the all-zero sentinel outside any region; the map index is Airflow's public one (the stored index
    of a plain or mapped task instance, -1 for one in a loop). 3.3: keyed by ``(dag_run_id, task_id,
    map_index, key)``, no region. Both carry ``expires_at``. Before 3.3: no table, no rows.
    """
    model = task_state_store_model()
    if model is None:
        return []
    from sqlalchemy import select

    asked = {"dag_id": dag_id, "run_id": run_id, "task_id": task_id, "key": key}
    where = [getattr(model, column) == value for column, value in asked.items() if value is not None]
    if AIRFLOW_V_3_4_PLUS:
        from airflow.models.task_coordinates import (  # type: ignore[import-not-found]
            public_map_index_expression,
        )

        public = public_map_index_expression(model).label("public_map_index")
        query = (
            select(
                model.dag_id,
                model.run_id,
                model.task_id,
                public,
                model.region_id,
                model.region_index,
                model.key,
                model.value,
                model.updated_at,
                model.expires_at,
            )
            .where(*where)
            .order_by(model.dag_id, model.run_id, model.task_id, public, model.region_id, model.region_index)
        )
        rows = []
        for dag, run, task, map_index, region_id, region_index, name, value, updated, expires in session.execute(query):
            loop_id, loop_index = loop_region(region_id, region_index, int(map_index))
            rows.append(
                TaskStateRow(
                    dag,
                    run,
                    task,
                    int(map_index),
                    loop_id,
                    loop_index,
                    name,
                    value,
                    updated,
                    expires,
                )
            )
        return rows
    query = (
        select(
            model.dag_id,
            model.run_id,
            model.task_id,
            model.map_index,
            model.key,
            model.value,
            model.updated_at,
            model.expires_at,
        )
        .where(*where)
        .order_by(model.dag_id, model.run_id, model.task_id, model.map_index)
    )
    return [
        TaskStateRow(dag, run, task, int(map_index), None, None, name, value, updated, expires)
        for dag, run, task, map_index, name, value, updated, expires in session.execute(query)
    ]


def _task_state_where(
    model: Any, dag_id: str, run_id: str, task_id: str, map_index: int, region_id: str | None, region_index: int | None
) -> list[Any] | None:
    """
    The WHERE clauses of one task instance's rows, named as :func:`task_state_rows` names it; None: no rows.

    3.4+: the stored coordinates are ``(region_id, region_index)`` for a Task Loop iteration, else the
    map index (in the sentinel region, or in a mapped task's expansion). 3.3: ``map_index``; a region
    matches nothing there.
    """
    where = [model.dag_id == dag_id, model.run_id == run_id, model.task_id == task_id]
    if AIRFLOW_V_3_4_PLUS:
        from uuid import UUID

        from airflow.models.task_coordinates import public_map_index_expression

        if region_id is None:
            # Outside a loop (see loop_region): the stored index is the map index, in the sentinel
            # region or in the mapped task's own expansion.
            return [*where, model.region_index == map_index, public_map_index_expression(model) == map_index]
        return [*where, model.region_id == UUID(region_id), model.region_index == region_index]
    if region_id is not None:
        return None
    return [*where, model.map_index == map_index]


def delete_task_state_rows(
    session: Any,
    *,
    dag_id: str,
    run_id: str,
    task_id: str,
    map_index: int,
    region_id: str | None,
    region_index: int | None,
    keys: list[str],
) -> int:
    """
    Delete the rows ``keys`` of one task instance (see :func:`_task_state_where`); returns how many.

    Before 3.3: no table, nothing to delete.
    """
    model = task_state_store_model()
    if model is None or not keys:
        return 0
    where = _task_state_where(model, dag_id, run_id, task_id, map_index, region_id, region_index)
    if where is None:
        return 0
    from sqlalchemy import delete

    return int(session.execute(delete(model).where(*where, model.key.in_(keys))).rowcount or 0)


def rewrite_task_state_row(
    session: Any,
    *,
    dag_id: str,
    run_id: str,
    task_id: str,
    map_index: int,
    region_id: str | None,
    region_index: int | None,
    key: str,
    value: str,
) -> int:
    """Replace the stored text of one existing row (see :func:`_task_state_where`); how many rows changed."""
    model = task_state_store_model()
    if model is None:
        return 0
    where = _task_state_where(model, dag_id, run_id, task_id, map_index, region_id, region_index)
    if where is None:
        return 0
    from datetime import UTC

    from sqlalchemy import update

    statement = update(model).where(*where, model.key == key).values(value=value, updated_at=datetime.now(tz=UTC))
    return int(session.execute(statement).rowcount or 0)


class AssetStateRow(NamedTuple):
    """One row of the ``asset_state_store`` table, with its asset's name."""

    asset_id: int
    asset_name: str
    key: str
    #: The stored JSON text, undecoded.
    value: str
    updated_at: datetime | None
    #: Who Airflow recorded as the last writer: kind (``task``, ``watcher``, ``api``), dag_id, run_id,
    #: task_id, map_index. A write through an in-process execution API (``dag.test()``) is recorded
    #: as ``watcher`` with no task instance, whoever made it.
    writer: dict[str, Any] | None = None


#: The writer columns 3.3 and 3.4 both have (3.4 adds the task instance id, region and try number).
_WRITER_COLUMNS = ("kind", "dag_id", "run_id", "task_id", "map_index")


def asset_state_rows(session: Any, key_prefix: str) -> list[AssetStateRow]:
    """
    The rows of the ``asset_state_store`` table whose key starts with ``key_prefix``.

    3.3+ (3.4 keeps the columns read here; it adds who last wrote a row, down to its region): keyed by
    ``(asset_id, key)``; rows never expire; ``last_updated_by_*`` name the writer. Before 3.3: no
    table, no rows.
    """
    model = asset_state_store_model()
    if model is None:
        return []
    from airflow.models.asset import AssetModel
    from sqlalchemy import select

    writers = [getattr(model, f"last_updated_by_{name}") for name in _WRITER_COLUMNS]
    query = (
        select(model.asset_id, AssetModel.name, model.key, model.value, model.updated_at, *writers)
        .join(AssetModel, AssetModel.id == model.asset_id)
        .where(model.key.like(f"{key_prefix}%"))
        .order_by(model.asset_id, model.key)
    )
    found = []
    for a, n, k, v, u, *who in session.execute(query):
        writer = dict(zip(_WRITER_COLUMNS, who, strict=True)) if who[0] is not None else None
        found.append(AssetStateRow(int(a), str(n), k, v, u, writer))
    return found


def write_asset_state_row(session: Any, asset_id: int, key: str, value: str | None) -> None:
    """
    Overwrite the value of one ``asset_state_store`` row, or delete it when ``value`` is None.

    The row is recorded as written by a person (``last_updated_by_kind='api'``, no task instance,
    as Airflow's own REST write records it), not left naming the task that wrote it last. 3.3+ (3.4
    the same, with more ``last_updated_by_*`` columns, all cleared); before 3.3 there is no such row.
    """
    model = asset_state_store_model()
    if model is None:
        return
    from sqlalchemy import delete, update

    where = (model.asset_id == asset_id, model.key == key)
    if value is None:
        session.execute(delete(model).where(*where))
        return
    from datetime import UTC

    by_hand: dict[str, str | None] = {
        c.name: None for c in model.__table__.columns if c.name.startswith("last_updated_by_")
    }
    by_hand["last_updated_by_kind"] = "api"
    session.execute(update(model).where(*where).values(value=value, updated_at=datetime.now(tz=UTC), **by_hand))


def state_cli_program() -> list[str]:
    """
    How a person runs this provider's CLI on the installed Airflow.

    3.2+ load provider CLI commands (``airflow resumable ...``); 2.11-3.1 do not, and the same
    commands ship as the ``airflow-resumable`` console script.
    """
    try:
        from airflow.providers_manager import ProvidersManager
    except ImportError:  # pragma: no cover - every supported Airflow has it
        return ["airflow-resumable"]
    return ["airflow", "resumable"] if hasattr(ProvidersManager, "cli_command_functions") else ["airflow-resumable"]
