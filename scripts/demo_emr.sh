#!/usr/bin/env bash
# `make demo-emr`: example_dags/example_resumable_emr.py under `airflow dags test`, on a throwaway
# Airflow (build/demo-emr-home, SQLite), against moto's server on 127.0.0.1 (demo/emr_service.py).
# A fault (scripts/demo_emr_faults/airflow_local_settings.py) kills the first try of every resumable
# EMR task right after AWS accepted the submission and before the id was stored. The retry must find
# the cluster / steps / job runs that try started, not start them again; the summary counts them and
# the script exits non-zero on any duplicate. Beside them, step 4 of five steps fails once under our
# ResumableEmrAddStepsOperator and under the official EmrAddStepsOperator (RESUMABLE_DEMO_COMPARE_OFFICIAL):
# the official retry runs all five steps again, ours steps 4 and 5; the summary shows both.
#
#   VENV=.venv-2.11 scripts/demo_emr.sh    # the same demo on Airflow 2.11 (Variable state backend)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# shellcheck source=scripts/lib.sh
source "$root/scripts/lib.sh"
venv="$(demo_venv "$root" demo-emr)"

home="$root/build/demo-emr-home"
rm -rf "$home"
mkdir -p "$home"

use_airflow_home "$home" "$root/example_dags"
export PATH="$venv/bin:$PATH"
unset AWS_PROFILE AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN

echo "==> demo-emr: Airflow $("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("apache-airflow"))'), AIRFLOW_HOME=${home#"$root"/}"
migrate_db "$venv" demo-emr

info="$home/aws.json"
"$venv/bin/python" -m demo.emr_service --info-file "$info" \
  --fail-once resumable_step_4 --fail-once official_step_4 >"$home/emr-service.log" 2>&1 &
service_pid=$!
trap 'kill "$service_pid" 2>/dev/null || true' EXIT
wait_for_file "$info" "$home/emr-service.log" "the moto server" 200
field() { "$venv/bin/python" -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$info" "$1"; }
endpoint="$(field endpoint_url)"
echo "==> moto server (EMR, EMR Serverless, EMR on EKS) on $endpoint"

export AIRFLOW_CONN_AWS_DEFAULT="{\"conn_type\": \"aws\", \"login\": \"testing\", \"password\": \"testing\", \"extra\": {\"endpoint_url\": \"$endpoint\", \"region_name\": \"us-east-1\"}}"
export AIRFLOW_VAR_EMR_SERVERLESS_APPLICATION_ID="$(field application_id)"
export AIRFLOW_VAR_EMR_EKS_VIRTUAL_CLUSTER_ID="$(field virtual_cluster_id)"
export AIRFLOW_VAR_EMR_JOB_ROLE_ARN="$(field role_arn)"
export AIRFLOW_VAR_EMR_WAITER_DELAY=1
export RESUMABLE_DEMO_COMPARE_OFFICIAL=1
# The fault: a cluster policy that kills each resumable EMR task's first try after it submitted.
export PYTHONPATH="$root/scripts/demo_emr_faults:$root${PYTHONPATH:+:$PYTHONPATH}"

dags_test "$venv" "$home" example_resumable_emr \
  "DEMO FAULT|Found job|Submitting again with token|Reattaching to job|already succeeded|Resumed steps|EMR Steps failed|Steps \[.*\] added to JobFlow"
"$venv/bin/python" "$root/scripts/demo_emr_summary.py" "$info"
