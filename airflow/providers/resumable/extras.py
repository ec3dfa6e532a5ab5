"""
The optional extras and the official providers they install.

The drop-in operators subclass the official ones, so ``operators.databricks``, ``operators.emr`` and
``operators.http`` cannot be imported without the matching provider. Without this module the error
is Python's "No module named 'airflow.providers.databricks'", which does not say that the fix is an
extra of this package.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

#: extra name -> (module of the official provider, its distribution), as in pyproject.toml.
EXTRAS: dict[str, tuple[str, str]] = {
    "databricks": ("airflow.providers.databricks", "apache-airflow-providers-databricks"),
    "amazon": ("airflow.providers.amazon", "apache-airflow-providers-amazon"),
    "http": ("airflow.providers.http", "apache-airflow-providers-http"),
}


@contextlib.contextmanager
def requires_extra(extra: str, importer: str) -> Iterator[None]:
    """
    Turn the missing official provider of ``extra`` into an ``ImportError`` that names the extra.

    Wrap the imports from the official provider at the top of a module::

        with requires_extra("databricks", __name__):
            from airflow.providers.databricks.operators.databricks import DatabricksSubmitRunOperator

    Only the provider's own absence is translated (chained from the original error); any other
    ``ImportError``, such as a dependency missing inside an installed provider, propagates unchanged.
    """
    try:
        module, distribution = EXTRAS[extra]
    except KeyError:
        raise ValueError(f"extra must be one of {', '.join(sorted(EXTRAS))}, got {extra!r}") from None
    try:
        yield
    except ModuleNotFoundError as err:
        # err.name is the first module on the dotted path that could not be found. A submodule missing
        # from an installed provider (too old a version) is a different problem; say nothing about extras.
        if err.name != module:
            raise
        raise ImportError(
            f"{importer} needs the official provider {distribution}, which is not installed "
            f"(No module named {err.name!r}). Install the '{extra}' extra: "
            f"pip install 'airflow-provider-resumable[{extra}]'",
            name=err.name,
        ) from err
