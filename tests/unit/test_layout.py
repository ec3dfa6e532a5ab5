"""
The house rules, checked on the source: tests mirror the package, and no module imports upward.

The floors (docs/contributing/architecture.rst): ``compat`` at the bottom, then the leaf modules at
the top of the package, ``state``, ``watermarks``, ``mixins`` and ``inventory``, ``operators``,
``cli`` and ``plugins`` (Airflow's entry points: the listener and the UI tab), and ``testing`` on top. A module may import its own package and anything
on a lower floor.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "airflow" / "providers" / "resumable"
PREFIX = "airflow.providers.resumable"

FLOORS = {
    "compat": 0,
    "version_compat": 1,
    "observability": 1,
    "extras": 1,
    "get_provider_info": 1,
    "state": 2,
    "watermarks": 3,
    "mixins": 4,
    "inventory": 4,
    "operators": 5,
    "decorators": 5,
    "cli": 5,
    "plugins": 5,
    "testing": 6,
}

#: 0.1.0 import paths kept as re-exports; ``tests/unit/state/test_base.py`` imports each.
REEXPORTS = {"version_compat.py", "state/records.py"}


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py")


def _test_module(source: Path) -> Path:
    relative = source.relative_to(PACKAGE)
    name = relative.stem.strip("_")
    return ROOT / "tests" / "unit" / relative.parent / f"test_{name}.py"


def test_every_source_module_has_its_test_module():
    missing = [
        f"{source.relative_to(PACKAGE)} -> {_test_module(source).relative_to(ROOT)}"
        for source in _modules()
        if str(source.relative_to(PACKAGE)) not in REEXPORTS and not _test_module(source).is_file()
    ]
    assert not missing, "tests mirror the package; add:\n" + "\n".join(missing)


def _floor(module: str) -> tuple[str, int]:
    top = module.removeprefix(PREFIX + ".").split(".")[0]
    return top, FLOORS[top]


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(PREFIX + "."):
            found.append((node.lineno, node.module))
            if node.module == PREFIX:
                found.extend((node.lineno, f"{PREFIX}.{alias.name}") for alias in node.names)
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, a.name) for a in node.names if a.name.startswith(PREFIX + "."))
    return found


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_imports_upward(path):
    relative = path.relative_to(PACKAGE)
    own, floor = _floor(PREFIX + "." + ".".join(relative.with_suffix("").parts))
    upward = []
    for line, module in _imports(path):
        target, target_floor = _floor(module)
        if target != own and target_floor > floor:
            upward.append(f"{relative}:{line} imports {module} (floor {target_floor} > {own}'s {floor})")
    assert not upward, "\n".join(upward)


def test_every_package_has_a_floor():
    tops = {p.relative_to(PACKAGE).parts[0].removesuffix(".py") for p in PACKAGE.iterdir() if p.name != "__init__.py"}
    tops -= {"__pycache__", "py.typed"}
    assert tops <= set(FLOORS), f"give {sorted(tops - set(FLOORS))} a floor in FLOORS and the architecture page"


def test_nothing_below_the_mixins_reads_a_task_context_but_the_try():
    readers = []
    for path in (PACKAGE / "state").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and any(
                a.arg == "context" for a in [*node.args.args, *node.args.kwonlyargs]
            ):
                readers.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name}")
    # task_try.py builds the try from the context; TaskScope.from_context is the 0.1.0 helper a custom
    # backend calls, and hands the context straight to task_try.py.
    unexpected = [r for r in readers if not r.startswith("state/task_try.py") and "from_context" not in r]
    assert not unexpected, "only state/task_try.py may take a context:\n" + "\n".join(unexpected)
