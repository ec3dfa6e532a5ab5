"""
Components of the deployment that die, and the upstream bugs known to kill them.

A dead component is reported at once with the last line of its traceback (``last_error``). A death
whose traceback matches a bug listed in ``KNOWN_BUGS`` for the running Airflow is that bug; the
scenarios its traceback names (their dag_ids appear in the failing statement's parameters) are then
*blocked upstream*: reported as such, naming the Airflow version, and not counted as failures. A
scenario is never marked blocked without that traceback. Each entry is judged again on the next
build of that Airflow line the package index serves: drop it when the bug no longer shows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: A scenario's dag_id, as the failing statement's parameters or a task instance's repr carry it.
_DAG_ID = re.compile(r"\bdeploy_[a-z0-9_]+")


@dataclass(frozen=True)
class UpstreamBug:
    #: The Airflow versions it is seen on (exact, as ``apache-airflow``'s metadata says).
    versions: tuple[str, ...]
    component: str
    #: Every pattern must match the component's log tail (the traceback of its death).
    patterns: tuple[str, ...]
    summary: str

    def matches(self, version: str, component: str, text: str) -> bool:
        return (
            version in self.versions
            and component == self.component
            and all(re.search(pattern, text) for pattern in self.patterns)
        )

    def describe(self, version: str) -> str:
        return f"upstream bug of Airflow {version}: {self.summary}"


KNOWN_BUGS = (
    UpstreamBug(
        versions=("3.4.0b2",),
        component="scheduler",
        patterns=(
            r"_purge_task_instances_without_heartbeats",
            r"IntegrityError.*UNIQUE constraint failed: task_instance\.",
        ),
        summary=(
            "the scheduler dies while failing a task instance whose heartbeat stopped "
            "(_purge_task_instances_without_heartbeats -> prepare_db_for_next_try: IntegrityError, UNIQUE "
            "constraint failed on task_instance), so the task instance is never retried"
        ),
    ),
)


def last_error(log_tail: str) -> str:
    """The last line of the last traceback in ``log_tail`` (the exception), else its last non-blank line."""
    lines = log_tail.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("Traceback (most recent call last)")]
    if starts:
        for line in lines[starts[-1] + 1 :]:
            if line.strip() and not line.startswith((" ", "\t")):
                # A chained exception's "During handling..." line is followed by another traceback,
                # which is the last one; so the first unindented line after the last start is it.
                return line.strip()
    found = [line.strip() for line in lines if line.strip()]
    return found[-1] if found else "(empty log)"


def known_bug(version: str, component: str, log_tail: str) -> UpstreamBug | None:
    return next((bug for bug in KNOWN_BUGS if bug.matches(version, component, log_tail)), None)


def scenarios_named(text: str) -> set[str]:
    """The dag_ids of scenarios that ``text`` (a traceback) names."""
    return set(_DAG_ID.findall(text))
