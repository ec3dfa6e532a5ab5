"""
Check the built wheel and sdist: LICENSE and NOTICE in both, nothing a user does not need.

    python3 scripts/check_dist.py build/dist     (make check-dist builds them first)

Allow-lists rather than deny-lists, so a new stray file (a test fixture, a venv, .gitignore) fails
the check instead of shipping. Prints the contents of both, for the release notes and reviews.
"""

from __future__ import annotations

import sys
import tarfile
import zipfile
from pathlib import Path

PACKAGE = "airflow/providers/resumable/"
LEGAL = {"LICENSE", "NOTICE"}
# Besides the package: what building, installing and reading the sdist needs.
SDIST_TOP_LEVEL = {
    "PKG-INFO",
    "pyproject.toml",
    "hatch_build.py",
    "README.md",
    "CHANGELOG.rst",
    "provider.yaml",
} | LEGAL
PACKAGE_SUFFIXES = (".py", "py.typed")
# The UI tab's page, script and style: served by the API server from the installed package, so they
# must ship (no CDN at run time), and nothing else of that kind may.
UI_ASSETS = PACKAGE + "plugins/ui_assets/"
UI_ASSET_FILES = {UI_ASSETS + name for name in ("tab.html", "tab.js", "tab.css")}


def package_file_ok(path: str) -> bool:
    if path in UI_ASSET_FILES:
        return True
    return path.startswith(PACKAGE) and path.endswith(PACKAGE_SUFFIXES) and "__pycache__" not in path


def check_sdist(path: Path) -> list[str]:
    with tarfile.open(path) as tar:
        names = sorted(m.name for m in tar.getmembers() if m.isfile())
    root = names[0].split("/", 1)[0]
    relative = [n.split("/", 1)[1] for n in names]
    print(f"{path.name}: {len(relative)} files")
    for name in relative:
        print(f"  {name}")
    problems = [
        f"{path.name}: {n} is not needed by a user"
        for n in relative
        if not (package_file_ok(n) or n in SDIST_TOP_LEVEL)
    ]
    problems += [f"{path.name}: no {name}" for name in sorted(LEGAL - set(relative))]
    problems += [f"{path.name}: member {n} outside {root}/" for n in names if not n.startswith(root + "/")]
    return problems


def check_wheel(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as whl:
        names = sorted(n for n in whl.namelist() if not n.endswith("/"))
    print(f"{path.name}: {len(names)} files")
    for name in names:
        print(f"  {name}")
    dist_info = next((n.split("/", 1)[0] for n in names if n.split("/", 1)[0].endswith(".dist-info")), None)
    if dist_info is None:
        return [f"{path.name}: no .dist-info directory"]
    problems = [
        f"{path.name}: {n} is not part of the package"
        for n in names
        if not (package_file_ok(n) or n.startswith(dist_info + "/"))
    ]
    problems += [f"{path.name}: no {name} (the UI tab needs it)" for name in sorted(UI_ASSET_FILES - set(names))]
    problems += [
        f"{path.name}: no {dist_info}/licenses/{name}"
        for name in sorted(LEGAL)
        if f"{dist_info}/licenses/{name}" not in names
    ]
    return problems


def main(dist_dir: str) -> int:
    directory = Path(dist_dir)
    sdists, wheels = sorted(directory.glob("*.tar.gz")), sorted(directory.glob("*.whl"))
    if len(sdists) != 1 or len(wheels) != 1:
        print(f"expected one sdist and one wheel in {directory}, found {[p.name for p in sdists + wheels]}")
        return 1
    problems = check_sdist(sdists[0]) + check_wheel(wheels[0])
    for problem in problems:
        print(f"FAIL {problem}")
    print(
        "==> dist: LICENSE and NOTICE in both; nothing else outside the package" if not problems else "==> dist: FAILED"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "build/dist"))
