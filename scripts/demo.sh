#!/usr/bin/env bash
# The README's demo, on a fresh throwaway Airflow (build/demo-home, SQLite) and local fake services:
#   1. example_dags/example_resumable_http.py against the newsletter service on 127.0.0.1, which has
#      an outage from item 26 until the next try: ResumablePaginatedHttpOperator resumes at item 26,
#      the plain HttpOperator beside it starts again at item 0.
#   2. example_dags/example_stateful_batches.py: a batch copy that fails at batch 8 and resumes there.
#   3. example_dags/example_resumable_http_incremental.py, four runs: the first reads everything, the
#      second only new items, the third fails after fetching new items (the watermark stays), the
#      fourth reads them again (demo/incremental_story.py, one process through the testing helper).
#   4. example_dags/example_resumable_taskflow.py: a @task.resumable function converting 1,000 files
#      crashes at file 517 and its retry resumes there; a plain @task beside it starts over at file 0.
# Each prints where every try started and checks the output for lost or duplicated records; at the
# end, the URL of the Resumable tab (Airflow 3.1+) of each task instance the demo left state for.
# Normally invoked via `make demo` (which builds .venv).
#
#   VENV=.venv-2.11 scripts/demo.sh    # the same demo on Airflow 2.11 (Variable state backend)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# shellcheck source=scripts/lib.sh
source "$root/scripts/lib.sh"
venv="$(demo_venv "$root" demo)"

home="$root/build/demo-home"
output="$root/build/demo-output"
rm -rf "$home" "$output"
mkdir -p "$output"

use_airflow_home "$home" "$root/example_dags"
export RESUMABLE_DEMO_OUTPUT="$output"
export PATH="$venv/bin:$PATH"

echo "==> demo: Airflow $("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("apache-airflow"))'), AIRFLOW_HOME=${home#"$root"/}"
migrate_db "$venv" demo

# ---- 1. the paginated API with an outage -------------------------------------------------------
"$venv/bin/python" -m demo.newsletter_service --port 0 --items 100 --page-size 13 \
  --outage-at-item 26 --outage-requests -1 \
  --log-file "$output/newsletter-requests.jsonl" --port-file "$output/newsletter.port" \
  >"$output/newsletter.log" 2>&1 &
service_pid=$!
trap 'kill "$service_pid" 2>/dev/null || true' EXIT
wait_for_file "$output/newsletter.port" "$output/newsletter.log" "newsletter service"
export AIRFLOW_CONN_NEWSLETTER_API="http://127.0.0.1:$(cat "$output/newsletter.port")"
echo "==> newsletter service on $AIRFLOW_CONN_NEWSLETTER_API (outage from item 26 until the next try)"

run_dag() {
  # The lines a user would look for in the task logs: the failure, the flush, the resume.
  dags_test "$venv" "$home" "$1" \
    "^[0-9]{4}-.*(Starting at batch|Saved the checkpoint|Resuming at batch|Finished after batch|Fetched [0-9]+ pages)"
}

run_dag example_resumable_http
"$venv/bin/python" "$root/scripts/demo_http_summary.py" "$output/newsletter-requests.jsonl" "$output/resumable"

# ---- 2. batches with a typed checkpoint -----------------------------------------------------------
run_dag example_stateful_batches
"$venv/bin/python" "$root/scripts/demo_summary.py" "$output"

# ---- 3. incremental runs with a watermark ---------------------------------------------------------
"$venv/bin/python" -m demo.incremental_story --log "$home/example_resumable_http_incremental.log"

# ---- 4. a TaskFlow function with a checkpointed loop ----------------------------------------------
dags_test "$venv" "$home" example_resumable_taskflow \
  "^[0-9]{4}-.*(Simulated worker crash|Saved the checkpoint|Resuming at batch|Starting at batch|Finished after batch)"
"$venv/bin/python" "$root/scripts/demo_taskflow_summary.py" "$output"

# ---- 5. where the UI shows it -----------------------------------------------------------------------
"$venv/bin/python" "$root/scripts/demo_ui_links.py" "${DEMO_UI_PORT:-8080}"
