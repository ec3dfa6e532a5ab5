"""Count the runs the fake Databricks started per task of the demo DAG; fail if one of ours started two."""

from __future__ import annotations

import json
import sys
import urllib.request
from collections import Counter

OURS = ("submit_notebook_run", "resumable-demo-nightly", "submit_deferrable_run")
OFFICIAL = "official_submit_run"


def main(base_url: str) -> int:
    with urllib.request.urlopen(f"{base_url}/fake/state", timeout=5) as response:
        state = json.load(response)
    runs = Counter(run["run_name"] for run in state["runs"])
    requests = Counter(
        r["params"].get("run_name") or "resumable-demo-nightly"
        for r in state["requests"]
        if r["endpoint"] in ("jobs/runs/submit", "jobs/run-now")
    )
    print("==> runs started per task (submit/run-now requests sent):")
    for name in (*OURS, OFFICIAL):
        verdict = "ok" if runs[name] == 1 else "DUPLICATE" if runs[name] > 1 else "none"
        who = "official DatabricksSubmitRunOperator" if name == OFFICIAL else "resumable"
        print(f"  {name:<24} {runs[name]} run(s) from {requests[name]} request(s)  [{who}: {verdict}]")
    duplicated = [name for name in OURS if runs[name] != 1]
    if duplicated:
        print(f"ERROR: expected exactly one run for {duplicated}", file=sys.stderr)
        return 1
    if runs[OFFICIAL] < 2:
        print("ERROR: the official operator met no lost response; the comparison shows nothing", file=sys.stderr)
        return 1
    print(
        f"==> ours: one run per task despite {sum(requests[n] for n in OURS) - len(OURS)} repeated requests; "
        f"the official operator paid for {runs[OFFICIAL]} runs after one lost response"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
