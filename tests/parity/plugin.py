"""
The pytest plugin of the parity run: class swap, selection, documented differences, no network.

* While an upstream test module is imported, each official class it names is replaced, on the
  official module, by our drop-in, so ``from ...operators.emr import EmrAddStepsOperator`` (and every
  decorator and parametrization evaluated at import) binds ours; the official module is restored
  right after, so the official code the operators reuse is untouched.
* Only test classes (and module-level tests) whose source names a swapped class run; the others test
  official operators we do not replace.
* A test listed under "What differs" in the operator's docs page is expected to fail
  (``xfail(strict=True)``): if it passes, the listing is stale and the run fails.
* Sockets may connect only to loopback, and HTTP(S) proxies point at a local port nobody listens
  on, so an unmocked AWS or HTTP call fails at once instead of reaching a cloud endpoint.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import json
import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.parity import differences

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.parity.manifest import Provider

_LOOPBACK = ("127.", "::1", "localhost")


def load_class(target: str) -> type:
    module_name, _, name = target.partition(":")
    return getattr(importlib.import_module(module_name), name)


@contextlib.contextmanager
def swapped(swaps: dict[str, dict[str, str]]) -> Iterator[None]:
    """Official classes replaced by ours on their modules, for the duration of the block."""
    # Ours first: importing them binds the official base classes before anything is replaced.
    replacements = [
        (importlib.import_module(module_name), name, load_class(target))
        for module_name, names in swaps.items()
        for name, target in names.items()
    ]
    saved = [(module, name, getattr(module, name)) for module, name, _ in replacements]
    try:
        for module, name, ours in replacements:
            setattr(module, name, ours)
        yield
    finally:
        for module, name, original in saved:
            setattr(module, name, original)


def names_mentioning(source: str, names: frozenset[str]) -> set[str]:
    """Top-level classes and functions of ``source`` whose code names one of ``names``."""
    alternatives = "|".join(sorted(map(re.escape, names)))
    pattern = re.compile(rf"\b(?:{alternatives})\b")
    selected = set()
    for node in ast.parse(source).body:
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            segment = ast.get_source_segment(source, node) or ""
            if pattern.search(segment):
                selected.add(node.name)
    return selected


def _guard_sockets() -> tuple[socket.socket, int]:
    """Refuse connections off loopback; return a bound, never-listening socket and its port."""
    original_connect = socket.socket.connect
    original_connect_ex = socket.socket.connect_ex

    def check(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            host = str(address[0])
            if not host.startswith(_LOOPBACK):
                raise ConnectionRefusedError(f"parity suite: no network beyond 127.0.0.1, refused {address!r}")

    def connect(self: socket.socket, address: Any) -> None:
        check(self, address)
        return original_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        check(self, address)
        return original_connect_ex(self, address)

    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    return dead, dead.getsockname()[1]


@dataclass
class Outcome:
    provider: str
    name: str
    outcome: str = "passed"
    detail: str = ""


@dataclass(eq=False)  # pytest keeps plugins in sets: hashable by identity
class ParityPlugin:
    upstream: Path
    repo: Path
    providers: list[Provider]
    report: Path
    results: dict[str, Outcome] = field(default_factory=dict)
    documented: dict[str, dict[str, differences.Documented]] = field(default_factory=dict)
    used: set[tuple[str, str]] = field(default_factory=set)
    not_run: set[str] = field(default_factory=set)
    _selected: dict[Path, set[str]] = field(default_factory=dict)
    _dead: socket.socket | None = None

    # ---- setup ----------------------------------------------------------------------------------

    def pytest_configure(self, config: pytest.Config) -> None:
        self._dead, port = _guard_sockets()
        dead_proxy = f"http://127.0.0.1:{port}"
        for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
            os.environ[var] = dead_proxy
        os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"
        for provider in self.providers:
            documented: dict[str, differences.Documented] = {}
            for page in provider.docs_pages:
                for name, entry in differences.load(self.repo / page, page).items():
                    if name in documented:
                        raise ValueError(f"{page}: {name} is also listed in {documented[name].page}")
                    documented[name] = entry
            self.documented[provider.key] = documented

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        if self._dead is not None:
            self._dead.close()

    def _provider_of(self, path: Path) -> Provider | None:
        try:
            relative = path.resolve().relative_to(self.upstream.resolve()).as_posix()
        except ValueError:
            return None
        for provider in self.providers:
            if relative in provider.test_files:
                return provider
        return None

    # ---- import with our classes ----------------------------------------------------------------

    @pytest.hookimpl(wrapper=True)
    def pytest_make_collect_report(self, collector: pytest.Collector) -> Any:
        provider = self._provider_of(Path(collector.path)) if isinstance(collector, pytest.Module) else None
        if provider is None:
            return (yield)
        source = Path(collector.path).read_text(encoding="utf-8")
        self._selected[Path(collector.path).resolve()] = names_mentioning(source, provider.swapped_names)
        with swapped(provider.swaps):
            return (yield)

    # ---- selection and expected failures --------------------------------------------------------

    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        keep, drop = [], []
        for item in items:
            provider = self._provider_of(Path(item.path))
            owner = item.cls.__name__ if getattr(item, "cls", None) else getattr(item, "originalname", item.name)
            if provider is None or owner not in self._selected.get(Path(item.path).resolve(), set()):
                drop.append(item)
                continue
            keep.append(item)
            name = self.test_name(item)
            entry = differences.lookup(self.documented[provider.key], name)
            if entry is not None:
                self.used.add((provider.key, entry.name))
                if not entry.run:
                    self.not_run.add(item.nodeid)
                item.add_marker(
                    pytest.mark.xfail(reason=f"documented in {entry.page}: {entry.reason}", strict=True, run=entry.run)
                )
        if drop:
            config.hook.pytest_deselected(items=drop)
        items[:] = keep

    @staticmethod
    def test_name(item: pytest.Item) -> str:
        """``Class::test[id]``, as the docs list it."""
        return item.nodeid.split("::", 1)[1]

    # ---- outcomes -------------------------------------------------------------------------------

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        provider = self._provider_of(Path(str(report.fspath)).resolve() if report.fspath else Path())
        if provider is None:
            provider = self._provider_of(self.upstream / report.nodeid.split("::", 1)[0])
        if provider is None:
            return
        name = report.nodeid.split("::", 1)[1]
        result = self.results.setdefault(report.nodeid, Outcome(provider=provider.key, name=name))
        if result.outcome == "failed":
            return
        if report.failed:
            result.outcome = "failed"
            result.detail = (
                "passed, but is listed under 'What differs': remove it from the docs page"
                if "XPASS(strict)" in str(report.longrepr)
                else _first_error_line(report)
            )
        elif report.skipped and hasattr(report, "wasxfail"):
            result.outcome = "documented"
            result.detail = "not run" if report.nodeid in self.not_run else ""
        elif report.skipped and result.outcome != "documented":
            result.outcome = "skipped"

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        unused = {
            key: sorted(name for name in entries if (key, name) not in self.used)
            for key, entries in self.documented.items()
        }
        payload = {
            "results": [vars(r) | {"nodeid": nodeid} for nodeid, r in self.results.items()],
            "unused_documented": unused,
        }
        self.report.write_text(json.dumps(payload, indent=1), encoding="utf-8")


def _first_error_line(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    message = crash.message if crash is not None else str(report.longrepr)
    lines = message.strip().splitlines()
    return f"{report.when}: {lines[0][:300] if lines else ''}"
