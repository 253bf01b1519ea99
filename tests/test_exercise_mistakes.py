"""
The checkers against tables of student-style mistakes (tests/mistakes_<topic>.py): every mistake is caught AND
given its expected name; every valid alternative passes; and mistakes no table names are reported as not
recognised, never under a wrong name. Prints nothing; the counts per checker are in test_counts_per_checker.
"""

from __future__ import annotations

import collections
import importlib

import pytest

from mingpt.exercises import CheckResult
from mingpt.exercises.compare import NOT_RECOGNISED

TOPICS = ["block", "gpt", "sampling", "kvcache", "bpe", "optim"]
MODULES = [importlib.import_module(f"mistakes_{topic}") for topic in TOPICS]
MISTAKES = [row for m in MODULES for row in m.MISTAKES]
VALID = [row for m in MODULES for row in m.VALID]
UNNAMED = [row for m in MODULES for row in m.UNNAMED]
# Every name a checker gives for a mistake it recognised (a table's expected names).
NAMES = {name for _, _, name in MISTAKES}


def _id(checker, impl, name=""):
    return f"{checker.__name__}-{getattr(impl, '__name__', 'fn')}-{name}"


@pytest.mark.parametrize("checker, impl, name", MISTAKES, ids=[_id(*row) for row in MISTAKES])
def test_mistake_is_caught_and_named(checker, impl, name):
    result = checker(impl)
    assert isinstance(result, CheckResult) and not result, f"not caught: {name}"
    assert result.property == name, str(result)
    assert result.counterexample.strip() and result.hint, str(result)


@pytest.mark.parametrize("checker, impl", VALID, ids=[_id(*row) for row in VALID])
def test_valid_alternative_passes(checker, impl):
    result = checker(impl)
    assert result, str(result)


@pytest.mark.parametrize("checker, impl", UNNAMED, ids=[_id(*row) for row in UNNAMED])
def test_an_unknown_mistake_gets_no_wrong_name(checker, impl):
    result = checker(impl)
    assert not result
    assert result.property == NOT_RECOGNISED and result.property not in NAMES, str(result)
    assert any(w in result.counterexample for w in ("first differing element", "first difference", "difference "))


def test_each_checker_has_at_least_ten_named_mistakes():
    names = collections.defaultdict(set)
    for checker, _, name in MISTAKES:
        names[checker.__name__].add(name)
    small = {c: len(n) for c, n in names.items() if len(n) < 10 and c not in ("check_greedy", "check_bigram")}
    assert not small, small
