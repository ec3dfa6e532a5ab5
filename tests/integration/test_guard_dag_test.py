"""
What reaches task state, inside Airflow's task runner: a connection password in a cursor is refused
(unless the operator opts in), and a retry's decision is counted.

The newsletter service repeats ``api_key`` in its next links, as many APIs do; the operator sends
the connection's password as ``api_key`` through a template, so Airflow loads the connection in the
task and registers the password with its secrets masker, as it does for any hook.
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from typing import TYPE_CHECKING
from unittest import mock

import pytest

from airflow.providers.resumable import observability
from airflow.providers.resumable.mixins import StatefulOperatorMixin
from airflow.providers.resumable.operators.http import LinkHeaderPagination, ResumablePaginatedHttpOperator
from airflow.providers.resumable.version_compat import AIRFLOW_V_3_3_PLUS, BaseOperator
from demo.newsletter_service import NewsletterService
from tests.integration.harness import make_dag, resumable_variables, run_dag
from tests.support.toy_operators import ToyJobOperator

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.integration

NATIVE = AIRFLOW_V_3_3_PLUS and os.environ.get("AIRFLOW__RESUMABLE__STATE_BACKEND", "auto") == "auto"
ERRORS: list[tuple[int, str, str]] = []


@pytest.fixture
def api_key() -> str:
    return f"key-{secrets.token_hex(12)}"


@pytest.fixture
def newsletter(monkeypatch, api_key):
    with NewsletterService(items=30, page_size=10, echo_params=("api_key",)) as service:
        # The key is the connection's password: Airflow masks it as soon as the task loads the connection.
        monkeypatch.setenv("AIRFLOW_CONN_NEWSLETTER", service.url.replace("http://", f"http://reader:{api_key}@"))
        ERRORS.clear()
        yield service


class RecordingCrawl(ResumablePaginatedHttpOperator):
    """Records what execute raised, so the test reads the message a person reads in the log."""

    def execute(self, context, **kwargs):
        # Airflow 2 threads a sentinel keyword through overridden execute() methods.
        try:
            return super().execute(context, **kwargs)
        except Exception as err:
            ERRORS.append((context["ti"].try_number, type(err).__name__, str(err)))
            raise


def crawl(dag, out: Path, **kwargs):
    kwargs.setdefault("pagination", LinkHeaderPagination())
    return RecordingCrawl(
        task_id="crawl",
        http_conn_id="newsletter",
        endpoint="issues/linked",
        method="GET",
        data={"limit": 10, "api_key": "{{ conn.newsletter.password }}"},
        output_path=f"file://{out}",
        checkpoint_every=1,
        retries=2,
        retry_delay=timedelta(0),
        page_retry_attempts=1,
        dag=dag,
        **kwargs,
    )


def stored_values(run) -> str:
    """Everything this run's crawl stored, as text, from whichever backend the leg uses."""
    if NATIVE:
        from airflow.models.task_state_store import TaskStateStoreModel
        from airflow.utils.session import create_session
        from sqlalchemy import select

        with create_session() as session:
            rows = session.scalars(
                select(TaskStateStoreModel.value).where(
                    TaskStateStoreModel.dag_id == run.dag_id, TaskStateStoreModel.task_id == "crawl"
                )
            ).all()
        return "\n".join(rows)
    from airflow.models.variable import Variable

    # The Variable outlives a failed run (the listener drops it only after success).
    return "\n".join(str(Variable.get(key)) for key in resumable_variables(run.dag_id))


def test_a_connection_password_in_a_cursor_fails_the_first_try(newsletter, api_key, tmp_path, request):
    dag = make_dag(request)
    crawl(dag, tmp_path)
    run = run_dag(dag)
    assert run.state == "failed"
    assert run.ti("crawl").try_number == 1, "refusing a secret is permanent: the retries are not used"
    assert [e[:2] for e in ERRORS] == [(1, "SecretInStateError")]
    message = ERRORS[0][2]
    assert api_key not in message
    assert "http_pages/checkpoint" in message
    assert "next_page.data.api_key" in message
    assert "allow_secrets_in_state=True to task 'crawl'" in message
    # Page 0 was written and its cursor refused. Written synchronously, the refusal stops the walk at
    # once; handed to a writer thread (Airflow 2), it fails the walk at one of the next pages.
    assert len(list(tmp_path.glob("part-*.jsonl"))) >= 1
    stored = stored_values(run)
    assert "resumable-checkpoint" not in stored
    assert api_key not in stored


def test_with_the_opt_in_it_is_stored(newsletter, api_key, tmp_path, request):
    dag = make_dag(request)
    crawl(dag, tmp_path, allow_secrets_in_state=True)
    run = run_dag(dag)
    assert run.state == "success"
    assert ERRORS == []
    assert run.xcom("crawl")["records"] == 30
    if NATIVE:
        # Kept after success on the native store (marked finished), so it can be read here.
        assert api_key in stored_values(run)


def test_dropping_the_key_from_the_links_needs_no_opt_in(newsletter, api_key, tmp_path, request):
    dag = make_dag(request)
    crawl(dag, tmp_path, pagination=LinkHeaderPagination(drop_params=("api_key",)))
    run = run_dag(dag)
    assert run.state == "success"
    assert run.xcom("crawl")["records"] == 30
    # Every page was still requested with the key: the operator's own data sends it, rendered afresh.
    assert [entry["query"].get("api_key") for entry in newsletter.log] == [api_key] * 3
    if NATIVE:
        assert api_key not in stored_values(run)


def test_a_retry_that_reattaches_counts_reattach(job_system, request):
    stats = mock.MagicMock()
    dag = make_dag(request)
    ToyJobOperator(
        task_id="job",
        base_url=job_system.url,
        spec={"cmd": "train"},
        crash_in_poll_on_tries=(1,),
        retries=1,
        retry_delay=timedelta(0),
        dag=dag,
    )
    with mock.patch.object(observability, "stats", return_value=stats):
        run = run_dag(dag)
    assert run.state == "success"
    assert run.ti("job").try_number == 2
    counted = [
        (c.kwargs["tags"]["decision"], c.kwargs["tags"]["dag_id"], c.kwargs["tags"]["task_id"])
        for c in stats.incr.call_args_list
        if c.args[0] == "resumable.decision"
    ]
    assert counted == [("submit", dag.dag_id, "job"), ("reattach", dag.dag_id, "job")]
    backends = {c.kwargs["tags"]["backend"] for c in stats.incr.call_args_list if c.args[0] == "resumable.decision"}
    assert backends == {"task_state_store" if NATIVE else "variable"}


class HugeCheckpoint(StatefulOperatorMixin, BaseOperator):
    """Carries its data in the checkpoint, as a checkpoint should not: about 2 MB."""

    def execute(self, context):
        try:
            self.save_checkpoint(context, {"rows": ["x" * 100] * 20_000, "next": 1})
        except Exception as err:
            ERRORS.append((context["ti"].try_number, type(err).__name__, str(err)))
            raise


def test_a_checkpoint_over_max_state_bytes_fails_the_first_try(request):
    """Refused before it reaches the store, by default, and permanent: the retries are not used."""
    ERRORS.clear()
    dag = make_dag(request)
    HugeCheckpoint(task_id="copy", retries=3, dag=dag)
    run = run_dag(dag)
    assert run.state == "failed"
    assert run.ti("copy").try_number == 1, "the next try would compute the same value"
    assert [e[:2] for e in ERRORS] == [(1, "StateTooLargeError")]
    assert ERRORS[0][2].startswith("Refusing to store a value this large:"), ERRORS[0][2]
    assert "over [resumable] max_state_bytes (1048576)" in ERRORS[0][2]
