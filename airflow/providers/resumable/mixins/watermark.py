"""``WatermarkMixin``: where the last successful run stopped, moved only once a run's success is recorded."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ValidationError

from airflow.providers.resumable.compat.version_compat import apply_defaults
from airflow.providers.resumable.mixins.stateful import StatefulOperatorMixin
from airflow.providers.resumable.state.base import CorruptStateError
from airflow.providers.resumable.state.codec import utcnow_iso
from airflow.providers.resumable.watermarks.rules import (
    OVERLAP_RULES,
    WatermarkDocument,
    Window,
    cursor_max,
    plan_commit,
    plan_window,
)
from airflow.providers.resumable.watermarks.stores import (
    WatermarkScope,
    WatermarkStore,
    get_watermark_store,
    watermark_command,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import timedelta

    from airflow.providers.resumable.compat.version_compat import Context


@dataclass
class WatermarkCommit:
    """The success action that commits a staged watermark; built by ``advance_watermark``."""

    key: str
    store: WatermarkStore
    window: Window
    staged: Any
    run_id: str
    map_index: int
    try_number: int | None
    on_overlap: str
    merge: Callable[[Any, Any], Any]
    scope: dict[str, Any]
    log: Any = field(repr=False, default=None)

    def __call__(self) -> str:
        location = self.store.locate()
        # Read again now, not when the run started: another run may have committed meanwhile.
        current = WatermarkDocument.parse(self.store.read(), location)
        plan = plan_commit(
            current,
            self.window,
            self.staged,
            run_id=self.run_id,
            map_index=self.map_index,
            try_number=self.try_number,
            now=utcnow_iso(),
            on_overlap=self.on_overlap,
            merge=self.merge,
            scope=self.scope,
        )
        if plan.document is None:
            if self.log is not None:
                self.log.error("Watermark overlap in %s: %s", location, plan.message)
            return f"watermark NOT committed ({plan.message})"
        if plan.overlapped and self.log is not None:
            self.log.warning(
                "Watermark overlap: run %s and %s both advanced %s from version %s: %s",
                self.run_id,
                ", ".join(plan.overlapped),
                location,
                self.window.base_version,
                plan.message,
            )
        # No compare-and-set on either store: a commit landing between this read and this write
        # is overwritten (see docs/mixins.rst, "Overlapping runs").
        self.store.write(plan.document.dump())
        return f"watermark in {self.store.name} {self.scope.get('dag_id')}.{self.scope.get('task_id')}: {plan.message}"


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

    def watermark_window(
        self, context: Context, *, initial_value: Any = None, lag: timedelta | float | None = None
    ) -> Window:
        """
        The window this run reads: planned on the first try from the committed mark (or
        ``initial_value``, or this run's own earlier commit after a clear) and kept in the task's
        state, so every retry of the run gets the same one whatever was committed meanwhile.
        """
        cache = self.__dict__.setdefault("_watermark_cache", {})
        key = ("window", id(context))
        if key in cache:
            return cache[key]
        store = self.watermark_store(context)
        state = self.state_store(context)
        window = self._kept_window(context)
        if window is None:
            scope = self.watermark_scope(context)
            document = WatermarkDocument.parse(store.read(), store.locate())
            task_try = self.task_try(context)
            window = plan_window(
                document,
                run_id=task_try.run_id,
                map_index=scope.map_index,
                initial_value=self._encode_watermark(initial_value, "initial_value", allow_none=True),
                lag=lag,
                try_number=task_try.info.try_number,
                now=utcnow_iso(),
            )
            state.set(self.watermark_window_key, window.model_dump(mode="json"))
            if window.reread_own:
                self.log.info(
                    "This run committed the watermark before and was cleared since: re-reading its own window "
                    "from %s (the mark is at %s now, in %s)",
                    json.dumps(window.base, default=str),
                    json.dumps(document.value if document else None, default=str),
                    store.locate(),
                )
            else:
                self.log.info(
                    "Watermark window: from %s (mark %s, version %s, lag %s) in %s",
                    json.dumps(window.since, default=str),
                    json.dumps(window.base, default=str),
                    window.base_version,
                    window.lag,
                    store.name,
                )
        else:
            self.log.info(
                "Reading the same window as try %s: from %s (mark %s, version %s)",
                window.try_number,
                json.dumps(window.since, default=str),
                json.dumps(window.base, default=str),
                window.base_version,
            )
        cache[key] = window
        return window

    def _kept_window(self, context: Context) -> Window | None:
        state = self.state_store(context)
        task_try = self.task_try(context)
        window = Window.parse(
            state.get(self.watermark_window_key), task_try.locate(self.watermark_window_key, self.state_namespace)
        )
        if window is None or task_try.ended_life(window.try_number) is not None:
            # A person cleared the run after its success: plan afresh (re-reading its own window).
            return None
        return window

    # ---- typed access -------------------------------------------------------------------------------

    def load_watermark(self, context: Context, *, initial_value: Any = None) -> Any:
        """The mark this run starts from, as ``watermark_model`` (or the JSON value), or None."""
        window = self.watermark_window(context, initial_value=initial_value)
        return self._decode_watermark(window.base, context)

    def advance_watermark(self, context: Context, value: Any) -> None:
        """
        Stage ``value`` as the new mark; it is committed once Airflow has recorded this task's success.

        Call it after the data up to ``value`` is durable, in every try that gets that far (a retry
        stages again). The last value staged in the succeeding try wins.
        """
        encoded = self._encode_watermark(value, "advance_watermark value", allow_none=False)
        window = self.watermark_window(context)
        store = self.watermark_store(context)
        if not store.durable:
            self.log.info("No task instance in the context: the watermark %r is not kept", value)
            return
        scope = self.watermark_scope(context)
        task_try = self.task_try(context)
        task_try.on_success(
            WatermarkCommit(
                key=f"watermark {scope.key}",
                store=store,
                window=window,
                staged=encoded,
                run_id=task_try.run_id,
                map_index=task_try.map_index,
                try_number=task_try.info.try_number,
                on_overlap=self.on_overlap,
                merge=self.merge_watermarks,
                scope=scope.as_dict(),
                log=self.log,
            ),
        )
        self.log.info(
            "Staged watermark %s (from %s); committed once this task instance's success is recorded. Reset it "
            "with `%s`",
            json.dumps(encoded, default=str),
            json.dumps(window.base, default=str),
            watermark_command("reset", scope, "--to VALUE"),
        )

    def _encode_watermark(self, value: Any, what: str, *, allow_none: bool) -> Any:
        if value is None:
            if allow_none:
                return None
            raise ValueError(f"{what} must not be None; to start over, reset the watermark instead")
        model = self.watermark_model
        if model is not None:
            if isinstance(value, model):
                return value.model_dump(mode="json")
            raise TypeError(f"{what} must be a {model.__name__} (watermark_model), got {type(value).__name__}")
        try:
            return json.loads(json.dumps(value, allow_nan=False))
        except (TypeError, ValueError) as err:
            raise ValueError(f"{what} must be a JSON value (a timestamp string or a number), got {value!r}") from err

    def _decode_watermark(self, raw: Any, context: Context) -> Any:
        model = self.watermark_model
        if model is None or raw is None:
            return raw
        try:
            return model.model_validate(raw)
        except ValidationError as err:
            raise CorruptStateError(
                f"The watermark in {self.watermark_store(context).locate()} does not fit {model.__name__}: {err}. "
                f"Reset it with `{watermark_command('reset', self.watermark_scope(context), '--to VALUE')}`."
            ) from err
