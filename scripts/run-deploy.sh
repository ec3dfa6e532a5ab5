#!/usr/bin/env bash
# The deployment SIGKILL suite for one leg (tests/deploy/): a real Airflow deployment on 127.0.0.1 in
# build/deploy-<leg>/, every scenario at once, the task processes SIGKILLed by the fake services.
#
#   scripts/run-deploy.sh <leg> <venv> [driver args...]    e.g. scripts/run-deploy.sh 3.3 .venv --only toy
#
# Normally invoked via `make test-deploy` (all legs) or `make test-deploy-<leg>`.
set -euo pipefail

if [ $# -lt 2 ]; then
  echo "usage: $0 <leg> <venv> [driver args...]" >&2
  exit 2
fi
leg=$1 venv=$2
shift 2

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# shellcheck source=scripts/lib.sh
source "$root/scripts/lib.sh"
venv="$(leg_venv "$root" "$venv" "deploy $leg")"
# The deployment gets its whole configuration from the driver; nothing from the calling shell.
while IFS= read -r var; do unset "$var"; done < <(compgen -e | grep -E '^AIRFLOW(__|_HOME$|_CONFIG$|_CONN_|_VAR_)' || true)
unset AWS_PROFILE AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN
export PYTHONDONTWRITEBYTECODE=1
start=$SECONDS
rc=0
"$venv/bin/python" -m tests.deploy.run --leg "$leg" --venv "$venv" "$@" </dev/null || rc=$?
echo "==> [deploy $leg] $([ $rc = 0 ] && echo PASSED || echo FAILED) in $((SECONDS - start))s"
exit $rc
