from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from airflow.providers.resumable.state import (
    CorruptStateError,
    InMemoryStateStore,
    NamespacedStateStore,
    NativeTaskStateStore,
    StateStore,
    StateStoreError,
    TaskScope,
    VariableStateStore,
    finished_variables,
    variable_key,
)
from airflow.providers.resumable.state.backends import legacy_variable_key
from airflow.providers.resumable.state.codec import FINISHED_KEY, FinishedMarker
from airflow.providers.resumable.state.lifecycle import TryInfo
from airflow.providers.resumable.version_compat import AirflowFailException
from tests.support.stores import DictVariables

SCOPE = TaskScope(dag_id="my_dag", run_id="manual__2026-01-01T00:00:00+00:00", task_id="extract", map_index=-1)


class FakeAccessor:
    """Stands in for Airflow 3.3's TaskStateStoreAccessor."""

    def __init__(self):
        self.data = {}
        self.fail_with: Exception | None = None

    def get(self, key, default=None):
        if self.fail_with is not None:
            raise self.fail_with
        # The real accessor deserialises what the API server sends back: a fresh object each time.
        return json.loads(self.data[key]) if key in self.data else default

    def set(self, key, value):
        if self.fail_with is not None:
            raise self.fail_with
        self.data[key] = json.dumps(value)

    def delete(self, key):
        self.data.pop(key, None)

    def clear(self):
        self.data.clear()


def variable_store():
    return VariableStateStore(SCOPE, access=DictVariables())


BACKENDS = {
    "memory": InMemoryStateStore,
    "native": lambda: NativeTaskStateStore(FakeAccessor()),
    "variable": variable_store,
    "namespaced": lambda: NamespacedStateStore(InMemoryStateStore(), "ns"),
}


@pytest.fixture(params=sorted(BACKENDS))
def store(request) -> StateStore:
    return BACKENDS[request.param]()


class TestStateStoreContract:
    """Every backend behaves like Airflow 3.3's task_state_store."""

    def test_is_a_state_store(self, store):
        assert isinstance(store, StateStore)

    def test_missing_key_returns_default(self, store):
        assert store.get("nope") is None
        assert store.get("nope", 7) == 7

    def test_set_get_round_trips_json(self, store):
        value = {"a": [1, 2.5, "x", True, None], "b": {"c": "d"}}
        store.set("k", value)
        assert store.get("k") == value

    def test_set_overwrites(self, store):
        store.set("k", 1)
        store.set("k", 2)
        assert store.get("k") == 2

    def test_returned_values_are_copies(self, store):
        store.set("k", {"list": [1]})
        got = store.get("k")
        got["list"].append(2)
        assert store.get("k") == {"list": [1]}

    def test_delete_and_delete_missing(self, store):
        store.set("k", 1)
        store.delete("k")
        store.delete("never-set")
        assert store.get("k") is None

    def test_clear(self, store):
        store.set("a", 1)
        store.set("b", 2)
        store.clear()
        assert store.get("a") is None
        assert store.get("b") is None

    def test_none_is_rejected_naming_the_key(self, store):
        with pytest.raises(ValueError, match=r"'k' to None"):
            store.set("k", None)

    def test_non_json_is_rejected_naming_the_key_and_type(self, store):
        with pytest.raises(ValueError, match=r"'k' must hold a JSON value.*set"):
            store.set("k", {1, 2})


class TestNamespaced:
    def test_namespaces_do_not_collide_or_clear_each_other(self):
        inner = InMemoryStateStore()
        a, b = NamespacedStateStore(inner, "a"), NamespacedStateStore(inner, "b")
        a.set("k", "from-a")
        b.set("k", "from-b")
        inner.set("raw", "untouched")
        assert a.get("k") == "from-a"
        assert b.get("k") == "from-b"
        a.clear()
        assert a.get("k") is None
        assert b.get("k") == "from-b"
        assert inner.get("raw") == "untouched"

    def test_clear_works_from_a_new_instance(self):
        # A retry builds a new view; its clear() must still find the keys an earlier try wrote.
        inner = InMemoryStateStore()
        NamespacedStateStore(inner, "a").set("k", 1)
        NamespacedStateStore(inner, "a").clear()
        assert inner.data == {}

    def test_rewriting_a_key_writes_once(self):
        inner = InMemoryStateStore()
        ns = NamespacedStateStore(inner, "a")
        ns.set("k", 1)
        inner.calls.clear()
        ns.set("k", 2)
        assert inner.calls == [("set", "a/k")]

    @pytest.mark.parametrize("bad", ["", "a/b"])
    def test_bad_namespace(self, bad):
        with pytest.raises(ValueError, match="namespace must be"):
            NamespacedStateStore(InMemoryStateStore(), bad)


class TestVariableStore:
    def test_one_readable_variable_per_task_instance(self):
        access = DictVariables()
        store = VariableStateStore(SCOPE, access=access)
        store.set("job", {"id": 42})
        assert list(access.rows) == [store.key]
        text, description = access.rows[store.key]
        document = json.loads(text)
        assert document["scope"] == {
            "dag_id": "my_dag",
            "run_id": SCOPE.run_id,
            "task_id": "extract",
            "map_index": -1,
        }
        assert document["values"] == {"job": {"id": 42}}
        assert "\n" in text, "indented so a person can read it in the Variables UI"
        assert "my_dag.extract" in description

    def test_state_survives_a_new_store_object(self):
        access = DictVariables()
        VariableStateStore(SCOPE, access=access).set("k", "v")
        assert VariableStateStore(SCOPE, access=access).get("k") == "v"

    def test_deleting_the_last_key_removes_the_variable(self):
        access = DictVariables()
        store = VariableStateStore(SCOPE, access=access)
        store.set("k", "v")
        store.delete("k")
        assert access.rows == {}

    def test_clear_removes_the_variable(self):
        access = DictVariables()
        store = VariableStateStore(SCOPE, access=access)
        store.set("a", 1)
        store.clear()
        assert access.rows == {}

    def test_reads_the_variable_once_per_try(self):
        access = DictVariables()
        store = VariableStateStore(SCOPE, access=access)
        store.get("a")
        store.set("a", 1)
        store.get("a")
        # The 0.1.0 name is looked up once too, for a task instance upgraded in the middle of its retries.
        assert [c for c in access.calls if c[0] == "get"] == [("get", store.key), ("get", legacy_variable_key(SCOPE))]

    def test_the_name_says_dag_run_task_and_map_index(self):
        mapped = TaskScope("my_dag", SCOPE.run_id, "extract", 7)
        assert variable_key(mapped).startswith("resumable.my_dag.manual__2026-01-01T00-00-00-00-00.extract.7.")
        assert variable_key(SCOPE).startswith("resumable.my_dag.manual__2026-01-01T00-00-00-00-00.extract.")

    def test_state_under_the_0_1_0_name_is_resumed_then_moved(self):
        access = DictVariables()
        VariableStateStore(SCOPE, access=access).set("job", {"id": 42})
        (new_name,) = access.rows
        access.rows[legacy_variable_key(SCOPE)] = access.rows.pop(new_name)  # as 0.1.0 left it

        store = VariableStateStore(SCOPE, access=access)
        assert store.get("job") == {"id": 42}, "an upgrade mid-retries must not lose the job id"
        assert legacy_variable_key(SCOPE) in store.locate("job")
        store.set("cursor", 3)
        assert list(access.rows) == [store.key], "written under the new name first, then the old one deleted"
        assert VariableStateStore(SCOPE, access=access).get("job") == {"id": 42}

    def test_clear_also_removes_the_0_1_0_variable(self):
        access = DictVariables()
        access.rows[legacy_variable_key(SCOPE)] = ("{}", "")
        VariableStateStore(SCOPE, access=access).clear()
        assert access.rows == {}

    def test_locate_names_the_state_cli_and_the_variable(self):
        store = VariableStateStore(TaskScope("my_dag", "run 1", "extract", 2), access=DictVariables())
        where = store.locate("job")
        assert "state delete --dag-id my_dag --run-id 'run 1' --task-id extract --map-index 2 --key job" in where
        assert f"airflow variables delete {store.key}" in where

    def test_keys_fit_and_do_not_collide(self):
        long = TaskScope(dag_id="d" * 250, run_id="r" * 250, task_id="t" * 250, map_index=12345)
        assert len(variable_key(long)) <= 250
        scopes = [
            SCOPE,
            TaskScope("my_dag", SCOPE.run_id, "extract", 0),
            TaskScope("my_dag", "other-run", "extract"),
            TaskScope("my dag", SCOPE.run_id, "extract"),  # sanitises to the same readable part
            TaskScope("my-dag", SCOPE.run_id, "extract"),
        ]
        keys = {variable_key(s) for s in scopes}
        assert len(keys) == len(scopes)

    def test_a_non_json_variable_is_named_as_bad_state_without_retries(self):
        access = DictVariables()
        store = VariableStateStore(SCOPE, access=access)
        access.rows[store.key] = ("not json", "")
        with pytest.raises(
            CorruptStateError, match=rf"^The stored Variable is not JSON.*Where: Airflow Variable '{store.key}'"
        ) as err:
            store.get("k")
        assert isinstance(err.value, AirflowFailException)
        assert f"airflow variables delete {store.key}" in str(err.value)
        assert "unreachable" not in str(err.value)

    def test_variable_of_another_scope_is_refused(self):
        access = DictVariables()
        store = VariableStateStore(SCOPE, access=access)
        other = {"scope": {"dag_id": "x", "run_id": "y", "task_id": "z", "map_index": -1}, "values": {"k": 1}}
        access.rows[store.key] = (json.dumps(other), "")
        with pytest.raises(
            StateStoreError,
            match="^The stored Variable holds the state of another task instance.*Refusing to share state",
        ):
            store.get("k")

    def test_unreachable_backend_fails_loudly(self):
        access = DictVariables()
        access.fail_with = ConnectionError("metadata DB is down")
        store = VariableStateStore(SCOPE, access=access)
        with pytest.raises(StateStoreError, match=r"failed on get\('job'\).*metadata DB is down"):
            store.get("job")
        with pytest.raises(StateStoreError, match=r"failed on set\('job'\)"):
            store.set("job", 1)


class TestNativeStore:
    def test_errors_are_wrapped_with_backend_and_key(self):
        accessor = FakeAccessor()
        accessor.fail_with = RuntimeError("API server said 500")
        store = NativeTaskStateStore(accessor)
        with pytest.raises(StateStoreError, match=r"failed on get\('remote_job_id'\).*API server said 500"):
            store.get("remote_job_id")

    def test_locate_names_the_state_cli_and_the_rest_call_with_the_map_index(self):
        where = NativeTaskStateStore(FakeAccessor(), TaskScope("d", "r", "t", 4)).locate("job")
        assert "state delete --dag-id d --run-id r --task-id t --map-index 4 --key job" in where
        assert "DELETE /api/v2/dags/d/dagRuns/r/taskInstances/t/state-store/job?map_index=4" in where

    def test_finish_writes_the_marker_unless_airflow_clears_on_success(self, monkeypatch):
        accessor = FakeAccessor()
        store = NativeTaskStateStore(accessor, SCOPE)
        store.set("job", 1)
        marker = FinishedMarker(try_number=2, finished_at="now")
        assert store.finish(marker) == "marked finished"
        assert store.get(FINISHED_KEY) == marker.dump()
        monkeypatch.setenv("AIRFLOW__STATE_STORE__CLEAR_ON_SUCCESS", "True")
        store.delete(FINISHED_KEY)
        assert "dropped by Airflow" in store.finish(marker)
        assert store.get(FINISHED_KEY) is None, "writing after Airflow's clear would bring a key back"


def info(try_number, stamp, run_key="run-a", clear_number=0, max_tries=2):
    return TryInfo(
        try_number=try_number, max_tries=max_tries, try_stamp=stamp, run_key=run_key, clear_number=clear_number
    )


class TestVariableLife:
    """A Variable outlives its DAG run; one left by a deleted run must not be resumed from."""

    def write(self, access, writer):
        VariableStateStore(SCOPE, access=access, info=writer).set("checkpoint", {"batches_done": 5})

    @pytest.mark.parametrize(
        ("writer", "reader"),
        [
            (info(1, "ti-1"), info(1, "ti-1")),  # the same try (a deferral resumes with the same stamp)
            (info(1, "ti-1"), info(2, "ti-2")),  # a retry
            (info(2, "ti-2"), info(4, "ti-4", clear_number=1)),  # a clear of this run
            (TryInfo(), info(1, "ti-1")),  # written without a task instance's details
        ],
        ids=["same-try", "retry", "clear", "unknown-writer"],
    )
    def test_state_of_this_task_instance_is_read(self, writer, reader):
        access = DictVariables()
        self.write(access, writer)
        assert VariableStateStore(SCOPE, access=access, info=reader).get("checkpoint") == {"batches_done": 5}

    @pytest.mark.parametrize(
        ("writer", "reader", "why"),
        [
            (info(2, "ti-2"), info(1, "ti-9"), "written at try 2, this is try 1"),
            (info(1, "ti-1"), info(1, "ti-9"), "written by another try 1"),
            (info(1, "ti-1", run_key="run-a"), info(3, "ti-3", run_key="run-b"), "created as run-a, this one is run-b"),
            (info(1, "ti-1", clear_number=2), info(2, "ti-2", clear_number=0), "after clear number 2"),
        ],
        ids=["higher-try", "same-try-other-stamp", "other-run-row", "clear-number-went-back"],
    )
    def test_state_of_a_deleted_run_is_ignored_and_replaced(self, writer, reader, why, caplog):
        access = DictVariables()
        self.write(access, writer)
        store = VariableStateStore(SCOPE, access=access, info=reader)
        with caplog.at_level("WARNING"):
            assert store.get("checkpoint") is None
        assert why in caplog.text
        assert "earlier DAG run" in caplog.text
        store.set("checkpoint", {"batches_done": 0})
        document = json.loads(access.rows[store.key][0])
        assert document["values"] == {"checkpoint": {"batches_done": 0}}, "the old keys are gone"
        assert document["life"]["try_stamp"] == reader.try_stamp

    def test_finish_deletes_the_variable_where_no_try_can_fail_after_its_success(self, monkeypatch):
        monkeypatch.setattr(finished_variables, "late_failure_after_success", lambda: False)
        access = DictVariables()
        store = VariableStateStore(SCOPE, access=access, info=info(1, "ti-1"))
        store.set("k", 1)
        assert "deleted" in store.finish(FinishedMarker(try_number=1, finished_at="2026-12-05T03:00:00+00:00"))
        assert store.key not in access.rows

    def test_finish_keeps_the_variable_marked_finished_where_airflow_can_fail_a_try_after_its_success(
        self, monkeypatch
    ):
        monkeypatch.setattr(finished_variables, "late_failure_after_success", lambda: True)
        access = DictVariables()
        store = VariableStateStore(SCOPE, access=access, info=info(1, "ti-1"))
        store.set("job", {"external_id": "job-1"})
        said = store.finish(FinishedMarker(try_number=1, finished_at="2026-12-05T03:00:00+00:00"))
        assert "kept until 2026-12-06T03:00:00+00:00" in said, "a day by default"
        value, description = access.rows[store.key]
        values = json.loads(value)["values"]
        assert values["job"] == {"external_id": "job-1"}, "the retry of a late failure finds the job"
        assert values[FINISHED_KEY]["try_number"] == 1
        assert finished_variables.kept_until(description) == datetime(2026, 12, 6, 3, tzinfo=UTC)

        # A person's clear: the next life's first write takes the Variable back from the sweep.
        VariableStateStore(SCOPE, access=access, info=info(2, "ti-2", clear_number=1)).set("job", {"seq": 2})
        assert finished_variables.kept_until(access.rows[store.key][1]) is None

    def test_a_retention_of_zero_deletes_at_the_success(self, monkeypatch):
        monkeypatch.setattr(finished_variables, "late_failure_after_success", lambda: True)
        monkeypatch.setenv("AIRFLOW__RESUMABLE__FINISHED_STATE_RETENTION", "0")
        access = DictVariables()
        store = VariableStateStore(SCOPE, access=access, info=info(1, "ti-1"))
        store.set("k", 1)
        assert "deleted" in store.finish(FinishedMarker(try_number=1, finished_at="2026-12-05T03:00:00+00:00"))
        assert store.key not in access.rows


class TestAsyncAccess:
    """Coroutines reach the native accessor's ``aget``/``aset`` on 3.4, and a worker thread otherwise."""

    class Accessor:
        def __init__(self) -> None:
            self.data: dict = {}
            self.calls: list[str] = []

        def get(self, key, default=None):
            self.calls.append("get")
            return self.data.get(key, default)

        def set(self, key, value):
            self.calls.append("set")
            self.data[key] = value

        async def aget(self, key, default=None):
            self.calls.append("aget")
            return self.data.get(key, default)

        async def aset(self, key, value):
            self.calls.append("aset")
            self.data[key] = value

    @pytest.mark.parametrize(("v34", "expected"), [(True, ["aset", "aget"]), (False, ["set", "get"])])
    def test_native_async_calls(self, monkeypatch, v34, expected):
        import asyncio

        from airflow.providers.resumable.state import backends
        from airflow.providers.resumable.state.backends import NativeTaskStateStore
        from airflow.providers.resumable.state.base import NamespacedStateStore

        # Whether this Airflow's accessor can be awaited is compat's to say (tested there).
        monkeypatch.setattr(backends, "async_state_accessors", lambda accessor: v34)
        accessor = self.Accessor()
        store = NativeTaskStateStore(accessor)

        async def main():
            await store.aset("k", {"n": 1})
            return await store.aget("k")

        assert asyncio.run(main()) == {"n": 1}
        assert accessor.calls == expected

        view = NamespacedStateStore(store, "taskflow")
        asyncio.run(view.aset("loop0", {"next": 3}))
        assert accessor.data["taskflow/loop0"] == {"next": 3}
        assert accessor.data["taskflow/__keys__"] == ["loop0"]
