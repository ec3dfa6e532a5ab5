"""``compat.metadata_db``: the metadata DB's task and asset state rows, and the CLI's name, on every Airflow line."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from airflow.providers.resumable.compat import metadata_db
from airflow.providers.resumable.compat.version_compat import AIRFLOW_V_3_4_PLUS


def test_the_state_tables_exist_from_3_3():
    from airflow.providers.resumable.compat.version_compat import AIRFLOW_V_3_3_PLUS

    assert (metadata_db.task_state_store_model() is not None) is AIRFLOW_V_3_3_PLUS
    assert (metadata_db.asset_state_store_model() is not None) is AIRFLOW_V_3_3_PLUS


def test_the_cli_program_is_airflow_itself_from_3_2():
    from airflow.providers.resumable.compat.version_compat import AIRFLOW_V_3_2_PLUS

    expected = ["airflow", "resumable"] if AIRFLOW_V_3_2_PLUS else ["airflow-resumable"]
    assert metadata_db.state_cli_program() == expected


# ---- the metadata DB, for the CLI: task_state_store and asset_state_store rows ------------------------

needs_state_tables = pytest.mark.skipif(
    metadata_db.task_state_store_model() is None, reason="no task_state_store table before Airflow 3.3"
)
EXPIRES = datetime(2027, 1, 1, tzinfo=UTC)


@pytest.fixture
def db_session():
    """A session on the leg's metadata DB whose writes are rolled back at the end."""
    from airflow.utils.session import create_session

    with create_session() as session:
        yield session
        session.rollback()


def _dag_run(session, dag_id):
    from airflow.models.dagrun import DagRun

    run = DagRun(
        dag_id=dag_id, run_id="r1", run_type="manual", state="running", run_after=datetime(2026, 1, 1, tzinfo=UTC)
    )
    session.add(run)
    session.flush()
    return run


def _region(session, dag_id, node_id):
    """3.4+: a dynamic region of ``node_id`` (a mapped task's expansion when it is the task, else a loop)."""
    from airflow.models.dynamic_region import DynamicRegion

    region = DynamicRegion(dag_id=dag_id, run_id="r1", node_id=node_id)
    session.add(region)
    session.flush()
    return region.id


def _stored(session, run, key, *, index=-1, region=None):
    """One row as the native store writes it: 3.4 by region and index, 3.3 by map index."""
    model = metadata_db.task_state_store_model()
    coordinates = {"map_index": index}
    if AIRFLOW_V_3_4_PLUS:
        from airflow.models.dynamic_region import SENTINEL_REGION_ID

        coordinates = {"region_index": index, "region_id": region or SENTINEL_REGION_ID}
    session.add(
        model(
            dag_run_id=run.id,
            dag_id=run.dag_id,
            run_id=run.run_id,
            task_id="t",
            key=key,
            value='{"n": 1}',
            expires_at=EXPIRES,
            **coordinates,
        )
    )
    session.flush()


def test_no_state_rows_before_3_3(db_session):
    if metadata_db.task_state_store_model() is not None:
        pytest.skip("this Airflow has the tables")
    assert metadata_db.task_state_rows(db_session) == []
    assert metadata_db.asset_state_rows(db_session, "resumable.") == []
    assert (
        metadata_db.delete_task_state_rows(
            db_session, dag_id="d", run_id="r", task_id="t", map_index=-1, region_id=None, region_index=None, keys=["k"]
        )
        == 0
    )


@needs_state_tables
def test_task_state_rows_are_plain_tuples_with_the_map_index_a_person_sees(db_session):
    run = _dag_run(db_session, "compat_rows_plain")
    _stored(db_session, run, "job")
    _stored(db_session, run, "job", index=2)
    rows = metadata_db.task_state_rows(db_session, dag_id="compat_rows_plain")
    assert [(r.task_id, r.map_index, r.region_id, r.region_index, r.key, r.value) for r in rows] == [
        ("t", -1, None, None, "job", '{"n": 1}'),
        ("t", 2, None, None, "job", '{"n": 1}'),
    ]
    assert rows[0].expires_at == EXPIRES
    assert rows[0].updated_at is not None
    assert metadata_db.task_state_rows(db_session, dag_id="compat_rows_plain", key="other") == []
    assert metadata_db.task_state_rows(db_session, dag_id="compat_rows_plain", run_id="r2") == []


@needs_state_tables
def test_delete_task_state_rows_deletes_only_the_named_task_instance_and_keys(db_session):
    run = _dag_run(db_session, "compat_rows_delete")
    for key in ("job", "other"):
        _stored(db_session, run, key)
        _stored(db_session, run, key, index=1)
    where = {"dag_id": "compat_rows_delete", "run_id": "r1", "task_id": "t", "region_id": None, "region_index": None}
    assert metadata_db.delete_task_state_rows(db_session, map_index=1, keys=["job"], **where) == 1
    left = metadata_db.task_state_rows(db_session, dag_id="compat_rows_delete")
    assert [(r.map_index, r.key) for r in left] == [(-1, "job"), (-1, "other"), (1, "other")]
    # A region matches nothing on 3.3 (there are none) and no row outside one on 3.4.
    region = {**where, "region_id": "01a242e2-b890-7e96-861d-eb1ed4fbd4ff", "region_index": 1}
    assert metadata_db.delete_task_state_rows(db_session, map_index=-1, keys=["job", "other"], **region) == 0


@pytest.mark.skipif(not AIRFLOW_V_3_4_PLUS, reason="regions (Task Loops) exist from Airflow 3.4")
def test_task_state_rows_name_the_region_on_3_4(db_session):
    run = _dag_run(db_session, "compat_rows_region")
    loop = _region(db_session, "compat_rows_region", "loop")
    expansion = _region(db_session, "compat_rows_region", "t")
    _stored(db_session, run, "job")
    _stored(db_session, run, "job", index=0, region=loop)
    _stored(db_session, run, "job", index=1, region=loop)
    _stored(db_session, run, "job", index=3, region=expansion)
    rows = metadata_db.task_state_rows(db_session, dag_id="compat_rows_region")
    found = sorted((r.map_index, r.region_id or "", r.region_index if r.region_index is not None else -9) for r in rows)
    # In a loop the map index is -1 and the region says which iteration; the task's own mapped
    # expansion only restates the map index, so it is no region (the names it has on 3.3 stay).
    assert found == sorted([(-1, "", -9), (-1, str(loop), 0), (-1, str(loop), 1), (3, "", -9)])

    where = {"dag_id": "compat_rows_region", "run_id": "r1", "task_id": "t", "keys": ["job"]}
    assert (
        metadata_db.delete_task_state_rows(db_session, map_index=-1, region_id=str(loop), region_index=1, **where) == 1
    )
    assert metadata_db.delete_task_state_rows(db_session, map_index=-1, region_id=None, region_index=None, **where) == 1
    left = metadata_db.task_state_rows(db_session, dag_id="compat_rows_region")
    assert sorted((r.map_index, r.region_id or "", r.region_index or 0) for r in left) == sorted(
        [(-1, str(loop), 0), (3, "", 0)]
    )
    assert metadata_db.delete_task_state_rows(db_session, map_index=3, region_id=None, region_index=None, **where) == 1


@needs_state_tables
def test_asset_state_rows_read_overwrite_and_delete(db_session):
    from airflow.models.asset import AssetModel

    asset = AssetModel(name="compat_asset", uri="s3://compat/asset", group="asset")
    db_session.add(asset)
    db_session.flush()
    model = metadata_db.asset_state_store_model()
    for key in ("compat-test.watermark.x", "compat-test-other.y"):
        db_session.add(model(asset_id=asset.id, key=key, value='{"v": 1}'))
    db_session.flush()

    (row,) = metadata_db.asset_state_rows(db_session, "compat-test.")
    assert (row.asset_id, row.asset_name, row.key, row.value) == (
        asset.id,
        "compat_asset",
        "compat-test.watermark.x",
        '{"v": 1}',
    )
    metadata_db.write_asset_state_row(db_session, asset.id, row.key, '{"v": 2}')
    assert [r.value for r in metadata_db.asset_state_rows(db_session, "compat-test.")] == ['{"v": 2}']
    metadata_db.write_asset_state_row(db_session, asset.id, row.key, None)
    assert metadata_db.asset_state_rows(db_session, "compat-test.") == []
    assert [r.key for r in metadata_db.asset_state_rows(db_session, "compat-test-")] == ["compat-test-other.y"]
