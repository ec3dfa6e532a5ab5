#!/usr/bin/env bash
# Run the test suite for one matrix leg in a fresh, throwaway AIRFLOW_HOME.
#
#   scripts/run-leg.sh <leg> <venv> <state backend> [extra pytest args...]
#   e.g. scripts/run-leg.sh 3.3-variable .venv variable -x
#
# Normally invoked via `make test-<leg>` (which also builds/reuses the venv).
set -euo pipefail

if [ $# -lt 3 ]; then
  echo "usage: $0 <leg> <venv> <state backend> [pytest args...]" >&2
  exit 2
fi
leg=$1 venv=$2 backend=$3
shift 3

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# shellcheck source=scripts/lib.sh
source "$root/scripts/lib.sh"
venv="$(leg_venv "$root" "$venv" "$leg")"

# Read the version from package metadata: importing airflow would already initialise its config.
version="$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("apache-airflow"))')"

home="$root/build/airflow-home-$leg"
rm -rf "$home"
mkdir -p "$home/dags"
use_airflow_home "$home" "$home/dags"
# Airflow's default configuration otherwise, as `make demo` and a user's `airflow dags test` see it.
export AIRFLOW__RESUMABLE__STATE_BACKEND="$backend"
export RESUMABLE_TEST_LEG="$leg"
export VIRTUAL_ENV="$venv"
export PATH="$venv/bin:$PATH"
export PYTHONDONTWRITEBYTECODE=1

echo "==> [$leg] Airflow $version, AIRFLOW__RESUMABLE__STATE_BACKEND=$backend, AIRFLOW_HOME=${home#"$root"/}"

migrate_db "$venv" "$leg"

# A leading path (`PYTEST_ARGS="tests/unit/state -x"`) narrows the run to it; otherwise all of tests/.
targets=(tests)
if [ $# -gt 0 ] && [ -e "${1%%::*}" ]; then
  targets=()
fi
# A -variable leg re-runs the venv of a native leg on Variables: the tests that pin their own store
# would only repeat that leg's run (about 290 tests, 45 s), so its full run leaves them out. A narrowed
# run runs what it names.
if [[ $leg == *-variable ]] && [ ${#targets[@]} -gt 0 ]; then
  targets+=(--backend-dependent-only)
fi
rc=0
"$venv/bin/python" -m pytest "${targets[@]}" "$@" </dev/null || rc=$?
case $rc in
  0) echo "==> [$leg] PASSED" ;;
  5) echo "ERROR: [$leg] pytest collected no tests (exit code 5) - is tests/ empty or everything deselected?" >&2
     exit 1 ;;
  *) echo "ERROR: [$leg] pytest failed (exit code $rc)" >&2
     exit "$rc" ;;
esac
