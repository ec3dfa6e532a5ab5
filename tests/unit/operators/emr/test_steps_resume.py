"""
Resuming a failed EMR step set (``operators/emr/steps.py``): which steps are added again, and the
two hooks the mixin's core calls, ``resume_failed_job`` and ``find_resumed_job``, against moto.

The hooks are called here as the core calls them: with the stored step set, the status it read,
and ``idempotency_token`` set to the resume's own token.
"""

from __future__ import annotations

import pytest

from airflow.providers.resumable.mixins import ResumableJobConflictError
from airflow.providers.resumable.mixins.decisions import new_idempotency_token
from airflow.providers.resumable.operators.emr.steps import resumed_step_ids, steps_to_resume
from tests.support.emr import ctx, failing_at, step_list, steps_op

C, F, X, INT, R, P = "COMPLETED", "FAILED", "CANCELLED", "INTERRUPTED", "RUNNING", "PENDING"


@pytest.mark.parametrize(
    ("states", "redo"),
    [
        pytest.param([C, C, C, F, X], [3, 4], id="cancel_and_wait: the failed step and the cancelled ones"),
        pytest.param([F, X, X, X, X], [0, 1, 2, 3, 4], id="the first step failed: all of them"),
        pytest.param([C, C, C, C, F], [4], id="the last step failed: that one"),
        pytest.param([C, C, C, F, C], [3], id="continue: a later step that completed is kept"),
        pytest.param([C, F, C, F, X], [1, 3, 4], id="continue, then another failure: each step not completed"),
        pytest.param([C, INT, X], [1, 2], id="interrupted by its cluster: added again"),
        pytest.param([X, C], [0], id="cancelled by hand: added again, as a resubmit would"),
        pytest.param([F], [0], id="one step"),
    ],
)
def test_steps_to_resume(states, redo):
    assert steps_to_resume(states) == redo


@pytest.mark.parametrize(
    ("states", "message"),
    [
        pytest.param([C, F, R], r"steps \[2\] are still active", id="a step still runs"),
        pytest.param([C, F, P], r"steps \[2\] are still active", id="a step is still pending"),
        pytest.param([C, C], "nothing to resume", id="all completed"),
        pytest.param([], "at least one step", id="no steps"),
        pytest.param([C, "EXPLODED"], r"unknown EMR step state\(s\) \['EXPLODED'\]", id="unknown state"),
    ],
)
def test_steps_to_resume_refuses(states, message):
    with pytest.raises(ValueError, match=message):
        steps_to_resume(states)


@pytest.mark.parametrize(
    ("step_ids", "positions", "added", "merged"),
    [
        (["a", "b", "c", "d", "e"], [3, 4], ["n", "m"], ["a", "b", "c", "n", "m"]),
        (["a", "b", "c"], [1], ["n"], ["a", "n", "c"]),
        (["a", "b"], [0, 1], ["n", "m"], ["n", "m"]),
    ],
)
def test_resumed_step_ids_keep_one_id_per_requested_step(step_ids, positions, added, merged):
    assert resumed_step_ids(step_ids, positions, added) == merged


@pytest.mark.parametrize(("positions", "added"), [([3], ["n", "m"]), ([5], ["n"]), ([-1], ["n"])])
def test_resumed_step_ids_refuse_a_mismatch(positions, added):
    with pytest.raises(ValueError, match="step ids added for positions"):
        resumed_step_ids(["a", "b", "c", "d", "e"], positions, added)


# ---- against moto ---------------------------------------------------------------------------------


def failed_first_try(aws, cluster, memory_store, steps, index, **kwargs):
    """Add ``steps`` with step ``index`` failing as EMR would; returns the operator and the stored set."""
    aws.step_outcomes = [failing_at(steps, index)]
    op = steps_op(cluster, steps=steps, **kwargs)
    with pytest.raises(Exception, match="EMR Steps failed"):
        op.execute(ctx(1))
    return op, memory_store.get("emr_steps")["external_id"]


def resume(op, job, token=None):
    """Call the hook as the core does: after the status read, with the resume's token set."""
    status = op.get_job_status(job, ctx(2))
    assert not op.is_job_active(status), status
    assert not op.is_job_succeeded(status), status
    op.idempotency_token = token or new_idempotency_token()
    return op.resume_failed_job(job, status, ctx(2))


def names(aws, cluster):
    return [s.name.split(" [")[0] for s in aws.steps(cluster)]


def test_step_4_of_5_failed_adds_steps_4_and_5_only(aws, cluster, memory_store):
    steps = step_list(5, "CANCEL_AND_WAIT")
    op, job = failed_first_try(aws, cluster, memory_store, steps, 3)
    assert [s.state for s in aws.steps(cluster)] == [C, C, C, F, X]

    resumed = resume(op, job)
    assert aws.calls["AddJobFlowSteps"] == 2
    assert names(aws, cluster) == ["step_1", "step_2", "step_3", "step_4", "step_5", "step_4", "step_5"]
    on_cluster = [s.id for s in aws.steps(cluster)]
    assert resumed == {"cluster_id": cluster, "step_ids": job["step_ids"][:3] + on_cluster[5:]}
    token = op.idempotency_token
    assert [s.name for s in aws.steps(cluster)][5:] == [f"step_4 [{token}:3/5]", f"step_5 [{token}:4/5]"]
    op.poll_until_complete(resumed, ctx(2))
    assert op.get_job_status(resumed, ctx(2)) == C


def test_continue_keeps_the_later_step_that_completed(aws, cluster, memory_store):
    steps = step_list(5, "CONTINUE")
    aws.running_reads = 1  # step 5 still runs when step 4 is seen FAILED
    op, job = failed_first_try(aws, cluster, memory_store, steps, 3)
    assert [s.state for s in aws.steps(cluster)] == [C, C, C, F, C], "the try ended once step 5 had"

    resumed = resume(op, job)
    assert names(aws, cluster) == ["step_1", "step_2", "step_3", "step_4", "step_5", "step_4"]
    assert resumed["step_ids"] == [*job["step_ids"][:3], aws.steps(cluster)[5].id, job["step_ids"][4]]


def test_a_resume_that_fails_again_is_resumed_from_its_failed_step(aws, cluster, memory_store):
    steps = step_list(5)
    op, job = failed_first_try(aws, cluster, memory_store, steps, 3)
    aws.step_outcomes = [[F, X]]  # the re-added step 4 fails again
    first = resume(op, job)
    with pytest.raises(Exception, match="EMR Steps failed"):
        op.poll_until_complete(first, ctx(2))
    second = resume(op, first)
    assert names(aws, cluster)[7:] == ["step_4", "step_5"]
    assert second["step_ids"][:3] == job["step_ids"][:3]
    assert second["step_ids"][3:] == [s.id for s in aws.steps(cluster)[7:]]
    assert len(set(job["step_ids"]) | set(first["step_ids"]) | set(second["step_ids"])) == 9


def test_terminate_cluster_failure_cannot_be_resumed_on_the_terminated_cluster(aws, cluster, memory_store):
    steps = step_list(5, "TERMINATE_CLUSTER")
    op, job = failed_first_try(aws, cluster, memory_store, steps, 3)
    assert aws.emr().clusters[cluster].state == "TERMINATED_WITH_ERRORS"
    with pytest.raises(ResumableJobConflictError, match=rf"Cannot resume steps \[3, 4\].*{cluster} is TERMINATED"):
        resume(op, job)
    assert aws.calls["AddJobFlowSteps"] == 1, "nothing sent to a cluster that cannot take steps"


def test_terminate_cluster_failure_on_a_protected_cluster_is_resumed(aws, cluster, memory_store):
    import boto3

    boto3.client("emr", region_name="us-east-1").set_termination_protection(
        JobFlowIds=[cluster], TerminationProtected=True
    )
    steps = step_list(5, "TERMINATE_CLUSTER")
    op, job = failed_first_try(aws, cluster, memory_store, steps, 3)
    assert aws.emr().clusters[cluster].state != "TERMINATED_WITH_ERRORS"
    resumed = resume(op, job)
    assert names(aws, cluster)[5:] == ["step_4", "step_5"]
    assert resumed["step_ids"][:3] == job["step_ids"][:3]


def test_a_lost_resume_is_found_by_its_marker_not_repeated(aws, cluster, memory_store):
    steps = step_list(5)
    op, job = failed_first_try(aws, cluster, memory_store, steps, 3)
    token = new_idempotency_token()
    assert op.find_resumed_job(job, token, ctx(2)) is None, "nothing carries the token before the resume"

    resumed = resume(op, job, token)  # ... and its response never reached the record
    found = steps_op(cluster, steps=steps).find_resumed_job(job, token, ctx(3))
    assert found == resumed
    assert aws.calls["AddJobFlowSteps"] == 2, "the lookup added nothing"
    assert op.find_resumed_job(job, new_idempotency_token(), ctx(3)) is None, "another token finds nothing"


def test_a_partly_found_resume_is_a_conflict(aws, cluster, memory_store):
    steps = step_list(5)
    op, job = failed_first_try(aws, cluster, memory_store, steps, 3)
    token = new_idempotency_token()
    resume(op, job, token)
    aws.emr().clusters[cluster].steps.pop()  # one of the two re-added steps vanished
    with pytest.raises(ResumableJobConflictError, match="incomplete set of steps"):
        op.find_resumed_job(job, token, ctx(3))


def test_a_step_list_of_another_length_is_not_resumed(aws, cluster, memory_store):
    steps = step_list(5)
    _, job = failed_first_try(aws, cluster, memory_store, steps, 3)
    shorter = steps_op(cluster, steps=steps[:4])
    with pytest.raises(ResumableJobConflictError, match="has 5 steps and the task now has 4"):
        resume(shorter, job)


def test_a_failed_set_still_running_a_step_is_active_not_failed(aws, cluster, memory_store):
    """CONTINUE: step 5 still runs after step 4 failed. Resuming now would race it; the core reattaches."""
    steps = step_list(5, "CONTINUE")
    aws.running_reads = 50
    op = steps_op(cluster, steps=steps, wait_for_completion=False)
    job = op.execute(ctx(1))
    step_ids = job
    for step, state in zip(aws.steps(cluster), [C, C, C, F, R], strict=True):
        step.state = state
    status = op.get_job_status({"cluster_id": cluster, "step_ids": step_ids}, ctx(2))
    assert op.is_job_active(status)


def test_a_waiter_that_gives_up_fails_at_once(aws, cluster, memory_store):
    """Only a FAILED step makes the poll wait for the later ones; a step still running does not."""
    aws.running_reads = 5
    op = steps_op(cluster, steps=step_list(3, "CONTINUE"), waiter_max_attempts=1)
    with pytest.raises(Exception, match="max attempts|Max attempts"):
        op.execute(ctx(1))
    assert aws.calls["DescribeStep"] == 1, "the later steps were not waited for"


def test_a_terminated_cluster_named_by_job_flow_name_hands_over_to_a_live_one(aws, cluster, memory_store):
    """The resume declines (None): the core then adds all steps, as a fresh submission, where the name points."""
    import boto3

    from tests.support.fake_aws import create_cluster

    steps = step_list(5, "TERMINATE_CLUSTER")
    by_name = {"job_flow_name": "resumable-it", "cluster_states": ["RUNNING", "WAITING"]}
    op, job = failed_first_try(aws, None, memory_store, steps, 3, **by_name)
    assert job["cluster_id"] == cluster
    with pytest.raises(ResumableJobConflictError, match="is TERMINATED_WITH_ERRORS"):
        resume(op, job)  # no live cluster carries the name yet

    replacement = create_cluster(boto3.client("emr", region_name="us-east-1"))
    assert resume(op, job) is None
    assert aws.calls["AddJobFlowSteps"] == 1
    assert op._cluster_id() == replacement, "where the fresh submission goes"
