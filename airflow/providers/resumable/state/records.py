"""
The 0.1.0 home of the job record and the checkpoint envelope; both live in ``state/codec.py`` now.

Kept so that ``from airflow.providers.resumable.state.records import JobRecord`` goes on working.
"""

from __future__ import annotations

from airflow.providers.resumable.state.codec import (
    CHECKPOINT_KIND,
    JOB_RECORD_KIND,
    TOKEN_PATTERN,
    CheckpointEnvelope,
    JobRecord,
    utcnow_iso,
)
from airflow.providers.resumable.state.codec import located as where

__all__ = [
    "CHECKPOINT_KIND",
    "JOB_RECORD_KIND",
    "TOKEN_PATTERN",
    "CheckpointEnvelope",
    "JobRecord",
    "utcnow_iso",
    "where",
]
