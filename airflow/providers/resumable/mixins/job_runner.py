"""
The loop that runs one resumable job in one try: read the record, ask the job, decide, act.

``ResumableJobMixin`` (``resumable_job.py``) is the subclass contract; this module is the shell
that runs it, in the shape of upstream's ``resume_or_submit``: it takes the operator's calls bound
to the try (:class:`JobCalls`), the running try (``TaskTry``) and the settings, and never imports
the mixin. The decision itself is the pure table in ``decisions.py``; the I/O is here:

1. read the write-ahead record (``state/codec.py``'s :class:`~.JobRecord`) from the try's store;
2. ask the job's status (retried on transient errors with tenacity), or find a lost submission by
   its token;
3. :func:`~.decide`, then act: reattach and poll, return the result, or write the intent and submit;
   for a failed job, write a resume intent and resume it (``job_resume.py``); what the try decided
   is logged and appended to the record's history, with the job's console link (``job_history.py``);
4. on a kill, cancel only when asked to.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

from airflow.providers.resumable.compat.version_compat import AirflowFailException
from airflow.providers.resumable.mixins.decisions import (
    DEFAULT_RESUME_SETTINGS,
    Action,
    Decision,
    DecisionKind,
    JobState,
    ResumeSettings,
    SpecChangePolicy,
    decide,
    new_idempotency_token,
)
from airflow.providers.resumable.mixins.job_history import HistorySteps, with_submitted
from airflow.providers.resumable.mixins.job_resume import DECLINED, ResumeSteps
from airflow.providers.resumable.observability import emit_decision
from airflow.providers.resumable.state.codec import JobRecord, located, utcnow_iso

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from tenacity.stop import stop_base
    from tenacity.wait import wait_base

    from airflow.providers.resumable.state.base import JsonValue
    from airflow.providers.resumable.state.task_try import TaskTry


#: How long status and lookup calls are retried on transient errors, for operators and TaskFlow jobs
#: alike (tenacity strategies hold no state, so one instance serves every job).
STATUS_RETRY_STOP = stop_after_attempt(5) | stop_after_delay(120)
STATUS_RETRY_WAIT = wait_exponential_jitter(initial=1, max=15)


class JobNotFoundError(Exception):
    """Raise from ``get_job_status`` when the external system no longer knows the job (expired, 404)."""


class TransientJobError(Exception):
    """Raise from a status or lookup call for an error worth retrying (throttling, 5xx, a reset)."""


class ResumableJobConflictError(AirflowFailException):
    """
    The stored job and the task disagree in a way only a person should resolve.

    A retry would meet the same conflict, so the task fails without using its retries.
    """


class ResumableJobFailedError(AirflowFailException):
    """
    The stored job failed and ``on_job_failure`` (or the resume cap) says a person looks first.

    A retry would only meet the same failed job, so the task fails without using its retries.
    """


def is_transient_error(exc: BaseException) -> bool:
    """Errors that a status call may simply retry: network trouble, throttling, server errors."""
    if isinstance(exc, TransientJobError | ConnectionError | TimeoutError):
        return True
    try:
        import requests
    except ImportError:  # pragma: no cover - requests ships with Airflow
        return False
    if isinstance(exc, requests.ConnectionError | requests.Timeout):
        return True
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return exc.response.status_code == 429 or exc.response.status_code >= 500
    return False


@dataclass(frozen=True)
class JobCalls:
    """
    An operator's side of the contract, bound to the running try (the context is already in each).

    ``use_token(token, resubmitting)`` tells the operator which idempotency token this try works
    with, before ``submit`` (or ``resume``) runs and before a reattach; ``find``, ``cancel``,
    ``resume`` and ``find_resume`` are None when the operator does not implement them.
    ``use_resume_detail`` hands the operator what its earlier resume noted (``note_resume``).
    """

    submit: Callable[[], JsonValue]
    status: Callable[[JsonValue], Any]
    is_active: Callable[[Any], bool]
    is_succeeded: Callable[[Any], bool]
    poll: Callable[[JsonValue], None]
    result: Callable[[JsonValue], Any]
    use_token: Callable[[str | None, bool], None]
    find: Callable[[str], JsonValue] | None = None
    cancel: Callable[[JsonValue], None] | None = None
    is_transient: Callable[[BaseException], bool] = is_transient_error
    #: ``resume_failed_job(external_id, status)``: the id to poll next, or None (cannot resume this job).
    resume: Callable[[JsonValue, Any], JsonValue] | None = None
    #: ``find_resumed_job(external_id, resume_token)``: the id a lost resume returned, or None.
    find_resume: Callable[[JsonValue, str], JsonValue] | None = None
    use_resume_detail: Callable[[JsonValue], None] = lambda detail: None
    #: ``job_url(external_id)``: the job's page in its system's console, or None.
    job_url: Callable[[JsonValue], str | None] = lambda external_id: None


@contextlib.contextmanager
def naming_the_record(location: str | None) -> Iterator[None]:
    """A conflict raised by an adapter's hook call says which record to delete, and how."""
    try:
        yield
    except ResumableJobConflictError as err:
        if location is None or location in str(err):
            raise
        raise ResumableJobConflictError(f"{err} The job record is {location}.") from err


def retry_transient(
    func: Callable[..., Any],
    *args: Any,
    stop: stop_base,
    wait: wait_base,
    is_transient: Callable[[BaseException], bool],
    log: Any,
    location: str | None = None,
) -> Any:
    """Call ``func(*args)``, again on a transient error within ``stop``; a conflict names the record."""
    retrying = Retrying(
        stop=stop,
        wait=wait,
        retry=retry_if_exception(is_transient),
        reraise=True,
        before_sleep=lambda state: log.warning(
            "%s failed with %r (attempt %s); retrying",
            getattr(func, "__name__", func),
            state.outcome.exception() if state.outcome else None,
            state.attempt_number,
        ),
    )
    with naming_the_record(location):
        return retrying(func, *args)


@dataclass(frozen=True)
class JobSettings:
    """What the operator configured for its job: where the record lives and how hard to try."""

    key: str
    spec_change_policy: SpecChangePolicy
    retry_stop: stop_base
    retry_wait: wait_base
    #: The rendered spec's hash for this try (``job_fingerprint``), or None to skip the check.
    fingerprint: str | None = None
    #: ``on_job_failure``, ``max_job_resumes``, ``on_job_failure_after_resumes``.
    resume: ResumeSettings = DEFAULT_RESUME_SETTINGS


class JobRun(ResumeSteps, HistorySteps):
    """
    One try's run of one resumable job: what it read, what it decided, and the job it is waiting on.

    The operator keeps the run of its current try as ``job_run``; an adapter's hook may read
    ``record`` (the write-ahead record being acted on, with its ``intent_at``) and ``location``.
    """

    def __init__(self, calls: JobCalls, task_try: TaskTry, settings: JobSettings, log: Any) -> None:
        self.calls = calls
        self.task_try = task_try
        self.settings = settings
        self.key = settings.key
        self.fingerprint = settings.fingerprint
        self.log = log
        #: The record this try acts on (None before it is read, or when there is none).
        self.record: JobRecord | None = None
        #: The job being polled right now, for a kill.
        self.running_external_id: JsonValue = None
        #: The raw status this try's decision saw (handed to ``resume_failed_job``, as upstream's takes it).
        self.last_status: Any = None

    @property
    def location(self) -> str:
        return self.task_try.locate(self.key)

    def retrying(self, func: Callable[..., Any], *args: Any) -> Any:
        return retry_transient(
            func,
            *args,
            stop=self.settings.retry_stop,
            wait=self.settings.retry_wait,
            is_transient=self.calls.is_transient,
            log=self.log,
            location=self.location,
        )

    # ---- one try ------------------------------------------------------------------------------------

    def run(self) -> Any:
        """Submit, reattach or return, as the stored record and the live job status say."""
        if not self.task_try.durable:
            return self.run_not_durable()
        key, tags = self.key, self.task_try.tags
        record = self.record = self._read()
        finished = record is not None and self.task_try.ended_life(record.try_number) is not None
        looked_up = looked_up_resume = False
        found_by_token: str | None = None
        while True:
            status = None if finished else self._observe(record)
            decision = decide(
                record,
                finished=finished,
                generation=self.task_try.info.max_tries,
                fingerprint=self.fingerprint,
                job_state=status[0] if status else None,
                can_find=self.calls.find is not None,
                looked_up=looked_up,
                can_cancel=self.calls.cancel is not None,
                fresh_token=new_idempotency_token(),
                spec_change_policy=self.settings.spec_change_policy,
                resume=self.settings.resume,
                can_resume=self.calls.resume is not None,
                can_find_resume=self.calls.find_resume is not None,
                looked_up_resume=looked_up_resume,
            )
            if decision.action is Action.FIND_RESUME:
                assert record is not None
                found_resume = self._find_resume(decision, record)
                if found_resume is None:
                    looked_up_resume = True
                else:
                    record = found_resume
                continue
            if decision.action is not Action.FIND:
                break
            assert record is not None
            assert record.token is not None
            assert self.calls.find is not None
            found = self.retrying(self.calls.find, record.token)
            if found is None:
                self.log.info(
                    "No job found with idempotency token %s (submission %s); submitting again with it",
                    record.token,
                    record.seq,
                )
                looked_up = True
                continue
            found_record = record.model_copy(update={"external_id": found, "submitted_at": utcnow_iso()})
            record = self._decided(self._linked(record, found_record), DecisionKind.FOUND_BY_TOKEN, found)
            self._save(record)
            self.record = record
            found_by_token = f"Found job {found} submitted with token {record.token} by an earlier try"
            emit_decision(
                DecisionKind.FOUND_BY_TOKEN.value, tags, external_id_key=key, external_id=found, seq=record.seq
            )

        self._log_decision(decision, record, status[1] if status else None, found_by_token)
        emit_decision(
            decision.kind.value,
            tags,
            external_id_key=key,
            external_id=decision.external_id,
            prior_status=status[1] if status else None,
            seq=decision.seq,
        )
        self.last_status = status[1] if status else None
        return self._act(decision, record)

    def run_not_durable(self) -> Any:
        """Every try is a deliberate new submission, so every try gets its own token."""
        self.calls.use_token(new_idempotency_token(), False)
        tags = {name: value for name, value in self.task_try.tags.items() if name != "backend"}
        emit_decision(DecisionKind.NOT_DURABLE.value, tags, external_id_key=self.key)
        external_id = self.calls.submit()
        self._poll(external_id)
        return self.calls.result(external_id)

    def kill(self, *, cancel_on_kill: bool, owner: str) -> None:
        """The task is being killed: cancel the job being polled only when ``cancel_on_kill`` says so."""
        external_id = self.running_external_id
        if external_id is None:
            return
        if not cancel_on_kill:
            self.log.info(
                "Task killed: leaving job %s running so a retry can reattach (cancel_on_kill=False)", external_id
            )
            return
        if self.calls.cancel is None:
            self.log.warning("cancel_on_kill is set but %s has no cancel_job", owner)
            return
        self.log.info("Task killed: cancelling job %s (cancel_on_kill=True)", external_id)
        try:
            self.calls.cancel(external_id)
        except Exception:
            # on_kill runs in a signal handler; raising here would hide why the task died.
            self.log.exception("Could not cancel job %s; cancel it by hand", external_id)

    # ---- helpers ------------------------------------------------------------------------------------

    def _read(self) -> JobRecord | None:
        """
        The stored record: the task's own, else the ledger's copy.

        On the native store a person's clear discards task state (Airflow 3.4's default) and
        ``[state_store] default_retention_days`` expires untouched rows; the ledger, a Variable,
        keeps the record through both, so a job that still runs is found instead of submitted again.
        """
        store, ledger, key = self.task_try.store, self.task_try.ledger(), self.key
        record = JobRecord.parse(key, store.get(key), store=store)
        if record is not None or ledger is None:
            return record
        kept = JobRecord.parse(key, ledger.get(key), store=ledger)
        if kept is not None:
            self.log.warning(
                "The task's state holds no job record (a clear discarded it, as Airflow 3.4 does by default, or "
                "it expired after [state_store] default_retention_days); the ledger kept it: %s",
                located(ledger, key),
            )
        return kept

    def _save(self, record: JobRecord) -> None:
        """Write ``record`` where the task keeps it, then to the ledger: both before anything is submitted."""
        document = record.dump()
        self.task_try.store.set(self.key, document)
        ledger = self.task_try.ledger()
        if ledger is not None:
            ledger.set(self.key, document)

    def _observe(self, record: JobRecord | None) -> tuple[JobState, Any] | None:
        """One status call for the stored id; None when there is no id to ask about."""
        if record is None or not record.has_external_id:
            return None
        try:
            raw = self.retrying(self.calls.status, record.external_id)
        except JobNotFoundError:
            return JobState.NOT_FOUND, None
        if raw is None:
            return JobState.NOT_FOUND, None
        if self.calls.is_active(raw):
            return JobState.ACTIVE, raw
        if self.calls.is_succeeded(raw):
            return JobState.SUCCEEDED, raw
        return JobState.FAILED, raw

    def _act(self, decision: Decision, record: JobRecord | None) -> Any:
        info = self.task_try.info
        action = decision.action
        if action is Action.FAIL:
            assert record is not None
            self._note_refusal(decision, record)
            if decision.kind is DecisionKind.FAILED_STOP:
                raise ResumableJobFailedError(f"{decision.reason} The record is {self.location}.")
            raise ResumableJobConflictError(f"{decision.reason} The record is {self.location}.")
        if action in (Action.RESUME, Action.RESUME_SAME_TOKEN):
            assert record is not None
            resumed = self._resume(decision, record)
            if resumed is not DECLINED:
                return resumed
            # The hook declined (this job cannot be resumed): a fresh submission, resumes unspent.
            record = self.record
            assert record is not None
            decision = Decision(
                Action.SUBMIT,
                f"resume_failed_job declined to resume job {decision.external_id!r}",
                DecisionKind.RESUME_DECLINED,
                seq=record.seq + 1,
                token=new_idempotency_token(),
                resumes=max(decision.resumes - 1, 0),
            )
            self.log.info("Submitting job (submission %s, token %s): %s", decision.seq, decision.token, decision.reason)
            emit_decision(decision.kind.value, self.task_try.tags, external_id_key=self.key, seq=decision.seq)
            action = decision.action
        if action in (Action.REATTACH, Action.RETURN_RESULT):
            assert record is not None
            self.calls.use_token(record.token, False)
            update: dict[str, Any] = {}
            if record.resume_pending:
                # The job runs again (or succeeded), so the lost resume did start: confirm it.
                update |= self._resume_confirmed(record.external_id)
            if decision.adopt or (record.legacy and record.try_number is None):
                # Adopted into this life: a clear (or the finished marker) can now tell it apart. A bare
                # id from airflow.sdk.ResumableJobMixin becomes one of our records here. A person's
                # clear starts the life's resume count again.
                update |= {"generation": info.max_tries, "try_number": info.try_number}
                update |= {"resumes": 0} if decision.adopt else {}
            # One write, before polling or returning, for all of it: this try's entry among them.
            record = self._linked(record, record.model_copy(update=update))
            record = self.record = self._decided(record, decision.kind, record.external_id)
            self._save(record)
            if action is Action.REATTACH:
                self._poll(record.external_id)
            return self.calls.result(record.external_id)

        if action is Action.CANCEL_AND_SUBMIT:
            assert self.calls.cancel is not None
            self.calls.cancel(decision.external_id)
            self.log.info("Cancelled job %s", decision.external_id)

        if action is Action.RESUBMIT_SAME_TOKEN:
            assert record is not None
            # Written although the token is stored already: the entry says this try sent it again.
            intent = self._decided(record.model_copy(update={"try_number": info.try_number}), decision.kind, None)
        else:
            assert decision.seq is not None
            intent = JobRecord(
                seq=decision.seq,
                token=decision.token,
                generation=info.max_tries,
                fingerprint=self.fingerprint,
                try_number=info.try_number,
                intent_at=utcnow_iso(),
                resumes=decision.resumes,
                # The task instance's history goes on over a fresh submission (after a failure, a clear).
                history=record.history if record is not None else [],
            )
            intent = self._decided(intent, decision.kind, None)
        # The write-ahead step: from here on, a crash anywhere leaves a token to find the job by.
        self._save(intent)
        self.record = intent

        self.calls.use_token(intent.token, action is Action.RESUBMIT_SAME_TOKEN)
        external_id = self.calls.submit()
        if external_id is None:
            self.log.warning(
                "submit_job returned no id; the record keeps token %s so a retry can resolve it", intent.token
            )
        else:
            submitted = intent.model_copy(update={"external_id": external_id, "submitted_at": utcnow_iso()})
            self.record = self._linked(intent, with_submitted(submitted, info.try_number, external_id))
            self._save(self.record)
            self.log.info("Submitted job %s with token %s", external_id, intent.token)
        self._poll(external_id)
        return self.calls.result(external_id)

    def _poll(self, external_id: JsonValue) -> None:
        self.running_external_id = external_id
        try:
            with naming_the_record(self.location if self.task_try.durable else None):
                self.calls.poll(external_id)
        finally:
            self.running_external_id = None


def resume_or_submit(calls: JobCalls, task_try: TaskTry, settings: JobSettings, log: Any) -> Any:
    """Run the job of one try (see :class:`JobRun`) and return its result."""
    return JobRun(calls, task_try, settings, log).run()
