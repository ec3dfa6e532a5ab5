"""
The "Redo after SIGKILL under a deployment" section of ``docs/benchmarks.md``, from the deployment
suite's summaries (``build/deploy/<leg>.json``, written by ``make test-deploy``).

``python -m benchmarks.deploy_redo`` rewrites the section in place; ``benchmarks/run.py`` (``make
bench``) keeps the section it finds, so the two can be run in any order.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks.md"
START = "<!-- deploy-redo:start (python -m benchmarks.deploy_redo) -->"
END = "<!-- deploy-redo:end -->"
POLICY = {"default": "default policy", "interval5": "`checkpoint_interval=5`"}


def kept(doc: str) -> list[str]:
    """The section as ``doc`` has it (markers included), or nothing."""
    if START not in doc or END not in doc:
        return []
    return [*doc[doc.index(START) : doc.index(END) + len(END)].splitlines(), ""]


#: The walk families of tests/deploy/scenarios.py, as the table names them.
OPERATORS = {
    "http": "`ResumablePaginatedHttpOperator`",
    "batches": "`run_batches` operator",
    "taskflow": "`@task.resumable` loop (`handle.iterate`)",
}


def render(reports: list[dict[str, Any]]) -> list[str]:
    lines = [
        START,
        "## Redo after SIGKILL under a deployment",
        "",
        "Measured by `make test-deploy` (`tests/deploy/`), not under `dag.test()`: a real scheduler retries",
        "a task process the fake service SIGKILLed at page or batch 300 of 400 (5 records each, 20 ms of",
        "service time per page). Redone: pages or batches the retry fetched or wrote again; seconds: from",
        "the first redone page's first fetch to the kill. Zero duplicate and zero missing records in",
        "every cell; the whole summary per leg is in `build/deploy/<leg>.json`. The default policy is",
        "`checkpoint_within_budget()`; the suite fails a leg where it redid more than 1 s of work (50 pages).",
        "With `checkpoint_interval=5` the redo depends on where the kill fell in the 5 s window.",
        "",
        "| leg | operator | policy | kill | redone | seconds redone |",
        "| --- | --- | --- | --- | ---: | ---: |",
    ]
    for report in reports:
        for o in report["outcomes"]:
            if o["redo_pages"] is None or o["moment"] == "before_first_page":
                continue
            operator = OPERATORS.get(o["family"], o["family"])
            kill = {
                "mid_walk": "task process at page 300",
                "worker_lost": "task + supervisor at page 300",
                "mapped": "1 of 3 mapped at page 40",
            }
            lines.append(
                f"| {report['leg']} | {operator} | {POLICY.get(o['variant'], o['variant'])} | "
                f"{kill.get(o['moment'], o['moment'])} | {o['redo_pages']} | {o['redo_seconds']:.2f} s |"
            )
    lines += ["", END, ""]
    return lines


def main() -> None:
    reports = [json.loads(p.read_text()) for p in sorted((ROOT / "build" / "deploy").glob("*.json"))]
    reports = [r for r in reports if r.get("outcomes")]
    if not reports:
        raise SystemExit("no build/deploy/<leg>.json with outcomes; run `make test-deploy` first")
    doc = DOC.read_text()
    section = "\n".join(render(reports))
    if START in doc and END in doc:
        doc = doc[: doc.index(START)] + section.rstrip("\n") + doc[doc.index(END) + len(END) :]
    else:
        doc = doc.rstrip("\n") + "\n\n" + section
    DOC.write_text(doc)
    print(f"wrote the redo table of {len(reports)} leg(s) to {DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
