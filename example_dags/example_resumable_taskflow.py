"""
Example DAG: a TaskFlow function that processes 1,000 files and resumes where it crashed.

``convert_files`` is a ``@task.resumable`` function: ``resumable.iterate(files)`` keeps a checkpoint
of how many files are done, so when the first try crashes at file 517 (``CRASH_AT``), the retry
starts at file 517. ``convert_files_plain`` beside it is the same function under a plain ``@task``:
its retry converts every file again. Each converted file is written under a deterministic name, so a
file converted twice is replaced, never duplicated.

Runs as is with ``airflow dags test example_resumable_taskflow`` (``make demo`` does that on a fresh
SQLite Airflow). Output goes to ``$RESUMABLE_DEMO_OUTPUT`` (default: a folder in the temp dir); set
``RESUMABLE_DEMO_CRASH_AT`` to crash at another file.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

from airflow.providers.resumable.version_compat import AIRFLOW_V_3_0_PLUS

if AIRFLOW_V_3_0_PLUS:
    from airflow.sdk import DAG, get_current_context, task
else:
    from airflow.decorators import task
    from airflow.models.dag import DAG
    from airflow.operators.python import get_current_context


OUTPUT = os.environ.get("RESUMABLE_DEMO_OUTPUT", str(Path(tempfile.gettempdir()) / "resumable-demo"))
FILES = [f"invoice-{n:04d}.csv" for n in range(1000)]
CRASH_AT = int(os.environ.get("RESUMABLE_DEMO_CRASH_AT", "517"))


def convert(name: str, out: Path) -> None:
    """Convert one file; the output name depends only on the input, so a redo replaces it."""
    target = out / "converted" / name.replace(".csv", ".json")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"source": name, "rows": len(name)}))


def note(out: Path, try_number: int, name: str) -> None:
    """What each try did, for the demo's summary: one line per converted file."""
    with (out / "tries.jsonl").open("a") as log:
        log.write(json.dumps({"try": try_number, "file": name}) + "\n")


def crash_on_first_try(try_number: int, index: int) -> None:
    if try_number == 1 and index == CRASH_AT:
        raise RuntimeError(f"Simulated worker crash at file {index} on try 1")


def output_for(task_name: str) -> Path:
    run_id = get_current_context()["run_id"]
    out = Path(OUTPUT) / "taskflow" / task_name / run_id.replace(":", "_").replace("+", "_")
    out.mkdir(parents=True, exist_ok=True)
    return out


@task.resumable(retries=2, retry_delay=timedelta(seconds=1))
def convert_files(files: list[str], resumable) -> dict[str, int]:
    try_number = get_current_context()["ti"].try_number
    out = output_for("convert_files")
    converted = 0
    for name in resumable.iterate(files):  # after a crash, the retry starts at the crashed file
        crash_on_first_try(try_number, files.index(name))
        convert(name, out)
        note(out, try_number, name)
        converted += 1
    return {"converted_this_try": converted}


@task(retries=2, retry_delay=timedelta(seconds=1))
def convert_files_plain(files: list[str]) -> dict[str, int]:
    try_number = get_current_context()["ti"].try_number
    out = output_for("convert_files_plain")
    converted = 0
    for index, name in enumerate(files):  # a retry starts again at file 0
        crash_on_first_try(try_number, index)
        convert(name, out)
        note(out, try_number, name)
        converted += 1
    return {"converted_this_try": converted}


with DAG(
    dag_id="example_resumable_taskflow",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "resumable", "taskflow"],
    doc_md=__doc__,
) as dag:
    convert_files(FILES)
    convert_files_plain(FILES)


if __name__ == "__main__":
    dag.test()
