"""The pure watermark rules: cursor order, lag, the window a run reads, and what a commit writes."""

from __future__ import annotations

from datetime import timedelta

import pytest

from airflow.providers.resumable.state.base import CorruptStateError
from airflow.providers.resumable.watermarks.rules import (
    MAX_COMMITS,
    CommitEntry,
    WatermarkDocument,
    WatermarkValueError,
    compare_cursors,
    cursor_max,
    plan_commit,
    plan_window,
    reset_document,
    subtract_lag,
    watermark_key,
)

NOW = "2026-01-01T00:00:00+00:00"


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (1, 2, -1),
        (2.5, 2, 1),
        (3, 3, 0),
        ("2026-01-01T00:00:00Z", "2026-01-01T00:00:01Z", -1),
        ("2026-01-01T01:00:00+01:00", "2026-01-01T00:00:00Z", 0),  # the same instant, other offsets
        ("2026-01-01T00:00:00", "2026-01-01T00:00:00Z", 0),  # naive reads as UTC
        ("2026-01-02", "2026-01-01T23:59:59Z", 1),
        ("2026-01-01T00:00:00.5Z", "2026-01-01T00:00:00Z", 1),
    ],
)
def test_cursor_values_compare_as_numbers_or_instants(a, b, expected):
    assert compare_cursors(a, b) == expected


@pytest.mark.parametrize(
    ("a", "b", "message"),
    [
        ("abc", 1, "must be an ISO-8601 timestamp (such as '2026-01-01T00:00:00Z') or a number, got 'abc'"),
        (True, 1, "got True"),
        (1, "2026-01-01T00:00:00Z", "cannot compare a number with a timestamp"),
        ({"id": 1}, 1, "got {'id': 1}"),
    ],
)
def test_values_that_do_not_order_are_refused_by_name(a, b, message):
    with pytest.raises(WatermarkValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        compare_cursors(a, b)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [(None, 3, 3), (3, None, 3), (2, 5, 5), ("2026-01-02T00:00:00Z", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z")],
)
def test_cursor_max(a, b, expected):
    assert cursor_max(a, b) == expected


@pytest.mark.parametrize(
    ("value", "lag", "expected"),
    [
        ("2026-01-01T00:05:00Z", timedelta(minutes=5), "2026-01-01T00:00:00Z"),
        ("2026-01-01T00:05:00+02:00", timedelta(minutes=5), "2026-01-01T00:00:00+02:00"),
        ("2026-01-01T00:05:00", timedelta(minutes=5), "2026-01-01T00:00:00"),
        ("2026-01-01T00:05:00Z", timedelta(0), "2026-01-01T00:05:00Z"),
        (100, 10, 90),
        (100, None, 100),
        (None, timedelta(minutes=5), None),
    ],
)
def test_lag_moves_the_value_back_in_its_own_format(value, lag, expected):
    assert subtract_lag(value, lag) == expected


@pytest.mark.parametrize(
    ("value", "lag", "message"),
    [
        (100, timedelta(minutes=5), "lag must be a number for a numeric watermark"),
        ("2026-01-01T00:05:00Z", 5, "lag must be a timedelta for a timestamp watermark"),
    ],
)
def test_a_lag_of_the_wrong_kind_is_refused(value, lag, message):
    with pytest.raises(WatermarkValueError, match=message):
        subtract_lag(value, lag)


def doc(value, version, *commits: tuple[str, object, object, int]) -> WatermarkDocument:
    return WatermarkDocument(
        value=value,
        version=version,
        commits=[CommitEntry(run_id=r, base=b, value=v, version=n) for r, b, v, n in commits],
    )


HISTORY = doc(8, 2, ("run1", 0, 5, 1), ("run2", 5, 8, 2))


@pytest.mark.parametrize(
    ("document", "run_id", "lag", "expected"),
    [
        # (base, base_version, since, reread_own)
        (None, "run1", None, (0, 0, 0, False)),  # nothing committed: the initial value
        (HISTORY, "run3", None, (8, 2, 8, False)),  # the committed mark
        (HISTORY, "run3", 3, (8, 2, 5, False)),  # minus the lag
        (HISTORY, "run1", None, (0, 2, 0, True)),  # cleared after success: its own base, not 8, not 0
        (HISTORY, "run2", 2, (5, 2, 3, True)),  # its own base, minus the lag
        (doc(None, 1, ("run1", 0, None, 1)), "run9", None, (0, 1, 0, False)),  # a mark reset to null
    ],
)
def test_the_window_a_run_reads(document, run_id, lag, expected):
    window = plan_window(document, run_id=run_id, map_index=-1, initial_value=0, lag=lag)
    assert (window.base, window.base_version, window.since, window.reread_own) == expected


def test_a_mapped_task_instance_finds_only_its_own_commit():
    document = WatermarkDocument(
        value=9, version=1, commits=[CommitEntry(run_id="run1", map_index=0, base=0, value=9, version=1)]
    )
    assert not plan_window(document, run_id="run1", map_index=1, initial_value=0).reread_own
    assert plan_window(document, run_id="run1", map_index=0, initial_value=0).reread_own


def commit(current, window_version, staged, on_overlap="max", run_id="runA", base=0):
    window = plan_window(None, run_id=run_id, map_index=-1, initial_value=base).model_copy(
        update={"base_version": window_version}
    )
    return plan_commit(
        current, window, staged, run_id=run_id, map_index=-1, try_number=1, now=NOW, on_overlap=on_overlap
    )


@pytest.mark.parametrize(
    ("current", "window_version", "staged", "on_overlap", "value", "version", "overlapped"),
    [
        (None, 0, 5, "max", 5, 1, ()),  # the first commit
        (doc(5, 1, ("runB", 0, 5, 1)), 1, 9, "max", 9, 2, ()),  # nobody committed since: ours
        (doc(5, 1, ("runB", 0, 5, 1)), 1, 7, "max", 7, 2, ()),  # ours as staged (no overlap)
        (doc(7, 1, ("runB", 0, 7, 1)), 0, 5, "max", "quiet", None, ("runB",)),  # overlap: the newer, never back
        (doc(3, 1, ("runB", 0, 3, 1)), 0, 5, "max", 5, 2, ("runB",)),  # overlap: ours is newer
        (doc(7, 2, ("runB", 0, 4, 1), ("runC", 4, 7, 2)), 0, 5, "max", "quiet", None, ("runB", "runC")),
        (doc(7, 2, ("runB", 0, 4, 1), ("runC", 4, 7, 2)), 0, 9, "max", 9, 3, ("runB", "runC")),
        (doc(7, 1, ("runB", 0, 7, 1)), 0, 5, "fail", None, None, ("runB",)),  # refused: nothing written
        (None, 1, 5, "max", 5, 1, ("a change to version 0",)),  # deleted by hand while the run ran
    ],
)
def test_what_a_commit_writes(current, window_version, staged, on_overlap, value, version, overlapped):
    plan = commit(current, window_version, staged, on_overlap)
    assert plan.overlapped == overlapped
    if value == "quiet":
        assert plan.document is None, "the mark did not move: nothing written, no version"
        assert plan.quiet
        return
    if value is None:
        assert plan.document is None
        assert "on_overlap='fail'" in plan.message
        return
    assert plan.document is not None
    assert (plan.document.value, plan.document.version) == (value, version)
    last = plan.document.commits[-1]
    assert (last.run_id, last.base, last.value, last.version, list(last.overlapped)) == (
        "runA",
        0,
        value,
        version,
        list(overlapped),
    )


def test_commits_keep_the_last_twenty():
    current = doc(0, 0)
    for n in range(MAX_COMMITS + 5):
        window = plan_window(current, run_id=f"run{n}", map_index=-1, initial_value=0)
        plan = plan_commit(
            current, window, n + 1, run_id=f"run{n}", map_index=-1, try_number=1, now=NOW, on_overlap="max"
        )
        assert plan.document is not None
        current = plan.document
    assert len(current.commits) == MAX_COMMITS
    assert current.commits[0].run_id == "run5"
    assert current.version == MAX_COMMITS + 5


def test_an_unknown_overlap_rule_is_named():
    with pytest.raises(ValueError, match="on_overlap must be one of max, fail, got 'newest'"):
        commit(None, 0, 1, on_overlap="newest")


def test_a_reset_is_a_new_version_so_a_run_in_flight_sees_an_overlap():
    current = doc(8, 2, ("run1", 0, 8, 2))
    reset = reset_document(current, 3, now=NOW)
    assert (reset.value, reset.version, reset.commits[-1].run_id) == (3, 3, "(reset by hand)")
    plan = commit(reset, 2, 9)
    assert plan.overlapped == ("(reset by hand)",)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"value": 1}, "not a watermark of this provider"),
        ("2026-01-01", "not a watermark of this provider"),
        ({"kind": "resumable-watermark", "version": -1}, "watermark is corrupt"),
    ],
)
def test_a_hand_edited_document_is_bad_state_not_no_mark(raw, message):
    with pytest.raises(CorruptStateError, match=message):
        WatermarkDocument.parse(raw, "Variable 'x'")
    assert WatermarkDocument.parse(None, "Variable 'x'") is None


def test_keys_tell_apart_ids_that_only_differ_in_dots():
    assert watermark_key("a.b", "c") != watermark_key("a", "b.c")
    assert watermark_key("dag", "task").startswith("resumable.watermark.dag.task.")
    assert watermark_key("dag", "task", 3, "orders").startswith("resumable.watermark.dag.task.3.orders.")
    assert len(watermark_key("d" * 300, "t" * 300, 1, "n" * 300)) <= 250


def test_a_loop_iteration_keeps_its_own_mark_and_a_plain_task_its_old_key():
    plain = watermark_key("dag", "task")
    assert watermark_key("dag", "task", region_index=None) == plain, "no region: the key a 0.2.0 mark has"
    first, second = watermark_key("dag", "task", region_index=0), watermark_key("dag", "task", region_index=1)
    assert len({plain, first, second}) == 3
    assert first.startswith("resumable.watermark.dag.task.r0.")


# ---- issue 22: the mark never moves back, quiet runs write nothing, boundary records once ---------


def test_a_lower_staged_value_never_moves_the_mark_back():
    """A run that read at most N records and staged less than the mark (a re-read) keeps the mark."""
    plan = commit(doc(5, 1, ("runB", 0, 5, 1)), 1, 3)
    assert plan.document is None, "nothing to write: the mark stays at 5"
    assert plan.quiet
    assert "5" in plan.message


def test_a_cleared_run_rereading_its_own_window_neither_lowers_the_mark_nor_counts_as_newest():
    history = doc(12, 3, ("run1", 0, 5, 1), ("run2", 5, 9, 2), ("run3", 9, 12, 3))
    window = plan_window(history, run_id="run1", map_index=-1, initial_value=0)
    assert (window.reread_own, window.base, window.base_version) == (True, 0, 3)
    plan = plan_commit(history, window, 5, run_id="run1", map_index=-1, try_number=1, now=NOW, on_overlap="max")
    assert plan.document is None, "the re-read did not move the mark: no new version, no newest commit"
    assert "12" in plan.message

    further = plan_commit(history, window, 14, run_id="run1", map_index=-1, try_number=1, now=NOW, on_overlap="max")
    assert further.document is not None
    assert (further.document.value, further.document.version) == (14, 4)


def test_a_quiet_run_writes_no_version_so_it_evicts_no_commit():
    current = doc(8, 2, ("run1", 0, 5, 1), ("run2", 5, 8, 2))
    for n in range(MAX_COMMITS + 5):
        window = plan_window(current, run_id=f"quiet{n}", map_index=-1, initial_value=0)
        plan = plan_commit(
            current, window, window.base, run_id=f"quiet{n}", map_index=-1, try_number=1, now=NOW, on_overlap="max"
        )
        assert plan.document is None
        assert plan.quiet
    assert plan_window(current, run_id="run1", map_index=-1, initial_value=0).reread_own


def test_a_window_reading_the_boundary_steps_back_one_unit_and_carries_the_delivered_keys():
    history = WatermarkDocument(value=8, version=1, boundary={"k8": 8}, commits=[])
    window = plan_window(history, run_id="run2", map_index=-1, initial_value=0, read_boundary=True)
    assert (window.since, window.boundary) == (7, {"k8": 8})
    stamp = WatermarkDocument(value="2026-01-01T00:39:00Z", version=1)
    window = plan_window(stamp, run_id="run2", map_index=-1, initial_value=None, read_boundary=True)
    assert window.since == "2026-01-01T00:38:59Z"
    first = plan_window(None, run_id="run1", map_index=-1, initial_value=5, read_boundary=True)
    assert first.since == 5, "the initial value is where the user asked the first run to start"


@pytest.mark.parametrize(
    ("delivered", "value", "kept"),
    [
        ({"late8": 8, "k9": 9}, 9, {"k8": 8, "late8": 8, "k9": 9}),  # the next run asks from 8: all kept
        ({"k12": 12}, 12, {"k12": 12}),  # the old boundary (8) fell behind the next since (11)
        ({}, 8, {"k8": 8}),  # nothing delivered: a quiet run, the boundary stays
    ],
)
def test_a_commit_keeps_the_keys_the_next_run_will_read_again(delivered, value, kept):
    current = WatermarkDocument(value=8, version=1, boundary={"k8": 8}, commits=[])
    window = plan_window(current, run_id="run2", map_index=-1, initial_value=0, read_boundary=True)
    plan = plan_commit(
        current,
        window,
        value,
        run_id="run2",
        map_index=-1,
        try_number=1,
        now=NOW,
        on_overlap="max",
        boundary=delivered,
    )
    if value == 8:
        assert plan.document is None
        assert plan.quiet
        return
    assert plan.document is not None
    assert plan.document.boundary == kept


def test_boundary_filter_drops_only_versions_already_delivered():
    from airflow.providers.resumable.watermarks.rules import BoundaryFilter, boundary_hash

    window = plan_window(
        WatermarkDocument(value=8, version=1, boundary={boundary_hash([1], 8): 8}),
        run_id="r",
        map_index=-1,
        initial_value=0,
        read_boundary=True,
    )
    seen = BoundaryFilter.start(window)
    assert seen.admit([1], 8) is False, "id 1 at 8 was delivered by the run that committed 8"
    assert seen.admit([2], 8) is True, "a late writer at the mark"
    assert seen.admit([1], 9) is True, "a new version of id 1"
    assert seen.admit([2], 8) is False, "the same version twice in one run (an API that pages inclusively)"
    assert seen.high == 9
    assert set(seen.delivered.values()) == {8, 9}


@pytest.mark.parametrize(
    ("current", "new", "message"),
    [
        (5, "2026-01-01T00:00:00Z", "the mark is a number"),
        ("2026-01-01T00:00:00Z", 7, "the mark is a timestamp"),
        ("2026-01-01T00:00:00Z", "yesterday", "must be an ISO-8601 timestamp"),
        ({"id": 1}, 5, "the mark is a JSON object"),
    ],
)
def test_a_reset_that_changes_the_kind_of_the_mark_is_refused(current, new, message):
    with pytest.raises(WatermarkValueError, match=message):
        reset_document(doc(current, 1, ("run1", 0, current, 1)), new, now=NOW)


def test_a_reset_of_the_same_kind_is_accepted_and_clears_the_boundary():
    current = WatermarkDocument(value=8, version=1, boundary={"k8": 8})
    reset = reset_document(current, 3, now=NOW)
    assert (reset.value, reset.boundary) == (3, {})


def test_a_cleared_run_whose_commit_was_pushed_out_rereads_the_window_its_task_state_kept():
    current = doc(30, 25, *[(f"run{n}", n, n + 1, n - 4) for n in range(5, 25)])
    assert current.own_commit("run1", -1) is None, "pushed out by 20 later commits"
    kept = plan_window(
        doc(2, 1, ("run0", 0, 2, 1)), run_id="run1", map_index=-1, initial_value=0, read_boundary=True
    ).model_copy(update={"boundary": {"k2": 2}})
    assert plan_window(current, run_id="run99", map_index=-1, initial_value=0, previous=kept).base == 30, "not its"
    window = plan_window(current, run_id="run1", map_index=-1, initial_value=0, read_boundary=True, previous=kept)
    assert (window.base, window.since, window.boundary, window.reread_own) == (2, 1, {"k2": 2}, True)
    assert window.base_version == 25
    plain = plan_window(current, run_id="run1", map_index=-1, initial_value=0)
    assert (plain.base, plain.reread_own) == (30, False), "without it: from the current mark, as a new run"
