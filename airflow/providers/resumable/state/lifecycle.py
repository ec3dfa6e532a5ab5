"""
How long stored state lives: the pure rules that say which life of a task instance a value belongs to.

A *life* of a task instance runs from its first try (or the first try after a person's clear) to
its success. Automatic retries stay inside one life. A person's clear after success starts the next
life. A DAG run deleted and created again under the same ``run_id`` is another task instance
altogether, even though its scope (dag, run, task, map index) looks the same.

Two signals carry this, and neither can be reproduced by a retry:

* the *finished marker*: once Airflow has recorded success, the provider's listener finishes the
  task instance's store (``StateStore.finish``): Variables drop it, the native store keeps it and
  writes ``resumable_finished`` with the try that succeeded. Anything written at or before that try
  belongs to a finished life.
* the *try identity* (:class:`TryInfo`): every write records the try that made it (try number, and
  a stamp unique to that try) and the DAG run's own identity. A value from a higher try, from
  another try with the same number, or from another DAG run row cannot belong to this task
  instance's history.

``max_tries`` (which a clear moves) is a third, weaker signal for work that ran to its end when the
listener could not run (the worker died between the success and the listener). Everything here is
pure and table-tested; ``after_success.py`` holds the registry the listener drains, and
``task_try.py`` reads these facts from the running try.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.resumable.state.codec import FINISHED_KEY, FINISHED_KIND, FinishedMarker

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "FINISHED_KEY",
    "FINISHED_KIND",
    "FinishedMarker",
    "TryInfo",
    "ended_life",
    "extra_try_after_success",
    "finished_before",
    "foreign_to",
    "outlives_retention",
]


def _as_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class TryInfo:
    """What a try knows about itself and its DAG run (built by ``task_try.py`` from the running try)."""

    try_number: int | None = None
    #: ``ti.max_tries``: moved by a person's clear, never by a retry (but a clear can land on the same value).
    max_tries: int | None = None
    #: Unique to one try, kept across a deferral (see ``compat.airflow.try_stamp``).
    try_stamp: str | None = None
    #: Unique to one DAG run row (see ``compat.airflow.dag_run_key``).
    run_key: str | None = None
    #: ``dag_run.clear_number``: only ever grows during the life of a DAG run row.
    clear_number: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TryInfo:
        return cls(
            try_number=_as_int(data.get("try_number")),
            max_tries=_as_int(data.get("max_tries")),
            try_stamp=data.get("try_stamp") if isinstance(data.get("try_stamp"), str) else None,
            run_key=data.get("run_key") if isinstance(data.get("run_key"), str) else None,
            clear_number=_as_int(data.get("clear_number")),
        )

    @property
    def try_id(self) -> str | None:
        """What tells this try from another in this process: its stamp, else its number."""
        return self.try_stamp or (str(self.try_number) if self.try_number is not None else None)

    def marker(self, finished_at: str) -> FinishedMarker:
        """The finished marker that says this try ended its life with a success."""
        return FinishedMarker(
            try_number=self.try_number or 0,
            max_tries=self.max_tries,
            finished_at=finished_at,
            clear_number=self.clear_number,
        )


def foreign_to(stored: TryInfo, current: TryInfo) -> str | None:
    """
    Why a value written by ``stored`` cannot belong to the task instance now running as ``current``.

    None means it may (the same try, an earlier try of this life, or an earlier life of this task
    instance). A reason means the value was left by a DAG run that was deleted and created again
    under the same run_id, so it must not be resumed from.
    """
    if stored.run_key and current.run_key and stored.run_key != current.run_key:
        return f"it was written in a DAG run created as {stored.run_key}, this one is {current.run_key}"
    if (
        stored.clear_number is not None
        and current.clear_number is not None
        and stored.clear_number > current.clear_number
    ):
        return f"it was written after clear number {stored.clear_number}, this run is at {current.clear_number}"
    if stored.try_number is None or current.try_number is None:
        return None
    if stored.try_number > current.try_number:
        return f"it was written at try {stored.try_number}, this is try {current.try_number}"
    if (
        stored.try_number == current.try_number
        and stored.try_stamp
        and current.try_stamp
        and stored.try_stamp != current.try_stamp
    ):
        return f"it was written by another try {stored.try_number} ({stored.try_stamp})"
    return None


def finished_before(written_at_try: int | None, marker: FinishedMarker | None) -> bool:
    """
    Whether a value written at ``written_at_try`` belongs to a life that already succeeded.

    A value with no try number (a bare id written by ``airflow.sdk.ResumableJobMixin``) predates
    any marker. Only a person's clear can start a try after a success, so a finished value is never
    resumed from: the cleared task runs afresh.
    """
    if marker is None:
        return False
    return written_at_try is None or written_at_try <= marker.try_number


def extra_try_after_success(marker: FinishedMarker | None, current: TryInfo) -> bool:
    """
    Whether ``current`` is a try Airflow started after the success ``marker`` records, without a clear.

    Airflow 2.11's late zombie callback can fail a try that already succeeded and start a retry: the
    same life, so its state must be resumed from (the job returned, not submitted again). A person's
    clear moves ``dag_run.clear_number`` (on Airflow 3 always; on 2.11 when the DAG run had finished)
    and usually ``max_tries``; only with both unchanged is the try an extra one. A marker without a
    clear number (written before 0.2.0) never says so.
    """
    return (
        marker is not None
        and marker.clear_number is not None
        and marker.max_tries is not None
        and current.clear_number == marker.clear_number
        and current.max_tries == marker.max_tries
        and current.try_number is not None
        and current.try_number > marker.try_number
    )


def ended_life(
    *,
    written_at_try: int | None,
    marker: FinishedMarker | None,
    current: TryInfo,
    complete: bool = False,
    written_max_tries: int | None = None,
) -> str | None:
    """
    Why a stored value belongs to a life that has ended (None: it belongs to the running one).

    The finished marker decides first. Work that ran to its end (``complete``: a walk marked done)
    also ended its life when ``max_tries`` moved since it was written: a person cleared the task
    after it succeeded and the listener could not finish it. Unfinished work keeps its life through
    a clear, because a clear after a failure resumes.
    """
    if finished_before(written_at_try, marker) and not extra_try_after_success(marker, current):
        assert marker is not None
        return f"it was written at try {written_at_try} of a run of this task that succeeded (try {marker.try_number})"
    if (
        complete
        and written_max_tries is not None
        and current.max_tries is not None
        and written_max_tries != current.max_tries
    ):
        return (
            f"the work finished at try {written_at_try} and the task was cleared since (max_tries "
            f"{written_max_tries} -> {current.max_tries})"
        )
    return None


def outlives_retention(
    *,
    retries: int,
    retry_delay: timedelta,
    execution_timeout: timedelta | None,
    retention: timedelta | None,
) -> str | None:
    """
    Why a value written at the start of a try may be gone before the task's last retry reads it.

    A native ``task_state_store`` row expires ``retention`` after its last update. The longest a
    value can wait untouched is every try running to its ``execution_timeout`` with the
    ``retry_delay`` between them; without a timeout only the delays are known. None when it fits.
    """
    if retention is None or retries <= 0:
        return None
    span = retries * retry_delay + (execution_timeout or timedelta(0)) * (retries + 1)
    if span <= retention:
        return None
    return (
        f"{retries} retries {retry_delay} apart"
        + (f" of tries of up to {execution_timeout}" if execution_timeout else "")
        + f" can take {span}, longer than the {retention} a task_state_store row lives"
    )
