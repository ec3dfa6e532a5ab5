#!/usr/bin/env bash
# Run make targets side by side, each into its own log, then print the logs in the order given.
#
#   scripts/run-parallel.sh <make> <target>...     e.g. scripts/run-parallel.sh make test-3.3 test-3.2
#
# The matrix legs each run in one Python process, so on a 2-core CI machine two of them side by side
# take little longer than one. Each leg has its own AIRFLOW_HOME and metadata DB, and every service
# the tests start listens on a port the OS picks, so they cannot see each other.
set -uo pipefail

make_cmd=$1
shift
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
logs="$root/build/logs"
mkdir -p "$logs"

declare -a pids=()
for target in "$@"; do
  echo "==> $target: started (log: build/logs/$target.log)"
  $make_cmd --no-print-directory "$target" >"$logs/$target.log" 2>&1 </dev/null &
  pids+=($!)
done

# A cancelled CI job stops every leg, not only this script.
trap 'kill "${pids[@]}" 2>/dev/null; exit 143' INT TERM

failed=()
start=$SECONDS
for i in "${!pids[@]}"; do
  target=${*:i+1:1}
  if ! wait "${pids[$i]}"; then
    failed+=("$target")
  fi
done
for target in "$@"; do
  echo "==> ---------------------------------------------------------------- $target"
  cat "$logs/$target.log"
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "ERROR: failed: ${failed[*]} (logs in build/logs/)" >&2
  exit 1
fi
echo "==> $* green side by side in $((SECONDS - start))s"
