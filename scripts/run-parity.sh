#!/usr/bin/env bash
# The parity suite for one leg: the official providers' released unit tests against our drop-ins,
# in a fresh, throwaway AIRFLOW_HOME.
#
#   scripts/run-parity.sh <leg> <venv> [extra pytest args...]
#
# Normally invoked via `make test-parity` (or as part of `make test-3.3`). See tests/parity/.
set -euo pipefail

if [ $# -lt 2 ]; then
  echo "usage: $0 <leg> <venv> [pytest args...]" >&2
  exit 2
fi
leg=$1 venv=$2
shift 2

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# shellcheck source=scripts/lib.sh
source "$root/scripts/lib.sh"
venv="$(leg_venv "$root" "$venv" "parity $leg")"

# A python with pip for `pip download` of the sdists (the venvs are built by uv and have none),
# resolved before the venv goes first on PATH.
PYTHON="$(command -v "${PYTHON:-python3}")"
export PYTHON

home="$root/build/airflow-home-parity-$leg"
rm -rf "$home"
mkdir -p "$home/dags"
use_airflow_home "$home" "$home/dags"
export RESUMABLE_TEST_LEG="$leg"
export VIRTUAL_ENV="$venv"
export PATH="$venv/bin:$PATH"
export PYTHONDONTWRITEBYTECODE=1

echo "==> [parity $leg] the official providers' unit tests against the drop-ins (tests/parity)"
migrate_db "$venv" "parity $leg"

rc=0
"$venv/bin/python" -m tests.parity.run "$@" </dev/null || rc=$?
if [ "$rc" != 0 ]; then
  echo "ERROR: [parity $leg] failed (exit code $rc)" >&2
  exit "$rc"
fi
echo "==> [parity $leg] PASSED"
