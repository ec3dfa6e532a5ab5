"""Count what example_resumable_emr started on the moto server; exit 1 if anything was started twice."""

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
    # Steps per marker (token, index): one set per submission, each step once.
    marked: dict[tuple[str, int], list[str]] = {}
    for cluster in clusters:
        for step in emr.list_steps(ClusterId=cluster["Id"])["Steps"]:
            match = MARKER.search(step["Name"])
            if match:
                marked.setdefault((match[1], int(match[2])), []).append(step["Status"]["State"])
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
    print("=" * 72)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
