"""``airflow resumable state sweep``: delete the state of task instances that already succeeded."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from airflow.providers.resumable.cli.state_command import _asked, _read
from airflow.providers.resumable.inventory import stale
from airflow.providers.resumable.inventory import state as inventory

if TYPE_CHECKING:
    from argparse import Namespace


def state_sweep(args: Namespace) -> None:
    """
    List (and with ``--yes`` delete) the state of task instances in state ``success``.

    A dry run by default: the deletion is what a person opts into. Each task instance's state is
    checked again in the transaction that deletes it, so one cleared since the listing (running a
    new life that may have written state already) is left alone.
    """
    from airflow.utils.session import create_session

    from airflow.providers.resumable.state.finished_variables import retention

    vars(args).setdefault("key", None)  # the shared filters read it; a sweep takes no --key
    with create_session() as session:
        found = stale.succeeded(session, _read(args))
    now, keep = datetime.now(tz=UTC), retention()
    held = [(state, stale.kept_until(state, now, keep)) for state in found]
    for state, until in held:
        if until is not None:
            print(
                f"Kept {state.location} until {until.isoformat()}: Airflow 2 can still fail the try that "
                "succeeded (a late zombie callback), and its retry must find the job "
                "([resumable] finished_state_retention)."
            )
    found = [state for state, until in held if until is None]
    if not found:
        print(f"No state of a succeeded task instance for {_asked(args)}; nothing to sweep.")
        return
    verb = "Deleting" if args.yes else "Would delete"
    print(f"{verb} the state of {len(found)} succeeded task instance(s):")
    for state in found:
        scope = state.scope
        index = f" [{scope.map_index}]" if scope.map_index >= 0 else ""
        print(f"  {state.backend} {state.location} ({scope.dag_id} / {scope.run_id} / {scope.task_id}{index}): ")
        print(f"    {len(state.values)} key(s), {stale.why_stale(state)}")
    if not args.yes:
        print("Nothing deleted (a dry run). Run it again with --yes to delete.")
        return
    with create_session() as session:
        still = stale.succeeded(session, found)
        for state in found:
            if state not in still:
                print(f"Kept {state.location}: its task instance is no longer in state success (cleared since?)")
                continue
            for line in inventory.delete(session, state):
                print(f"Deleted {line}")
    if len(still) != len(found):
        sys.exit("Some task instances changed state during the sweep; their state was kept.")
