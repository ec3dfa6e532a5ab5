"""Provider metadata read by Airflow's ProvidersManager (entry point ``apache_airflow_provider``).

Mirrors ``provider.yaml``; ``tests/unit/test_get_provider_info.py`` keeps the two in step.
"""

from __future__ import annotations

from typing import Any


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-resumable",
        "name": "Resumable",
        "description": (
            "Operators that survive retries: external job ids and batch cursors are kept in task state, so a\n"
            "retry reattaches to a running Databricks / EMR job or resumes a paginated API at the last committed\n"
            "page instead of starting again.\n"
        ),
        "integrations": [
            {
                "integration-name": "Resumable",
                "external-doc-url": "https://github.com/airflow-provider-resumable/airflow-provider-resumable",
                "how-to-guide": [
                    "/docs/mixins.rst",
                    "/docs/taskflow.rst",
                    "/docs/state-backends.rst",
                    "/docs/operators/http.rst",
                    "/docs/operators/databricks.rst",
                    "/docs/operators/databricks_tasks.rst",
                    "/docs/operators/databricks_sql.rst",
                    "/docs/operators/emr.rst",
                ],
                "tags": ["software"],
            }
        ],
        "operators": [
            {
                "integration-name": "Resumable",
                "python-modules": [
                    "airflow.providers.resumable.operators.http",
                    "airflow.providers.resumable.operators.databricks",
                    "airflow.providers.resumable.operators.databricks_tasks",
                    "airflow.providers.resumable.operators.databricks_sql",
                    "airflow.providers.resumable.operators.emr",
                ],
            }
        ],
        "task-decorators": [
            {"class-name": "airflow.providers.resumable.decorators.resumable.resumable_task", "name": "resumable"}
        ],
        "cli": ["airflow.providers.resumable.cli.definition.get_resumable_cli_commands"],
        "config": {
            "resumable": {
                "description": "Settings of airflow-provider-resumable.\n",
                "options": {
                    "state_backend": {
                        "description": (
                            "Where resumable operators keep their state across retries. ``auto`` (default) uses\n"
                            "Airflow's native ``task_state_store`` when the task context has it (Airflow 3.3+) and\n"
                            "Airflow Variables otherwise. ``task_state_store`` or ``variable`` forces one; any other\n"
                            "value is the dotted path of a class whose ``from_context(context)`` returns a state store.\n"
                            "An unknown value fails the task with a message naming it.\n"
                        ),
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "variable",
                        "default": "auto",
                    },
                    "default_output_path": {
                        "description": (
                            "Where ResumablePaginatedHttpOperator writes its parts when a task gives no output_path:\n"
                            "any ObjectStoragePath URI; each task instance writes under\n"
                            "<default_output_path>/<dag_id>/<task_id>/<run_id>/<map_index>/. Empty means\n"
                            "file://$AIRFLOW_HOME/resumable.\n"
                        ),
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "s3://my-bucket/airflow/resumable",
                        "default": "",
                    },
                    "max_state_bytes": {
                        "description": (
                            "The largest value, in bytes, resumable operators store: a write over it fails the task\n"
                            "(StateTooLargeError, without using its retries) before it reaches the store. On Variables it\n"
                            "bounds the task instance's whole document (every key). Task state is for ids and cursors; a\n"
                            "value over 64 KiB is warned about once per try. 0 means no limit.\n"
                        ),
                        "version_added": "0.2.0",
                        "type": "integer",
                        "example": "4194304",
                        "default": "1048576",
                    },
                    "finished_state_retention": {
                        "description": (
                            "Airflow 2 only: how many seconds a succeeded task instance's state Variable is kept, marked\n"
                            "finished, before it is deleted. Airflow 2.11 can fail a try after its success (a late zombie\n"
                            "callback) and run a retry in the same life; that retry finds the job in the kept Variable\n"
                            "instead of submitting another. Expired Variables are deleted at a later success of the same\n"
                            "DAG, or by ``airflow resumable state sweep``. 0 deletes the Variable at the success. Airflow 3\n"
                            "fails no try after its success and ignores this setting.\n"
                        ),
                        "version_added": "0.2.0",
                        "type": "integer",
                        "example": "3600",
                        "default": "86400",
                    },
                    "ui_enabled": {
                        "description": (
                            "Airflow 3.1+: serve the Resumable tab of a task instance from the API server (routes under\n"
                            "/resumable, each behind Airflow's auth manager). False leaves the API server without them;\n"
                            "the CLI says the same.\n"
                        ),
                        "version_added": "0.2.0",
                        "type": "boolean",
                        "example": "False",
                        "default": "True",
                    },
                },
            }
        },
    }
