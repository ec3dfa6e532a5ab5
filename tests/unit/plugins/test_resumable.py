"""The plugin only wires Airflow's listener hooks to the after-success registry."""

from __future__ import annotations

from unittest import mock

from airflow.providers.resumable.plugins import resumable as plugin
from airflow.providers.resumable.state.base import TaskScope
from tests.support.context import FakeTI


def test_success_finishes_and_failure_forgets_the_task_instances_scope():
    with (
        mock.patch.object(plugin.after_success, "finish_after_success") as finish,
        mock.patch.object(plugin.after_success, "forget") as forget,
    ):
        plugin.listener.on_task_instance_success("running", FakeTI(map_index=3))
        plugin.listener.on_task_instance_failed(None, FakeTI())
    finish.assert_called_once_with(TaskScope("dag", "run", "task", 3))
    forget.assert_called_once_with(TaskScope("dag", "run", "task", -1))


def test_a_mark_success_outside_any_try_drops_the_state_a_tries_success_finishes_it():
    from airflow.providers.resumable.state import after_success
    from airflow.providers.resumable.state.lifecycle import TryInfo

    with (
        mock.patch.object(plugin.after_success, "finish_after_success") as finish,
        mock.patch.object(plugin.after_success, "drop_marked_success") as drop,
    ):
        # The API server: no previous state, and no try of this process registered the scope.
        plugin.listener.on_task_instance_success(None, FakeTI(run_id="marked"))
        # A worker whose listener gets no previous state still finishes the try it ran.
        after_success.register_action(TaskScope("dag", "ran", "task", -1), TryInfo(try_number=1), mock.Mock(key="k"))
        plugin.listener.on_task_instance_success(None, FakeTI(run_id="ran"))
    drop.assert_called_once_with(TaskScope("dag", "marked", "task", -1))
    finish.assert_called_once_with(TaskScope("dag", "ran", "task", -1))
    after_success.forget(TaskScope("dag", "ran", "task", -1))


def test_something_that_is_no_task_instance_is_left_alone():
    with mock.patch.object(plugin.after_success, "finish_after_success") as finish:
        plugin.listener.on_task_instance_success(None, mock.MagicMock())
        plugin.listener.on_task_instance_success(None, None)
    finish.assert_not_called()


def test_the_plugin_registers_the_listener():
    assert plugin.ResumableProviderPlugin.listeners == [plugin.listener]
    assert plugin.ResumableProviderPlugin.name == "resumable"
