"""The SQL statements drop-in against the fake Statement Execution API: one POST, a stored id, no guessing."""

from __future__ import annotations

import json
from unittest import mock

import pytest

from airflow.providers.resumable.mixins import JobNotFoundError, ResumableJobConflictError
from airflow.providers.resumable.version_compat import AirflowException
from tests.support.context import FakeTI, make_context
from tests.support.databricks import FAST, sql_module_or_skip

sql = sql_module_or_skip()
Ours = sql.ResumableDatabricksSQLStatementsOperator

INSERT = "INSERT INTO audit SELECT * FROM staged"


def statement_op(**kwargs):
    kwargs.setdefault("statement", INSERT)
    kwargs.setdefault("warehouse_id", "wh-1")
    return Ours(task_id="sql", **(FAST | {"databricks_retry_limit": 3}), **kwargs)


def posts(fake):
    return [r["params"] for r in fake.requests if r["endpoint"] == "sql/statements"]


def lost_first_try(fake, memory_store, **kwargs):
    """Try 1 posts the statement and never hears back: the record keeps an intent without an id."""
    fake.drop_responses("sql/statements", 1)
    with pytest.raises(Exception, match="Connection aborted|RemoteDisconnected|failed"):
        statement_op(**kwargs).execute(make_context(FakeTI(try_number=1)))
    record = memory_store.get("databricks_statement_id")
    assert record["token"]
    assert record.get("external_id") is None
    return record


class TestParseTime:
    def test_idempotent_statement_must_be_a_boolean(self):
        with pytest.raises(TypeError, match="idempotent_statement must be True or False, got 'yes'"):
            statement_op(idempotent_statement="yes")

    def test_the_official_template_fields_are_kept(self):
        from airflow.providers.databricks.operators.databricks import DatabricksSQLStatementsOperator

        assert tuple(Ours.template_fields) == tuple(DatabricksSQLStatementsOperator.template_fields)


class TestStatus:
    @pytest.mark.parametrize(
        ("state", "active", "succeeded"),
        [
            ("PENDING", True, False),
            ("RUNNING", True, False),
            ("SUCCEEDED", False, True),
            ("CLOSED", False, True),  # succeeded, result expired: never run it again
            ("FAILED", False, False),
            ("CANCELED", False, False),
        ],
    )
    def test_states_map_to_the_mixin(self, state, active, succeeded):
        op = statement_op()
        assert (op.is_job_active(state), op.is_job_succeeded(state)) == (active, succeeded)

    def test_a_forgotten_statement_is_a_conflict_unless_idempotent(self, databricks_workspace):
        with pytest.raises(ResumableJobConflictError, match=r"statement 01f0-gone is not known .*idempotent_statement"):
            statement_op().get_job_status("01f0-gone", make_context())
        with pytest.raises(JobNotFoundError):
            statement_op(idempotent_statement=True).get_job_status("01f0-gone", make_context())


class TestOnePost:
    def test_a_lost_answer_is_not_repeated_by_the_hook(self, databricks_workspace, memory_store):
        lost_first_try(databricks_workspace, memory_store)
        assert len(posts(databricks_workspace)) == 1, "databricks_retry_limit=3, yet one POST"
        assert len(databricks_workspace.statements) == 1

    def test_the_retry_refuses_naming_what_to_check(self, databricks_workspace, memory_store):
        record = lost_first_try(databricks_workspace, memory_store)
        with pytest.raises(ResumableJobConflictError) as raised:
            statement_op().execute(make_context(FakeTI(try_number=2)))
        message = str(raised.value)
        assert message.startswith("Not running the SQL statement again")
        for part in (
            "'wh-1'",
            INSERT,
            record["token"],
            record["intent_at"],
            "idempotent_statement=True",
            "state delete",
        ):
            assert part in message
        assert len(databricks_workspace.statements) == 1

    def test_declared_idempotent_the_retry_posts_again(self, databricks_workspace, memory_store):
        lost_first_try(databricks_workspace, memory_store, idempotent_statement=True)
        ti = FakeTI(try_number=2)
        statement_op(idempotent_statement=True).execute(make_context(ti))
        assert len(databricks_workspace.statements) == 2
        assert ti.xcoms["statement_id"] == memory_store.get("databricks_statement_id")["external_id"]

    def test_a_refused_post_leaves_no_intent_behind(self, databricks_workspace, memory_store):
        databricks_workspace.fail_requests("sql/statements", 1, status=429)
        with pytest.raises(AirflowException):
            statement_op().execute(make_context(FakeTI(try_number=1)))
        assert memory_store.get("databricks_statement_id") is None
        statement_op().execute(make_context(FakeTI(try_number=2)))
        assert len(databricks_workspace.statements) == 1

    def test_the_token_goes_into_a_query_tag_when_the_provider_sends_tags(self, databricks_workspace, memory_store):
        from airflow.providers.resumable.compat.databricks import sends_query_tags

        if not sends_query_tags(statement_op()):
            pytest.skip("this provider's operator sends no query_tags (7.16)")
        op = statement_op(query_tags={"team": "sales"})
        op.execute(make_context())
        (body,) = posts(databricks_workspace)
        tags = {t["key"]: t["value"] for t in body["query_tags"]}
        assert tags[sql.TOKEN_QUERY_TAG] == memory_store.get("databricks_statement_id")["token"]
        assert tags["team"] == "sales"
        assert op.query_tags == {"team": "sales"}, "the operator's own tags are left as they were"

    def test_not_durable_the_request_and_its_retries_are_the_official_ones(self, databricks_workspace, memory_store):
        databricks_workspace.fail_requests("sql/statements", 1, status=503)
        statement_op(durable=False).execute(make_context())
        bodies = posts(databricks_workspace)
        assert len(bodies) == 2, "the hook retried the POST, as the official operator's does"
        assert all(sql.TOKEN_QUERY_TAG not in json.dumps(b) for b in bodies)
        assert memory_store.data == {}


class TestReattach:
    def test_a_retry_reattaches_and_pushes_the_xcom(self, databricks_workspace, memory_store):
        first = statement_op()
        first._handle_execution = mock.Mock(side_effect=RuntimeError("worker lost mid-poll"))
        with pytest.raises(RuntimeError):
            first.execute(make_context(FakeTI(try_number=1)))
        ti = FakeTI(try_number=2)
        statement_op().execute(make_context(ti))
        (statement,) = databricks_workspace.statements.values()
        assert statement.state == "SUCCEEDED"
        assert ti.xcoms["statement_id"] == statement.statement_id

    def test_the_fingerprint_sees_the_statement_not_the_airflow_tags(self):
        op = statement_op()
        before = op.job_fingerprint(make_context())
        assert statement_op().job_fingerprint(make_context(FakeTI(try_number=3))) == before
        assert statement_op(statement="DELETE FROM audit").job_fingerprint(make_context()) != before

    def test_a_failed_deferral_raises_and_keeps_the_record(self, memory_store):
        memory_store.set("databricks_statement_id", {"kind": "resumable-job"})
        event = {"statement_id": "s1", "state": json.dumps({"state": "FAILED"}), "error": {"message": "bad"}}
        with pytest.raises(AirflowException, match="failed"):
            statement_op(deferrable=True).execute_complete(make_context(), event)
        assert memory_store.get("databricks_statement_id") == {"kind": "resumable-job"}
