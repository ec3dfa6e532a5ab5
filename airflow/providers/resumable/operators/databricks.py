"""
Drop-in resumable versions of the official ``DatabricksSubmitRunOperator`` and ``DatabricksRunNowOperator``.

Swap the class name and nothing else: every argument of the official operator is accepted and the
official ``DatabricksHook`` makes every call. What changes is what a retry does. Our
``ResumableJobMixin`` writes an intent with an ``idempotency_token`` to task state before the run is
requested and the run id after, so a retry after a crash, a lost ``runs/submit`` response or a
deferral reattaches to the run instead of paying for a second one. Tested against the oldest
(7.0.0), one intermediate (7.16.1) and the newest (7.23.0) official Databricks provider.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

# http_status lived here in 0.1.0: still importable from this module.
from airflow.providers.resumable.compat.databricks import (
    http_status,
    keep_run_now_payload,
    merged_json,
    run_now_payload,
    submit_payload,
)
from airflow.providers.resumable.compat.version_compat import apply_defaults
from airflow.providers.resumable.extras import requires_extra
from airflow.providers.resumable.mixins.decisions import fingerprint_of
from airflow.providers.resumable.mixins.resumable_job import JobNotFoundError, ResumableJobMixin

with requires_extra("databricks", __name__):
    from airflow.providers.databricks.hooks.databricks import RunState
    from airflow.providers.databricks.operators import databricks as official
    from airflow.providers.databricks.operators.databricks import (
        DatabricksRunNowOperator,
        DatabricksSubmitRunOperator,
    )

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.providers.resumable.compat.version_compat import Context
    from airflow.providers.resumable.state.base import JsonValue

#: Databricks refuses a longer ``idempotency_token``.
MAX_TOKEN_LENGTH = 64
_ACTIVE_LIFE_CYCLE_STATES = ("PENDING", "QUEUED", "RUNNING", "TERMINATING", "BLOCKED", "WAITING_FOR_RETRY")
#: Databricks repairs a run that ended failed, timed out or cancelled, or with an internal error (the
#: set upstream's proposal repairs too); a skipped run never started, so it has nothing to repair.
_REPAIRABLE_RESULT_STATES = ("FAILED", "TIMEDOUT", "CANCELED")
#: The XCom key of the repair a try started (or found), beside the official ``run_id`` and ``run_page_url``.
XCOM_REPAIR_ID_KEY = "repair_id"


class RememberedPageUrls:
    """
    The operator's ``DatabricksHook``, with the run page URL of each run fetched once.

    The official code fetches it with a ``runs/get`` after submitting (``_launch_job``) and again when
    it starts polling; ``job_url`` needs it when the run id is known, which is between the two. Handed
    to the official code in place of the hook, so the three share one call.
    """

    def __init__(self, hook: Any, urls: dict[int, str]) -> None:
        self.resumable_hook = hook
        self.resumable_urls = urls

    def get_run_page_url(self, run_id: int) -> str:
        url = self.resumable_urls.get(int(run_id))
        if url is None:
            url = self.resumable_urls[int(run_id)] = self.resumable_hook.get_run_page_url(run_id)
        return url

    def __getattr__(self, name: str) -> Any:
        return getattr(self.resumable_hook, name)


def _normalised(payload: Any) -> dict[str, Any]:
    """The official JSON normalisation (numbers and booleans to strings), as a fresh dict."""
    return dict(cast("dict[str, Any]", official.normalise_json_content(payload)))


def _check_token(value: Any) -> None:
    if value is None or (isinstance(value, str) and "{{" in value):
        return
    if not isinstance(value, str) or not 0 < len(value) <= MAX_TOKEN_LENGTH:
        raise ValueError(
            f"idempotency_token must be a string of 1-{MAX_TOKEN_LENGTH} characters (Databricks' limit), got {value!r}"
        )


class _ResumableDatabricksRun(ResumableJobMixin):
    """What the two operators share: run states, the token, the official XComs, deferral, kill."""

    #: The official operators' key on Airflow 3.3, so a record written by them is adopted.
    external_id_key = "databricks_run_id"
    #: The official on_kill cancels the run whatever the cause of the kill.
    base_on_kill_cancels = True

    if TYPE_CHECKING:
        # Provided by the official operator classes this mixin is combined with.
        json: Any
        run_id: int | None
        do_xcom_push: bool
        deferrable: bool
        databricks_conn_id: str
        _hook: Any

    @apply_defaults
    def __init__(self, *, idempotency_token: str | None = None, **kwargs: Any) -> None:
        _check_token(idempotency_token)
        # The official operators put a token into the payload themselves; ours goes in at submit
        # time, so it is held back here and templated under its own name.
        super().__init__(**kwargs)
        self.requested_idempotency_token = idempotency_token
        if isinstance(self.json, dict):
            _check_token(self.json.get("idempotency_token"))
        self._run_xcoms_pushed = False
        #: Run page URLs by run id, fetched once (see ``RememberedPageUrls``).
        self._run_page_urls: dict[int, str] = {}

    # ---- the spec and the payload -------------------------------------------------------------------

    def _merged_payload(self) -> dict[str, Any]:
        """A copy of the rendered json merged with the named arguments, validated as the official operator does."""
        return merged_json(self)

    def _rendered_spec(self) -> dict[str, Any]:
        """The rendered json and named arguments, before the lookups and injections done at submit."""
        spec = self._merged_payload()
        spec.pop("idempotency_token", None)
        return _normalised(spec)

    def job_fingerprint(self, context: Context) -> str | None:
        # Values the official operator adds when it submits are left out: OpenLineage's parent run
        # id changes on every try and would make every retry look like a changed spec.
        return fingerprint_of(self._rendered_spec())

    def _token_for_submission(self, payload: dict[str, Any]) -> str:
        requested = self.requested_idempotency_token or payload.get("idempotency_token")
        if requested:
            _check_token(requested)
            if requested != self.idempotency_token:
                self.log.info(
                    "Using the idempotency_token passed to the operator (%s) instead of %s: Databricks will "
                    "return the run that token first created, also after it failed",
                    requested,
                    self.idempotency_token,
                )
            return str(requested)
        assert self.idempotency_token is not None
        return self.idempotency_token

    # ---- the ResumableJobMixin contract -------------------------------------------------------------

    def get_job_status(self, external_id: JsonValue, context: Context) -> str:
        try:
            run = self._hook.get_run(external_id)
        except Exception as e:
            if http_status(e) == 404:
                raise JobNotFoundError(f"Databricks run {external_id} does not exist any more") from e
            raise
        state = run["state"]
        return f"{state['life_cycle_state']}:{state.get('result_state', '')}"

    def is_job_active(self, status: str) -> bool:
        return status.split(":", 1)[0] in _ACTIVE_LIFE_CYCLE_STATES

    def is_job_succeeded(self, status: str) -> bool:
        life_cycle_state, _, result_state = status.partition(":")
        state = RunState(life_cycle_state, result_state)
        return bool(state.is_terminal and state.is_successful)

    def poll_until_complete(self, external_id: JsonValue, context: Context) -> None:
        self.run_id = int(external_id)  # type: ignore[arg-type]
        self._prepare_repair_payload(context)
        hook = RememberedPageUrls(self._hook, self._run_page_urls)
        if self.deferrable:
            # Pushes the XComs, then defers on this run (or completes at once if it already ended).
            official._handle_deferrable_databricks_operator_execution(self, hook, self.log, context)
        else:
            official._handle_databricks_operator_execution(self, hook, self.log, context)
        self._run_xcoms_pushed = True

    def get_job_result(self, external_id: JsonValue, context: Context) -> None:
        self.run_id = int(external_id)  # type: ignore[arg-type]
        # A retry that finds the run already succeeded skips polling: push what polling would have.
        if not self._run_xcoms_pushed and self.do_xcom_push:
            ti = context["ti"]
            ti.xcom_push(key=official.XCOM_RUN_ID_KEY, value=self.run_id)
            ti.xcom_push(key=official.XCOM_RUN_PAGE_URL_KEY, value=self.job_url(self.run_id, context))
        return None

    def job_url(self, external_id: JsonValue, context: Context) -> str | None:
        """The run's page in the workspace (``run_page_url``), as the official operators push it."""
        return RememberedPageUrls(self._hook, self._run_page_urls).get_run_page_url(int(external_id))  # type: ignore[arg-type]

    def cancel_job(self, external_id: JsonValue, context: Context) -> None:
        self._hook.cancel_run(int(external_id))  # type: ignore[arg-type]

    # ---- resume: repair the failed run ---------------------------------------------------------------

    def resume_failed_job(self, external_id: JsonValue, status: str, context: Context) -> JsonValue:
        """
        Repair the failed run: ``jobs/runs/repair`` with ``rerun_all_failed_tasks``, through the official hook.

        Only the tasks that did not succeed (a failed one and the dependants it kept from running) run
        again, inside the same run: the run id, its page URL and the XComs stay; the repair id is
        pushed as ``repair_id``. The ``latest_repair_id`` the repair is built on is noted in the
        record first: Databricks refuses a second repair built on it, and ``find_resumed_job`` tells
        this repair from none by it. None (submit a new run instead) for a run Databricks cannot repair.
        """
        run_id = int(external_id)  # type: ignore[arg-type]
        life_cycle_state, _, result_state = (status or "").partition(":")
        if not (
            life_cycle_state == "INTERNAL_ERROR"
            or (life_cycle_state == "TERMINATED" and result_state in _REPAIRABLE_RESULT_STATES)
        ):
            self.log.info("Run %s ended %s, which Databricks cannot repair: submitting a new run", run_id, status)
            return None
        extra = self._repair_settings(run_id, context)
        if extra is None:
            return None
        noted = self.resume_detail if isinstance(self.resume_detail, dict) else None
        if self.resubmitting and noted is not None and "latest_repair_id" in noted:
            # Repeating a repair whose answer was lost: built on the same state, so Databricks refuses
            # it if the first went through (a stale latest_repair_id) instead of repairing twice.
            latest = noted["latest_repair_id"]
        else:
            latest = self._retrying(self._hook.get_latest_repair_id, run_id)
            self.note_resume({"latest_repair_id": latest})
        repair_json: dict[str, Any] = {"run_id": run_id, "rerun_all_failed_tasks": True, **extra}
        if latest is not None:
            repair_json["latest_repair_id"] = latest
        try:
            repair_id = self._hook.repair_run(repair_json)
        except Exception as err:
            # The hook retried a request whose response was lost, and Databricks refused the repeat:
            # the first request may have repaired the run.
            found = self._repair_since(run_id, latest)
            if found is not None:
                self.log.info("The repair request's answer was lost, but run %s was repaired: repair %s", run_id, found)
                self._push_repair_id(context, found)
                return run_id
            status_code = http_status(err)
            if status_code is not None and 400 <= status_code < 500 and status_code != 429:
                self.log.warning("Databricks refused to repair run %s (%s): submitting a new run", run_id, err)
                return None
            raise
        self.log.info(
            "Repairing run %s (repair %s, on top of repair %s): only the tasks that did not succeed run again",
            run_id,
            repair_id,
            latest,
        )
        self._push_repair_id(context, repair_id)
        return run_id

    def find_resumed_job(self, external_id: JsonValue, idempotency_token: str, context: Context) -> JsonValue:
        """The run, if its repair history shows a repair newer than the one an earlier try noted; else None."""
        noted = self.resume_detail
        if not isinstance(noted, dict) or "latest_repair_id" not in noted:
            return None  # the earlier try never got as far as asking for a repair
        run_id = int(external_id)  # type: ignore[arg-type]
        found = self._repair_since(run_id, noted["latest_repair_id"])
        if found is None:
            return None
        self._push_repair_id(context, found)
        return run_id

    def _repair_since(self, run_id: int, latest: Any) -> int | None:
        """The run's newest repair id when it is newer than ``latest`` (None: not repaired since)."""
        newest = self._retrying(self._hook.get_latest_repair_id, run_id)
        if newest is None or (latest is not None and newest <= latest):
            return None
        return int(newest)

    def _repair_settings(self, run_id: int, context: Context) -> dict[str, Any] | None:
        """What a repair of this operator's run sends beside the run id, or None to submit a new run instead."""
        return {}

    def _push_repair_id(self, context: Context, repair_id: int) -> None:
        if self.do_xcom_push:
            context["ti"].xcom_push(key=XCOM_REPAIR_ID_KEY, value=repair_id)

    def execute_complete(self, context: Any, event: Any = None) -> None:
        super().execute_complete(context, event)  # type: ignore[misc]  # the official completion
        # The official completion raises for a failed run and re-defers for a repair, so reaching
        # here means the run succeeded.
        self.forget_job(context)

    def _prepare_repair_payload(self, context: Context) -> None:
        """Hook for RunNow, whose repair path reads the resolved payload while polling."""


class ResumableDatabricksSubmitRunOperator(_ResumableDatabricksRun, DatabricksSubmitRunOperator):
    """
    ``DatabricksSubmitRunOperator`` that submits one run per task instance, however often it retries.

    Accepts every argument of the official operator, plus those of
    :class:`~airflow.providers.resumable.mixins.resumable_job.ResumableJobMixin`: ``durable`` (default True, on every
    supported Airflow), ``cancel_on_kill`` (default False) and ``spec_change_policy``. Without an
    ``idempotency_token`` argument, one is derived per submission, so a lost ``runs/submit`` response
    never starts a second run. See docs/operators/databricks.rst.
    """

    template_fields: Sequence[str] = (
        *(f for f in DatabricksSubmitRunOperator.template_fields if f != "idempotency_token"),
        "requested_idempotency_token",
    )

    def execute(self, context: Context) -> None:
        # Defined on the operator class, not the mixin: Airflow 2 guards only an operator's own execute.
        # Deferrable or not, the run goes through the write-ahead record; poll_until_complete defers.
        return self.execute_resumable(context)

    def submit_job(self, context: Context) -> int:
        payload = self._submit_payload(context)
        payload["idempotency_token"] = self._token_for_submission(payload)
        self.run_id = self._hook.submit_run(payload)
        return self.run_id

    def _submit_payload(self, context: Context) -> dict[str, Any]:
        """The payload as the installed official operator builds it (see ``compat.databricks``)."""
        return submit_payload(self, context)


class ResumableDatabricksRunNowOperator(_ResumableDatabricksRun, DatabricksRunNowOperator):
    """
    ``DatabricksRunNowOperator`` that triggers one run per task instance, however often it retries.

    Accepts every argument of the official operator, plus ``durable``, ``cancel_on_kill`` and
    ``spec_change_policy``. ``cancel_previous_runs=True`` cancels the job's other runs only when a new
    run is requested, never when a retry repeats a request whose response was lost (that would cancel
    the very run it is about to get back). See docs/operators/databricks.rst.
    """

    template_fields: Sequence[str] = (
        *(f for f in DatabricksRunNowOperator.template_fields if f != "idempotency_token"),
        "requested_idempotency_token",
    )

    if TYPE_CHECKING:
        cancel_previous_runs: bool
        repair_run: bool

    def execute(self, context: Context) -> None:
        # Defined on the operator class, not the mixin: Airflow 2 guards only an operator's own execute.
        # Deferrable or not, the run goes through the write-ahead record; poll_until_complete defers.
        return self.execute_resumable(context)

    def submit_job(self, context: Context) -> int:
        payload = self._run_now_payload(context)
        hook = self._hook
        if self.cancel_previous_runs:
            if self.resubmitting:
                self.log.info("Not cancelling the job's runs: this repeats a request whose response was lost")
            else:
                hook.cancel_all_runs(payload["job_id"])
        payload["idempotency_token"] = self._token_for_submission(payload)
        self.run_id = hook.run_now(payload)
        return self.run_id

    def _run_now_payload(self, context: Context) -> dict[str, Any]:
        """The payload as the installed official operator builds it (see ``compat.databricks``)."""
        payload = run_now_payload(self, context)
        if self.cancel_previous_runs and payload.get("job_id") is None:
            raise ValueError("cancel_previous_runs=True requires either job_id or job_name to be provided.")
        keep_run_now_payload(self, payload)
        return payload

    def _repair_settings(self, run_id: int, context: Context) -> dict[str, Any] | None:
        if self.cancel_previous_runs:
            # cancel_previous_runs keeps only the newest run of the job going; reviving an old one would not.
            self.log.info("cancel_previous_runs=True: not repairing run %s, submitting a new run", run_id)
            return None
        payload = self._run_now_payload(context)
        reasons = getattr(self, "databricks_repair_reason_new_settings", None)
        if reasons:
            # As the official in-try repair: only for the configured reasons, with their new job settings.
            run_state = self._hook.get_run_state(run_id)
            if not official.is_repair_reason_match_exist(self, run_state):
                self.log.info("Run %s failed for none of databricks_repair_reason_new_settings: a new run", run_id)
                return None
            official.update_job_for_repair(self, self._hook, payload["job_id"], run_state)
        return {"job_parameters": payload["job_parameters"]} if "job_parameters" in payload else {}

    def _prepare_repair_payload(self, context: Context) -> None:
        # A reattaching try did not submit, so the payload the official execute() leaves in
        # ``_merged_json`` (read by the repair path, and by anything that inspects the operator) is
        # rebuilt here, as the official durable path does; without cancelling the job's other runs.
        if not getattr(self, "_merged_json", None):
            self._run_now_payload(context)
