"""``StatefulOperatorMixin``: a typed checkpoint that survives retries, and a batch walker built on it."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from pydantic import BaseModel

from airflow.providers.resumable.compat.airflow import task_state_retention
from airflow.providers.resumable.compat.version_compat import apply_defaults

# The policies lived here until 0.2.0; the aliases keep ``from ...mixins.stateful import ...`` working.
from airflow.providers.resumable.mixins.checkpoint_policies import (
    DEFAULT_CHECKPOINT_POLICY as DEFAULT_CHECKPOINT_POLICY,
)
from airflow.providers.resumable.mixins.checkpoint_policies import (
    CheckpointPolicy,
    checkpoint_arguments,
)
from airflow.providers.resumable.mixins.checkpoint_policies import checkpoint_any as checkpoint_any
from airflow.providers.resumable.mixins.checkpoint_policies import (
    checkpoint_every_n_batches as checkpoint_every_n_batches,
)
from airflow.providers.resumable.mixins.checkpoint_policies import (
    checkpoint_every_seconds as checkpoint_every_seconds,
)

# BatchRun and CheckpointSchemaError lived here until 0.2.0; the walk is in checkpoint_runner.py now.
from airflow.providers.resumable.mixins.checkpoint_runner import BatchRun as BatchRun
from airflow.providers.resumable.mixins.checkpoint_runner import (
    Checkpoints,
    CheckpointSettings,
    CheckpointWalk,
    walk_batches,
)
from airflow.providers.resumable.mixins.checkpoint_runner import (
    CheckpointSchemaError as CheckpointSchemaError,
)
from airflow.providers.resumable.mixins.class_checks import check_model, require_mixin_before_operator
from airflow.providers.resumable.state.base import StateBackendConfigError
from airflow.providers.resumable.state.lifecycle import outlives_retention
from airflow.providers.resumable.state.selection import validate_backend
from airflow.providers.resumable.state.task_try import TaskTry

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow.providers.resumable.compat.version_compat import Context
    from airflow.providers.resumable.state.base import NamespacedStateStore
    from airflow.providers.resumable.state.codec import CheckpointEnvelope

C = TypeVar("C")


class Checkpoint(BaseModel):
    """
    Base for checkpoint models: a pydantic model with a schema version and a migration hook.

    Bump ``schema_version`` when a change would make old checkpoints invalid, and implement
    ``migrate`` to turn an older checkpoint's data into the current shape; without it, an old
    checkpoint is an error rather than a silent restart from the beginning.
    """

    schema_version: ClassVar[int] = 1

    @classmethod
    def migrate(cls, data: dict[str, Any], from_version: int) -> dict[str, Any]:
        """Return ``data`` (written at ``from_version``) in this model's current shape."""
        raise NotImplementedError


class StatefulOperatorMixin:
    """
    Give an operator a typed checkpoint that survives retries.

    Example::

        class PageCursor(Checkpoint):
            schema_version: ClassVar[int] = 1
            next_page: int

        class CopyPagesOperator(StatefulOperatorMixin, BaseOperator):
            checkpoint_model = PageCursor

            def execute(self, context):
                def process(cursor: PageCursor, index: int) -> PageCursor | None:
                    page = fetch(cursor.next_page)
                    write_part(index, page)  # deterministic name: a redo replaces, never duplicates
                    return PageCursor(next_page=cursor.next_page + 1) if page.has_more else None

                run = self.run_batches(context, process, start=PageCursor(next_page=0))
                return {"batches": run.batches_done}

    :param checkpoint_every: write the checkpoint every N batches (>= 1).
    :param checkpoint_interval: write it when this many seconds (or a ``timedelta``) have passed since
        the last one. With both, whichever comes first. With neither, ``DEFAULT_CHECKPOINT_POLICY``
        (``checkpoint_within_budget()``): as often as 2% of the walk's time allows, measured on the
        store in use, at least every second and at most every 0.2 s.
    :param allow_secrets_in_state: store values that contain a secret Airflow's secrets masker knows
        (a connection password, a sensitive Variable). Off by default: such a write fails the task
        (``SecretInStateError``), because state is readable in plain text; see docs/security.rst.
    :param background_checkpoints: write checkpoints on a writer thread while the walk goes on (the
        default), where Airflow lets a second thread of the task write (Airflow 2, and Airflow 3's
        real task supervisor; not ``dag.test()`` on Airflow 3, which writes synchronously and says
        so once in the log). False: every checkpoint write stops the walk until it is stored.
        ``save_checkpoint`` is then called on the writer thread, with a copy of the cursor.
    """

    #: pydantic model of the checkpoint (subclass :class:`Checkpoint` for versioning); None = plain dicts.
    checkpoint_model: ClassVar[type[BaseModel] | None] = None
    #: Prefix of this mixin's keys in the task's state store; renaming it forgets stored checkpoints.
    state_namespace: ClassVar[str] = "stateful"
    checkpoint_key: ClassVar[str] = "checkpoint"

    if TYPE_CHECKING:
        log: Any  # BaseOperator provides it; its type differs between Airflow 2 and 3

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # When the DAG file is parsed, not on the retry that first reads a checkpoint back.
        super().__init_subclass__(**kwargs)
        require_mixin_before_operator(cls, StatefulOperatorMixin)
        check_model(cls.__name__, "checkpoint_model", cls.checkpoint_model)

    @apply_defaults
    def __init__(
        self,
        *,
        checkpoint_every: int | None = None,
        checkpoint_interval: float | timedelta | None = None,
        allow_secrets_in_state: bool = False,
        background_checkpoints: bool = True,
        **kwargs: Any,
    ) -> None:
        self.checkpoint_policy = checkpoint_arguments(
            checkpoint_every, checkpoint_interval, allow_secrets_in_state, background_checkpoints
        )
        super().__init__(**kwargs)
        self.checkpoint_every = checkpoint_every
        self.checkpoint_interval = checkpoint_interval
        self.allow_secrets_in_state = allow_secrets_in_state
        self.background_checkpoints = background_checkpoints
        self._warn_if_checkpoints_may_expire()

    def _warn_if_checkpoints_may_expire(self) -> None:
        """When the DAG is parsed: say so if a checkpoint could expire before the last retry reads it."""
        if validate_backend() not in ("auto", "task_state_store"):
            return  # Variables and custom stores do not expire
        retry_delay = getattr(self, "retry_delay", None)
        retries = getattr(self, "retries", 0)
        if not isinstance(retry_delay, timedelta) or not isinstance(retries, int):
            return
        if getattr(self, "retry_exponential_backoff", False):
            longest = getattr(self, "max_retry_delay", None)
            retry_delay = longest if isinstance(longest, timedelta) else retry_delay * 2 ** max(retries - 1, 0)
        timeout = getattr(self, "execution_timeout", None)
        reason = outlives_retention(
            retries=retries,
            retry_delay=retry_delay,
            execution_timeout=timeout if isinstance(timeout, timedelta) else None,
            retention=task_state_retention(),
        )
        if reason is not None:
            self.log.warning(
                "Task %r: %s, so its checkpoint may expire before a retry resumes from it (the retry would start "
                "over). Raise [state_store] default_retention_days (AIRFLOW__STATE_STORE__DEFAULT_RETENTION_DAYS), "
                "or lower retries / retry_delay.",
                getattr(self, "task_id", type(self).__name__),
                reason,
            )

    # ---- raw and typed access -----------------------------------------------------------------------

    def task_try(self, context: Context) -> TaskTry:
        """The running try (built once per try): its scope, identity and guarded store."""
        task_try = self._try_of_overridden_store(context) or TaskTry.of(
            self, context, allow_secrets=self.__dict__.get("allow_secrets_in_state", False)
        )
        if not task_try.durable and not self.__dict__.get("_said_not_durable"):
            self.__dict__["_said_not_durable"] = True
            self.log.info(
                "No task instance in the context (a unit test calling execute() directly?): checkpoints "
                "last only as long as this call"
            )
        return task_try

    def _try_of_overridden_store(self, context: Context) -> TaskTry | None:
        """
        The try whose store an overriding ``state_store()`` returns, or None without an override.

        A subclass picks its backend per operator with ``return get_state_store(context, "variable")``:
        the checkpoints live there and that store is finished after success, like the configured one.
        """
        if type(self).state_store is StatefulOperatorMixin.state_store or self.__dict__.get("_picking_store"):
            return None
        # An override that calls super().state_store() comes back here: the configured try then.
        self.__dict__["_picking_store"] = True
        try:
            picked = self.state_store(context)
        finally:
            self.__dict__["_picking_store"] = False
        found = TaskTry.owning(self, picked)
        if found is None:
            raise StateBackendConfigError(
                f"{type(self).__name__}.state_store() returned a {type(picked).__name__} that is not a store of "
                "this try, so its lifecycle is unknown; return get_state_store(context, backend) or "
                "super().state_store(context) from it, or set [resumable] state_backend to a store class."
            )
        return found

    def on_kill(self) -> None:
        """
        Told to stop (a person's mark, a shutdown): a walk that still ends is not marked finished.

        The checkpoints stay, so a retry or a clear resumes; a staged watermark is not committed.
        """
        task_try = TaskTry.running(self)
        if task_try is not None:
            task_try.note_killed()
        parent_on_kill = getattr(super(), "on_kill", None)
        if parent_on_kill is not None:
            parent_on_kill()

    def state_store(self, context: Context) -> NamespacedStateStore:
        """This operator's view of the task's state store: its keys live under ``state_namespace``."""
        return self.task_try(context).namespaced(self.state_namespace)

    def load_checkpoint(self, context: Context) -> Any:
        """The checkpoint stored in this life of the task instance, as a ``checkpoint_model`` (or dict), or None."""
        return self.checkpoints(context).load()

    def save_checkpoint(self, context: Context, checkpoint: Any, *, batches_done: int | None = None) -> None:
        """Store ``checkpoint``; call it only once the work it describes is durable."""
        self._write_checkpoint(context, checkpoint, batches_done=batches_done, complete=False)

    def _write_checkpoint(self, context: Context, checkpoint: Any, *, batches_done: int | None, complete: bool) -> None:
        self.checkpoints(context).write(checkpoint, batches_done=batches_done, complete=complete)

    def clear_checkpoint(self, context: Context) -> None:
        self.checkpoints(context).clear()

    def checkpoints(self, context: Context) -> Checkpoints:
        """This operator's typed checkpoint on the running try (``mixins/checkpoint_runner.py``)."""
        settings = CheckpointSettings(self.state_namespace, self.checkpoint_key, self.checkpoint_model)
        return Checkpoints(self.task_try(context), settings, self.log)

    # ---- batch walker -------------------------------------------------------------------------------

    def run_batches(
        self,
        context: Context,
        process_batch: Callable[[C, int], C | None],
        *,
        start: C,
        policy: CheckpointPolicy | None = None,
    ) -> BatchRun[C]:
        """
        Walk batches from the stored cursor (or ``start``), checkpointing as ``policy`` says.

        ``process_batch(cursor, index)`` must do one batch *and make its side effect durable* before it
        returns the cursor of the next batch, or None after the last one. A checkpoint therefore never
        runs ahead of the data; after a hard crash the batches since the last checkpoint are done
        again, so their side effects must be idempotent (write batch ``index`` to a fixed place).
        A failure that Python sees writes the checkpoint of the last finished batch before it
        propagates. When the walk ends, the checkpoint is marked complete: a retry of the same life
        (the try failed after the walk) returns at once with ``already_complete``, and once Airflow has
        recorded the task's success the checkpoint is dropped or marked finished, so a clear after
        success starts afresh while a clear after a failure resumes.

        The walk itself is ``checkpoint_runner.walk_batches``; this method binds the operator's
        ``save_checkpoint`` and ``_flush_on_failure`` to it.
        """
        walk: CheckpointWalk[C] = CheckpointWalk(
            self.checkpoints(context),
            policy or self.checkpoint_policy,
            save=lambda cursor, index: self.save_checkpoint(context, cursor, batches_done=index),
            flush=lambda cursor, index: self._flush_on_failure(context, cursor, index),
            clock=time.monotonic,
            background=None if self.__dict__.get("background_checkpoints", True) else False,
        )
        return walk_batches(walk, process_batch, start=start)

    # ---- helpers ------------------------------------------------------------------------------------

    def _flush_on_failure(self, context: Context, cursor: Any, index: int) -> None:
        try:
            self.save_checkpoint(context, cursor, batches_done=index)
            self.log.info("Saved the checkpoint at batch %s before failing", index)
        except Exception:
            # The original error matters more; the retry redoes the batches since the last checkpoint.
            self.log.exception("Could not save the checkpoint at batch %s while failing", index)

    def _schema_version(self) -> int:
        return int(getattr(self.checkpoint_model, "schema_version", 1))

    def _current_envelope(self, context: Context) -> CheckpointEnvelope | None:
        """The stored checkpoint if it belongs to this life of the task instance, else None."""
        return self.checkpoints(context).current()

    def _location(self, context: Context) -> str:
        return self.task_try(context).locate(self.checkpoint_key, self.state_namespace)

    def _decode(self, envelope: CheckpointEnvelope, context: Context) -> Any:
        return self.checkpoints(context).decode(envelope)
