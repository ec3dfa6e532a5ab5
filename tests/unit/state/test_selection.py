"""``[resumable] state_backend``: read and checked when the DAG is parsed."""

from __future__ import annotations

import pytest

from airflow.providers.resumable.state import StateBackendConfigError, validate_backend
from airflow.providers.resumable.state.backends import EphemeralStateStore, InMemoryStateStore
from airflow.providers.resumable.state.selection import is_durable

CUSTOM = "tests.unit.state.test_task_try.ContextStore"


class TestParseTime:
    @pytest.mark.parametrize("value", ["auto", "variable", "task_state_store", CUSTOM])
    def test_valid_values_pass(self, value):
        assert validate_backend(value) == value

    def test_a_typo_is_caught_before_any_task_runs(self, state_backend):
        state_backend("varaible")
        with pytest.raises(StateBackendConfigError, match="'varaible'"):
            validate_backend()


def test_only_the_stand_in_without_a_task_instance_is_not_durable():
    assert not is_durable(EphemeralStateStore())
    assert is_durable(InMemoryStateStore())
