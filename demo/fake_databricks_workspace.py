"""
The fake Jobs API of ``fake_databricks``, plus task runs and the SQL Statement Execution API.

``FakeDatabricksWorkspace`` extends :class:`~demo.fake_databricks.FakeDatabricks` (whose runs, tokens
and faults it keeps) with what ``DatabricksNotebookOperator``, ``DatabricksTaskOperator`` and
``DatabricksSQLStatementsOperator`` call, keeping the promises the real service makes:

* **Task runs.** A ``runs/submit`` run has one task run per task: one per entry of ``tasks``, or one
  whose ``task_key`` is the ``run_name`` for the single-task shape (notebook_task at the top). Each task
  run has its own run id (from 2001), answers ``runs/get`` and ``runs/get-output`` by that id, and
  moves PENDING -> RUNNING -> TERMINATED one step per ``runs/get`` of it (or of its parent). The parent
  run is TERMINATED once all its tasks are, with the first unsuccessful result; cancelling it cancels
  its tasks.
* **SQL statements** (``/api/2.0/sql/statements``). A POST needs ``statement`` and ``warehouse_id``,
  accepts ``wait_timeout`` of ``0s`` or 5-50 s only, and answers a new ``statement_id`` with state
  PENDING (there is no idempotency token: the same body twice runs twice). A statement moves PENDING ->
  RUNNING -> SUCCEEDED (or a planned FAILED) one step per ``GET /sql/statements/{id}``; a cancel of a
  running statement ends it CANCELED; ``close`` ends a succeeded one CLOSED (results expired); an
  unknown id answers 404 ``NOT_FOUND``.

Kept apart from ``fake_databricks.py`` so that the run model there stays the one the RunNow and
SubmitRun tests count (``runs`` holds parent runs only; task runs are in ``task_runs``).
"""

from __future__ import annotations

import itertools
import re
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from demo.fake_databricks import ApiError, FakeDatabricks, Run

STATEMENT_STATES = ("PENDING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELED", "CLOSED")
_WAIT_TIMEOUT = re.compile(r"^(\d+)s$")


@dataclass
class Statement:
    statement_id: str
    body: dict[str, Any]
    outcome: str
    state: str = "PENDING"
    polls: int = 0

    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = {"state": self.state}
        if self.state == "FAILED":
            status["error"] = {"error_code": "BAD_REQUEST", "message": "[INJECTED] planned failure"}
        return status


@dataclass
class FakeDatabricksWorkspace(FakeDatabricks):
    """``FakeDatabricks`` with task runs and SQL statements; serve it with ``FakeDatabricksServer``."""

    #: Task run id -> the task run; its parent is ``task_parent[task run id]``.
    task_runs: dict[int, Run] = field(default_factory=dict)
    task_parent: dict[int, int] = field(default_factory=dict)
    statements: dict[str, Statement] = field(default_factory=dict)
    #: Outcomes (SUCCEEDED or FAILED) for the next statements posted, in order; SUCCEEDED once empty.
    statement_outcomes: deque[str] = field(default_factory=deque)
    #: ``GET /sql/statements/{id}`` answers a statement spends PENDING, then RUNNING.
    statement_pending_polls: int = 1
    statement_running_polls: int = 1
    _task_run_ids: Any = field(default_factory=lambda: itertools.count(2001))

    # ---- test controls ----------------------------------------------------------------------------

    def plan_statement_outcomes(self, *outcomes: str) -> None:
        if unknown := [o for o in outcomes if o not in ("SUCCEEDED", "FAILED")]:
            raise ValueError(f"statement outcomes must be SUCCEEDED or FAILED, got {unknown}")
        with self._lock:
            self.statement_outcomes.extend(outcomes)

    def close(self, statement_id: str) -> None:
        """Expire a succeeded statement's result, as Databricks does after a while: it reads CLOSED."""
        with self._lock:
            statement = self.statements[statement_id]
            if statement.state != "SUCCEEDED":
                raise ValueError(f"only a SUCCEEDED statement closes, {statement_id} is {statement.state}")
            statement.state = "CLOSED"

    def tasks_of(self, run_id: int) -> list[Run]:
        with self._lock:
            return [t for tid, t in self.task_runs.items() if self.task_parent[tid] == run_id]

    # ---- the API ------------------------------------------------------------------------------------

    def handle(self, method: str, endpoint: str, params: dict[str, Any]) -> dict[str, Any]:
        if endpoint == "sql/statements" or endpoint.startswith("sql/statements/"):
            with self._lock:
                return self._statements(method, endpoint.split("/")[2:], params)
        return super().handle(method, endpoint, params)

    def _create(self, job_id: int | None, run_name: str, params: dict[str, Any]) -> dict[str, Any]:
        created = super()._create(job_id, run_name, params)
        run = self.runs[created["run_id"]]
        if job_id is None and not self.tasks_of(run.run_id):
            specs = params.get("tasks") or [{"task_key": run_name}]
            for spec in specs:
                task = Run(next(self._task_run_ids), None, str(spec.get("task_key")), spec, None, run.result_state)
                self.task_runs[task.run_id] = task
                self.task_parent[task.run_id] = run.run_id
        return created

    def _run(self, params: dict[str, Any]) -> Run:
        task = self.task_runs.get(_run_id(params))
        return task if task is not None else super()._run(params)

    def _get(self, params: dict[str, Any]) -> dict[str, Any]:
        run = self._run(params)
        tasks = self.tasks_of(run.run_id)
        if not tasks:
            if run.run_id in self.task_runs:
                self._advance(run)
                self._settle(self.runs[self.task_parent[run.run_id]])
                return self._describe_task(run)
            return super()._get(params)
        for task in tasks:
            self._advance(task)
        self._settle(run)
        return self._describe(run) | {"tasks": [self._describe_task(t) for t in tasks]}

    def _advance(self, run: Run) -> None:
        """One ``runs/get`` step: the parent class's ``runs/get`` moves a run (its answer is not a task run's)."""
        super()._get({"run_id": run.run_id})

    def _settle(self, parent: Run) -> None:
        """A parent run follows its tasks: running while one runs, ended with the first bad result."""
        tasks = self.tasks_of(parent.run_id)
        if any(t.life_cycle_state != "TERMINATED" for t in tasks):
            if parent.life_cycle_state == "PENDING" and any(t.life_cycle_state != "PENDING" for t in tasks):
                parent.life_cycle_state = "RUNNING"
            return
        parent.life_cycle_state = "TERMINATED"
        parent.cancelled = any(t.cancelled for t in tasks)

    def _describe_task(self, task: Run) -> dict[str, Any]:
        parent = self.task_parent[task.run_id]
        return {
            "run_id": task.run_id,
            "task_key": task.run_name,
            "attempt_number": 0,
            "start_time": task.start_time,
            "state": task.state(),
            "run_page_url": f"{self.base_url}/#job/0/run/{parent}/task/{task.run_id}",
        }

    def _get_output(self, params: dict[str, Any]) -> dict[str, Any]:
        run = self._run(params)
        if run.run_id in self.task_runs:
            output: dict[str, Any] = {"metadata": self._describe_task(run)}
            if run.life_cycle_state == "TERMINATED" and run.result_state == "FAILED":
                output["error"] = "Injected failure"
            return output
        return super()._get_output(params)

    def _cancel(self, params: dict[str, Any]) -> dict[str, Any]:
        run = self._run(params)
        for task in [run, *self.tasks_of(run.run_id)]:
            if task.life_cycle_state in ("PENDING", "QUEUED", "RUNNING"):
                task.cancelled = True
                task.life_cycle_state = "TERMINATING"
        return {}

    # ---- SQL statements -------------------------------------------------------------------------------

    def _statements(self, method: str, path: list[str], params: dict[str, Any]) -> dict[str, Any]:
        if method == "POST" and not path:
            return self._execute_statement(params)
        if not path or path[0] not in self.statements:
            raise ApiError(404, "NOT_FOUND", f"Statement {path[0] if path else ''!r} not found")
        statement = self.statements[path[0]]
        if method == "GET" and len(path) == 1:
            if statement.state in ("PENDING", "RUNNING"):
                statement.polls += 1
                if statement.polls > self.statement_pending_polls + self.statement_running_polls:
                    statement.state = statement.outcome
                elif statement.polls > self.statement_pending_polls:
                    statement.state = "RUNNING"
            return {"statement_id": statement.statement_id, "status": statement.status()}
        if method == "POST" and path[1:] == ["cancel"]:
            if statement.state in ("PENDING", "RUNNING"):
                statement.state = "CANCELED"
            return {}
        raise ApiError(404, "ENDPOINT_NOT_FOUND", f"No API found for '{method} /sql/statements/{'/'.join(path)}'")

    def _execute_statement(self, params: dict[str, Any]) -> dict[str, Any]:
        for name in ("statement", "warehouse_id"):
            if not params.get(name):
                raise ApiError(400, "INVALID_PARAMETER_VALUE", f"{name} is required")
        wait = _WAIT_TIMEOUT.match(str(params.get("wait_timeout", "10s")))
        if wait is None or not (int(wait[1]) == 0 or 5 <= int(wait[1]) <= 50):
            raise ApiError(400, "INVALID_PARAMETER_VALUE", "wait_timeout must be 0s or between 5s and 50s")
        outcome = self.statement_outcomes.popleft() if self.statement_outcomes else "SUCCEEDED"
        statement = Statement(f"01f0{uuid.uuid4().hex[:28]}", dict(params), outcome)
        self.statements[statement.statement_id] = statement
        return {"statement_id": statement.statement_id, "status": statement.status()}


def _run_id(params: dict[str, Any]) -> int | None:
    try:
        return int(params.get("run_id"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
