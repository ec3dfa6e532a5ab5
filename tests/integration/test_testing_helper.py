"""The shipped testing helper on a real metadata DB, where the docs example does not go: mapped tasks,
faults on one operator object, XComs by key, clearing one task, and what it says when misused."""

from __future__ import annotations

from datetime import timedelta

import pytest

from airflow.providers.resumable.testing import clear_and_rerun, fail_on_tries, run_dag
from airflow.providers.resumable.version_compat import BaseOperator
from tests.integration.harness import make_dag

pytestmark = pytest.mark.integration


class Step(BaseOperator):
    def __init__(self, *, part: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.part = part

    def execute(self, context):
        context["ti"].xcom_push(key="seen_try", value=context["ti"].try_number)
        return self.work(self.part)

    def work(self, part):
        return part * 10


def test_a_fault_counts_calls_per_mapped_task_instance(request):
    dag = make_dag(request)
    Step.partial(task_id="step", retries=1, retry_delay=timedelta(0), dag=dag).expand(part=[1, 2])
    with fail_on_tries(Step, "work", tries={1}) as fault:
        run = run_dag(dag)
    assert run.state == "success"
    assert fault.fired == [1, 1], "the first call of try 1 of each mapped instance"
    assert [run.ti("step", map_index=i).try_number for i in (0, 1)] == [2, 2]
    assert [run.xcom("step", map_index=i) for i in (0, 1)] == [10, 20]
    assert run.xcom("step", key="seen_try", map_index=1) == 2


def test_a_fault_on_one_operator_object_leaves_the_others_alone(request):
    dag = make_dag(request)
    flaky = Step(task_id="flaky", retries=2, retry_delay=timedelta(0), dag=dag)
    Step(task_id="steady", retries=2, retry_delay=timedelta(0), dag=dag)
    with fail_on_tries(flaky, "work", tries={1, 2}) as fault:
        run = run_dag(dag)
    assert fault.fired == [1, 2]
    assert (run.ti("flaky").state, run.ti("flaky").try_number) == ("success", 3)
    assert (run.ti("steady").state, run.ti("steady").try_number) == ("success", 1)


def test_clearing_one_task_reruns_only_it(request):
    dag = make_dag(request)
    first_task = Step(task_id="first", dag=dag)
    first_task >> Step(task_id="second", dag=dag)
    first = run_dag(dag)
    again = clear_and_rerun(dag, first.run_id, task_ids=["second"])
    assert again.run_id == first.run_id
    assert again.state == "success"
    assert again.ti("first").try_number == 1
    assert (again.ti("second").try_number, again.ti("second").max_tries) == (2, 1)
    assert first.ti("second").try_number == 1, "a result is a snapshot of its run"


def test_a_run_that_fails_for_good_is_reported_not_raised(request):
    dag = make_dag(request)
    Step(task_id="doomed", retries=1, retry_delay=timedelta(0), dag=dag)
    with fail_on_tries(Step, "work", tries={1, 2}):
        run = run_dag(dag)
    assert run.state == "failed"
    assert (run.ti("doomed").state, run.ti("doomed").try_number) == ("failed", 2)


def test_misuse_is_named(request):
    dag = make_dag(request)
    Step(task_id="only", dag=dag)
    run = run_dag(dag)
    with pytest.raises(LookupError, match=r"nothing to clear: no task instances .* with task_ids=\['nope'\]"):
        clear_and_rerun(dag, run, task_ids=["nope"])
    with pytest.raises(KeyError, match="has no task instance task_id='nope'"):
        run.ti("nope")
