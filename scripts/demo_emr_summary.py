"""
Count what example_resumable_emr started on the moto server; exit 1 if anything was started twice,
or if a retry after step 4 of 5 failed added other steps than 4 and 5 (``pipeline_steps``).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import boto3

MARKER = re.compile(r" \[(rsm-[0-9a-f]{48}):(\d+)/\d+\]$")


def main(info_file: str) -> int:
    info = json.loads(Path(info_file).read_text())

    def client(service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=info["endpoint_url"],
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    emr = client("emr")
    clusters = [c for c in emr.list_clusters()["Clusters"] if c["Name"] == "resumable-example"]
    # Steps per marker (token, index): one set per submission, each step once. The pipeline steps of
    # the comparison (named <operator>_step_<n>) are counted apart.
    marked: dict[tuple[str, int], list[str]] = {}
    pipeline: dict[str, list[tuple[str, str]]] = {"resumable": [], "official": []}
    for cluster in clusters:
        for step in reversed(list(paginate(emr, "list_steps", "Steps", ClusterId=cluster["Id"]))):
            name, state = step["Name"], step["Status"]["State"]
            base = MARKER.sub("", name)
            if base.split("_step_")[0] in pipeline:
                pipeline[base.split("_step_")[0]].append((base.split("_step_")[1], state))
                continue
            match = MARKER.search(name)
            if match:
                marked.setdefault((match[1], int(match[2])), []).append(state)
    step_sets = sum(max(len(v) for k, v in marked.items() if k[0] == token) for token in {k[0] for k in marked})
    runs = client("emr-serverless").list_job_runs(applicationId=info["application_id"])["jobRuns"]
    eks = client("emr-containers").list_job_runs(virtualClusterId=info["virtual_cluster_id"])["jobRuns"]

    counts = {
        "clusters created": len(clusters),
        "step sets added": step_sets,
        "serverless job runs started": len(runs),
        "EMR on EKS jobs started": len(eks),
    }
    finished = {
        "steps": [state for states in marked.values() for state in states],
        "serverless runs": [r["state"] for r in runs],
        "EMR on EKS jobs": [j["state"] for j in eks],
    }
    unfinished = {
        name: states
        for name, states in finished.items()
        if any(state not in ("COMPLETED", "SUCCESS") for state in states)
    }
    print()
    print("=" * 72)
    print("example_resumable_emr: every resumable task's first try died after submitting")
    print("; ".join(f"{name}: {n}" for name, n in counts.items()))
    if any(n != 1 for n in counts.values()):
        print(f"FAIL: expected exactly 1 of each, got {counts}", file=sys.stderr)
        return 1
    if unfinished:
        print(f"FAIL: not every job finished successfully: {unfinished}", file=sys.stderr)
        return 1
    print("OK: each retry found what its first try started; nothing was submitted twice")
    if any(pipeline.values()):
        return compare_pipelines(pipeline)
    print("=" * 72)
    return 0


def paginate(client: Any, operation: str, key: str, **kwargs: Any) -> Any:
    for page in client.get_paginator(operation).paginate(**kwargs):
        yield from page[key]


def compare_pipelines(pipeline: dict[str, list[tuple[str, str]]]) -> int:
    """Step 4 of 5 failed once in each pipeline: how many steps did the retry run again?"""
    print()
    print("Step 4 of 5 failed once (ActionOnFailure CANCEL_AND_WAIT); steps added, in order:")
    again = {}
    for operator, steps in pipeline.items():
        print(f"  {operator:>9}: " + ", ".join(f"{n}:{state.lower()}" for n, state in steps))
        again[operator] = len(steps) - 5
    print(
        f"steps run again after one failure: official EmrAddStepsOperator {again['official']}, "
        f"ResumableEmrAddStepsOperator {again['resumable']}"
    )
    finished = [state for operator in pipeline.values() for _, state in operator[-2:]]
    if again != {"official": 5, "resumable": 2} or any(state != "COMPLETED" for state in finished):
        print(f"FAIL: expected 5 official and 2 resumed steps run again, all finished: {pipeline}", file=sys.stderr)
        return 1
    print("OK: the retry resumed at the failed step; the completed steps 1-3 did not run again")
    print("=" * 72)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
