"""Print what the TaskFlow demo did, side by side: the @task.resumable function and the plain @task."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

TASKS = {"convert_files": "@task.resumable", "convert_files_plain": "@task (plain)"}


def tries_of(output: Path, task_id: str) -> tuple[dict[int, list[str]], Counter[str]]:
    logs = sorted((output / "taskflow" / task_id).glob("*/tries.jsonl"), key=lambda p: p.stat().st_mtime)
    if not logs:
        raise SystemExit(f"demo: no output of {task_id} under {output}")
    done: dict[int, list[str]] = {}
    for line in logs[-1].read_text().splitlines():
        entry = json.loads(line)
        done.setdefault(entry["try"], []).append(entry["file"])
    return done, Counter(name for files in done.values() for name in files)


def main(output: str, total: int = 1000) -> int:
    print()
    print("=" * 72)
    print(f"example_resumable_taskflow: {total} files, the first try crashes part way")
    rows: dict[str, list[str]] = {}
    work: dict[str, int] = {}
    for task_id, label in TASKS.items():
        done, counts = tries_of(Path(output), task_id)
        lines = []
        for number, files in sorted(done.items()):
            how = "started at" if number == 1 else ("resumed at" if files[0] != done[1][0] else "started over at")
            lines.append(f"try {number}: {how} {files[0]}, converted {len(files)}")
        missing = total - len(counts)
        lines.append(f"files converted in all: {sum(counts.values())} for {total} ({missing} missing)")
        rows[label] = lines
        work[task_id] = sum(counts.values())
    width = max(len(line) for lines in rows.values() for line in lines) + 4
    labels = list(rows)
    print("  " + labels[0].ljust(width) + labels[1])
    for left, right in zip(*rows.values(), strict=False):
        print("  " + left.ljust(width) + right)
    saved = work["convert_files_plain"] - work["convert_files"]
    ok = work["convert_files"] == total and saved > 0
    print(f"  RESUMED: the resumable task redid no file; the plain one redid {saved}" if ok else "  NOT RESUMED")
    print("=" * 72)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
