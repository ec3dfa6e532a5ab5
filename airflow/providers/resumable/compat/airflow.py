"""
What differs in behaviour between the Airflow lines this provider supports (2.11, 3.0-3.2, 3.3+).

One function per difference; each branch says which versions it covers, so dropping a line is a
deletion here and nowhere else. Imports of Airflow internals stay inside the functions: this module
is imported by the CLI, the listener and every task, and each needs only some of them.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow.providers.resumable.compat.version_compat import AIRFLOW_V_3_0_PLUS

if TYPE_CHECKING:
    from collections.abc import Callable


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else None


# ---- the identity of a try ---------------------------------------------------------------------------


def try_stamp(ti: Any, fallback: Callable[[], str]) -> str | None:
    """
    A stamp unique to one try of ``ti``, kept across a deferral.

    3.0+: the task instance id (a new one per try). 2.11: the try's start date, which ``airflow tasks
    run`` sets and ``dag.test()`` does not; then ``fallback()``, one stamp per try per process.
    """
    if AIRFLOW_V_3_0_PLUS:
        ti_id = getattr(ti, "id", None)
        return str(ti_id) if ti_id is not None else None
    return _iso(getattr(ti, "start_date", None)) or fallback()


def dag_run_key(dag_run: Any) -> str | None:
    """
    What tells one DAG run row from another created later under the same run_id.

    3.0+: ``run_after`` (the Task SDK's run carries no row id). 2.11: the row id.
    """
    if AIRFLOW_V_3_0_PLUS:
        return _iso(getattr(dag_run, "run_after", None))
    row_id = getattr(dag_run, "id", None)
    return f"dag_run.id={row_id}" if isinstance(row_id, int) and not isinstance(row_id, bool) else None


# ---- secrets, metrics -------------------------------------------------------------------------------


def secrets_redactor() -> Callable[[str], Any] | None:
    """
    ``redact`` of the secrets masker that masks this task's log, or None when none can be imported.

    3.0+: the Task SDK's masker (the core one in ``airflow._shared`` is another instance, which the
    task process does not feed). 2.11: the one masker in ``airflow.utils.log``.
    """
    try:
        if AIRFLOW_V_3_0_PLUS:
            from airflow.sdk._shared.secrets_masker import redact
        else:
            from airflow.utils.log.secrets_masker import redact  # type: ignore[no-redef]
    except ImportError:  # pragma: no cover - every supported Airflow has one of them
        return None
    return redact


def stats() -> Any:
    """Airflow's ``Stats``: the Task SDK's on 3.x, ``airflow.stats`` on 2.11."""
    try:
        from airflow.sdk._shared.observability.metrics.stats import Stats
    except ImportError:
        from airflow.stats import Stats  # type: ignore[no-redef]
    return Stats


def asset_type() -> Any:
    """3.0+: ``airflow.sdk.Asset``; None on 2.11, which has Datasets and no asset state store."""
    try:
        from airflow.sdk import Asset
    except ImportError:
        return None
    return Asset


# ---- Variables --------------------------------------------------------------------------------------


class SdkVariables:
    """
    3.0+: Variables through the supervisor to the Execution API, as the Task SDK does.

    Not through ``airflow.sdk.Variable``: its ``set``/``delete`` log and swallow a failed write, and
    its ``get`` asks secrets backends and a cache first. A state write that silently did not happen
    is the one failure the Variable backend must never have.
    """

    @staticmethod
    def _send(msg: Any, *, missing_ok: bool = False) -> Any:
        """Send ``msg``; an error answer raises, except "not found" when ``missing_ok`` (then None)."""
        from airflow.sdk.exceptions import AirflowRuntimeError
        from airflow.sdk.execution_time.comms import ErrorResponse
        from airflow.sdk.execution_time.task_runner import SUPERVISOR_COMMS

        try:
            response = SUPERVISOR_COMMS.send(msg)
        except AirflowRuntimeError as err:
            # 3.0-3.1 raise error answers, later versions return them.
            response = err.error
        if isinstance(response, ErrorResponse):
            kind = getattr(response.error, "value", response.error)
            if missing_ok and kind == "VARIABLE_NOT_FOUND":
                return None
            raise RuntimeError(f"Execution API answered {kind}: {response.detail}")
        return response

    def get(self, key: str) -> str | None:
        from airflow.sdk.execution_time.comms import GetVariable

        value = getattr(self._send(GetVariable(key=key), missing_ok=True), "value", None)
        return None if value is None else str(value)

    def set(self, key: str, value: str, description: str) -> None:
        from airflow.sdk.execution_time.comms import PutVariable

        self._send(PutVariable(key=key, value=value, description=description))

    def delete(self, key: str) -> None:
        from airflow.sdk.execution_time.comms import DeleteVariable

        self._send(DeleteVariable(key=key))


class OrmVariables:
    """2.11: the ORM Variable, written straight to the metadata DB."""

    def get(self, key: str) -> str | None:
        from airflow.models import Variable

        value = Variable.get(key, default_var=None)
        return None if value is None else str(value)

    def set(self, key: str, value: str, description: str) -> None:
        from airflow.models import Variable

        Variable.set(key, value, description=description)

    def delete(self, key: str) -> None:
        from airflow.models import Variable

        Variable.delete(key)


def variable_access() -> SdkVariables | OrmVariables:
    """How a task reads and writes Variables: 3.0+ through the supervisor, 2.11 through the ORM."""
    return SdkVariables() if AIRFLOW_V_3_0_PLUS else OrmVariables()


# ---- the metadata DB, for the CLI -------------------------------------------------------------------


def task_state_store_model() -> Any:
    """3.3+: the ORM model of the ``task_state_store`` table; None before 3.3 (no native store)."""
    try:
        from airflow.models.task_state_store import TaskStateStoreModel
    except ImportError:
        return None
    return TaskStateStoreModel


def asset_state_store_model() -> Any:
    """3.3+: the ORM model of the ``asset_state_store`` table; None before 3.3."""
    try:
        from airflow.models.asset_state_store import AssetStateStoreModel
    except ImportError:
        return None
    return AssetStateStoreModel


def state_cli_program() -> list[str]:
    """
    How a person runs this provider's CLI on the installed Airflow.

    3.2+ load provider CLI commands (``airflow resumable ...``); 2.11-3.1 do not, and the same
    commands ship as the ``airflow-resumable`` console script.
    """
    try:
        from airflow.providers_manager import ProvidersManager
    except ImportError:  # pragma: no cover - every supported Airflow has it
        return ["airflow-resumable"]
    return ["airflow", "resumable"] if hasattr(ProvidersManager, "cli_command_functions") else ["airflow-resumable"]
