"""The Notebook and Task drop-ins against the fake Jobs API with task runs: what each try sends and stores."""

from __future__ import annotations

import json
from unittest import mock

import pytest

from airflow.providers.resumable.operators.databricks_tasks import (
    ResumableDatabricksNotebookOperator,
    ResumableDatabricksTaskOperator,
)
from airflow.providers.resumable.version_compat import AirflowException
from tests.support.context import FakeTI, make_context
from tests.support.databricks import FAST
from tests.support.job_run import while_polling


def notebook(**kwargs):
    kwargs.setdefault("notebook_path", "/Shared/etl")
    kwargs.setdefault("source", "WORKSPACE")
    kwargs.setdefault("existing_cluster_id", "0101-etl")
    return ResumableDatabricksNotebookOperator(task_id="nb", **FAST, **kwargs)


def task(**kwargs):
    kwargs.setdefault("task_config", {"spark_python_task": {"python_file": "dbfs:/etl.py"}})
    kwargs.setdefault("existing_cluster_id", "0101-etl")
    return ResumableDatabricksTaskOperator(task_id="task", **FAST, **kwargs)


def in_a_workflow(op, run_id):
    """``op`` as a member of a ``DatabricksWorkflowTaskGroup`` whose launch task started ``run_id``."""
    op.workflow_run_metadata = {"conn_id": "databricks_fake", "job_id": 501, "run_id": run_id}
    return mock.patch.object(type(op), "_databricks_workflow_task_group", new_callable=mock.PropertyMock)


class TestParseTime:
    def test_mixin_arguments_are_validated(self):
        with pytest.raises(ValueError, match="spec_change_policy must be one of"):
            notebook(spec_change_policy="sometimes")
        with pytest.raises(TypeError, match="cancel_on_kill must be True or False, got 'yes'"):
            task(cancel_on_kill="yes")

    def test_a_failed_run_is_resubmitted_never_repaired(self):
        """A one-task run has nothing a repair would skip: see docs/operators/databricks_tasks.rst."""
        from airflow.providers.resumable.mixins.decisions import JobFailurePolicy

        assert notebook().on_job_failure is JobFailurePolicy.RESUBMIT
        assert task(on_job_failure="fail").on_job_failure is JobFailurePolicy.FAIL
        with pytest.raises(ValueError, match="on_job_failure='resume' needs an operator that implements"):
            task(on_job_failure="resume")

    def test_the_official_template_fields_are_kept(self):
        from airflow.providers.databricks.operators.databricks import DatabricksNotebookOperator

        assert ResumableDatabricksNotebookOperator.template_fields == DatabricksNotebookOperator.template_fields


class TestSubmit:
    def test_the_request_is_the_official_one_plus_the_stored_token(self, databricks_workspace, memory_store):
        op = notebook(notebook_params={"day": "2026-01-01"})
        official_json = op._get_run_json()
        ti = FakeTI()
        op.execute(make_context(ti))
        (request,) = [r["params"] for r in databricks_workspace.requests if r["endpoint"] == "jobs/runs/submit"]
        token = request.pop("idempotency_token")
        assert token == memory_store.get("databricks_run_id")["token"]
        assert request == json.loads(json.dumps(official_json))
        assert "idempotency_token" not in op._get_run_json(), "only while submit_job runs"
        assert ti.xcoms["run_id"] == 1001

    def test_the_fingerprint_ignores_the_token_and_sees_the_request(self):
        op = notebook(notebook_params={"day": "1"})
        before = op.job_fingerprint(make_context())
        op._submit_token = "rsm-anything"
        assert op.job_fingerprint(make_context()) != before, "the token is not part of the spec ..."
        op._submit_token = None
        assert op.job_fingerprint(make_context()) == before, "... once submit_job is done with it"
        op.notebook_params = {"day": "2"}
        assert op.job_fingerprint(make_context()) != before

    def test_a_retry_reattaches_to_the_stored_run_and_pushes_the_xcoms(self, databricks_workspace, memory_store):
        first = task()
        first.monitor_databricks_job = mock.Mock(side_effect=RuntimeError("worker lost mid-poll"))
        with pytest.raises(RuntimeError, match="worker lost"):
            first.execute(make_context(FakeTI(try_number=1)))
        run_id = memory_store.get("databricks_run_id")["external_id"]
        ti = FakeTI(try_number=2)
        task().execute(make_context(ti))
        assert databricks_workspace.count("jobs/runs/submit") == 1, "reattached, not submitted"
        assert ti.xcoms["run_id"] == run_id
        assert ti.xcoms["run_page_url"].endswith(f"/run/{run_id}")

    def test_the_record_keeps_the_run_page_the_official_launch_fetched(self, databricks_workspace, memory_store):
        from airflow.providers.databricks.hooks.databricks import DatabricksHook

        fetch = DatabricksHook.get_run_page_url
        with mock.patch.object(DatabricksHook, "get_run_page_url", autospec=True, side_effect=fetch) as spy:
            ti = FakeTI()
            notebook().execute(make_context(ti))
        record = memory_store.get("databricks_run_id")
        assert record["url"] == ti.xcoms["run_page_url"]
        assert record["url"].endswith(f"/run/{record['external_id']}")
        assert spy.call_count == 1, "job_url reused what _launch_job fetched"

    def test_not_durable_submits_each_try_with_its_own_token(self, databricks_workspace, memory_store):
        for try_number in (1, 2):
            notebook(durable=False).execute(make_context(FakeTI(try_number=try_number)))
        assert len({r.token for r in databricks_workspace.runs.values()}) == 2
        assert memory_store.data == {}

    def test_a_failed_task_run_fails_the_try_and_keeps_the_record(self, databricks_workspace, memory_store):
        databricks_workspace.plan_results("FAILED")
        with pytest.raises(AirflowException, match="FAILED"):
            notebook().execute(make_context())
        assert memory_store.get("databricks_run_id")["external_id"] == 1001


class TestInAWorkflowGroup:
    def test_it_follows_the_workflow_run_and_stores_nothing(self, databricks_workspace, memory_store):
        op = notebook()
        key = op._get_run_json()["run_name"]  # the task key, on every provider version
        run_id = task()._hook.submit_run({"run_name": "workflow", "tasks": [{"task_key": key}]})
        with in_a_workflow(op, run_id):
            op.execute(make_context())
        assert databricks_workspace.count("jobs/runs/submit") == 1, "only the launch task's"
        assert memory_store.data == {}
        assert databricks_workspace.tasks_of(run_id)[0].result_state == "SUCCESS"

    def test_in_a_real_workflow_group_the_job_spec_is_the_official_one(self):
        """The group's launch task builds the job from each member: ours add nothing to it (no token)."""
        from airflow.providers.databricks.operators.databricks import DatabricksNotebookOperator
        from airflow.providers.databricks.operators.databricks_workflow import DatabricksWorkflowTaskGroup

        from airflow.providers.resumable.testing import dag_for_test

        specs = {}
        for cls in (DatabricksNotebookOperator, ResumableDatabricksNotebookOperator):
            with (
                dag_for_test(f"workflow_{cls.__name__}") as dag,
                DatabricksWorkflowTaskGroup(
                    group_id="wf", databricks_conn_id="databricks_fake", job_clusters=[{"job_cluster_key": "c"}]
                ),
            ):
                member = cls(task_id="nb", notebook_path="/x", source="WORKSPACE", job_cluster_key="c")
            assert member._databricks_workflow_task_group is not None
            launch = dag.task_dict["wf.launch"]
            (task_json,) = launch.create_workflow_json()["tasks"]
            specs[cls] = {k: v for k, v in task_json.items() if k not in ("task_key", "depends_on")}
        assert specs[ResumableDatabricksNotebookOperator] == specs[DatabricksNotebookOperator]
        assert "idempotency_token" not in json.dumps(specs[ResumableDatabricksNotebookOperator])

    @pytest.mark.parametrize("cancel_on_kill", [False, True])
    def test_a_kill_cancels_the_child_run_only_when_asked(self, databricks_workspace, cancel_on_kill):
        op = task(cancel_on_kill=cancel_on_kill)
        key = op._get_run_json()["run_name"]
        run_id = op._hook.submit_run({"run_name": "workflow", "tasks": [{"task_key": key}]})
        op.databricks_run_id = run_id
        with in_a_workflow(op, run_id):
            op.on_kill()
        (child,) = databricks_workspace.tasks_of(run_id)
        cancels = databricks_workspace.count("jobs/runs/cancel")
        assert cancels == (1 if cancel_on_kill and _official_cancels_on_kill() else 0)
        assert (child.result_state == "CANCELED") is bool(cancels)


def _official_cancels_on_kill() -> bool:
    """7.23 has an on_kill on the task operators that cancels the run; 7.0 and 7.16 have none."""
    from airflow.providers.databricks.operators.databricks import DatabricksTaskBaseOperator

    return "on_kill" in vars(DatabricksTaskBaseOperator)


class TestKillAndCompletion:
    def test_kill_leaves_the_run_by_default(self, databricks_workspace):
        op = notebook()
        op.databricks_run_id = op._hook.submit_run({"run_name": "x", "notebook_task": {"notebook_path": "/x"}})
        while_polling(op, op.databricks_run_id, make_context())
        op.on_kill()
        assert databricks_workspace.count("jobs/runs/cancel") == 0

    def test_cancel_on_kill_cancels(self, databricks_workspace):
        op = notebook(cancel_on_kill=True)
        op.databricks_run_id = op._hook.submit_run({"run_name": "x", "notebook_task": {"notebook_path": "/x"}})
        while_polling(op, op.databricks_run_id, make_context())
        op.on_kill()
        assert databricks_workspace.runs[op.databricks_run_id].cancelled

    def test_a_successful_deferral_finishes_the_record_once_success_is_recorded(self, ephemeral_store):
        from airflow.providers.resumable.plugins.resumable import listener

        ephemeral_store.set("databricks_run_id", {"kind": "resumable-job"})
        run_state = json.dumps({"life_cycle_state": "TERMINATED", "result_state": "SUCCESS", "state_message": ""})
        ti = FakeTI()
        notebook(deferrable=True).execute_complete(
            make_context(ti), {"run_id": 7, "run_state": run_state, "errors": []}
        )
        assert ephemeral_store.get("databricks_run_id") is not None, "kept until Airflow records the success"
        listener.on_task_instance_success(previous_state=None, task_instance=ti)
        assert ephemeral_store.get("databricks_run_id") is None

    def test_a_failed_deferral_raises_and_keeps_the_record(self, memory_store):
        memory_store.set("databricks_run_id", {"kind": "resumable-job"})
        run_state = json.dumps({"life_cycle_state": "TERMINATED", "result_state": "FAILED", "state_message": ""})
        with pytest.raises(AirflowException, match="FAILED"):
            task(deferrable=True).execute_complete(make_context(), {"run_id": 7, "run_state": run_state, "errors": []})
        assert memory_store.get("databricks_run_id") == {"kind": "resumable-job"}
