"""Download an official provider's sdist once per version, and extract its unit tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path


def cache_dir() -> Path:
    """Where sdists are kept, by version: ``$RESUMABLE_PARITY_CACHE`` or the user cache, so a fresh clone reuses them."""
    configured = os.environ.get("RESUMABLE_PARITY_CACHE")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "airflow-provider-resumable" / "parity-sdists"


def sdist(distribution: str, version: str, pip_python: str) -> Path:
    """The sdist of ``distribution==version``, downloaded with pip the first time it is asked for."""
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    stem = f"{distribution.replace('-', '_')}-{version}"
    target = cache / f"{stem}.tar.gz"
    if target.exists():
        return target
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        command = [
            pip_python,
            *("-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:"),
            *("--dest", tmp, f"{distribution}=={version}"),
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        found = sorted(Path(tmp).glob("*.tar.gz"))
        if result.returncode != 0 or len(found) != 1:
            raise RuntimeError(
                f"could not download the sdist of {distribution}=={version} with {' '.join(command)!r} "
                f"(exit {result.returncode}, files {[p.name for p in found]}): {result.stderr.strip()[-800:]}"
            )
        os.replace(found[0], target)
    return target


def extract_tests(archive: Path, subtree: str, dest: Path) -> bool:
    """
    Extract ``tests/conftest.py``, ``tests/unit/__init__.py`` and ``tests/unit/<subtree>/`` into ``dest``.

    Returns False when the sdist ships no unit tests for ``subtree`` (older releases shipped none).
    """
    wanted = ("tests/conftest.py", "tests/unit/__init__.py")
    found = False
    with tarfile.open(archive) as tar:
        members = []
        for member in tar.getmembers():
            _, _, inner = member.name.partition("/")
            if not (member.isfile() or member.isdir()):
                continue
            if inner in wanted or inner.startswith(f"tests/unit/{subtree}/"):
                found = found or inner.startswith(f"tests/unit/{subtree}/")
                member = member.replace(name=inner.removeprefix("tests/"))  # type: ignore[attr-defined]
                members.append(member)
        if not found:
            return False
        dest.mkdir(parents=True, exist_ok=True)
        tar.extractall(dest, members=members, filter="data")
    return True


def reset(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
