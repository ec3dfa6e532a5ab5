"""Nothing outside ``compat/`` reads the Airflow version: every version branch lives in one place."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import airflow.providers.resumable

PACKAGE = Path(airflow.providers.resumable.__file__).parent
#: Where version flags may appear: the compat package, and the 0.1.0 module that re-exports its flags.
ALLOWED = ("compat/", "version_compat.py")

_FLAG = re.compile(r"AIRFLOW_V_\w+|AIRFLOW_VERSION")


def version_reads(source: str) -> list[tuple[int, str]]:
    """``(line, what)`` for each use of a version flag or of ``packaging.version`` in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Name):
            names = [node.id]
        elif isinstance(node, ast.Attribute):
            names = [node.attr]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            names = [module, *(f"{module}.{alias.name}" for alias in node.names), *(a.name for a in node.names)]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names = [node.value] if _FLAG.fullmatch(node.value) else []  # getattr(module, "AIRFLOW_V_3_0_PLUS")
        else:
            continue
        for name in names:
            if _FLAG.fullmatch(name) or name == "packaging.version" or name.startswith("packaging.version."):
                found.append((node.lineno, name))
                break
    return sorted(set(found))


def _relative(path: Path) -> str:
    return path.relative_to(PACKAGE).as_posix()


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from airflow.providers.resumable.compat.version_compat import AIRFLOW_V_3_0_PLUS\n", [1]),
        ("import x\nif x.AIRFLOW_V_3_3_PLUS:\n    pass\n", [2]),
        ("from x import AIRFLOW_VERSION as v\n", [1]),
        ("from packaging.version import Version\n", [1]),
        ("from packaging import version\n", [1]),
        ("import packaging.version\n", [1]),
        ("getattr(vc, 'AIRFLOW_V_3_2_PLUS')\n", [1]),
        ('"""Before AIRFLOW_V_3_0_PLUS this was different."""\n# AIRFLOW_V_3_0_PLUS\n', []),
        ("from airflow.providers.resumable.compat.airflow import try_stamp\n", []),
    ],
    ids=[
        "flag import",
        "flag attribute",
        "version",
        "packaging",
        "packaging module",
        "import",
        "by name",
        "prose",
        "a shim",
    ],
)
def test_version_reads_are_found_and_prose_is_not(source, expected):
    assert [line for line, _ in version_reads(source)] == expected


def test_no_version_branch_outside_compat():
    found = [
        f"airflow/providers/resumable/{_relative(path)}:{line}: {what}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if not _relative(path).startswith(ALLOWED)
        for line, what in version_reads(path.read_text())
    ]
    assert not found, (
        "version branches outside airflow/providers/resumable/compat/ (move each into a compat function "
        "that names the versions it covers):\n" + "\n".join(found)
    )


def private_probes(source: str) -> list[tuple[int, str]]:
    """``hasattr(x, "_private")`` calls: how an official class's generation used to be told apart."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "hasattr"
            and len(node.args) == 2
            and isinstance(node.args[1], ast.Constant)
            and str(node.args[1].value).startswith("_")
        ):
            found.append((node.lineno, f"hasattr(..., {node.args[1].value!r})"))
    return found


def test_no_probe_of_a_private_method_outside_compat():
    found = [
        f"airflow/providers/resumable/{_relative(path)}:{line}: {what}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if not _relative(path).startswith(ALLOWED)
        for line, what in private_probes(path.read_text())
    ]
    assert not found, "probe official classes in compat/ only:\n" + "\n".join(found)


def test_private_probes_are_found():
    assert private_probes("if hasattr(self, '_get_merged_json'):\n    pass\n") == [
        (1, "hasattr(..., '_get_merged_json')")
    ]
    assert private_probes("hasattr(store, 'inner')\n") == []
