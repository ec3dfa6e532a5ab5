"""
``make demo``, part 3: example_resumable_http_incremental, run four times in Airflow's task runner.

1. the first run reads every item (from the operator's ``initial_value``);
2. the API gains items: the second run reads only those;
3. the API gains more and breaks on the second page of them: the run fails after fetching (and
   writing) the first page, and the watermark does not move;
4. the API is back: the fourth run reads everything the failed run had read, and the rest.

The runs go through the shipped testing helper (``airflow.providers.resumable.testing.run_dag``, i.e.
``dag.test()``) in one process, so four runs cost one Airflow start-up; the newsletter service runs
in this process too. Airflow's own log goes to a file; this prints what each run fetched (from the
service's request log), its window (from the manifest) and where the mark stands (from the metadata
DB, as ``airflow resumable watermark list`` reads it). Exits non-zero if an item was lost, or read
twice by runs that succeeded.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from demo.newsletter_service import NewsletterService

DAG_ID = "example_resumable_http_incremental"
TASK_ID = "incremental_crawl"
EXAMPLE = Path(__file__).resolve().parents[1] / "example_dags" / f"{DAG_ID}.py"


@dataclass
class RunStory:
    what: str
    state: str
    fetched: list[int]
    since: str | None
    mark: Any
    #: Ids the run wrote (a successful run's parts): the fetched ones less the boundary records an
    #: earlier run already wrote.
    written: list[int] = field(default_factory=list)


def load_dag(path: Path = EXAMPLE) -> Any:
    spec = importlib.util.spec_from_file_location(DAG_ID, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


def current_mark(dag_id: str = DAG_ID) -> Any:
    from airflow.utils.session import create_session

    from airflow.providers.resumable.inventory import watermarks as watermark_inventory

    with create_session() as session:
        found = watermark_inventory.read(session, watermark_inventory.WatermarkFilters(dag_id=dag_id, task_id=TASK_ID))
    return found[0].document.get("value") if found else None


def forget_mark(dag_id: str = DAG_ID) -> None:
    """Delete a mark an earlier demo in the same AIRFLOW_HOME left, as ``watermark reset`` without ``--to`` does."""
    from airflow.utils.session import create_session

    from airflow.providers.resumable.inventory import watermarks as watermark_inventory

    with create_session() as session:
        for mark in watermark_inventory.read(
            session, watermark_inventory.WatermarkFilters(dag_id=dag_id, task_id=TASK_ID)
        ):
            watermark_inventory.reset(session, mark)


def play(dag: Any, service: NewsletterService) -> list[RunStory]:
    """The four runs; ``service`` starts with its first items and no faults."""
    from airflow.providers.resumable.testing import run_dag

    forget_mark(dag.dag_id)
    stories = []

    def one(what: str) -> None:
        run = run_dag(dag)
        entries = [e for e in service.log if e["client"] == run.run_id]
        fetched = [i for e in entries if e["status"] == 200 for i in e.get("ids", [])]
        since = entries[0]["query"].get("since") if entries else None
        written = []
        if run.state == "success":
            for uri in run.xcom(TASK_ID)["parts"]:
                text = Path(uri.removeprefix("file://")).read_text()
                written += [json.loads(line)["id"] for line in text.splitlines()]
        stories.append(RunStory(what, run.state, fetched, since, current_mark(dag.dag_id), written))

    one("first run")
    service.add_items(15)
    one("the API gained 15 items")
    service.add_items(20)
    service.malformed_at_item = 13  # the second page of the changes: an HTML error page
    one("the API gained 20 more, and breaks on the 2nd page of them")
    service.malformed_at_item = None
    one("the API is back")
    return stories


def _span(ids: list[int]) -> str:
    if not ids:
        return "nothing"
    if ids == list(range(ids[0], ids[-1] + 1)):
        return f"items {ids[0]}-{ids[-1]} ({len(ids)})"
    return f"{len(ids)} items"


def report(stories: list[RunStory], total: int) -> int:
    print()
    print("=" * 72)
    print(f"{DAG_ID}: four runs of Incremental(cursor_field='updated_at')")
    previous = None
    for n, story in enumerate(stories, 1):
        moved = f"mark -> {story.mark}" if story.mark != previous else f"mark stays at {story.mark}"
        print(f"  run {n} ({story.what}): {story.state}")
        wrote = f", wrote {_span(story.written)}" if story.state == "success" else ""
        print(f"    since {story.since}: fetched {_span(story.fetched)}{wrote}; {moved}")
        previous = story.mark
    succeeded = [i for s in stories for i in s.written]
    twice = len(succeeded) - len(set(succeeded))
    missing = total - len(set(succeeded))
    print(f"  successful runs wrote {len(set(succeeded))} of {total} items: {twice} twice, {missing} missing")
    print("=" * 72)
    ok = (
        [s.state for s in stories] == ["success", "success", "failed", "success"]
        and stories[2].mark == stories[1].mark
        and twice == 0
        and missing == 0
    )
    return 0 if ok else 1


@contextlib.contextmanager
def airflow_log_to(path: Path):
    """Send this process's stdout and stderr (Airflow's task log) to ``path`` while the runs go."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with path.open("a") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--log", type=Path, required=True, help="Airflow's log of the four runs goes here")
    args = parser.parse_args(argv)
    with NewsletterService(items=40, page_size=13) as service:
        os.environ["AIRFLOW_CONN_NEWSLETTER_API"] = service.url
        print(f"==> {DAG_ID}: four runs in one process (log: {args.log})", flush=True)
        with airflow_log_to(args.log):
            stories = play(load_dag(), service)
        return report(stories, service.items)


if __name__ == "__main__":
    sys.exit(main())
