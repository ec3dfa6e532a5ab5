#!/usr/bin/env bash
# `make demo-databricks`: example_dags/example_resumable_databricks.py under `airflow dags test`, on a
# throwaway Airflow (build/demo-databricks-home, SQLite) against the fake Databricks Jobs API on
# 127.0.0.1 (demo/fake_databricks.py), with lost responses injected:
#   * every runs/submit response of submit_notebook_run's first try is lost (the hook's 3 attempts):
#     the try fails, the retry repeats the request with the same idempotency_token and gets the run;
#   * the first run-now response of run_nightly_job is lost: the hook's own retry gets the same run;
#   * one runs/submit response of the official DatabricksSubmitRunOperator is lost: its retry
#     starts a second run;
#   * task 9 of a ten-task run fails once: our retry repairs the run (1 task again), the official
#     operator's retry submits a new run (10 tasks again).
# The summary counts the runs per task and exits non-zero if one of ours started more than one.
#
#   VENV=.venv-2.11 scripts/demo_databricks.sh    # the same on Airflow 2.11 (Variable state backend)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# shellcheck source=scripts/lib.sh
source "$root/scripts/lib.sh"
venv="$(demo_venv "$root" demo-databricks)"

home="$root/build/demo-databricks-home"
rm -rf "$home"

use_airflow_home "$home" "$root/example_dags"
export PATH="$venv/bin:$PATH"

echo "==> demo-databricks: Airflow $("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("apache-airflow"))'), Databricks provider $("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("apache-airflow-providers-databricks"))')"
migrate_db "$venv" demo-databricks

"$venv/bin/python" -m demo.fake_databricks --port 0 --job resumable-demo-nightly \
  --port-file "$home/fake.port" --log-file "$home/fake-requests.jsonl" >"$home/fake.log" 2>&1 &
fake_pid=$!
trap 'kill "$fake_pid" 2>/dev/null || true' EXIT
wait_for_file "$home/fake.port" "$home/fake.log" "the fake Databricks"
port="$(cat "$home/fake.port")"
export AIRFLOW_CONN_DATABRICKS_DEFAULT="{\"conn_type\": \"databricks\", \"host\": \"127.0.0.1\", \"port\": $port, \"schema\": \"http\", \"password\": \"demo-token\"}"
export RESUMABLE_DATABRICKS_POLL_SECONDS=1
export RESUMABLE_DEMO_COMPARE_OFFICIAL=1
echo "==> fake Databricks Jobs API on http://127.0.0.1:$port"

"$venv/bin/python" - "$port" <<'PY'
import json, sys, urllib.request
plan = {
    "drop": {"runs/submit@submit_notebook_run": 3, "jobs/run-now": 1, "runs/submit@official_submit_run": 1},
    # Task 9 of each ten-task run fails on its first attempt only.
    "fail_tasks": {"ours_t9": 1, "official_t9": 1},
}
request = urllib.request.Request(
    f"http://127.0.0.1:{sys.argv[1]}/fake/faults", data=json.dumps(plan).encode(), method="POST",
    headers={"Content-Type": "application/json"},
)
urllib.request.urlopen(request, timeout=5).read()
print("==> faults: " + ", ".join(f"lose {n} response(s) of {k}" for k, n in plan["drop"].items())
      + "; task 9 of each ten-task run fails once")
PY

dags_test "$venv" "$home" example_resumable_databricks \
  "(Submitting job|Submitting again|Submitted job|Reattaching|already succeeded|Resuming job|repair|Run submitted with run_id|Task failed with exception|API requests to Databricks failed)"
"$venv/bin/python" "$root/scripts/demo_databricks_summary.py" "http://127.0.0.1:$port"
