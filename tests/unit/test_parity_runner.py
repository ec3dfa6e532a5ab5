"""The parity runner's own logic: reading documented differences, choosing test classes, swapping classes."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from tests.parity import differences
from tests.parity.manifest import PROVIDERS
from tests.parity.plugin import names_mentioning, swapped

REPO = Path(__file__).resolve().parents[2]

PAGE = """\
Title
=====

What differs
------------

* **Prose**: not a test name, ignored.
* ``TestA::test_one``, ``TestA::test_two[x-1]``: the token
  is ours.

Upstream tests
~~~~~~~~~~~~~~

* ``TestB::test_slow`` [not run]: polls for 30 s.

Next section
------------

* ``TestC::test_elsewhere``: not under What differs.
"""


class TestDocumentedDifferences:
    def test_names_reasons_and_not_run(self):
        found = differences.parse(PAGE, "page.rst")
        assert sorted(found) == ["TestA::test_one", "TestA::test_two[x-1]", "TestB::test_slow"]
        assert found["TestA::test_one"].reason == "the token is ours."
        assert found["TestA::test_one"].run
        assert not found["TestB::test_slow"].run

    def test_lookup_by_name_or_without_the_parametrization(self):
        found = differences.parse(PAGE, "page.rst")
        assert differences.lookup(found, "TestA::test_one[p]").name == "TestA::test_one"
        assert differences.lookup(found, "TestA::test_two[x-1]").name == "TestA::test_two[x-1]"
        assert differences.lookup(found, "TestA::test_two[x-2]") is None

    def test_a_name_listed_twice_or_without_a_reason_is_an_error(self):
        with pytest.raises(ValueError, match="listed twice"):
            differences.parse(PAGE.replace("``TestB::test_slow``", "``TestA::test_one``"), "page.rst")
        with pytest.raises(ValueError, match="gives no reason"):
            differences.parse("What differs\n------------\n\n* ``TestA::test_x``: \n", "page.rst")

    @pytest.mark.parametrize("provider", PROVIDERS, ids=lambda p: p.key)
    def test_every_docs_page_lists_its_differences(self, provider):
        for page in provider.docs_pages:
            documented = differences.load(REPO / page, page)
            assert documented, f"{page} has no 'What differs' list of upstream tests"


SOURCE = """
from airflow.providers.x import Official, Other

class TestOfficial:
    def test_a(self):
        Official(task_id="t")

class TestOther:
    def test_b(self):
        Other(task_id="t")

def test_module_level():
    assert Official
"""


def test_only_tests_that_name_a_swapped_class_are_selected():
    assert names_mentioning(SOURCE, frozenset({"Official"})) == {"TestOfficial", "test_module_level"}


def test_the_swap_binds_ours_during_the_block_and_restores_the_official_class(monkeypatch):
    official_module = types.ModuleType("parity_official")
    ours_module = types.ModuleType("parity_ours")

    class Official:
        pass

    class Ours(Official):
        pass

    official_module.Official = Official
    ours_module.Ours = Ours
    monkeypatch.setitem(sys.modules, "parity_official", official_module)
    monkeypatch.setitem(sys.modules, "parity_ours", ours_module)
    with swapped({"parity_official": {"Official": "parity_ours:Ours"}}):
        from parity_official import Official as bound

        assert bound is Ours
    assert official_module.Official is Official
