"""
Airflow 2.11: the Variable of a succeeded task instance is kept for a while, marked finished.

Airflow 2.11 can fail a try after it succeeded. A zombie callback for an earlier try that was killed
arrives late, sets the task instance to up_for_retry with ``max_tries`` unchanged, and the scheduler
runs a retry in the same life (``compat.airflow.late_failure_after_success``). That retry must find
the job the succeeded try ran, not submit a second one. So on 2.11 the listener does not delete the
Variable at the success: it writes the finished marker into it, as the native store does on 3.3+,
and tags the Variable's description with the time until which it is kept:
``[resumable] finished_state_retention``, a day by default. That is many times the scheduler's
zombie threshold (300 s by default).

The listener deletes the expired Variables of the same DAG at each success. ``airflow resumable
state sweep`` deletes a succeeded task instance's state once its time is up. Airflow 3 fails no try
after its recorded success, so there the Variable is deleted at the success, as before.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from airflow.providers.resumable.compat.airflow import late_failure_after_success
from airflow.providers.resumable.state.base import StateBackendConfigError

if TYPE_CHECKING:
    from airflow.providers.resumable.state.base import TaskScope

log = logging.getLogger(__name__)

OPTION = "finished_state_retention"
DEFAULT_RETENTION_SECONDS = 86400
#: In a kept Variable's description, before the ISO time until which it is kept.
UNTIL_TAG = "resumable-finished-until="


def retention() -> timedelta | None:
    """How long a succeeded task instance's Variable is kept; None: it is deleted at the success."""
    if not late_failure_after_success():
        return None
    from airflow.configuration import conf

    try:
        seconds = conf.getint("resumable", OPTION, fallback=DEFAULT_RETENTION_SECONDS)
    except Exception as err:
        raise StateBackendConfigError(
            f"[resumable] {OPTION} must be a whole number of seconds (0: delete at the success), got "
            f"{conf.get('resumable', OPTION, fallback='')!r}: {err}. Fix the setting."
        ) from err
    return timedelta(seconds=seconds) if seconds > 0 else None


def description(scope: TaskScope, until: datetime) -> str:
    """The description of a kept Variable: what it is, and the tag the sweep reads."""
    return (
        f"Finished retry state of {scope.dag_id}.{scope.task_id} in run {scope.run_id} "
        "(airflow-provider-resumable): kept because Airflow 2 can fail a try after its success, and the "
        f"retry must find the job; deleted after {UNTIL_TAG}{until.isoformat()}"
    )


def _utc_time(text: str) -> datetime | None:
    """An ISO time as this provider writes it; a time without a zone is UTC; None when unreadable."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def kept_until(text: str | None) -> datetime | None:
    """The time a kept Variable's description says it is kept until; None for any other description."""
    if not text or UNTIL_TAG not in text:
        return None
    return _utc_time(text.rsplit(UNTIL_TAG, 1)[1].strip())


def kept_until_finished(finished_at: str | None, keep: timedelta | None) -> datetime | None:
    """Until when a state finished at ``finished_at`` is kept; None once nothing keeps it."""
    if keep is None or not finished_at:
        return None
    finished = _utc_time(finished_at)
    return finished + keep if finished is not None else None


def sweep_expired(dag_id: str, now: datetime) -> list[str]:
    """
    Delete the kept Variables of ``dag_id`` whose time is up; one line per Variable deleted.

    Runs in the listener after a success, where nothing may raise: a failure is logged, and the
    Variables stay for the next success or ``airflow resumable state sweep``.
    """
    from airflow.utils.session import create_session

    from airflow.providers.resumable.compat.airflow import delete_variable_if_unchanged, finished_variables
    from airflow.providers.resumable.state.backends import VARIABLE_PREFIX
    from airflow.providers.resumable.state.codec import safe_name

    done: list[str] = []
    try:
        with create_session() as session:
            prefix = f"{VARIABLE_PREFIX}.{safe_name(dag_id, 60)}."
            for key, text in finished_variables(session, prefix, UNTIL_TAG):
                until = kept_until(text)
                if until is not None and until <= now and delete_variable_if_unchanged(session, key, text):
                    done.append(f"Variable {key!r} deleted (kept until {until.isoformat()})")
    except Exception:
        log.exception(
            "Could not delete the expired finished Variables of DAG %r; they stay until the next success or "
            "`airflow resumable state sweep --dag-id %s --yes`",
            dag_id,
            dag_id,
        )
    return done
