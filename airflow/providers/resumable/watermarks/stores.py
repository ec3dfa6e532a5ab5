"""
Where a watermark document lives: Airflow 3.3's asset state store, an Airflow Variable, or memory.

One small protocol, :class:`WatermarkStore` (read, write, delete one JSON document), so the mixin and
the success listener never branch on the backend. :func:`get_watermark_store` picks one:

* the task's asset in the try's ``asset_state_store`` (Airflow 3.3+) when the task has exactly one
  ``Asset`` among its inlets and outlets, or ``watermark_asset`` names one of them;
* otherwise, and always with ``[resumable] state_backend = variable``, the Variable
  ``resumable.watermark.<dag>.<task>[.<map>][.<name>].<hash>``;
* with no task instance (a unit test calling ``execute()``), memory: nothing is kept.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from airflow.providers.resumable.compat.airflow import asset_type
from airflow.providers.resumable.state.backends import VariableAccess, default_variable_access, wrap_errors
from airflow.providers.resumable.state.base import (
    CorruptStateError,
    JsonValue,
    StateBackendConfigError,
    state_cli_program,
)
from airflow.providers.resumable.state.selection import configured_backend
from airflow.providers.resumable.watermarks.rules import watermark_key

if TYPE_CHECKING:
    from airflow.providers.resumable.state.task_try import TaskTry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WatermarkScope:
    """One watermark: the task (and map index) that advances it, and an optional name."""

    dag_id: str
    task_id: str
    map_index: int = -1
    name: str | None = None
    #: The iteration of an Airflow 3.4 Task Loop; None outside one.
    region_index: int | None = None

    @property
    def key(self) -> str:
        return watermark_key(self.dag_id, self.task_id, self.map_index, self.name, self.region_index)

    def as_dict(self) -> dict[str, Any]:
        found = {"dag_id": self.dag_id, "task_id": self.task_id, "map_index": self.map_index, "name": self.name}
        if self.region_index is not None:
            found["region_index"] = self.region_index
        return found


def watermark_command(verb: str, scope: WatermarkScope, extra: str = "") -> str:
    """The exact ``watermark <verb>`` command line for one watermark."""
    import shlex

    args = ["watermark", verb, "--dag-id", scope.dag_id, "--task-id", scope.task_id]
    if scope.map_index >= 0:
        args += ["--map-index", str(scope.map_index)]
    if scope.name:
        args += ["--name", scope.name]
    return " ".join(state_cli_program()) + " " + shlex.join(args) + (f" {extra}" if extra else "")


@runtime_checkable
class WatermarkStore(Protocol):
    """Holds one watermark document; every failure of the system behind it is a ``StateStoreError``."""

    #: ``asset_state_store``, ``variable`` or ``memory``: shown in logs, the manifest and the CLI.
    name: str
    #: False when nothing outlives the call (no task instance): the mark is never committed.
    durable: bool

    def read(self) -> JsonValue: ...

    def write(self, document: JsonValue) -> None: ...

    def delete(self) -> None: ...

    def locate(self) -> str: ...


class AssetWatermarkStore:
    """Airflow 3.3+: one key of the task's ``asset_state_store[asset]``, kept with the asset in the metadata DB."""

    name = "asset_state_store"
    durable = True

    def __init__(self, accessor: Any, asset_name: str, scope: WatermarkScope) -> None:
        self.accessor = accessor
        self.asset_name = asset_name
        self.scope = scope

    def __repr__(self) -> str:
        return f"AssetWatermarkStore(asset={self.asset_name!r}, key={self.scope.key!r})"

    def locate(self) -> str:
        return (
            f"asset_state_store key {self.scope.key!r} of asset {self.asset_name!r} (the watermark of task "
            f"{self.scope.task_id!r} in DAG {self.scope.dag_id!r}); inspect it with "
            f"`{watermark_command('show', self.scope)}`"
        )

    @wrap_errors("read")
    def read(self) -> JsonValue:
        return self.accessor.get(self.scope.key)

    @wrap_errors("write")
    def write(self, document: JsonValue) -> None:
        self.accessor.set(self.scope.key, document)

    @wrap_errors("delete")
    def delete(self) -> None:
        self.accessor.delete(self.scope.key)


class VariableWatermarkStore:
    """Any Airflow: one Variable per watermark, indented JSON so a person can read it in the UI."""

    name = "variable"
    durable = True

    def __init__(self, scope: WatermarkScope, access: VariableAccess | None = None) -> None:
        self.scope = scope
        self.key = scope.key
        self.access = access or default_variable_access()

    def __repr__(self) -> str:
        return f"VariableWatermarkStore(variable={self.key!r})"

    def locate(self) -> str:
        return (
            f"Airflow Variable {self.key!r} (the watermark of task {self.scope.task_id!r} in DAG "
            f"{self.scope.dag_id!r}); inspect it with `{watermark_command('show', self.scope)}`"
        )

    @wrap_errors("read")
    def read(self) -> JsonValue:
        raw = self.access.get(self.key)
        if raw is None:
            return None
        try:
            return json.loads(raw)
        except ValueError as err:
            raise CorruptStateError(
                f"The value of {self.locate()} is not JSON ({err}), so this provider did not write it. Reset it "
                f"with `{watermark_command('reset', self.scope, '--to VALUE')}` or delete it."
            ) from err

    @wrap_errors("write")
    def write(self, document: JsonValue) -> None:
        description = (
            f"Watermark of {self.scope.dag_id}.{self.scope.task_id} (airflow-provider-resumable): where the last "
            "successful run stopped. Moved only after a run's success; reset with `airflow resumable watermark reset`."
        )
        self.access.set(self.key, json.dumps(document, indent=2, sort_keys=True), description)

    @wrap_errors("delete")
    def delete(self) -> None:
        self.access.delete(self.key)


class CarriedWatermarkStore:
    """
    The store the task uses now, carrying the mark over from where the task kept it before.

    A task's backend changes when ``[resumable] state_backend`` or its assets change (an ``Asset``
    outlet on the native store, then ``variable``). Without this the new store is empty and the
    next run starts a second mark from the initial value, re-reading everything. So: when the live
    store holds nothing, the first earlier location holding this task's mark is read instead (and
    logged), and the commit that writes the live store deletes that copy, leaving one mark.
    """

    def __init__(self, live: WatermarkStore, previous: list[WatermarkStore]) -> None:
        self.live = live
        self.previous = previous
        self.name = live.name
        self.durable = live.durable
        #: The earlier store the mark was read from, until the commit deletes it there.
        self.carried: WatermarkStore | None = None

    def __repr__(self) -> str:
        return f"CarriedWatermarkStore({self.live!r}, from {self.previous!r})"

    def locate(self) -> str:
        return self.live.locate()

    def read(self) -> JsonValue:
        document = self.live.read()
        if document is not None:
            return document
        for old in self.previous:
            document = old.read()
            if document is not None:
                if self.carried is None:
                    log.warning(
                        "No watermark in %s, but this task's mark is in %s (its backend changed): carrying it over; "
                        "the next commit writes it to %s and deletes the old copy",
                        self.live.locate(),
                        old.locate(),
                        self.live.name,
                    )
                self.carried = old
                return document
        return None

    def write(self, document: JsonValue) -> None:
        self.live.write(document)
        if self.carried is not None:
            # One mark per task: a second copy would be listed, and reset, beside the live one.
            self.carried.delete()
            log.info("Watermark carried over to %s; deleted the old copy in %s", self.live.name, self.carried.locate())
            self.carried = None

    def delete(self) -> None:
        self.live.delete()


class InMemoryWatermarkStore:
    """For unit tests; :class:`EphemeralWatermarkStore` is what runs outside a task instance."""

    name = "memory"
    durable = True

    def __init__(self, document: JsonValue = None) -> None:
        self.document = document

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def locate(self) -> str:
        return f"the in-memory watermark store {type(self).__name__}"

    def read(self) -> JsonValue:
        return json.loads(json.dumps(self.document)) if self.document is not None else None

    def write(self, document: JsonValue) -> None:
        self.document = json.loads(json.dumps(document))

    def delete(self) -> None:
        self.document = None


class EphemeralWatermarkStore(InMemoryWatermarkStore):
    """No task instance (``op.execute({})`` in a unit test): every run starts from the initial value."""

    durable = False


def _assets_of(task: Any) -> dict[str, Any]:
    """The concrete assets among the task's inlets and outlets, by name (aliases and refs are left out)."""
    asset_class = asset_type()
    if asset_class is None:
        return {}
    found: dict[str, Any] = {}
    for item in [*(getattr(task, "inlets", None) or []), *(getattr(task, "outlets", None) or [])]:
        if isinstance(item, asset_class):
            found.setdefault(item.name, item)
    return found


def get_watermark_store(
    task_try: TaskTry, scope: WatermarkScope, *, task: Any = None, asset: Any = None
) -> WatermarkStore:
    """
    The store of the watermark ``scope`` for the running try (see the module doc), carrying the mark
    over from the other place this task could have kept it (:class:`CarriedWatermarkStore`).
    """
    if task_try.scope is None:
        return EphemeralWatermarkStore()
    live = _live_store(task_try, scope, task=task, asset=asset)
    previous: list[WatermarkStore] = []
    if isinstance(live, AssetWatermarkStore):
        previous.append(VariableWatermarkStore(scope))
    elif configured_backend() == "variable":
        # The asset store this task would use without the setting: where its mark may be from.
        try:
            native = _asset_store(task_try, scope, task=task, asset=asset)
        except StateBackendConfigError:
            native = None
        if native is not None:
            previous.append(native)
    return CarriedWatermarkStore(live, previous) if previous else live


def _live_store(task_try: TaskTry, scope: WatermarkScope, *, task: Any, asset: Any) -> WatermarkStore:
    if configured_backend() == "variable":
        return VariableWatermarkStore(scope)
    return _asset_store(task_try, scope, task=task, asset=asset) or VariableWatermarkStore(scope)


def _asset_store(task_try: TaskTry, scope: WatermarkScope, *, task: Any, asset: Any) -> AssetWatermarkStore | None:
    """The asset-store key of this mark, or None where the task has no asset store to keep it in."""
    accessors = task_try.asset_accessors
    assets = _assets_of(task)
    if asset is not None:
        if accessors is None:
            log.info("No asset_state_store on this Airflow (3.3+ has it): the watermark is kept in a Variable")
            return None
        name = getattr(asset, "name", None)
        if name not in assets:
            raise StateBackendConfigError(
                f"watermark_asset={asset!r} is not among the inlets or outlets of task {scope.task_id!r} "
                f"(they have {sorted(assets) or 'no assets'}); add it to outlets, or drop watermark_asset"
            )
        return AssetWatermarkStore(accessors[assets[name]], name, scope)
    if accessors is not None and len(assets) == 1:
        name, only = next(iter(assets.items()))
        return AssetWatermarkStore(accessors[only], name, scope)
    return None
