#!/usr/bin/env bash
# Demo: run the example DAG `example_stateful_batches` (example_dags/example_stateful_batches.py)
# end-to-end with `airflow dags test`, in a fresh throwaway AIRFLOW_HOME (build/demo-home) and
# the primary venv (.venv, Airflow 3.3). Normally invoked via `make demo` (which builds .venv).
#
# Environment knobs:
#   VENV=.venv            venv to use (e.g. VENV=.venv-2.11 to demo on Airflow 2.11)
#   KEEP_HOME=1           keep build/demo-home from a previous demo (state, DB) instead of wiping it
#   DEMO_DAG_ID=...       DAG id to run (default: example_stateful_batches)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

venv="${VENV:-.venv}"
case "$venv" in /*) ;; *) venv="$root/$venv" ;; esac
dag_id="${DEMO_DAG_ID:-example_stateful_batches}"
home="$root/build/demo-home"

if [ ! -x "$venv/bin/airflow" ]; then
  echo "ERROR: $venv/bin/airflow not found; run 'make venv' (or 'make demo') first" >&2
  exit 1
fi
if [ ! -f "$root/example_dags/$dag_id.py" ]; then
  echo "WARNING: example_dags/$dag_id.py does not exist (yet); 'airflow dags test' will not find the DAG" >&2
fi

if [ "${KEEP_HOME:-0}" != "1" ]; then
  rm -rf "$home"
fi
mkdir -p "$home"

# Isolate from any Airflow configuration in the calling shell.
while IFS= read -r var; do unset "$var"; done < <(compgen -e | grep -E '^AIRFLOW(__|_CONFIG$|_CONN_|_VAR_)' || true)
export AIRFLOW_HOME="$home"
export AIRFLOW_CONFIG="$home/airflow.cfg"
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="sqlite:///$home/airflow.db"
export AIRFLOW__CORE__DAGS_FOLDER="$root/example_dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export PATH="$venv/bin:$PATH"

echo "==> demo: Airflow $("$venv/bin/python" -c 'import airflow; print(airflow.__version__)'), AIRFLOW_HOME=${home#"$root"/}"
"$venv/bin/airflow" db migrate >"$home/db-migrate.log" 2>&1 </dev/null \
  || { cat "$home/db-migrate.log" >&2; echo "ERROR: airflow db migrate failed" >&2; exit 1; }

"$venv/bin/airflow" dags test "$dag_id" </dev/null
