"""
The mixins and drop-ins called the way unit tests call operators: ``op.execute(None)``, ``{}`` or a
``MagicMock``, with no task instance. They behave as the official operators do (not durable), say so
once in the log, and never crash on our side; a test store configured by the user is still used.
"""

from __future__ import annotations

from unittest import mock

import pytest

from airflow.providers.resumable.mixins import ResumableJobMixin
from tests.support.toy_operators import plain_job_operator
from tests.unit.mixins.test_stateful import BatchOperator

CONTEXTS = {"none": None, "empty": {}, "mock": mock.MagicMock()}


class PlainJobOperator(plain_job_operator(ResumableJobMixin)):
    """Written like a user's operator, with no use of the context of its own."""

    external_id_key = "plain_job"
    sends_token = True


@pytest.mark.parametrize("durable", [True, False])
@pytest.mark.parametrize("name", sorted(CONTEXTS))
def test_a_job_operator_submits_once_per_call(job_system, name, durable):
    op = PlainJobOperator(task_id="t", base_url=job_system.url, durable=durable)
    with mock.patch.object(type(op), "log", new_callable=mock.PropertyMock) as log:
        assert op.execute(CONTEXTS[name]) == "job-1"
        assert op.execute(CONTEXTS[name]) == "job-2", "nothing durable: a second call is a second job"
    assert len({job.token for job in job_system.jobs.values()}) == 2
    messages = [str(call.args[0]) for call in log.return_value.info.call_args_list if call.args]
    said = sum("running without durable state" in message for message in messages)
    assert said == (1 if durable else 0), "said once per operator, and only when durability was asked for"


@pytest.mark.parametrize("name", sorted(CONTEXTS))
def test_a_batch_walk_runs_through_without_checkpoints_surviving(name):
    op = BatchOperator(task_id="t", items=list(range(6)), checkpoint_every=1)
    run = op.execute(CONTEXTS[name])
    assert run.batches_done == 3
    again = BatchOperator(task_id="t", items=list(range(6)))
    assert again.execute(CONTEXTS[name]).resumed_from == 0


def test_a_test_store_configured_by_the_user_is_used(job_system, memory_store):
    op = PlainJobOperator(task_id="t", base_url=job_system.url)
    assert op.execute({}) == "job-1"
    assert memory_store.get("plain_job")["external_id"] == "job-1"
    assert op.execute({}) == "job-1", "durable through the configured store: the second call returns the job"
    assert len(job_system.jobs) == 1


@pytest.mark.parametrize("name", ["none", "mock"])
def test_the_http_drop_in(tmp_path, requests_mock, monkeypatch, name):
    from airflow.providers.resumable.operators.http import ResumablePaginatedHttpOperator

    monkeypatch.setenv("AIRFLOW_CONN_NEWS", "http://api.test")
    requests_mock.get("http://api.test/items", json={"items": [1, 2]})
    op = ResumablePaginatedHttpOperator(
        task_id="t",
        http_conn_id="news",
        endpoint="items",
        method="GET",
        records_path="items",
        output_path=str(tmp_path),
    )
    manifest = op.execute(CONTEXTS[name])
    assert manifest["records"] == 2


@pytest.mark.parametrize("durable", [True, False])
@pytest.mark.parametrize("name", ["none", "mock"])
def test_the_databricks_drop_in(databricks, name, durable):
    from airflow.providers.resumable.operators.databricks import ResumableDatabricksSubmitRunOperator

    op = ResumableDatabricksSubmitRunOperator(
        task_id="t",
        databricks_conn_id="databricks_fake",
        notebook_task={"notebook_path": "/etl"},
        existing_cluster_id="c-1",
        polling_period_seconds=0,
        durable=durable,
    )
    op.execute(CONTEXTS[name])
    submitted = [r["params"] for r in databricks.requests if r["endpoint"] and r["endpoint"].endswith("runs/submit")]
    assert len(submitted) == 1
    assert submitted[0]["idempotency_token"].startswith("rsm-")
