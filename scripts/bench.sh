#!/usr/bin/env bash
# `make bench`: benchmarks/run.py on Airflow 3.3 in a fresh throwaway AIRFLOW_HOME (build/bench-home);
# the benchmark DAG files it writes go in its dags folder.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="$root/${VENV:-.venv}"
home="$root/build/bench-home"
rm -rf "$home"
mkdir -p "$home/dags"
# shellcheck source=scripts/lib.sh
source "$root/scripts/lib.sh"
use_airflow_home "$home" "$home/dags"
migrate_db "$venv" bench
# Tasks run under the real task supervisor (benchmarks/supervised.py) load their DAG files, which
# import benchmarks.*, from the repository root.
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
# The supervisor notices that a task process exited only at its next wake-up, every
# min_heartbeat_interval (5 s by default): 2 s shortens that idle tail after each of the ~150 tasks.
# The walk is timed inside the task, so this changes what the run costs, not what it measures.
export AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL=2
"$venv/bin/python" "$root/benchmarks/run.py"
