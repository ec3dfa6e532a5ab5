"""
What each try decided about its job, told to a person and kept for a UI: the log line, the record's history and link.

Split from ``job_runner.py`` for size; :class:`HistorySteps` is a base of ``JobRun``. Every entry rides
on a write the runner makes anyway (the intent, the id, the resume intent, the found job), except
for a reattach, a returned result and a refusal, which write the record once for it: the try that
only polls a job would otherwise leave no trace of itself in the record. A resend with the stored
token writes its intent for the same reason (the token was stored already).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.resumable.mixins.decisions import Action, Decision, DecisionKind
from airflow.providers.resumable.state.codec import JOB_HISTORY_LIMIT, JobDecisionEntry, JobRecord, utcnow_iso

if TYPE_CHECKING:
    from airflow.providers.resumable.mixins.job_runner import JobCalls
    from airflow.providers.resumable.state.base import JsonValue
    from airflow.providers.resumable.state.task_try import TaskTry


def with_decision(record: JobRecord, try_number: int | None, kind: DecisionKind, external_id: JsonValue) -> JobRecord:
    """``record`` with one more entry, the oldest dropped beyond ``JOB_HISTORY_LIMIT``."""
    entry = JobDecisionEntry(try_number=try_number, decision=kind.value, at=utcnow_iso(), external_id=external_id)
    return record.model_copy(update={"history": [*record.history, entry][-JOB_HISTORY_LIMIT:]})


def with_submitted(record: JobRecord, try_number: int | None, external_id: JsonValue) -> JobRecord:
    """
    ``record`` whose entry for this try's submission names the job it submitted.

    The intent carries the entry before ``submit_job`` runs, when the id is not known yet; the write
    of the id completes it, so the UI can tell which try submitted which job.
    """
    history = list(record.history)
    if history and history[-1].try_number == try_number and history[-1].external_id is None:
        history[-1] = history[-1].model_copy(update={"external_id": external_id})
    return record.model_copy(update={"history": history})


class HistorySteps:
    """The entries and the link ``JobRun`` writes with its record."""

    if TYPE_CHECKING:
        calls: JobCalls
        task_try: TaskTry
        log: Any
        record: JobRecord | None

        def _save(self, record: JobRecord) -> None: ...

    def _log_decision(
        self, decision: Decision, record: JobRecord | None, raw_status: Any, found_by_token: str | None = None
    ) -> None:
        """
        The try's one decision line (docs/monitoring.rst): a person reading the log sees one recovery.

        A job found by its token and then reattached to, or returned, is one recovery: one line.
        """
        if found_by_token is not None:
            if decision.action is Action.REATTACH:
                self.log.info("%s; reattaching to it (%s)", found_by_token, raw_status)
                return
            if decision.action is Action.RETURN_RESULT:
                self.log.info("%s; it ended %s: returning its result", found_by_token, raw_status)
                return
            # It is found and then left (it failed, or a spec changed): what comes next is a decision of its own.
            self.log.info(found_by_token)
        origin = ""
        if record is not None:
            origin = (
                f", submitted at try {record.try_number} with token {record.token}"
                if not record.legacy
                else ", recorded by airflow.sdk.ResumableJobMixin"
            )
        job = record.external_id if record is not None else None
        action = decision.action
        if action is Action.REATTACH:
            self.log.info("Reattaching to job %s (%s)%s", job, raw_status, origin)
        elif action is Action.RETURN_RESULT:
            self.log.info("Job %s already succeeded (%s)%s; returning its result", job, raw_status, origin)
        elif action is Action.RESUBMIT_SAME_TOKEN:
            self.log.warning(
                "Submitting again with token %s (submission %s): %s", decision.token, decision.seq, decision.reason
            )
        elif action in (Action.SUBMIT, Action.CANCEL_AND_SUBMIT):
            self.log.info("Submitting job (submission %s, token %s): %s", decision.seq, decision.token, decision.reason)
        elif action is Action.RESUME:
            self.log.info("Resuming job %s (%s), resume token %s: %s", job, raw_status, decision.token, decision.reason)
        elif action is Action.RESUME_SAME_TOKEN:
            self.log.warning(
                "Resuming job %s again with resume token %s (%s): %s", job, decision.token, raw_status, decision.reason
            )
        elif action is Action.FAIL:
            self.log.error("Not submitting: %s", decision.reason)

    def _decided(self, record: JobRecord, kind: DecisionKind, external_id: JsonValue) -> JobRecord:
        """``record`` with this try's ``kind`` decision about ``external_id`` appended (not written)."""
        return with_decision(record, self.task_try.info.try_number, kind, external_id)

    def _job_url(self, external_id: JsonValue) -> str | None:
        """The operator's ``job_url``; a link is a convenience, so its failure never fails the try."""
        if external_id is None:
            return None
        try:
            url = self.calls.job_url(external_id)
        except Exception as err:
            self.log.warning("Could not build the console link of job %s (%r); storing none", external_id, err)
            return None
        if url is not None and not isinstance(url, str):
            self.log.warning("job_url returned %r for job %s, not a string; storing none", url, external_id)
            return None
        return url

    def _linked(self, before: JobRecord, after: JobRecord) -> JobRecord:
        """``after`` with the link of its job: kept from ``before`` for the same job, else asked for."""
        if before.url is not None and before.external_id == after.external_id:
            return after.model_copy(update={"url": before.url})
        return after.model_copy(update={"url": self._job_url(after.external_id)})

    def _note_refusal(self, decision: Decision, record: JobRecord) -> None:
        """
        Keep why this try refused (a conflict, a failed job left to a person) in the record: one write.

        A failure to write is logged, not raised: the refusal is what the task must fail with.
        """
        try:
            self.record = self._decided(record, decision.kind, decision.external_id)
            self._save(self.record)
        except Exception:
            self.log.warning("Could not record the decision %s in the job record", decision.kind.value, exc_info=True)
