"""
Run the official providers' unit tests against our drop-ins: ``python -m tests.parity.run [pytest args]``.

Run it from the repository root in a leg's venv, with ``AIRFLOW_HOME`` set to a migrated throwaway
home (``scripts/run-parity.sh`` does both). Ends with one line,
``parity: N passed, M documented differences, K failed``, and exits non-zero when K > 0.
Environment: ``PYTHON`` (a python with pip, for ``pip download``; default python3),
``RESUMABLE_TEST_LEG`` (names build/parity/<leg>), ``RESUMABLE_PARITY_CACHE`` (where sdists are kept).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHIM = Path(__file__).resolve().parent / "shim"

PYTEST_INI = """\
[pytest]
timeout = 120
filterwarnings =
    ignore::DeprecationWarning
    ignore::PendingDeprecationWarning
"""


def main(argv: list[str]) -> int:
    started = time.monotonic()
    leg = os.environ.get("RESUMABLE_TEST_LEG", "local")
    from tests.parity.fetch import extract_tests, reset, sdist
    from tests.parity.manifest import PROVIDERS

    build = REPO / "build" / "parity" / leg
    upstream = build / "upstream"
    reset(build)

    versions = {}
    for provider in PROVIDERS:
        try:
            versions[provider.key] = importlib.metadata.version(provider.distribution)
        except importlib.metadata.PackageNotFoundError:
            print(f"parity: {provider.distribution} is not installed; its tests are not run")
    pip_python = os.environ.get("PYTHON") or "python3"
    wanted = [p for p in PROVIDERS if p.key in versions]
    with ThreadPoolExecutor(max_workers=len(wanted) or 1) as pool:
        archives = dict(
            zip(
                [p.key for p in wanted],
                pool.map(lambda p: sdist(p.distribution, versions[p.key], pip_python), wanted),
                strict=True,
            )
        )
    providers = []
    for provider in wanted:
        subtree = provider.test_files[0].split("/")[1]
        if extract_tests(archives[provider.key], subtree, upstream):
            providers.append(provider)
            print(f"parity: {provider.distribution}=={versions[provider.key]} ({', '.join(provider.test_files)})")
        else:
            print(
                f"parity: {provider.distribution}=={versions[provider.key]} ships no unit tests in its sdist; "
                "its tests are not run on this leg"
            )
    fetched = time.monotonic() - started
    if not providers:
        print("parity: no provider sdist shipped tests; nothing to run", file=sys.stderr)
        return 1

    ini = build / "pytest.ini"
    ini.write_text(PYTEST_INI, encoding="utf-8")
    report = build / "report.json"
    sys.path.insert(0, str(SHIM))

    import pytest

    from tests.parity.plugin import ParityPlugin

    plugin = ParityPlugin(upstream=upstream, repo=REPO, providers=providers, report=report)
    files = [str(upstream / f) for p in providers for f in p.test_files]
    args = ["-c", str(ini), "--rootdir", str(upstream), "-q", "-p", "no:cacheprovider", "--disable-warnings"]
    args += [*files, *argv]
    exit_code = pytest.main(args, plugins=[plugin])
    return summarize(report, exit_code, fetched, time.monotonic() - started)


def summarize(report: Path, exit_code: int, fetched: float, total: float) -> int:
    if not report.exists():
        print(f"parity: pytest ended with exit code {exit_code} before running any test", file=sys.stderr)
        print("parity: 0 passed, 0 documented differences, 1 failed")
        return 1
    data = json.loads(report.read_text(encoding="utf-8"))
    counts: dict[str, dict[str, int]] = {}
    failures = []
    for result in data["results"]:
        per = counts.setdefault(
            result["provider"], {"passed": 0, "documented": 0, "not_run": 0, "failed": 0, "skipped": 0}
        )
        per[result["outcome"]] += 1
        if result["outcome"] == "documented" and result["detail"] == "not run":
            per["not_run"] += 1
        if result["outcome"] == "failed":
            failures.append(result)
    for key, per in sorted(counts.items()):
        print(
            f"parity [{key}]: {per['passed']} passed, {per['documented']} documented differences "
            f"({per['not_run']} of them not run), {per['failed']} failed, {per['skipped']} skipped"
        )
    for key, names in sorted(data["unused_documented"].items()):
        if names:
            print(f"parity [{key}]: documented but not run on this leg: {', '.join(names)}")
    for failure in failures:
        print(f"parity FAILED {failure['nodeid']}: {failure['detail']}")
    if failures:
        print(
            "parity: fix each failure in the operator, or list the test by name with the reason under "
            "'What differs' in its docs page (docs/operators/*.rst)"
        )
    total_counts = {k: sum(per[k] for per in counts.values()) for k in ("passed", "documented", "failed")}
    failed = total_counts["failed"] + (1 if exit_code not in (0, 1) else 0)
    print(f"parity: took {total:.0f}s ({fetched:.0f}s fetching and extracting sdists)")
    print(
        f"parity: {total_counts['passed']} passed, {total_counts['documented']} documented differences, {failed} failed"
    )
    return 0 if failed == 0 and exit_code in (0, 1) and total_counts["passed"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
