from __future__ import annotations

import re

import pytest

from airflow.providers.resumable.mixins.decisions import (
    Action,
    AfterResumesPolicy,
    DecisionKind,
    JobFailurePolicy,
    JobState,
    ResumeSettings,
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


# ---- failed jobs: resume, resubmit or fail (issue 23) -----------------------------------------------


def resumed(*, resumes=0, pending=False, generation=GEN, fingerprint=FP, seq=1):
    """A record of job-1 with ``resumes`` spent; ``pending``: a resume intent without confirmation."""
    record = rec(generation=generation, fingerprint=fingerprint, seq=seq)
    update = {"resumes": resumes}
    if pending:
        update |= {"resume_token": "rsm-resume", "resume_of": "job-1", "resume_detail": {"latest_repair_id": 7}}
    return record.model_copy(update=update)


def on_failure(
    record,
    state=F,
    *,
    policy="resume",
    cap=3,
    after="resubmit",
    can_resume=True,
    can_find_resume=False,
    looked_up_resume=False,
    fp=FP,
    finished=False,
    generation=GEN,
):
    return decide(
        record,
        finished=finished,
        generation=generation,
        fingerprint=fp,
        job_state=state,
        can_find=False,
        looked_up=False,
        can_cancel=False,
        fresh_token=FRESH,
        resume=ResumeSettings(JobFailurePolicy.parse(policy), cap, AfterResumesPolicy.parse(after)),
        can_resume=can_resume,
        can_find_resume=can_find_resume,
        looked_up_resume=looked_up_resume,
    )


# (case, record, live state, kwargs) -> (action, kind, resumes written with the next record)
FAILURE_TABLE = [
    ("failed, resumable, none spent", resumed(), F, {}, Action.RESUME, DecisionKind.FAILED_RESUME, 1),
    ("failed, resumable, under the cap", resumed(resumes=2), F, {}, Action.RESUME, DecisionKind.FAILED_RESUME, 3),
    ("failed, cap reached: resubmit", resumed(resumes=3), F, {}, Action.SUBMIT, DecisionKind.FAILED_RESUBMIT, 3),
    (
        "failed, cap reached: fail",
        resumed(resumes=3),
        F,
        {"after": "fail"},
        Action.FAIL,
        DecisionKind.FAILED_STOP,
        3,
    ),
    ("failed, cap 0", resumed(), F, {"cap": 0}, Action.SUBMIT, DecisionKind.FAILED_RESUBMIT, 0),
    (
        "failed, default policy, no resume_failed_job: as 0.1",
        resumed(),
        F,
        {"can_resume": False},
        Action.SUBMIT,
        DecisionKind.FAILED_RESUBMIT,
        0,
    ),
    ("failed, policy resubmit", resumed(), F, {"policy": "resubmit"}, Action.SUBMIT, DecisionKind.FAILED_RESUBMIT, 0),
    ("failed, policy fail", resumed(), F, {"policy": "fail"}, Action.FAIL, DecisionKind.FAILED_STOP, 0),
    (
        "failed, policy fail, cleared by a person: submit afresh",
        resumed(generation=OLD_GEN),
        F,
        {"policy": "fail"},
        Action.SUBMIT,
        DecisionKind.FAILED_RESUBMIT,
        0,
    ),
    (
        "failed, cap reached in an earlier life: a clear starts at 0",
        resumed(resumes=3, generation=OLD_GEN),
        F,
        {},
        Action.RESUME,
        DecisionKind.FAILED_RESUME,
        1,
    ),
    (
        "failed, spec changed: never resume an older spec",
        resumed(fingerprint=OLD_FP),
        F,
        {},
        Action.SUBMIT,
        DecisionKind.SPEC_CHANGED_SUBMIT,
        0,
    ),
    (
        "failed, spec changed, resumes carried in the life",
        resumed(resumes=2, fingerprint=OLD_FP),
        F,
        {},
        Action.SUBMIT,
        DecisionKind.SPEC_CHANGED_SUBMIT,
        2,
    ),
    (
        "failed after a person's clear after success: fresh, count 0",
        resumed(resumes=2),
        F,
        {"finished": True},
        Action.SUBMIT,
        DecisionKind.CLEARED_FRESH,
        0,
    ),
    (
        "gone: fresh submission keeps the count",
        resumed(resumes=2),
        N,
        {},
        Action.SUBMIT,
        DecisionKind.NOT_FOUND_SUBMIT,
        2,
    ),
    # A resume intent without confirmation: a try died, or lost the response, inside resume_failed_job.
    (
        "resume pending, job failed, find_resumed_job",
        resumed(resumes=1, pending=True),
        F,
        {"can_find_resume": True},
        Action.FIND_RESUME,
        DecisionKind.FIND_RESUME,
        1,
    ),
    (
        "resume pending, find_resumed_job found nothing: same token",
        resumed(resumes=1, pending=True),
        F,
        {"can_find_resume": True, "looked_up_resume": True},
        Action.RESUME_SAME_TOKEN,
        DecisionKind.RESUME_SAME_TOKEN,
        1,
    ),
    (
        "resume pending, no find_resumed_job: same token",
        resumed(resumes=1, pending=True),
        F,
        {},
        Action.RESUME_SAME_TOKEN,
        DecisionKind.RESUME_SAME_TOKEN,
        1,
    ),
    (
        "resume pending at the cap is still resolved, not counted again",
        resumed(resumes=3, pending=True),
        F,
        {},
        Action.RESUME_SAME_TOKEN,
        DecisionKind.RESUME_SAME_TOKEN,
        3,
    ),
    (
        "resume pending, job running again: the resume started, reattach",
        resumed(resumes=1, pending=True),
        A,
        {"can_find_resume": True},
        Action.REATTACH,
        DecisionKind.REATTACH,
        0,
    ),
    (
        "resume pending, job succeeded: return it",
        resumed(resumes=1, pending=True),
        S,
        {"can_find_resume": True},
        Action.RETURN_RESULT,
        DecisionKind.ALREADY_SUCCEEDED,
        0,
    ),
    (
        "resume pending, spec changed: resubmit, never resume",
        resumed(resumes=1, pending=True, fingerprint=OLD_FP),
        F,
        {"can_find_resume": True},
        Action.SUBMIT,
        DecisionKind.SPEC_CHANGED_SUBMIT,
        1,
    ),
]


@pytest.mark.parametrize(
    ("record", "state", "kwargs", "action", "kind", "resumes"),
    [row[1:] for row in FAILURE_TABLE],
    ids=[row[0] for row in FAILURE_TABLE],
)
def test_failure_table(record, state, kwargs, action, kind, resumes):
    decision = on_failure(record, state, **kwargs)
    assert (decision.action, decision.kind) == (action, kind), decision.reason
    assert decision.resumes == resumes
    if action is Action.RESUME:
        # A new resume gets a token of its own, and keeps the submission it resumes.
        assert decision.token == FRESH
        assert decision.seq == record.seq
        assert decision.external_id == record.external_id
    if action in (Action.FIND_RESUME, Action.RESUME_SAME_TOKEN):
        assert decision.token == record.resume_token
        assert decision.external_id == record.resume_of
    if action is Action.SUBMIT:
        assert decision.token == FRESH
        assert decision.seq == record.seq + 1


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"policy": "fail"}, ["job-1", "on_job_failure='fail'", "clear the task"]),
        (
            {"after": "fail", "record": resumed(resumes=3)},
            ["job-1", "3 resumes", "max_job_resumes=3", "on_job_failure_after_resumes='fail'", "clear the task"],
        ),
    ],
)
def test_a_failure_that_stops_says_what_a_person_can_do(kwargs, words):
    record = kwargs.pop("record", resumed())
    reason = on_failure(record, **kwargs).reason
    for word in words:
        assert word in reason


@pytest.mark.parametrize(
    ("parse", "argument"),
    [(JobFailurePolicy.parse, "on_job_failure"), (AfterResumesPolicy.parse, "on_job_failure_after_resumes")],
)
@pytest.mark.parametrize("bad", ["", "RESUME", "repair", None])
def test_failure_policies_reject_unknown_values_naming_the_argument(parse, argument, bad):
    with pytest.raises(ValueError, match=rf"{argument} must be one of .*'resubmit'.* got {re.escape(repr(bad))}"):
        parse(bad)
