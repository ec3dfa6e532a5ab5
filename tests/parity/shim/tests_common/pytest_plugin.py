"""The fixtures and marker of Airflow's ``tests_common.pytest_plugin`` that the selected tests use."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "db_test: the test uses the Airflow metadata DB")


@pytest.fixture
def session():
    """A metadata-DB session, rolled back after the test."""
    from airflow.utils.session import create_session

    with create_session() as session:
        yield session
        session.rollback()


@pytest.fixture
def testing_dag_bundle():
    """The DAG bundle named ``testing`` that ``sync_dag_to_db`` files DAGs under (Airflow 3; 2 has none)."""
    try:
        from airflow.models.dagbundle import DagBundleModel
    except ImportError:  # Airflow 2
        return
    from airflow.utils.session import create_session

    with create_session() as session:
        if session.get(DagBundleModel, "testing") is None:
            session.add(DagBundleModel(name="testing"))


@pytest.fixture
def clean_dags_dagruns_and_dagbundles():
    """Empty the DAG, DAG run, serialized DAG and bundle tables before and after the test."""
    _clear_dags_and_runs()
    yield
    _clear_dags_and_runs()


def _clear_dags_and_runs() -> None:
    from airflow.models.dag import DagModel
    from airflow.models.dagrun import DagRun
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import delete

    models: list = [TaskInstance, DagRun, SerializedDagModel]
    try:
        from airflow.models.dag_version import DagVersion
        from airflow.models.dagbundle import DagBundleModel

        models += [DagVersion, DagModel, DagBundleModel]
    except ImportError:  # Airflow 2: no versions, no bundles
        models.append(DagModel)
    with create_session() as session:
        for model in models:
            session.execute(delete(model))


@pytest.fixture
def create_connection_without_db(monkeypatch):
    """Define a connection for the test through its ``AIRFLOW_CONN_<ID>`` environment variable."""

    def create(connection, session=None):
        monkeypatch.setenv(f"AIRFLOW_CONN_{connection.conn_id.upper()}", connection.as_json())

    return create
