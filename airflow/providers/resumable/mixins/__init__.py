"""Mixins that make operators resume across retries."""

from __future__ import annotations

from airflow.providers.resumable.mixins.checkpoint_policies import (
    DEFAULT_CHECKPOINT_POLICY,
    CheckpointPolicy,
    checkpoint_any,
    checkpoint_every_n_batches,
    checkpoint_every_seconds,
    checkpoint_within_budget,
    make_checkpoint_policy,
)
from airflow.providers.resumable.mixins.decisions import (
    AfterResumesPolicy,
    JobFailurePolicy,
    SpecChangePolicy,
    fingerprint_of,
)
from airflow.providers.resumable.mixins.resumable_job import (
    JobNotFoundError,
    ResumableJobConflictError,
    ResumableJobFailedError,
    ResumableJobMixin,
    TransientJobError,
)
from airflow.providers.resumable.mixins.stateful import (
    BatchRun,
    Checkpoint,
    CheckpointSchemaError,
    StatefulOperatorMixin,
)
from airflow.providers.resumable.mixins.watermark import WatermarkMixin

__all__ = [
    "DEFAULT_CHECKPOINT_POLICY",
    "AfterResumesPolicy",
    "BatchRun",
    "Checkpoint",
    "CheckpointPolicy",
    "CheckpointSchemaError",
    "JobFailurePolicy",
    "JobNotFoundError",
    "ResumableJobConflictError",
    "ResumableJobFailedError",
    "ResumableJobMixin",
    "SpecChangePolicy",
    "StatefulOperatorMixin",
    "TransientJobError",
    "WatermarkMixin",
    "checkpoint_any",
    "checkpoint_every_n_batches",
    "checkpoint_every_seconds",
    "checkpoint_within_budget",
    "fingerprint_of",
    "make_checkpoint_policy",
]
