from __future__ import annotations

import re

import pytest

from airflow.providers.resumable.mixins.decisions import (
    Action,
    JobState,
    SpecChangePolicy,
    decide,
    fingerprint_of,
    idempotency_token,
)
from airflow.providers.resumable.state.base import TaskScope
from airflow.providers.resumable.state.records import JobRecord

SCOPE = TaskScope(dag_id="d", run_id="r", task_id="t", map_index=-1)
GEN = 2  # ti.max_tries of the current generation
OLD_GEN = 1
FP = "fp-now"
OLD_FP = "fp-old"


def rec(*, external_id="job-1", generation=GEN, fingerprint=FP, seq=1, legacy=False):
    token = None if legacy else idempotency_token(SCOPE, generation, seq)
    return JobRecord(
        seq=seq, token=token, generation=generation, fingerprint=fingerprint, external_id=external_id, legacy=legacy
    )


def run(record, job_state=None, *, can_find=False, looked_up=False, can_cancel=False, policy="fail", fp=FP):
    return decide(
        record,
        scope=SCOPE,
        generation=GEN,
        fingerprint=fp,
        job_state=job_state,
        can_find=can_find,
        looked_up=looked_up,
        can_cancel=can_cancel,
        spec_change_policy=SpecChangePolicy.parse(policy),
    )


A, S, F, N = JobState.ACTIVE, JobState.SUCCEEDED, JobState.FAILED, JobState.NOT_FOUND

# (case, record, live state, kwargs) -> (action, seq, adopt)
TABLE = [
    ("no record", None, None, {}, Action.SUBMIT, 1, False),
    ("intent, no find_job", rec(external_id=None), None, {}, Action.RESUBMIT_SAME_TOKEN, 1, False),
    ("intent, find_job not yet called", rec(external_id=None), None, {"can_find": True}, Action.FIND, 1, False),
    (
        "intent, find_job found nothing",
        rec(external_id=None),
        None,
        {"can_find": True, "looked_up": True},
        Action.RESUBMIT_SAME_TOKEN,
        1,
        False,
    ),
    (
        "intent from an older generation is still resolved first",
        rec(external_id=None, generation=OLD_GEN),
        None,
        {},
        Action.RESUBMIT_SAME_TOKEN,
        1,
        False,
    ),
    ("active", rec(), A, {}, Action.REATTACH, None, False),
    ("succeeded", rec(), S, {}, Action.RETURN_RESULT, None, False),
    ("failed", rec(), F, {}, Action.SUBMIT, 2, False),
    ("not found", rec(), N, {}, Action.SUBMIT, 2, False),
    ("second failure", rec(seq=2), F, {}, Action.SUBMIT, 3, False),
    ("cleared by hand, job active", rec(generation=OLD_GEN), A, {}, Action.REATTACH, None, True),
    ("cleared by hand, job succeeded", rec(generation=OLD_GEN), S, {}, Action.SUBMIT, 2, False),
    ("cleared by hand, job failed", rec(generation=OLD_GEN), F, {}, Action.SUBMIT, 2, False),
    ("cleared by hand, job gone", rec(generation=OLD_GEN), N, {}, Action.SUBMIT, 2, False),
    (
        "legacy bare id, active",
        rec(legacy=True, generation=None, fingerprint=None, seq=0),
        A,
        {},
        Action.REATTACH,
        None,
        False,
    ),
    (
        "legacy bare id, succeeded",
        rec(legacy=True, generation=None, fingerprint=None, seq=0),
        S,
        {},
        Action.RETURN_RESULT,
        None,
        False,
    ),
    (
        "legacy bare id, failed",
        rec(legacy=True, generation=None, fingerprint=None, seq=0),
        F,
        {},
        Action.SUBMIT,
        1,
        False,
    ),
    ("spec changed, job succeeded", rec(fingerprint=OLD_FP), S, {}, Action.SUBMIT, 2, False),
    ("spec changed, job failed", rec(fingerprint=OLD_FP), F, {}, Action.SUBMIT, 2, False),
    ("spec changed, job gone", rec(fingerprint=OLD_FP), N, {}, Action.SUBMIT, 2, False),
    ("spec changed, active, policy fail", rec(fingerprint=OLD_FP), A, {"can_cancel": True}, Action.FAIL, None, False),
    (
        "spec changed, active, cancel policy",
        rec(fingerprint=OLD_FP),
        A,
        {"policy": "cancel_and_resubmit", "can_cancel": True},
        Action.CANCEL_AND_SUBMIT,
        2,
        False,
    ),
    (
        "spec changed, active, cancel policy but no cancel_job",
        rec(fingerprint=OLD_FP),
        A,
        {"policy": "cancel_and_resubmit"},
        Action.FAIL,
        None,
        False,
    ),
    (
        "spec changed, active, resubmit policy",
        rec(fingerprint=OLD_FP),
        A,
        {"policy": "resubmit"},
        Action.SUBMIT,
        2,
        False,
    ),
    (
        "spec changed across generations, active",
        rec(fingerprint=OLD_FP, generation=OLD_GEN),
        A,
        {},
        Action.FAIL,
        None,
        False,
    ),
    ("no fingerprint now: not compared", rec(fingerprint=OLD_FP), A, {"fp": None}, Action.REATTACH, None, False),
    ("no fingerprint stored: not compared", rec(fingerprint=None), A, {}, Action.REATTACH, None, False),
]


@pytest.mark.parametrize(
    ("record", "state", "kwargs", "action", "seq", "adopt"),
    [row[1:] for row in TABLE],
    ids=[row[0] for row in TABLE],
)
def test_decision_table(record, state, kwargs, action, seq, adopt):
    decision = run(record, state, **kwargs)
    assert decision.action is action, decision.reason
    assert decision.adopt is adopt
    if action in (Action.SUBMIT, Action.CANCEL_AND_SUBMIT):
        assert decision.seq == seq
        # A new submission always gets the token of its own (generation, seq), never an old one.
        assert decision.token == idempotency_token(SCOPE, GEN, seq)
        assert record is None or decision.token != record.token
    if action in (Action.RESUBMIT_SAME_TOKEN, Action.FIND):
        assert decision.token == record.token
        assert decision.seq == record.seq
    if action in (Action.REATTACH, Action.RETURN_RESULT, Action.CANCEL_AND_SUBMIT):
        assert decision.external_id == record.external_id


def test_missing_status_counts_as_not_found():
    assert run(rec(), None).action is Action.SUBMIT


def test_fail_reason_says_what_to_do():
    reason = run(rec(fingerprint=OLD_FP), A).reason
    assert "job-1" in reason
    assert OLD_FP in reason
    assert FP in reason
    assert "spec_change_policy" in reason


def test_cleared_reason_names_generations():
    reason = run(rec(generation=OLD_GEN), S).reason
    assert "cleared by hand" in reason
    assert f"{OLD_GEN} -> {GEN}" in reason


@pytest.mark.parametrize("bad", ["", "FAIL", "cancel", None])
def test_spec_change_policy_rejects_unknown_values(bad):
    with pytest.raises(ValueError, match=r"spec_change_policy must be one of .* got"):
        SpecChangePolicy.parse(bad)


def test_token_is_deterministic_bounded_and_distinct():
    token = idempotency_token(SCOPE, GEN, 1)
    assert token == idempotency_token(SCOPE, GEN, 1)
    assert len(token) <= 64
    assert re.fullmatch(r"[A-Za-z0-9_-]+", token)
    others = {
        idempotency_token(SCOPE, GEN, 2),
        idempotency_token(SCOPE, OLD_GEN, 1),
        idempotency_token(TaskScope("d", "r", "t", 0), GEN, 1),
        idempotency_token(TaskScope("d", "r2", "t", -1), GEN, 1),
        idempotency_token(TaskScope("d2", "r", "t", -1), GEN, 1),
        idempotency_token(TaskScope("d", "r", "t2", -1), GEN, 1),
    }
    assert token not in others
    assert len(others) == 6


def test_token_does_not_collide_on_separator_tricks():
    # Naive "dag.task" joining would make these equal.
    assert idempotency_token(TaskScope("a.b", "r", "c"), 1, 1) != idempotency_token(TaskScope("a", "r", "b.c"), 1, 1)


def test_fingerprint_ignores_key_order_but_not_values():
    assert fingerprint_of({"a": 1, "b": [1, 2]}) == fingerprint_of({"b": [1, 2], "a": 1})
    assert fingerprint_of({"a": 1}) != fingerprint_of({"a": 2})
