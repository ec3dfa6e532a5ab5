"""What a person asked the CLI for: the same filters over task instances' state and over watermarks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Filters:
    """Each field set narrows the listing to rows whose scope has that value; None admits any."""

    dag_id: str | None = None
    run_id: str | None = None
    task_id: str | None = None
    map_index: int | None = None
    key: str | None = None
    #: Airflow 3.4+: the dynamic region (a Task Loop's iteration, or a mapped expansion) and the index
    #: in it; a scope without a region (3.3 and older, or outside one) never matches either.
    region_id: str | None = None
    region_index: int | None = None
    #: A watermark's name (``watermark_name``); task state has none.
    name: str | None = None

    def wanted(self, field: str) -> Any:
        return getattr(self, field)

    def admits(self, scope: Any) -> bool:
        """Whether ``scope`` (a ``TaskScope`` or a ``WatermarkScope``) has every value asked for."""
        for field in ("dag_id", "run_id", "task_id", "map_index", "region_id", "region_index", "name"):
            wanted = getattr(self, field)
            if wanted is not None and getattr(scope, field, None) != wanted:
                return False
        return True
