"""
Read the documented differences: the upstream tests an operator's docs page lists by name.

In the page's "What differs" section, a bullet that starts with one or more test names in double
backquotes and a colon documents them::

    * ``TestEmrAddStepsOperator::test_execute_returns_step_id``: the step names carry a marker, so ...
    * ``TestHttpOperator::test_paginated_responses``, ``TestHttpOperator::test_async_paginated_responses``:
      the operator returns a manifest of the parts it wrote, not the responses.

A name is ``Class::test`` (every parametrization) or ``Class::test[id]`` (one). ``[not run]`` after the
names (``* ``Class::test`` [not run]: reason``) counts the tests as documented without running them:
only for tests whose failure costs time for nothing (a 30-second poll before the same assertion).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

SECTION = "What differs"
NOT_RUN = "[not run]"
_NAME = re.compile(r"``((?:Test\w+::)?test_\w+(?:\[[^\]`]*\])?)``")
_HEADING_UNDERLINE = re.compile(r"^([=\-~^\"'`#*+<>])\1{2,}\s*$")


@dataclass(frozen=True)
class Documented:
    name: str
    reason: str
    page: str
    run: bool = True


def _section(lines: list[str], title: str) -> list[str]:
    """The lines of the section ``title`` up to the next heading of the same or a higher level."""
    for i, line in enumerate(lines[:-1]):
        underline = _HEADING_UNDERLINE.match(lines[i + 1])
        if line.strip() == title and underline:
            char = underline.group(1)
            body: list[str] = []
            j = i + 2
            while j < len(lines):
                nxt = lines[j + 1] if j + 1 < len(lines) else ""
                match = _HEADING_UNDERLINE.match(nxt)
                if lines[j].strip() and match and match.group(1) == char:
                    break
                body.append(lines[j])
                j += 1
            return body
    return []


def _bullets(lines: list[str]) -> list[str]:
    bullets: list[str] = []
    for line in lines:
        if line.startswith("* "):
            bullets.append(line[2:].strip())
        elif bullets and line.startswith("  ") and line.strip():
            bullets[-1] += " " + line.strip()
        elif not line.strip() and bullets and not bullets[-1].endswith("\n"):
            bullets[-1] += "\n"
    return [b.strip() for b in bullets]


_ENTRY = re.compile(
    r"^(?P<names>``[^`]+``(?:,\s*``[^`]+``)*)(?P<not_run>\s*\[not run\])?\s*:(?P<reason>.*)$", re.DOTALL
)


def parse(text: str, page: str) -> dict[str, Documented]:
    """Test name -> why it fails, from the "What differs" section of one docs page."""
    found: dict[str, Documented] = {}
    for bullet in _bullets(_section(text.splitlines(), SECTION)):
        if not _NAME.match(bullet):
            continue  # prose
        entry = _ENTRY.match(bullet)
        if entry is None:
            raise ValueError(f"{page}: cannot read the documented difference {bullet[:120]!r}")
        names = _NAME.findall(entry["names"])
        reason = " ".join(entry["reason"].split())
        if not reason:
            raise ValueError(f"{page}: the documented difference {names} gives no reason")
        for name in names:
            if name in found:
                raise ValueError(f"{page}: {name} is listed twice under {SECTION!r}")
            found[name] = Documented(name=name, reason=reason, page=page, run=entry["not_run"] is None)
    return found


def load(path: Path, page: str) -> dict[str, Documented]:
    return parse(path.read_text(encoding="utf-8"), page)


def lookup(documented: dict[str, Documented], test_name: str) -> Documented | None:
    """The entry for ``Class::test[id]``: listed as is, or without its parametrization."""
    return documented.get(test_name) or documented.get(test_name.split("[", 1)[0])
