"""
Sphinx configuration of the airflow-provider-resumable docs site (``make docs``).

Modelled on the official providers' ``provider_conf.py``: the ``sphinx_airflow_theme`` theme and a
Python API reference that sphinx-autoapi generates by parsing ``airflow/providers/resumable``
without importing it, so the docs venv (requirements/docs.txt) needs neither Airflow nor the official
providers. The build runs with warnings as errors and nitpicky cross-references.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

DOCS_DIR = Path(__file__).resolve().parent
REPO_ROOT = DOCS_DIR.parent
PACKAGE_DIR = REPO_ROOT / "airflow" / "providers" / "resumable"
REPOSITORY_URL = "https://github.com/airflow-provider-resumable/airflow-provider-resumable"


def _package_version() -> str:
    # Read, not imported: importing the package imports Airflow, which the docs venv does not have.
    text = (PACKAGE_DIR / "__init__.py").read_text()
    match = re.search(r'^__version__ = "([^"]+)"', text, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"no __version__ = '...' line in {PACKAGE_DIR / '__init__.py'}")
    return match.group(1)


# -- Project information -----------------------------------------------------------------------------

project = "airflow-provider-resumable"
version = release = _package_version()
language = "en"

# -- General configuration ---------------------------------------------------------------------------

extensions = [
    "sphinx.ext.autodoc",  # autoapi renders through autodoc's directives
    "sphinx.ext.intersphinx",
    "autoapi.extension",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = [
    "_build",
    # The namespace packages above ours hold nothing of this provider (as in the official providers'
    # conf, which excludes the same two pages).
    "_api/airflow/index.rst",
    "_api/airflow/providers/index.rst",
]

# Every cross-reference must resolve; the few targets no inventory can provide offline are listed in
# nitpick_ignore(_regex) below with the reason.
nitpicky = True

# Intersphinx inventories cannot be fetched here (no internet while building, as in CI), so a
# reference to Python, Airflow or a provider is left as plain text rather than guessed. The mapping
# stays empty; nitpick_ignore_regex covers names from those projects.
intersphinx_mapping: dict[str, tuple[str, str | None]] = {}
intersphinx_disabled_reftypes = ["*"]

nitpick_ignore_regex = [
    # compat/version_compat.py (and version_compat.py, its 0.1.0 home) re-exports Airflow's
    # BaseOperator, Context and exceptions, chosen at import time per Airflow version.
    (r"py:.*", r"airflow\.providers\.resumable\.(compat\.)?version_compat\.\w+"),
    # state/records.py is the 0.1.0 home of the job record and checkpoint envelope, now re-exported
    # from state/codec.py, where autoapi documents them.
    (r"py:.*", r"airflow\.providers\.resumable\.state\.records\.\w+"),
    # Private bases (_ResumableDatabricksRun, emr._common.ResumableEmrJob) and helpers are not part of
    # the API; the public subclasses are documented instead.
    (r"py:.*", r"(.*\.)?_\w+(\.\w+)*"),
    # The standard library, typing and third-party packages (pydantic, tenacity, requests, botocore)
    # and Airflow itself: documented elsewhere, with no inventory available offline.
    (r"py:.*", r"(typing|typing_extensions|collections\.abc|abc|argparse|enum|datetime|json|logging|os|pathlib)\..*"),
    (r"py:.*", r"contextvars\..*"),
    (r"py:.*", r"(pydantic|pytest|tenacity|requests|botocore|boto3|aiohttp|packaging|pendulum|sqlalchemy)(\..*)?"),
    (r"py:.*", r"(fastapi|starlette)(\..*)?"),
    (r"py:.*", r"airflow\.(?!providers\.resumable\.).*"),
    (r"py:class", r"(Any|Callable|Iterator|Iterable|Mapping|MutableMapping|Sequence|Generator|TypeVar|Self)"),
    (r"py:class", r"(int|str|float|bool|bytes|dict|list|tuple|set|frozenset|object|type|None|Exception)"),
    (r"py:class", r"(BaseException|ValueError|TypeError|KeyError|RuntimeError|LookupError|ImportError)"),
    (r"py:class", r"(Context|BaseOperator|BaseModel|StringConstraints|Response|JsonValue|RetryCallState|wait_base)"),
    # The drop-in operators' bases and the types of their hooks, from the official providers.
    (r"py:class", r"(HttpOperator|HttpHook|Databricks\w+|Emr\w+|AirflowException|AirflowFailException)"),
    (r"py:class", r"(RunState|WaitPolicy|Config|ClientError|ObjectStoragePath|TaskInstance|\w+Trigger)"),
]

rst_epilog = """
.. |cli-doc| replace:: :doc:`/cli`
"""

# -- HTML output -------------------------------------------------------------------------------------

html_theme = "sphinx_airflow_theme"
html_title = f"{project} Documentation"
html_short_title = ""
html_show_copyright = False
html_use_index = True
# docs/_templates/header.html and footer.html replace the theme's, which are airflow.apache.org's.
templates_path = ["_templates"]
# As the official providers' conf, without the version selector (one version is published).
html_sidebars = {"**": ["searchbox.html", "globaltoc.html"]}
html_theme_options = {
    # Links after "Documentation" in the header.
    "navbar_links": [
        {"href": REPOSITORY_URL, "text": "Source"},
        {"href": "https://pypi.org/project/airflow-provider-resumable/", "text": "PyPI"},
    ],
    "hide_website_buttons": True,
}
html_context = {
    # Read by the theme's "Suggest a change on this page" button.
    "github_user": "airflow-provider-resumable",
    "github_repo": "airflow-provider-resumable",
    "github_version": "main",
    "conf_py_path": "/docs/",
    "display_github": True,
}

# The theme's layout hard-codes, outside any block a template could override, a canonical link to
# airflow.apache.org/docs/<project>/stable/<page>.html and the Apache Software Foundation's Matomo
# analytics for the Airflow website. Neither is true of this site (the canonical link would hand its
# pages to a URL that does not exist, the analytics would report our readers to the ASF), so both
# are cut from every page once it is written. A theme release that changes them fails the build.
_APACHE_CANONICAL = re.compile(r'\n\s*<link rel="canonical" href="https://airflow\.apache\.org/docs/[^"]*" />')
_APACHE_MATOMO = re.compile(r"\n\s*<!-- Matomo -->.*?<!-- End Matomo Code -->", re.DOTALL)


def _drop_airflow_website_tags(app: Any, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    for page in Path(app.outdir).rglob("*.html"):
        html = page.read_text(encoding="utf-8")
        html, canonical = _APACHE_CANONICAL.subn("", html)
        html, matomo = _APACHE_MATOMO.subn("", html)
        if (canonical, matomo) != (1, 1):
            raise RuntimeError(
                f"{page}: expected the theme's airflow.apache.org canonical link and Matomo snippet once "
                f"each, found {canonical} and {matomo}; review docs/conf.py against the theme's layout.html"
            )
        page.write_text(html, encoding="utf-8")


def _source_suffix_for_theme(app: Any, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    # The theme's "Suggest a change" link appends ``suffix``, which only airflow's own conf sets; without
    # it the link misses ".rst" (or ".md" for the benchmarks page).
    context["suffix"] = context.get("page_source_suffix", "")
    # The API pages are generated by autoapi and have no file in the repository to change.
    context["display_github"] = not pagename.startswith("_api/")


def setup(app: Any) -> None:
    app.connect("html-page-context", _source_suffix_for_theme)
    app.connect("build-finished", _drop_airflow_website_tags)


# -- sphinx-autoapi ----------------------------------------------------------------------------------

autoapi_type = "python"
autoapi_dirs = [str(REPO_ROOT / "airflow")]
# airflow/ and airflow/providers/ are namespace packages without __init__.py, as in every provider.
autoapi_python_use_implicit_namespaces = True
autoapi_root = "_api"
# The index page links "Python API" itself, as the official providers' index does.
autoapi_add_toctree_entry = False
autoapi_keep_files = False
# As the official providers: no imported-members, so each object is documented once, in the module that
# defines it (a package's re-exports would otherwise make every short reference ambiguous).
autoapi_options = ["members", "undoc-members", "show-inheritance", "show-module-summary"]
autoapi_member_order = "groupwise"
autodoc_typehints = "description"

suppress_warnings = [
    # autoapi reads the source without importing it, so it cannot follow imports from Airflow and the
    # official providers (not installed in the docs venv) nor names that version_compat picks at import
    # time; the references they leave are covered by nitpick_ignore_regex above.
    "autoapi.python_import_resolution",
]
