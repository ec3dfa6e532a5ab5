from __future__ import annotations

from datetime import timedelta
from typing import ClassVar

import pytest
from pydantic import BaseModel

from airflow.providers.resumable.mixins import (
    DEFAULT_CHECKPOINT_POLICY,
    Checkpoint,
    CheckpointSchemaError,
    StatefulOperatorMixin,
    checkpoint_every_n_batches,
    checkpoint_every_seconds,
)
from airflow.providers.resumable.version_compat import BaseOperator
from tests.support.context import FakeTI, make_context
from tests.support.stores import EphemeralMemoryStore


class Cursor(Checkpoint):
    schema_version: ClassVar[int] = 1
    next_item: int


class CursorV2(Checkpoint):
    """Version 2 renamed ``next_item`` to ``offset``; ``migrate`` reads version-1 checkpoints."""

    schema_version: ClassVar[int] = 2
    offset: int

    @classmethod
    def migrate(cls, data, from_version):
        if from_version == 1:
            return {"offset": data["next_item"]}
        raise NotImplementedError


class CursorV2NoMigration(Checkpoint):
    schema_version: ClassVar[int] = 2
    offset: int


class PlainModel(BaseModel):
    next_item: int


class BatchOperator(StatefulOperatorMixin, BaseOperator):
    """Walks ``items`` in batches of ``size`` into ``sink`` (index -> items), failing where told."""

    checkpoint_model = Cursor

    def __init__(self, *, items, size=2, sink=None, fail_at_batch=None, **kwargs):
        super().__init__(**kwargs)
        self.items = items
        self.size = size
        self.sink = {} if sink is None else sink
        self.fail_at_batch = fail_at_batch
        self.processed: list[int] = []

    def execute(self, context):
        def process(cursor: Cursor, index: int) -> Cursor | None:
            if index == self.fail_at_batch:
                raise RuntimeError(f"outage at batch {index}")
            chunk = self.items[cursor.next_item : cursor.next_item + self.size]
            self.sink[index] = chunk  # deterministic place: a redo replaces
            self.processed.append(index)
            nxt = cursor.next_item + self.size
            return Cursor(next_item=nxt) if nxt < len(self.items) else None

        return self.run_batches(context, process, start=Cursor(next_item=0))


def op(**kwargs):
    kwargs.setdefault("task_id", "batches")
    kwargs.setdefault("items", list(range(10)))
    return BatchOperator(**kwargs)


class TestPolicyValidation:
    @pytest.mark.parametrize("bad", [0, -1])
    def test_checkpoint_every_is_checked_at_parse_time(self, bad):
        with pytest.raises(ValueError, match=rf"checkpoint_every must be >= 1, got {bad!r}"):
            op(checkpoint_every=bad)

    @pytest.mark.parametrize(("bad", "shown"), [("10", "str '10'"), (1.5, "float 1.5"), (True, "bool True")])
    def test_checkpoint_every_of_the_wrong_type_says_so(self, bad, shown):
        with pytest.raises(TypeError, match=rf"checkpoint_every must be an int \(a number of batches\), got {shown}"):
            op(checkpoint_every=bad)

    @pytest.mark.parametrize("bad", [0, -5, timedelta(0), float("nan"), float("inf"), float("-inf")])
    def test_checkpoint_interval_is_checked_at_parse_time(self, bad):
        with pytest.raises(ValueError, match=r"checkpoint_interval must be a finite number of seconds > 0, got"):
            op(checkpoint_interval=bad)

    @pytest.mark.parametrize("bad", ["10", None.__class__, [5]])
    def test_checkpoint_interval_of_the_wrong_type_says_so(self, bad):
        with pytest.raises(TypeError, match=r"checkpoint_interval must be a number of seconds or a timedelta, got"):
            op(checkpoint_interval=bad)

    def test_default_policy(self):
        assert op().checkpoint_policy is DEFAULT_CHECKPOINT_POLICY

    def test_policies_compose_like_tenacity(self):
        policy = checkpoint_every_n_batches(3) | checkpoint_every_seconds(10)
        assert not policy.should_checkpoint(1, 1.0)
        assert policy.should_checkpoint(3, 1.0)
        assert policy.should_checkpoint(1, 10.0)
        assert not checkpoint_every_seconds(10).should_checkpoint(0, 99.0)

    def test_both_arguments_build_either_policy(self):
        policy = op(checkpoint_every=4, checkpoint_interval=timedelta(seconds=30)).checkpoint_policy
        assert repr(policy) == "checkpoint_every_n_batches(4) | checkpoint_every_seconds(30)"


class TestCheckpointRoundTrip:
    def test_typed_save_and_load(self, memory_store):
        ctx = make_context()
        o = op()
        assert o.load_checkpoint(ctx) is None
        o.save_checkpoint(ctx, Cursor(next_item=4), batches_done=2)
        loaded = o.load_checkpoint(ctx)
        assert loaded == Cursor(next_item=4)
        stored = memory_store.get("stateful/checkpoint")
        assert stored["schema_version"] == 1
        assert stored["schema_name"] == "Cursor"
        assert stored["batches_done"] == 2
        assert stored["try_number"] == 1

    def test_wrong_type_is_refused(self, memory_store):
        with pytest.raises(TypeError, match="expects a Cursor .* got dict"):
            op().save_checkpoint(make_context(), {"next_item": 1})

    def test_plain_pydantic_model_and_plain_dicts(self, memory_store):
        class PlainOp(BatchOperator):
            checkpoint_model = PlainModel

        class DictOp(BatchOperator):
            checkpoint_model = None

        ctx = make_context()
        PlainOp(task_id="p", items=[]).save_checkpoint(ctx, PlainModel(next_item=3))
        assert PlainOp(task_id="p", items=[]).load_checkpoint(ctx) == PlainModel(next_item=3)
        DictOp(task_id="p", items=[]).save_checkpoint(ctx, {"anything": [1]})
        assert DictOp(task_id="p", items=[]).load_checkpoint(ctx) == {"anything": [1]}

    def test_clear(self, memory_store):
        ctx = make_context()
        o = op()
        o.save_checkpoint(ctx, Cursor(next_item=4))
        o.clear_checkpoint(ctx)
        assert o.load_checkpoint(ctx) is None


class TestSchemaVersions:
    def _saved_v1(self, memory_store):
        ctx = make_context()
        op().save_checkpoint(ctx, Cursor(next_item=6), batches_done=3)
        return ctx

    def test_migration_hook_upgrades_old_checkpoints(self, memory_store):
        ctx = self._saved_v1(memory_store)

        class V2Op(BatchOperator):
            checkpoint_model = CursorV2

        assert V2Op(task_id="batches", items=[]).load_checkpoint(ctx) == CursorV2(offset=6)

    def test_no_migration_is_a_clear_error_not_a_reset(self, memory_store):
        ctx = self._saved_v1(memory_store)

        class V2Op(BatchOperator):
            checkpoint_model = CursorV2NoMigration

        with pytest.raises(
            CheckpointSchemaError, match=r"Cursor schema_version 1.*CursorV2NoMigration is at schema_version 2"
        ):
            V2Op(task_id="batches", items=[]).load_checkpoint(ctx)
        assert memory_store.get("stateful/checkpoint") is not None, "the checkpoint must not be dropped"

    def test_same_version_but_incompatible_fields(self, memory_store):
        ctx = self._saved_v1(memory_store)

        class Other(Checkpoint):
            page_token: str

        class OtherOp(BatchOperator):
            checkpoint_model = Other

        with pytest.raises(CheckpointSchemaError, match="does not fit Other"):
            OtherOp(task_id="batches", items=[]).load_checkpoint(ctx)

    def test_garbage_in_the_key_is_an_error(self, memory_store):
        memory_store.set("stateful/checkpoint", "garbage")
        with pytest.raises(CheckpointSchemaError, match="not a checkpoint of this provider"):
            op().load_checkpoint(make_context())


class TestRunBatches:
    def test_uninterrupted_walk_marks_the_checkpoint_complete(self, memory_store):
        o = op(checkpoint_every=1)
        run = o.execute(make_context())
        assert o.processed == [0, 1, 2, 3, 4]
        assert [x for i in sorted(o.sink) for x in o.sink[i]] == list(range(10))
        assert run.batches_done == 5
        assert run.resumed_from == 0
        assert run.checkpoints_written == 4  # the completion record is not a resume point
        stored = memory_store.get("stateful/checkpoint")
        assert stored["complete"] is True
        assert stored["batches_done"] == 5

    def test_a_retry_after_a_finished_walk_redoes_nothing(self, memory_store):
        """The try finished the walk, then failed after execute (the XCom push): the retry returns."""
        sink: dict = {}
        op(sink=sink).execute(make_context(FakeTI(try_number=1)))
        retry = op(sink=sink)
        run = retry.execute(make_context(FakeTI(try_number=2)))
        assert retry.processed == []
        assert run.already_complete
        assert run.batches_done == 5
        assert run.batches_this_try == 0

    def test_a_clear_after_success_walks_again(self, memory_store):
        from airflow.providers.resumable.plugins.resumable import listener

        sink: dict = {}
        ti = FakeTI(try_number=1, max_tries=2)
        op(sink=sink).execute(make_context(ti))
        listener.on_task_instance_success(previous_state=None, task_instance=ti)
        assert memory_store.get("resumable_finished")["try_number"] == 1
        # A clear that leaves max_tries where it was (retries lowered from 2 to 1): the marker decides.
        again = op(sink=sink)
        run = again.execute(make_context(FakeTI(try_number=2, max_tries=2)))
        assert again.processed == [0, 1, 2, 3, 4]
        assert not run.already_complete

    def test_a_clear_after_a_failure_resumes(self, memory_store):
        sink: dict = {}
        with pytest.raises(RuntimeError):
            op(sink=sink, fail_at_batch=3).execute(make_context(FakeTI(try_number=1, max_tries=1)))
        # Retries used up; a person clears the failed task: max_tries moves, the walk resumes.
        again = op(sink=sink)
        run = again.execute(make_context(FakeTI(try_number=2, max_tries=2)))
        assert again.processed == [3, 4]
        assert run.resumed_from == 3

    def test_resume_after_a_failure_starts_at_the_failed_batch(self, memory_store):
        sink: dict = {}
        first = op(sink=sink, fail_at_batch=3, checkpoint_every=100)
        with pytest.raises(RuntimeError, match="outage at batch 3"):
            first.execute(make_context(FakeTI(try_number=1)))
        assert first.processed == [0, 1, 2]
        # checkpoint_every=100 never fired; the failure itself flushed the cursor.
        assert memory_store.get("stateful/checkpoint")["batches_done"] == 3

        second = op(sink=sink)
        run = second.execute(make_context(FakeTI(try_number=2)))
        assert second.processed == [3, 4]
        assert run.resumed_from == 3
        assert run.batches_this_try == 2
        assert [x for i in sorted(sink) for x in sink[i]] == list(range(10))

    def test_hard_crash_redoes_only_batches_since_the_last_checkpoint(self, memory_store, monkeypatch):
        sink: dict = {}
        first = op(sink=sink, fail_at_batch=3, checkpoint_every=2)
        # A SIGKILL gives Python no chance to flush: simulate it by making the flush impossible.
        monkeypatch.setattr(first, "_flush_on_failure", lambda *a: None)
        with pytest.raises(RuntimeError):
            first.execute(make_context())
        assert memory_store.get("stateful/checkpoint")["batches_done"] == 2

        second = op(sink=sink)
        second.execute(make_context(FakeTI(try_number=2)))
        assert second.processed == [2, 3, 4]  # batch 2 redone...
        assert [x for i in sorted(sink) for x in sink[i]] == list(range(10))  # ...and not duplicated

    def test_checkpoint_is_never_ahead_of_the_side_effect(self, memory_store):
        seen = []

        class Spy(BatchOperator):
            def save_checkpoint(self, context, checkpoint, *, batches_done=None):
                # Every batch before batches_done must already be in the sink.
                seen.append((batches_done, sorted(self.sink)))
                super().save_checkpoint(context, checkpoint, batches_done=batches_done)

        Spy(task_id="s", items=list(range(10)), checkpoint_every=1).execute(make_context())
        assert seen
        for batches_done, written in seen:
            assert written == list(range(batches_done))

    def test_failed_flush_does_not_hide_the_original_error(self, memory_store, monkeypatch):
        o = op(fail_at_batch=2, checkpoint_every=100)

        def broken_save(*args, **kwargs):
            raise ConnectionError("store down")

        monkeypatch.setattr(o, "save_checkpoint", broken_save)
        with pytest.raises(RuntimeError, match="outage at batch 2"):
            o.execute(make_context())

    def test_variable_like_store_is_wiped_only_once_success_is_recorded(self, state_backend):
        from airflow.providers.resumable.plugins.resumable import listener

        EphemeralMemoryStore.current = EphemeralMemoryStore()
        state_backend("tests.support.stores.EphemeralMemoryStore")
        try:
            ti = FakeTI()
            ctx = make_context(ti)
            o = op()
            o.save_checkpoint(ctx, Cursor(next_item=2))
            o.state_store(ctx).set("extra", 1)
            o.post_execute(ctx, None)
            assert EphemeralMemoryStore.current.data != {}, "nothing is dropped before Airflow records success"
            listener.on_task_instance_success(previous_state=None, task_instance=ti)
            assert EphemeralMemoryStore.current.data == {}
        finally:
            EphemeralMemoryStore.current = None

    def test_native_like_store_is_kept_and_marked_finished_on_success(self, memory_store):
        from airflow.providers.resumable.plugins.resumable import listener

        ti = FakeTI(try_number=3)
        ctx = make_context(ti)
        o = op()
        o.state_store(ctx).set("extra", 1)
        listener.on_task_instance_success(previous_state=None, task_instance=ti)
        assert o.state_store(ctx).get("extra") == 1
        assert memory_store.get("resumable_finished")["try_number"] == 3

    def test_a_failed_try_is_not_finished(self, memory_store):
        from airflow.providers.resumable.plugins.resumable import listener

        ti = FakeTI()
        o = op()
        o.state_store(make_context(ti)).set("extra", 1)
        listener.on_task_instance_failed(previous_state=None, task_instance=ti)
        listener.on_task_instance_success(previous_state=None, task_instance=ti)  # a later, unrelated call
        assert memory_store.get("resumable_finished") is None


def test_a_killed_walk_is_not_marked_finished_by_a_success_listener(memory_store):
    from airflow.providers.resumable.plugins.resumable import listener
    from airflow.providers.resumable.state.codec import FINISHED_KEY
    from tests.support.context import FakeTI, make_context

    ti = FakeTI(run_id="killed-walk")
    op = _KillableWalk(task_id="task")
    op.execute(make_context(ti))
    op.on_kill()  # a person marked it failed while it ran; the walk still ended
    listener.on_task_instance_success(None, ti)
    assert memory_store.get(FINISHED_KEY) is None, "the checkpoint keeps its life: a clear resumes"


class _KillableWalk(StatefulOperatorMixin, BaseOperator):
    def execute(self, context):
        return self.run_batches(context, lambda cursor, index: None, start={"n": 0}).batches_done


class TestOverriddenStateStore:
    """A subclass that picks its store by overriding ``state_store()``: the walk uses that store, or says why not."""

    def test_an_override_calling_super_keeps_the_configured_store(self, memory_store):
        class Wrapped(BatchOperator):
            def state_store(self, context):
                return super().state_store(context)

        Wrapped(task_id="batches", items=list(range(4))).execute(make_context())
        assert memory_store.get("stateful/checkpoint")["complete"] is True

    def test_an_override_returning_a_foreign_store_is_refused_by_name(self, memory_store):
        from airflow.providers.resumable.state import StateBackendConfigError

        class Foreign(BatchOperator):
            def state_store(self, context):
                return EphemeralMemoryStore()

        with pytest.raises(StateBackendConfigError, match=r"Foreign.state_store\(\) returned a EphemeralMemoryStore"):
            Foreign(task_id="batches", items=list(range(4))).execute(make_context())
