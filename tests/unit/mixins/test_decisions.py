from __future__ import annotations

import re

import pytest

from airflow.providers.resumable.mixins.decisions import (
    Action,
    DecisionKind,
    JobState,
    SpecChangePolicy,
    decide,
    fingerprint_of,
    new_idempotency_token,
)
from airflow.providers.resumable.state.records import JobRecord

FRESH = "rsm-fresh"  # the token the shell minted for a new submission on this try
GEN = 2  # ti.max_tries of the current generation
OLD_GEN = 1
FP = "fp-now"
OLD_FP = "fp-old"


def rec(*, external_id="job-1", generation=GEN, fingerprint=FP, seq=1, legacy=False):
    token = None if legacy else f"rsm-stored-{seq}"
    return JobRecord(
        seq=seq, token=token, generation=generation, fingerprint=fingerprint, external_id=external_id, legacy=legacy
    )


def run(
    record, job_state=None, *, can_find=False, looked_up=False, can_cancel=False, policy="fail", fp=FP, finished=False
):
    return decide(
        record,
        finished=finished,
        generation=GEN,
        fingerprint=fp,
        job_state=job_state,
        can_find=can_find,
        looked_up=looked_up,
        can_cancel=can_cancel,
        fresh_token=FRESH,
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
    # The finished marker: Airflow recorded the success of the life that wrote the record, so only a
    # person's clear can have started this try. It wins over max_tries, which a clear can leave equal.
    ("finished, job succeeded, max_tries equal", rec(), S, {"finished": True}, Action.SUBMIT, 2, False),
    ("finished, job still active", rec(), A, {"finished": True}, Action.SUBMIT, 2, False),
    ("finished, job failed", rec(), F, {"finished": True}, Action.SUBMIT, 2, False),
    ("finished, intent without id", rec(external_id=None), None, {"finished": True}, Action.SUBMIT, 2, False),
    (
        "finished, intent without id, find_job",
        rec(external_id=None),
        None,
        {"finished": True, "can_find": True},
        Action.SUBMIT,
        2,
        False,
    ),
    (
        "finished, spec changed, active",
        rec(fingerprint=OLD_FP),
        A,
        {"finished": True},
        Action.SUBMIT,
        2,
        False,
    ),
    (
        "finished, legacy bare id",
        rec(legacy=True, generation=None, fingerprint=None, seq=0),
        S,
        {"finished": True},
        Action.SUBMIT,
        1,
        False,
    ),
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
        # A new submission always gets the token minted for it on this try, never an old one.
        assert decision.token == FRESH
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


def test_cleared_after_success_reason_names_the_job_and_try():
    reason = run(rec(), S, finished=True).reason
    assert "cleared by hand after it succeeded" in reason
    assert "job-1" in reason


def test_tokens_are_bounded_well_formed_and_never_repeat():
    tokens = {new_idempotency_token() for _ in range(1000)}
    assert len(tokens) == 1000
    for token in list(tokens)[:50]:
        assert len(token) <= 64
        # The EMR step marker and the stored-record validation both expect this shape.
        assert re.fullmatch(r"rsm-[0-9a-f]{48}", token)
        JobRecord(seq=1, token=token)


def test_fingerprint_ignores_key_order_but_not_values():
    assert fingerprint_of({"a": 1, "b": [1, 2]}) == fingerprint_of({"b": [1, 2], "a": 1})
    assert fingerprint_of({"a": 1}) != fingerprint_of({"a": 2})


# (case, record, live state, kwargs) -> kind: what metrics and alerts call the decision.
KINDS = [
    ("no record", None, None, {}, DecisionKind.SUBMIT),
    ("intent, no find_job", rec(external_id=None), None, {}, DecisionKind.RESUBMIT_SAME_TOKEN),
    ("intent, find_job not yet called", rec(external_id=None), None, {"can_find": True}, DecisionKind.FIND),
    (
        "intent, find_job found nothing",
        rec(external_id=None),
        None,
        {"can_find": True, "looked_up": True},
        DecisionKind.RESUBMIT_SAME_TOKEN,
    ),
    ("active", rec(), A, {}, DecisionKind.REATTACH),
    ("succeeded", rec(), S, {}, DecisionKind.ALREADY_SUCCEEDED),
    ("failed", rec(), F, {}, DecisionKind.FAILED_RESUBMIT),
    ("not found", rec(), N, {}, DecisionKind.NOT_FOUND_SUBMIT),
    ("cleared by hand after success (marker)", rec(), S, {"finished": True}, DecisionKind.CLEARED_FRESH),
    ("cleared by hand after success (max_tries)", rec(generation=OLD_GEN), S, {}, DecisionKind.CLEARED_FRESH),
    ("cleared by hand, job active: adopted", rec(generation=OLD_GEN), A, {}, DecisionKind.REATTACH),
    ("spec changed, job ended", rec(fingerprint=OLD_FP), F, {}, DecisionKind.SPEC_CHANGED_SUBMIT),
    (
        "spec changed, policy resubmit",
        rec(fingerprint=OLD_FP),
        A,
        {"policy": "resubmit"},
        DecisionKind.SPEC_CHANGED_SUBMIT,
    ),
    (
        "spec changed, cancel_and_resubmit",
        rec(fingerprint=OLD_FP),
        A,
        {"policy": "cancel_and_resubmit", "can_cancel": True},
        DecisionKind.CANCEL_AND_SUBMIT,
    ),
    ("spec changed, policy fail", rec(fingerprint=OLD_FP), A, {}, DecisionKind.CONFLICT),
]


@pytest.mark.parametrize(("case", "record", "state", "kwargs", "kind"), KINDS, ids=[k[0] for k in KINDS])
def test_kind_names_why(case, record, state, kwargs, kind):
    assert run(record, state, **kwargs).kind is kind
