"""The mixin shell, driven directly with an in-memory store and the fake job system over HTTP."""

from __future__ import annotations

import logging

import pytest
from tenacity import stop_after_attempt

from airflow.providers.resumable.mixins import ResumableJobConflictError, ResumableJobMixin
from airflow.providers.resumable.state import StateStoreError
from airflow.providers.resumable.version_compat import BaseOperator
from tests.support.context import FakeTI, make_context
from tests.support.toy_operators import (
    FindableToyJobOperator,
    SimulatedCrash,
    ToyJobOperator,
    UpstreamStyleOperator,
)

SPEC = {"cmd": "train", "outcome": "SUCCEEDED"}


def toy(job_system, cls=ToyJobOperator, **kwargs):
    kwargs.setdefault("task_id", "job")
    kwargs.setdefault("spec", SPEC)
    return cls(base_url=job_system.url, **kwargs)


def ctx(try_number=1, max_tries=2):
    return make_context(FakeTI(try_number=try_number, max_tries=max_tries))


def record(store, key="toy_job"):
    return store.get(key)


class TestParseTimeValidation:
    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"durable": "yes"}, "durable must be True or False, got 'yes'"),
            ({"cancel_on_kill": 1}, "cancel_on_kill must be True or False, got 1"),
            ({"spec_change_policy": "cancel"}, "spec_change_policy must be one of .* got 'cancel'"),
            ({"on_job_failure": "repair"}, "on_job_failure must be one of 'resume', 'resubmit', 'fail', got 'repair'"),
            (
                {"on_job_failure": "resume"},
                r"on_job_failure='resume' needs an operator that implements resume_failed_job, and ToyJobOperator "
                r"does not; use on_job_failure='resubmit' or 'fail'",
            ),
            ({"max_job_resumes": -1}, "max_job_resumes must be an integer >= 0, got -1"),
            ({"max_job_resumes": True}, "max_job_resumes must be an integer >= 0, got True"),
            (
                {"on_job_failure_after_resumes": "resume"},
                "on_job_failure_after_resumes must be one of 'resubmit', 'fail', got 'resume'",
            ),
        ],
    )
    def test_bad_arguments_name_the_value(self, job_system, kwargs, message):
        with pytest.raises((TypeError, ValueError), match=message):
            toy(job_system, **kwargs)

    def test_default_args_reach_mixin_arguments(self, job_system):
        # The mixin's __init__ is wrapped like an operator's, so default_args apply to its arguments.
        op = ToyJobOperator(task_id="t", base_url="x", spec={}, default_args={"cancel_on_kill": True, "retries": 3})
        assert op.cancel_on_kill is True
        assert op.retries == 3

    def test_the_default_failure_policy_resumes_only_where_the_operator_can(self, job_system):
        class Resuming(ToyJobOperator):
            def resume_failed_job(self, external_id, status, context):
                return external_id

        assert toy(job_system).on_job_failure == "resubmit", "no resume_failed_job: as 0.1"
        assert toy(job_system, cls=Resuming).on_job_failure == "resume"
        assert toy(job_system, cls=Resuming, on_job_failure="fail").on_job_failure == "fail"
        op = toy(job_system, max_job_resumes=5, on_job_failure_after_resumes="fail")
        assert (op.max_job_resumes, op.on_job_failure_after_resumes) == (5, "fail")


class TestHappyPathAndRecord:
    def test_first_try_writes_intent_then_id(self, job_system, memory_store):
        op = toy(job_system)
        result = op.execute(ctx())
        assert result["job_id"] == "job-1"
        assert len(job_system.jobs) == 1
        sets = [c for c in memory_store.calls if c == ("set", "toy_job")]
        assert len(sets) == 2, "intent before submit, id after"
        stored = record(memory_store)
        assert stored["external_id"] == "job-1"
        assert stored["seq"] == 1
        assert stored["generation"] == 2
        assert stored["token"] == op.idempotency_token
        assert job_system.jobs["job-1"].token == op.idempotency_token

    def test_intent_is_stored_before_submit(self, job_system, memory_store):
        seen = {}

        class Spy(ToyJobOperator):
            def submit_job(self, context):
                seen["record"] = memory_store.get("toy_job")
                return super().submit_job(context)

        toy(job_system, cls=Spy).execute(ctx())
        assert seen["record"]["external_id"] is None
        assert seen["record"]["token"] == job_system.jobs["job-1"].token


class TestRetries:
    def test_crash_mid_poll_reattaches_with_two_state_reads_and_one_status_call(self, job_system, memory_store):
        with pytest.raises(SimulatedCrash):
            toy(job_system, crash_in_poll_on_tries=(1,)).execute(ctx(try_number=1))
        memory_store.calls.clear()
        status_before = job_system.status_calls

        class CountingPoll(ToyJobOperator):
            """Polls without status calls, so only the decision's status call is counted."""

            def poll_until_complete(self, external_id, context):
                job_system.set_state(external_id, "SUCCEEDED")

        result = toy(job_system, cls=CountingPoll).execute(ctx(try_number=2))
        assert result["job_id"] == "job-1"
        assert len(job_system.jobs) == 1
        # The record, then the finished marker (which tells a retry from a clear after success); one write:
        # this try's entry in the record's history, so a UI shows that it reattached.
        assert memory_store.calls == [("get", "toy_job"), ("get", "resumable_finished"), ("set", "toy_job")]
        assert [entry["decision"] for entry in memory_store.get("toy_job")["history"]] == ["submit", "reattach"]
        assert job_system.status_calls - status_before == 1

    def test_lost_submit_response_gives_one_job(self, job_system, memory_store):
        job_system.faults.drop_submit_responses = 1
        with pytest.raises(Exception, match="Connection aborted|RemoteDisconnected|ConnectionError"):
            toy(job_system).execute(ctx(try_number=1))
        assert len(job_system.jobs) == 1
        assert record(memory_store)["external_id"] is None
        result = toy(job_system).execute(ctx(try_number=2))
        assert result["job_id"] == "job-1"
        assert len(job_system.jobs) == 1
        assert job_system.submit_calls == 2, "re-submitted with the same token; the system returned its job"

    def test_submit_job_knows_when_it_repeats_a_lost_submission(self, job_system, memory_store):
        seen = []

        class Recording(ToyJobOperator):
            def submit_job(self, context):
                seen.append((self.resubmitting, self.idempotency_token))
                return super().submit_job(context)

        job_system.faults.drop_submit_responses = 1
        with pytest.raises(Exception, match="Connection aborted|RemoteDisconnected|ConnectionError"):
            toy(job_system, cls=Recording).execute(ctx(try_number=1))
        toy(job_system, cls=Recording).execute(ctx(try_number=2))
        assert [flag for flag, _ in seen] == [False, True]
        assert seen[0][1] == seen[1][1]

    def test_lost_response_on_a_non_idempotent_system_is_found_by_token(self, job_system, memory_store):
        job_system.idempotent = False
        job_system.faults.drop_submit_responses = 1
        with pytest.raises(Exception, match="Connection aborted|RemoteDisconnected|ConnectionError"):
            toy(job_system, cls=FindableToyJobOperator).execute(ctx(try_number=1))
        result = toy(job_system, cls=FindableToyJobOperator).execute(ctx(try_number=2))
        assert result["job_id"] == "job-1"
        assert len(job_system.jobs) == 1
        assert job_system.submit_calls == 1, "found by token, never submitted again"

    def test_already_succeeded_returns_without_submitting(self, job_system, memory_store):
        op = toy(job_system)
        op.execute(ctx(try_number=1))
        submits = job_system.submit_calls
        result = toy(job_system).execute(ctx(try_number=2))
        assert result["job_id"] == "job-1"
        assert job_system.submit_calls == submits

    def test_failed_job_gets_a_new_job_with_a_new_token(self, job_system, memory_store):
        with pytest.raises(Exception, match="ended FAILED"):
            toy(job_system, spec={"outcome": "FAILED"}).execute(ctx(try_number=1))
        first = record(memory_store)
        op = toy(job_system, spec={"outcome": "FAILED"})
        op.spec = {"outcome": "FAILED"}
        with pytest.raises(Exception, match="ended FAILED"):
            op.execute(ctx(try_number=2))
        second = record(memory_store)
        assert len(job_system.jobs) == 2
        assert second["seq"] == first["seq"] + 1
        assert second["token"] != first["token"]

    def test_expired_job_gets_a_new_job(self, job_system, memory_store):
        with pytest.raises(SimulatedCrash):
            toy(job_system, crash_in_poll_on_tries=(1,)).execute(ctx(try_number=1))
        job_system.expire("job-1")
        result = toy(job_system).execute(ctx(try_number=2))
        assert result["job_id"] == "job-2"

    def test_cleared_by_hand_after_success_runs_again(self, job_system, memory_store):
        toy(job_system).execute(ctx(try_number=1, max_tries=2))
        # Clearing sets max_tries = try_number + retries, i.e. a new generation.
        result = toy(job_system).execute(ctx(try_number=2, max_tries=4))
        assert result["job_id"] == "job-2"
        assert record(memory_store)["generation"] == 4

    def test_spec_change_does_not_reattach(self, job_system, memory_store):
        job_system.run_polls = 100  # job-1 keeps running through all three tries
        with pytest.raises(SimulatedCrash):
            toy(job_system, crash_in_poll_on_tries=(1,)).execute(ctx(try_number=1))
        with pytest.raises(ResumableJobConflictError, match="different spec"):
            toy(job_system, spec={"cmd": "train-v2"}).execute(ctx(try_number=2))
        assert len(job_system.jobs) == 1

        result = toy(job_system, spec={"cmd": "train-v2"}, spec_change_policy="cancel_and_resubmit").execute(
            ctx(try_number=3)
        )
        assert result["job_id"] == "job-2"
        assert job_system.jobs["job-1"].state == "CANCELLED"

    def test_transient_status_errors_are_retried(self, job_system, memory_store):
        with pytest.raises(SimulatedCrash):
            toy(job_system, crash_in_poll_on_tries=(1,)).execute(ctx(try_number=1))
        job_system.faults.status_errors = 3
        result = toy(job_system).execute(ctx(try_number=2))
        assert result["job_id"] == "job-1"
        assert len(job_system.jobs) == 1

    def test_transient_errors_are_bounded(self, job_system, memory_store):
        with pytest.raises(SimulatedCrash):
            toy(job_system, crash_in_poll_on_tries=(1,)).execute(ctx(try_number=1))
        job_system.faults.status_errors = 100

        class Impatient(ToyJobOperator):
            status_retry_stop = stop_after_attempt(3)

        with pytest.raises(Exception, match="503"):
            toy(job_system, cls=Impatient).execute(ctx(try_number=2))
        assert len(job_system.jobs) == 1, "never submit because the status was unknowable"
        assert job_system.faults.status_errors == 97

    def test_a_conflict_an_adapter_raises_names_the_record_to_delete(self, job_system, memory_store):
        """Adapters (EMR steps, say) raise conflicts without knowing where the record lives; the mixin adds it."""

        class Confused(FindableToyJobOperator):
            def poll_until_complete(self, external_id, context):
                raise ResumableJobConflictError("Cluster j-1 holds an incomplete set of steps.")

        with pytest.raises(ResumableJobConflictError) as err:
            toy(job_system, cls=Confused).execute(ctx())
        message = str(err.value)
        assert message.startswith("Cluster j-1 holds an incomplete set of steps. The job record is ")
        assert "toy_job" in message
        assert message.count("The job record is") == 1


class TestForgetJob:
    def test_forget_job_drops_the_record_once_success_is_recorded(self, job_system, ephemeral_store):
        from airflow.providers.resumable.plugins.resumable import listener

        ephemeral_store.set("toy_job", {"kind": "resumable-job"})
        context = ctx()
        toy(job_system).forget_job(context)
        assert ephemeral_store.get("toy_job") == {"kind": "resumable-job"}, "the try can still fail"
        listener.on_task_instance_success(previous_state=None, task_instance=context["ti"])
        assert ephemeral_store.get("toy_job") is None

    def test_forget_job_marks_stores_that_keep_state(self, job_system, memory_store):
        from airflow.providers.resumable.plugins.resumable import listener

        memory_store.set("toy_job", {"kind": "resumable-job"})
        context = ctx()
        toy(job_system).forget_job(context)
        listener.on_task_instance_success(previous_state=None, task_instance=context["ti"])
        assert memory_store.get("toy_job") == {"kind": "resumable-job"}
        assert memory_store.get("resumable_finished")["try_number"] == context["ti"].try_number


class TestFailLoudly:
    def test_corrupt_record_refuses_to_submit(self, job_system, memory_store):
        memory_store.set("toy_job", {"kind": "resumable-job", "seq": "not-a-number"})
        with pytest.raises(StateStoreError, match="job record is corrupt"):
            toy(job_system).execute(ctx())
        assert job_system.submit_calls == 0

    def test_unknown_value_refuses_to_submit(self, job_system, memory_store):
        memory_store.set("toy_job", [1, 2])
        with pytest.raises(StateStoreError, match="neither a job record"):
            toy(job_system).execute(ctx())
        assert job_system.submit_calls == 0

    def test_unreachable_store_refuses_to_submit(self, job_system, state_backend):
        state_backend("tests.support.stores.UnreachableVariableStore")
        with pytest.raises(StateStoreError, match=r"failed on get\('toy_job'\).*metadata database.*Refusing"):
            toy(job_system).execute(ctx())
        assert job_system.submit_calls == 0


class TestCompatibility:
    def test_bare_id_from_the_upstream_mixin_is_reattached(self, job_system, memory_store):
        job_id, _ = job_system.submit({}, None)
        memory_store.set("my_job_id", job_id)  # what airflow.sdk.ResumableJobMixin stores
        UpstreamStyleOperator(task_id="u", base_url=job_system.url).execute(ctx(try_number=2))
        assert len(job_system.jobs) == 1

    def test_upstream_style_operator_runs_unchanged(self, job_system, memory_store):
        op = UpstreamStyleOperator(task_id="u", base_url=job_system.url)
        assert op.execute(ctx()) is None
        assert len(job_system.jobs) == 1
        assert memory_store.get("my_job_id")["external_id"] == "job-1"

    def test_not_durable_submits_every_try_with_distinct_tokens(self, job_system, memory_store):
        a = toy(job_system, durable=False)
        a.execute(ctx(try_number=1))
        b = toy(job_system, durable=False)
        b.execute(ctx(try_number=2))
        assert len(job_system.jobs) == 2
        assert a.idempotency_token != b.idempotency_token
        assert memory_store.calls == []


class TestKill:
    def _killed_while_polling(self, job_system, **kwargs):
        op = toy(job_system, **kwargs)

        class Killer(ToyJobOperator):
            def poll_until_complete(self, external_id, context):
                self.on_kill()
                raise SimulatedCrash("SIGTERM")

        op.__class__ = Killer
        with pytest.raises(SimulatedCrash):
            op.execute(ctx())

    def test_default_keeps_the_job_for_the_retry(self, job_system, memory_store, caplog):
        with caplog.at_level(logging.INFO):
            self._killed_while_polling(job_system)
        assert job_system.jobs["job-1"].state in ("PENDING", "RUNNING")

    def test_cancel_on_kill_cancels(self, job_system, memory_store):
        self._killed_while_polling(job_system, cancel_on_kill=True)
        assert job_system.jobs["job-1"].state == "CANCELLED"


class TestBaseOnKill:
    """``base_on_kill_cancels`` decides whether the base operator's own on_kill runs after the mixin's."""

    def operator(self, job_system, skip):
        calls = []

        class CancellingBase(BaseOperator):
            def on_kill(self):
                calls.append("base cancelled the job")

        class Op(ResumableJobMixin, CancellingBase):
            base_on_kill_cancels = skip
            submit_job = get_job_status = poll_until_complete = get_job_result = None
            is_job_active = is_job_succeeded = None

        return Op(task_id="t"), calls

    def test_the_base_on_kill_runs_by_default(self, job_system):
        op, calls = self.operator(job_system, skip=False)
        op.on_kill()
        assert calls == ["base cancelled the job"]

    def test_a_base_that_cancels_unconditionally_is_left_out(self, job_system):
        op, calls = self.operator(job_system, skip=True)
        op.on_kill()
        assert calls == []
