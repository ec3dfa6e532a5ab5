"""
Drop-in resumable version of the official ``DatabricksSQLStatementsOperator``.

Swap the class name and nothing else: the official operator builds and posts the statement
(``POST /api/2.0/sql/statements``), pushes the ``statement_id`` XCom and waits (polling, or deferring
on the official trigger). The statement id is stored as soon as Databricks answers, so a retry after
a crash or a deferral reattaches to the statement (``GET /api/2.0/sql/statements/{id}``) instead of
running it again, and a statement that already succeeded is not run twice.

The Statement Execution API has no idempotency token. A try that dies (or loses the response)
between the POST and storing the id leaves nobody able to say whether the statement started, so the
statement is posted once, with the hook's retries off, and the retry refuses to post it again unless
the DAG declares it safe (``idempotent_statement=True``): it fails naming the statement, the
warehouse, when it may have started and the query tag to look for in the query history. See
docs/operators/databricks_sql.rst.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.resumable.compat.databricks import http_status, sends_query_tags, sql_statements_operator
from airflow.providers.resumable.extras import requires_extra
from airflow.providers.resumable.mixins.decisions import fingerprint_of
from airflow.providers.resumable.mixins.resumable_job import (
    JobNotFoundError,
    ResumableJobConflictError,
    ResumableJobMixin,
)

with requires_extra("databricks", __name__):
    from airflow.providers.databricks.hooks.databricks import DatabricksHook

    if TYPE_CHECKING:
        from airflow.providers.databricks.operators.databricks import DatabricksSQLStatementsOperator
    else:
        # On a provider without the official operator (7.0.0), this is the error to see.
        DatabricksSQLStatementsOperator = sql_statements_operator()

    from airflow.providers.databricks.operators.databricks import XCOM_STATEMENT_ID_KEY

if TYPE_CHECKING:
    from airflow.providers.resumable.compat.version_compat import Context
    from airflow.providers.resumable.state.base import JsonValue

#: The query tag that carries the submission's token, so a person can find the statement in the
#: warehouse's query history (on providers whose operator sends ``query_tags``).
TOKEN_QUERY_TAG = "airflow_resumable_token"
_ACTIVE_STATES = ("PENDING", "RUNNING")
#: CLOSED: "execution successful, and statement closed; result no longer available for fetch".
_SUCCEEDED_STATES = ("SUCCEEDED", "CLOSED")


def _refused(exc: BaseException) -> bool:
    """Whether Databricks answered the POST with a refusal, so the statement cannot have started."""
    status = http_status(exc)
    return status is not None and 400 <= status < 500 and status != 408


class ResumableDatabricksSQLStatementsOperator(ResumableJobMixin, DatabricksSQLStatementsOperator):
    """
    ``DatabricksSQLStatementsOperator`` that runs its statement once per task instance, however often it retries.

    Accepts every argument of the official operator, plus ``durable`` (default True), ``cancel_on_kill``
    (default False), ``spec_change_policy`` and:

    :param idempotent_statement: the statement may run twice without harm (a ``SELECT``, a ``MERGE``
        keyed on the data, ``CREATE TABLE IF NOT EXISTS`` ...). Only then does a retry post it again
        when an earlier try may have posted it without its id being stored. Default False: that retry
        fails and says what to check.
    """

    external_id_key = "databricks_statement_id"
    #: The official on_kill cancels the statement whatever the cause of the kill.
    base_on_kill_cancels = True

    if TYPE_CHECKING:
        statement: str
        statement_id: str | None
        warehouse_id: str
        catalog: str | None
        schema: str | None
        parameters: Any
        wait_for_termination: bool
        deferrable: bool
        do_xcom_push: bool
        databricks_conn_id: str
        databricks_retry_delay: Any
        _hook: Any

    def __init__(self, *, idempotent_statement: bool = False, **kwargs: Any) -> None:
        if not isinstance(idempotent_statement, bool):
            raise TypeError(f"idempotent_statement must be True or False, got {idempotent_statement!r}")
        super().__init__(**kwargs)
        self.idempotent_statement = idempotent_statement
        self._statement_xcom_pushed = False

    def execute(self, context: Context) -> None:
        # Defined on the operator class, not the mixin: Airflow 2 guards only an operator's own execute.
        self._statement_xcom_pushed = False
        return self.execute_resumable(context)

    # ---- the spec ------------------------------------------------------------------------------------

    def job_fingerprint(self, context: Context) -> str | None:
        # What the statement does; the Airflow query tags (run and try ids) are left out.
        spec = {
            "statement": self.statement,
            "warehouse_id": self.warehouse_id,
            "catalog": self.catalog,
            "schema": self.schema,
            "parameters": self.parameters,
            "query_tags": getattr(self, "query_tags", None),
        }
        return fingerprint_of(spec)

    # ---- the ResumableJobMixin contract -------------------------------------------------------------

    def submit_job(self, context: Context) -> str | None:
        run = self.job_run
        durable = run is not None and run.task_try.durable
        if self.resubmitting:
            self._may_post_again(context)
        if not durable:
            # durable=False, or no task instance: the official request, retries and all.
            self._post(context)
            return self.statement_id
        # No idempotency token exists for statements: the hook must not repeat a POST whose answer
        # it did not hear, and the token goes into a query tag for a person to search for. The official
        # execute() reads self._hook, a cached_property: the one-shot hook stands in for it meanwhile.
        hooks = self.__dict__
        kept_hook = hooks.pop("_hook", None)
        hooks["_hook"] = self._get_one_shot_hook()
        tagged = sends_query_tags(self)
        tags = dict(self.query_tags) if tagged else {}
        if tagged:
            self.query_tags = {**tags, TOKEN_QUERY_TAG: self.idempotency_token}
        try:
            self._post(context)
        except Exception as e:
            if _refused(e):
                # Databricks answered: nothing started, so the next try may post afresh.
                self._drop_intent()
            raise
        finally:
            if tagged:
                self.query_tags = tags
            hooks.pop("_hook", None)
            if kept_hook is not None:
                hooks["_hook"] = kept_hook
        return self.statement_id

    def _post(self, context: Context) -> None:
        """The official execute() up to the point where it would wait: build, POST, XCom, log."""
        waits = self.wait_for_termination
        self.wait_for_termination = False
        try:
            DatabricksSQLStatementsOperator.execute(self, context)
        finally:
            self.wait_for_termination = waits
        self._statement_xcom_pushed = True

    def _get_one_shot_hook(self) -> Any:
        return DatabricksHook(
            self.databricks_conn_id,
            retry_limit=1,
            retry_delay=self.databricks_retry_delay,
            caller=type(self).__name__,
        )

    def _drop_intent(self) -> None:
        run = self.job_run
        if run is None or not run.task_try.durable:
            return
        run.task_try.store.delete(self.external_id_key)
        ledger = run.task_try.ledger()
        if ledger is not None:
            ledger.delete(self.external_id_key)

    def _may_post_again(self, context: Context) -> None:
        """An earlier try may have posted the statement and lost its id: post again only if harmless."""
        run = self.job_run
        record = run.record if run is not None else None
        when = f"at {record.intent_at}, try {record.try_number}" if record is not None else "in an earlier try"
        if self.idempotent_statement:
            self.log.warning(
                "An earlier try (%s) may have started this statement without its id being stored; posting it "
                "again because idempotent_statement=True",
                when,
            )
            return
        location = f" The record is {run.location}." if run is not None and run.task_try.durable else ""
        raise ResumableJobConflictError(
            f"Not running the SQL statement again: an earlier try may have started it ({when}) on warehouse "
            f"{self.warehouse_id!r}, but its statement id was never stored, and the Statement Execution API "
            f"has no idempotency token to ask with. Statement: {self.statement[:200]!r}. Check the "
            f"warehouse's query history (query tag {TOKEN_QUERY_TAG}={self.idempotency_token}, where the "
            "provider sends query tags). If it ran, mark the task success. If it did not, or running it twice "
            "is harmless, delete the record (`airflow resumable state delete`) and clear the task, or set "
            f"idempotent_statement=True.{location}"
        )

    def get_job_status(self, external_id: JsonValue, context: Context) -> str:
        try:
            return str(self._hook.get_sql_statement_state(str(external_id)).state)
        except Exception as e:
            if http_status(e) != 404:
                raise
            if self.idempotent_statement:
                raise JobNotFoundError(f"SQL statement {external_id} is not known to Databricks any more") from e
            raise ResumableJobConflictError(
                f"SQL statement {external_id} is not known to Databricks any more (it removes a statement "
                "12 hours after it ended), so whether it succeeded cannot be read, and running it again may "
                "apply it twice. Check the warehouse's query history for it; then delete the record "
                "(`airflow resumable state delete`) and clear the task, or set idempotent_statement=True."
            ) from e

    def is_job_active(self, status: str) -> bool:
        return status in _ACTIVE_STATES

    def is_job_succeeded(self, status: str) -> bool:
        return status in _SUCCEEDED_STATES

    def poll_until_complete(self, external_id: JsonValue, context: Context) -> None:
        self.statement_id = str(external_id)
        self._push_statement_xcom(context)
        if not self.wait_for_termination:
            return
        if self.deferrable:
            self._handle_deferrable_execution(defer_method_name="execute_complete")  # type: ignore[misc]
        else:
            self._handle_execution()  # type: ignore[misc]

    def get_job_result(self, external_id: JsonValue, context: Context) -> None:
        self.statement_id = str(external_id)
        self._push_statement_xcom(context)
        return None

    def _push_statement_xcom(self, context: Context) -> None:
        # A try that reattaches did not post: push what posting would have.
        if self._statement_xcom_pushed or not self.do_xcom_push:
            return
        context["ti"].xcom_push(key=XCOM_STATEMENT_ID_KEY, value=self.statement_id)
        self._statement_xcom_pushed = True

    def cancel_job(self, external_id: JsonValue, context: Context) -> None:
        self._hook.cancel_sql_statement(str(external_id))

    def execute_complete(self, context: Any, event: Any = None) -> None:
        super().execute_complete(context, event)  # type: ignore[misc]  # raises unless it succeeded
        self.forget_job(context)
