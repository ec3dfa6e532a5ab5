"""
Watermarks inside Airflow's own task runner (``dag.test()`` through the shipped testing helper).

The "Done when" of issue 13, for a user's own operator built on ``WatermarkMixin`` (the HTTP
operator's incremental mode has its own file): three runs fetch every item exactly once; a run that
fails after fetching does not move the mark; a cleared successful run re-reads its own window; two
overlapping runs neither lose items nor advance silently. On the 3.3 leg the task has an ``Asset``
outlet, so the mark lives in ``asset_state_store``; on the Variable legs in a Variable.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from typing import Any

import pytest

from airflow.providers.resumable.mixins import WatermarkMixin
from airflow.providers.resumable.testing import clear_and_rerun, fail_on_tries, run_dag
from airflow.providers.resumable.version_compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_3_PLUS, BaseOperator
from airflow.providers.resumable.watermarks.stores import WatermarkScope
from tests.integration.harness import make_dag
from tests.support.newsletter import cursor_crawl, serve

pytestmark = pytest.mark.integration

ASSET_STORE = AIRFLOW_V_3_3_PLUS and os.environ.get("AIRFLOW__RESUMABLE__STATE_BACKEND", "auto") != "variable"
#: The task's own state is the native store (what a 3.4 Clear can discard).
NATIVE_STATE = ASSET_STORE

#: The source: (sequence number, item id); items "change" by getting a new, higher sequence number.
SOURCE: list[tuple[int, str]] = []
#: What each run read: run_id -> item ids, in the order fetched (every try appends).
FETCHED: dict[str, list[str]] = {}


@pytest.fixture(autouse=True)
def _source():
    SOURCE.clear()
    FETCHED.clear()
    yield
    SOURCE.clear()
    FETCHED.clear()


def add(*ids: str) -> None:
    start = SOURCE[-1][0] if SOURCE else 0
    SOURCE.extend((start + n + 1, item) for n, item in enumerate(ids))


class ChangedItemsOperator(WatermarkMixin, BaseOperator):
    """What a user writes: read what changed since the mark, write it, stage the highest sequence seen."""

    def execute(self, context: Any) -> dict[str, Any]:
        since = self.load_watermark(context, initial_value=0)
        changed = [(seq, item) for seq, item in SOURCE if seq > since]
        FETCHED.setdefault(context["ti"].run_id, []).extend(item for _, item in changed)
        self.write(changed)
        if changed:
            self.advance_watermark(context, max(seq for seq, _ in changed))
        return {"since": since, "items": [item for _, item in changed]}

    def write(self, changed: list[tuple[int, str]]) -> None:
        """Where the data becomes durable; tests make it fail."""


def extract_task(dag, **kwargs):
    kwargs.setdefault("retries", 0)
    kwargs.setdefault("retry_delay", timedelta(0))
    if AIRFLOW_V_3_0_PLUS:
        from airflow.sdk import Asset

        kwargs.setdefault("outlets", [Asset(name=f"{dag.dag_id}_items", uri=f"wm://{dag.dag_id}/items")])
    return ChangedItemsOperator(task_id="extract", dag=dag, **kwargs)


def read_mark(dag_id: str, task_id: str = "extract") -> dict[str, Any] | None:
    """The stored watermark document, read from the metadata DB as the CLI reads it."""
    from airflow.utils.session import create_session

    from airflow.providers.resumable.inventory import watermarks as watermark_inventory

    with create_session() as session:
        found = watermark_inventory.read(session, watermark_inventory.WatermarkFilters(dag_id=dag_id, task_id=task_id))
    assert len(found) <= 1, found
    if not found:
        return None
    expected = "asset_state_store" if ASSET_STORE else "variable"
    assert found[0].backend == expected, f"the mark is in {found[0].backend}, this leg expects {expected}"
    return found[0].document


def fetched_in(run) -> list[str]:
    return FETCHED.get(run.run_id, [])


def test_three_runs_fetch_every_item_exactly_once(request):
    dag = make_dag(request)
    extract_task(dag)
    add("a", "b", "c")
    first = run_dag(dag)
    add("d", "e")
    second = run_dag(dag)
    add("f")
    third = run_dag(dag)
    assert [r.state for r in (first, second, third)] == ["success"] * 3
    assert (fetched_in(first), fetched_in(second), fetched_in(third)) == (["a", "b", "c"], ["d", "e"], ["f"])
    everything = fetched_in(first) + fetched_in(second) + fetched_in(third)
    assert sorted(everything) == ["a", "b", "c", "d", "e", "f"], "every item exactly once in total"
    mark = read_mark(dag.dag_id)
    assert mark is not None
    assert (mark["value"], mark["version"]) == (6, 3)
    assert [c["run_id"] for c in mark["commits"]] == [first.run_id, second.run_id, third.run_id]
    assert [(c["base"], c["value"]) for c in mark["commits"]] == [(0, 3), (3, 5), (5, 6)]


def test_a_run_that_fails_after_fetching_does_not_move_the_mark(request):
    dag = make_dag(request)
    extract_task(dag, retries=1)
    add("a", "b")
    assert run_dag(dag).state == "success"
    add("c", "d")
    # Both tries fetch c and d and die writing them: the run fails with all its retries used.
    with fail_on_tries(ChangedItemsOperator, "write", tries={1, 2}) as fault:
        failed = run_dag(dag)
    assert fault.fired == [1, 2]
    assert failed.state == "failed"
    assert fetched_in(failed) == ["c", "d", "c", "d"], "the retry read the same window as the first try"
    assert read_mark(dag.dag_id)["value"] == 2, "a failed run leaves the previous mark"
    nxt = run_dag(dag)
    assert nxt.state == "success"
    assert fetched_in(nxt) == ["c", "d"], "the next run fetches what the failed run had fetched"
    assert read_mark(dag.dag_id)["value"] == 4


def test_a_retry_that_succeeds_commits_what_it_read(request):
    dag = make_dag(request)
    extract_task(dag, retries=1)
    add("a", "b")
    with fail_on_tries(ChangedItemsOperator, "write", tries={1}) as fault:
        run = run_dag(dag)
    assert fault.fired == [1]
    assert (run.state, run.ti("extract").try_number) == ("success", 2)
    assert read_mark(dag.dag_id)["value"] == 2
    assert read_mark(dag.dag_id)["commits"][-1]["try_number"] == 2


def test_a_cleared_successful_run_rereads_its_own_window(request):
    dag = make_dag(request)
    extract_task(dag)
    add("a", "b")
    assert run_dag(dag).state == "success"
    add("c", "d")
    second = run_dag(dag)
    add("e")
    assert run_dag(dag).state == "success"
    assert fetched_in(second) == ["c", "d"]

    again = clear_and_rerun(dag, second)
    assert again.state == "success"
    assert fetched_in(again) == ["c", "d", "c", "d", "e"], (
        "the cleared run read from its own base (2), not from the initial value, not from the current mark"
    )
    assert again.xcom("extract")["since"] == 2
    mark = read_mark(dag.dag_id)
    assert mark["value"] == 5, "re-reading its window did not move the mark back"
    assert mark["version"] == 3, "the re-read reached the mark but moved nothing: no version, not the newest commit"
    assert [c["run_id"] for c in mark["commits"]][1] == second.run_id


@pytest.mark.parametrize("on_overlap", ["max", "fail"])
def test_two_overlapping_runs_neither_lose_nor_double_advance_silently(request, on_overlap):
    """Run A reads the mark and fails; run B reads the same mark and commits; A, cleared, commits last."""
    dag = make_dag(request)
    extract_task(dag, on_overlap=on_overlap)
    add("a", "b")
    with fail_on_tries(ChangedItemsOperator, "write", tries={1}):
        run_a = run_dag(dag)
    assert run_a.state == "failed"
    add("c")
    run_b = run_dag(dag)
    assert run_b.state == "success"
    assert fetched_in(run_b) == ["a", "b", "c"], "B read from the same mark as A (nothing committed yet)"
    assert read_mark(dag.dag_id)["value"] == 3

    resumed_a = clear_and_rerun(dag, run_a, keep_task_state=True)
    assert resumed_a.state == "success"
    assert fetched_in(resumed_a)[2:] == ["a", "b", "c"], "A's retry kept its window: from the mark it first read"
    mark = read_mark(dag.dag_id)
    assert mark["value"] == 3, "no item is lost and the mark never moves back"
    if on_overlap == "max":
        # A read the same items B committed: the newer of the two is B's, so nothing moved and
        # nothing is written (the overlap is logged as a warning in A's task log).
        assert mark["version"] == 1
        assert mark["commits"][-1]["run_id"] == run_b.run_id
    else:
        assert mark["version"] == 1, "on_overlap='fail' does not commit"
        assert mark["commits"][-1]["run_id"] == run_b.run_id


def test_the_mark_is_where_this_leg_keeps_it(request):
    dag = make_dag(request)
    extract_task(dag)
    add("a")
    assert run_dag(dag).state == "success"
    mark = read_mark(dag.dag_id)  # asserts the backend
    assert mark["scope"] == WatermarkScope(dag.dag_id, "extract").as_dict()
    if not ASSET_STORE:
        from airflow.models import Variable

        raw = Variable.get(WatermarkScope(dag.dag_id, "extract").key)
        assert json.loads(raw)["value"] == 1


# ---- ResumablePaginatedHttpOperator(incremental=...) against the newsletter service --------------

PAGE = 13
START = "2025-12-31T00:00:00Z"  # before every item: the first run reads everything, with since sent


@pytest.fixture
def newsletter(monkeypatch):
    yield from serve(monkeypatch, items=30, page_size=PAGE)


def incremental_task(dag, out, **kwargs):
    from airflow.providers.resumable.operators.http import Incremental

    kwargs.setdefault("retries", 0)
    kwargs.setdefault("retry_delay", timedelta(0))
    kwargs.setdefault("incremental", Incremental(cursor_field="updated_at", initial_value=START))
    if AIRFLOW_V_3_0_PLUS:
        from airflow.sdk import Asset

        kwargs.setdefault("outlets", [Asset(name=f"{dag.dag_id}_issues", uri=f"wm://{dag.dag_id}/issues")])
    return cursor_crawl(
        dag,
        page=PAGE,
        task_id="extract",
        # The service logs X-Client: each request names its run, so the test reads what each run fetched.
        headers={"X-Client": "{{ run_id }}", "X-Try": "{{ ti.try_number }}"},
        pagination={"strategy": "cursor", "cursor_path": "meta.next_cursor"},
        output_path=f"file://{out}/" + "{{ run_id | replace(':', '_') | replace('+', '_') }}",
        page_retry_attempts=1,
        page_retry_max_wait=0,
        **kwargs,
    )


def runs_adding(dag, service, *added: int) -> list[Any]:
    """A run of ``dag``, then for each number in ``added`` that many new items and another run."""
    runs = [run_dag(dag)]
    for count in added:
        service.add_items(count)
        runs.append(run_dag(dag))
    return runs


def served(service, run, try_number: str | None = None) -> list[int]:
    return [
        i
        for e in service.log
        if e["client"] == run.run_id and e["status"] == 200 and (try_number is None or e["try"] == try_number)
        for i in e.get("ids", [])  # a fault (an HTML page) serves no item
    ]


def sinces(service, run) -> set[str]:
    return {e["query"]["since"] for e in service.log if e["client"] == run.run_id}


def test_http_three_runs_fetch_every_item_exactly_once(newsletter, tmp_path, request):
    dag = make_dag(request)
    incremental_task(dag, tmp_path)
    first, second, third = runs_adding(dag, newsletter, 20, 5)
    assert [r.state for r in (first, second, third)] == ["success"] * 3
    assert served(newsletter, first) == list(range(30))
    # From one second below the mark: the item at the mark is fetched again and dropped, not written.
    assert served(newsletter, second) == [29, *range(30, 50)]
    assert served(newsletter, third) == [49, *range(50, 55)]
    assert second.xcom("extract")["records"] == 20
    assert sinces(newsletter, second) == {"2026-01-01T00:28:59Z"}, "every page sent the committed mark, less 1 s"
    window = third.xcom("extract")["window"]
    assert window == {
        "since": "2026-01-01T00:48:59Z",
        "until": "2026-01-01T00:54:00Z",
        "base": "2026-01-01T00:49:00Z",
        "lag": None,
        "reread_own_window": False,
        "store": "asset_state_store" if ASSET_STORE else "variable",
    }
    assert read_mark(dag.dag_id)["value"] == "2026-01-01T00:54:00Z"


def test_http_a_run_failing_after_new_pages_does_not_move_the_mark(newsletter, tmp_path, request):
    dag = make_dag(request)
    incremental_task(dag, tmp_path)
    assert run_dag(dag).state == "success"
    newsletter.add_items(30)
    newsletter.malformed_at_item = PAGE  # the second page of the changes is an HTML error page
    failed = run_dag(dag)
    assert failed.state == "failed"
    assert served(newsletter, failed) == list(range(29, 29 + PAGE)), "it fetched (and wrote) new items first"
    assert read_mark(dag.dag_id)["value"] == "2026-01-01T00:29:00Z", "the failed run left the mark"

    newsletter.malformed_at_item = None
    nxt = run_dag(dag)
    assert nxt.state == "success"
    assert served(newsletter, nxt) == list(range(29, 60)), "the next run fetched them again, and the rest"
    assert read_mark(dag.dag_id)["value"] == "2026-01-01T00:59:00Z"


def test_http_retries_inside_a_run_resume_at_the_last_page_of_the_same_window(newsletter, tmp_path, request):
    dag = make_dag(request)
    incremental_task(dag, tmp_path, retries=1)
    assert run_dag(dag).state == "success"
    newsletter.add_items(40)
    newsletter.outage_at_item = 2 * PAGE  # position in the changes, not an id
    newsletter.outage_requests = None  # down until the next try
    run = run_dag(dag)
    assert (run.state, run.ti("extract").try_number) == ("success", 2)
    assert served(newsletter, run, "1") == list(range(29, 29 + 2 * PAGE))
    assert served(newsletter, run, "2") == list(range(29 + 2 * PAGE, 70)), "try 2 resumed at the page that failed"
    assert sinces(newsletter, run) == {"2026-01-01T00:28:59Z"}, "both tries read the same window"
    manifest = run.xcom("extract")
    assert (manifest["resumed_from_page"], manifest["records"]) == (2, 40)
    assert manifest["window"]["until"] == "2026-01-01T01:09:00Z", "the highest value of try 1's pages was kept"
    assert read_mark(dag.dag_id)["value"] == "2026-01-01T01:09:00Z"


def test_http_a_cleared_successful_run_rereads_its_own_window(newsletter, tmp_path, request):
    dag = make_dag(request)
    incremental_task(dag, tmp_path)
    first, second, third = runs_adding(dag, newsletter, 10, 10)
    assert (first.state, third.state) == ("success", "success")

    again = clear_and_rerun(dag, second)
    assert again.state == "success"
    assert served(newsletter, again) == [*range(29, 40), *range(29, 50)], "its own window on: not all 50 items"
    window = again.xcom("extract")["window"]
    assert (window["since"], window["reread_own_window"]) == ("2026-01-01T00:28:59Z", True)
    assert read_mark(dag.dag_id)["value"] == "2026-01-01T00:49:00Z"


def test_http_lag_rereads_the_last_minutes_and_updates_come_back(newsletter, tmp_path, request):
    from airflow.providers.resumable.operators.http import Incremental

    dag = make_dag(request)
    incremental_task(
        dag, tmp_path, incremental=Incremental(cursor_field="updated_at", initial_value=START, lag=timedelta(minutes=2))
    )
    assert run_dag(dag).state == "success"
    newsletter.touch([4])
    newsletter.add_items(1)
    second = run_dag(dag)
    assert served(newsletter, second) == [28, 29, 4, 30], "two minutes before the mark, then the changes"
    window = second.xcom("extract")["window"]
    assert (window["since"], window["base"], window["lag"]) == ("2026-01-01T00:27:00Z", "2026-01-01T00:29:00Z", 120.0)
    assert read_mark(dag.dag_id)["value"] == "2026-01-01T00:31:00Z"


def test_a_clear_that_discards_the_kept_window_replans_from_the_mark_and_loses_nothing(request):
    """Airflow 3.4's default Clear discards task state, the kept window with it."""
    dag = make_dag(request)
    extract_task(dag)
    add("a", "b")
    with fail_on_tries(ChangedItemsOperator, "write", tries={1}):
        run_a = run_dag(dag)
    assert run_a.state == "failed"
    add("c")
    run_b = run_dag(dag)
    assert run_b.state == "success"
    assert read_mark(dag.dag_id)["value"] == 3

    resumed_a = clear_and_rerun(dag, run_a, keep_task_state=False)
    assert resumed_a.state == "success"
    mark = read_mark(dag.dag_id)
    assert mark["value"] == 3, "no item is lost and the mark never moves back"
    if NATIVE_STATE:
        assert fetched_in(resumed_a)[2:] == [], "the window was planned again, from the mark B committed"
