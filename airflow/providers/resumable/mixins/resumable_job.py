"""``ResumableJobMixin``: submit an external job once per task instance, however often the task retries."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.resumable.compat.version_compat import apply_defaults
from airflow.providers.resumable.mixins.class_checks import require_mixin_before_operator
from airflow.providers.resumable.mixins.decisions import (
    AfterResumesPolicy,
    JobFailurePolicy,
    ResumeSettings,
    SpecChangePolicy,
)
from airflow.providers.resumable.mixins.job_runner import (
    STATUS_RETRY_STOP,
    STATUS_RETRY_WAIT,
    JobCalls,
    JobNotFoundError,
    JobRun,
    JobSettings,
    ResumableJobConflictError,
    ResumableJobFailedError,
    TransientJobError,
    is_transient_error,
    retry_transient,
)
from airflow.providers.resumable.state.selection import validate_backend
from airflow.providers.resumable.state.task_try import TaskTry

if TYPE_CHECKING:
    from tenacity.stop import stop_base
    from tenacity.wait import wait_base

    from airflow.providers.resumable.compat.version_compat import Context
    from airflow.providers.resumable.state.base import JsonValue

__all__ = [
    "JobNotFoundError",
    "ResumableJobConflictError",
    "ResumableJobFailedError",
    "ResumableJobMixin",
    "TransientJobError",
    "is_transient_error",
]


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

            def resume_failed_job(self, external_id, status, context):
                # Restart only what failed; tag the restart so a lost response can be found.
                return self.hook.repair(external_id, client_token=self.idempotency_token)

            def find_resumed_job(self, external_id, idempotency_token, context):
                return self.hook.find_repair(external_id, idempotency_token)  # None when absent

            def job_url(self, external_id, context):
                return f"https://console.example.com/jobs/{external_id}"  # shown beside the job

    Each try's decision (submit, reattach, already_succeeded, failed_resume ...) is kept in the job
    record's ``history`` (the last 20), with the job's console link from ``job_url`` as ``url``, for a
    person (``airflow resumable state``) or a UI; see docs/mixins.rst.

    :param durable: keep the job record in task state and resume from it (default). ``False`` submits
        on every try, like an operator without this mixin.
    :param cancel_on_kill: cancel the external job when the task is killed. Airflow delivers the same
        SIGTERM for a person's "mark failed" and for a worker shutdown (deploy, eviction), so the
        default ``False`` keeps the job running for the retry to reattach; see docs/mixins.rst.
    :param spec_change_policy: what to do when the stored job is still running but the job spec
        changed: ``fail`` (default), ``cancel_and_resubmit`` or ``resubmit``.
    :param on_job_failure: what a retry does with a stored job that ended without success:
        ``resume`` (default; restart its failed parts with ``resume_failed_job``, for an operator that
        implements it; one that does not resubmits), ``resubmit`` (a fresh job, as 0.1 did) or ``fail``
        (fail the task without retries, so a person looks at the job; a clear then submits afresh).
    :param max_job_resumes: how many resumes one life of the task instance may spend (default 3); a
        person's clear starts again at 0.
    :param on_job_failure_after_resumes: what a failure does once they are spent: ``resubmit``
        (default) or ``fail``.
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
    status_retry_stop: ClassVar[stop_base] = STATUS_RETRY_STOP
    status_retry_wait: ClassVar[wait_base] = STATUS_RETRY_WAIT

    if TYPE_CHECKING:
        log: Any  # BaseOperator provides it; its type differs between Airflow 2 and 3
        task_id: str

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        require_mixin_before_operator(cls, ResumableJobMixin)

    @apply_defaults
    def __init__(
        self,
        *,
        durable: bool = True,
        cancel_on_kill: bool = False,
        spec_change_policy: str | SpecChangePolicy = SpecChangePolicy.FAIL,
        allow_secrets_in_state: bool = False,
        on_job_failure: str | JobFailurePolicy | None = None,
        max_job_resumes: int = 3,
        on_job_failure_after_resumes: str | AfterResumesPolicy = AfterResumesPolicy.RESUBMIT,
        **kwargs: Any,
    ) -> None:
        if not isinstance(allow_secrets_in_state, bool):
            raise TypeError(f"allow_secrets_in_state must be True or False, got {allow_secrets_in_state!r}")
        if not isinstance(durable, bool):
            raise TypeError(f"durable must be True or False, got {durable!r}")
        if not isinstance(cancel_on_kill, bool):
            raise TypeError(f"cancel_on_kill must be True or False, got {cancel_on_kill!r}")
        policy = SpecChangePolicy.parse(spec_change_policy)
        resume = self._resume_settings(on_job_failure, max_job_resumes, on_job_failure_after_resumes)
        # A typo in [resumable] state_backend fails the DAG at parse time, naming the value.
        validate_backend()
        super().__init__(**kwargs)
        self.durable = durable
        self.cancel_on_kill = cancel_on_kill
        self.spec_change_policy = policy
        self.allow_secrets_in_state = allow_secrets_in_state
        self.on_job_failure = resume.on_job_failure
        self.max_job_resumes = resume.max_job_resumes
        self.on_job_failure_after_resumes = resume.after_resumes
        #: The token of the submission (in ``submit_job``) or of the resume (in ``resume_failed_job``
        #: and ``find_resumed_job``) this try works on, written into the record before the call.
        self.idempotency_token: str | None = None
        #: In ``resume_failed_job`` / ``find_resumed_job``: what an earlier call of the hook for the same
        #: resume noted with :meth:`note_resume` (None when nothing was noted).
        self.resume_detail: JsonValue = None
        #: True while ``submit_job`` repeats a submission whose response was lost (same token): the job
        #: may already exist, so side effects such as "cancel the job's other runs" must be skipped.
        self.resubmitting: bool = False
        #: The run of the job in the current try (``job_runner.JobRun``): the record it acts on, the
        #: job it polls. None before ``execute_resumable``.
        self.job_run: JobRun | None = None
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

    def resume_failed_job(self, external_id: JsonValue, status: str, context: Context) -> JsonValue:
        """
        Restart the failed parts of the job ``external_id`` (ended with ``status``); return the id to poll next.

        Upstream's hook (apache/airflow PR #77015, Airflow 3.5), same name and arguments. Called on a
        retry that finds the stored job failed, its spec unchanged, while ``on_job_failure='resume'``
        and fewer than ``max_job_resumes`` resumes were spent in this life. The id returned is often
        the same one (a repaired Databricks run). Return None when this job cannot be resumed: the
        shell then submits afresh.

        Before it runs, a resume intent with a fresh ``self.idempotency_token`` is stored, so tag the
        resume with it where the system allows, or :meth:`note_resume` what tells this resume apart
        (a repair id), before asking the system; a try that dies inside is followed by
        ``find_resumed_job``, or by this hook again with the same token (``self.resubmitting`` is True,
        ``self.resume_detail`` holds what was noted).
        """
        raise NotImplementedError

    def find_resumed_job(self, external_id: JsonValue, idempotency_token: str, context: Context) -> JsonValue:
        """
        Return the id to poll of a resume of ``external_id`` that an earlier try started, or None.

        Called only when a try died, or lost the response, inside ``resume_failed_job`` and the job
        looks failed: ``idempotency_token`` is that resume's token, ``self.resume_detail`` what it noted.
        None means no such resume: the hook is called again with the same token.
        """
        raise NotImplementedError

    def note_resume(self, detail: JsonValue) -> None:
        """
        From ``resume_failed_job``: keep ``detail`` (JSON) in the resume intent before asking the system.

        A later try's ``find_resumed_job`` reads it back as ``self.resume_detail``.
        """
        if self.job_run is None:
            raise RuntimeError("note_resume() is for resume_failed_job, called by execute_resumable")
        self.job_run.note_resume(detail)
        self.resume_detail = detail

    def job_url(self, external_id: JsonValue, context: Context) -> str | None:
        """
        Return the job's page in its system's console (a Databricks run page, the AWS console), or None.

        Called when the job's id becomes known (submitted, found by its token, resumed under another
        id, or reattached to without a stored link), and stored in the record as ``url``. Build it
        from the id where the system allows; an exception is logged and no link is stored, never
        failing the task.
        """
        return None

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
        # durable=False keeps nothing, so it does not even open the store.
        task_try = TaskTry.of(self, context, allow_secrets=self.allow_secrets_in_state, ephemeral=not self.durable)
        if self.durable and not task_try.durable:
            self._say_not_durable()
        fingerprint = self.job_fingerprint(context) if self.durable and task_try.durable else None
        run = self.job_run = JobRun(self._calls(context), task_try, self._job_settings(fingerprint), self.log)
        return run.run() if self.durable else run.run_not_durable()

    def _job_settings(self, fingerprint: str | None = None) -> JobSettings:
        return JobSettings(
            key=self.external_id_key,
            spec_change_policy=self.spec_change_policy,
            retry_stop=self.status_retry_stop,
            retry_wait=self.status_retry_wait,
            fingerprint=fingerprint,
            resume=ResumeSettings(self.on_job_failure, self.max_job_resumes, self.on_job_failure_after_resumes),
        )

    def _resume_settings(self, on_job_failure: Any, max_job_resumes: Any, after_resumes: Any) -> ResumeSettings:
        """The failure policy, validated when the DAG is parsed (errors name the argument and the value)."""
        can_resume = self._implements("resume_failed_job")
        if on_job_failure is None:
            # The default resumes where the operator can, and otherwise keeps 0.1's resubmission.
            failure = JobFailurePolicy.RESUME if can_resume else JobFailurePolicy.RESUBMIT
        else:
            failure = JobFailurePolicy.parse(on_job_failure)
            if failure is JobFailurePolicy.RESUME and not can_resume:
                raise ValueError(
                    f"on_job_failure='resume' needs an operator that implements resume_failed_job, and "
                    f"{type(self).__name__} does not; use on_job_failure='resubmit' or 'fail', or implement it"
                )
        if isinstance(max_job_resumes, bool) or not isinstance(max_job_resumes, int) or max_job_resumes < 0:
            raise ValueError(f"max_job_resumes must be an integer >= 0, got {max_job_resumes!r}")
        return ResumeSettings(failure, max_job_resumes, AfterResumesPolicy.parse(after_resumes))

    def _calls(self, context: Context) -> JobCalls:
        """This operator's side of the contract, bound to ``context``, for the loop in ``job_runner``."""

        def use_token(token: str | None, resubmitting: bool) -> None:
            self.idempotency_token = token
            self.resubmitting = resubmitting

        def use_resume_detail(detail: JsonValue) -> None:
            self.resume_detail = detail

        implements_find, implements_cancel = self._implements("find_job"), self._implements("cancel_job")
        implements_resume = self._implements("resume_failed_job")
        implements_find_resume = self._implements("find_resumed_job")
        return JobCalls(
            submit=lambda: self.submit_job(context),
            status=lambda external_id: self.get_job_status(external_id, context),
            is_active=self.is_job_active,
            is_succeeded=self.is_job_succeeded,
            poll=lambda external_id: self.poll_until_complete(external_id, context),
            result=lambda external_id: self.get_job_result(external_id, context),
            use_token=use_token,
            find=(lambda token: self.find_job(token, context)) if implements_find else None,
            cancel=(lambda external_id: self.cancel_job(external_id, context)) if implements_cancel else None,
            is_transient=self.is_transient_error,
            resume=(lambda external_id, status: self.resume_failed_job(external_id, status, context))
            if implements_resume
            else None,
            find_resume=(lambda external_id, token: self.find_resumed_job(external_id, token, context))
            if implements_resume and implements_find_resume
            else None,
            use_resume_detail=use_resume_detail,
            job_url=lambda external_id: self.job_url(external_id, context),
        )

    def _implements(self, name: str) -> bool:
        return getattr(type(self), name) is not getattr(ResumableJobMixin, name)

    def _retrying(self, func: Any, *args: Any) -> Any:
        """Call ``func(*args)`` with the status-call retries; for adapters' lookups inside ``submit_job``."""
        run = self.job_run
        return retry_transient(
            func,
            *args,
            stop=self.status_retry_stop,
            wait=self.status_retry_wait,
            is_transient=self.is_transient_error,
            log=self.log,
            location=run.location if run is not None and run.task_try.durable else None,
        )

    def forget_job(self, context: Context) -> None:
        """
        Say that the job is done, from a completion method that runs outside ``execute_resumable``.

        A deferrable operator finishes in ``execute_complete`` (after the trigger fired), in a try that
        never reached ``execute_resumable``. Calling this there asks for the record to be dropped
        (Variables) or marked finished (native store) once Airflow has recorded the task's success,
        as ``execute_resumable`` does for the synchronous path. Nothing is deleted now: the try can
        still fail after the method returns, and its retry must find the job.
        """
        if self.durable:
            # Building the try registers its store to be finished after the success.
            TaskTry.of(self, context, allow_secrets=self.allow_secrets_in_state)

    def _say_not_durable(self) -> None:
        if not self._said_not_durable:
            self._said_not_durable = True
            self.log.info(
                "No task instance in the context (a unit test calling execute() directly?): running without "
                "durable state, as the official operator would; every call submits"
            )

    def on_kill(self) -> None:
        """Cancel the running job only when ``cancel_on_kill`` asks for it (see the class docstring)."""
        task_try = TaskTry.running(self)
        if task_try is not None:
            task_try.note_killed()
        if self.job_run is not None:
            self.job_run.kill(cancel_on_kill=self.cancel_on_kill, owner=type(self).__name__)
        if self.base_on_kill_cancels:
            return
        parent_on_kill = getattr(super(), "on_kill", None)
        if parent_on_kill is not None:
            parent_on_kill()
