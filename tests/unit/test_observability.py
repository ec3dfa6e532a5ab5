"""Metrics and spans: each decision and each checkpoint write, through Airflow's Stats with Stats patched."""

from __future__ import annotations

from unittest import mock

import pytest

from airflow.providers.resumable import observability
from airflow.providers.resumable.mixins import ResumableJobConflictError
from airflow.providers.resumable.mixins.decisions import DecisionKind
from tests.support.context import FakeTI, make_context
from tests.support.toy_operators import FindableToyJobOperator, SimulatedCrash, ToyBatchOperator, ToyJobOperator

SPEC = {"cmd": "train", "outcome": "SUCCEEDED"}


@pytest.fixture
def stats():
    fake = mock.MagicMock()
    with mock.patch.object(observability, "stats", return_value=fake):
        yield fake


def decisions(stats) -> list[str]:
    """The decisions counted, from the tagged metric."""
    return [c.kwargs["tags"]["decision"] for c in stats.incr.call_args_list if c.args[0] == "resumable.decision"]


def ctx(try_number=1, max_tries=2):
    return make_context(FakeTI(dag_id="dag", task_id="job", try_number=try_number, max_tries=max_tries))


def toy(job_system, cls=ToyJobOperator, **kwargs):
    kwargs.setdefault("spec", SPEC)
    return cls(task_id="job", base_url=job_system.url, **kwargs)


@pytest.mark.parametrize("kind", [k for k in DecisionKind if k is not DecisionKind.FIND])
def test_each_decision_is_one_tagged_and_one_dotted_counter(stats, kind):
    tags = {"operator": "Op", "dag_id": "d", "task_id": "t", "backend": "variable"}
    observability.emit_decision(kind.value, tags)
    assert stats.incr.call_args_list == [
        mock.call("resumable.decision", tags={**tags, "decision": kind.value}),
        mock.call(f"resumable.decision.{kind.value}", tags=tags),
    ]


def test_a_broken_metrics_backend_does_not_fail_the_task(stats):
    stats.incr.side_effect = OSError("statsd is down")
    observability.emit_decision("submit", {})


class TestTheShellEmitsItsDecision:
    def test_first_try_submits(self, stats, job_system, memory_store):
        toy(job_system).execute(ctx())
        assert decisions(stats) == ["submit"]
        tagged = next(c for c in stats.incr.call_args_list if c.args[0] == "resumable.decision")
        assert tagged.kwargs["tags"] == {
            "operator": "ToyJobOperator",
            "dag_id": "dag",
            "task_id": "job",
            "backend": "SharedMemoryStore",
            "decision": "submit",
        }

    def test_a_retry_reattaches(self, stats, job_system, memory_store):
        with pytest.raises(SimulatedCrash):
            toy(job_system, crash_in_poll_on_tries=(1,)).execute(ctx(try_number=1))
        toy(job_system).execute(ctx(try_number=2))
        assert decisions(stats) == ["submit", "reattach"]

    def test_a_retry_after_success_returns_the_result(self, stats, job_system, memory_store):
        toy(job_system).execute(ctx(try_number=1))
        toy(job_system).execute(ctx(try_number=2))
        assert decisions(stats) == ["submit", "already_succeeded"]

    def test_a_clear_after_success_is_fresh(self, stats, job_system, memory_store):
        toy(job_system).execute(ctx(try_number=1, max_tries=2))
        toy(job_system).execute(ctx(try_number=2, max_tries=3))
        assert decisions(stats) == ["submit", "cleared_fresh"]

    def test_a_failed_job_is_submitted_again(self, stats, job_system, memory_store):
        failing = {**SPEC, "outcome": "FAILED"}
        for try_number in (1, 2):
            with pytest.raises(Exception, match="ended FAILED"):
                toy(job_system, spec=failing).execute(ctx(try_number=try_number))
        assert decisions(stats) == ["submit", "failed_resubmit"]

    def test_a_failed_job_is_resumed_where_the_operator_can(self, stats, job_system, memory_store):
        class Resuming(ToyJobOperator):
            def resume_failed_job(self, external_id, status, context):
                job_system.set_state(external_id, "SUCCEEDED")  # its failed part ran again
                return external_id

        failing = {**SPEC, "outcome": "FAILED"}
        with pytest.raises(Exception, match="ended FAILED"):
            toy(job_system, cls=Resuming, spec=failing).execute(ctx(try_number=1))
        toy(job_system, cls=Resuming, spec=failing).execute(ctx(try_number=2))
        assert decisions(stats) == ["submit", "failed_resume"]

    def test_an_expired_job_is_submitted_again(self, stats, job_system, memory_store):
        toy(job_system).execute(ctx(try_number=1))
        job_system.expire("job-1")
        toy(job_system).execute(ctx(try_number=2))
        assert decisions(stats) == ["submit", "not_found_submit"]

    def test_a_lost_response_resubmits_with_the_same_token(self, stats, job_system, memory_store):
        job_system.faults.drop_submit_responses = 1
        with pytest.raises(Exception, match="Connection aborted|RemoteDisconnected|ConnectionError"):
            toy(job_system).execute(ctx(try_number=1))
        toy(job_system).execute(ctx(try_number=2))
        assert decisions(stats) == ["submit", "resubmit_same_token"]

    def test_a_lost_response_found_by_token(self, stats, job_system, memory_store):
        job_system.faults.drop_submit_responses = 1
        with pytest.raises(Exception, match="Connection aborted|RemoteDisconnected|ConnectionError"):
            toy(job_system, cls=FindableToyJobOperator).execute(ctx(try_number=1))
        toy(job_system, cls=FindableToyJobOperator).execute(ctx(try_number=2))
        assert decisions(stats)[:3] == ["submit", "found_by_token", decisions(stats)[2]]
        assert decisions(stats)[2] in ("reattach", "already_succeeded")
        assert len(decisions(stats)) == 3

    def test_a_changed_spec_while_the_job_runs_is_a_conflict(self, stats, job_system, memory_store):
        with pytest.raises(SimulatedCrash):
            toy(job_system, crash_in_poll_on_tries=(1,)).execute(ctx(try_number=1))
        with pytest.raises(ResumableJobConflictError):
            toy(job_system, spec={**SPEC, "cmd": "other"}).execute(ctx(try_number=2))
        assert decisions(stats) == ["submit", "conflict"]

    def test_cancel_and_resubmit(self, stats, job_system, memory_store):
        with pytest.raises(SimulatedCrash):
            toy(job_system, crash_in_poll_on_tries=(1,)).execute(ctx(try_number=1))
        changed = {**SPEC, "cmd": "other"}
        toy(job_system, spec=changed, spec_change_policy="cancel_and_resubmit").execute(ctx(try_number=2))
        assert decisions(stats) == ["submit", "cancel_and_submit"]

    def test_not_durable(self, stats, job_system, memory_store):
        toy(job_system, durable=False).execute(ctx())
        assert decisions(stats) == ["not_durable"]


class TestSpans:
    def test_the_decision_span_carries_upstreams_attributes(self, stats, job_system, memory_store):
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        with mock.patch.object(observability, "_tracer", return_value=provider.get_tracer("test")):
            with pytest.raises(SimulatedCrash):
                toy(job_system, crash_in_poll_on_tries=(1,)).execute(ctx(try_number=1))
            toy(job_system).execute(ctx(try_number=2))
        spans = [s for s in exporter.get_finished_spans() if s.name == "resumable.resume_decision"]
        assert [s.attributes["resumable.decision"] for s in spans] == ["submit", "reattach"]
        reattach = spans[1].attributes
        assert reattach["resumable.external_id"] == "job-1"
        assert reattach["resumable.external_id_key"] == "toy_job"
        assert reattach["operator"] == "ToyJobOperator"
        assert reattach["resumable.prior_status"] in ("PENDING", "RUNNING")


def test_each_checkpoint_write_is_counted_and_timed(stats, memory_store, tmp_path):
    op = ToyBatchOperator(task_id="walk", out_dir=str(tmp_path), total=30, batch_size=10, checkpoint_every=1)
    op.execute(make_context(FakeTI(dag_id="dag", task_id="walk")))
    writes = [c for c in stats.incr.call_args_list if c.args[0] == "resumable.checkpoint.write"]
    # After batches 1 and 2 (batch 3 is the last), then the final "complete" checkpoint.
    assert len(writes) == 3
    assert writes[0].kwargs["tags"] == {
        "operator": "ToyBatchOperator",
        "dag_id": "dag",
        "task_id": "walk",
        "backend": "SharedMemoryStore",
    }
    timings = stats.timing.call_args_list
    assert [c.args[0] for c in timings] == ["resumable.checkpoint.write_duration"] * 3
    assert all(c.args[1] >= 0 for c in timings)
