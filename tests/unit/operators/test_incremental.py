"""``Incremental`` (``operators/incremental.py``): checked when the DAG is parsed, unless templated."""

from __future__ import annotations

from datetime import timedelta

import pytest

from airflow.providers.resumable.operators.incremental import Incremental
from tests.support.paginated_http import incremental_op

pytestmark = pytest.mark.usefixtures("news_connection")


@pytest.mark.parametrize(
    ("incremental", "message"),
    [
        ({"cursor_field": ""}, "Incremental cursor_field must be a non-empty string, got ''"),
        ({"cursor_field": "u", "param": None}, "Incremental param must be a non-empty string, got None"),
        ({"cursor_field": "u", "initial_value": "yesterday"}, "initial_value must be an ISO-8601 timestamp"),
        ({"cursor_field": "u", "lag": -5}, "Incremental lag must be a timedelta or a number >= 0, got -5"),
        ({"cursor_field": "u", "lag": "5m"}, "Incremental lag must be a timedelta or a number >= 0, got '5m'"),
        (
            {"cursor_field": "u", "initial_value": 0, "lag": timedelta(minutes=5)},
            r"Incremental lag datetime.timedelta\(seconds=300\) does not fit initial_value 0: a timestamp cursor",
        ),
        ({"cursor_field": "u", "since": "x"}, r"unknown incremental option\(s\) \['since'\]"),
        ({"param": "since"}, "incremental needs a cursor_field"),
    ],
)
def test_bad_incremental_fails_when_the_dag_is_parsed(tmp_path, incremental, message):
    with pytest.raises(ValueError, match=message):
        incremental_op(tmp_path, incremental=incremental)


def test_a_templated_initial_value_is_checked_when_rendered_not_parsed(tmp_path):
    config = Incremental(cursor_field="u", initial_value="{{ data_interval_start }}")
    assert incremental_op(tmp_path, incremental=config).incremental == config


def test_a_primary_key_is_kept_as_a_tuple_and_a_bad_one_is_named():
    assert Incremental(cursor_field="updated_at", primary_key=["tenant", "id"]).primary_key == ("tenant", "id")
    assert Incremental(cursor_field="updated_at").primary_key is None
    with pytest.raises(ValueError, match="Incremental primary_key must be a field name or a list of field names"):
        Incremental(cursor_field="updated_at", primary_key=[])
    with pytest.raises(ValueError, match="Incremental read_boundary must be True or False, got 'yes'"):
        Incremental(cursor_field="updated_at", read_boundary="yes")
