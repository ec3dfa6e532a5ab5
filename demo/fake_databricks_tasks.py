"""
Multi-task runs and ``jobs/runs/repair`` for the fake Jobs API (``demo/fake_databricks.py``).

Kept apart from the run endpoints so each piece stays small (and other endpoints can be added beside
them without touching this). What the real service promises, and this enforces:

* a run is made of tasks (``tasks`` of ``runs/submit``, the job's ``settings.tasks`` for ``run-now``;
  a single ``*_task`` payload is one task) with ``depends_on``; a task runs only when all it depends
  on succeeded, otherwise it ends ``UPSTREAM_FAILED`` without running;
* ``jobs/runs/repair`` re-runs tasks *inside the same run* (same ``run_id``, same page URL): only of a
  run that is not in progress (400 ``INVALID_STATE`` otherwise); ``rerun_all_failed_tasks`` re-runs
  every task that did not succeed (its dependants that never ran included), ``rerun_tasks`` the named
  ones (and, with ``rerun_dependent_tasks``, what depends on them); once a run was repaired, every
  further repair must name the latest repair in ``latest_repair_id`` (a missing or stale one is
  refused with 400 ``INVALID_PARAMETER_VALUE``, so two repairs built on the same state cannot both
  start); repair ids increase;
* ``runs/get`` lists the latest attempt of each task (its own task-run id, ``attempt_number``, state);
  with ``include_history=true`` it adds ``repair_history``: the original run, then one entry per
  repair, oldest first (``DatabricksHook.get_latest_repair_id`` reads the last one);
* a task run has its own run id: ``runs/get`` of it answers the task run (its state, its own
  ``tasks`` entry) with its parent's ``job_id`` and ``run_name``, and moves the parent one step as a
  ``runs/get`` of the parent does; ``runs/cancel`` of it cancels that task only (what depends on it
  ends ``UPSTREAM_FAILED``), ``runs/cancel`` of the parent cancels every task that has not run;
* ``runs/get-output`` answers for a task run, and refuses the parent of a multi-task run.

Faults: ``FakeDatabricks.fail_task_once(task_key)`` makes that task's next attempt fail (the one
after succeeds), so "a 10-task job fails at task 9 once" is one call. ``executions`` records every
task attempt that ran, so a test can count what a repair re-ran.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import threading
    from collections.abc import Callable, Iterable

#: Result states a repair with ``rerun_all_failed_tasks`` re-runs: every one that is not a success.
SUCCESS = "SUCCESS"


class RepairRefused(Exception):
    """What ``repair`` refuses; ``FakeDatabricks`` turns it into the API's 400 with this code."""

    def __init__(self, error_code: str, message: str) -> None:
        super().__init__(message)
        self.error_code, self.message = error_code, message


@dataclass
class TaskRun:
    """The latest attempt of one task of a run."""

    task_key: str
    depends_on: list[str]
    run_id: int
    attempt_number: int = 0
    result_state: str | None = None
    start_time: int = field(default_factory=lambda: int(time.time() * 1000))

    def describe(self, run_life_cycle_state: str) -> dict[str, Any]:
        state: dict[str, Any]
        if self.result_state is None:
            state = {"life_cycle_state": run_life_cycle_state, "state_message": ""}
        else:
            state = {"life_cycle_state": "TERMINATED", "result_state": self.result_state, "state_message": ""}
        return {
            "task_key": self.task_key,
            "run_id": self.run_id,
            "attempt_number": self.attempt_number,
            "depends_on": [{"task_key": key} for key in self.depends_on],
            "start_time": self.start_time,
            "state": state,
        }


@dataclass
class RunTasks:
    """The tasks of one run, what the running attempt will run, and the run's repairs."""

    tasks: list[TaskRun]
    #: Task keys the current attempt (the original run or a repair) runs when the run terminates.
    scheduled: set[str]
    repairs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def latest_repair_id(self) -> int | None:
        return self.repairs[-1]["id"] if self.repairs else None

    def by_key(self) -> dict[str, TaskRun]:
        return {task.task_key: task for task in self.tasks}

    def dependants(self, keys: Iterable[str]) -> set[str]:
        """``keys`` and every task that depends on one of them, transitively."""
        found = set(keys)
        changed = True
        while changed:
            changed = False
            for task in self.tasks:
                if task.task_key not in found and found.intersection(task.depends_on):
                    found.add(task.task_key)
                    changed = True
        return found


def task_specs(payload: dict[str, Any], job: dict[str, Any] | None, default_key: str) -> list[tuple[str, list[str]]]:
    """(task_key, depends_on) of a run: the payload's ``tasks``, the job's, or one task."""
    specs = payload.get("tasks") or (job or {}).get("settings", {}).get("tasks") or []
    if not specs:
        return [(str(payload.get("task_key") or default_key), [])]
    return [
        (str(spec.get("task_key") or f"task_{i}"), [str(d["task_key"]) for d in spec.get("depends_on") or []])
        for i, spec in enumerate(specs)
    ]


def new_run_tasks(specs: list[tuple[str, list[str]]], next_task_run_id: Callable[[], int]) -> RunTasks:
    keys = {key for key, _ in specs}
    unknown = sorted({dep for _, deps in specs for dep in deps} - keys)
    if unknown:
        raise RepairRefused("INVALID_PARAMETER_VALUE", f"depends_on names tasks that do not exist: {unknown}")
    tasks = [TaskRun(key, deps, next_task_run_id()) for key, deps in specs]
    return RunTasks(tasks=tasks, scheduled=set(keys))


def settle(run_tasks: RunTasks, outcome: Callable[[TaskRun, bool], str], record: Callable[[str], None]) -> str:
    """
    Run the scheduled tasks in dependency order; return the run's result state.

    ``outcome(task, is_last)`` gives a task's result when it runs; ``record(task_key)`` counts it.
    A scheduled task whose upstream did not succeed ends ``UPSTREAM_FAILED`` without running.
    """
    by_key = run_tasks.by_key()
    done: set[str] = set()
    order: list[TaskRun] = []
    while len(order) < len(run_tasks.tasks):
        ready = [t for t in run_tasks.tasks if t.task_key not in done and all(d in done for d in t.depends_on)]
        if not ready:  # a cycle: refuse to guess
            raise RepairRefused("INVALID_PARAMETER_VALUE", "the tasks' depends_on form a cycle")
        for task in ready:
            order.append(task)
            done.add(task.task_key)
    last = order[-1].task_key
    for task in order:
        if task.task_key not in run_tasks.scheduled:
            continue
        if any(by_key[d].result_state != SUCCESS for d in task.depends_on):
            task.result_state = "UPSTREAM_FAILED"
            continue
        record(task.task_key)
        task.result_state = outcome(task, task.task_key == last)
    run_tasks.scheduled = set()
    results = [t.result_state for t in run_tasks.tasks]
    for bad in ("FAILED", "TIMEDOUT", "CANCELED"):
        if bad in results:
            return bad
    return "FAILED" if "UPSTREAM_FAILED" in results else SUCCESS


def cancel(run_tasks: RunTasks) -> None:
    """A cancelled run: what had not run ends CANCELED."""
    for task in run_tasks.tasks:
        if task.task_key in run_tasks.scheduled:
            task.result_state = "CANCELED"
    run_tasks.scheduled = set()


def repair(
    run_tasks: RunTasks,
    params: dict[str, Any],
    *,
    life_cycle_state: str,
    repair_id: int,
    next_task_run_id: Callable[[], int],
) -> None:
    """Validate a ``jobs/runs/repair`` request as Databricks does, and schedule the tasks it re-runs."""
    if life_cycle_state not in ("TERMINATED", "INTERNAL_ERROR", "SKIPPED"):
        raise RepairRefused(
            "INVALID_STATE", f"The run is {life_cycle_state}: only a run that is not in progress can be repaired"
        )
    latest, given = run_tasks.latest_repair_id, params.get("latest_repair_id")
    if latest is not None and given is None:
        raise RepairRefused(
            "INVALID_PARAMETER_VALUE", "The latest repair ID needs to be provided in order to create a new repair"
        )
    if given is not None and (latest is None or int(given) != latest):
        raise RepairRefused(
            "INVALID_PARAMETER_VALUE",
            f"latest_repair_id {given} is not the latest repair of this run ({latest}); read it from repair_history",
        )
    rerun_all, rerun_tasks = bool(params.get("rerun_all_failed_tasks")), params.get("rerun_tasks")
    if rerun_all == bool(rerun_tasks):
        raise RepairRefused("INVALID_PARAMETER_VALUE", "Exactly one of rerun_tasks or rerun_all_failed_tasks is needed")
    by_key = run_tasks.by_key()
    if rerun_all:
        selected = {t.task_key for t in run_tasks.tasks if t.result_state != SUCCESS}
        if params.get("rerun_dependent_tasks"):
            selected = run_tasks.dependants(selected)
    else:
        unknown = sorted(set(rerun_tasks) - set(by_key))
        if unknown:
            raise RepairRefused("INVALID_PARAMETER_VALUE", f"rerun_tasks names tasks not in the run: {unknown}")
        selected = set(rerun_tasks)
        if params.get("rerun_dependent_tasks"):
            selected = run_tasks.dependants(selected)
    if not selected:
        raise RepairRefused("INVALID_PARAMETER_VALUE", "The run has no failed tasks to repair")
    for key in selected:
        task = by_key[key]
        task.run_id = next_task_run_id()
        task.attempt_number += 1
        task.result_state = None
        task.start_time = int(time.time() * 1000)
    run_tasks.scheduled = selected
    run_tasks.repairs.append(
        {
            "type": "REPAIR",
            "id": repair_id,
            "start_time": int(time.time() * 1000),
            "task_run_ids": sorted(by_key[k].run_id for k in selected),
        }
    )


def repair_history(run_tasks: RunTasks, original_start: int, original_task_run_ids: list[int]) -> list[dict[str, Any]]:
    """``repair_history`` of ``runs/get?include_history=true``: the original run, then each repair."""
    original = {"type": "ORIGINAL", "start_time": original_start, "task_run_ids": original_task_run_ids}
    return [original, *run_tasks.repairs]


class TaskRunsMixin:
    """
    ``FakeDatabricks``' side of tasks and repairs: the test controls and the ``jobs/runs/repair`` route.

    A refusal is raised as :class:`RepairRefused`; ``FakeDatabricks.handle`` answers it with a 400.
    """

    if TYPE_CHECKING:
        runs: dict[int, Any]
        task_failures: dict[str, int]
        executions: list[tuple[int, str]]
        _task_run_ids: Any
        _last_repair_id: int
        _lock: threading.RLock

        def _run(self, params: dict[str, Any]) -> Any: ...

    # ---- test controls ------------------------------------------------------------------------------

    def fail_task_once(self, task_key: str, times: int = 1) -> None:
        """Make the next ``times`` attempts of task ``task_key`` (in any run) fail; later ones succeed."""
        with self._lock:
            self.task_failures[task_key] = self.task_failures.get(task_key, 0) + times

    def terminate(self, run_id: int) -> None:
        """End a run now, as if it had been polled to its end (its scheduled tasks run)."""
        with self._lock:
            run = self.runs[run_id]
            if run.life_cycle_state != "TERMINATED":
                run.life_cycle_state = "TERMINATED"
                self._settle(run)

    def repair_ids(self, run_id: int) -> list[int]:
        """The ids of the repairs of ``run_id``, oldest first."""
        with self._lock:
            run = self.runs[run_id]
            return [r["id"] for r in run.tasks.repairs] if run.tasks else []

    def tasks_of(self, run_id: int) -> list[TaskRun]:
        """The latest attempt of each task of ``run_id``, in the order of its ``tasks``."""
        with self._lock:
            run = self.runs[run_id]
            return list(run.tasks.tasks) if run.tasks else []

    def executed(self, run_id: int) -> list[str]:
        """The task keys that ran in ``run_id``, every attempt, in order."""
        with self._lock:
            return [key for rid, key in self.executions if rid == run_id]

    # ---- the service ----------------------------------------------------------------------------------

    def _settle(self, run: Any) -> None:
        """The run just terminated: its scheduled tasks run (or are cancelled), in dependency order."""
        if run.tasks is None:
            return
        if run.cancelled:
            cancel(run.tasks)
            return

        def outcome(task: TaskRun, is_last: bool) -> str:
            if self.task_failures.get(task.task_key, 0) > 0:
                self.task_failures[task.task_key] -= 1
                return "FAILED"
            # plan_results (or a test that set result_state before the run ended): the original attempt
            # of a run ends as planned, through its last task.
            if is_last and task.attempt_number == 0 and run.result_state != SUCCESS:
                return str(run.result_state)
            return SUCCESS

        run.result_state = settle(run.tasks, outcome, lambda key: self.executions.append((run.run_id, key)))

    def _repair(self, params: dict[str, Any]) -> dict[str, Any]:
        run = self._run(params)
        if run.tasks is None:
            raise RepairRefused("INVALID_PARAMETER_VALUE", f"Run {run.run_id} has no tasks to repair")
        # An id is spent only by a repair that starts, so the ids of a run's repairs increase by one.
        repair_id = self._last_repair_id + 1
        repair(
            run.tasks,
            params,
            life_cycle_state=run.life_cycle_state,
            repair_id=repair_id,
            next_task_run_id=lambda: next(self._task_run_ids),
        )
        self._last_repair_id = repair_id
        run.life_cycle_state, run.polls, run.cancelled = "PENDING", 0, False
        return {"repair_id": repair_id}

    def _describe_task_run(self, parent: Any, task: TaskRun, base_url: str) -> dict[str, Any]:
        """``runs/get`` of a task run: the task run itself, under its parent's job and name."""
        described = task.describe(parent.life_cycle_state)
        return described | {
            "job_id": parent.job_id,
            "run_name": parent.run_name,
            "run_page_url": f"{base_url}/#job/{parent.job_id or 0}/run/{task.run_id}",
            # The official operators read a failed task run's error through its own ``tasks`` entry
            # (``extract_failed_task_errors``), as the service lists it.
            "tasks": [described],
        }

    def _cancel_task_run(self, parent: Any, task: TaskRun) -> None:
        """Cancel one task run that has not run; once none is left to run, the parent ends."""
        if parent.tasks is None or task.task_key not in parent.tasks.scheduled or task.result_state is not None:
            return
        task.result_state = "CANCELED"
        parent.tasks.scheduled.discard(task.task_key)
        # What depends on it stays scheduled: when the run settles, it ends UPSTREAM_FAILED.
        if not parent.tasks.scheduled and parent.life_cycle_state != "TERMINATED":
            parent.life_cycle_state = "TERMINATING"

    def _task_run(self, task_run_id: int) -> tuple[Any, TaskRun] | None:
        for run in self.runs.values():
            for task in run.tasks.tasks if run.tasks else []:
                if task.run_id == task_run_id:
                    return run, task
        return None
