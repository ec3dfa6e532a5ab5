"""
Fault injection for ``make demo-emr`` only (on PYTHONPATH there, nowhere else).

A cluster policy wraps ``submit_job`` of every resumable EMR task so that its first try dies right
after AWS accepted the submission and before the id reached the state store: the worst moment for
a retry, which has only the idempotency token (a step marker, a cluster tag, a ``clientToken``) to
find the job by. The DAG file itself stays as users would write it.
"""

from __future__ import annotations

from typing import Any


def task_policy(task: Any) -> None:
    base = type(task)
    if not base.__name__.startswith("ResumableEmr"):
        return

    def submit_then_crash(self: Any, context: Any) -> Any:
        external_id = base.submit_job(self, context)
        if context["ti"].try_number == 1:
            self.log.error("DEMO FAULT: worker lost after submitting %s, before the id was stored", external_id)
            raise RuntimeError("demo fault: worker lost between submit and the state write")
        return external_id

    # A subclass, not an instance attribute: Airflow runs a copy of the task, which keeps its class.
    task.__class__ = type(base.__name__, (base,), {"submit_job": submit_then_crash, "__module__": base.__module__})
