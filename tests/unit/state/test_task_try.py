"""The running try: reading the context once, and the store ``[resumable] state_backend`` picks for it."""

from __future__ import annotations

from unittest import mock

import pytest

from airflow.providers.resumable.state import (
    EphemeralStateStore,
    InMemoryStateStore,
    NativeTaskStateStore,
    StateBackendConfigError,
    StateStoreError,
    TaskScope,
    VariableStateStore,
    after_success,
    get_state_store,
    is_durable,
)
from airflow.providers.resumable.state.codec import FINISHED_KEY, FinishedMarker
from airflow.providers.resumable.state.guard import GuardedStateStore
from airflow.providers.resumable.state.lifecycle import TryInfo
from airflow.providers.resumable.state.task_try import TaskTry, operator_name, try_info_of
from airflow.providers.resumable.version_compat import AirflowFailException
from tests.support.context import FakeTI, make_context

SHARED = InMemoryStateStore()


class ContextStore(InMemoryStateStore):
    """A custom backend as a user would write one: built from the context."""

    @classmethod
    def from_context(cls, context):
        store = cls()
        store.built_for = context["ti"].task_id
        return store


class NotAStore:
    def __init__(self, context):
        pass


class BrokenSignature:
    @classmethod
    def from_context(cls):
        raise AssertionError("never called with the wrong arguments")


class Unreachable:
    @classmethod
    def from_context(cls, context):
        raise ConnectionError("redis down")


class TestAuto:
    def test_native_when_the_context_has_it(self, state_backend):
        state_backend("auto")
        store = get_state_store(make_context(task_state_store=object()))
        assert isinstance(store, NativeTaskStateStore)

    def test_variables_otherwise(self, state_backend):
        state_backend("auto")
        assert isinstance(get_state_store(make_context()), VariableStateStore)

    def test_default_is_auto(self, monkeypatch):
        monkeypatch.delenv("AIRFLOW__RESUMABLE__STATE_BACKEND", raising=False)
        assert isinstance(get_state_store(make_context()), VariableStateStore)


class TestForced:
    def test_variable_even_when_native_exists(self, state_backend):
        state_backend("variable")
        assert isinstance(get_state_store(make_context(task_state_store=object())), VariableStateStore)

    def test_native_missing_is_a_clear_error(self, state_backend):
        state_backend("task_state_store")
        with pytest.raises(Exception, match="needs Airflow 3.3"):
            get_state_store(make_context())

    def test_dotted_class_path(self, state_backend):
        state_backend(f"{__name__}.ContextStore")
        store = get_state_store(make_context())
        assert isinstance(store, ContextStore)
        assert store.built_for == "task"

    def test_explicit_argument_wins_over_config(self, state_backend):
        state_backend("task_state_store")
        assert isinstance(get_state_store(make_context(), backend="variable"), VariableStateStore)

    @pytest.mark.parametrize("value", ["variables", "native", "Auto"])
    def test_unknown_word_names_the_value(self, state_backend, value):
        state_backend(value)
        with pytest.raises(StateBackendConfigError, match=rf"state_backend .* = '{value}' is neither one of auto"):
            get_state_store(make_context())

    def test_unloadable_class_names_the_value(self, state_backend):
        state_backend("no.such.module.Store")
        with pytest.raises(StateBackendConfigError, match=r"'no.such.module.Store' cannot be loaded"):
            get_state_store(make_context())

    def test_class_that_is_not_a_store(self, state_backend):
        state_backend(f"{__name__}.NotAStore")
        with pytest.raises(StateBackendConfigError, match="lacks the StateStore methods"):
            get_state_store(make_context())


class TestPermanence:
    """Bad configuration fails the task without retries; an unreachable store may recover."""

    def test_config_errors_do_not_use_retries(self, state_backend):
        state_backend("no.such.module.Store")
        with pytest.raises(AirflowFailException):
            get_state_store(make_context())

    def test_a_constructor_with_the_wrong_signature_names_the_setting(self, state_backend):
        state_backend(f"{__name__}.BrokenSignature")
        with pytest.raises(StateBackendConfigError, match=r"state_backend .*BrokenSignature.*TypeError.*from_context"):
            get_state_store(make_context())

    def test_a_constructor_that_cannot_connect_names_the_setting_and_may_retry(self, state_backend):
        state_backend(f"{__name__}.Unreachable")
        with pytest.raises(StateStoreError, match=r"state_backend .*Unreachable.*ConnectionError: redis down") as info:
            get_state_store(make_context())
        assert not isinstance(info.value, AirflowFailException)


class TestOutsideATaskInstance:
    """``op.execute(None)``, ``{}`` or a MagicMock context: the official providers' own unit tests."""

    @pytest.mark.parametrize(
        "context", [None, {}, {"ti": None}, mock.MagicMock()], ids=["none", "empty", "no-ti", "mock"]
    )
    @pytest.mark.parametrize("backend", ["auto", "variable", "task_state_store"])
    def test_built_in_backends_give_an_ephemeral_store(self, state_backend, context, backend):
        state_backend(backend)
        store = get_state_store(context)
        assert isinstance(store, EphemeralStateStore)
        assert not is_durable(store)

    def test_a_configured_test_store_is_used(self, state_backend):
        state_backend("tests.support.stores.SharedMemoryStore")
        store = get_state_store(None)
        assert type(store).__name__ == "SharedMemoryStore"
        assert is_durable(store)

    def test_a_real_task_instance_is_durable(self, state_backend):
        state_backend("variable")
        assert is_durable(get_state_store(make_context()))


def test_a_scope_needs_a_task_instance():
    with pytest.raises(StateStoreError, match="has no task instance"):
        TaskScope.from_context({})


class TestTheTry:
    """What one ``TaskTry`` holds, built once from the context and handed down."""

    def test_it_reads_the_scope_the_try_and_the_tags_once(self, memory_store):
        ti = FakeTI(dag_id="d", run_id="r", task_id="t", map_index=2, try_number=3, max_tries=4)
        task_try = TaskTry.from_context(make_context(ti), owner="t", kind="MyOperator")
        assert task_try.scope == TaskScope("d", "r", "t", 2)
        assert (task_try.info.try_number, task_try.info.max_tries) == (3, 4)
        assert (task_try.run_id, task_try.map_index, task_try.durable) == ("r", 2, True)
        assert task_try.tags == {
            "operator": "MyOperator",
            "dag_id": "d",
            "task_id": "t",
            "backend": "SharedMemoryStore",
        }
        assert isinstance(task_try.store, GuardedStateStore), "every write is checked"
        assert task_try.store.inner is memory_store

    def test_metrics_name_the_operator_as_airflow_shows_it(self):
        class PlainOperator:
            pass

        class Decorated:
            custom_operator_name = "@task.resumable"

        class Unnamed:
            custom_operator_name = None

        assert [operator_name(o) for o in (PlainOperator(), Decorated(), Unnamed())] == [
            "PlainOperator",
            "@task.resumable",
            "Unnamed",
        ]

    def test_without_a_task_instance_nothing_is_durable_or_registered(self):
        task_try = TaskTry.from_context({}, owner="t", kind="Op", dag_id="fallback")
        assert task_try.scope is None
        assert not task_try.durable
        assert task_try.tags["dag_id"] == "fallback"
        assert task_try.run_id == "(no task instance)"

    def test_an_ephemeral_try_opens_no_store(self, memory_store):
        task_try = TaskTry.from_context(make_context(), owner="t", kind="Op", ephemeral=True)
        assert not task_try.durable
        assert memory_store.calls == []

    def test_it_is_registered_for_success_once(self, memory_store):
        ti = FakeTI(run_id="registered-once")
        scope = TaskScope("dag", "registered-once", "task")
        after_success.forget(scope)
        TaskTry.from_context(make_context(ti), owner="task", kind="Op")
        pending = after_success.forget(scope)
        assert pending is not None
        assert len(pending.stores) == 1
        assert pending.stores[0].inner is memory_store

    def test_an_operator_gets_one_try_per_context(self, state_backend):
        state_backend("variable")

        class Holder:
            task_id = "t"

        holder, context = Holder(), make_context()
        first = TaskTry.of(holder, context)
        assert TaskTry.of(holder, context) is first, "built once per try"
        assert TaskTry.of(holder, make_context()) is not first, "a retry brings a new context and a new try"

    def test_the_marker_is_read_once_per_try(self, memory_store):
        memory_store.set(FINISHED_KEY, FinishedMarker(try_number=1).dump())
        task_try = TaskTry.from_context(make_context(FakeTI(try_number=2)), owner="task", kind="Op")
        memory_store.calls.clear()
        assert task_try.marker() == FinishedMarker(try_number=1)
        assert task_try.ended_life(1) is not None
        assert task_try.ended_life(2) is None
        assert memory_store.calls == [("get", FINISHED_KEY)]

    def test_a_bad_marker_is_bad_state(self, memory_store):
        memory_store.set(FINISHED_KEY, {"kind": "resumable-finished"})
        task_try = TaskTry.from_context(make_context(), owner="task", kind="Op")
        with pytest.raises(StateStoreError, match="finished marker is corrupt"):
            task_try.marker()

    def test_namespaced_views_share_one_index(self, memory_store):
        task_try = TaskTry.from_context(make_context(), owner="task", kind="Op")
        assert task_try.namespaced("ns") is task_try.namespaced("ns")
        assert "ns/k" in task_try.locate("k", "ns")


class FourMethods:
    """A 0.1.0 custom backend: the four methods and nothing else."""

    store = None

    def __init__(self, context):
        self.data = {}

    def get(self, key, default=None):
        return self.data.get(key, default)

    def set(self, key, value):
        self.data[key] = value

    def delete(self, key):
        self.data.pop(key, None)

    def clear(self):
        self.data.clear()


class FourMethodsDropped(FourMethods):
    clears_on_success = True


@pytest.mark.parametrize(("cls", "after"), [("FourMethods", "marked finished"), ("FourMethodsDropped", "dropped")])
def test_a_custom_backend_without_finish_gets_the_default(state_backend, cls, after):
    state_backend(f"{__name__}.{cls}")
    store = get_state_store(make_context())
    store.set("k", 1)
    assert store.finish(FinishedMarker(try_number=1)) == after
    assert (store.get("k") is None) is (after == "dropped")


def test_try_identity_comes_from_the_task_instance_and_the_dag_run():
    class DagRun:
        clear_number = 2
        run_after = __import__("datetime").datetime(2026, 1, 1)
        id = 7

    ti = FakeTI(try_number=2, max_tries=3)
    ti.id = "0190-ti-uuid"  # Airflow 3: the task instance id, one per try
    info = try_info_of(make_context(ti, dag_run=DagRun()))
    assert (info.try_number, info.max_tries, info.clear_number) == (2, 3, 2)
    assert info.run_key is not None
    assert info.try_stamp is not None
    assert try_info_of({}) == TryInfo()


class TestRegion:
    """Airflow 3.4's Task Loops: iterations share dag, run, task and map index and differ by region."""

    @staticmethod
    def iteration(index, region_id="3f2c1a9e-0000-4000-8000-000000000001"):
        ti = FakeTI(task_id="step")
        ti.region_id, ti.region_index = region_id, index
        return ti

    def test_each_iteration_has_its_own_scope_and_variable(self, state_backend):
        state_backend("variable")
        first = TaskTry.from_context(make_context(self.iteration(0)), owner="step", kind="Op")
        second = TaskTry.from_context(make_context(self.iteration(1)), owner="step", kind="Op")
        assert first.scope.region_index == 0
        assert second.scope.region_index == 1
        assert first.store.inner.key != second.store.inner.key
        assert ".r1." in second.store.inner.key
        assert second.tags["region_index"] == "1"

    def test_the_nil_region_is_no_region(self, state_backend):
        state_backend("variable")
        plain = TaskTry.from_context(
            make_context(self.iteration(-1, region_id="00000000-0000-0000-0000-000000000000")), owner="step", kind="Op"
        )
        assert plain.scope == TaskScope("dag", "run", "step")
        assert "region_index" not in plain.tags


def test_the_ledger_is_for_the_native_store_only(state_backend):
    state_backend("variable")
    assert TaskTry.from_context(make_context(), owner="task", kind="Op").ledger() is None
    state_backend("task_state_store")
    native = TaskTry.from_context(make_context(task_state_store=object()), owner="task", kind="Op")
    ledger = native.ledger()
    assert ledger is not None
    assert native.ledger() is ledger, "one ledger per try"
    assert ledger.inner.key.startswith("resumable.ledger.dag.run.task.")
    pending = after_success.forget(native.scope)
    assert ledger in pending.stores, "dropped after the success, like the task's state"


class TestTheRawRoute:
    """``get_state_store(context)`` inside a task: guarded, finished after success, fresh after a clear."""

    def test_it_is_the_tries_guarded_store_registered_once(self, memory_store):
        from airflow.providers.resumable.state import after_success
        from airflow.providers.resumable.state.guard import GuardedStateStore

        class Task:
            task_id = "task"

        ti = FakeTI()
        context = make_context(ti, task=Task())
        store = get_state_store(context)
        assert type(store) is GuardedStateStore
        assert get_state_store(context) is store
        assert TaskTry.of(context["task"], context).store is store
        scope = TaskTry.of(context["task"], context).scope
        assert [s for s in after_success._pending[scope].stores] == [store]
        after_success.forget(scope)

    def test_a_clear_after_success_starts_fresh_keeping_what_this_try_wrote(self, memory_store):
        from airflow.providers.resumable.plugins.resumable import listener

        ti = FakeTI()
        get_state_store(make_context(ti)).set("next", 1000)
        listener.on_task_instance_success(None, ti)
        assert memory_store.get("next") == 1000, "kept after success, with the finished marker"

        cleared = FakeTI(try_number=2, max_tries=3)
        context = make_context(cleared)
        # A mixin of the new life wrote first, through the same try.
        TaskTry.of(cleared, context).store.set("stateful/checkpoint", {"n": 1})
        raw = get_state_store(context)
        assert raw.get("next") is None
        assert raw.get("stateful/checkpoint") == {"n": 1}
        raw.set("next", 5)
        listener.on_task_instance_failed(None, cleared)

        retry = FakeTI(try_number=3, max_tries=3)
        assert get_state_store(make_context(retry)).get("next") == 5, "a retry of the new life resumes"
