"""``WatermarkMixin``: where the last successful run stopped, moved only once a run's success is recorded."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.resumable.compat.version_compat import apply_defaults
from airflow.providers.resumable.mixins.class_checks import check_model
from airflow.providers.resumable.mixins.stateful import StatefulOperatorMixin

# WatermarkCommit lived here until 0.2.0; the window and the advance are in watermark_runner.py now.
from airflow.providers.resumable.mixins.watermark_runner import Watermark, WatermarkSettings
from airflow.providers.resumable.mixins.watermark_runner import WatermarkCommit as WatermarkCommit
from airflow.providers.resumable.watermarks.rules import OVERLAP_RULES, Window, cursor_max
from airflow.providers.resumable.watermarks.stores import (
    WatermarkScope,
    WatermarkStore,
    get_watermark_store,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from datetime import timedelta

    from pydantic import BaseModel

    from airflow.providers.resumable.compat.version_compat import Context


class WatermarkMixin(StatefulOperatorMixin):
    """
    Give an operator a watermark: where the last *successful run* stopped, for incremental loads.

    ``load_watermark(context)`` returns the mark this run starts from; ``advance_watermark(context,
    value)`` stages the new one. The staged value is committed by the provider's listener only once
    Airflow has recorded this task instance's success; a failed try, a run whose retries all fail,
    or a run cleared before success leaves the mark where it was. Retries of one run read the same
    window (its base is kept in the task's state on the first try), and a run cleared after it
    succeeded re-reads its own window rather than everything. Example::

        class ChangedOrdersOperator(WatermarkMixin, BaseOperator):
            def execute(self, context):
                since = self.load_watermark(context, initial_value=0)  # an order id
                orders = fetch_orders(after_id=since)
                write(orders)  # idempotent: a re-read window replaces, never duplicates
                if orders:
                    self.advance_watermark(context, max(o["id"] for o in orders))

    Values are JSON scalars (ISO-8601 timestamps or numbers compare as cursors), or a pydantic model
    given as ``watermark_model``, in which case ``merge_watermarks`` must say how two marks combine
    when runs overlap (or pass ``on_overlap="fail"``).

    :param on_overlap: what the commit does when another run committed after this run read the mark:
        ``"max"`` (default) commits the newer of the two and logs a warning naming both runs;
        ``"fail"`` commits nothing and logs an error (the task already succeeded, so it cannot fail;
        the next run re-reads from the older mark).
    :param watermark_asset: on Airflow 3.3+, the ``Asset`` (one of the task's inlets or outlets) whose
        ``asset_state_store`` keeps the mark. Default: the task's only asset, if it has exactly one;
        otherwise, and on older Airflow, an Airflow Variable.
    """

    #: pydantic model of the watermark; None = a JSON value (a timestamp string or a number, usually).
    watermark_model: ClassVar[type[BaseModel] | None] = None
    #: Tells two watermarks of one task apart; part of the stored key, so renaming it forgets the mark.
    watermark_name: ClassVar[str | None] = None
    #: Key of this run's window in the task's own state (under ``state_namespace``).
    watermark_window_key: ClassVar[str] = "watermark_window"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # StatefulOperatorMixin's checks the order and checkpoint_model; the watermark's model is read
        # back on the next run the same way.
        super().__init_subclass__(**kwargs)
        check_model(cls.__name__, "watermark_model", cls.watermark_model)

    @apply_defaults
    def __init__(self, *, on_overlap: str = "max", watermark_asset: Any = None, **kwargs: Any) -> None:
        if on_overlap not in OVERLAP_RULES:
            raise ValueError(f"on_overlap must be one of {', '.join(map(repr, OVERLAP_RULES))}, got {on_overlap!r}")
        if watermark_asset is not None and not hasattr(watermark_asset, "name"):
            raise TypeError(f"watermark_asset must be an Asset (one of the task's outlets), got {watermark_asset!r}")
        if (
            self.watermark_model is not None
            and on_overlap == "max"
            and type(self).merge_watermarks is WatermarkMixin.merge_watermarks
        ):
            raise TypeError(
                f"{type(self).__name__} has watermark_model {self.watermark_model.__name__} and on_overlap='max', "
                "but no merge_watermarks(committed, ours) to combine two marks; override it, or pass "
                "on_overlap='fail'"
            )
        super().__init__(**kwargs)
        self.on_overlap = on_overlap
        self.watermark_asset = watermark_asset

    # ---- the hooks a subclass may override ----------------------------------------------------------

    def merge_watermarks(self, committed: Any, ours: Any) -> Any:
        """
        The mark to commit when another run committed ``committed`` while this run staged ``ours``
        (``on_overlap="max"``). Both are the stored JSON form. Default: the newer cursor value.
        """
        return cursor_max(committed, ours)

    # ---- where it lives -----------------------------------------------------------------------------

    def watermark_scope(self, context: Context) -> WatermarkScope:
        task_try = self.task_try(context)
        # Without a task instance (a unit test calling execute()), the operator may have no DAG at all.
        dag_id = task_try.scope.dag_id if task_try.scope is not None else str(getattr(self, "dag_id", None) or "-")
        task_id = str(getattr(self, "task_id", type(self).__name__))
        region = task_try.scope.region_index if task_try.scope is not None and task_try.scope.region_id else None
        return WatermarkScope(dag_id, task_id, task_try.map_index, self.watermark_name, region)

    def watermark_store(self, context: Context) -> WatermarkStore:
        """The store of this task's watermark (asset state store, Variable, or memory without a task instance)."""
        cache = self.__dict__.setdefault("_watermark_cache", {})
        key = ("store", id(context))
        if key not in cache:
            cache.clear()
            cache[key] = get_watermark_store(
                self.task_try(context),
                self.watermark_scope(context),
                task=self,
                asset=self.__dict__.get("watermark_asset"),
            )
        return cache[key]

    # ---- the window of this run ---------------------------------------------------------------------

    def watermark(self, context: Context) -> Watermark:
        """This operator's watermark on the running try (``mixins/watermark_runner.py``)."""
        cache = self.__dict__.setdefault("_watermark_cache", {})
        key = ("watermark", id(context))
        if key not in cache:
            settings = WatermarkSettings(
                model=self.watermark_model,
                on_overlap=self.on_overlap,
                merge=self.merge_watermarks,
                namespace=self.state_namespace,
                window_key=self.watermark_window_key,
            )
            store = self.watermark_store(context)
            cache[key] = Watermark(self.task_try(context), store, self.watermark_scope(context), settings, self.log)
        return cache[key]

    def watermark_window(
        self,
        context: Context,
        *,
        initial_value: Any = None,
        lag: timedelta | float | None = None,
        read_boundary: bool = False,
    ) -> Window:
        """
        The window this run reads: planned on the first try from the committed mark (or
        ``initial_value``, or this run's own earlier commit after a clear) and kept in the task's
        state, so every retry of the run gets the same one whatever was committed meanwhile.

        With ``read_boundary=True``, ``window.since`` is one unit below the mark (a second, or 1)
        so a strict (``>``) source also returns records written late *at* the mark: read from
        ``window.since`` and pass what you read through :meth:`watermark_records`, which drops the
        ones an earlier run delivered.
        """
        return self.watermark(context).window(initial_value=initial_value, lag=lag, read_boundary=read_boundary)

    def watermark_records(
        self,
        context: Context,
        records: list[Any],
        *,
        cursor_field: str | Callable[[Any], Any],
        primary_key: str | Sequence[str] | None = None,
    ) -> list[Any]:
        """
        ``records`` without the record versions already delivered, by this run or an earlier one.

        A version is the record's ``primary_key`` (a field name or several) with its ``cursor_field``
        value: a record updated later (a newer cursor) is delivered again, as it should be. Without a
        ``primary_key`` the whole record is its identity, so an identical copy is dropped and any
        changed field makes it new; give a key when the source can return one version with
        different content (a counter, a fetched-at field). What passes is remembered and committed
        with the mark by :meth:`advance_watermark`. Needs ``watermark_window(read_boundary=True)``;
        without it nothing is dropped.
        """
        return self.watermark(context).records(records, cursor_field=cursor_field, primary_key=primary_key)

    # ---- typed access -------------------------------------------------------------------------------

    def load_watermark(self, context: Context, *, initial_value: Any = None) -> Any:
        """The mark this run starts from, as ``watermark_model`` (or the JSON value), or None."""
        return self.watermark(context).load(initial_value=initial_value)

    def advance_watermark(self, context: Context, value: Any) -> None:
        """
        Stage ``value`` as the new mark; it is committed once Airflow has recorded this task's success.

        Call it after the data up to ``value`` is durable, in every try that gets that far (a retry
        stages again). The last value staged in the succeeding try wins.
        """
        self.watermark(context).advance(value)
