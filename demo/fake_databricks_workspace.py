"""
The fake Jobs API of ``fake_databricks``, plus the SQL Statement Execution API.

``FakeDatabricksWorkspace`` extends :class:`~demo.fake_databricks.FakeDatabricks` (whose runs, task
runs, repairs, tokens and faults it keeps as they are) with what ``DatabricksSQLStatementsOperator``
calls, keeping the promises the real service makes. What ``DatabricksNotebookOperator`` and
``DatabricksTaskOperator`` call (a task run answering ``runs/get``, ``runs/get-output`` and
``runs/cancel`` by its own id) is the base's one task-run model, ``demo/fake_databricks_tasks.py``.

* **SQL statements** (``/api/2.0/sql/statements``). A POST needs ``statement`` and ``warehouse_id``,
  accepts ``wait_timeout`` of ``0s`` or 5-50 s only, and answers a new ``statement_id`` with state
  PENDING (there is no idempotency token: the same body twice runs twice). A statement moves PENDING ->
  RUNNING -> SUCCEEDED (or a planned FAILED) one step per ``GET /sql/statements/{id}``; a cancel of a
  running statement ends it CANCELED; ``close`` ends a succeeded one CLOSED (results expired); an
  unknown id answers 404 ``NOT_FOUND``.

Kept apart from ``fake_databricks.py``, which stays the Jobs API alone.
"""

from __future__ import annotations

import re
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from demo.fake_databricks import ApiError, FakeDatabricks

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
    """``FakeDatabricks`` with SQL statements; serve it with ``FakeDatabricksServer``."""

    statements: dict[str, Statement] = field(default_factory=dict)
    #: Outcomes (SUCCEEDED or FAILED) for the next statements posted, in order; SUCCEEDED once empty.
    statement_outcomes: deque[str] = field(default_factory=deque)
    #: ``GET /sql/statements/{id}`` answers a statement spends PENDING, then RUNNING.
    statement_pending_polls: int = 1
    statement_running_polls: int = 1

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

    # ---- the API ------------------------------------------------------------------------------------

    def handle(self, method: str, endpoint: str, params: dict[str, Any]) -> dict[str, Any]:
        if endpoint == "sql/statements" or endpoint.startswith("sql/statements/"):
            with self._lock:
                return self._statements(method, endpoint.split("/")[2:], params)
        return super().handle(method, endpoint, params)

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
