"""Make a method fail on chosen tries of a task, to test what the next try does."""

from __future__ import annotations

import functools
import inspect
import sys
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow.providers.resumable.compat.airflow import get_current_context, region_of

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Iterator


class InjectedFault(RuntimeError):
    """Raised by :func:`fail_on_tries`: stands in for a worker dying, a lost response, an OOM kill."""


class SimulatedHardKill(InjectedFault):
    """
    Raised by ``fail_on_tries(..., hard=True)``: a SIGKILL or an OOM kill, which lets the task write nothing more.

    While the fault is active, a checkpoint walk that fails with it neither flushes its cursor nor
    waits for its writer thread: a checkpoint already being written may land, one waiting does not,
    as when the process dies. The retry resumes from whatever was durable.
    """


@contextmanager
def _walks_die_with_hard_kills() -> Iterator[None]:
    from airflow.providers.resumable.mixins.checkpoint_runner import CheckpointWalk

    original = CheckpointWalk.failed

    def failed(walk: CheckpointWalk[Any]) -> None:
        # Called from the walk's ``except`` block: the exception being handled is the kill.
        if not isinstance(sys.exc_info()[1], SimulatedHardKill):
            original(walk)
            return
        writer, walk.writer = walk.writer, None
        if writer is not None:
            writer.abandon()
            walk.checkpoints.task_try.release_writer(writer)

    CheckpointWalk.failed = failed  # type: ignore[method-assign, assignment]
    try:
        yield
    finally:
        CheckpointWalk.failed = original  # type: ignore[method-assign]


@dataclass
class Fault:
    """What :func:`fail_on_tries` did: ``fired`` lists the try number of each raise, in order."""

    target: str
    tries: frozenset[int]
    after: bool
    fired: list[int] = field(default_factory=list)


def _running_task_instance() -> Any:
    try:
        return get_current_context()["ti"]
    except Exception as err:
        raise RuntimeError(
            "fail_on_tries: the patched method ran outside a running task instance, so there is no try "
            f"number to compare with ({type(err).__name__}: {err}); run the DAG with run_dag() or dag.test()"
        ) from err


def current_try_number() -> int:
    """The try number of the task instance running now; raises ``RuntimeError`` outside one."""
    return int(_running_task_instance().try_number)


def _current_try() -> tuple[Any, ...]:
    """The running try: the task instance (mapped ones and Task Loop iterations apart) and its try number, last."""
    ti = _running_task_instance()
    return (ti.dag_id, ti.run_id, ti.task_id, getattr(ti, "map_index", -1), *region_of(ti), int(ti.try_number))


@contextmanager
def fail_on_tries(
    target: Any,
    attribute: str,
    tries: Collection[int],
    *,
    at_call: int = 1,
    after: bool = False,
    error: Callable[[int], BaseException] | None = None,
    hard: bool = False,
) -> Iterator[Fault]:
    """
    Make ``target.attribute`` raise on the given try numbers of the task instance that calls it.

    :param target: a class (every instance is affected, also the copies Airflow makes of an operator
        before running it) or one object, such as an operator or a hook.
    :param attribute: the name of a method on ``target``; it must exist.
    :param tries: try numbers (1 is the first try) on which the call fails; other tries call through.
    :param at_call: fail the n-th call of the method within each of those tries of each task instance
        (calls before it go through, and so do later ones): ``at_call=4`` on a method that writes one batch is a worker
        dying after three batches.
    :param after: call the method first and raise after it returned, as when a request reached the
        job system but its response was lost; by default the call fails before it runs.
    :param error: builds the exception from the try number; default :class:`InjectedFault`.
    :param hard: a hard kill (SIGKILL, OOM): raise :class:`SimulatedHardKill`, and let a checkpoint walk
        it interrupts write nothing more (no flush of its cursor, no wait for its writer thread), so
        the retry shows what a hard kill would redo.

    Yields a :class:`Fault` whose ``fired`` records the tries it raised on, so a test can check the
    fault happened at all. The original method is restored when the block ends::

        with fail_on_tries(MyJobOperator, "submit_job", tries={1}, after=True) as fault:
            run = run_dag(dag)
        assert fault.fired == [1]
    """
    wanted = frozenset(tries)
    bad = sorted(str(t) for t in wanted if isinstance(t, bool) or not isinstance(t, int) or t < 1)
    if not wanted or bad:
        raise ValueError(f"tries must be try numbers >= 1 (the first try is 1), got {sorted(map(str, tries))!r}")
    if isinstance(at_call, bool) or not isinstance(at_call, int) or at_call < 1:
        raise ValueError(f"at_call must be a call number >= 1 (the first call is 1), got {at_call!r}")
    if not hasattr(target, attribute):
        raise AttributeError(f"fail_on_tries: {target!r} has no attribute {attribute!r} to patch")
    if inspect.isclass(target) and isinstance(inspect.getattr_static(target, attribute), (staticmethod, classmethod)):
        raise TypeError(
            f"fail_on_tries: {target.__name__}.{attribute} is a static or class method; patch an instance "
            "method, or the object it is called on"
        )
    name = f"{getattr(target, '__name__', type(target).__name__)}.{attribute}"
    fault = Fault(target=name, tries=wanted, after=after)
    # Counted per task instance and try: mapped instances and other tasks of the class count apart.
    calls: dict[tuple[Any, ...], int] = {}
    original = getattr(target, attribute)
    if error is not None and hard:
        raise TypeError("fail_on_tries: pass error= or hard=True, not both (a hard kill raises SimulatedHardKill)")
    kind = SimulatedHardKill if hard else InjectedFault
    make_error = error or (lambda n: kind(f"{name} failed on call {at_call} of try {n} (fail_on_tries)"))

    @functools.wraps(original)
    def failing(*args: Any, **kwargs: Any) -> Any:
        key = _current_try()
        try_number = key[-1]
        calls[key] = calls.get(key, 0) + 1
        if try_number not in wanted or calls[key] != at_call:
            return original(*args, **kwargs)
        if after:
            original(*args, **kwargs)
        fault.fired.append(try_number)
        raise make_error(try_number)

    owned = attribute in vars(target)
    saved = vars(target)[attribute] if owned else None
    with ExitStack() as stack:
        if hard:
            stack.enter_context(_walks_die_with_hard_kills())
        setattr(target, attribute, failing)
        try:
            yield fault
        finally:
            if owned:
                setattr(target, attribute, saved)
            else:
                delattr(target, attribute)
