"""
What differs between the generations of ``apache-airflow-providers-databricks`` this provider supports.

The official ``DatabricksSubmitRunOperator`` and ``DatabricksRunNowOperator`` moved where they build
the request payload; our drop-ins build it as the installed one does. Tested: 7.0.0 (the Airflow 2.11
leg), 7.16.1 (3.2) and 7.23.0 (3.3). The generations, as each branch below names them:

* 7.0-7.15: ``__init__`` merges ``json`` with the named arguments, and ``json`` is rendered as a whole;
  ``execute()`` resolves names around the API call; nothing validates the payload.
* 7.16: ``_get_merged_json()`` merges the rendered fields on every try, ``_validate_merged_json``
  checks them, and DAG params are forwarded into the payload; still inside ``execute()``.
* 7.17+: the payload builders ``_prepare_submit_json`` and ``_build_run_now_payload`` (7.23: taking
  the context).

Every function takes the operator, an instance of an official class, and probes that instance (so a
subclass sees what it always saw). This module never imports this provider's operators, and imports
the official provider only inside the functions. Dropping the providers before 7.17 is deleting the
branches marked 7.0-7.16 here.
"""

from __future__ import annotations

import copy
import inspect
from typing import Any, cast

from airflow.providers.resumable.compat.version_compat import AirflowException


def _normalised(payload: Any) -> dict[str, Any]:
    """The official JSON normalisation (numbers and booleans to strings), as a fresh dict."""
    from airflow.providers.databricks.operators.databricks import normalise_json_content

    return dict(cast("dict[str, Any]", normalise_json_content(payload)))


def _call_builder(builder: Any, context: Any) -> Any:
    """Call an official payload builder: 7.23's take the context, 7.17's did not."""
    return builder(context) if inspect.signature(builder).parameters else builder()


def merges_per_try(op: Any) -> bool:
    """
    Whether ``op`` merges its rendered ``json`` and named arguments on every try.

    7.16+: yes, ``_get_merged_json()``. 7.0-7.15: no, ``__init__`` merged them into ``json`` once.
    """
    return hasattr(op, "_get_merged_json")


def merged_json(op: Any) -> dict[str, Any]:
    """
    A copy of ``op``'s rendered json merged with its named arguments, validated as the official operator does.

    7.16+: ``_get_merged_json()``, then ``_validate_merged_json`` (which raises for a payload the
    official operator refuses). 7.0-7.15: a copy of ``json``, which nothing validates.
    """
    # 7.0-7.15 merged in __init__ into ``json``, which is rendered as a whole.
    payload = copy.deepcopy(op._get_merged_json() if merges_per_try(op) else op.json or {})
    validate = getattr(op, "_validate_merged_json", None)
    if validate is not None:
        validate(payload)
    return dict(payload)


def submit_payload(op: Any, context: Any) -> dict[str, Any]:
    """
    The normalised ``runs/submit`` payload of a ``DatabricksSubmitRunOperator``, without the token.

    7.17+: the official builder ``_prepare_submit_json`` (pipeline name lookup, DAG params, OpenLineage).
    7.0-7.16: the official ``execute()`` builds it around the submit call; the same steps, in the same
    order, so a payload that does not normalise fails before any API call. 7.16 also forwards DAG
    params into each task (``_inject_airflow_params_into_task``); 7.0-7.15 have no such function.
    """
    if hasattr(op, "_prepare_submit_json"):
        return _normalised(_call_builder(op._prepare_submit_json, context))
    from airflow.providers.databricks.operators import databricks as official

    payload = _normalised(merged_json(op))
    pipeline_task = payload.get("pipeline_task")
    if (
        isinstance(pipeline_task, dict)
        and not pipeline_task.get("pipeline_id")
        and (pipeline_name := pipeline_task.pop("pipeline_name", None))
    ):
        pipeline_task["pipeline_id"] = op._hook.find_pipeline_id_by_name(pipeline_name)
    inject = getattr(official, "_inject_airflow_params_into_task", None)
    if inject is not None and op.params:
        params = dict(op.params)
        tasks = payload.get("tasks")
        for task in tasks if isinstance(tasks, list) else [payload]:
            if isinstance(task, dict):
                inject(task, params)
    return _normalised(payload)


def run_now_payload(op: Any, context: Any) -> dict[str, Any]:
    """
    The ``run-now`` payload of a ``DatabricksRunNowOperator``, ``job_name`` resolved, without the token.

    7.17+: the official builder ``_build_run_now_payload`` (job name lookup, DAG params, OpenLineage).
    7.0-7.16: the official ``execute()`` builds it around the run-now call; the same steps: the hook is
    created once the payload validated, then the job name is looked up (``AirflowException`` when no
    job has it). 7.16 also forwards DAG params as ``job_parameters`` when none are set.
    """
    if hasattr(op, "_build_run_now_payload"):
        return dict(_call_builder(op._build_run_now_payload, context))
    payload = _normalised(merged_json(op))
    # As there: the hook is created once the payload validated, before anything else can fail.
    _ = op._hook
    if "job_name" in payload:
        job_id = op._hook.find_job_id_by_name(payload["job_name"])
        if job_id is None:
            raise AirflowException(f"Job ID for job name {payload['job_name']} can not be found")
        payload["job_id"] = job_id
        del payload["job_name"]
    if merges_per_try(op) and not payload.get("job_parameters") and op.params:
        payload["job_parameters"] = dict(op.params)
    return payload


def keep_run_now_payload(op: Any, payload: dict[str, Any]) -> None:
    """
    Leave a built run-now payload where the official repair path reads the resolved job id.

    7.16+: ``_merged_json``. 7.0-7.15: ``json`` too (their repair path reads ``json["job_id"]``).
    """
    op._merged_json = payload
    if not merges_per_try(op):
        op.json = payload


def http_status(exc: BaseException) -> int | None:
    """
    The HTTP status behind a ``DatabricksHook`` error, or None when it carries none.

    7.21+: ``DatabricksApiError(http_status_code=...)``. Earlier providers (7.0.0 and 7.16.1 tested)
    raise a bare ``AirflowException`` from inside ``except HTTPError``, so the status is on the
    chained error's response.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        status = getattr(current, "http_status_code", None)
        if isinstance(status, int):
            return status
        response_status = getattr(getattr(current, "response", None), "status_code", None)
        if isinstance(response_status, int):
            return response_status
        current = current.__cause__ or current.__context__
    return None


def sql_statements_operator() -> type:
    """
    The official ``DatabricksSQLStatementsOperator``, which the SQL drop-in extends.

    7.16.1 and 7.23.0 (tested) have it; 7.0.0 (the Airflow 2.11 leg) does not, so the drop-in cannot
    exist there: an ``ImportError`` that names the installed version and the fix.
    """
    import importlib.metadata

    from airflow.providers.databricks.operators import databricks as official

    operator = getattr(official, "DatabricksSQLStatementsOperator", None)
    if operator is None:
        installed = importlib.metadata.version("apache-airflow-providers-databricks")
        raise ImportError(
            "ResumableDatabricksSQLStatementsOperator extends the official DatabricksSQLStatementsOperator, and "
            f"apache-airflow-providers-databricks {installed} does not have it. Upgrade that provider (7.16.1 "
            "and 7.23.0 are tested) to use it.",
            name="DatabricksSQLStatementsOperator",
        )
    return cast("type", operator)


def cancel_task_run_as_official(op: Any) -> None:
    """
    What the official ``on_kill`` of a Notebook / Task operator does, where it has one.

    7.23 (tested): ``DatabricksTaskBaseOperator.on_kill`` cancels the run, or in a workflow group only
    the task's child run. 7.0.0 and 7.16.1 have no ``on_kill`` there: a kill cancels nothing.
    """
    from airflow.providers.databricks.operators.databricks import DatabricksTaskBaseOperator

    on_kill = vars(DatabricksTaskBaseOperator).get("on_kill")
    if on_kill is not None:
        on_kill(op)


def sends_query_tags(op: Any) -> bool:
    """
    Whether the official ``DatabricksSQLStatementsOperator`` ``op`` sends ``query_tags`` with its statement.

    7.23 (tested): yes, the argument ``query_tags`` and Airflow's own tags. 7.16.1: no such argument.
    """
    return isinstance(getattr(op, "query_tags", None), dict)
