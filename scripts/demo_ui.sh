#!/usr/bin/env bash
# `make demo-ui`: Airflow's API server on the demo's home (build/demo-home, made by `make demo`; made
# here first when missing), on 127.0.0.1:${DEMO_UI_PORT:-8080}, to look at the Resumable tab of the
# demo's task instances. Log in as admin / admin (Airflow's simple auth manager; a demo only).
# Ctrl-C stops it.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# shellcheck source=scripts/lib.sh
source "$root/scripts/lib.sh"
venv="$(demo_venv "$root" demo)"
home="$root/build/demo-home"
port="${DEMO_UI_PORT:-8080}"

if [ ! -f "$home/airflow.db" ]; then
  echo "==> no demo home yet: running the demo first (scripts/demo.sh)"
  "$root/scripts/demo.sh"
fi
use_airflow_home "$home" "$root/example_dags"
export PATH="$venv/bin:$PATH"
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="admin:admin"
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE="$home/demo-ui-passwords.json"
echo '{"admin": "admin"}' >"$AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"
"$venv/bin/python" "$root/scripts/demo_ui_links.py" "$port"
echo "==> airflow api-server on http://127.0.0.1:$port (log in as admin / admin; Ctrl-C stops it)"
exec "$venv/bin/airflow" api-server --host 127.0.0.1 --port "$port"
