"""
Mistakes confined to part of the input: a slip made on one batch row, one head, the last position or half of the
channels, with every other slice right (a loop whose first or last pass differs, an index that skips a head, a
slice that stops at C // 2).

The one idea: when no rebuilt mistake explains the whole output, cut the outputs along one axis into slices and
pick them by one simple rule (the first, the last, all but the first, the first half, the even ones ...). If on
every tested input the picked slices are exactly what one rebuilt mistake gives there, and every other slice is
exactly the reference's, the checker names that mistake *and where* it happens. Both halves of the claim are
checked on every input (compare.py's rule), so the name is a fact about the student's outputs, never a guess; a
rule under which the picked slices equal the reference anyway proves nothing and is skipped.

    from mingpt.exercises.partial import localise
    problem = localise(problem, fn, cases, reference, variants, [("batch row", 0), ("head", 2)], prepare)
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch

from mingpt.exercises.checking import CheckResult, Variant, fail
from mingpt.exercises.compare import NOT_RECOGNISED, same
from mingpt.exercises.in_place import fresh

__all__ = ["localise", "RULES"]

# (where, which slices), for an axis of n slices; the where reads "only on <where>" with the axis' name filled in
RULES: list[tuple[str, Callable[[int, int], bool]]] = [
    ("the first {}", lambda i, n: i == 0),
    ("the last {}", lambda i, n: i == n - 1),
    ("every {} but the first", lambda i, n: i > 0),
    ("every {} but the last", lambda i, n: i < n - 1),
    ("the first half of the {}s (index < n // 2)", lambda i, n: i < n // 2),
    ("the second half of the {}s (index >= n // 2)", lambda i, n: i >= n // 2),
    ("the even {}s (0, 2, ...)", lambda i, n: i % 2 == 0),
    ("the odd {}s (1, 3, ...)", lambda i, n: i % 2 == 1),
]


def _take(t: torch.Tensor, axis: int, index: list[int]) -> torch.Tensor:
    return t.index_select(axis, torch.tensor(index, dtype=torch.long))


def _fits(rule, axis, outputs, expected, rebuilt, atol) -> bool:
    """Slices picked by rule equal the rebuilt mistake's, the others the reference's, on every input; and on some
    input both kinds exist and the picked ones differ from the reference (else the rule shows nothing)."""
    shown = False
    for out, exp, bad_out in zip(outputs, expected, rebuilt):
        n = exp.shape[axis]
        picked = [i for i in range(n) if rule(i, n)]
        rest = [i for i in range(n) if not rule(i, n)]
        if rest and not same(_take(out, axis, rest), _take(exp, axis, rest), atol):
            return False
        if picked:
            mine = _take(out, axis, picked)
            if not same(mine, _take(bad_out, axis, picked), atol):
                return False
            shown = shown or (bool(rest) and not same(mine, _take(exp, axis, picked), atol))
    return shown


def localise(problem: CheckResult | None, fn: Callable, cases: Sequence[tuple], reference: Callable,
             variants: Sequence[Variant], axes: Sequence[tuple[str, int]],
             prepare: Callable[[tuple], tuple] = lambda case: case, atol: float = 1e-5) -> CheckResult | None:
    """problem as it is, unless it is "not recognised" and one variant explains the outputs on the slices one rule
    picks along one axis (the rest being the reference's): then that variant's name, with where."""
    if problem is None or problem.passed or problem.property != NOT_RECOGNISED:
        return problem
    try:
        with torch.no_grad():
            outputs = [fn(*fresh(prepare(case))) for case in cases]
            expected = [reference(*prepare(case)) for case in cases]
    except Exception:
        return problem
    if not all(_tensor_like(o, e) for o, e in zip(outputs, expected)):
        return problem
    for variant in variants:
        try:
            with torch.no_grad():
                rebuilt = [variant.compute(*prepare(case)) for case in cases]
        except Exception:  # a variant that cannot run on these inputs explains nothing
            continue
        if not all(_tensor_like(r, e) for r, e in zip(rebuilt, expected)):
            continue
        for axis_name, axis in axes:
            for where, rule in RULES:
                if _fits(rule, axis, outputs, expected, rebuilt, atol):
                    place = where.format(axis_name)
                    return fail(problem.exercise, f"{variant.property}, only on {place}",
                                f"On {place} your output is exactly this mistake's; everywhere else it is right. "
                                f"{variant.explanation} Something in your code treats that part differently (a "
                                "loop's first or last pass, an index or a slice).", problem.counterexample,
                                variant.hint)
    return problem


def _tensor_like(out: Any, expected: Any) -> bool:
    return isinstance(out, torch.Tensor) and isinstance(expected, torch.Tensor) and out.shape == expected.shape \
        and out.dtype == expected.dtype and out.dim() > 0
