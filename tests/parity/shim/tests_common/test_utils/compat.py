"""Names that moved between Airflow 2 and 3."""

from __future__ import annotations

try:
    from airflow.sdk import timezone
except ImportError:  # Airflow 2
    from airflow.utils import timezone  # type: ignore[no-redef]

__all__ = ["timezone"]
