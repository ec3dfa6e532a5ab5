"""
One codec for every document this provider stores, so a task and the CLI read them with the same code.

Each document is a pydantic model with a ``kind``. :func:`decode` is the one place that checks the
kind, validates, and turns anything else into a :class:`~.CorruptStateError` that says what was
wrong, what a person must do and where the value lives, in one shape for all of them, the diagnosis
first (a person on call reads the first sentence)::

    The stored job record is corrupt (seq: Input should be ...): {...}. <advice> Where: <location>.

The documents: the job write-ahead record (:class:`JobRecord`), the checkpoint envelope
(:class:`CheckpointEnvelope`), the finished marker (:class:`FinishedMarker`), and the Variable
backend's document (:class:`VariableDocument`). The watermark document and window
(``watermarks/rules.py``) decode through :func:`decode` too.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from airflow.providers.resumable.state.base import CorruptStateError, JsonValue

if TYPE_CHECKING:
    from collections.abc import Mapping

M = TypeVar("M", bound=BaseModel)

JOB_RECORD_KIND = "resumable-job"
#: The version of the job record this provider writes (see :class:`JobRecord`).
JOB_RECORD_VERSION = 2
CHECKPOINT_KIND = "resumable-checkpoint"
FINISHED_KIND = "resumable-finished"
WATERMARK_KIND = "resumable-watermark"
WINDOW_KIND = "resumable-watermark-window"

#: Key of the finished marker in a store that keeps state after success (the native store).
FINISHED_KEY = "resumable_finished"
#: Where a ``@task.resumable`` function's loops, batches and watermark windows are kept in its task's
#: store (``taskflow/<name>``); its jobs' records sit at their ``key`` (``job``), as an operator's do.
TASKFLOW_NAMESPACE = "taskflow"

#: What a token of this provider (or one a user passed) may look like: Databricks and AWS both accept it.
TOKEN_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def utcnow_iso() -> str:
    """Now, as every stored document writes a time: UTC, ISO-8601, to the second."""
    return datetime.now(tz=UTC).isoformat(timespec="seconds")


def safe_name(text: str, limit: int) -> str:
    """``text`` with what a Variable or asset-store key cannot hold replaced by ``-``, cut to ``limit``."""
    return _UNSAFE.sub("-", text)[:limit]


def located(store: Any, key: str) -> str:
    """Where ``key`` lives in ``store`` and how a person deletes it (backends define ``locate``)."""
    inner = getattr(store, "inner", store)
    full_key = f"{store.namespace}/{key}" if isinstance(getattr(store, "namespace", None), str) else key
    locate = getattr(inner, "locate", None)
    return str(locate(full_key)) if locate is not None else f"state key {full_key!r} in {inner!r}"


def decode(
    model: type[M],
    raw: Any,
    location: str,
    *,
    what: str,
    advice: str,
    error: type[CorruptStateError] = CorruptStateError,
) -> M:
    """
    ``raw`` as a ``model`` document, or ``error`` saying where it lives, what is wrong, and ``advice``.

    ``what`` names the document in the message ("job record"); the expected kind is the model's.
    """
    expected = model.model_fields["kind"].default
    kind = raw.get("kind") if isinstance(raw, dict) else None
    if kind != expected:
        if kind is not None:
            diagnosis = (
                f"The stored value is a record of unknown kind {kind!r}, not a {what} of this provider "
                f"(kind {expected!r})"
            )
            raise corrupt(f"{diagnosis}: {clip(raw)}", advice, location, diagnosis, error)
        diagnosis = f"The stored value {clip(raw)} is not a {what} of this provider (kind {expected!r})"
        raise corrupt(diagnosis, advice, location, diagnosis, error)
    try:
        return model.model_validate(raw)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or what}: {e['msg']}" for e in err.errors())
        diagnosis = f"The stored {what} is corrupt ({problems})"
        raise corrupt(f"{diagnosis}: {clip(raw)}", advice, location, diagnosis, error) from err


def clip(value: Any, limit: int = 300) -> str:
    """``repr(value)``, cut to ``limit`` characters: an error names a value, it does not print 5 MB of it."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 1]}… ({len(text)} characters)"


def corrupt(
    what_is_wrong: str,
    advice: str,
    location: str,
    diagnosis: str | None = None,
    error: type[CorruptStateError] = CorruptStateError,
) -> CorruptStateError:
    """
    The one shape of a corrupt-state error: what is wrong (one sentence), what to do, then where.

    ``location`` (a backend's ``locate``) carries the inspect and delete commands, so it goes last:
    the diagnosis is the first thing a person reads. ``diagnosis`` (default: ``what_is_wrong``) is kept
    on the error for the state CLI.
    """
    found = error(f"{what_is_wrong}. {advice} Where: {location}.")
    found.diagnosis = diagnosis or what_is_wrong
    return found


# ---- the job write-ahead record ---------------------------------------------------------------------

_JOB_ADVICE = (
    "Refusing to guess whether a job is running: check the external system, then delete the key and clear "
    "the task to let it submit afresh."
)


#: How many decisions a job record keeps: enough for every try of a task instance with many retries and
#: a few clears, small enough that a record stays a few kilobytes in a Variable or a state row.
JOB_HISTORY_LIMIT = 20


class JobDecisionEntry(BaseModel):
    """
    What one try decided about its task instance's job (``JobRecord.history``), for a person or a UI.

    ``decision`` is a ``DecisionKind`` value (``submit``, ``reattach``, ``found_by_token`` ...), kept as a
    string so a record written by a newer provider with a kind this one does not know still reads.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    #: The try that decided (None only where Airflow gave the try no number, as for ``JobRecord``).
    try_number: int | None = Field(default=None, ge=0)
    decision: str = Field(min_length=1)
    at: str
    #: The job the decision concerned; for a submission, the job it submitted (None until
    #: ``submit_job`` returned, and when it never did).
    external_id: JsonValue = None


class JobRecord(BaseModel):
    """
    Write-ahead record of one external job submission.

    Written with ``external_id=None`` (an *intent*) before ``submit_job`` runs, and again with the id
    once it returns. A record found with an intent but no id means a try died, or lost the response,
    somewhere inside ``submit_job``: a job may exist, and only its idempotency token can find it.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    kind: Literal["resumable-job"] = "resumable-job"
    #: 1: 0.1/0.2 records; 2 (0.2.0, issue 23): the resume fields below. A version 1 record reads as
    #: "no resume yet" (the defaults), so records written before an upgrade keep working.
    version: int = Field(default=JOB_RECORD_VERSION, ge=1)
    seq: int = Field(ge=0)
    token: Annotated[str, StringConstraints(pattern=TOKEN_PATTERN)] | None = None
    generation: int | None = Field(default=None, ge=0)
    fingerprint: str | None = None
    try_number: int | None = Field(default=None, ge=0)
    external_id: JsonValue = None
    intent_at: str | None = None
    submitted_at: str | None = None
    #: Resumes of a failed job (``resume_failed_job``) spent in the life of ``generation``; carried
    #: over a fresh submission in the same life, so ``max_job_resumes`` caps the life, not the job.
    resumes: int = Field(default=0, ge=0)
    #: The pending-resume intent: written before ``resume_failed_job`` runs, cleared once it returned
    #: the id to poll. Set means a try died, or lost the response, inside the resume.
    resume_token: Annotated[str, StringConstraints(pattern=TOKEN_PATTERN)] | None = None
    #: The id that pending resume restarts (the record's ``external_id`` at the time).
    resume_of: JsonValue = None
    #: What the hook noted for its resume before calling the external system (``note_resume``):
    #: Databricks stores the ``latest_repair_id`` its repair was built on, to tell its repair from none.
    resume_detail: JsonValue = None
    resume_intent_at: str | None = None
    resumed_at: str | None = None
    #: Set when the record was upgraded from a bare id stored by ``airflow.sdk.ResumableJobMixin``
    #: (or the official operators' ``durable=True``), which carries no token.
    legacy: bool = False
    #: What each try decided about this task instance's job, oldest first, the last
    #: ``JOB_HISTORY_LIMIT`` kept (0.2.0, still version 2: a record without it reads as no history, and
    #: an older reader ignores it). Carried over a fresh submission, so it spans failures and clears.
    history: list[JobDecisionEntry] = Field(default_factory=list)
    #: The job's page in its system's console (``job_url``), when the operator can name one.
    url: str | None = None

    @model_validator(mode="after")
    def _ours_have_a_token(self) -> JobRecord:
        if not self.legacy and (self.token is None or self.seq < 1):
            raise ValueError("a job record of this provider needs a token and a submission seq >= 1")
        return self

    @property
    def has_external_id(self) -> bool:
        return self.external_id is not None

    @property
    def resume_pending(self) -> bool:
        """A resume intent was written and no id came back from ``resume_failed_job`` yet."""
        return self.resume_token is not None

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
        location = located(store, key) if store is not None else f"state key {key!r}"
        if isinstance(raw, str | int) and not isinstance(raw, bool):
            return cls(seq=0, token=None, generation=None, external_id=raw, legacy=True)
        if not isinstance(raw, dict):
            raise corrupt(
                f"The stored value {clip(raw)} is neither a job record of this provider nor a bare job id",
                _JOB_ADVICE,
                location,
            )
        return decode(cls, raw, location, what="job record", advice=_JOB_ADVICE)

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


# ---- the checkpoint envelope ------------------------------------------------------------------------


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

    @classmethod
    def parse(
        cls, raw: JsonValue, location: str, *, error: type[CorruptStateError] = CorruptStateError
    ) -> CheckpointEnvelope | None:
        if raw is None:
            return None
        advice = "Refusing to restart from the beginning silently: delete the key to start over, then clear the task."
        return decode(cls, raw, location, what="checkpoint", advice=advice, error=error)

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


# ---- the finished marker ----------------------------------------------------------------------------


class FinishedMarker(BaseModel):
    """``resumable_finished``: the life that ended with try ``try_number`` succeeded."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    kind: Literal["resumable-finished"] = "resumable-finished"
    try_number: int = Field(ge=0)
    max_tries: int | None = None
    finished_at: str | None = None
    #: ``dag_run.clear_number`` at the success (0.2.0+): with ``max_tries``, tells a try Airflow
    #: started without a clear (a late failure of the successful try) from a person's clear.
    clear_number: int | None = None

    @classmethod
    def parse(cls, raw: JsonValue, location: str) -> FinishedMarker | None:
        """Read a stored finished marker strictly: a hand-edited one is named as bad state, not ignored."""
        if raw is None:
            return None
        advice = "Delete the key; a clear then starts the task afresh."
        return decode(cls, raw, location, what="finished marker", advice=advice)

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


# ---- the mapped input -------------------------------------------------------------------------------

#: The key of a mapped task instance's input fingerprint, written by the first try that uses the store.
MAPPED_INPUT_KEY = "resumable_mapped_input"


class MappedInput(BaseModel):
    """``resumable_mapped_input``: which expanded arguments the state of this map index was kept for."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    kind: Literal["resumable-mapped-input"] = "resumable-mapped-input"
    map_index: int = Field(ge=0)
    fingerprint: str = Field(min_length=1)

    @classmethod
    def parse(cls, raw: JsonValue, location: str) -> MappedInput | None:
        if raw is None:
            return None
        advice = "Delete the key; the next try then keeps the state for the input it runs with."
        return decode(cls, raw, location, what="mapped input fingerprint", advice=advice)

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def _stable(value: Any) -> Any:
    """A JSON form of ``value`` that is the same in every process, or TypeError (no guess from a repr)."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, (set, frozenset)):
        return sorted(json.dumps(item, sort_keys=True, default=_stable) for item in value)
    if isinstance(value, (tuple, list)) or type(value).__name__ in ("LazyXComSequence", "LazySelectSequence"):
        return list(value)
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"{type(value).__name__} has no stable serialised form")


def input_fingerprint(kwargs: Any) -> str | None:
    """
    A stable hash of a map index's expanded arguments, or None when one has no stable serialised form.

    JSON types, datetimes, pydantic models, sets and bytes serialise stably; anything else (an
    object whose only text is a repr with an address) would differ in every try, and a false
    mismatch would throw away a valid checkpoint, so such an input is not fingerprinted at all.
    """
    try:
        canonical = json.dumps(kwargs, sort_keys=True, separators=(",", ":"), default=_stable)
    except (TypeError, ValueError):
        return None
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


# ---- the Variable backend's document ----------------------------------------------------------------


class VariableDocument(BaseModel):
    """
    What one task instance's Variable holds: its scope, the try that last wrote it, and the keys.

    Indented JSON, so a person can read it in the Variables UI; the backend writes it and the CLI
    reads it with :meth:`parse`.
    """

    model_config = ConfigDict(extra="ignore")

    scope: dict[str, Any]
    life: dict[str, Any] | None = None
    values: dict[str, JsonValue]

    @classmethod
    def parse(cls, text: str, location: str) -> VariableDocument:
        import json

        advice = "Refusing to guess: inspect it, delete it, then clear the task."
        try:
            raw = json.loads(text)
        except ValueError as err:
            raise corrupt(
                f"The stored Variable is not JSON ({err}), so this provider did not write it", advice, location
            ) from err
        try:
            return cls.model_validate(raw)
        except ValidationError as err:
            missing = ", ".join(str(e["loc"][0]) for e in err.errors() if e["loc"])
            raise corrupt(
                f"The stored Variable lacks {missing or 'the scope and values'}, so this provider did not write it",
                advice,
                location,
            ) from err

    def scope_is(self, scope: Mapping[str, Any]) -> bool:
        return self.scope == dict(scope)

    def dump(self) -> str:
        import json

        return json.dumps({"scope": self.scope, "life": self.life, "values": self.values}, indent=2, sort_keys=True)
