#!/usr/bin/env bash
# The README's demo: run example_dags/example_stateful_batches.py with `airflow dags test` in a fresh
# throwaway AIRFLOW_HOME (build/demo-home, SQLite), then print where each try started and check the
# output for lost or duplicated records. Normally invoked via `make demo` (which builds .venv).
#
#   VENV=.venv-2.11 scripts/demo.sh    # the same demo on Airflow 2.11 (Variable state backend)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

venv="${VENV:-.venv}"
case "$venv" in /*) ;; *) venv="$root/$venv" ;; esac
if [ ! -x "$venv/bin/airflow" ]; then
  echo "ERROR: $venv/bin/airflow not found; run 'make demo' (it builds the venv) or 'make venv'" >&2
  exit 1
fi

home="$root/build/demo-home"
output="$root/build/demo-output"
rm -rf "$home" "$output"

# shellcheck source=scripts/lib.sh
source "$root/scripts/lib.sh"
use_airflow_home "$home" "$root/example_dags"
export RESUMABLE_DEMO_OUTPUT="$output"
export PATH="$venv/bin:$PATH"

echo "==> demo: Airflow $("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("apache-airflow"))'), AIRFLOW_HOME=${home#"$root"/}"
migrate_db "$venv" demo

echo "==> airflow dags test example_stateful_batches (log: build/demo-home/dags-test.log)"
rc=0
"$venv/bin/airflow" dags test example_stateful_batches >"$home/dags-test.log" 2>&1 </dev/null || rc=$?
# The lines a user would look for in the task log: the failure, the flush, the resume.
grep -E "^[0-9]{4}-.*(Starting at batch|Task failed|Saved the checkpoint|Resuming at batch|Finished after batch)" \
  "$home/dags-test.log" | sed -E 's/^([^ ]+) \[[a-z ]+\] /  \1 /; s/ \[airflow[^]]*\].*$//' || true
if [ "$rc" != 0 ]; then
  tail -40 "$home/dags-test.log" >&2
  echo "ERROR: airflow dags test failed (exit $rc)" >&2
  exit "$rc"
fi
"$venv/bin/python" "$root/scripts/demo_summary.py" "$output"
