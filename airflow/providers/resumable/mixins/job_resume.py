"""
The resume steps of one try's job run: restart a failed job's failed parts, write-ahead.

Split from ``job_runner.py`` (the loop) for size; :class:`ResumeSteps` is a base of ``JobRun`` and
uses its record, store and calls. A resume is covered as a submission is: an intent (its own token)
is written before ``resume_failed_job`` runs and cleared once it returned the id to poll, so a try
that dies in between is followed by ``find_resumed_job``, or by the same resume with the same token.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.resumable.mixins.decisions import Action, Decision, DecisionKind
from airflow.providers.resumable.observability import emit_decision
from airflow.providers.resumable.state.codec import JobRecord, utcnow_iso

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow.providers.resumable.mixins.job_runner import JobCalls
    from airflow.providers.resumable.state.base import JsonValue
    from airflow.providers.resumable.state.task_try import TaskTry


#: What ``ResumeSteps._resume`` returns when ``resume_failed_job`` declined (a result may be None).
DECLINED = object()


class ResumeSteps:
    """What ``JobRun`` does for ``Action.RESUME``, ``RESUME_SAME_TOKEN`` and ``FIND_RESUME``."""

    if TYPE_CHECKING:
        calls: JobCalls
        task_try: TaskTry
        key: str
        log: Any
        record: JobRecord | None
        last_status: Any

        def _save(self, record: JobRecord) -> None: ...
        def _poll(self, external_id: JsonValue) -> None: ...
        def retrying(self, func: Callable[..., Any], *args: Any) -> Any: ...
        def _decided(self, record: JobRecord, kind: DecisionKind, external_id: JsonValue) -> JobRecord: ...
        def _linked(self, before: JobRecord, after: JobRecord) -> JobRecord: ...

    def note_resume(self, detail: JsonValue) -> None:
        """
        Keep ``detail`` in the pending-resume intent, before the hook asks the external system to resume.

        Called by ``resume_failed_job`` (through the mixin's ``note_resume``): what it notes here is what
        ``find_resumed_job`` reads back on a later try to tell its own resume from none.
        """
        record = self.record
        if record is None or not record.resume_pending:
            raise RuntimeError("note_resume() is for resume_failed_job, while the shell holds a resume intent")
        self.record = record.model_copy(update={"resume_detail": detail})
        self._save(self.record)

    def _find_resume(self, decision: Decision, record: JobRecord) -> JobRecord | None:
        """Look up the resume an earlier try may have started; the confirmed record when it is found."""
        assert self.calls.find_resume is not None
        assert record.resume_token is not None
        self.calls.use_token(record.resume_token, True)
        self.calls.use_resume_detail(record.resume_detail)
        found = self.retrying(self.calls.find_resume, decision.external_id, record.resume_token)
        if found is None:
            self.log.info(
                "No resume of job %s found for resume token %s; resuming again with it",
                decision.external_id,
                record.resume_token,
            )
            return None
        confirmed = self._confirm_resume(record, found, DecisionKind.FOUND_RESUME)
        self.log.info(
            "Found the resume of job %s started with resume token %s by an earlier try: polling %s",
            decision.external_id,
            record.resume_token,
            found,
        )
        emit_decision(
            DecisionKind.FOUND_RESUME.value,
            self.task_try.tags,
            external_id_key=self.key,
            external_id=found,
            seq=record.seq,
        )
        return confirmed

    @staticmethod
    def _resume_confirmed(external_id: JsonValue) -> dict[str, Any]:
        """What confirming a pending resume changes in the record: the id to poll, no intent."""
        return {
            "external_id": external_id,
            "resume_token": None,
            "resume_of": None,
            "resume_detail": None,
            "resumed_at": utcnow_iso(),
        }

    def _confirm_resume(
        self, record: JobRecord, external_id: JsonValue, found: DecisionKind | None = None
    ) -> JobRecord:
        """The resume returned ``external_id``: the pending intent becomes the job to poll."""
        confirmed = self._linked(record, record.model_copy(update=self._resume_confirmed(external_id)))
        # A resume found by its token is a decision of this try (the history shows it), written here.
        self.record = self._decided(confirmed, found, external_id) if found is not None else confirmed
        self._save(self.record)
        return self.record

    def _resume(self, decision: Decision, record: JobRecord) -> Any:
        """
        Write the resume intent, call ``resume_failed_job``, record the id it returns and poll it.

        Returns :data:`DECLINED` when the hook returned None (it cannot resume this job); the caller
        then submits afresh.
        """
        assert self.calls.resume is not None
        info = self.task_try.info
        if decision.action is Action.RESUME:
            intent = record.model_copy(
                update={
                    "resumes": decision.resumes,
                    "resume_token": decision.token,
                    "resume_of": decision.external_id,
                    "resume_detail": None,
                    "resume_intent_at": utcnow_iso(),
                    # A resume after a person's clear adopts the job into this life (its count restarts).
                    "generation": info.max_tries,
                    "try_number": info.try_number,
                }
            )
        else:
            intent = record.model_copy(update={"try_number": info.try_number})
        intent = self._decided(intent, decision.kind, decision.external_id)
        # The write-ahead step of a resume: from here on, a crash leaves a resume token to find it by.
        self._save(intent)
        self.record = intent
        self.calls.use_token(intent.resume_token, decision.action is Action.RESUME_SAME_TOKEN)
        self.calls.use_resume_detail(intent.resume_detail)
        external_id = self.calls.resume(decision.external_id, self.last_status)
        if external_id is None:
            return DECLINED
        self._confirm_resume(self.record, external_id)
        self.log.info(
            "Resumed job %s: polling %s (resume token %s)", decision.external_id, external_id, intent.resume_token
        )
        self._poll(external_id)
        return self.calls.result(external_id)
