"""
Hatchling build hook (sdist only): keep the repository's ``.gitignore`` out of the sdist.

Hatchling always adds the VCS ignore file to an sdist; outside the repository it only lists our
local caches and venvs. Its patterns still apply while the sdist is built.
"""

from __future__ import annotations

import os
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

VCS_IGNORE_FILES = frozenset({".gitignore", ".hgignore"})


class SdistWithoutVcsIgnore(BuildHookInterface):  # type: ignore[misc]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        force_include: dict[str, str] = build_data["force_include"]
        for source in [s for s, target in force_include.items() if os.path.basename(target) in VCS_IGNORE_FILES]:
            del force_include[source]
