"""ResumableEmrAddStepsOperator (``operators/emr/steps.py``): a step set found again by its marker."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from airflow.providers.resumable.mixins import ResumableJobConflictError
from airflow.providers.resumable.operators.emr import ResumableEmrAddStepsOperator
from airflow.providers.resumable.operators.emr._common import MARKER_RE
from tests.support.emr import STEP, ctx, deferred, steps_op
from tests.support.fake_aws import REGION
from tests.support.job_run import while_polling


def step_names(fake, cluster_id):
    return [s.name for s in fake.steps(cluster_id)]


class TestAddSteps:
    def test_no_steps_return_an_empty_list_and_record_nothing(self, aws, cluster, memory_store):
        context = ctx()
        assert steps_op(cluster, steps=[]).execute(context) == []
        assert memory_store.get("emr_steps") is None
        assert aws.steps(cluster) == []
        assert context["ti"].pushed["job_flow_id"] == cluster, "the official operator's XCom, as upstream"

    def test_marks_each_step_stores_the_ids_and_returns_them(self, aws, cluster, memory_store):
        context = ctx()
        result = steps_op(cluster, steps=[STEP, {**STEP, "Name": "second"}]).execute(context)
        stored = memory_store.get("emr_steps")
        assert stored["external_id"] == {"cluster_id": cluster, "step_ids": result}
        assert len(result) == 2
        token = stored["token"]
        assert step_names(aws, cluster) == [f"calculate_pi [{token}:0/2]", f"second [{token}:1/2]"]
        assert context["ti"].pushed["job_flow_id"] == cluster

    def test_the_record_links_the_cluster_page_and_keeps_each_tries_decision(self, aws, cluster, memory_store):
        aws.running_reads = 1
        with pytest.raises(Exception, match="max attempts|Max attempts"):
            steps_op(cluster, waiter_max_attempts=1).execute(ctx(1))
        steps_op(cluster).execute(ctx(2))
        stored = memory_store.get("emr_steps")
        assert stored["url"] == f"https://console.aws.amazon.com/emr/home?region={REGION}#/clusterDetails/{cluster}"
        assert [(e["try_number"], e["decision"]) for e in stored["history"]] == [
            (1, "submit"),
            (2, "already_succeeded"),
        ]

    def test_failure_mid_poll_reattaches_without_adding_steps(self, aws, cluster, memory_store):
        aws.running_reads = 1  # the first try's only poll sees RUNNING, then its waiter gives up
        with pytest.raises(Exception, match="max attempts|Max attempts"):
            steps_op(cluster, waiter_max_attempts=1).execute(ctx(1))
        first = memory_store.get("emr_steps")["external_id"]
        result = steps_op(cluster).execute(ctx(2))
        assert result == first["step_ids"]
        assert len(aws.steps(cluster)) == 1
        assert aws.calls["AddJobFlowSteps"] == 1

    def test_crash_between_add_and_state_write_finds_the_steps_by_marker(
        self, aws, cluster, memory_store, id_write_lost
    ):
        with id_write_lost(), pytest.raises(ConnectionError):
            steps_op(cluster).execute(ctx(1))
        assert memory_store.get("emr_steps")["external_id"] is None

        result = steps_op(cluster).execute(ctx(2))
        assert aws.calls["AddJobFlowSteps"] == 1
        assert [s.id for s in aws.steps(cluster)] == result
        assert memory_store.get("emr_steps")["external_id"]["step_ids"] == result

    @pytest.mark.parametrize("on_job_failure", ["resume", "resubmit"])
    def test_failed_steps_are_added_again_with_a_new_marker(self, aws, cluster, memory_store, on_job_failure):
        """A resume marks the re-added step with the resume's token; a resubmission with a new submission's."""
        aws.step_outcomes = ["FAILED"]
        with pytest.raises(Exception, match="EMR Steps failed|Waiter"):
            steps_op(cluster, on_job_failure=on_job_failure).execute(ctx(1))
        first_token = memory_store.get("emr_steps")["token"]
        result = steps_op(cluster, on_job_failure=on_job_failure).execute(ctx(2))
        first, again = aws.steps(cluster)
        assert result == [again.id]
        assert MARKER_RE.search(first.name)["token"] == first_token
        assert MARKER_RE.search(again.name)["token"] != first_token
        assert (memory_store.get("emr_steps")["token"] != first_token) == (on_job_failure == "resubmit")

    def test_completed_steps_are_returned_not_added_again(self, aws, cluster, memory_store):
        first = steps_op(cluster).execute(ctx(1))
        assert steps_op(cluster).execute(ctx(2)) == first
        assert len(aws.steps(cluster)) == 1

    def test_cleared_by_hand_after_success_adds_fresh_steps(self, aws, cluster, memory_store):
        steps_op(cluster).execute(ctx(1, max_tries=2))
        steps_op(cluster).execute(ctx(2, max_tries=4))
        assert len(aws.steps(cluster)) == 2

    def test_partial_set_is_a_conflict_not_a_resubmit(self, aws, cluster, memory_store, id_write_lost):
        op = steps_op(cluster, steps=[STEP, {**STEP, "Name": "second"}])
        with id_write_lost(), pytest.raises(ConnectionError):
            op.execute(ctx(1))
        aws.emr().clusters[cluster].steps.pop()  # one of the two steps vanished
        with pytest.raises(ResumableJobConflictError, match="incomplete set of steps"):
            steps_op(cluster, steps=[STEP, {**STEP, "Name": "second"}]).execute(ctx(2))
        assert aws.calls["AddJobFlowSteps"] == 1

    def test_fingerprint_ignores_the_marker_and_spec_change_does_not_reattach(self, aws, cluster, memory_store):
        aws.running_reads = 5  # the set is still running when the changed task retries
        op = steps_op(cluster, wait_for_completion=False)
        before = op.job_fingerprint(ctx())
        op.execute(ctx(1))
        assert op.job_fingerprint(ctx()) == before
        changed = steps_op(cluster, steps=[{**STEP, "Name": "other"}], wait_for_completion=False)
        with pytest.raises(ResumableJobConflictError, match="different spec"):
            changed.execute(ctx(2))
        assert len(aws.steps(cluster)) == 1

    def test_steps_gone_from_the_cluster_mean_fresh_steps(self, aws, cluster, memory_store):
        steps_op(cluster).execute(ctx(1))
        stored = memory_store.get("emr_steps")
        memory_store.set("emr_steps", {**stored, "external_id": {"cluster_id": cluster, "step_ids": ["s-EXPIRED"]}})
        steps_op(cluster).execute(ctx(2))
        assert len(aws.steps(cluster)) == 2
        assert memory_store.get("emr_steps")["seq"] == stored["seq"] + 1

    def test_unknown_cluster_is_not_found_and_throttling_is_not(self, aws, memory_store, monkeypatch):
        from airflow.providers.resumable.mixins import JobNotFoundError

        op = steps_op("j-1")
        job = {"cluster_id": "j-1", "step_ids": ["s-1"]}

        def failing(code, status):
            def paginate(**kwargs):
                raise ClientError(
                    {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "ListSteps"
                )

            return type("P", (), {"paginate": staticmethod(paginate)})()

        monkeypatch.setattr(op.hook.conn, "get_paginator", lambda name: failing("InvalidRequestException", 400))
        with pytest.raises(JobNotFoundError):
            op.get_job_status(job, ctx())
        monkeypatch.setattr(op.hook.conn, "get_paginator", lambda name: failing("ThrottlingException", 400))
        with pytest.raises(ClientError) as raised:
            op.get_job_status(job, ctx())
        assert op.is_transient_error(raised.value)

    def test_a_set_added_twice_anyway_keeps_the_oldest_and_cancels_the_repeat(
        self, aws, cluster, memory_store, monkeypatch
    ):
        """The last resort: a repeat that got in despite single-attempt submission (another client, a stale lookup)."""
        op = steps_op(cluster, wait_for_completion=False)
        real_add = op.hook.add_job_flow_steps
        monkeypatch.setattr(op.hook, "add_job_flow_steps", lambda **kw: (real_add(**kw), real_add(**kw))[1])
        cancelled = []
        # moto has no CancelSteps; record the call instead.
        monkeypatch.setattr(op.hook.conn, "cancel_steps", lambda **kwargs: cancelled.append(kwargs))
        result = op.execute(ctx())
        first, second = aws.steps(cluster)
        assert result == [first.id]
        assert cancelled == [{"ClusterId": cluster, "StepIds": [second.id], "StepCancellationOption": "SEND_INTERRUPT"}]
        assert memory_store.get("emr_steps")["external_id"]["step_ids"] == [first.id]

    def test_a_repeat_that_cannot_be_cancelled_fails_loudly(self, aws, cluster, memory_store, monkeypatch):
        op = steps_op(cluster, wait_for_completion=False)
        real_add = op.hook.add_job_flow_steps
        monkeypatch.setattr(op.hook, "add_job_flow_steps", lambda **kw: (real_add(**kw), real_add(**kw))[1])
        with pytest.raises(ResumableJobConflictError, match="twice"):
            op.execute(ctx())  # moto answers CancelSteps with an error

    def test_steps_from_a_string_literal(self, aws, cluster, memory_store):
        assert len(steps_op(cluster, steps=repr([STEP])).execute(ctx())) == 1

    @pytest.mark.parametrize(
        ("steps", "message"),
        [
            ([{"HadoopJarStep": {}}], r"steps\[0\] must be a dict with a string 'Name'"),
            (["x"], r"steps\[0\] must be a dict"),
            ([{**STEP, "Name": "n" * 250}], r"steps\[0\]\['Name'\] is 250 characters"),
        ],
    )
    def test_bad_steps_fail_at_parse_time(self, steps, message):
        with pytest.raises(ValueError, match=message):
            ResumableEmrAddStepsOperator(task_id="steps", job_flow_id="j-1", steps=steps)

    def test_kill_leaves_steps_running_unless_asked(self, aws, cluster, memory_store):
        op = steps_op(cluster)
        while_polling(op, {"cluster_id": cluster, "step_ids": ["s-1"]}, ctx())
        op.on_kill()  # no AWS call: the official operator has no cancel and ours is off
        op.cancel_on_kill = True
        calls = []
        op.cancel_job = lambda external_id, context: calls.append(external_id)
        op.on_kill()
        assert calls == [{"cluster_id": cluster, "step_ids": ["s-1"]}]


class TestDeferrable:
    def test_steps_defer_on_the_stored_ids_and_forget_them_on_success(self, aws, cluster, ephemeral_store):
        from airflow.providers.amazon.aws.triggers.emr import EmrAddStepsTrigger

        op = steps_op(cluster, deferrable=True)
        deferral = deferred(op, ctx(1))
        stored = ephemeral_store.get("emr_steps")["external_id"]
        trigger = deferral.trigger
        assert isinstance(trigger, EmrAddStepsTrigger)
        assert trigger.serialize()[1]["step_ids"] == stored["step_ids"]
        assert deferral.method_name == "execute_complete"
        context = ctx(1)
        result = op.execute_complete(context, {"status": "success", "value": stored["step_ids"]})
        assert result == stored["step_ids"]
        assert ephemeral_store.get("emr_steps") is not None, "kept until Airflow records the success"
        from airflow.providers.resumable.plugins.resumable import listener

        listener.on_task_instance_success(previous_state=None, task_instance=context["ti"])
        assert ephemeral_store.get("emr_steps") is None

    def test_failed_trigger_keeps_the_record_for_the_retry(self, aws, cluster, ephemeral_store):
        op = steps_op(cluster, deferrable=True)
        deferred(op, ctx(1))
        with pytest.raises(Exception, match="Error while running steps"):
            op.execute_complete(ctx(1), {"status": "failure", "message": "waiter"})
        assert ephemeral_store.get("emr_steps")["external_id"] is not None
