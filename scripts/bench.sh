#!/usr/bin/env bash
# `make bench`: benchmarks/run.py on Airflow 3.3 in a fresh throwaway AIRFLOW_HOME (build/bench-home).
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
"$venv/bin/python" "$root/benchmarks/run.py"
