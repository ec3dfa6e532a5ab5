"""What the Databricks drop-ins' tests share: a connection to the fake that fails fast, the SQL module where it exists."""

from __future__ import annotations

from typing import Any

import pytest

#: The fake's connection, no waiting between polls, and the hook's own retries down to two attempts
#: without back-off, so a burst of two 5xx fails the try.
FAST = {
    "databricks_conn_id": "databricks_fake",
    "polling_period_seconds": 0,
    "databricks_retry_limit": 2,
    "databricks_retry_delay": 0,
}


def sql_module_or_skip() -> Any:
    """``operators.databricks_sql``, or skip: provider 7.0.0 (the 2.11 leg) has no official SQL statements operator."""
    return pytest.importorskip(
        "airflow.providers.resumable.operators.databricks_sql",
        reason="the official DatabricksSQLStatementsOperator is not in this Databricks provider (7.0.0)",
        exc_type=ImportError,
    )
