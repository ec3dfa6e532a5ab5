from __future__ import annotations

from pathlib import Path

import yaml

from airflow.providers.resumable.get_provider_info import get_provider_info

ROOT = Path(__file__).resolve().parents[2]


def test_provider_info_mirrors_provider_yaml():
    spec = yaml.safe_load((ROOT / "provider.yaml").read_text())
    info = get_provider_info()
    for key in ("package-name", "name", "description", "integrations", "operators", "task-decorators", "cli", "config"):
        assert info[key] == spec[key], key


def test_provider_is_registered_with_airflow():
    """What `airflow providers list` and `airflow config list` read."""
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    assert manager.providers["airflow-provider-resumable"].version == "0.1.0"
    configs = dict(manager.provider_configs)["airflow-provider-resumable"]
    assert configs["resumable"]["options"]["state_backend"]["default"] == "auto"


def test_task_resumable_is_registered_as_a_task_decorator():
    """What makes ``@task.resumable`` resolve, as ``@task.docker`` does for the Docker provider."""
    from airflow.providers_manager import ProvidersManager

    from airflow.providers.resumable.decorators.resumable import resumable_task

    assert ProvidersManager().taskflow_decorators["resumable"] is resumable_task


def test_state_backend_option_defaults_to_auto(monkeypatch):
    from airflow.configuration import conf

    monkeypatch.delenv("AIRFLOW__RESUMABLE__STATE_BACKEND", raising=False)
    conf.load_providers_configuration()
    assert conf.get("resumable", "state_backend") == "auto"
