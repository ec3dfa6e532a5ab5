"""Typed records the mixins keep in a state store: the job write-ahead record and the checkpoint envelope."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from airflow.providers.resumable.state.base import JsonValue, StateStoreError

JOB_RECORD_KIND = "resumable-job"
CHECKPOINT_KIND = "resumable-checkpoint"


def utcnow_iso() -> str:
    return datetime.now(tz=UTC).isoformat(timespec="seconds")


class JobRecord(BaseModel):
    """
    Write-ahead record of one external job submission.

    Written with ``external_id=None`` (an *intent*) before ``submit_job`` runs, and again with the id
    once it returns. A record found with an intent but no id means a try died, or lost the response,
    somewhere inside ``submit_job``: a job may exist, and only its idempotency token can find it.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    kind: Literal["resumable-job"] = "resumable-job"
    version: int = 1
    seq: int = Field(ge=0)
    token: str | None
    generation: int | None
    fingerprint: str | None = None
    try_number: int | None = None
    external_id: JsonValue = None
    intent_at: str | None = None
    submitted_at: str | None = None
    #: Set when the record was upgraded from a bare id stored by ``airflow.sdk.ResumableJobMixin``.
    legacy: bool = False

    @property
    def has_external_id(self) -> bool:
        return self.external_id is not None

    @classmethod
    def parse(cls, key: str, raw: JsonValue) -> JobRecord | None:
        """
        Read the stored value of ``key``.

        A bare value (not one of our records) is an external id written by Airflow's own
        ``ResumableJobMixin`` before the operator switched to this provider: keep reattaching to it.
        A dict that claims to be our record but does not validate is corrupt, and corrupt state is an
        error, never a reason to submit again.
        """
        if raw is None:
            return None
        if isinstance(raw, dict) and raw.get("kind") == JOB_RECORD_KIND:
            try:
                return cls.model_validate(raw)
            except ValidationError as err:
                raise StateStoreError(
                    f"State key {key!r} holds a corrupt job record {raw!r}: {err}. Refusing to guess "
                    "whether a job is running. Check the external system, then delete the key "
                    "(Airflow UI: task state) to let the next try submit."
                ) from err
        if isinstance(raw, str | int) and not isinstance(raw, bool):
            return cls(seq=0, token=None, generation=None, external_id=raw, legacy=True)
        raise StateStoreError(
            f"State key {key!r} holds {raw!r}, which is neither a job record of this provider nor a bare "
            "job id. Refusing to guess; check the external system and delete the key to start over."
        )

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class CheckpointEnvelope(BaseModel):
    """How a checkpoint is stored: the user's model as ``data`` plus what is needed to trust it."""

    model_config = ConfigDict(extra="ignore")

    kind: Literal["resumable-checkpoint"] = "resumable-checkpoint"
    schema_name: str | None = None
    schema_version: int = 1
    generation: int | None = None
    try_number: int | None = None
    saved_at: str | None = None
    #: Batches whose side effects are durable; the batch helper resumes at this index.
    batches_done: int | None = None
    data: JsonValue = None
