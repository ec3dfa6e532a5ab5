"""A task instance for a task, and its templates rendered, on Airflow 2 and 3."""

from __future__ import annotations

from typing import Any

from tests_common.test_utils.dag import create_scheduler_dag
from tests_common.test_utils.version_compat import AIRFLOW_V_3_0_PLUS


def create_task_instance(
    task: Any, *, dag_version_id: Any = None, run_id: str | None = None, state: str | None = None, map_index: int = -1
) -> Any:
    """A (scheduler-side) ``TaskInstance`` of ``task``, not added to any session."""
    from airflow.models.taskinstance import TaskInstance

    if not AIRFLOW_V_3_0_PLUS:
        return TaskInstance(task, run_id=run_id, state=state, map_index=map_index)
    dag = task.get_dag()
    scheduler_task = create_scheduler_dag(dag).get_task(task.task_id) if dag is not None else task
    return TaskInstance(scheduler_task, dag_version_id=dag_version_id, run_id=run_id, state=state, map_index=map_index)


def _template_context(ti: Any, task: Any) -> Any:
    from airflow.cli.commands.task_command import _get_template_context

    return _get_template_context(ti, task)


def render_template_fields(ti: Any, task: Any, *, context: Any = None, jinja_env: Any = None) -> Any:
    """Render ``task``'s templated fields with ``ti``'s context, in place; return the task."""
    if AIRFLOW_V_3_0_PLUS:
        task.render_template_fields(context or _template_context(ti, task), jinja_env)
        return task
    ti.refresh_from_task(task)
    ti.render_templates(context or ti.get_template_context(), jinja_env)
    return ti.task
