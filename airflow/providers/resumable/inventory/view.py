"""
One task instance's stored state, explained: what the UI tab shows and what ``state list`` says a clear does.

Pure: it takes what ``inventory.state.read`` and ``inventory.watermarks.read`` found and returns
plain JSON-able dicts of a fixed shape. Each stored document is read with the runtime's own parser
(``state/codec.py``), so the page never explains a value the next try would reject as corrupt.

``on_clear`` is the one sentence both the CLI and the tab print for "what will a clear of this task
instance do now". A clear moves ``max_tries``, so the runtime treats the next try as a new life
(``lifecycle.ended_life``, ``decisions.decide``): a job that still runs is reattached, one that
succeeded is submitted afresh, a walk that did not finish resumes, finished work starts over.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow.providers.resumable.state.base import CorruptStateError
from airflow.providers.resumable.state.codec import (
    CHECKPOINT_KIND,
    FINISHED_KEY,
    JOB_RECORD_KIND,
    WINDOW_KIND,
    CheckpointEnvelope,
    FinishedMarker,
    JobRecord,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow.providers.resumable.inventory.state import TaskState
    from airflow.providers.resumable.inventory.watermarks import StoredWatermark
    from airflow.providers.resumable.state.base import JsonValue

#: How many of a watermark's commits the tab lists (newest last), of the ones the document keeps.
SHOWN_COMMITS = 5


@dataclass(frozen=True)
class ClearOutcome:
    """What a person's clear of the task instance does now: a code for scripts and tests, and the sentence."""

    action: str
    sentence: str


def _list(value: Any) -> list[Any]:
    """A stored list, or [] for anything else: a hand-edited document must not break the page."""
    return value if isinstance(value, list) else []


def _kind(value: JsonValue) -> str | None:
    return value.get("kind") if isinstance(value, dict) else None


def _job(values: dict[str, JsonValue]) -> tuple[str, JobRecord] | None:
    for key in sorted(values):
        if _kind(values[key]) == JOB_RECORD_KIND:
            try:
                record = JobRecord.parse(key, values[key])
            except CorruptStateError:
                continue
            if record is not None:
                return key, record
    return None


def _checkpoints(values: dict[str, JsonValue]) -> list[tuple[str, CheckpointEnvelope]]:
    found = []
    for key in sorted(values):
        if _kind(values[key]) != CHECKPOINT_KIND:
            continue
        try:
            envelope = CheckpointEnvelope.parse(values[key], f"state key {key!r}")
        except CorruptStateError:
            continue
        if envelope is not None:
            found.append((key, envelope))
    return found


def _window(values: dict[str, JsonValue]) -> JsonValue:
    """The watermark window this run planned (the first try writes it; every later try reads it), or None."""
    return next((v for v in values.values() if _kind(v) == WINDOW_KIND), None)


def _discards(state: TaskState | None, native_discards: bool) -> bool:
    """Whether a clear discards ``state`` by default: native task state (and its ledger view) on 3.4+."""
    from airflow.providers.resumable.inventory.state import LEDGER, NATIVE

    return native_discards and state is not None and state.backend in (NATIVE, LEDGER)


def _finished(values: dict[str, JsonValue]) -> FinishedMarker | None:
    try:
        return FinishedMarker.parse(values.get(FINISHED_KEY), f"state key {FINISHED_KEY!r}")
    except CorruptStateError:
        return None


def _corrupt_keys(state: TaskState) -> list[str]:
    """Keys the next try fails on: what the CLI's meanings call ``corrupt`` or ``not JSON``."""
    if state.problem is not None:
        return sorted(state.values) or ["*"]
    bad = set(state.problems)
    for key, value in state.values.items():
        kind = _kind(value)
        try:
            if kind == JOB_RECORD_KIND:
                JobRecord.parse(key, value)
            elif kind == CHECKPOINT_KIND:
                CheckpointEnvelope.parse(value, key)
            elif key == FINISHED_KEY:
                FinishedMarker.parse(value, key)
        except CorruptStateError:
            bad.add(key)
    return sorted(bad)


def _job_clause(record: JobRecord) -> tuple[str, str]:
    if record.legacy:
        return "reattach", (
            f"reattaches to job {record.external_id} (recorded by Airflow's own ResumableJobMixin) if it still "
            "runs, and submits a new job otherwise"
        )
    if not record.has_external_id:
        return "find", (
            f"looks submission {record.seq} up by its idempotency token {record.token} before submitting "
            "anything (an earlier try may have submitted it), so no second job starts"
        )
    if record.resume_pending:
        return "find", (
            f"looks up the resume of failed job {record.resume_of} an earlier try started (resume token "
            f"{record.resume_token}) before resuming it again with that token"
        )
    return "reattach", (
        f"reattaches to job {record.external_id} if it is still running (no new job), submits a new job if it "
        "succeeded or is gone, and if it failed repairs only its failed parts where the operator can (else "
        "submits a new job)"
    )


def _walk_clause(key: str, envelope: CheckpointEnvelope, *, discards: bool) -> tuple[str, str]:
    name = key.rsplit("/", 1)[-1] if key.startswith("taskflow/") else (envelope.schema_name or key)
    done = envelope.batches_done
    where = f"after batch {done}" if done is not None else "at its checkpoint"
    if envelope.complete:
        return "start_walk", (
            f"starts {name} again from its first batch (it finished at try {envelope.try_number}, and a clear "
            "after finished work starts afresh)"
        )
    if discards:
        return "start_walk", (
            f"discards the checkpoint of {name} unless the clear keeps task state (Airflow 3.4's "
            f"'Keep task state'): then it starts again at its first batch (parts are rewritten, never "
            f"duplicated); with task state kept it resumes {where}"
        )
    return "resume_walk", f"resumes {name} {where} (checkpoint of try {envelope.try_number})"


def on_clear(state: TaskState | None, *, discards_on_clear: bool = False) -> ClearOutcome:
    """
    The sentence for a person about to press Clear on this task instance.

    :param state: what the task instance holds (None: nothing).
    :param discards_on_clear: a clear discards the task's state by default (Airflow 3.4+, native
        store); job records survive it in the ledger, checkpoints do not.
    """
    if state is None or not state.values:
        return ClearOutcome(
            "nothing", "A clear runs this task instance from the start, as its first try did: nothing is stored for it."
        )
    corrupt = _corrupt_keys(state)
    if corrupt:
        keys = ", ".join(repr(k) for k in corrupt)
        return ClearOutcome(
            "fail",
            f"A clear does not help yet: the next try fails at once on corrupt state ({keys}) without using its "
            "retries; delete that state first (check the external system for a job record).",
        )
    values = state.values
    running = " stops the running try, then" if state.ti_state == "running" else ""
    marker = _finished(values)
    job = _job(values)
    walks = _checkpoints(values)
    window = _window(values)
    # A job record written after the success belongs to a try the clear already started: not finished.
    if marker is not None and (job is None or (job[1].try_number or 0) <= marker.try_number):
        things = []
        if job is not None:
            things.append("submits a new job")
        if walks:
            things.append("walks from the first batch")
        what = " and ".join(things) or "runs it from the start"
        if isinstance(window, dict):
            what += (
                f", rereading the watermark window it read then (from {window.get('since')!r}) without moving the "
                "mark back"
            )
        return ClearOutcome(
            "start_afresh",
            f"A clear{running} starts afresh: this task instance succeeded at try {marker.try_number}, so it {what}.",
        )
    clauses: list[tuple[str, str]] = []
    if job is not None:
        clauses.append(_job_clause(job[1]))
    for key, envelope in walks:
        clauses.append(_walk_clause(key, envelope, discards=discards_on_clear))
    if isinstance(window, dict):
        clauses.append(("reread_window", f"re-reads the same watermark window (from {window.get('since')!r})"))
    if not clauses:
        return ClearOutcome(
            "resume",
            f"A clear{running} runs the task again with the values it stored ({', '.join(sorted(values))}).",
        )
    action = clauses[0][0]
    return ClearOutcome(action, f"A clear{running} " + "; it ".join(text for _, text in clauses) + ".")


def clear_outcomes(states: list[TaskState], *, native_discards: bool) -> dict[Any, ClearOutcome]:
    """
    ``on_clear`` of each task instance in ``states`` (its task state and its ledger copy read together).

    :param native_discards: the running Airflow's clear discards native task state by default (3.4+).
    """
    by_scope: dict[Any, list[TaskState]] = {}
    for each in states:
        by_scope.setdefault(each.scope, []).append(each)
    outcomes = {}
    for scope, found in by_scope.items():
        merged = _merged(found)
        outcomes[scope] = on_clear(merged, discards_on_clear=_discards(merged, native_discards))
    return outcomes


# ---------------------------------------------------------------------------------------------- the tab


def tab_url(base_url: str, scope: Any) -> str:
    """
    Where Airflow's UI shows the Resumable tab of the task instance ``scope`` names.

    ``base_url`` is ``[api] base_url`` (``http://localhost:8080`` when unset); the UI's routes take the
    run id percent-encoded, and a mapped task instance under ``mapped/<index>``.
    """
    from urllib.parse import quote

    root = (base_url or "http://localhost:8080").rstrip("/")
    parts = ["dags", scope.dag_id, "runs", scope.run_id, "tasks", scope.task_id]
    if scope.map_index >= 0:
        parts += ["mapped", str(scope.map_index)]
    return root + "/" + "/".join(quote(str(part), safe="") for part in parts) + "/plugin/resumable"


def _job_view(key: str, record: JobRecord, raw: JsonValue, redact: Callable[[Any], Any]) -> dict[str, Any]:
    # history and url are read from the stored dict: a record written by an older version lacks them.
    dumped = raw if isinstance(raw, dict) else {}
    return {
        "key": key,
        "external_id": redact(record.external_id),
        "token": record.token,
        "submitted_try": record.try_number,
        "submitted_at": record.submitted_at or record.intent_at,
        "seq": record.seq,
        "resumes": record.resumes,
        "pending": "submit" if not record.has_external_id else ("resume" if record.resume_pending else None),
        "url": dumped.get("url") if isinstance(dumped.get("url"), str) else None,
        "history": [
            {
                "try_number": entry.get("try_number"),
                "decision": entry.get("decision"),
                "at": entry.get("at"),
                "external_id": redact(entry.get("external_id")),
            }
            for entry in _list(dumped.get("history"))
            if isinstance(entry, dict)
        ],
    }


def _checkpoint_view(
    key: str, envelope: CheckpointEnvelope, ti_state: str | None, redact: Callable[[Any], Any]
) -> dict[str, Any]:
    done = envelope.batches_done
    after = f"batch {done}" if done is not None else "the last checkpoint"
    if envelope.complete:
        redo = "nothing: the walk is complete"
    elif ti_state == "running":
        redo = f"the work after {after}, everything done since {envelope.saved_at}"
    else:
        redo = f"nothing is running; the next try resumes after {after}"
    return {
        "key": key,
        "name": envelope.schema_name or key,
        "batches_done": done,
        "cursor": redact(envelope.data),
        "written_at": envelope.saved_at,
        "written_try": envelope.try_number,
        "complete": envelope.complete,
        "redo": redo,
    }


def _watermark_view(
    mark: StoredWatermark, window: JsonValue, redact: Callable[[Any], Any], run_id: str
) -> dict[str, Any]:
    document = mark.document
    commits = _list(document.get("commits"))
    own = isinstance(window, dict)
    return {
        "name": mark.scope.name,
        "backend": mark.backend,
        "location": mark.location,
        "live": mark.live,
        "mark": redact(document.get("value")),
        "version": document.get("version"),
        "window": (
            {
                "since": redact(window.get("since")),
                "base": redact(window.get("base")),
                "base_version": window.get("base_version"),
                "planned_try": window.get("try_number"),
                "rereads_own": bool(window.get("reread_own")),
                "run_id": run_id,
            }
            if own and isinstance(window, dict)
            else None
        ),
        "commits": [
            {
                "run_id": entry.get("run_id"),
                "try_number": entry.get("try_number"),
                "since": redact(entry.get("since")),
                "value": redact(entry.get("value")),
                "version": entry.get("version"),
                "committed_at": entry.get("committed_at"),
                "overlapped": list(entry.get("overlapped") or []),
            }
            for entry in commits[-SHOWN_COMMITS:]
            if isinstance(entry, dict)
        ],
        "reset_with": mark.row()["reset_with"],
    }


def task_instance_view(
    *,
    dag_id: str,
    run_id: str,
    task_id: str,
    map_index: int,
    ti_state: str | None,
    states: list[TaskState],
    marks: list[StoredWatermark],
    native_discards: bool,
    redact: Callable[[Any], Any],
    can_edit: bool,
    region_index: int | None = None,
) -> dict[str, Any]:
    """
    The tab's JSON for one task instance; every stored value passes through ``redact`` first.

    ``native_discards``: the running Airflow's clear discards native task state by default (3.4+).

    Airflow 3.4's Task Loop iterations share one task instance and keep their state apart, by region:
    the view shows one of them (``region_index``, else the task instance's own state, else the first
    iteration) and lists every iteration with its own sentence, never mixing their keys.
    """
    from airflow.providers.resumable.inventory.state import is_internal

    by_region: dict[int | None, list[TaskState]] = {}
    for each in states:
        by_region.setdefault(each.scope.region_index if each.scope.region_id is not None else None, []).append(each)
    iterations = sorted(index for index in by_region if index is not None)
    regions = []
    for index in iterations:
        merged = _merged(by_region[index])
        regions.append(
            {
                "region_id": by_region[index][0].scope.region_id,
                "region_index": index,
                "clear": redact(on_clear(merged, discards_on_clear=_discards(merged, native_discards)).sentence),
            }
        )
    shown = (
        region_index if region_index in by_region else (None if None in by_region or not iterations else iterations[0])
    )
    states = by_region.get(shown, [])
    state = _merged(states)
    values = state.values if state is not None else {}
    job = _job(values)
    walks = _checkpoints(values)
    window = _window(values)
    outcome = on_clear(state, discards_on_clear=_discards(state, native_discards))
    entries = []
    for each in states:
        for row in each.entries():
            entries.append(
                {
                    "key": row["key"],
                    "backend": row["backend"],
                    "meaning": redact(row["meaning"]),
                    "value": redact(row["value"]),
                    "updated_at": row.get("updated_at"),
                    "expires_at": row.get("expires_at"),
                    "internal": is_internal(row["key"]),
                }
            )
    return {
        "dag_id": dag_id,
        "run_id": run_id,
        "task_id": task_id,
        "map_index": map_index,
        "ti_state": ti_state,
        "backend": state.backend if state is not None else None,
        "location": ", ".join(sorted({s.location for s in states})) or None,
        "clear": {"action": outcome.action, "sentence": redact(outcome.sentence)},
        "job": _job_view(job[0], job[1], values[job[0]], redact) if job is not None else None,
        "checkpoints": [_checkpoint_view(key, env, ti_state, redact) for key, env in walks],
        "watermarks": [_watermark_view(mark, window, redact, run_id) for mark in marks],
        "entries": entries,
        "can_edit": can_edit,
        "delete_confirm": redact(
            delete_confirmation(state)
            if shown is not None or not regions
            else f"{delete_confirmation(state)} The {len(regions)} Task Loop iteration(s) lose their state too."
        ),
        "region_index": shown,
        "regions": regions,
    }


def _merged(states: list[TaskState]) -> TaskState | None:
    """One task instance's keys across its task state and the ledger (the task reads its own first)."""
    if not states:
        return None
    first = states[0]
    if len(states) == 1:
        return first
    from airflow.providers.resumable.inventory.state import TaskState as _TaskState

    values: dict[str, JsonValue] = {}
    problems: dict[str, str] = {}
    for each in reversed(states):
        values.update(each.values)
        problems.update(each.problems)
    problem = next((s.problem for s in states if s.problem), None)
    return _TaskState(
        first.backend, first.scope, first.location, values, first.updated_at, problem, {}, problems, first.ti_state
    )


def delete_confirmation(state: TaskState | None) -> str | None:
    """What the delete action's confirmation repeats: what goes, and what the next try then does."""
    if state is None or not state.values:
        return None
    job = _job(state.values)
    lost = []
    if job is not None and job[1].has_external_id:
        lost.append(
            f"the record of job {job[1].external_id}: the next try no longer knows it and submits a new job, even "
            "if that one still runs (check it in its system first)"
        )
    elif job is not None:
        lost.append(f"the token {job[1].token} of a submission that may have started a job")
    for key, envelope in _checkpoints(state.values):
        lost.append(f"the checkpoint {key} ({envelope.batches_done} batches done): the walk starts at its first batch")
    keys = len(state.values)
    detail = "; ".join(lost) if lost else "the next try starts from nothing"
    return f"Delete all {keys} stored key(s) of this task instance? It loses {detail}."
