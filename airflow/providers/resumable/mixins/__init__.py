"""Mixins that make operators resume across retries."""

from __future__ import annotations

from airflow.providers.resumable.mixins.decisions import SpecChangePolicy, fingerprint_of
from airflow.providers.resumable.mixins.resumable_job import (
    JobNotFoundError,
    ResumableJobConflictError,
    ResumableJobMixin,
    TransientJobError,
)
from airflow.providers.resumable.mixins.stateful import (
    DEFAULT_CHECKPOINT_POLICY,
    BatchRun,
    Checkpoint,
    CheckpointPolicy,
    CheckpointSchemaError,
    StatefulOperatorMixin,
    checkpoint_any,
    checkpoint_every_n_batches,
    checkpoint_every_seconds,
)

__all__ = [
    "DEFAULT_CHECKPOINT_POLICY",
    "BatchRun",
    "Checkpoint",
    "CheckpointPolicy",
    "CheckpointSchemaError",
    "JobNotFoundError",
    "ResumableJobConflictError",
    "ResumableJobMixin",
    "SpecChangePolicy",
    "StatefulOperatorMixin",
    "TransientJobError",
    "checkpoint_any",
    "checkpoint_every_n_batches",
    "checkpoint_every_seconds",
    "fingerprint_of",
]
