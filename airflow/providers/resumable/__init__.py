"""Operators that resume external jobs and batch cursors across Airflow task retries."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
