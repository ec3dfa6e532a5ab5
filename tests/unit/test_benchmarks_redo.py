"""
The redo arithmetic of ``benchmarks/redo_bench.py``: the worst redo after a hard kill, from durable
points, for writes on the walk and writes that land while the walk goes on.
"""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks.redo_bench import BACKGROUND_FLAG, Redo, accepts, policy_arguments, worst_redo

#: Ten batches of 1 s each, ending at 1, 2, ..., 10 (the walk starts at 0 and ends at 10).
ENDS = [float(t) for t in range(1, 11)]


def test_no_checkpoint_redoes_the_whole_walk() -> None:
    assert worst_redo(0.0, 10.0, ENDS, []) == Redo(10.0, 10, "0 of 1")


def test_a_write_on_the_walk_is_durable_when_it_ends() -> None:
    # After batch 4 (ends at 4) a write of 0.5 s ends at 4.5; the walk waits for it.
    ends = [*ENDS[:4], *(t + 0.5 for t in ENDS[4:])]
    redo = worst_redo(0.0, 10.5, ends, [(4.5, 4)])
    # Before the write: 4.5 s and 4 batches; after it: from batch 4's end (4.0) to the walk's end.
    assert redo == Redo(6.5, 6, "1 of 2")


def test_a_background_write_covers_the_batch_its_cursor_was_taken_at() -> None:
    # The cursor after batch 2 (taken at 2.0) is written while batches 3-5 run; durable at 4.5.
    redo = worst_redo(0.0, 10.0, ENDS, [(4.5, 2), (8.2, 6)])
    # A kill at 8.2 (just before the second write lands) redoes from 2.0, the first cursor's batch
    # end, not from 4.5 when that write finished: 6.2 s and the 6 batches ended in between.
    assert redo == Redo(pytest.approx(6.2), 6, "1 of 3")


def test_a_write_landing_late_never_moves_the_cursor_back() -> None:
    # An older cursor (batch 3) lands after a newer one (batch 6): what is durable still covers 6.
    redo = worst_redo(0.0, 10.0, ENDS, [(6.5, 6), (7.0, 3)])
    assert redo == Redo(6.5, 6, "0 of 3")  # the first gap; after 6.5 the redo is from 6.0: 4 s at most


class _Plain:
    def __init__(self, *, checkpoint_every: int | None = None, **kwargs: Any) -> None: ...


class _WithWriter(_Plain):
    def __init__(self, *, background_checkpoints: bool = True, **kwargs: Any) -> None: ...


class _Subclass(_WithWriter):
    def __init__(self, *, pages: int, **kwargs: Any) -> None: ...


def test_the_sync_policy_exists_only_where_the_operator_takes_the_flag() -> None:
    assert not accepts(_Plain, BACKGROUND_FLAG)
    assert accepts(_Subclass, BACKGROUND_FLAG)  # named by a base class's __init__
    assert policy_arguments("sync", _Plain) is None
    assert policy_arguments("sync", _Subclass) == {BACKGROUND_FLAG: False}
    assert policy_arguments("default", _Plain) == {}


def test_an_unknown_policy_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="unknown policy 'hourly'"):
        policy_arguments("hourly", _Plain)
