"""
PNGs of the Resumable tab for the four states it explains, for the docs (``make ui-screenshots``).

Seeds the task instances as the UI tests do (tests/ui/seed.py), starts the api-server and Debian's
Chromium with the same harness (tests/ui/harness.py), opens each task instance's page in Airflow's
UI as ``admin`` and saves it to ``docs/_static/ui/<state>.png``. Run it through
``scripts/ui-screenshots.sh``, which makes the throwaway AIRFLOW_HOME (a migrated SQLite DB) first.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.ui import harness  # noqa: E402
from tests.ui.seed import FAILED_MID_WALK, INCREMENTAL_WINDOW, RUNNING_JOB, SUCCEEDED, seed  # noqa: E402

#: scenario -> file name under the output folder.
SHOTS = {
    RUNNING_JOB: "running-job.png",
    SUCCEEDED: "succeeded.png",
    FAILED_MID_WALK: "failed-mid-walk.png",
    INCREMENTAL_WINDOW: "incremental-window.png",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=pathlib.Path, default=REPO / "docs" / "_static" / "ui")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=900)
    args = parser.parse_args(argv)
    reason = harness.skip_reason()
    if reason:
        print(f"ERROR: {reason}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    seeding = seed()
    missing = []
    try:
        seeded = next(seeding)
        with harness.api_server() as server, harness.chromium() as browser:
            context = harness.logged_in_context(
                browser, server, "admin", viewport={"width": args.width, "height": args.height}
            )
            for name, file_name in SHOTS.items():
                s = seeded.scenarios[name]
                page = context.new_page()
                page.goto(harness.tab_path(s.dag_id, s.run_id, s.task_id, s.map_index))
                tab = harness.tab_frame(page)
                try:
                    # Airflow draws the iframe as soon as the plugin lists its view: quick, or never.
                    page.locator(harness.TAB_IFRAME).wait_for(timeout=20_000)
                    # Drawn once the tab's script has rendered the state (or said it has none).
                    tab.locator('[data-testid="clear-sentence"], [data-testid="empty"]').first.wait_for()
                except Exception as err:
                    missing.append(name)
                    print(f"WARNING: {name}: no tab drawn ({type(err).__name__}); saved as is", file=sys.stderr)
                path = args.out / file_name
                page.screenshot(path=str(path), full_page=True)
                print(f"==> {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")
                page.close()
            context.close()
    finally:
        seeding.close()
    if missing:
        print(f"ERROR: no tab drawn for {', '.join(missing)} (is the plugin installed?)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
