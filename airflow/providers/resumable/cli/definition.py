"""
The ``resumable`` command group, for Airflow's CLI and for the ``airflow-resumable`` console script.

Airflow 3.2+ load it from the provider info's ``cli`` entry (``airflow resumable state list``);
older Airflow has no provider CLI, so the same definitions are served by ``airflow-resumable``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.cli.cli_config import ARG_OUTPUT, ARG_YES, ActionCommand, Arg, GroupCommand, lazy_load_command

if TYPE_CHECKING:
    from collections.abc import Sequence

ARG_DAG_ID = Arg(("-d", "--dag-id"), help="Only the state of this DAG")
ARG_RUN_ID = Arg(("-r", "--run-id"), help="Only the state of this DAG run")
ARG_TASK_ID = Arg(("-t", "--task-id"), help="Only the state of this task")
ARG_MAP_INDEX = Arg(
    ("-m", "--map-index"), type=int, help="Only the state of this mapped task instance (-1: not mapped)"
)
ARG_REGION_ID = Arg(
    ("--region-id",),
    help="Only the state of task instances in this region (Airflow 3.4+: a Task Loop's iteration or a mapped "
    "expansion, as `list` shows it)",
)
ARG_REGION_INDEX = Arg(
    ("--region-index",), type=int, help="Only the state of task instances at this index of their region (3.4+)"
)
ARG_KEY = Arg(("-k", "--key"), help="Only this key of a task instance's state (as `list` shows it)")
ARG_BACKEND = Arg(
    ("--backend",),
    choices=("all", "task_state_store", "variable"),
    default="all",
    help="Where to look: Airflow 3.3+'s task_state_store table, this provider's Variables, or both (default)",
)

ARG_TI_STATE = Arg(
    ("--ti-state",),
    help="Only the state of task instances in these Airflow states, comma-separated (failed,up_for_retry,"
    "running,success, ...; 'no task instance' for a run that was deleted)",
)
ARG_ALL_KEYS = Arg(
    ("--all",),
    action="store_true",
    dest="all_keys",
    help="Also list the provider's bookkeeping keys (a namespace's __keys__ index, resumable_finished)",
)

_FILTERS = (ARG_DAG_ID, ARG_RUN_ID, ARG_TASK_ID, ARG_MAP_INDEX, ARG_REGION_ID, ARG_REGION_INDEX, ARG_KEY, ARG_BACKEND)
_COMMANDS = "airflow.providers.resumable.cli.state_command"

ARG_WM_DAG_ID = Arg(("-d", "--dag-id"), help="Only the watermarks of this DAG")
ARG_WM_TASK_ID = Arg(("-t", "--task-id"), help="Only the watermark of this task")
ARG_WM_MAP_INDEX = Arg(("-m", "--map-index"), type=int, help="Only this mapped task instance's (-1: not mapped)")
ARG_WM_NAME = Arg(("-n", "--name"), help="Only the watermark of this name (an operator's watermark_name)")
ARG_WM_TO = Arg(
    ("--to",),
    help="The new watermark, as JSON (a number, or a quoted string) or a bare timestamp such as "
    "2026-01-01T00:00:00Z; without --to the watermark is deleted and the next run starts from its initial value",
)
ARG_WM_BACKEND = Arg(
    ("--backend",),
    choices=("all", "asset_state_store", "variable"),
    default="all",
    help="Only the watermarks kept there: Airflow 3.3+'s asset_state_store table, or Variables (default: both)",
)
_WM_FILTERS = (ARG_WM_DAG_ID, ARG_WM_TASK_ID, ARG_WM_MAP_INDEX, ARG_WM_NAME, ARG_WM_BACKEND)
_WM_COMMANDS = "airflow.providers.resumable.cli.watermark_command"

WATERMARK_COMMANDS = (
    ActionCommand(
        name="list",
        help="List the watermarks of incremental tasks: where each one's last successful run stopped",
        func=lazy_load_command(f"{_WM_COMMANDS}.watermark_list"),
        args=(*_WM_FILTERS, ARG_OUTPUT),
    ),
    ActionCommand(
        name="show",
        help="Show watermarks in full: the value, the runs that moved it (last 20) and the reset command",
        func=lazy_load_command(f"{_WM_COMMANDS}.watermark_show"),
        args=(*_WM_FILTERS, ARG_OUTPUT),
    ),
    ActionCommand(
        name="reset",
        help="Set a task's watermark (--to VALUE) or delete it, so the next run reads from there",
        description=(
            "Set the watermark of one task (--dag-id and --task-id are required) to --to VALUE, or delete it "
            "without --to (the next run then starts from the operator's initial value). Asks for confirmation "
            "unless --yes. Pause the DAG first: a run in flight treats the reset as an overlapping commit."
        ),
        func=lazy_load_command(f"{_WM_COMMANDS}.watermark_reset"),
        args=(*_WM_FILTERS, ARG_WM_TO, ARG_YES),
    ),
)

STATE_COMMANDS = (
    ActionCommand(
        name="list",
        help="List the retry state resumable operators keep, one line per key with what it means",
        func=lazy_load_command(f"{_COMMANDS}.state_list"),
        args=(*_FILTERS, ARG_TI_STATE, ARG_ALL_KEYS, ARG_OUTPUT),
    ),
    ActionCommand(
        name="show",
        help="Show the state of task instances in full: each key's value, meaning and delete command",
        func=lazy_load_command(f"{_COMMANDS}.state_show"),
        args=(*_FILTERS, ARG_TI_STATE, ARG_OUTPUT),
    ),
    ActionCommand(
        name="delete",
        help="Delete the state of a task instance (or one key of it); a clear then starts it afresh",
        description=(
            "Delete what resumable operators stored for the matching task instances (--dag-id, --run-id and "
            "--task-id are required). With --key only that key goes. Asks for confirmation unless --yes. "
            "Deleting a job record makes the next try submit a new job: check the external system first."
        ),
        func=lazy_load_command(f"{_COMMANDS}.state_delete"),
        args=(*_FILTERS, ARG_YES),
    ),
    ActionCommand(
        name="sweep",
        help="Delete the state of task instances that already succeeded (a dry run unless --yes)",
        description=(
            "List the state kept for task instances in state success (a person's mark success, or a worker that "
            "died before the provider's listener finished it), narrowed by the filters; with --yes delete it."
        ),
        func=lazy_load_command("airflow.providers.resumable.cli.sweep_command.state_sweep"),
        # No --key: a sweep deletes a task instance's state whole, never a part of it.
        args=(*(arg for arg in _FILTERS if arg is not ARG_KEY), ARG_YES),
    ),
)


def get_resumable_cli_commands() -> list[GroupCommand]:
    """The provider info's ``cli`` entry point."""
    return [
        GroupCommand(
            name="resumable",
            help="Inspect and repair the retry state of airflow-provider-resumable",
            subcommands=(
                GroupCommand(
                    name="state",
                    help="List, show and delete the state resumable operators keep across retries",
                    subcommands=STATE_COMMANDS,
                ),
                GroupCommand(
                    name="watermark",
                    help="List, show and reset the watermarks of incremental tasks (kept across runs)",
                    subcommands=WATERMARK_COMMANDS,
                ),
            ),
        )
    ]


def main(argv: Sequence[str] | None = None) -> None:
    """``airflow-resumable``: the same commands where Airflow's CLI does not load provider commands."""
    from airflow.cli.cli_config import DefaultHelpParser
    from airflow.cli.cli_parser import _add_command

    parser = DefaultHelpParser(prog="airflow-resumable")
    subparsers = parser.add_subparsers(dest="subcommand", metavar="GROUP_OR_COMMAND")
    subparsers.required = True
    (group,) = get_resumable_cli_commands()
    for command in group.subcommands:
        _add_command(subparsers, command)
    args = parser.parse_args(argv)
    args.func(args)
