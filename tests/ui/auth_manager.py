"""
The auth manager of the UI tests' api-server: Airflow's SimpleAuthManager, with one user kept out.

``outsider`` has the viewer role, so it may use the UI, but may read no DAG except
:data:`tests.ui.seed.UNRELATED_DAG_ID`: "a user without access to the DAG gets nothing from any
route" is then a test of the plugin's own checks, not of a missing role. Selected with
``AIRFLOW__CORE__AUTH_MANAGER=tests.ui.auth_manager.OutsiderAuthManager`` (the api-server runs with
the repository on its ``PYTHONPATH``).
"""

from __future__ import annotations

from typing import Any

from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

OUTSIDER = "outsider"
#: The one DAG ``outsider`` may read (tests/ui/seed.py's UNRELATED_DAG_ID; not imported from there,
#: so that the api-server imports no DAG code to authorize a request).
ALLOWED_DAG = "ui_unrelated"


class OutsiderAuthManager(SimpleAuthManager):
    """SimpleAuthManager, except that ``outsider`` is refused every DAG but :data:`ALLOWED_DAG`."""

    def is_authorized_dag(self, *, method: Any, user: Any, access_entity: Any = None, details: Any = None) -> bool:
        if user.get_name() == OUTSIDER and details is not None and getattr(details, "id", None) != ALLOWED_DAG:
            return False
        return super().is_authorized_dag(method=method, user=user, access_entity=access_entity, details=details)

    def filter_authorized_dag_ids(
        self, *, dag_ids: set[str], user: Any, method: Any = "GET", team_name: str | None = None
    ) -> set[str]:
        allowed = super().filter_authorized_dag_ids(dag_ids=dag_ids, user=user, method=method, team_name=team_name)
        if user.get_name() == OUTSIDER:
            return {dag_id for dag_id in allowed if dag_id == ALLOWED_DAG}
        return allowed
