"""Which store holds a task's watermark: the asset state store, a Variable, or nothing outside a task."""

from __future__ import annotations

import json

import pytest

from airflow.providers.resumable.state.base import CorruptStateError, StateBackendConfigError
from airflow.providers.resumable.state.task_try import TaskTry
from airflow.providers.resumable.version_compat import AIRFLOW_V_3_0_PLUS
from airflow.providers.resumable.watermarks.stores import (
    AssetWatermarkStore,
    EphemeralWatermarkStore,
    VariableWatermarkStore,
    WatermarkScope,
    get_watermark_store,
)
from tests.support.context import make_context
from tests.support.stores import DictVariables

SCOPE = WatermarkScope("dag", "extract")


def live(store):
    """The store a task writes to (a CarriedWatermarkStore wraps it with the places the mark may be from)."""
    return getattr(store, "live", store)


def running(context):
    """The try a task running with ``context`` builds (the store selection reads only the try)."""
    return TaskTry.from_context(context, owner="extract", kind="Extract")


@pytest.fixture(autouse=True)
def _auto(state_backend):
    """The leg's [resumable] state_backend must not decide these; the test that needs one sets it."""
    state_backend("auto")


needs_assets = pytest.mark.skipif(not AIRFLOW_V_3_0_PLUS, reason="assets and their state store are Airflow 3")


class Task:
    def __init__(self, *outlets):
        self.inlets = []
        self.outlets = list(outlets)


class Accessors(dict):
    """``context["asset_state_store"]``: subscript by asset."""

    def __getitem__(self, asset):
        return super().__getitem__(asset.name)


def assets(*names):
    from airflow.sdk import Asset

    return [Asset(name=n, uri=f"wm://{n}") for n in names]


def test_no_task_instance_keeps_nothing():
    assert isinstance(get_watermark_store(running({}), SCOPE), EphemeralWatermarkStore)
    assert isinstance(get_watermark_store(running(None), SCOPE), EphemeralWatermarkStore)


def test_no_asset_state_store_means_a_variable():
    store = get_watermark_store(running(make_context()), SCOPE, task=Task())
    assert isinstance(store, VariableWatermarkStore)
    assert store.key == SCOPE.key


@needs_assets
def test_the_only_asset_holds_it():
    (orders,) = assets("orders")
    context = make_context(asset_state_store=Accessors(orders="accessor"))
    store = live(get_watermark_store(running(context), SCOPE, task=Task(orders)))
    assert isinstance(store, AssetWatermarkStore)
    assert (store.accessor, store.asset_name) == ("accessor", "orders")


@needs_assets
def test_with_two_assets_watermark_asset_picks_one_or_a_variable_is_used():
    orders, users = assets("orders", "users")
    context = make_context(asset_state_store=Accessors(orders="a1", users="a2"))
    assert isinstance(get_watermark_store(running(context), SCOPE, task=Task(orders, users)), VariableWatermarkStore)
    picked = live(get_watermark_store(running(context), SCOPE, task=Task(orders, users), asset=users))
    assert isinstance(picked, AssetWatermarkStore)
    assert picked.accessor == "a2"
    (other,) = assets("elsewhere")
    with pytest.raises(StateBackendConfigError, match="is not among the inlets or outlets of task 'extract'"):
        get_watermark_store(running(context), SCOPE, task=Task(orders, users), asset=other)


@needs_assets
def test_state_backend_variable_keeps_watermarks_in_variables_too(state_backend):
    state_backend("variable")
    (orders,) = assets("orders")
    context = make_context(asset_state_store=Accessors(orders="accessor"))
    assert isinstance(live(get_watermark_store(running(context), SCOPE, task=Task(orders))), VariableWatermarkStore)


def test_the_variable_store_round_trips_and_names_bad_json():
    access = DictVariables()
    store = VariableWatermarkStore(SCOPE, access=access)
    assert store.read() is None
    store.write({"kind": "resumable-watermark", "value": 3})
    assert json.loads(access.rows[SCOPE.key][0])["value"] == 3
    assert store.read()["value"] == 3
    access.rows[SCOPE.key] = ("not json", "")
    with pytest.raises(CorruptStateError, match="is not JSON"):
        store.read()
    store.delete()
    assert store.read() is None


class DictAccessor:
    """One asset's ``asset_state_store`` accessor, in memory."""

    def __init__(self):
        self.rows = {}

    def get(self, key):
        return self.rows.get(key)

    def set(self, key, value):
        self.rows[key] = value

    def delete(self, key):
        self.rows.pop(key, None)


@needs_assets
@pytest.mark.parametrize("before", ["asset_state_store", "variable"])
def test_a_mark_is_carried_over_when_the_backend_changes_and_only_one_copy_remains(state_backend, before):
    from airflow.providers.resumable.watermarks.stores import CarriedWatermarkStore

    (orders,) = assets("orders")
    accessor, variables = DictAccessor(), DictVariables()
    context = make_context(asset_state_store=Accessors(orders=accessor))

    def store():
        found = get_watermark_store(running(context), SCOPE, task=Task(orders))
        assert isinstance(found, CarriedWatermarkStore)
        for place in (found.live, *found.previous):
            if isinstance(place, VariableWatermarkStore):
                place.access = variables
        return found

    state_backend("auto" if before == "asset_state_store" else "variable")
    first = store()
    assert first.live.name == before
    first.write({"kind": "resumable-watermark", "value": 7, "version": 1})
    state_backend("variable" if before == "asset_state_store" else "auto")
    second = store()
    assert second.live.name != before
    assert second.read()["value"] == 7, "carried over, not a second mark from the initial value"
    second.write({"kind": "resumable-watermark", "value": 9, "version": 2})
    assert (len(accessor.rows), len(variables.rows)) == (1, 0) if before == "variable" else (0, 1)
    assert store().read()["value"] == 9
