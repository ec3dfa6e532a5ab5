"""Print what example_resumable_http did, from the service's request log and the parts on disk."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path


def _tries(log: list[dict], client: str, total: int) -> list[str]:
    lines = []
    tries = sorted({e["try"] for e in log if e["client"] == client}, key=lambda t: int(t or 0))
    fetched: Counter[int] = Counter()
    for attempt in tries:
        entries = [e for e in log if e["client"] == client and e["try"] == attempt]
        ok = [e for e in entries if e["status"] == 200]
        failed = [e for e in entries if e["status"] != 200]
        items = []
        for e in ok:
            limit = int(e["query"].get("limit", 10))
            items.extend(range(e["first_item"], min(e["first_item"] + limit, total)))
        fetched.update(items)
        start = entries[0]["first_item"] if entries else None
        verb = "started" if start == 0 else "resumed"
        if attempt != tries[0] and start == 0:
            verb = "started again"
        text = f"try {attempt}: {verb} at item {start}"
        if items:
            text += f", fetched items {min(items)}-{max(items)}"
        if failed:
            text += f", then HTTP {failed[0]['status']} x{len(failed)} (outage)"
        lines.append(text)
    again = sum(n - 1 for n in fetched.values() if n > 1)
    lines.append(f"items fetched more than once: {again}")
    return lines


def main(log_file: str, resumable_out: str, total: int = 100) -> int:
    log = [json.loads(line) for line in Path(log_file).read_text().splitlines()]
    runs = sorted((p for p in Path(resumable_out).iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
    ids: Counter[int] = Counter()
    for part in sorted(runs[-1].glob("part-*.jsonl")):
        ids.update(json.loads(line)["id"] for line in part.read_text().splitlines())
    duplicates = sum(n - 1 for n in ids.values() if n > 1)
    missing = total - len(ids)

    print()
    print("=" * 72)
    print("example_resumable_http: the newsletter API answers 503 from item 26 until the next try")
    print("  ResumablePaginatedHttpOperator:")
    for line in _tries(log, "resumable", total):
        print(f"    {line}")
    print(
        f"    {sum(ids.values())} records in {len(list(runs[-1].glob('part-*.jsonl')))} parts, "
        f"{duplicates} duplicates, {missing} missing"
    )
    print("  HttpOperator (same pagination, no resume):")
    for line in _tries(log, "plain", total):
        print(f"    {line}")
    print("=" * 72)
    resumed = any("resumed at item 26" in line for line in _tries(log, "resumable", total))
    return 0 if resumed and duplicates == 0 and missing == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
