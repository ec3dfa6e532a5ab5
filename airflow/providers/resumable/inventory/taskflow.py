"""
What a ``@task.resumable`` function's keys mean, for the state CLI.

A TaskFlow function keeps its loops and batch walks as checkpoints under ``taskflow/<name>`` (its
``handle.iterate`` loops are ``loop0``, ``loop1``, ... unless named) and its jobs' write-ahead records
at their ``key``, as an operator does: those records need nothing of this module. The checkpoints
are read with the codec the handle wrote them with (``CheckpointEnvelope``), and said in the
function's terms: items of a loop, batches and a cursor of ``run_batches``, what the next try does,
and what a person's clear does once the task instance succeeded.
"""

from __future__ import annotations

import json

from airflow.providers.resumable.state.base import CorruptStateError, JsonValue
from airflow.providers.resumable.state.codec import (
    CHECKPOINT_KIND,
    TASKFLOW_NAMESPACE,
    CheckpointEnvelope,
    FinishedMarker,
)
from airflow.providers.resumable.state.lifecycle import finished_before

_PREFIX = f"{TASKFLOW_NAMESPACE}/"
#: The namespaced view's index of the keys it wrote (``NamespacedStateStore``).
_INDEX = f"{_PREFIX}__keys__"
FUNCTION = "@task.resumable"


def _short(value: JsonValue, limit: int = 80) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _loop_position(envelope: CheckpointEnvelope) -> int | None:
    """
    Items done when ``envelope`` is a ``handle.iterate`` loop's checkpoint, else None.

    A loop stores ``{"next": <items done>}`` untyped and counts one batch per item, so the two agree.
    """
    data = envelope.data
    if envelope.schema_name is not None or not isinstance(data, dict) or set(data) != {"next"}:
        return None
    done = data["next"]
    if not isinstance(done, int) or isinstance(done, bool) or done != envelope.batches_done:
        return None
    return done


def _finished_marker(finished: JsonValue) -> FinishedMarker | None:
    try:
        return FinishedMarker.parse(finished, "resumable_finished")
    except CorruptStateError:
        return None  # the marker's own row says it is unreadable


def describe_taskflow(key: str, value: JsonValue, finished: JsonValue = None) -> str | None:
    """
    What ``value`` under ``key`` means to a ``@task.resumable`` function's next try; None when ``key``
    is not one of its checkpoints (its job records and watermark windows read as an operator's do).
    """
    if not key.startswith(_PREFIX):
        return None
    if key == _INDEX:
        names = ", ".join(str(name) for name in value) if isinstance(value, list) else _short(value)
        kept = "its loops, batches and watermark windows"
        return f"index of what the {FUNCTION} function keeps under {_PREFIX!r} ({kept}): {names}"
    if not isinstance(value, dict) or value.get("kind") != CHECKPOINT_KIND:
        return None
    name = key.removeprefix(_PREFIX)
    try:
        envelope = CheckpointEnvelope.parse(value, f"state key {key!r}")
    except CorruptStateError as err:
        return f"{FUNCTION} checkpoint {name!r} that no try can read: {err}"
    assert envelope is not None
    return _progress(name, envelope) + _after(envelope, _finished_marker(finished))


def _progress(name: str, envelope: CheckpointEnvelope) -> str:
    items = _loop_position(envelope)
    written = f"written at try {envelope.try_number} ({envelope.saved_at})"
    if items is not None:
        what = f"loop {name!r} of the {FUNCTION} function (handle.iterate)"
        if envelope.complete:
            return f"{what}: complete after {items} items, {written}; a retry of this run skips it"
        return f"{what}: {items} items done, {written}; the next try resumes at item {items}"
    what = f"batches {name!r} of the {FUNCTION} function (handle.run_batches)"
    cursor = _short(envelope.data)
    if envelope.schema_name is not None:
        cursor = f"{envelope.schema_name} v{envelope.schema_version} {cursor}"
    batches = envelope.batches_done if envelope.batches_done is not None else 0
    if envelope.complete:
        return f"{what}: complete after {batches} batches, {written}; a retry of this run skips it"
    return f"{what}: {batches} batches done, {written}; the next try resumes at batch {batches} from cursor {cursor}"


def _after(envelope: CheckpointEnvelope, marker: FinishedMarker | None) -> str:
    """What a person's clear does: a checkpoint of a life that succeeded is not resumed from."""
    if marker is None or not finished_before(envelope.try_number, marker):
        return ""
    return f"; its task instance succeeded at try {marker.try_number}, so a clear starts the function over"


__all__ = ["describe_taskflow"]
