"""
``handle.watermark(...)`` and its shortcuts: the TaskFlow handle's watermarks.

A part of :class:`~airflow.providers.resumable.mixins.taskflow.ResumableHandle`: each mark is a
``watermark_runner.Watermark``, as ``WatermarkMixin`` keeps one for an operator; the window, the
advance and the commit are the runner's, the rules ``watermarks/rules.py``'s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.resumable.mixins.class_checks import check_model
from airflow.providers.resumable.mixins.taskflow_loop import off_loop_form
from airflow.providers.resumable.mixins.watermark_runner import Watermark, WatermarkArgumentError, WatermarkSettings
from airflow.providers.resumable.state.codec import TASKFLOW_NAMESPACE
from airflow.providers.resumable.watermarks.rules import cursor_max
from airflow.providers.resumable.watermarks.stores import WatermarkScope, get_watermark_store

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from datetime import timedelta

    from pydantic import BaseModel

    from airflow.providers.resumable.state.task_try import TaskTry
    from airflow.providers.resumable.watermarks.rules import Window


class HandleWatermarks:
    """The handle's watermark calls; ``ResumableHandle`` provides the try, the task, the log and the cache."""

    task_try: TaskTry
    task: Any
    log: Any
    _watermarks: dict[str | None, Watermark]

    def watermark(
        self,
        name: str | None = None,
        *,
        model: type[BaseModel] | None = None,
        on_overlap: str = "max",
        merge: Callable[[Any, Any], Any] | None = None,
        asset: Any = None,
    ) -> Watermark:
        """
        The watermark ``name`` of this task (``load``, ``window``, ``advance``), as ``WatermarkMixin`` keeps one.

        The first call of a try fixes its settings; a name tells several marks of one task apart.
        """
        found = self._watermarks.get(name)
        if found is not None:
            return found
        if name is not None and not (isinstance(name, str) and name.strip()):
            # Part of the stored key: a number or an empty name would keep a mark no one can find by name.
            raise WatermarkArgumentError(
                f"watermark name must be a non-empty string such as 'orders' (or None for the task's one mark), "
                f"got {name!r}"
            )
        check_model(f"task {self.task_try.owner!r} (watermark {name!r})", "model", model)
        if model is not None and on_overlap == "max" and merge is None:
            raise TypeError(
                f"watermark {name!r} has model {model.__name__} and on_overlap='max', but no merge(committed, ours) "
                "to combine two marks; pass merge=..., or on_overlap='fail'"
            )
        task_try = self.task_try
        scope = task_try.scope
        region = scope.region_index if scope is not None and scope.region_id else None
        dag_id = scope.dag_id if scope is not None else "-"
        mark_scope = WatermarkScope(dag_id, task_try.owner, task_try.map_index, name, region)
        settings = WatermarkSettings(
            model=model,
            on_overlap=on_overlap,
            merge=merge or cursor_max,
            namespace=TASKFLOW_NAMESPACE,
            window_key="watermark_window" if name is None else f"watermark_window.{name}",
        )
        store = get_watermark_store(task_try, mark_scope, task=self.task, asset=asset)
        found = self._watermarks[name] = Watermark(task_try, store, mark_scope, settings, self.log)
        return found

    def load_watermark(self, *, initial_value: Any = None, name: str | None = None) -> Any:
        """The mark this run starts from (see ``WatermarkMixin.load_watermark``)."""
        return self.watermark(name).load(initial_value=initial_value)

    def watermark_window(
        self,
        *,
        initial_value: Any = None,
        lag: timedelta | float | None = None,
        read_boundary: bool = False,
        name: str | None = None,
    ) -> Window:
        """
        The window this run reads, the same on every retry (see ``WatermarkMixin.watermark_window``).

        With ``read_boundary=True``, ``window.since`` is one unit below the mark (a second, or 1), so
        a strict (``>``) source also returns records written late *at* the mark: read from
        ``window.since`` and pass what you read through :meth:`watermark_records`.
        """
        return self.watermark(name).window(initial_value=initial_value, lag=lag, read_boundary=read_boundary)

    def watermark_records(
        self,
        records: list[Any],
        *,
        cursor_field: str | Callable[[Any], Any],
        primary_key: str | Sequence[str] | None = None,
        name: str | None = None,
    ) -> list[Any]:
        """
        ``records`` without the record versions already delivered, by this run or an earlier one
        (see ``WatermarkMixin.watermark_records``): a version is the record's ``primary_key`` with its
        ``cursor_field`` value, the whole record without a key. What passes is committed with the
        mark by :meth:`advance_watermark`. Needs ``watermark_window(read_boundary=True)``.
        """
        return self.watermark(name).records(records, cursor_field=cursor_field, primary_key=primary_key)

    def advance_watermark(self, value: Any, *, name: str | None = None) -> None:
        """Stage ``value``; committed once Airflow has recorded this task instance's success."""
        self.watermark(name).advance(value)

    # The async forms: the same call in a worker thread (the first call of a try reads the store),
    # with the sync form's signature, so the two cannot drift apart.
    aload_watermark = off_loop_form(load_watermark)
    awatermark_window = off_loop_form(watermark_window)
    awatermark_records = off_loop_form(watermark_records)
    aadvance_watermark = off_loop_form(advance_watermark)
