"""
Drop-in resumable versions of the official ``DatabricksNotebookOperator`` and ``DatabricksTaskOperator``.

Swap the class name and nothing else: every argument of the official operator is accepted, the
official code builds the ``runs/submit`` request (``_get_run_json``), submits it (``_launch_job``),
pushes the XComs and monitors the task run (``monitor_databricks_job``, deferring when asked). What
changes is what a retry does, as for :mod:`~airflow.providers.resumable.operators.databricks`: an intent
with an ``idempotency_token`` is stored before ``runs/submit`` and the run id after, so a retry after
a crash, a lost response or a deferral reattaches to the run the earlier try started.

Inside a ``DatabricksWorkflowTaskGroup`` the group's launch task submits the one job run for every
task of the group; each operator only follows its own task in that run, so there is nothing to
submit twice. There the official behaviour is kept as it is (see docs/operators/databricks_tasks.rst).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.resumable.compat.databricks import cancel_task_run_as_official
from airflow.providers.resumable.compat.version_compat import apply_defaults
from airflow.providers.resumable.extras import requires_extra
from airflow.providers.resumable.mixins.decisions import fingerprint_of
from airflow.providers.resumable.mixins.resumable_job import ResumableJobMixin
from airflow.providers.resumable.operators.databricks import RememberedPageUrls, _ResumableDatabricksRun

with requires_extra("databricks", __name__):
    from airflow.providers.databricks.operators import databricks as official
    from airflow.providers.databricks.operators.databricks import (
        DatabricksNotebookOperator,
        DatabricksTaskBaseOperator,
        DatabricksTaskOperator,
    )

if TYPE_CHECKING:
    from airflow.providers.resumable.compat.version_compat import Context
    from airflow.providers.resumable.state.base import JsonValue


class _ResumableDatabricksTask(ResumableJobMixin):
    """What the Notebook and Task drop-ins share: the submit with a token, reattaching, the XComs."""

    #: The key of the RunNow / SubmitRun drop-ins: one record per task instance, read the same way.
    external_id_key = "databricks_run_id"
    #: The official operator cancels the run in on_kill whatever the cause (7.x standalone path).
    base_on_kill_cancels = True

    # A run's status is read as for the RunNow / SubmitRun drop-ins: the same calls, the same states.
    get_job_status = _ResumableDatabricksRun.get_job_status
    is_job_active = _ResumableDatabricksRun.is_job_active
    is_job_succeeded = _ResumableDatabricksRun.is_job_succeeded
    cancel_job = _ResumableDatabricksRun.cancel_job
    job_url = _ResumableDatabricksRun.job_url

    if TYPE_CHECKING:
        # Provided by the official operator classes this mixin is combined with.
        databricks_run_id: int | None
        do_xcom_push: bool
        wait_for_termination: bool
        _hook: Any
        _databricks_workflow_task_group: Any

        def _launch_job(self, context: Context | None = None) -> int | None: ...
        def monitor_databricks_job(self) -> None: ...

    @apply_defaults
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._run_xcoms_pushed = False
        #: The token ``_get_run_json`` adds, set only while ``submit_job`` runs.
        self._submit_token: str | None = None
        #: Run page URLs by run id, fetched once (see ``RememberedPageUrls``).
        self._run_page_urls: dict[int, str] = {}

    # ---- standalone or inside a workflow -----------------------------------------------------------

    def _execute_task(self, context: Context) -> Any:
        if self._databricks_workflow_task_group is not None:
            # The group's launch task submitted the job run; this task only follows its own task in
            # it, so a retry follows the same run: nothing to store, nothing to submit twice.
            return DatabricksTaskBaseOperator.execute(self, context)  # type: ignore[arg-type]
        self._run_xcoms_pushed = False
        return self.execute_resumable(context)

    # ---- the request -----------------------------------------------------------------------------------

    def _get_run_json(self) -> dict[str, Any]:
        # The official builder, plus our token while submit_job runs (the official _launch_job calls
        # this, then submits and pushes the XComs: all of that stays theirs).
        run_json = dict(super()._get_run_json())  # type: ignore[misc]
        if self._submit_token is not None:
            run_json["idempotency_token"] = self._submit_token
        return run_json

    def job_fingerprint(self, context: Context) -> str | None:
        # The official request as it would be sent (execution_timeout, cluster, parameters), no token.
        return fingerprint_of(self._get_run_json())

    # ---- the ResumableJobMixin contract -------------------------------------------------------------

    def submit_job(self, context: Context) -> int | None:
        self._submit_token = self.idempotency_token
        hook = self._hook
        # The official _launch_job fetches the run's page URL right after submitting: job_url reuses it.
        self.__dict__["_hook"] = RememberedPageUrls(hook, self._run_page_urls)
        try:
            run_id = self._launch_job(context=context)
        finally:
            self._submit_token = None
            self.__dict__["_hook"] = hook
        self._run_xcoms_pushed = True
        return run_id

    def poll_until_complete(self, external_id: JsonValue, context: Context) -> None:
        self.databricks_run_id = int(external_id)  # type: ignore[arg-type]
        # A try that reattaches did not launch: push what launching would have, before any deferral.
        self._push_run_xcoms(context)
        if self.wait_for_termination:
            self.monitor_databricks_job()

    def get_job_result(self, external_id: JsonValue, context: Context) -> None:
        self.databricks_run_id = int(external_id)  # type: ignore[arg-type]
        self._push_run_xcoms(context)
        return None

    def _push_run_xcoms(self, context: Context) -> None:
        if self._run_xcoms_pushed or not self.do_xcom_push:
            return
        ti = context["ti"]
        ti.xcom_push(key=official.XCOM_RUN_ID_KEY, value=self.databricks_run_id)
        ti.xcom_push(key=official.XCOM_RUN_PAGE_URL_KEY, value=self.job_url(self.databricks_run_id, context))
        self._run_xcoms_pushed = True

    def execute_complete(self, context: Any, event: Any = None) -> None:
        super().execute_complete(context, event)  # type: ignore[misc]  # raises for a failed run
        if self._databricks_workflow_task_group is None:
            self.forget_job(context)

    def on_kill(self) -> None:
        if self._databricks_workflow_task_group is not None:
            # Nothing of ours ran: the official on_kill (cancels this task's child run, never the shared
            # workflow run) only when asked, as for a standalone run.
            if self.cancel_on_kill:
                cancel_task_run_as_official(self)
            return
        super().on_kill()


class ResumableDatabricksNotebookOperator(_ResumableDatabricksTask, DatabricksNotebookOperator):
    """
    ``DatabricksNotebookOperator`` that submits one notebook run per task instance, however often it retries.

    Accepts every argument of the official operator, plus those of
    :class:`~airflow.providers.resumable.mixins.resumable_job.ResumableJobMixin`: ``durable`` (default
    True), ``cancel_on_kill`` (default False) and ``spec_change_policy``. Each ``runs/submit`` carries
    an ``idempotency_token`` stored before the request. Inside a ``DatabricksWorkflowTaskGroup`` it
    behaves as the official operator. See docs/operators/databricks_tasks.rst.
    """

    def execute(self, context: Context) -> Any:
        # Defined on the operator class, not the mixin: Airflow 2 guards only an operator's own execute.
        return self._execute_task(context)


class ResumableDatabricksTaskOperator(_ResumableDatabricksTask, DatabricksTaskOperator):
    """
    ``DatabricksTaskOperator`` that submits one task run per task instance, however often it retries.

    Accepts every argument of the official operator, plus ``durable``, ``cancel_on_kill`` and
    ``spec_change_policy``; see :class:`ResumableDatabricksNotebookOperator` and
    docs/operators/databricks_tasks.rst.
    """

    def execute(self, context: Context) -> Any:
        # Defined on the operator class, not the mixin: Airflow 2 guards only an operator's own execute.
        return self._execute_task(context)
