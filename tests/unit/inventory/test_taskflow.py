"""What a ``@task.resumable`` function's keys mean in the state CLI: table-tested on stored documents."""

from __future__ import annotations

import pytest

from airflow.providers.resumable.inventory.state import describe
from airflow.providers.resumable.inventory.taskflow import describe_taskflow
from airflow.providers.resumable.state.codec import CheckpointEnvelope, FinishedMarker

AT = "2026-12-04T10:00:00+00:00"


def envelope(data, batches_done, *, complete=False, try_number=1, schema_name=None):
    return CheckpointEnvelope(
        schema_name=schema_name,
        try_number=try_number,
        saved_at=AT,
        batches_done=batches_done,
        complete=complete,
        data=data,
    ).dump()


FINISHED_AT_2 = FinishedMarker(try_number=2, finished_at=AT).dump()


@pytest.mark.parametrize(
    ("key", "value", "finished", "meaning"),
    [
        (
            "taskflow/loop0",
            envelope({"next": 12}, 12),
            None,
            f"loop 'loop0' of the @task.resumable function (handle.iterate): 12 items done, written at try 1 ({AT}); "
            "the next try resumes at item 12",
        ),
        (
            "taskflow/files",
            envelope({"next": 20}, 20, complete=True, try_number=2),
            FINISHED_AT_2,
            f"loop 'files' of the @task.resumable function (handle.iterate): complete after 20 items, written at try 2 "
            f"({AT}); a retry of this run skips it; its task instance succeeded at try 2, so a clear starts the "
            "function over",
        ),
        (
            "taskflow/batches",
            envelope({"page": 13}, 3),
            None,
            f"batches 'batches' of the @task.resumable function (handle.run_batches): 3 batches done, written at try 1 "
            f'({AT}); the next try resumes at batch 3 from cursor {{"page": 13}}',
        ),
        (
            "taskflow/pages",
            envelope({"next": 7}, 7, schema_name="PageCursor"),
            None,
            f"batches 'pages' of the @task.resumable function (handle.run_batches): 7 batches done, written at try 1 "
            f'({AT}); the next try resumes at batch 7 from cursor PageCursor v1 {{"next": 7}}',
        ),
        (
            "taskflow/__keys__",
            ["files", "batches"],
            None,
            "index of what the @task.resumable function keeps under 'taskflow/' (its loops, batches and watermark windows): files, batches",
        ),
    ],
)
def test_a_taskflow_checkpoint_says_what_the_next_try_does(key, value, finished, meaning):
    assert describe_taskflow(key, value, finished) == meaning
    assert describe(key, value, finished) == meaning, "the CLI's describe() hands TaskFlow keys to it"


def test_a_checkpoint_written_in_a_later_life_than_the_marker_is_not_called_finished():
    """The marker is try 2's; a try 3 after a person's clear wrote the loop again: it resumes, not starts over."""
    meaning = describe_taskflow("taskflow/loop0", envelope({"next": 4}, 4, try_number=3), FINISHED_AT_2)
    assert meaning is not None
    assert meaning.endswith("the next try resumes at item 4")


def test_an_unreadable_checkpoint_is_named_as_such_with_the_codecs_reason():
    bad = {"kind": "resumable-checkpoint", "batches_done": -1, "data": {"next": 1}}
    meaning = describe_taskflow("taskflow/loop0", bad, None)
    assert meaning is not None
    assert meaning.startswith("@task.resumable checkpoint 'loop0' that no try can read: ")
    assert "batches_done" in meaning


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("job", {"kind": "resumable-job"}),  # a TaskFlow job's record reads as an operator's
        ("stateful/checkpoint", envelope({"next": 1}, 1)),  # an operator's checkpoint
        ("taskflow/watermark_window", {"kind": "resumable-watermark-window", "since": 1}),
        ("next", 1000),  # a raw key of get_state_store
    ],
)
def test_keys_that_are_not_a_taskflow_checkpoint_are_left_to_the_shared_meanings(key, value):
    assert describe_taskflow(key, value, None) is None
