"""``compat.airflow``: each shim does the same thing on every Airflow line (2.11, 3.2, 3.3, 3.4)."""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime

import pytest

from airflow.providers.resumable.compat import airflow as compat
from airflow.providers.resumable.compat.version_compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_4_PLUS, BaseOperator

# ---- operators and the testing helper ---------------------------------------------------------------


def _only_response(response):
    return response


def _response_and_ti(response, ti):
    return response, ti


def _response_and_anything(response, **kwargs):
    return response, kwargs


CONTEXT = {"ti": "the ti", "ds": "2026-01-01"}


@pytest.mark.parametrize(
    ("func", "expected"),
    [(_only_response, {}), (_response_and_ti, {"ti": "the ti"}), (_response_and_anything, CONTEXT)],
    ids=["nothing", "one key", "**kwargs"],
)
def test_determine_kwargs_passes_only_what_the_callable_asks_for(func, expected):
    assert dict(compat.determine_kwargs(func, ["response"], CONTEXT)) == expected


def test_object_storage_path_reads_and_writes_local_files(tmp_path):
    root = compat.object_storage_path(f"file://{tmp_path}")
    (root / "part-00001.jsonl").write_text("{}\n")
    assert (tmp_path / "part-00001.jsonl").read_text() == "{}\n"
    assert str(root / "x").endswith(f"{tmp_path}/x")


def _set_current_context(context):
    if AIRFLOW_V_3_0_PLUS:
        from airflow.sdk.execution_time.context import set_current_context
    else:
        from airflow.models.taskinstance import set_current_context
    return set_current_context(context)


def test_get_current_context_is_the_running_task_instances():
    with _set_current_context({"ti": "the ti"}):
        assert compat.get_current_context()["ti"] == "the ti"


def test_get_current_context_raises_outside_a_task_instance():
    with pytest.raises(Exception, match="(?i)context"):
        compat.get_current_context()


def test_dag_class_collects_the_operators_created_inside_it():
    with compat.dag_class()(
        dag_id="compat_dag_class", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=UTC)
    ) as dag:
        task = BaseOperator(task_id="t")
    assert dag.task_dict == {"t": task}
    assert task.dag is dag


def test_dag_bag_of_has_the_folders_dags_and_never_the_examples(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW__CORE__LOAD_EXAMPLES", "True")
    dag_file = tmp_path / "one.py"
    dag_file.write_text(
        "from airflow import DAG\n"
        "from datetime import datetime, timezone\n"
        "dag = DAG(dag_id='compat_bag', schedule=None, start_date=datetime(2026, 1, 1, tzinfo=timezone.utc))\n"
    )
    bag = compat.dag_bag_of(str(dag_file))
    assert not bag.import_errors
    assert sorted(bag.dags) == ["compat_bag"]


@pytest.mark.parametrize("before", [None, "30"], ids=["unset", "set"])
def test_serialize_dag_writes_the_dag_on_3_and_restores_the_environment(before, monkeypatch):
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    name = "AIRFLOW__CORE__MIN_SERIALIZED_DAG_UPDATE_INTERVAL"
    if before is None:
        monkeypatch.delenv(name, raising=False)
    else:
        monkeypatch.setenv(name, before)
    dag_id = f"compat_serialize_{before}"
    with compat.dag_class()(dag_id=dag_id, schedule=None, start_date=datetime(2026, 1, 1, tzinfo=UTC)) as dag:
        BaseOperator(task_id="t")
    compat.serialize_dag(dag)
    with create_session() as session:
        written = session.scalars(select(SerializedDagModel).where(SerializedDagModel.dag_id == dag_id)).first()
    # 3.0+ run only serialized DAGs; 2.11's dag.test() runs the object and needs nothing written.
    assert (written is not None) is AIRFLOW_V_3_0_PLUS
    assert os.environ.get(name) == before


@pytest.mark.skipif(not AIRFLOW_V_3_0_PLUS, reason="Airflow 2 has no in-process Execution API")
def test_cache_in_process_api_server_caches_the_factory_once():
    import airflow.sdk.execution_time.supervisor as supervisor

    compat.cache_in_process_api_server()
    cached = supervisor.in_process_api_server
    compat.cache_in_process_api_server()
    assert supervisor.in_process_api_server is cached
    assert hasattr(cached, "cache_info")


def test_dag_for_run_has_the_dags_tasks():
    with compat.dag_class()(dag_id="compat_for_run", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=UTC)) as dag:
        BaseOperator(task_id="a") >> BaseOperator(task_id="b")
    for_run = compat.dag_for_run(dag)
    assert (for_run.dag_id, sorted(for_run.task_ids)) == ("compat_for_run", ["a", "b"])
    assert for_run.get_task("b").upstream_task_ids == {"a"}
    # 3.0+: the scheduler's serialized form, a new object; 2.11: the DAG itself.
    assert (for_run is dag) is not AIRFLOW_V_3_0_PLUS


@pytest.mark.parametrize(
    ("try_number", "state", "on_3_4", "before_3_4"),
    [(0, None, 1, 1), (2, None, 2, 3), (2, "up_for_reschedule", 2, 2)],
    ids=["never ran", "cleared or retried", "back from a reschedule"],
)
def test_number_next_try_as_the_scheduler_numbers_it(try_number, state, on_3_4, before_3_4):
    ti = _TI(try_number=try_number, state=state)
    compat.number_next_try(ti)
    # 3.4 numbers a try when it creates its row (a clear, a failure); before, scheduling numbers it.
    assert ti.try_number == (on_3_4 if AIRFLOW_V_3_4_PLUS else before_3_4)


@pytest.mark.skipif(AIRFLOW_V_3_0_PLUS, reason="3.0+ need no model mapped first")
def test_map_task_instance_models_maps_the_fab_user_model_on_2():
    pytest.importorskip("airflow.providers.fab", reason="the FAB provider is not installed")
    compat.map_task_instance_models()
    assert "airflow.providers.fab.auth_manager.models" in sys.modules


class _Return(BaseOperator):
    def execute(self, context):
        return {"n": 1}


@pytest.mark.integration
def test_dag_test_at_repeats_the_run_id_and_read_xcom_reads_its_values():
    from airflow.utils.session import create_session

    when = datetime(2026, 2, 1, tzinfo=UTC)
    with compat.dag_class()(dag_id="compat_dag_test_at", schedule=None, start_date=when) as dag:
        _Return(task_id="t")
    compat.cache_in_process_api_server()
    compat.serialize_dag(dag)
    first = compat.dag_test_at(dag, when)
    again = compat.dag_test_at(dag, when)
    assert again.run_id == first.run_id
    assert again.logical_date == when
    with create_session() as session:
        assert compat.read_xcom(session, dag.dag_id, again.run_id, "t", -1, "return_value") == {"n": 1}
        assert compat.read_xcom(session, dag.dag_id, again.run_id, "t", -1, "no_such_key") is None


# ---- the identity of a try, secrets, Variables, the CLI (the task-side shims) -------------------------


class _TI:
    def __init__(self, **attrs):
        self.__dict__.update(attrs)


def test_try_stamp_is_the_task_instance_id_on_3_and_the_start_date_on_2():
    started = datetime(2026, 1, 1, tzinfo=UTC)
    ti = _TI(id="0190-uuid", start_date=started)
    expected = "0190-uuid" if AIRFLOW_V_3_0_PLUS else started.isoformat()
    assert compat.try_stamp(ti, lambda: "fallback") == expected


def test_try_stamp_without_what_identifies_the_try():
    expected = None if AIRFLOW_V_3_0_PLUS else "fallback"
    assert compat.try_stamp(_TI(), lambda: "fallback") == expected


def test_dag_run_key_tells_two_rows_of_one_run_id_apart():
    first = _TI(run_after=datetime(2026, 1, 1, tzinfo=UTC), id=1)
    again = _TI(run_after=datetime(2026, 1, 2, tzinfo=UTC), id=2)
    assert compat.dag_run_key(first) != compat.dag_run_key(again)
    assert compat.dag_run_key(first) == ("2026-01-01T00:00:00+00:00" if AIRFLOW_V_3_0_PLUS else "dag_run.id=1")
    assert compat.dag_run_key(None) is None


def test_the_redactor_masks_what_a_connection_registers():
    redact = compat.secrets_redactor()
    assert redact is not None
    if AIRFLOW_V_3_0_PLUS:
        from airflow.sdk._shared.secrets_masker import mask_secret
    else:
        from airflow.utils.log.secrets_masker import mask_secret
    mask_secret("s3cr3t-for-compat-test")
    assert redact("s3cr3t-for-compat-test") != "s3cr3t-for-compat-test"
    assert redact("nothing secret here") == "nothing secret here"


def test_stats_can_count():
    assert callable(compat.stats().incr)


def test_variable_access_is_the_supervisor_on_3_and_the_orm_on_2():
    expected = compat.SdkVariables if AIRFLOW_V_3_0_PLUS else compat.OrmVariables
    assert isinstance(compat.variable_access(), expected)


@pytest.mark.skipif(AIRFLOW_V_3_0_PLUS, reason="the ORM writes Variables only on Airflow 2")
def test_orm_variables_round_trip_on_the_metadata_db():
    variables = compat.OrmVariables()
    variables.set("resumable.compat-test", "v1", "described")
    assert variables.get("resumable.compat-test") == "v1"
    variables.delete("resumable.compat-test")
    assert variables.get("resumable.compat-test") is None


def test_asset_type_exists_from_3_0():
    asset = compat.asset_type()
    assert (asset is not None) is AIRFLOW_V_3_0_PLUS


@pytest.mark.parametrize(
    ("region_id", "region_index", "map_index", "expected"),
    [
        (None, None, -1, (None, None)),
        ("00000000-0000-0000-0000-000000000000", -1, -1, (None, None)),
        ("01a242f9-07bf-7bc8-b139-a2c20c157f3d", 2, 2, (None, None)),
        ("01a242ea-235f-7ede-ab62-242a20d2cc24", 0, -1, ("01a242ea-235f-7ede-ab62-242a20d2cc24", 0)),
        ("01a242ea-235f-7ede-ab62-242a20d2cc24", True, -1, (None, None)),
    ],
    ids=["before 3.4", "outside any region", "a mapped expansion", "a loop iteration", "junk"],
)
def test_only_a_loop_iteration_is_a_region(region_id, region_index, map_index, expected):
    assert compat.loop_region(region_id, region_index, map_index) == expected


# ---- TaskFlow -----------------------------------------------------------------------------------------


def test_the_task_decorator_pieces_are_airflows_own():
    assert compat.python_decorated_operator().__name__ == "_PythonDecoratedOperator"
    assert compat.task_decorator_factory().__name__ == "task_decorator_factory"
    from airflow.providers.resumable.compat.version_compat import AIRFLOW_V_3_2_PLUS

    assert compat.runs_async_callables() is AIRFLOW_V_3_2_PLUS


def test_async_state_accessors_need_airflow_3_4_and_the_methods(monkeypatch):
    class Blocking:
        def get(self, key, default=None): ...

    class Awaitable(Blocking):
        async def aget(self, key, default=None): ...

        async def aset(self, key, value): ...

    monkeypatch.setattr(compat, "AIRFLOW_V_3_4_PLUS", True)
    if AIRFLOW_V_3_0_PLUS:
        from airflow.sdk.execution_time import task_runner

        class Comms:
            async def asend(self, msg): ...

        monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", Comms(), raising=False)
        assert compat.async_state_accessors(Awaitable())
        # dag.test()'s in-process comms on 3.4.0b2: no asend, so a worker thread it is.
        monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", object(), raising=False)
        assert not compat.async_state_accessors(Awaitable())
    assert not compat.async_state_accessors(Blocking())
    monkeypatch.setattr(compat, "AIRFLOW_V_3_4_PLUS", False)
    assert not compat.async_state_accessors(Awaitable())
