"""Which official tests the parity suite runs, against which of our classes, documented where."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Provider:
    """One official provider whose released unit tests run against our drop-ins."""

    #: Short name, used in reports and as the key of a documented difference.
    key: str
    #: The distribution on the package index; its installed version picks the sdist.
    distribution: str
    #: Test modules inside the sdist, relative to its ``tests/`` directory.
    test_files: tuple[str, ...]
    #: Official module -> {official class name -> "our.module:OurClass"}.
    swaps: dict[str, dict[str, str]]
    #: The docs page whose "What differs" section lists this provider's failing tests by name.
    docs_page: str
    #: Further pages with a "What differs" section for this provider's tests (one page per operator family).
    more_docs_pages: tuple[str, ...] = ()

    @property
    def docs_pages(self) -> tuple[str, ...]:
        return (self.docs_page, *self.more_docs_pages)

    @property
    def swapped_names(self) -> frozenset[str]:
        return frozenset(name for names in self.swaps.values() for name in names)


_EMR = "airflow.providers.resumable.operators.emr"
_DATABRICKS_TASKS_AND_SQL = {
    "DatabricksNotebookOperator": (
        "airflow.providers.resumable.operators.databricks_tasks:ResumableDatabricksNotebookOperator"
    ),
    "DatabricksTaskOperator": "airflow.providers.resumable.operators.databricks_tasks:ResumableDatabricksTaskOperator",
    "DatabricksSQLStatementsOperator": (
        "airflow.providers.resumable.operators.databricks_sql:ResumableDatabricksSQLStatementsOperator"
    ),
}

PROVIDERS: tuple[Provider, ...] = (
    Provider(
        key="databricks",
        distribution="apache-airflow-providers-databricks",
        test_files=("unit/databricks/operators/test_databricks.py",),
        swaps={
            "airflow.providers.databricks.operators.databricks": {
                "DatabricksSubmitRunOperator": (
                    "airflow.providers.resumable.operators.databricks:ResumableDatabricksSubmitRunOperator"
                ),
                "DatabricksRunNowOperator": (
                    "airflow.providers.resumable.operators.databricks:ResumableDatabricksRunNowOperator"
                ),
                **_DATABRICKS_TASKS_AND_SQL,
            }
        },
        docs_page="docs/operators/databricks.rst",
        more_docs_pages=("docs/operators/databricks_tasks.rst", "docs/operators/databricks_sql.rst"),
    ),
    Provider(
        key="amazon",
        distribution="apache-airflow-providers-amazon",
        test_files=(
            "unit/amazon/aws/operators/test_emr_add_steps.py",
            "unit/amazon/aws/operators/test_emr_create_job_flow.py",
            "unit/amazon/aws/operators/test_emr_serverless.py",
            "unit/amazon/aws/operators/test_emr_containers.py",
        ),
        swaps={
            "airflow.providers.amazon.aws.operators.emr": {
                "EmrAddStepsOperator": f"{_EMR}:ResumableEmrAddStepsOperator",
                "EmrCreateJobFlowOperator": f"{_EMR}:ResumableEmrCreateJobFlowOperator",
                "EmrServerlessStartJobOperator": f"{_EMR}:ResumableEmrServerlessStartJobOperator",
                "EmrContainerOperator": f"{_EMR}:ResumableEmrContainerOperator",
            }
        },
        docs_page="docs/operators/emr.rst",
    ),
    Provider(
        key="http",
        distribution="apache-airflow-providers-http",
        test_files=("unit/http/operators/test_http.py",),
        swaps={
            "airflow.providers.http.operators.http": {
                "HttpOperator": "airflow.providers.resumable.operators.http:ResumablePaginatedHttpOperator",
            }
        },
        docs_page="docs/operators/http.rst",
    ),
)
