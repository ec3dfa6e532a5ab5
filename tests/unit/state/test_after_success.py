"""The after-success registry: what a try asked for, run in order once Airflow records the success."""

from __future__ import annotations

import pytest

from airflow.providers.resumable.plugins.resumable import listener
from airflow.providers.resumable.state import after_success
from airflow.providers.resumable.state.backends import InMemoryStateStore
from airflow.providers.resumable.state.base import TaskScope
from airflow.providers.resumable.state.codec import FINISHED_KEY
from airflow.providers.resumable.state.lifecycle import TryInfo
from airflow.providers.resumable.state.task_try import TaskTry
from tests.support.context import FakeTI, make_context

SCOPE = TaskScope("dag", "run", "task")
INFO = TryInfo(try_number=2, max_tries=3)


@pytest.fixture(autouse=True)
def _empty_registry():
    after_success.forget(SCOPE)
    yield
    after_success.forget(SCOPE)


class Action:
    def __init__(self, key: str, done: list[str], *, fails: bool = False) -> None:
        self.key, self.done, self.fails = key, done, fails

    def __call__(self) -> str:
        if self.fails:
            raise RuntimeError("store unreachable")
        self.done.append(self.key)
        return f"did {self.key}"


class Recording(InMemoryStateStore):
    """Notes when it was finished relative to the actions."""

    def __init__(self, done: list[str]) -> None:
        super().__init__()
        self.done = done

    def finish(self, marker):
        self.done.append("finish")
        return super().finish(marker)


def test_actions_run_in_order_before_the_stores_are_finished():
    done: list[str] = []
    store = Recording(done)
    after_success.register_store(SCOPE, INFO, store)
    after_success.register_action(SCOPE, INFO, Action("a", done))
    after_success.register_action(SCOPE, INFO, Action("b", done))
    said = after_success.finish_after_success(SCOPE)
    assert done == ["a", "b", "finish"]
    assert said == ["did a", "did b", "marked finished"]
    assert store.get(FINISHED_KEY)["try_number"] == 2, "the marker names the try that succeeded"
    assert after_success.finish_after_success(SCOPE) == [], "done once: the entry is taken"


def test_a_second_action_with_the_same_key_replaces_the_first():
    done: list[str] = []
    after_success.register_action(SCOPE, INFO, Action("mark", done))
    replacement = Action("mark", done)
    after_success.register_action(SCOPE, INFO, replacement)
    assert after_success.forget(SCOPE).actions == [replacement]


def test_a_store_registered_twice_is_finished_once():
    store = InMemoryStateStore()
    after_success.register_store(SCOPE, INFO, store)
    after_success.register_store(SCOPE, INFO, store)
    assert after_success.forget(SCOPE).stores == [store]


def test_a_failing_action_does_not_stop_the_others_or_the_finish(caplog):
    done: list[str] = []
    store = Recording(done)
    after_success.register_action(SCOPE, INFO, Action("boom", done, fails=True))
    after_success.register_action(SCOPE, INFO, Action("next", done))
    after_success.register_store(SCOPE, INFO, store)
    after_success.finish_after_success(SCOPE)
    assert done == ["next", "finish"]
    assert "boom could not be done" in caplog.text


def test_a_store_that_cannot_be_finished_names_the_command_that_deletes_it(caplog):
    class Broken(InMemoryStateStore):
        def finish(self, marker):
            raise ConnectionError("down")

    after_success.register_store(SCOPE, INFO, Broken())
    assert after_success.finish_after_success(SCOPE) == []
    assert "state delete --dag-id dag --run-id run --task-id task" in caplog.text


def test_a_failed_try_forgets_everything_through_the_listener():
    done: list[str] = []
    after_success.register_action(SCOPE, INFO, Action("commit", done))
    listener.on_task_instance_failed(None, FakeTI())
    listener.on_task_instance_success(None, FakeTI())
    assert done == [], "a failed try's actions never run, not even on a later success without them"


def test_a_try_built_from_a_context_registers_its_store_and_the_listener_finishes_it(memory_store):
    ti = FakeTI(try_number=1)
    task_try = TaskTry.from_context(make_context(ti), owner="task", kind="Op")
    done: list[str] = []
    task_try.on_success(Action("boom", done, fails=True))
    task_try.on_success(Action("done", done))
    memory_store.set("k", 1)
    listener.on_task_instance_success(None, ti)
    assert done == ["done"], "an action after a failing one still runs"
    assert memory_store.get(FINISHED_KEY)["try_number"] == 1, "the stores were finished after the actions"


def test_process_stamps_are_one_per_try_and_dropped_with_the_try():
    first = after_success.process_stamp(SCOPE, 1)
    assert after_success.process_stamp(SCOPE, 1) == first
    assert after_success.process_stamp(SCOPE, 2) != first
    after_success.forget(SCOPE)
    assert after_success.process_stamp(SCOPE, 1) != first, "a DAG run created again gets a new stamp"


def test_a_killed_try_that_still_returns_finishes_nothing_and_commits_nothing(caplog):
    done: list[str] = []
    store = Recording(done)
    after_success.register_store(SCOPE, INFO, store)
    after_success.register_action(SCOPE, INFO, Action("commit watermark", done))
    after_success.note_killed(SCOPE, INFO)
    assert after_success.finish_after_success(SCOPE) == []
    assert done == [], "no action, no finish: Airflow recorded no success for a killed try"
    assert store.get(FINISHED_KEY) is None
    assert "was killed" in caplog.text
    # The next try of the task instance starts clean.
    after_success.register_store(SCOPE, INFO, store)
    assert after_success.finish_after_success(SCOPE) == ["marked finished"]


def test_a_kill_is_forgotten_with_a_failed_try():
    after_success.note_killed(SCOPE, INFO)
    listener.on_task_instance_failed(None, FakeTI())
    done: list[str] = []
    after_success.register_action(SCOPE, INFO, Action("commit", done))
    after_success.finish_after_success(SCOPE)
    assert done == ["commit"]


def test_a_kill_belongs_to_the_try_it_interrupted():
    after_success.note_killed(SCOPE, TryInfo(try_number=1, try_stamp="ti-1"))
    done: list[str] = []
    after_success.register_action(SCOPE, TryInfo(try_number=2, try_stamp="ti-2"), Action("commit", done))
    after_success.finish_after_success(SCOPE)
    assert done == ["commit"], "a later try of the same task instance is not the killed one"


def test_dropping_a_marked_task_instance_that_kept_nothing_does_nothing():
    from airflow.providers.resumable.state import after_success
    from airflow.providers.resumable.state.base import TaskScope

    assert after_success.drop_marked_success(TaskScope("no_such_dag_anywhere", "run", "task", -1)) == []
