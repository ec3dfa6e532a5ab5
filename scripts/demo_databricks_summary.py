"""
Count the runs the fake Databricks started per task of the demo DAG; fail if one of ours started two.

Then the ten-task runs whose task 9 fails once: how many tasks each operator's retry ran again (ours
repairs the run, the official operator submits a new one).
"""

from __future__ import annotations

import json
import sys
import urllib.request
from collections import Counter

OURS = ("submit_notebook_run", "resumable-demo-nightly", "submit_deferrable_run", "repair_ten_task_run")
OFFICIAL = "official_submit_run"
TEN_TASKS = {
    "repair_ten_task_run": "resumable (repairs)",
    "official_ten_task_run": "official DatabricksSubmitRunOperator",
}


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
    return ten_tasks(state["runs"])


def ten_tasks(runs: list[dict]) -> int:
    """Tasks run again after task 9 failed once: the tasks executed beyond the ten of one clean run."""
    print("==> ten-task runs, task 9 failing once:")
    again = {}
    for name, who in TEN_TASKS.items():
        mine = [run for run in runs if run["run_name"] == name]
        executed = sum(len(run["executed"]) for run in mine)
        repairs = sum(len(run["repairs"]) for run in mine)
        again[name] = executed - 10
        print(f"  {name:<24} {len(mine)} run(s), {repairs} repair(s), {again[name]} task(s) run again  [{who}]")
    if again["repair_ten_task_run"] != 1:
        print(f"ERROR: ours ran {again['repair_ten_task_run']} tasks again, expected 1 (task 9)", file=sys.stderr)
        return 1
    if again["official_ten_task_run"] < 10:
        print("ERROR: the official operator's retry did not run all ten tasks again", file=sys.stderr)
        return 1
    print(
        f"==> after one task failure ours ran {again['repair_ten_task_run']} task again in the same run; "
        f"the official operator ran {again['official_ten_task_run']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
