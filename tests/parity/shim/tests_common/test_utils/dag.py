"""Write a DAG to the metadata DB, as the scheduler would see it (Airflow 3)."""

from __future__ import annotations

from typing import Any


def create_scheduler_dag(dag: Any) -> Any:
    """The scheduler's (serialized) form of an SDK DAG."""
    from airflow.serialization.serialized_objects import DagSerialization

    return DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))


def sync_dag_to_db(dag: Any, bundle_name: str = "testing", bundle_version: str | None = None) -> Any:
    """Serialize ``dag`` into the DB (DagModel, SerializedDagModel, DagVersion) and return its scheduler form."""
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
    from airflow.models.dagbundle import DagBundleModel
    from airflow.utils.session import create_session

    with create_session() as session:
        session.merge(DagBundleModel(name=bundle_name))
    bag = DagBag(dag_folder="/nonexistent", collect_dags=False)
    bag.bag_dag(dag)
    sync_bag_to_db(bag, bundle_name, bundle_version)
    return create_scheduler_dag(dag)
