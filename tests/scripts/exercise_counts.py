"""
Counts per checker over the mistake tables of tests/mistakes_<topic>.py: mistakes written, caught, named with the
expected name, named wrongly (a name from some checker's table that is not the expected one), valid alternatives
written and passed. Run from the repository root: PYTHONPATH=.:tests python tests/scripts/exercise_counts.py
"""

from __future__ import annotations

import collections
import importlib

from mingpt.exercises.compare import NOT_RECOGNISED

TOPICS = ["attention", "block", "gpt", "sampling", "kvcache", "bpe", "optim", "modern", "heldout"]


def main() -> None:
    modules = [importlib.import_module(f"mistakes_{topic}") for topic in TOPICS]
    names = {name for m in modules for _, _, name in m.MISTAKES}
    stats = collections.defaultdict(lambda: [0] * 6)
    for m in modules:
        for checker, impl, name in m.MISTAKES:
            result, row = checker(impl), stats[checker.__name__]
            row[0] += 1
            row[1] += not result
            row[2] += (not result) and result.property == name
            row[3] += (not result) and result.property != name and result.property in names - {NOT_RECOGNISED}
        for checker, impl in m.VALID:
            row = stats[checker.__name__]
            row[4] += 1
            row[5] += bool(checker(impl))
    print(f"{'checker':28s} {'written':>7s} {'caught':>6s} {'named':>5s} {'misnamed':>8s} {'valid':>5s} {'passed':>6s}")
    total = [0] * 6
    for checker, row in stats.items():
        print(f"{checker:28s} " + " ".join(f"{v:{w}d}" for v, w in zip(row, (7, 6, 5, 8, 5, 6))))
        total = [a + b for a, b in zip(total, row)]
    print(f"{'total':28s} " + " ".join(f"{v:{w}d}" for v, w in zip(total, (7, 6, 5, 8, 5, 6))))


if __name__ == "__main__":
    main()
