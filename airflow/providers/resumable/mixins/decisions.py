"""
The pure core of ``ResumableJobMixin``: what to do on a try, given what is stored and what is live.

Nothing here does I/O. The mixin reads the record and asks the external system for a status, then
calls :func:`decide`; the table of every case lives in ``tests/unit/mixins/test_decisions.py``.
"""

from __future__ import annotations

import enum
import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.providers.resumable.state.codec import JobRecord

TOKEN_PREFIX = "rsm"


class JobState(enum.Enum):
    """What a status from the external system means for the decision."""

    ACTIVE = "active"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    NOT_FOUND = "not_found"


class SpecChangePolicy(enum.StrEnum):
    """
    What to do when the stored job is still running but was built from a different spec.

    ``FAIL`` (default): stop and say so; two copies of a job, or a silently cancelled one, are both
    worse than asking a person. ``CANCEL_AND_RESUBMIT``: cancel the old job (needs ``cancel_job``),
    then submit the new spec. ``RESUBMIT``: submit the new spec and leave the old job running.
    A changed spec whose old job is no longer running is always resubmitted.
    """

    FAIL = "fail"
    CANCEL_AND_RESUBMIT = "cancel_and_resubmit"
    RESUBMIT = "resubmit"

    @classmethod
    def parse(cls, value: str | SpecChangePolicy) -> SpecChangePolicy:
        try:
            return cls(value)
        except ValueError:
            allowed = ", ".join(repr(p.value) for p in cls)
            raise ValueError(f"spec_change_policy must be one of {allowed}, got {value!r}") from None


class JobFailurePolicy(enum.StrEnum):
    """
    ``on_job_failure``: what a retry does with a stored job that ended without success.

    ``RESUME`` (default): restart only the failed parts of the job (``resume_failed_job``), up to
    ``max_job_resumes`` times per life of the task instance; an operator without the hook resubmits.
    ``RESUBMIT``: submit the job afresh (new seq, new token), as 0.1 did. ``FAIL``: fail the task without
    using its retries, so a person looks at the job first; a person's clear then submits afresh.
    """

    RESUME = "resume"
    RESUBMIT = "resubmit"
    FAIL = "fail"

    @classmethod
    def parse(cls, value: str | JobFailurePolicy, argument: str = "on_job_failure") -> JobFailurePolicy:
        return _parse_policy(cls, value, argument)


class AfterResumesPolicy(enum.StrEnum):
    """``on_job_failure_after_resumes``: what a failure does once ``max_job_resumes`` resumes were spent."""

    RESUBMIT = "resubmit"
    FAIL = "fail"

    @classmethod
    def parse(
        cls, value: str | AfterResumesPolicy, argument: str = "on_job_failure_after_resumes"
    ) -> AfterResumesPolicy:
        return _parse_policy(cls, value, argument)


def _parse_policy(cls: Any, value: Any, argument: str) -> Any:
    try:
        return cls(value)
    except ValueError:
        allowed = ", ".join(repr(p.value) for p in cls)
        raise ValueError(f"{argument} must be one of {allowed}, got {value!r}") from None


@dataclass(frozen=True)
class ResumeSettings:
    """What the operator configured for a failed job; the mixin validates it when the DAG is parsed."""

    on_job_failure: JobFailurePolicy = JobFailurePolicy.RESUME
    max_job_resumes: int = 3
    after_resumes: AfterResumesPolicy = AfterResumesPolicy.RESUBMIT


#: The defaults of ``on_job_failure``, ``max_job_resumes`` and ``on_job_failure_after_resumes``.
DEFAULT_RESUME_SETTINGS = ResumeSettings()


class Action(enum.Enum):
    """What the mixin does next, given the stored record and the live status."""

    SUBMIT = "submit"
    """Write a new intent (``seq``, ``token``), then submit."""
    RESUBMIT_SAME_TOKEN = "resubmit_same_token"
    """An earlier try may have submitted: submit again with the stored token, no new intent."""
    FIND = "find"
    """An earlier try may have submitted: look the job up by its token first."""
    REATTACH = "reattach"
    """The stored job is running: poll it, submit nothing."""
    RETURN_RESULT = "return_result"
    """The stored job succeeded in this generation: return its result, submit nothing."""
    CANCEL_AND_SUBMIT = "cancel_and_submit"
    """Cancel the stored (outdated) job, then write a new intent and submit."""
    FAIL = "fail"
    """Refuse to act; ``reason`` says what a person must do."""
    RESUME = "resume"
    """Write a resume intent (its own token) on the stored record, then ``resume_failed_job``."""
    RESUME_SAME_TOKEN = "resume_same_token"
    """An earlier try may have resumed: resume again with the stored resume token, no new intent."""
    FIND_RESUME = "find_resume"
    """An earlier try may have resumed: look the resume up (``find_resumed_job``) first."""


class DecisionKind(enum.Enum):
    """
    Why the action was chosen: the name of the decision in metrics, spans and alerts.

    ``Action`` says what the shell does; several causes share one action (a first submission, a
    submission after a person's clear and one after a failed job are all ``SUBMIT``), and a
    dashboard must tell them apart without parsing ``reason``.
    """

    SUBMIT = "submit"
    """No job recorded for this task instance: the first submission."""
    RESUBMIT_SAME_TOKEN = "resubmit_same_token"
    """An earlier try may have submitted: submit again with its token (found nothing by it, or cannot look)."""
    FIND = "find"
    """Look the job up by its token first; the shell then reports ``found_by_token`` or decides again."""
    FOUND_BY_TOKEN = "found_by_token"
    """Reported by the shell: ``find_job`` found the job an earlier try submitted (then reattach or return)."""
    REATTACH = "reattach"
    """The stored job is running: poll it."""
    ALREADY_SUCCEEDED = "already_succeeded"
    """The stored job succeeded in this life of the task instance: return its result."""
    CLEARED_FRESH = "cleared_fresh"
    """A person cleared the task after it succeeded: a fresh submission."""
    FAILED_RESUBMIT = "failed_resubmit"
    """The stored job ended without success: a fresh submission."""
    NOT_FOUND_SUBMIT = "not_found_submit"
    """The external system no longer knows the stored job: a fresh submission."""
    SPEC_CHANGED_SUBMIT = "spec_changed_submit"
    """The job spec changed since the stored job was submitted: a fresh submission."""
    CANCEL_AND_SUBMIT = "cancel_and_submit"
    """The spec changed while the job runs: cancel it, then submit (``cancel_and_resubmit``)."""
    CONFLICT = "conflict"
    """The spec changed while the job runs and the policy says stop: a person decides."""
    FAILED_RESUME = "failed_resume"
    """The stored job ended without success: restart its failed parts (``resume_failed_job``)."""
    RESUME_SAME_TOKEN = "resume_same_token"
    """An earlier try may have resumed the job: resume again with its resume token."""
    FIND_RESUME = "find_resume"
    """Look up the resume an earlier try may have started; the shell then reports ``found_resume`` or decides again."""
    FOUND_RESUME = "found_resume"
    """Reported by the shell: ``find_resumed_job`` found the resume an earlier try started."""
    RESUME_DECLINED = "resume_declined"
    """Reported by the shell: ``resume_failed_job`` returned None (this job cannot be resumed): a fresh submission."""
    FAILED_STOP = "failed_stop"
    """The stored job ended without success and the policy says stop: the task fails without retries."""
    NOT_DURABLE = "not_durable"
    """Reported by the shell: no durable store (``durable=False``, or no task instance); every try submits."""


@dataclass(frozen=True)
class Decision:
    """The outcome of :func:`decide`: an action and why, for the log and for errors."""

    action: Action
    reason: str
    kind: DecisionKind
    seq: int | None = None
    token: str | None = None
    external_id: Any = None
    #: The record came from an earlier generation but the job is adopted into this one (reattach).
    adopt: bool = False
    #: Resumes spent in this life of the task instance, to write with the next intent.
    resumes: int = 0


def new_idempotency_token() -> str:
    """
    A token for one new submission: ``rsm-`` and 48 random hex characters.

    52 characters of ``[A-Za-z0-9_-]``, within Databricks' ``idempotency_token`` and AWS ``clientToken``
    limits (64). It is stored in the intent before ``submit_job`` runs, so every retry of the same
    submission reads it back; it is random, not derived from the run_id, so a DAG run deleted and
    created again under the same run_id, or a person's clear, can never be handed an old job by an
    idempotent service.
    """
    return f"{TOKEN_PREFIX}-{secrets.token_hex(24)}"


def fingerprint_of(spec: Any) -> str:
    """A stable hash of a JSON-able job spec, insensitive to dict key order."""
    canonical = json.dumps(spec, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def _spec_changed(record: JobRecord, fingerprint: str | None) -> bool:
    return record.fingerprint is not None and fingerprint is not None and record.fingerprint != fingerprint


def _fresh(token: str, seq: int, reason: str, kind: DecisionKind, resumes: int = 0) -> Decision:
    return Decision(Action.SUBMIT, reason, kind, seq=seq, token=token, external_id=None, resumes=resumes)


def _pending_resume(record: JobRecord, action: Action, kind: DecisionKind, reason: str) -> Decision:
    """Resolve the resume intent ``record`` holds: with its token, on the job it resumed, not counted again."""
    return Decision(
        action,
        reason,
        kind,
        seq=record.seq,
        token=record.resume_token,
        external_id=record.resume_of if record.resume_of is not None else record.external_id,
        resumes=record.resumes,
    )


def _on_failure(
    record: JobRecord,
    *,
    same_generation: bool,
    settings: ResumeSettings,
    can_resume: bool,
    fresh_token: str,
) -> Decision:
    """A stored job that ended without success, its spec unchanged and no resume of it pending."""
    job, next_seq = record.external_id, record.seq + 1
    # Resumes count per life: a person's clear (a new generation) starts again at 0.
    spent = record.resumes if same_generation else 0
    policy = settings.on_job_failure
    if policy is JobFailurePolicy.RESUME and not can_resume:
        policy = JobFailurePolicy.RESUBMIT
    if policy is JobFailurePolicy.FAIL and not same_generation:
        # 'fail' hands the failure to a person; a person's clear is their answer: submit afresh.
        policy = JobFailurePolicy.RESUBMIT
    if policy is JobFailurePolicy.FAIL:
        return Decision(
            Action.FAIL,
            f"job {job!r} ended without success and on_job_failure='fail'. Look at the job in the external "
            "system and fix the cause, then clear the task (a clear submits the job afresh); or set "
            "on_job_failure to 'resume' or 'resubmit' to let retries handle it.",
            DecisionKind.FAILED_STOP,
            external_id=job,
            resumes=spent,
        )
    if policy is JobFailurePolicy.RESUME:
        if spent < settings.max_job_resumes:
            return Decision(
                Action.RESUME,
                f"job {job!r} ended without success; restarting its failed parts "
                f"(resume {spent + 1} of at most {settings.max_job_resumes} in this life)",
                DecisionKind.FAILED_RESUME,
                seq=record.seq,
                token=fresh_token,
                external_id=job,
                resumes=spent + 1,
            )
        if settings.after_resumes is AfterResumesPolicy.FAIL:
            return Decision(
                Action.FAIL,
                f"job {job!r} ended without success after {spent} resumes in this life of the task "
                f"(max_job_resumes={settings.max_job_resumes}) and on_job_failure_after_resumes='fail'. Look at "
                "the job in the external system and fix the cause, then clear the task (a clear starts again "
                "with 0 resumes); or raise max_job_resumes, or set on_job_failure_after_resumes='resubmit'.",
                DecisionKind.FAILED_STOP,
                external_id=job,
                resumes=spent,
            )
        return _fresh(
            fresh_token,
            next_seq,
            f"job {job!r} ended without success and its {spent} resumes in this life are spent "
            f"(max_job_resumes={settings.max_job_resumes}); submitting afresh",
            DecisionKind.FAILED_RESUBMIT,
            resumes=spent,
        )
    return _fresh(
        fresh_token, next_seq, f"job {job!r} ended without success", DecisionKind.FAILED_RESUBMIT, resumes=spent
    )


def decide(
    record: JobRecord | None,
    *,
    finished: bool,
    generation: int | None,
    fingerprint: str | None,
    job_state: JobState | None,
    can_find: bool,
    looked_up: bool,
    can_cancel: bool,
    fresh_token: str,
    spec_change_policy: SpecChangePolicy = SpecChangePolicy.FAIL,
    resume: ResumeSettings = DEFAULT_RESUME_SETTINGS,
    can_resume: bool = False,
    can_find_resume: bool = False,
    looked_up_resume: bool = False,
) -> Decision:
    """
    Decide what this try does.

    :param record: the stored write-ahead record, or None.
    :param finished: Airflow recorded the success of the life that wrote ``record`` (the finished
        marker is at or after the record's try), so only a person's clear can have started this try.
    :param generation: ``ti.max_tries`` now; a clear moves it (the fallback when no marker could be
        written), a retry never does.
    :param fingerprint: ``job_fingerprint(context)`` now, or None when the operator has none.
    :param job_state: the live state of ``record.external_id``; None when there is no id to ask about.
    :param can_find: the operator implements ``find_job``.
    :param looked_up: ``find_job`` was already called on this try and found nothing.
    :param can_cancel: the operator implements ``cancel_job``.
    :param fresh_token: the token to use if this try starts a new submission or a new resume.
    :param resume: ``on_job_failure``, ``max_job_resumes`` and ``on_job_failure_after_resumes``.
    :param can_resume: the operator implements ``resume_failed_job``.
    :param can_find_resume: the operator implements ``find_resumed_job``.
    :param looked_up_resume: ``find_resumed_job`` was already called on this try and found nothing.
    """
    if record is None:
        return _fresh(fresh_token, 1, "no job recorded for this task instance", DecisionKind.SUBMIT)

    next_seq = record.seq + 1
    job = record.external_id
    if finished:
        return _fresh(
            fresh_token,
            next_seq,
            f"the task was cleared by hand after it succeeded with job {job!r} (try {record.try_number})"
            if record.has_external_id
            else "the task was cleared by hand after it succeeded",
            DecisionKind.CLEARED_FRESH,
        )
    if not record.has_external_id:
        # A try died, or lost the response, inside submit_job. Resolve that first, whatever the
        # generation: a job may exist, and a fresh token would start a second one beside it.
        if can_find and not looked_up:
            return Decision(
                Action.FIND, "an earlier try may have submitted", DecisionKind.FIND, seq=record.seq, token=record.token
            )
        return Decision(
            Action.RESUBMIT_SAME_TOKEN,
            "an earlier try may have submitted; the same idempotency token returns that job",
            DecisionKind.RESUBMIT_SAME_TOKEN,
            seq=record.seq,
            token=record.token,
        )

    same_generation = record.generation is None or generation is None or record.generation == generation
    state = job_state or JobState.NOT_FOUND
    spent = record.resumes if same_generation else 0

    if _spec_changed(record, fingerprint):
        if state is not JobState.ACTIVE:
            return _fresh(
                fresh_token,
                next_seq,
                f"the job spec changed since job {job!r} was submitted; never resuming a job built from an older spec",
                DecisionKind.SPEC_CHANGED_SUBMIT,
                resumes=spent,
            )
        if spec_change_policy is SpecChangePolicy.RESUBMIT:
            return _fresh(
                fresh_token,
                next_seq,
                f"the job spec changed; leaving job {job!r} running as configured",
                DecisionKind.SPEC_CHANGED_SUBMIT,
                resumes=spent,
            )
        if spec_change_policy is SpecChangePolicy.CANCEL_AND_RESUBMIT and can_cancel:
            return Decision(
                Action.CANCEL_AND_SUBMIT,
                f"the job spec changed; cancelling job {job!r} built from the old spec",
                DecisionKind.CANCEL_AND_SUBMIT,
                seq=next_seq,
                token=fresh_token,
                external_id=job,
                resumes=spent,
            )
        why = (
            "spec_change_policy='fail'"
            if spec_change_policy is SpecChangePolicy.FAIL
            else "the operator has no cancel_job"
        )
        return Decision(
            Action.FAIL,
            f"job {job!r} is still running but was submitted from a different spec "
            f"(fingerprint {record.fingerprint} != {fingerprint}) and {why}. Cancel it or let it finish, "
            "then clear the task; or set spec_change_policy to 'cancel_and_resubmit' or 'resubmit'.",
            DecisionKind.CONFLICT,
            external_id=job,
        )

    if state is JobState.ACTIVE:
        return Decision(
            Action.REATTACH,
            "the job is still running",
            DecisionKind.REATTACH,
            external_id=job,
            adopt=not same_generation,
        )
    if state is JobState.SUCCEEDED:
        if same_generation:
            return Decision(
                Action.RETURN_RESULT, "the job already succeeded", DecisionKind.ALREADY_SUCCEEDED, external_id=job
            )
        return _fresh(
            fresh_token,
            next_seq,
            f"the task was cleared by hand after job {job!r} succeeded (max_tries {record.generation} -> {generation})",
            DecisionKind.CLEARED_FRESH,
        )
    if state is JobState.FAILED:
        if record.resume_pending:
            # A try died, or lost the response, inside resume_failed_job: the resume may have started
            # (and failed again). Find it before resuming again, as a lost submit is found by its token.
            if can_find_resume and not looked_up_resume:
                return _pending_resume(
                    record, Action.FIND_RESUME, DecisionKind.FIND_RESUME, "an earlier try may have resumed the job"
                )
            return _pending_resume(
                record,
                Action.RESUME_SAME_TOKEN,
                DecisionKind.RESUME_SAME_TOKEN,
                "an earlier try may have resumed the job; resuming again with the same resume token",
            )
        return _on_failure(
            record, same_generation=same_generation, settings=resume, can_resume=can_resume, fresh_token=fresh_token
        )
    return _fresh(
        fresh_token,
        next_seq,
        f"job {job!r} is not known to the external system any more",
        DecisionKind.NOT_FOUND_SUBMIT,
        resumes=spent,
    )
