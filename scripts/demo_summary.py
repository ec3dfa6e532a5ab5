"""Print what the demo DAG did, from the files it wrote: where each try started, and the records."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path


def main(output: str, expected_records: int = 200) -> int:
    runs = sorted((p.parent for p in Path(output).glob("*/tries.jsonl")), key=lambda p: p.stat().st_mtime)
    if not runs:
        print(f"demo: no run output under {output}", file=sys.stderr)
        return 1
    run = runs[-1]
    tries = [json.loads(line) for line in (run / "tries.jsonl").read_text().splitlines()]
    ids = Counter()
    parts = sorted(run.glob("part-*.jsonl"))
    for part in parts:
        for line in part.read_text().splitlines():
            ids[json.loads(line)["id"]] += 1
    duplicates = sum(n - 1 for n in ids.values() if n > 1)
    missing = expected_records - len(ids)

    print()
    print("=" * 72)
    print(f"example_stateful_batches: {run.name}")
    for t in tries:
        how = "started" if t["started_at_batch"] == 0 else "resumed"
        print(f"  try {t['try']}: {how} at batch {t['started_at_batch']}")
    print(f"  {len(parts)} parts, {sum(ids.values())} records, {duplicates} duplicates, {missing} missing")
    ok = len(tries) >= 2 and tries[-1]["started_at_batch"] > 0 and duplicates == 0 and missing == 0
    print("  RESUMED: the retry continued where the failed try stopped" if ok else "  NOT RESUMED")
    print("=" * 72)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
