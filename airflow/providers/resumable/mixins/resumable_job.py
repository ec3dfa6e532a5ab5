"""``ResumableJobMixin``: submit an external job once per task instance, however often the task retries."""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

from airflow.providers.resumable.compat.version_compat import AirflowFailException, apply_defaults
from airflow.providers.resumable.mixins.decisions import (
    Action,
    Decision,
    DecisionKind,
    JobState,
    SpecChangePolicy,
    decide,
    new_idempotency_token,
)
from airflow.providers.resumable.observability import emit_decision, task_tags
from airflow.providers.resumable.state.guard import guard_store
from airflow.providers.resumable.state.lifecycle import (
    TryInfo,
    finished_before,
    read_marker,
    register_for_success,
)
from airflow.providers.resumable.state.records import JobRecord, utcnow_iso, where
from airflow.providers.resumable.state.selection import get_state_store, is_durable, validate_backend

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tenacity.stop import stop_base
    from tenacity.wait import wait_base

    from airflow.providers.resumable.compat.version_compat import Context
    from airflow.providers.resumable.state.base import JsonValue, StateStore


class JobNotFoundError(Exception):
    """Raise from ``get_job_status`` when the external system no longer knows the job (expired, 404)."""


class TransientJobError(Exception):
    """Raise from a status or lookup call for an error worth retrying (throttling, 5xx, a reset)."""


class ResumableJobConflictError(AirflowFailException):
    """
    The stored job and the task disagree in a way only a person should resolve.

    A retry would meet the same conflict, so the task fails without using its retries.
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


class ResumableJobMixin(ABC):
    """
    Make an operator that starts one external job survive worker crashes, lost responses and retries.

    Same subclass contract as ``airflow.sdk.ResumableJobMixin`` (change the import, keep the code),
    plus a write-ahead record that closes the windows the upstream mixin leaves open:

    * before ``submit_job`` runs, an *intent* with a deterministic ``self.idempotency_token`` is stored,
      so a try that dies (or loses the HTTP response) inside ``submit_job`` is followed by a retry that
      finds the job by that token (``find_job``) or re-submits with the same token, which an idempotent
      system answers with the same job;
    * a job that succeeded is returned, not re-run, only within one *life* of the task instance: once
      Airflow has recorded the task's success the record is dropped or marked finished, so a person's
      clear gets a fresh run (``ti.max_tries``, which a clear moves, is the fallback signal);
    * a job submitted from a different spec (``job_fingerprint``) is not silently reattached.

    Example::

        class MyOperator(ResumableJobMixin, BaseOperator):
            external_id_key = "my_job_id"

            def execute(self, context):
                return self.execute_resumable(context)

            def submit_job(self, context):
                # Pass the token so a retry after a lost response gets the same job back.
                return self.hook.submit(spec=self.spec, client_token=self.idempotency_token)

            def get_job_status(self, external_id, context):
                return self.hook.get_status(external_id)  # raise JobNotFoundError on 404

            def is_job_active(self, status):
                return status in ("PENDING", "RUNNING")

            def is_job_succeeded(self, status):
                return status == "SUCCEEDED"

            def poll_until_complete(self, external_id, context):
                self.hook.wait(external_id)  # raise when the job fails

            def get_job_result(self, external_id, context):
                return {"job_id": external_id}

            # Optional:
            def find_job(self, idempotency_token, context):
                return self.hook.find_by_token(idempotency_token)  # None when absent

            def cancel_job(self, external_id, context):
                self.hook.cancel(external_id)

            def job_fingerprint(self, context):
                return fingerprint_of(self.spec)

    :param durable: keep the job record in task state and resume from it (default). ``False`` submits
        on every try, like an operator without this mixin.
    :param cancel_on_kill: cancel the external job when the task is killed. Airflow delivers the same
        SIGTERM for a person's "mark failed" and for a worker shutdown (deploy, eviction), so the
        default ``False`` keeps the job running for the retry to reattach; see docs/mixins.rst.
    :param spec_change_policy: what to do when the stored job is still running but the job spec
        changed: ``fail`` (default), ``cancel_and_resubmit`` or ``resubmit``.
    :param allow_secrets_in_state: store values that contain a secret Airflow's secrets masker knows
        (a connection password in a job id, say). Off by default: such a write fails the task
        (``SecretInStateError``), because state is readable in plain text; see docs/security.rst.
    """

    #: State key of the job record. Renaming it on a deployed operator orphans in-flight jobs.
    external_id_key: str = "remote_job_id"

    #: True when the operator's base class cancels the job in its own ``on_kill``, unconditionally (the
    #: official Databricks and EMR operators do): that ``on_kill`` is then not called, so a worker
    #: shutdown does not cost the job and ``cancel_on_kill`` alone decides.
    base_on_kill_cancels: ClassVar[bool] = False

    #: Bounds for retrying status / lookup calls on transient errors (tenacity strategies).
    status_retry_stop: ClassVar[stop_base] = stop_after_attempt(5) | stop_after_delay(120)
    status_retry_wait: ClassVar[wait_base] = wait_exponential_jitter(initial=1, max=15)

    if TYPE_CHECKING:
        log: Any  # BaseOperator provides it; its type differs between Airflow 2 and 3
        task_id: str

    @apply_defaults
    def __init__(
        self,
        *,
        durable: bool = True,
        cancel_on_kill: bool = False,
        spec_change_policy: str | SpecChangePolicy = SpecChangePolicy.FAIL,
        allow_secrets_in_state: bool = False,
        **kwargs: Any,
    ) -> None:
        if not isinstance(allow_secrets_in_state, bool):
            raise TypeError(f"allow_secrets_in_state must be True or False, got {allow_secrets_in_state!r}")
        if not isinstance(durable, bool):
            raise TypeError(f"durable must be True or False, got {durable!r}")
        if not isinstance(cancel_on_kill, bool):
            raise TypeError(f"cancel_on_kill must be True or False, got {cancel_on_kill!r}")
        policy = SpecChangePolicy.parse(spec_change_policy)
        # A typo in [resumable] state_backend fails the DAG at parse time, naming the value.
        validate_backend()
        super().__init__(**kwargs)
        self.durable = durable
        self.cancel_on_kill = cancel_on_kill
        self.spec_change_policy = policy
        self.allow_secrets_in_state = allow_secrets_in_state
        self.idempotency_token: str | None = None
        #: True while ``submit_job`` repeats a submission whose response was lost (same token): the job
        #: may already exist, so side effects such as "cancel the job's other runs" must be skipped.
        self.resubmitting: bool = False
        self._running_external_id: JsonValue = None
        self._running_context: Context | None = None
        self._said_not_durable = False

    # ---- the subclass contract of airflow.sdk.ResumableJobMixin --------------------------------------

    @abstractmethod
    def submit_job(self, context: Context) -> JsonValue:
        """
        Submit the job and return its external id (JSON: a string, number, list or dict).

        Called after the intent is stored, with ``self.idempotency_token`` set: pass it to the
        external system when it supports one. Returning None leaves the record without an id, so the
        next try resolves the submission by token again.
        """

    @abstractmethod
    def get_job_status(self, external_id: JsonValue, context: Context) -> str:
        """
        Return the raw status of the job, called once per try that finds a stored id.

        Raise :class:`.JobNotFoundError` (or return None) when the system does not know the job any
        more; raise :class:`.TransientJobError` for an error worth retrying.
        """

    @abstractmethod
    def is_job_active(self, status: str) -> bool:
        """Return True if ``status`` means the job is still queued or running."""

    @abstractmethod
    def is_job_succeeded(self, status: str) -> bool:
        """Return True if ``status`` means the job finished successfully."""

    @abstractmethod
    def poll_until_complete(self, external_id: JsonValue, context: Context) -> None:
        """
        Block until the job reaches a terminal state; raise if it did not succeed.

        A deferrable operator may defer here instead (``self.defer(...)``): the job id is already in
        the state store, so a retry reattaches (and defers again) rather than submitting. Call
        ``forget_job(context)`` from the completion method when the job succeeded, so the record is
        finished once Airflow records the task's success.
        """

    @abstractmethod
    def get_job_result(self, external_id: JsonValue, context: Context) -> Any:
        """Return the task's result for a succeeded job (pushed to XCom as ``return_value``)."""

    # ---- optional extensions ------------------------------------------------------------------------

    def find_job(self, idempotency_token: str, context: Context) -> JsonValue:
        """
        Return the id of a job submitted with ``idempotency_token``, or None.

        Implement it for systems without native idempotency (EMR steps: a marker in the step name).
        Called only when a try may have submitted without the id reaching the state store.
        """
        raise NotImplementedError

    def cancel_job(self, external_id: JsonValue, context: Context) -> None:
        """Cancel the job. Used by ``cancel_on_kill`` and ``spec_change_policy='cancel_and_resubmit'``."""
        raise NotImplementedError

    def job_fingerprint(self, context: Context) -> str | None:
        """
        Return a hash of the rendered job spec (see ``fingerprint_of``), or None to skip the check.

        Called once per try, after templates are rendered and before any submission.
        """
        return None

    def is_transient_error(self, exc: BaseException) -> bool:
        """Whether a status or lookup call that raised ``exc`` is worth retrying."""
        return is_transient_error(exc)

    # ---- the template method ------------------------------------------------------------------------

    def execute_resumable(self, context: Context) -> Any:
        """Submit, reattach or return, as the stored record and the live job status say."""
        self._running_context = context
        if not self.durable:
            return self._run_not_durable(context)
        store = get_state_store(context)
        if not is_durable(store):
            self._say_not_durable()
            return self._run_not_durable(context)

        info = TryInfo.from_context(context)
        # The record is dropped (Variables) or marked finished (native store) by the provider's
        # listener once Airflow has recorded this task instance's success, never inside execute.
        register_for_success(context, store)
        # Every write is checked for registered secrets and size, whatever the backend.
        store = guard_store(store, context, owner=self.task_id, allow_secrets=self.allow_secrets_in_state)
        tags = task_tags(self, context, store)
        fingerprint = self.job_fingerprint(context)
        key = self.external_id_key
        self._record_location = where(store, key)

        record = JobRecord.parse(key, store.get(key), store=store)
        marker = read_marker(store) if record is not None else None
        finished = record is not None and finished_before(record.try_number, marker)
        looked_up = False
        while True:
            status = None if finished else self._observe(record, context)
            decision = decide(
                record,
                finished=finished,
                generation=info.max_tries,
                fingerprint=fingerprint,
                job_state=status[0] if status else None,
                can_find=self._implements("find_job"),
                looked_up=looked_up,
                can_cancel=self._implements("cancel_job"),
                fresh_token=new_idempotency_token(),
                spec_change_policy=self.spec_change_policy,
            )
            if decision.action is not Action.FIND:
                break
            assert record is not None
            assert record.token is not None
            found = self._retrying(self.find_job, record.token, context)
            if found is None:
                self.log.info(
                    "No job found with idempotency token %s (submission %s); submitting again with it",
                    record.token,
                    record.seq,
                )
                looked_up = True
                continue
            record = record.model_copy(update={"external_id": found, "submitted_at": utcnow_iso()})
            store.set(key, record.dump())
            self.log.info("Found job %s submitted with token %s by an earlier try", found, record.token)
            emit_decision(
                DecisionKind.FOUND_BY_TOKEN.value,
                tags,
                external_id_key=key,
                external_id=found,
                seq=record.seq,
            )

        self._log_decision(decision, record, status[1] if status else None)
        emit_decision(
            decision.kind.value,
            tags,
            external_id_key=key,
            external_id=decision.external_id if decision.external_id is not None else None,
            prior_status=status[1] if status else None,
            seq=decision.seq,
        )
        return self._act(decision, record, store, context, info, fingerprint)

    # ---- helpers ------------------------------------------------------------------------------------

    def _implements(self, name: str) -> bool:
        return getattr(type(self), name) is not getattr(ResumableJobMixin, name)

    def _retrying(self, func: Any, *args: Any) -> Any:
        retrying = Retrying(
            stop=self.status_retry_stop,
            wait=self.status_retry_wait,
            retry=retry_if_exception(self.is_transient_error),
            reraise=True,
            before_sleep=lambda state: self.log.warning(
                "%s failed with %r (attempt %s); retrying",
                getattr(func, "__name__", func),
                state.outcome.exception() if state.outcome else None,
                state.attempt_number,
            ),
        )
        with self._naming_the_record():
            return retrying(func, *args)

    @contextlib.contextmanager
    def _naming_the_record(self) -> Iterator[None]:
        """A conflict raised by an adapter's hook call says which record to delete, and how."""
        try:
            yield
        except ResumableJobConflictError as err:
            location = getattr(self, "_record_location", None)
            if location is None or location in str(err):
                raise
            raise ResumableJobConflictError(f"{err} The job record is {location}.") from err

    def _observe(self, record: JobRecord | None, context: Context) -> tuple[JobState, str | None] | None:
        """One status call for the stored id; None when there is no id to ask about."""
        if record is None or not record.has_external_id:
            return None
        try:
            raw = self._retrying(self.get_job_status, record.external_id, context)
        except JobNotFoundError:
            return JobState.NOT_FOUND, None
        if raw is None:
            return JobState.NOT_FOUND, None
        if self.is_job_active(raw):
            return JobState.ACTIVE, raw
        if self.is_job_succeeded(raw):
            return JobState.SUCCEEDED, raw
        return JobState.FAILED, raw

    def _log_decision(self, decision: Decision, record: JobRecord | None, raw_status: str | None) -> None:
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
        elif action is Action.FAIL:
            self.log.error("Not submitting: %s", decision.reason)

    def _act(
        self,
        decision: Decision,
        record: JobRecord | None,
        store: StateStore,
        context: Context,
        info: TryInfo,
        fingerprint: str | None,
    ) -> Any:
        key = self.external_id_key
        action = decision.action
        if action is Action.FAIL:
            raise ResumableJobConflictError(f"{decision.reason} The record is {where(store, key)}.")
        if action in (Action.REATTACH, Action.RETURN_RESULT):
            assert record is not None
            self.idempotency_token = record.token
            if decision.adopt or (record.legacy and record.try_number is None):
                # Adopted into this life: a clear (or the finished marker) can now tell it apart. A bare
                # id from airflow.sdk.ResumableJobMixin becomes one of our records here.
                record = record.model_copy(update={"generation": info.max_tries, "try_number": info.try_number})
                store.set(key, record.dump())
            external_id = record.external_id
            if action is Action.REATTACH:
                self._poll(external_id, context)
            return self.get_job_result(external_id, context)

        if action is Action.CANCEL_AND_SUBMIT:
            self.cancel_job(decision.external_id, context)
            self.log.info("Cancelled job %s", decision.external_id)

        if action is Action.RESUBMIT_SAME_TOKEN:
            assert record is not None
            intent = record.model_copy(update={"try_number": info.try_number})
        else:
            assert decision.seq is not None
            intent = JobRecord(
                seq=decision.seq,
                token=decision.token,
                generation=info.max_tries,
                fingerprint=fingerprint,
                try_number=info.try_number,
                intent_at=utcnow_iso(),
            )
            # The write-ahead step: from here on, a crash anywhere leaves a token to find the job by.
            store.set(key, intent.dump())

        self.idempotency_token = intent.token
        self.resubmitting = action is Action.RESUBMIT_SAME_TOKEN
        external_id = self.submit_job(context)
        if external_id is None:
            self.log.warning(
                "submit_job returned no id; the record keeps token %s so a retry can resolve it", intent.token
            )
        else:
            store.set(key, intent.model_copy(update={"external_id": external_id, "submitted_at": utcnow_iso()}).dump())
            self.log.info("Submitted job %s with token %s", external_id, intent.token)
        self._poll(external_id, context)
        return self.get_job_result(external_id, context)

    def forget_job(self, context: Context) -> None:
        """
        Say that the job is done, from a completion method that runs outside ``execute_resumable``.

        A deferrable operator finishes in ``execute_complete`` (after the trigger fired), in a try that
        never reached ``execute_resumable``. Calling this there asks for the record to be dropped
        (Variables) or marked finished (native store) once Airflow has recorded the task's success,
        as ``execute_resumable`` does for the synchronous path. Nothing is deleted now: the try can
        still fail after the method returns, and its retry must find the job.
        """
        if not self.durable:
            return
        store = get_state_store(context)
        if is_durable(store):
            register_for_success(context, store)

    def _poll(self, external_id: JsonValue, context: Context) -> None:
        self._running_external_id = external_id
        try:
            with self._naming_the_record():
                self.poll_until_complete(external_id, context)
        finally:
            self._running_external_id = None

    def _say_not_durable(self) -> None:
        if not self._said_not_durable:
            self._said_not_durable = True
            self.log.info(
                "No task instance in the context (a unit test calling execute() directly?): running without "
                "durable state, as the official operator would; every call submits"
            )

    def _run_not_durable(self, context: Context) -> Any:
        # Every try is a deliberate new submission, so every try gets its own token.
        self.idempotency_token = new_idempotency_token()
        emit_decision(DecisionKind.NOT_DURABLE.value, task_tags(self, context), external_id_key=self.external_id_key)
        external_id = self.submit_job(context)
        self._poll(external_id, context)
        return self.get_job_result(external_id, context)

    def on_kill(self) -> None:
        """Cancel the running job only when ``cancel_on_kill`` asks for it (see the class docstring)."""
        external_id, context = self._running_external_id, self._running_context
        if self.cancel_on_kill and external_id is not None and context is not None:
            if not self._implements("cancel_job"):
                self.log.warning("cancel_on_kill is set but %s has no cancel_job", type(self).__name__)
            else:
                self.log.info("Task killed: cancelling job %s (cancel_on_kill=True)", external_id)
                try:
                    self.cancel_job(external_id, context)
                except Exception:
                    # on_kill runs in a signal handler; raising here would hide why the task died.
                    self.log.exception("Could not cancel job %s; cancel it by hand", external_id)
        elif external_id is not None:
            self.log.info(
                "Task killed: leaving job %s running so a retry can reattach (cancel_on_kill=False)",
                external_id,
            )
        if self.base_on_kill_cancels:
            return
        parent_on_kill = getattr(super(), "on_kill", None)
        if parent_on_kill is not None:
            parent_on_kill()
