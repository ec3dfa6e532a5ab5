# Shared by demo.sh, run-leg.sh and bench.sh: a throwaway Airflow home with a SQLite metadata DB.
# Source it, then call `use_airflow_home <home> <dags folder>` and `migrate_db <venv> <label>`.

# Point every Airflow setting at <home>, dropping whatever the calling shell carried.
use_airflow_home() {
  local home=$1 dags=$2
  while IFS= read -r var; do unset "$var"; done < <(compgen -e | grep -E '^AIRFLOW(__|_CONFIG$|_CONN_|_VAR_)' || true)
  mkdir -p "$home"
  export AIRFLOW_HOME="$home"
  export AIRFLOW_CONFIG="$home/airflow.cfg"
  export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="sqlite:///$home/airflow.db"
  export AIRFLOW__CORE__DAGS_FOLDER="$dags"
  export AIRFLOW__CORE__LOAD_EXAMPLES=False
}

# `airflow db migrate` into $AIRFLOW_HOME, showing its log only when it fails.
migrate_db() {
  local venv=$1 label=$2 start=$SECONDS
  if ! "$venv/bin/airflow" db migrate >"$AIRFLOW_HOME/db-migrate.log" 2>&1 </dev/null; then
    cat "$AIRFLOW_HOME/db-migrate.log" >&2
    echo "ERROR: [$label] 'airflow db migrate' failed (log: $AIRFLOW_HOME/db-migrate.log)" >&2
    return 1
  fi
  echo "==> [$label] airflow db migrate OK ($((SECONDS - start))s)"
}

# <venv> made absolute under <root>, printed; fails naming <label> when it has no python (make venv
# builds them). Shared by run-leg.sh, run-parity.sh and run-deploy.sh.
leg_venv() {
  local root=$1 venv=$2 label=$3
  case "$venv" in /*) ;; *) venv="$root/$venv" ;; esac
  if [ ! -x "$venv/bin/python" ]; then
    echo "ERROR: [$label] venv $venv does not exist; run 'make venv' first" >&2
    return 1
  fi
  echo "$venv"
}

# The venv a demo runs in: $VENV (default .venv) made absolute under <root>; fails when it has no airflow.
demo_venv() {
  local root=$1 target=$2 venv="${VENV:-.venv}"
  case "$venv" in /*) ;; *) venv="$root/$venv" ;; esac
  if [ ! -x "$venv/bin/airflow" ]; then
    echo "ERROR: $venv/bin/airflow not found; run 'make $target' (it builds the venv) or 'make venv'" >&2
    return 1
  fi
  echo "$venv"
}

# Wait up to <tenths> x 0.1 s for a service started in the background to write <file>; on timeout
# print its <log> and fail naming <what>.
wait_for_file() {
  local file=$1 log=$2 what=$3 tenths=${4:-100}
  for _ in $(seq "$tenths"); do [ -s "$file" ] && return 0; sleep 0.1; done
  cat "$log" >&2
  echo "ERROR: $what did not start" >&2
  return 1
}

# `airflow dags test <dag_id>` with its log in <home>/<dag_id>.log; prints the log lines matching
# <pattern> (timestamp and message only, in the Airflow 2 and 3 log formats), and on failure the log's
# tail and an error naming the DAG.
dags_test() {
  local venv=$1 home=$2 dag_id=$3 pattern=$4 rc=0
  echo "==> airflow dags test $dag_id (log: ${home#"$PWD"/}/$dag_id.log)"
  "$venv/bin/airflow" dags test "$dag_id" >"$home/$dag_id.log" 2>&1 </dev/null || rc=$?
  grep -E "$pattern" "$home/$dag_id.log" \
    | sed -E 's/^\[?([0-9T:.-]+)[^ ]*\]? ?(\[[a-z ]+\]|\{[^}]*\} [A-Z]+ -)? */  \1 /; s/ \[(airflow|task)[^]]*\].*$//' \
    | cut -c1-220 || true
  if [ "$rc" != 0 ]; then
    tail -40 "$home/$dag_id.log" >&2
    echo "ERROR: airflow dags test $dag_id failed (exit $rc)" >&2
    return "$rc"
  fi
}
