"""The benchmarks are not run by the suite (``make bench`` is), but they must keep importing: a
refactor of the test helpers once broke ``make bench`` without any test noticing."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

MODULES = sorted(p.stem for p in (Path(__file__).parents[2] / "benchmarks").glob("*.py") if p.stem != "__init__")


def test_there_are_benchmarks() -> None:
    assert "run" in MODULES
    assert "redo_bench" in MODULES


@pytest.mark.parametrize("module", MODULES)
def test_benchmark_module_imports(module: str) -> None:
    importlib.import_module(f"benchmarks.{module}")
