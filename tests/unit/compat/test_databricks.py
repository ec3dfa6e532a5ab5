"""
``compat.databricks`` against the installed official operators: the payload each shim builds is the one
the official ``execute()`` sends, on every leg (7.0.0 on 2.11, 7.16.1 on 3.2, 7.23.0 on 3.3).

The official operators run with a hook whose ``submit_run``/``run_now`` raise :class:`Sent` carrying
the payload, so nothing reaches Databricks and polling never starts.
"""

from __future__ import annotations

import importlib.metadata
from typing import Any
from unittest import mock

import pytest
import requests
from packaging.version import Version

pytest.importorskip("airflow.providers.databricks", reason="the Databricks provider is not installed on this leg")

from airflow.providers.databricks.operators.databricks import (
    DatabricksRunNowOperator,
    DatabricksSubmitRunOperator,
)

from airflow.providers.resumable.compat import databricks as compat
from airflow.providers.resumable.compat.version_compat import AirflowException
from tests.support.context import make_context

PROVIDER = Version(importlib.metadata.version("apache-airflow-providers-databricks"))
#: 7.16+ merge the rendered fields per try, validate, and forward DAG params.
MERGES_PER_TRY = PROVIDER >= Version("7.16")
NOTEBOOK = {"notebook_path": "/Shared/etl"}


class Sent(Exception):
    """What the fake hook raises instead of calling Databricks: the payload the operator sent."""

    def __init__(self, payload: dict[str, Any]) -> None:
        super().__init__("sent")
        self.payload = payload


def fake_hook(*, job_id: int | None = 42, pipeline_id: str = "pipe-1") -> mock.MagicMock:
    def send(payload: dict[str, Any]) -> None:
        raise Sent(dict(payload))

    hook = mock.MagicMock(name="DatabricksHook")
    hook.submit_run.side_effect = send
    hook.run_now.side_effect = send
    hook.find_job_id_by_name.return_value = job_id
    hook.find_pipeline_id_by_name.return_value = pipeline_id
    return hook


def with_hook(op: Any, hook: mock.MagicMock) -> Any:
    op._hook = hook  # the official ``_hook`` is a cached_property: this is its cached value
    return op


def outcome(build: Any) -> tuple[Any, ...]:
    """What ``build()`` ends in: the payload it returned or sent, or the error it raised."""
    try:
        return ("payload", build())
    except Sent as sent:
        return ("payload", sent.payload)
    except Exception as err:
        return ("error", isinstance(err, AirflowException), str(err))


def submit_op(**kwargs: Any) -> Any:
    # deferrable: 7.23's non-deferrable execute() goes through its own write-ahead record first.
    return DatabricksSubmitRunOperator(task_id="run", databricks_conn_id="databricks_mock", deferrable=True, **kwargs)


def run_now_op(**kwargs: Any) -> Any:
    return DatabricksRunNowOperator(task_id="run", databricks_conn_id="databricks_mock", deferrable=True, **kwargs)


SUBMIT_CASES = {
    "named arguments, numbers normalised": {
        "notebook_task": NOTEBOOK,
        "existing_cluster_id": "0101-etl",
        "timeout_seconds": 60,
    },
    "json and a run name": {"json": {"notebook_task": NOTEBOOK, "new_cluster": {"num_workers": 2}}, "run_name": "n"},
    "a pipeline by name": {"pipeline_task": {"pipeline_name": "nightly"}},
    "DAG params into each task": {
        "tasks": [{"task_key": "a", "notebook_task": dict(NOTEBOOK)}, {"task_key": "b", "notebook_task": NOTEBOOK}],
        "params": {"env": "prod"},
    },
    "DAG params into a single-task run": {"notebook_task": dict(NOTEBOOK), "params": {"env": "prod"}},
    "a pipeline by id and name": {"pipeline_task": {"pipeline_id": "p", "pipeline_name": "nightly"}},
}


@pytest.mark.parametrize("kwargs", SUBMIT_CASES.values(), ids=SUBMIT_CASES.keys())
def test_submit_payload_is_what_the_official_operator_sends(kwargs):
    official = outcome(lambda: with_hook(submit_op(**kwargs), fake_hook()).execute(make_context()))
    ours = outcome(lambda: compat.submit_payload(with_hook(submit_op(**kwargs), fake_hook()), make_context()))
    assert ours == official


RUN_NOW_CASES = {
    "a job id and notebook params": {"job_id": 42, "notebook_params": {"day": "2026-01-01"}},
    "a job by name": {"job_name": "etl"},
    "DAG params as job_parameters": {"job_id": 42, "params": {"env": "prod"}},
    "job_parameters given win over DAG params": {"job_id": 42, "job_parameters": {"a": "1"}, "params": {"b": "2"}},
    "json with a job by name": {"json": {"job_name": "etl", "python_params": ["x"]}},
}


@pytest.mark.parametrize("kwargs", RUN_NOW_CASES.values(), ids=RUN_NOW_CASES.keys())
def test_run_now_payload_is_what_the_official_operator_sends_and_keeps(kwargs):
    official_op = with_hook(run_now_op(**kwargs), fake_hook())
    official = outcome(lambda: official_op.execute(make_context()))
    op = with_hook(run_now_op(**kwargs), fake_hook())
    ours = compat.run_now_payload(op, make_context())
    assert ("payload", ours) == official
    compat.keep_run_now_payload(op, ours)
    # Where the official repair path reads the resolved job id (7.16+ ``_merged_json``, 7.0-7.15
    # ``json``): left as the official execute() leaves it. ``_merged_json`` also on 7.0-7.15, where
    # only our operator reads it.
    assert op._merged_json == ours
    if MERGES_PER_TRY:
        assert official_op._merged_json == ours
    assert op.json == official_op.json


def test_an_unknown_job_name_fails_as_the_official_operator_does():
    def official() -> None:
        with_hook(run_now_op(job_name="etl"), fake_hook(job_id=None)).execute(make_context())

    ours = outcome(lambda: compat.run_now_payload(with_hook(run_now_op(job_name="etl"), fake_hook(job_id=None)), {}))
    assert ours == outcome(official) == ("error", True, "Job ID for job name etl can not be found")


@pytest.mark.parametrize(
    ("factory", "kwargs", "field", "expected"),
    [
        (submit_op, {"notebook_task": dict(NOTEBOOK), "params": {"env": "prod"}}, "notebook_task", "base_parameters"),
        (run_now_op, {"job_id": 42, "params": {"env": "prod"}}, None, "job_parameters"),
    ],
    ids=["submit", "run_now"],
)
def test_dag_params_are_forwarded_from_7_16_on(factory, kwargs, field, expected):
    op = with_hook(factory(**kwargs), fake_hook())
    build = compat.submit_payload if factory is submit_op else compat.run_now_payload
    payload = build(op, make_context())
    where = payload[field] if field else payload
    assert where.get(expected) == ({"env": "prod"} if MERGES_PER_TRY else None)


@pytest.mark.parametrize("factory", [submit_op, run_now_op])
def test_merges_per_try_from_7_16_on(factory):
    assert compat.merges_per_try(factory(job_id=1) if factory is run_now_op else factory(notebook_task=NOTEBOOK)) is (
        MERGES_PER_TRY
    )


def test_merged_json_is_a_copy_of_the_merged_fields():
    op = submit_op(json={"notebook_task": {"notebook_path": "/a"}}, existing_cluster_id="c")
    first = compat.merged_json(op)
    first["notebook_task"]["notebook_path"] = "/changed"
    again = compat.merged_json(op)
    assert again["notebook_task"] == {"notebook_path": "/a"}
    assert again["existing_cluster_id"] == "c"
    assert op.json["notebook_task"] == {"notebook_path": "/a"}


def test_merged_json_validates_from_7_16_on():
    op = run_now_op(json={"job_id": 1})
    op.json = {"job_id": "1", "job_name": "etl"}  # as rendered; 7.0-7.15 validate only in __init__
    if MERGES_PER_TRY:
        with pytest.raises(AirflowException, match="'job_name' is not allowed with argument 'job_id'"):
            compat.merged_json(op)
    else:
        assert compat.merged_json(op) == {"job_id": "1", "job_name": "etl"}


@pytest.mark.parametrize(
    ("builder", "expected"),
    [
        (lambda: "no context", "no context"),  # 7.17-7.22
        (lambda context: context["ti"], "the ti"),  # 7.23+
    ],
    ids=["7.17", "7.23"],
)
def test_a_payload_builder_is_called_as_its_generation_expects(builder, expected):
    assert compat._call_builder(builder, {"ti": "the ti"}) == expected


def _chained_http_error(status: int) -> AirflowException:
    response = requests.Response()
    response.status_code = status
    try:
        try:
            raise requests.HTTPError(response=response)
        except requests.HTTPError:
            raise AirflowException(f"Status Code: {status}")  # noqa: B904 - as providers before 7.21 do
    except AirflowException as err:
        return err


class _ApiError(AirflowException):  # 7.21+: DatabricksApiError
    def __init__(self, status: int | None) -> None:
        super().__init__("api error")
        self.http_status_code = status


def _cycle() -> BaseException:
    a, b = ValueError("a"), ValueError("b")
    a.__context__, b.__context__ = b, a
    return a


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (_ApiError(404), 404),
        (_chained_http_error(404), 404),
        (_chained_http_error(500), 500),
        (_ApiError(None), None),
        (ValueError("no status"), None),
        (_cycle(), None),
    ],
    ids=["7.21+", "before 7.21", "before 7.21, 500", "7.21+ without status", "no status", "a cycle ends"],
)
def test_http_status_reads_every_generation(error, expected):
    assert compat.http_status(error) == expected


def test_the_sql_statements_operator_or_an_import_error_that_says_to_upgrade(monkeypatch):
    from airflow.providers.databricks.operators import databricks as official

    if hasattr(official, "DatabricksSQLStatementsOperator"):
        assert compat.sql_statements_operator() is official.DatabricksSQLStatementsOperator
        monkeypatch.delattr(official, "DatabricksSQLStatementsOperator")  # as on 7.0.0
    installed = importlib.metadata.version("apache-airflow-providers-databricks")
    with pytest.raises(ImportError, match=rf"apache-airflow-providers-databricks {installed} does not have it\. "):
        compat.sql_statements_operator()
