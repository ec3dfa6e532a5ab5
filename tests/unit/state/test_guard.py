"""The write guard: registered secrets refused unless an operator opts in, size warned once per try."""

from __future__ import annotations

import json
import secrets
from unittest import mock
from urllib.parse import quote

import pytest

from airflow.providers.resumable.state import (
    EphemeralStateStore,
    InMemoryStateStore,
    NamespacedStateStore,
    VariableStateStore,
)
from airflow.providers.resumable.state import guard as guard_module
from airflow.providers.resumable.state.base import StateBackendConfigError, TaskScope
from airflow.providers.resumable.state.guard import (
    VARIABLE_DOCUMENT_LIMIT_BYTES,
    GuardedStateStore,
    SecretInStateError,
    guard,
    secret_paths,
)
from airflow.providers.resumable.state.task_try import TaskTry
from airflow.providers.resumable.version_compat import AIRFLOW_V_3_0_PLUS, AirflowFailException
from tests.support.stores import DictVariables


def register_secret_value(secret: str) -> None:
    """Register ``secret`` with the masker this Airflow's task log uses, as loading a connection does."""
    if AIRFLOW_V_3_0_PLUS:
        from airflow.sdk._shared.secrets_masker import mask_secret
    else:
        from airflow.utils.log.secrets_masker import mask_secret
    mask_secret(secret)


def register_secret() -> str:
    secret = f"pw-{secrets.token_hex(8)}"
    register_secret_value(secret)
    return secret


def guarded(inner=None, *, try_number=1, allow_secrets=False, task_id="task"):
    """What a try built from a context with this task instance gets (see ``TaskTry.from_context``)."""
    scope = TaskScope("dag", "run", task_id)
    inner = inner or InMemoryStateStore()
    return guard(inner, owner=task_id, allow_secrets=allow_secrets, scope=scope, try_id=str(try_number))


class TestSecretPaths:
    def test_finds_a_registered_secret_inside_a_string_and_names_the_path_not_the_secret(self):
        secret = register_secret()
        value = {"next_page": {"endpoint": "/v1/issues", "data": {"api_key": secret, "page": "2"}}, "pages": 1}
        assert secret_paths(value) == ["next_page.data.api_key"]
        url = f"https://api.example.com/v1/issues?api_key={secret}&page=2"
        assert secret_paths({"links": [url]}) == ["links[0]"]
        assert secret_paths(secret) == ["<value>"]

    def test_finds_a_percent_encoded_secret(self):
        secret = register_secret().replace("pw-", "pw@")
        register_secret_value(secret)
        assert secret_paths({"url": "https://h/x?api_key=" + quote(secret, safe="")}) == ["url"]

    def test_an_unregistered_value_and_sensitive_key_names_pass(self):
        # The masker hides values of keys named "token" or "password" in logs; here only registered
        # secrets count, so the job record's own idempotency token is fine.
        assert secret_paths({"token": "rsm-" + "a" * 48, "password": "not-registered-anywhere"}) == []
        assert secret_paths([1, 2.5, True, {"x": None}]) == []


class TestRefusal:
    def test_a_secret_is_refused_before_anything_is_stored(self):
        secret = register_secret()
        inner = InMemoryStateStore()
        store = NamespacedStateStore(guarded(inner, task_id="crawl"), "http_pages")
        with pytest.raises(SecretInStateError) as info:
            store.set("checkpoint", {"data": {"next_page": {"data": {"api_key": secret}}}})
        message = str(info.value)
        assert isinstance(info.value, AirflowFailException), "a retry computes the same value: fail without retrying"
        assert secret not in message
        assert message.startswith("Refusing to store a value that contains a secret"), "the diagnosis first"
        assert message.endswith("Key: key 'http_pages/checkpoint' of the in-memory store InMemoryStateStore.")
        assert "data.next_page.data.api_key" in message
        assert "headers" in message
        assert "drop_params" in message
        assert "allow_secrets_in_state=True to task 'crawl'" in message
        assert "http_pages/checkpoint" not in inner.data

    def test_the_opt_in_stores_it_and_warns_once_per_try(self):
        secret = register_secret()
        with mock.patch.object(guard_module, "log") as log:
            for _ in range(2):
                store = guarded(allow_secrets=True, task_id="optin", try_number=1)
                store.set("cursor", {"url": f"?api_key={secret}"})
            assert store.get("cursor") == {"url": f"?api_key={secret}"}
            assert log.warning.call_count == 1
            assert "allow_secrets_in_state=True on task %r" in log.warning.call_args.args[0]
            guarded(allow_secrets=True, task_id="optin", try_number=2)
            assert log.warning.call_count == 2, "the next try says it again"

    def test_reads_deletes_and_plain_values_pass_through(self):
        inner = InMemoryStateStore()
        store = guarded(inner)
        store.set("cursor", {"page": 3})
        assert inner.get("cursor") == {"page": 3}
        assert store.get("cursor") == {"page": 3}
        store.delete("cursor")
        assert inner.data == {}

    def test_a_store_that_is_not_durable_is_not_wrapped(self):
        task_try = TaskTry.from_context({}, owner="t", kind="Op")
        assert isinstance(task_try.store, EphemeralStateStore)
        assert not task_try.durable

    def test_the_wrapper_sees_through_to_the_backend(self):
        inner = InMemoryStateStore()
        store = guarded(inner)
        assert isinstance(store, GuardedStateStore)
        assert store.inner is inner
        assert store.locate("k") == inner.locate("k")
        assert guard(store, owner="t", allow_secrets=False, scope=None, try_id=None) is store, "never wrapped twice"

    @pytest.mark.parametrize("cls_name", ["ToyJobOperator", "ToyBatchOperator"])
    def test_the_opt_in_is_validated_at_parse_time(self, cls_name):
        from tests.support import toy_operators

        cls = getattr(toy_operators, cls_name)
        kwargs = (
            {"base_url": "x", "spec": {}}
            if cls_name == "ToyJobOperator"
            else {"out_dir": "x", "total": 1, "batch_size": 1}
        )
        with pytest.raises(TypeError, match="allow_secrets_in_state must be True or False, got 'yes'"):
            cls(task_id="t", allow_secrets_in_state="yes", **kwargs)


class Native(InMemoryStateStore):
    name = "task_state_store"


class TestSize:
    def test_a_value_over_max_value_storage_bytes_warns_once_per_try_naming_the_key(self, monkeypatch):
        monkeypatch.setenv("AIRFLOW__STATE_STORE__MAX_VALUE_STORAGE_BYTES", "100")
        with mock.patch.object(guard_module, "log") as log:
            store = guarded(Native(), task_id="big")
            store.set("small", "x" * 10)
            assert log.warning.call_count == 0
            store.set("cursor", "x" * 200)
            store.set("cursor", "x" * 300)
            store.set("other", "x" * 300)
            assert log.warning.call_count == 1, "once per task instance, not on every write"
            args = log.warning.call_args.args
            assert args[0].startswith("A state value is large: %s"), "the diagnosis first, the key last"
            assert "the value is 202 bytes" in args[1]
            assert args[2:4] == ("[state_store] max_value_storage_bytes", 100)
            assert "key 'cursor'" in args[-1]
            guarded(Native(), task_id="big", try_number=2).set("cursor", "x" * 200)
            assert log.warning.call_count == 2, "a new try warns again"

    def test_zero_disables_the_limit_as_in_airflow(self, monkeypatch):
        monkeypatch.setenv("AIRFLOW__STATE_STORE__MAX_VALUE_STORAGE_BYTES", "0")
        with mock.patch.object(guard_module, "log") as log:
            guarded(Native(), task_id="unlimited").set("cursor", "x" * 100_000)
        assert log.warning.call_count == 0

    def test_on_variables_the_whole_document_counts(self):
        scope = TaskScope("dag", "run", "docs", -1)
        backend = VariableStateStore(scope, access=DictVariables())
        piece = "x" * (VARIABLE_DOCUMENT_LIMIT_BYTES // 3)
        with mock.patch.object(guard_module, "log") as log:
            store = guarded(backend, task_id="docs")
            store.set("a", piece)
            store.set("b", piece)
            assert log.warning.call_count == 0, "each value and the two together are under the bound"
            store.set("c", piece)
        assert log.warning.call_count == 1
        args = log.warning.call_args.args
        assert "Airflow Variable" in args[-1]
        assert "the Variable now holds about" in args[1]

    def test_oversize_is_counted(self, monkeypatch):
        monkeypatch.setenv("AIRFLOW__STATE_STORE__MAX_VALUE_STORAGE_BYTES", "10")
        stats = mock.MagicMock()
        with mock.patch("airflow.providers.resumable.observability.stats", return_value=stats):
            guarded(Native(), task_id="counted").set("cursor", "x" * 50)
        stats.incr.assert_called_once_with(
            "resumable.state.oversize", tags={"task_id": "counted", "backend": "task_state_store"}
        )


class TestSizeLimit:
    """Over ``[resumable] max_state_bytes`` a write is refused before it reaches the backend."""

    # AirflowFailException: the next try would compute the same value, so its retries are not used.

    def test_a_5_mb_checkpoint_is_refused_by_default(self):
        inner = Native()
        with pytest.raises(AirflowFailException) as err:
            guarded(inner, task_id="big").set("stateful/checkpoint", {"rows": "x" * 5_000_000})
        assert type(err.value).__name__ == "StateTooLargeError"
        message = str(err.value)
        assert message.startswith(
            "Refusing to store a value this large: the value is 5000012 bytes, over [resumable] max_state_bytes "
            "(1048576)"
        ), message
        assert "raise [resumable] max_state_bytes (0: no limit)" in message
        assert message.endswith("Key: key 'stateful/checkpoint' of the in-memory store Native.")
        assert "stateful/checkpoint" not in inner.data, "nothing was written"

    def test_the_limit_is_configurable_and_zero_is_none(self, monkeypatch):
        monkeypatch.setenv("AIRFLOW__RESUMABLE__MAX_STATE_BYTES", "100")
        with pytest.raises(
            guard_module.StateTooLargeError, match=r"the value is 202 bytes, over \[resumable\] max_state_bytes \(100\)"
        ):
            guarded(Native(), task_id="t").set("cursor", "x" * 200)
        monkeypatch.setenv("AIRFLOW__RESUMABLE__MAX_STATE_BYTES", "0")
        guarded(Native(), task_id="t").set("cursor", "x" * 2_000_000)

    def test_on_variables_the_whole_document_counts(self, monkeypatch):
        monkeypatch.setenv("AIRFLOW__RESUMABLE__MAX_STATE_BYTES", "1000")
        access = DictVariables()
        backend = VariableStateStore(TaskScope("dag", "run", "docs", -1), access=access)
        store = guarded(backend, task_id="docs")
        store.set("a", "x" * 400)
        store.set("b", "x" * 400)
        with pytest.raises(guard_module.StateTooLargeError, match=r"the Variable would hold about 1\d\d\d bytes"):
            store.set("c", "x" * 400)
        assert sorted(json.loads(access.rows[backend.key][0])["values"]) == ["a", "b"], "the Variable was not rewritten"

    def test_a_setting_that_is_no_number_names_itself(self, monkeypatch):
        monkeypatch.setenv("AIRFLOW__RESUMABLE__MAX_STATE_BYTES", "1MB")
        with pytest.raises(StateBackendConfigError, match=r"max_state_bytes must be a whole number of bytes.*'1MB'"):
            guarded(Native(), task_id="t").set("cursor", 1)


def test_the_guard_is_transparent_to_isinstance_and_runs_its_first_use_hook_once():
    from airflow.providers.resumable.state.backends import InMemoryStateStore
    from airflow.providers.resumable.state.guard import GuardedStateStore

    inner = InMemoryStateStore()
    store = guard(inner, owner="t", allow_secrets=False, scope=None, try_id=None)
    assert isinstance(store, InMemoryStateStore)
    assert isinstance(store, GuardedStateStore)
    assert type(store) is GuardedStateStore
    calls = []
    store.before_first_use = lambda: calls.append(1)
    store.set("a", 1)
    store.get("a")
    assert calls == [1]
    assert store.written_this_try == {"a": 1}
    store.delete("a")
    assert store.written_this_try == {}

    import copy

    for twin in (copy.copy(store), copy.deepcopy(store)):
        assert type(twin) is GuardedStateStore
        assert isinstance(twin, InMemoryStateStore)


def test_the_guard_passes_for_its_backend_but_refuses_to_be_pickled_saying_why():
    """The review's decision (GuardedStateStore's docstring): isinstance and __class__ see the backend; type() the guard."""
    import functools
    import pickle

    from airflow.providers.resumable.state.backends import InMemoryStateStore
    from airflow.providers.resumable.state.guard import GuardedStateStore

    store = guard(InMemoryStateStore(), owner="convert", allow_secrets=False, scope=None, try_id=None)
    assert (type(store), store.__class__) == (GuardedStateStore, InMemoryStateStore)

    @functools.singledispatch
    def kind(store: object) -> str:
        return "other"

    @kind.register
    def _(store: InMemoryStateStore) -> str:
        return "in memory"

    assert kind(store) == "in memory", "code that dispatches on the backend's class keeps working"
    with pytest.raises(TypeError, match=r"state store of task 'convert' cannot be pickled: .* Pickle the values"):
        pickle.dumps(store)
