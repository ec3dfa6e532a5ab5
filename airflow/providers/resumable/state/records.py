"""Typed records the mixins keep in a state store: the job write-ahead record and the checkpoint envelope."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from airflow.providers.resumable.state.base import CorruptStateError, JsonValue

JOB_RECORD_KIND = "resumable-job"
CHECKPOINT_KIND = "resumable-checkpoint"


def utcnow_iso() -> str:
    return datetime.now(tz=UTC).isoformat(timespec="seconds")


#: What a token of this provider (or one a user passed) may look like: Databricks and AWS both accept it.
TOKEN_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"


def where(store: Any, key: str) -> str:
    """Say where ``key`` lives in ``store`` and how a person deletes it (backends define ``locate``)."""
    inner = getattr(store, "inner", store)
    full_key = f"{store.namespace}/{key}" if hasattr(store, "namespace") else key
    locate = getattr(inner, "locate", None)
    return str(locate(full_key)) if locate is not None else f"state key {full_key!r} in {inner!r}"


class JobRecord(BaseModel):
    """
    Write-ahead record of one external job submission.

    Written with ``external_id=None`` (an *intent*) before ``submit_job`` runs, and again with the id
    once it returns. A record found with an intent but no id means a try died, or lost the response,
    somewhere inside ``submit_job``: a job may exist, and only its idempotency token can find it.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    kind: Literal["resumable-job"] = "resumable-job"
    version: int = Field(default=1, ge=1)
    seq: int = Field(ge=0)
    token: Annotated[str, StringConstraints(pattern=TOKEN_PATTERN)] | None = None
    generation: int | None = Field(default=None, ge=0)
    fingerprint: str | None = None
    try_number: int | None = Field(default=None, ge=0)
    external_id: JsonValue = None
    intent_at: str | None = None
    submitted_at: str | None = None
    #: Set when the record was upgraded from a bare id stored by ``airflow.sdk.ResumableJobMixin``
    #: (or the official operators' ``durable=True``), which carries no token.
    legacy: bool = False

    @model_validator(mode="after")
    def _ours_have_a_token(self) -> JobRecord:
        if not self.legacy and (self.token is None or self.seq < 1):
            raise ValueError("a job record of this provider needs a token and a submission seq >= 1")
        return self

    @property
    def has_external_id(self) -> bool:
        return self.external_id is not None

    @classmethod
    def parse(cls, key: str, raw: JsonValue, *, store: Any = None) -> JobRecord | None:
        """
        Read the stored value of ``key``.

        A bare value (not one of our records) is an external id written by Airflow's own
        ``ResumableJobMixin`` (or the official operators' ``durable=True``) before the operator switched
        to this provider: it is adopted. Anything else that does not validate is corrupt, and corrupt
        state fails the task without retries: never a reason to submit again.
        """
        if raw is None:
            return None
        location = where(store, key) if store is not None else f"state key {key!r}"
        advice = (
            "Refusing to guess whether a job is running: check the external system, then delete the "
            "key and clear the task to let it submit afresh."
        )
        if isinstance(raw, dict):
            kind = raw.get("kind")
            if kind != JOB_RECORD_KIND:
                raise CorruptStateError(
                    f"{location} holds a record of unknown kind {kind!r} (expected {JOB_RECORD_KIND!r}): "
                    f"{raw!r}. {advice}"
                )
            try:
                return cls.model_validate(raw)
            except ValidationError as err:
                problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'record'}: {e['msg']}" for e in err.errors())
                raise CorruptStateError(
                    f"{location} holds a corrupt job record ({problems}): {raw!r}. {advice}"
                ) from err
        if isinstance(raw, str | int) and not isinstance(raw, bool):
            return cls(seq=0, token=None, generation=None, external_id=raw, legacy=True)
        raise CorruptStateError(
            f"{location} holds {raw!r}, which is neither a job record of this provider nor a bare job id. {advice}"
        )

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class CheckpointEnvelope(BaseModel):
    """How a checkpoint is stored: the user's model as ``data`` plus what is needed to trust it."""

    model_config = ConfigDict(extra="ignore")

    kind: Literal["resumable-checkpoint"] = "resumable-checkpoint"
    schema_name: str | None = None
    schema_version: int = Field(default=1, ge=1)
    generation: int | None = Field(default=None, ge=0)
    try_number: int | None = Field(default=None, ge=0)
    saved_at: str | None = None
    #: Batches whose side effects are durable; the batch helper resumes at this index.
    batches_done: int | None = Field(default=None, ge=0)
    #: The walk ran to its end: a retry of the same life returns without redoing a batch.
    complete: bool = False
    data: JsonValue = None
