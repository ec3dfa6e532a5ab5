"""The Databricks adapters with requests-mock (and, for whole tries, the fake Jobs API): what each call sends."""

from __future__ import annotations

import json
import re
from unittest import mock

import pytest
import requests

from airflow.providers.resumable.mixins import JobNotFoundError
from airflow.providers.resumable.operators.databricks import (
    ResumableDatabricksRunNowOperator,
    ResumableDatabricksSubmitRunOperator,
    http_status,
)
from airflow.providers.resumable.version_compat import AirflowException
from tests.support.context import FakeTI, make_context
from tests.support.emr import task_deferred
from tests.support.job_run import while_polling

HOST = "https://adb-1.test"


def api(endpoint: str) -> re.Pattern[str]:
    """Provider 7.0 calls the Jobs API 2.1, newer ones 2.2: match either."""
    return re.compile(rf"{re.escape(HOST)}/api/2\.[12]/jobs/{re.escape(endpoint)}(\?|$)")


NOTEBOOK = {"notebook_path": "/Shared/etl"}


@pytest.fixture(autouse=True)
def mocked_connection(monkeypatch):
    # A password shaped like a personal access token: the secrets masker keeps it for the rest of the
    # process, and a common word ("token") would then refuse any stored value containing it, such as
    # the decision "resubmit_same_token" in a later test's job record history.
    monkeypatch.setenv(
        "AIRFLOW_CONN_DATABRICKS_MOCK",
        json.dumps({"conn_type": "databricks", "host": "adb-1.test", "password": "dapi0123456789abcdef"}),
    )


def submit_op(**kwargs):
    kwargs.setdefault("notebook_task", NOTEBOOK)
    kwargs.setdefault("existing_cluster_id", "0101-etl")
    return ResumableDatabricksSubmitRunOperator(
        task_id="run", databricks_conn_id="databricks_mock", databricks_retry_limit=1, **kwargs
    )


def run_now_op(**kwargs):
    kwargs.setdefault("job_id", 42)
    return ResumableDatabricksRunNowOperator(
        task_id="run", databricks_conn_id="databricks_mock", databricks_retry_limit=1, **kwargs
    )


def state(life_cycle, result=None):
    body = {"run_id": 7, "run_page_url": f"{HOST}/#job/0/run/7", "state": {"life_cycle_state": life_cycle}}
    if result:
        body["state"]["result_state"] = result
    return body


class TestParseTime:
    def test_a_token_databricks_would_refuse_names_the_value(self):
        with pytest.raises(ValueError, match=r"idempotency_token must be a string of 1-64 characters.*'x{65}'"):
            submit_op(idempotency_token="x" * 65)

    def test_a_token_inside_json_is_checked_too(self):
        with pytest.raises(ValueError, match="idempotency_token"):
            ResumableDatabricksSubmitRunOperator(task_id="run", json={"idempotency_token": "", **NOTEBOOK})

    def test_a_templated_token_is_checked_when_rendered(self):
        assert submit_op(idempotency_token="{{ run_id }}").requested_idempotency_token == "{{ run_id }}"

    def test_mixin_arguments_are_validated(self):
        with pytest.raises(TypeError, match="durable must be True or False, got 'yes'"):
            submit_op(durable="yes")
        with pytest.raises(ValueError, match="spec_change_policy"):
            run_now_op(spec_change_policy="sometimes")

    @pytest.mark.parametrize("factory", [submit_op, run_now_op])
    def test_the_token_is_templated_under_its_own_name(self, factory):
        op = factory()
        official = type(op).__bases__[1]
        assert "requested_idempotency_token" in op.template_fields
        assert "idempotency_token" not in op.template_fields
        assert set(official.template_fields) - {"idempotency_token"} <= set(op.template_fields)

    def test_durable_by_default_and_one_durable_argument(self):
        assert submit_op().durable is True
        assert submit_op(durable=False).durable is False


class TestStatus:
    @pytest.mark.parametrize(
        ("life_cycle", "result", "active", "succeeded"),
        [
            ("PENDING", None, True, False),
            ("QUEUED", None, True, False),
            ("RUNNING", None, True, False),
            ("TERMINATING", None, True, False),
            ("TERMINATED", "SUCCESS", False, True),
            ("TERMINATED", "FAILED", False, False),
            ("TERMINATED", "CANCELED", False, False),
            ("TERMINATED", "TIMEDOUT", False, False),
            ("INTERNAL_ERROR", "FAILED", False, False),
            ("SKIPPED", None, False, False),
        ],
    )
    def test_states_map_to_the_mixin(self, requests_mock, life_cycle, result, active, succeeded):
        requests_mock.get(api("runs/get"), json=state(life_cycle, result))
        op = submit_op()
        status = op.get_job_status(7, make_context())
        assert requests_mock.last_request.qs == {"run_id": ["7"]}
        assert op.is_job_active(status) is active
        assert op.is_job_succeeded(status) is succeeded

    def test_an_expired_run_is_not_found(self, requests_mock):
        requests_mock.get(
            api("runs/get"), status_code=404, json={"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "gone"}
        )
        with pytest.raises(JobNotFoundError, match="run 7 does not exist"):
            submit_op().get_job_status(7, make_context())

    def test_a_server_error_is_not_mistaken_for_an_expired_run(self, requests_mock):
        requests_mock.get(api("runs/get"), status_code=500, text="oops")
        with pytest.raises(AirflowException) as raised:
            submit_op().get_job_status(7, make_context())
        assert not isinstance(raised.value, JobNotFoundError)

    def test_http_status_reads_both_error_styles(self):
        response = requests.Response()
        response.status_code = 404

        def old_style_call():
            try:
                raise requests.HTTPError(response=response)
            except requests.HTTPError:
                raise AirflowException("Response: ..., Status Code: 404")  # noqa: B904 - as provider < 7.21 does

        with pytest.raises(AirflowException) as raised:
            old_style_call()
        assert http_status(raised.value) == 404

        class DatabricksApiError(AirflowException):  # provider 7.21+
            http_status_code = 404

        assert http_status(DatabricksApiError("gone")) == 404
        assert http_status(ValueError("no status")) is None


class TestSubmit:
    def test_submit_sends_the_mixins_token_and_the_official_payload(self, requests_mock):
        submit = requests_mock.post(api("runs/submit"), json={"run_id": 7})
        op = submit_op(timeout_seconds=60)
        op.idempotency_token = "rsm-abc"
        assert op.submit_job(make_context()) == 7
        body = submit.last_request.json()
        assert body == {
            "notebook_task": NOTEBOOK,
            "existing_cluster_id": "0101-etl",
            "timeout_seconds": "60",
            "run_name": "run",
            "idempotency_token": "rsm-abc",
        }
        assert op.run_id == 7

    def test_a_token_the_user_passed_wins(self, requests_mock, caplog):
        submit = requests_mock.post(api("runs/submit"), json={"run_id": 7})
        op = submit_op(idempotency_token="nightly-2026-01-01")
        op.idempotency_token = "rsm-abc"
        op.submit_job(make_context())
        assert submit.last_request.json()["idempotency_token"] == "nightly-2026-01-01"

    def test_the_fingerprint_ignores_the_token_and_sees_the_spec(self):
        a, b = submit_op(), submit_op(idempotency_token="mine")
        assert a.job_fingerprint(make_context()) == b.job_fingerprint(make_context())
        changed = submit_op(notebook_task={"notebook_path": "/Shared/other"})
        assert changed.job_fingerprint(make_context()) != a.job_fingerprint(make_context())

    def test_run_now_resolves_the_job_name_and_cancels_earlier_runs_first(self, requests_mock):
        requests_mock.get(api("list"), json={"jobs": [{"job_id": 42, "settings": {"name": "etl"}}]})
        cancel_all = requests_mock.post(api("runs/cancel-all"), json={})
        run_now = requests_mock.post(api("run-now"), json={"run_id": 8})
        op = ResumableDatabricksRunNowOperator(
            task_id="run", job_name="etl", cancel_previous_runs=True, databricks_conn_id="databricks_mock"
        )
        op.idempotency_token = "rsm-abc"
        assert op.submit_job(make_context()) == 8
        assert cancel_all.last_request.json() == {"job_id": 42}
        assert run_now.last_request.json() == {"job_id": 42, "idempotency_token": "rsm-abc"}
        history = [r.path.split("/jobs/")[1] for r in requests_mock.request_history]
        assert history.index("runs/cancel-all") < history.index("run-now")

    def test_run_now_repeating_a_lost_request_does_not_cancel(self, requests_mock):
        cancel_all = requests_mock.post(api("runs/cancel-all"), json={})
        requests_mock.post(api("run-now"), json={"run_id": 8})
        op = run_now_op(cancel_previous_runs=True)
        op.idempotency_token, op.resubmitting = "rsm-abc", True
        op.submit_job(make_context())
        assert not cancel_all.called

    def test_run_now_without_a_job_fails_before_any_call(self, requests_mock):
        op = ResumableDatabricksRunNowOperator(
            task_id="run", cancel_previous_runs=True, databricks_conn_id="databricks_mock"
        )
        op.idempotency_token = "rsm-abc"
        with pytest.raises(ValueError, match="cancel_previous_runs=True requires"):
            op.submit_job(make_context())
        assert not requests_mock.called


class TestResultKillAndCompletion:
    def test_the_already_succeeded_path_pushes_the_official_xcoms(self, requests_mock):
        requests_mock.get(api("runs/get"), json=state("TERMINATED", "SUCCESS"))
        ti = FakeTI()
        assert submit_op().get_job_result(7, make_context(ti)) is None
        assert ti.xcoms == {"run_id": 7, "run_page_url": f"{HOST}/#job/0/run/7"}

    def test_kill_leaves_the_run_by_default(self, requests_mock):
        cancel = requests_mock.post(api("runs/cancel"), json={})
        op = submit_op()
        op.run_id = 7
        while_polling(op, 7, make_context())
        op.on_kill()
        assert not cancel.called, "the official on_kill would have cancelled it"

    def test_cancel_on_kill_cancels(self, requests_mock):
        cancel = requests_mock.post(api("runs/cancel"), json={})
        op = submit_op(cancel_on_kill=True)
        op.run_id = 7
        while_polling(op, 7, make_context())
        op.on_kill()
        assert cancel.last_request.json() == {"run_id": 7}

    def test_a_successful_deferral_finishes_the_record_once_success_is_recorded(self, ephemeral_store):
        from airflow.providers.resumable.plugins.resumable import listener

        ephemeral_store.set("databricks_run_id", {"kind": "resumable-job"})
        event = {"run_id": 7, "run_page_url": "u", "run_state": json.dumps(state("TERMINATED", "SUCCESS")["state"])}
        event["errors"] = []
        ti = FakeTI()
        submit_op(deferrable=True).execute_complete(make_context(ti), event)
        assert ephemeral_store.get("databricks_run_id") is not None, "kept until Airflow records the success"
        listener.on_task_instance_success(previous_state=None, task_instance=ti)
        assert ephemeral_store.get("databricks_run_id") is None

    def test_a_failed_deferral_raises_and_keeps_the_record(self, memory_store):
        memory_store.set("databricks_run_id", {"kind": "resumable-job"})
        event = {"run_id": 7, "run_page_url": "u", "run_state": json.dumps(state("TERMINATED", "FAILED")["state"])}
        event["errors"] = []
        with pytest.raises(AirflowException, match="failed with terminal state"):
            submit_op(deferrable=True).execute_complete(make_context(), event)
        assert memory_store.get("databricks_run_id") == {"kind": "resumable-job"}


class TestAgainstTheFake:
    """Whole tries against the fake Jobs API, with an in-memory store."""

    def op(self, cls=ResumableDatabricksSubmitRunOperator, **kwargs):
        if cls is ResumableDatabricksSubmitRunOperator:
            kwargs.setdefault("notebook_task", NOTEBOOK)
            kwargs.setdefault("existing_cluster_id", "0101-etl")
        return cls(
            task_id="run",
            databricks_conn_id="databricks_fake",
            polling_period_seconds=0,
            databricks_retry_limit=2,
            databricks_retry_delay=0,
            **kwargs,
        )

    def test_a_run_recorded_by_the_official_operator_is_adopted(self, databricks, memory_store):
        databricks.running_polls = 50
        first = self.op()
        first.idempotency_token = "official-less"
        run_id = first._hook.submit_run({"run_name": "x", "notebook_task": NOTEBOOK})
        memory_store.set("databricks_run_id", run_id)  # what the official 7.23 operator stores on 3.3
        databricks.running_polls = 0
        ti = FakeTI()
        self.op().execute(make_context(ti))
        assert len(databricks.runs) == 1
        assert ti.xcoms["run_id"] == run_id
        assert databricks.count("jobs/runs/submit") == 1, "reattached, not submitted"

    def test_one_record_in_state_and_no_second_persistence(self, databricks, memory_store):
        self.op().execute(make_context())
        assert sorted(memory_store.data) == ["databricks_run_id"]
        assert memory_store.get("databricks_run_id")["kind"] == "resumable-job"

    @pytest.mark.parametrize("deferrable", [False, True])
    def test_the_record_keeps_the_run_page_fetched_once_per_try(self, databricks, memory_store, deferrable):
        from airflow.providers.databricks.hooks.databricks import DatabricksHook

        fetch = DatabricksHook.get_run_page_url
        with mock.patch.object(DatabricksHook, "get_run_page_url", autospec=True, side_effect=fetch) as spy:
            ti = FakeTI()
            op = self.op(deferrable=deferrable)
            if deferrable:
                with pytest.raises(task_deferred()):
                    op.execute(make_context(ti))
            else:
                op.execute(make_context(ti))
        record = memory_store.get("databricks_run_id")
        run_id = record["external_id"]
        assert record["url"] == ti.xcoms["run_page_url"]
        assert record["url"].endswith(f"/run/{run_id}")
        assert [entry["decision"] for entry in record["history"]] == ["submit"]
        assert spy.call_count == 1, "the link the record keeps is the one the official code pushes"

    def test_not_durable_submits_each_try_with_its_own_token(self, databricks, memory_store):
        for try_number in (1, 2):
            self.op(durable=False).execute(make_context(FakeTI(try_number=try_number)))
        assert len(databricks.runs) == 2
        assert len({r.token for r in databricks.runs.values()}) == 2
        assert memory_store.data == {}

    def test_a_reattaching_run_now_rebuilds_the_payload_the_official_execute_leaves(self, databricks, memory_store):
        job_id = databricks.add_job("nightly")
        databricks.running_polls = 50
        first = self.op(ResumableDatabricksRunNowOperator, job_name="nightly")
        first.idempotency_token = "rsm-first"
        run_id = first.submit_job(make_context())
        memory_store.set("databricks_run_id", run_id)  # a record from an earlier try
        databricks.running_polls = 0
        retry = self.op(ResumableDatabricksRunNowOperator, job_name="nightly")
        retry.execute(make_context())
        assert databricks.count("jobs/run-now") == 1, "reattached, not run again"
        assert retry._merged_json["job_id"] == job_id, "what the repair path reads, without repair_run"
        assert not retry.repair_run


class _Notes:
    """Stands in for the try's job run: what ``resume_failed_job`` notes in the resume intent."""

    def __init__(self) -> None:
        self.notes: list[object] = []
        self.task_try = type("NotDurable", (), {"durable": False})()

    def note_resume(self, detail: object) -> None:
        self.notes.append(detail)


def history(*repair_ids):
    return {
        "run_id": 7,
        "state": {"life_cycle_state": "TERMINATED", "result_state": "FAILED"},
        "repair_history": [{"type": "ORIGINAL"}] + [{"type": "REPAIR", "id": i} for i in repair_ids],
    }


def resuming(op):
    op.job_run = _Notes()
    return op


class TestRepair:
    @pytest.mark.parametrize("status", ["SKIPPED:", "TERMINATED:SUCCESS", "TERMINATED:UPSTREAM_FAILED"])
    def test_a_run_databricks_cannot_repair_is_submitted_afresh(self, requests_mock, status):
        assert resuming(submit_op()).resume_failed_job(7, status, make_context()) is None
        assert not requests_mock.request_history

    @pytest.mark.parametrize("status", ["TERMINATED:FAILED", "TERMINATED:TIMEDOUT", "TERMINATED:CANCELED"])
    def test_the_repair_is_built_on_the_noted_latest_repair_id(self, requests_mock, status):
        requests_mock.get(api("runs/get"), json=history(11))
        repair = requests_mock.post(api("runs/repair"), json={"repair_id": 12})
        op = resuming(submit_op())
        context = make_context()
        assert op.resume_failed_job(7, status, context) == 7, "the same run is polled"
        assert op.job_run.notes == [{"latest_repair_id": 11}], "noted before asking for the repair"
        assert repair.last_request.json() == {"run_id": 7, "rerun_all_failed_tasks": True, "latest_repair_id": 11}
        assert context["ti"].xcoms == {"repair_id": 12}

    def test_a_repeated_repair_reuses_the_noted_id_so_databricks_refuses_a_second_one(self, requests_mock):
        repair = requests_mock.post(api("runs/repair"), json={"repair_id": 12})
        op = resuming(submit_op())
        op.resubmitting, op.resume_detail = True, {"latest_repair_id": None}
        op.resume_failed_job(7, "TERMINATED:FAILED", make_context())
        assert repair.last_request.json() == {"run_id": 7, "rerun_all_failed_tasks": True}
        assert op.job_run.notes == []

    def test_a_refused_repair_with_no_repair_since_submits_afresh(self, requests_mock):
        requests_mock.get(api("runs/get"), json=history())
        requests_mock.post(api("runs/repair"), status_code=400, json={"error_code": "INVALID_PARAMETER_VALUE"})
        assert resuming(submit_op()).resume_failed_job(7, "TERMINATED:FAILED", make_context()) is None

    def test_a_refused_repeat_of_a_repair_that_went_through_is_found(self, requests_mock):
        requests_mock.get(api("runs/get"), [{"json": history()}, {"json": history(12)}])
        requests_mock.post(api("runs/repair"), status_code=400, json={"error_code": "INVALID_PARAMETER_VALUE"})
        context = make_context()
        assert resuming(submit_op()).resume_failed_job(7, "TERMINATED:FAILED", context) == 7
        assert context["ti"].xcoms == {"repair_id": 12}

    def test_a_server_error_with_no_repair_since_fails_the_try(self, requests_mock):
        requests_mock.get(api("runs/get"), json=history())
        requests_mock.post(api("runs/repair"), status_code=500, text="oops")
        with pytest.raises(AirflowException):
            resuming(submit_op()).resume_failed_job(7, "TERMINATED:FAILED", make_context())

    def test_run_now_sends_its_job_parameters_and_cancel_previous_runs_submits_afresh(self, requests_mock):
        requests_mock.get(api("runs/get"), json=history())
        repair = requests_mock.post(api("runs/repair"), json={"repair_id": 1})
        op = resuming(run_now_op(job_parameters={"day": "1"}))
        assert op.resume_failed_job(7, "TERMINATED:FAILED", make_context()) == 7
        assert repair.last_request.json()["job_parameters"] == {"day": "1"}
        cancelling = resuming(run_now_op(cancel_previous_runs=True))
        assert cancelling.resume_failed_job(7, "TERMINATED:FAILED", make_context()) is None

    @pytest.mark.parametrize(
        ("noted", "repairs", "found"),
        [
            (None, (11,), None),  # the earlier try never asked for a repair
            ({"latest_repair_id": None}, (), None),
            ({"latest_repair_id": None}, (11,), 7),
            ({"latest_repair_id": 11}, (11,), None),
            ({"latest_repair_id": 11}, (11, 12), 7),
        ],
    )
    def test_find_resumed_job_reads_the_repair_history(self, requests_mock, noted, repairs, found):
        requests_mock.get(api("runs/get"), json=history(*repairs))
        op = resuming(submit_op())
        op.resume_detail = noted
        assert op.find_resumed_job(7, "rsm-token", make_context()) == found
