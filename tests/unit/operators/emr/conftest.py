"""
The resumable EMR operators under ``moto.mock_aws``, one try at a time, with an in-memory state store.

moto does not move EMR steps or job runs through their states and ignores a repeated ``clientToken``;
``tests/support/fake_aws.py`` adds exactly that (and says how), everything else is moto.
Counts asserted here (steps on the cluster, job runs, clusters) come from moto's backends.
"""

from __future__ import annotations

import contextlib

import boto3
import pytest

from tests.support.fake_aws import REGION, FakeAws, create_application, create_cluster, create_virtual_cluster


@pytest.fixture
def aws(monkeypatch, memory_store):
    """moto in-process, the fake layer on top, and clients for setting up resources."""
    from moto import mock_aws

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", '{"conn_type": "aws"}')
    with mock_aws(), FakeAws().installed() as fake:
        yield fake


@pytest.fixture
def cluster(aws):
    """A waiting EMR cluster's id."""
    return create_cluster(boto3.client("emr", region_name=REGION))


@pytest.fixture
def app(aws):
    """An EMR Serverless application's id."""
    return create_application(boto3.client("emr-serverless", region_name=REGION))


@pytest.fixture
def vc(aws):
    """An EMR on EKS virtual cluster's id."""
    return create_virtual_cluster(boto3.client("emr-containers", region_name=REGION))


@pytest.fixture
def id_write_lost(memory_store, monkeypatch):
    """
    ``with id_write_lost():`` the store keeps the intent but every write carrying the job's id fails, as
    when the worker dies between the submission and the state write; the store works again after it.
    """

    @contextlib.contextmanager
    def lost():
        real_set = memory_store.set

        def set_intent_only(key, value):
            if value.get("external_id") is not None:
                raise ConnectionError("worker lost before the id was stored")
            real_set(key, value)

        monkeypatch.setattr(memory_store, "set", set_intent_only)
        try:
            yield
        finally:
            monkeypatch.setattr(memory_store, "set", real_set)

    return lost
