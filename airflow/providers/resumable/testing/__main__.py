"""
Try "clear and re-run" on your own machine, which ``airflow dags test`` cannot do (it starts a new
run, or deletes the earlier run of that date)::

    python -m airflow.providers.resumable.testing clear-and-rerun dags/my_dag.py my_dag
    python -m airflow.providers.resumable.testing clear-and-rerun dags/my_dag.py my_dag --run-id <run_id>

Without ``--run-id`` the DAG is run once first, as ``airflow dags test`` runs it. Then every task
(or each ``--task-id``) of the run is cleared as the UI's "Clear" does and the same run is driven
again, in this process, against the metadata DB of ``AIRFLOW_HOME``. Exits 1 when the run ends
other than ``success``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from airflow.providers.resumable.compat.airflow import dag_bag_of
from airflow.providers.resumable.testing.runner import RunResult, clear_and_rerun, run_dag


def load_dag(dag_file: str, dag_id: str) -> Any:
    """The DAG ``dag_id`` defined in ``dag_file``; ``SystemExit`` naming the problem otherwise."""
    path = Path(dag_file)
    if not path.is_file():
        raise SystemExit(f"error: DAG file {dag_file!r} does not exist")
    bag = dag_bag_of(str(path.resolve()))
    if bag.import_errors:
        errors = "\n".join(f"{file}: {error}" for file, error in bag.import_errors.items())
        raise SystemExit(f"error: {dag_file} failed to import:\n{errors}")
    dag = bag.dags.get(dag_id)
    if dag is None:
        raise SystemExit(f"error: {dag_file} defines no DAG {dag_id!r}; it defines {sorted(bag.dags)!r}")
    return dag


def describe(title: str, run: RunResult) -> str:
    lines = [f"{title}: run {run.run_id} of {run.dag_id} ended {run.state}"]
    lines.append(f"  {'task_id':<30} {'map_index':>9}  {'state':<16} {'try':>3}  {'max_tries':>9}")
    for ti in run.task_instances:
        state = ti.state or "-"
        lines.append(f"  {ti.task_id:<30} {ti.map_index:>9}  {state:<16} {ti.try_number:>3}  {ti.max_tries:>9}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m airflow.providers.resumable.testing",
        description="Run a DAG, then clear it and run the same run again, as a person's 'Clear' does.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    rerun = commands.add_parser("clear-and-rerun", help="clear a run's tasks and run that same run again")
    rerun.add_argument("dag_file", help="the Python file that defines the DAG")
    rerun.add_argument("dag_id")
    rerun.add_argument("--run-id", help="clear this existing run instead of running the DAG once first")
    rerun.add_argument("--task-id", action="append", dest="task_ids", help="clear only this task (repeatable)")
    args = parser.parse_args(argv)

    dag = load_dag(args.dag_file, args.dag_id)
    previous: RunResult | str
    if args.run_id is None:
        previous = run_dag(dag)
        print(describe("first run", previous), flush=True)
    else:
        previous = args.run_id
    rerun_result = clear_and_rerun(dag, previous, task_ids=args.task_ids)
    print(describe("after clear and re-run", rerun_result), flush=True)
    return 0 if rerun_result.state == "success" else 1


if __name__ == "__main__":
    sys.exit(main())
