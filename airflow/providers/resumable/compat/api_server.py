"""
What the UI tab needs from Airflow's API server (3.1+): its auth manager, its secrets masker, its base URL.

Airflow 3.1 brought the plugin ``external_views`` (a tab on the task instance page) beside
``fastapi_apps``; 3.0 has only the latter, and 2.11 neither. Everything version-bound the tab touches
is imported here, and only inside functions: the module is imported in every Airflow process.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from packaging.version import Version

from airflow.providers.resumable.compat.version_compat import AIRFLOW_VERSION

if TYPE_CHECKING:
    from collections.abc import Callable

#: The first Airflow whose UI shows a plugin's view as a tab of the task instance.
UI_TAB_SINCE = Version("3.1.0")


def ui_tab_supported() -> bool:
    return AIRFLOW_VERSION >= UI_TAB_SINCE


def running_on_api_server(argv: list[str] | None = None) -> bool:
    """
    This process is ``airflow api-server`` (its workers inherit its argv).

    Airflow has no API to ask which component loads a plugin; its own edge3 provider reads argv the
    same way, so the scheduler, the workers and every task process skip building the app.
    """
    args = sys.argv if argv is None else argv
    return len(args) > 1 and args[1] == "api-server"


def ui_enabled() -> bool:
    """This Airflow has the tab (3.1+) and ``[resumable] ui_enabled`` leaves it on."""
    from airflow.configuration import conf

    return ui_tab_supported() and conf.getboolean("resumable", "ui_enabled", fallback=True)


def tab_base_url() -> str | None:
    """``[api] base_url`` for links to the tab, or None when this Airflow (or the setting) has no tab."""
    from airflow.configuration import conf

    if not ui_enabled():
        return None
    return conf.get("api", "base_url", fallback="") or ""


def base_url_path(path: str) -> str:
    """``path`` under ``[api] base_url``'s path, as the UI is served behind a prefix."""
    from urllib.parse import urlparse

    from airflow.configuration import conf

    base = conf.get("api", "base_url", fallback="/") or "/"
    prefix = urlparse(base).path if base.startswith(("http://", "https://")) else base
    return prefix.rstrip("/") + path


def dag_access(method: str) -> Any:
    """A FastAPI dependency: the user may ``method`` (GET, PUT) the task instances of the request's ``dag_id``."""
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api.security import requires_access_dag

    return requires_access_dag(method, DagAccessEntity.TASK_INSTANCE)  # type: ignore[arg-type]


def authenticated_user() -> Any:
    """A FastAPI dependency that resolves the request's user (401 without credentials)."""
    from airflow.api_fastapi.core_api.security import get_user

    return get_user


def may_edit(user: Any, dag_id: str) -> bool:
    """Whether ``user`` may change this DAG's task instances: the tab shows its actions only then."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails

    return bool(
        get_auth_manager().is_authorized_dag(
            method="PUT", access_entity=DagAccessEntity.TASK_INSTANCE, details=DagDetails(id=dag_id), user=user
        )
    )


def display_redactor() -> Callable[[Any], Any]:
    """
    ``redact`` of every secrets masker this process has: values shown in the tab are masked by both.

    The API server feeds the core masker (``airflow._shared``); the Task SDK's is another instance.
    Either masks values under sensitive names (``password``, ``secret``, ``api_key`` ...).
    """
    redactors = []
    # 3.x: the core masker and the Task SDK's; 2.11: its one masker.
    for module in (
        "airflow._shared.secrets_masker",
        "airflow.sdk._shared.secrets_masker",
        "airflow.utils.log.secrets_masker",
    ):
        try:
            redactors.append(__import__(module, fromlist=["redact"]).redact)
        except (ImportError, AttributeError):
            continue

    def redact(value: Any) -> Any:
        for each in redactors:
            value = each(value)
        return value

    return redact
