"""What the watermark CLI reads from a stored document, and what it says about one it cannot read."""

from __future__ import annotations

import pytest

from airflow.providers.resumable.inventory.watermarks import StoredWatermark, _scope_of
from airflow.providers.resumable.watermarks.stores import WatermarkScope

SCOPE = {"dag_id": "d", "task_id": "t", "map_index": 1, "name": "orders"}
DOCUMENT = {
    "kind": "resumable-watermark",
    "value": "2026-01-01T00:05:00Z",
    "version": 3,
    "scope": SCOPE,
    "commits": [{"run_id": "r3", "base": "2026-01-01T00:00:00Z", "value": "2026-01-01T00:05:00Z", "version": 3}],
}


@pytest.mark.parametrize(
    ("document", "scope"),
    [
        (DOCUMENT, WatermarkScope("d", "t", 1, "orders")),
        ({**DOCUMENT, "scope": {"dag_id": "d", "task_id": "t"}}, WatermarkScope("d", "t", -1, None)),
        ({**DOCUMENT, "kind": "resumable-job"}, None),
        ({**DOCUMENT, "scope": "d.t"}, None),
        ({**DOCUMENT, "scope": {"dag_id": "d"}}, None),
        ("not a document", None),
    ],
)
def test_the_scope_comes_from_the_document_itself(document, scope):
    assert _scope_of(document) == scope


def test_a_row_says_what_the_mark_is_and_how_to_reset_it():
    row = StoredWatermark("variable", WatermarkScope("d", "t", 1, "orders"), "resumable.watermark.d.t", DOCUMENT).row()
    assert (row["value"], row["version"], row["name"]) == ("2026-01-01T00:05:00Z", 3, "orders")
    assert "committed by r3" in row["meaning"]
    assert row["reset_with"].endswith("watermark reset --dag-id d --task-id t --map-index 1 --name orders --to VALUE")


def test_a_corrupt_document_is_shown_as_unreadable_not_hidden():
    broken = {**DOCUMENT, "version": -1}
    row = StoredWatermark("variable", WatermarkScope("d", "t"), "resumable.watermark.d.t", broken).row()
    assert row["meaning"].startswith("unreadable: ")
    assert "watermark is corrupt" in row["meaning"]
