#!/usr/bin/env bash
# PNGs of the Resumable tab for the docs: scripts/ui_screenshots.py in a throwaway AIRFLOW_HOME.
#
#   scripts/ui-screenshots.sh [--out DIR]      (normally `make ui-screenshots`; venv: $VENV, default .venv)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# shellcheck source=scripts/lib.sh
source "$root/scripts/lib.sh"
venv="$(demo_venv "$root" ui-screenshots)"
scripts/ensure-chromium.sh

home="$root/build/ui-screenshots-home"
rm -rf "$home"
mkdir -p "$home/dags"
use_airflow_home "$home" "$home/dags"
export AIRFLOW__RESUMABLE__STATE_BACKEND="${AIRFLOW__RESUMABLE__STATE_BACKEND:-auto}"
export VIRTUAL_ENV="$venv" PATH="$venv/bin:$PATH" PYTHONDONTWRITEBYTECODE=1
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
migrate_db "$venv" ui-screenshots
"$venv/bin/python" scripts/ui_screenshots.py "$@" </dev/null
