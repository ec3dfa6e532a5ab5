"""Importing a drop-in without its official provider names the extra to install."""

from __future__ import annotations

import importlib
import importlib.abc
import sys

import pytest

from airflow.providers.resumable.extras import EXTRAS, requires_extra


def forget(monkeypatch: pytest.MonkeyPatch, prefix: str) -> None:
    """Drop ``prefix`` and its submodules from ``sys.modules`` for one test, so importing runs again."""
    for name in [n for n in sys.modules if n == prefix or n.startswith(prefix + ".")]:
        monkeypatch.delitem(sys.modules, name)


class _Absent(importlib.abc.MetaPathFinder):
    """A finder that knows ``prefix`` does not exist, as the path finders say of an absent distribution."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> None:
        if fullname == self.prefix:
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None


def hide(monkeypatch: pytest.MonkeyPatch, prefix: str) -> None:
    """Make ``prefix`` and everything under it unimportable, as if its distribution were not installed."""
    forget(monkeypatch, prefix)
    monkeypatch.setattr(sys, "meta_path", [_Absent(prefix), *sys.meta_path])


@pytest.mark.parametrize(
    ("module", "extra"),
    [
        ("airflow.providers.resumable.operators.databricks", "databricks"),
        ("airflow.providers.resumable.operators.http", "http"),
        ("airflow.providers.resumable.operators.emr", "amazon"),
        ("airflow.providers.resumable.operators.emr.steps", "amazon"),
        ("airflow.providers.resumable.operators.emr.serverless", "amazon"),
        ("airflow.providers.resumable.operators.emr.eks", "amazon"),
        ("airflow.providers.resumable.operators.emr.clusters", "amazon"),
    ],
)
def test_missing_provider_names_the_extra(monkeypatch, module, extra):
    provider, distribution = EXTRAS[extra]
    hide(monkeypatch, provider)
    # Our modules are imported again (the originals come back after the test); for one EMR module its
    # package too, which imports all four.
    forget(monkeypatch, "airflow.providers.resumable.operators.emr" if ".emr" in module else module)

    with pytest.raises(ImportError) as excinfo:
        importlib.import_module(module)

    message = str(excinfo.value)
    assert f"pip install 'airflow-provider-resumable[{extra}]'" in message
    assert distribution in message
    assert f"No module named '{provider}'" in message
    assert excinfo.value.name == provider
    assert isinstance(excinfo.value.__cause__, ModuleNotFoundError)
    assert excinfo.value.__cause__.name == provider


def test_other_import_errors_pass_unchanged():
    # A dependency missing inside an installed provider is not solved by the extra: keep Python's error.
    with pytest.raises(ModuleNotFoundError) as excinfo, requires_extra("databricks", "mine"):
        raise ModuleNotFoundError("No module named 'mergedeep'", name="mergedeep")
    assert excinfo.value.name == "mergedeep"
    assert excinfo.value.__cause__ is None


def test_submodule_missing_from_an_installed_provider_is_not_reported_as_a_missing_extra():
    with pytest.raises(ModuleNotFoundError) as excinfo, requires_extra("amazon", "mine"):
        raise ModuleNotFoundError("No module named ...", name="airflow.providers.amazon.aws.utils.waiter_with_logging")
    assert "pip install" not in str(excinfo.value)


def test_unknown_extra_is_named():
    with pytest.raises(ValueError, match=r"extra must be one of amazon, databricks, http, got 'databricks2'"):  # noqa: SIM117
        with requires_extra("databricks2", "mine"):
            pass
