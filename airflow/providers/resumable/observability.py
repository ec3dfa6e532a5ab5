"""
Metrics and trace attributes: what a dashboard can count about resumable tasks.

Every name is documented in docs/monitoring.rst. Metrics go through Airflow's own ``Stats`` (so
they reach whatever statsd, Datadog or OpenTelemetry backend the deployment configured), and follow
Airflow's convention of one tagged name plus a dotted name for statsd without tags, as
``ti.finish`` does. Spans use OpenTelemetry when it is importable, as
``airflow.sdk.ResumableJobMixin`` does. Nothing here may fail a task: a broken metrics backend is
logged and ignored.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

from airflow.providers.resumable.compat.airflow import stats

if TYPE_CHECKING:
    from collections.abc import Iterator

log = logging.getLogger(__name__)

DECISION = "resumable.decision"
CHECKPOINT_WRITE = "resumable.checkpoint.write"
CHECKPOINT_WRITE_DURATION = "resumable.checkpoint.write_duration"
STATE_OVERSIZE = "resumable.state.oversize"
SPAN_DECISION = "resumable.resume_decision"


def _tracer() -> Any:
    """An OpenTelemetry tracer, or None where opentelemetry-api is not installed."""
    try:
        from opentelemetry import trace
    except ImportError:  # pragma: no cover - every supported Airflow ships opentelemetry-api
        return None
    return trace.get_tracer("airflow.providers.resumable")


def _incr(stat: str, tags: dict[str, str]) -> None:
    try:
        stats().incr(stat, tags=tags)
    except Exception:
        log.debug("Could not emit metric %s", stat, exc_info=True)


def emit_decision(
    decision: str,
    tags: dict[str, str],
    *,
    external_id_key: str | None = None,
    external_id: Any = None,
    prior_status: str | None = None,
    seq: int | None = None,
) -> None:
    """
    Count one decision and record it on a span.

    ``resumable.decision`` with a ``decision`` tag, and ``resumable.decision.<decision>`` for statsd
    without tags. The span ``resumable.resume_decision`` carries the same attributes as upstream's
    (``resumable.decision``, ``resumable.external_id``, ...); it is a child of the task's span where
    Airflow traces tasks, and costs nothing where no tracer provider is configured.
    """
    _incr(DECISION, {**tags, "decision": decision})
    _incr(f"{DECISION}.{decision}", tags)
    tracer = _tracer()
    if tracer is None:
        return
    try:
        with tracer.start_as_current_span(SPAN_DECISION) as span:
            span.set_attribute("operator", tags.get("operator", ""))
            span.set_attribute("resumable.decision", decision)
            span.set_attribute("resumable.backend", tags.get("backend", ""))
            if external_id_key is not None:
                span.set_attribute("resumable.external_id_key", external_id_key)
            if external_id is not None:
                span.set_attribute("resumable.external_id", str(external_id))
            if prior_status is not None:
                span.set_attribute("resumable.prior_status", str(prior_status))
            if seq is not None:
                span.set_attribute("resumable.submission_seq", seq)
    except Exception:
        log.debug("Could not record span %s", SPAN_DECISION, exc_info=True)


@contextlib.contextmanager
def checkpoint_write(tags: dict[str, str]) -> Iterator[None]:
    """Count a checkpoint write and time it; a write that raises is not counted."""
    start = time.perf_counter()
    yield
    elapsed_ms = (time.perf_counter() - start) * 1000.0
    _incr(CHECKPOINT_WRITE, tags)
    try:
        stats().timing(CHECKPOINT_WRITE_DURATION, elapsed_ms, tags=tags)
    except Exception:
        log.debug("Could not emit metric %s", CHECKPOINT_WRITE_DURATION, exc_info=True)


def emit_oversize(*, owner: str, backend: str, operator: str = "") -> None:
    """Count the first value of a task instance's try that passed its backend's size bound."""
    _incr(STATE_OVERSIZE, {"task_id": owner, "backend": backend, **({"operator": operator} if operator else {})})
