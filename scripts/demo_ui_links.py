"""
The end of `make demo`: where Airflow's UI shows the Resumable tab of each task instance the demo left state for.

Reads the demo's metadata DB with the provider's own inventory (what `airflow resumable state list`
reads) and prints, per task instance, the tab's URL and what a clear of it does now.
"""

from __future__ import annotations

import sys


def main(port: str = "8080") -> int:
    from airflow.utils.session import create_session

    from airflow.providers.resumable.compat.airflow import clear_discards_task_state
    from airflow.providers.resumable.compat.api_server import tab_base_url
    from airflow.providers.resumable.inventory import state as inventory
    from airflow.providers.resumable.inventory.view import clear_outcomes, tab_url

    base_url = tab_base_url()
    if base_url is None:
        print("\nThe Resumable tab needs Airflow 3.1+; on this Airflow, `airflow resumable state show` says the same.")
        return 0
    with create_session() as session:
        states = inventory.read(session, inventory.Filters())
    outcomes = clear_outcomes(states, native_discards=clear_discards_task_state())
    print()
    print("=" * 72)
    print("See it in Airflow's UI: the Resumable tab of each task instance the demo left state for")
    for scope, outcome in outcomes.items():
        print(f"  {tab_url(base_url or f'http://localhost:{port}', scope)}")
        print(f"      {outcome.sentence}")
    print("Start the API server on the demo's home with `make demo-ui` (log in as admin / admin), then open a link.")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
