"""The store protocol, the scope and its digest, and the default ``finish``."""

from __future__ import annotations

import hashlib
import json

import pytest

from airflow.providers.resumable.state.backends import InMemoryStateStore
from airflow.providers.resumable.state.base import (
    FinishByMarker,
    MarkerFinishing,
    NamespacedStateStore,
    StateStore,
    TaskScope,
    backend_name,
    check_json,
    state_command,
)
from airflow.providers.resumable.state.codec import FINISHED_KEY, FinishedMarker
from airflow.providers.resumable.state.guard import GuardedStateStore


def test_the_digest_without_a_region_is_what_0_1_0_stored():
    # Variable names and watermark keys carry it: it must not move for a scope without a region.
    expected = hashlib.sha256(json.dumps(["d", "r", "t", -1], separators=(",", ":")).encode()).hexdigest()
    assert TaskScope("d", "r", "t").digest() == expected
    assert TaskScope("d", "r", "t").as_dict() == {"dag_id": "d", "run_id": "r", "task_id": "t", "map_index": -1}


def test_a_region_tells_two_iterations_of_a_loop_apart():
    first, second = (
        TaskScope("d", "r", "t", region_id="loop", region_index=0),
        TaskScope("d", "r", "t", region_id="loop", region_index=1),
    )
    assert len({first.digest(), second.digest(), TaskScope("d", "r", "t").digest()}) == 3
    assert first.as_dict()["region_index"] == 0


def test_state_command_names_the_map_index_and_the_key():
    command = state_command("delete", TaskScope("d", "r", "t", 3), "job")
    assert command.endswith("state delete --dag-id d --run-id r --task-id t --map-index 3 --key job")


@pytest.mark.parametrize("value", [None, float("nan"), {1, 2}, object()])
def test_check_json_refuses_what_the_native_store_refuses(value):
    with pytest.raises(ValueError, match="'k'"):
        check_json("k", value)


class FourMethods:
    def __init__(self):
        self.data = {}

    def get(self, key, default=None):
        return self.data.get(key, default)

    def set(self, key, value):
        self.data[key] = value

    def delete(self, key):
        self.data.pop(key, None)

    def clear(self):
        self.data.clear()


def test_a_store_with_four_methods_gets_the_default_finish():
    inner = FourMethods()
    store = MarkerFinishing(inner)
    assert not isinstance(inner, StateStore)
    assert isinstance(store, StateStore)
    store.set("k", 1)
    assert store.finish(FinishedMarker(try_number=2)) == "marked finished"
    assert inner.data[FINISHED_KEY]["try_number"] == 2
    assert inner.data["k"] == 1, "the default keeps the state: the marker ends its life"


def test_clears_on_success_drops_instead():
    class Dropped(InMemoryStateStore):
        clears_on_success = True

    store = Dropped()
    store.set("k", 1)
    assert store.finish(FinishedMarker(try_number=1)) == "dropped"
    assert store.data == {}


def test_finishing_a_view_or_a_guarded_store_finishes_the_backend():
    inner = InMemoryStateStore()
    guarded = GuardedStateStore(inner, owner="t")
    NamespacedStateStore(guarded, "ns").finish(FinishedMarker(try_number=1))
    assert inner.get(FINISHED_KEY)["try_number"] == 1
    assert isinstance(inner, FinishByMarker)


def test_backend_name_sees_through_wrappers():
    inner = InMemoryStateStore()
    assert backend_name(NamespacedStateStore(GuardedStateStore(inner, owner="t"), "ns")) == "InMemoryStateStore"


def test_the_0_1_0_import_paths_still_work():
    from airflow.providers.resumable.state.base import task_instance_of
    from airflow.providers.resumable.state.records import CheckpointEnvelope, JobRecord, where
    from airflow.providers.resumable.state.selection import get_state_store
    from airflow.providers.resumable.version_compat import AIRFLOW_V_3_0_PLUS, BaseOperator, Context

    assert task_instance_of({}) is None
    assert callable(get_state_store)
    assert callable(where)
    assert JobRecord.__name__ == "JobRecord"
    assert CheckpointEnvelope.__name__ == "CheckpointEnvelope"
    assert isinstance(AIRFLOW_V_3_0_PLUS, bool)
    assert BaseOperator is not None
    assert Context is not None
