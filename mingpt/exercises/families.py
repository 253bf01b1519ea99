"""
Mistakes with a number in them: a hand-written GELU with 0.04715 for 0.044715, x * sigmoid(2x) for SiLU, the mean
square raised to the power 1/4 instead of 1/2, a mask that keeps only the last 3 keys. A table can list a few
values; a student can type any.

The one idea: such mistakes form a *family*, the reference's formula with one free number. Instead of listing
values, the checker fits the number: it searches the value that makes the family reproduce the student's output on
the first tested input (a grid, then a narrowing search around the best point), and names the mistake, with the
value, only when that one value reproduces *every* tested input within the checker's tolerance (compare.py's rule).
A value equal to the reference's own is no mistake and is never named.

    from mingpt.exercises.families import Family, refine
    beta = Family("SiLU with beta {value} (x * sigmoid({value} x))", lambda b: lambda x: x * torch.sigmoid(b * x),
                  "why", "hint", lo=0.1, hi=10, correct=1.0, log=True)
    problem = refine(problem, fn, cases, [beta])   # a "not recognised" result named when the family fits
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from mingpt.exercises.checking import CheckResult, Variant, fail
from mingpt.exercises.compare import NOT_RECOGNISED, same
from mingpt.exercises.relations import LOW_PRECISION

__all__ = ["Family", "fit", "refine"]


@dataclass
class Family:
    """The reference's formula with one free number; "{value}" in the texts is replaced by the fitted number."""

    property: str
    compute: Callable[[float], Callable[..., Any]]  # value -> a function of one case, like a Variant's compute
    explanation: str
    hint: str
    lo: float
    hi: float
    correct: float  # the reference's value: no mistake there
    log: bool = False  # search on a log scale (factors, betas, epsilons)
    integer: bool = False  # try every whole number from lo to hi (a window width)


# The search's cost is the number of times the family's formula runs: a grid fine enough that the valley around
# the student's number is never stepped over (a family's error is smooth in its number, on a log scale for factors
# and epsilons), then ternary steps until the bracket is far below any tolerance ((2/3)^50 of two grid steps).
GRID_STEPS = 100
NARROWING_STEPS = 50


def _error(family: Family, value: float, case: tuple, out: torch.Tensor) -> float:
    try:
        got = family.compute(value)(*case)
        return float((got.detach().double() - out.detach().double()).abs().max()) if got.shape == out.shape \
            else math.inf
    except Exception:
        return math.inf


def _scale(family: Family) -> tuple[Callable[[float], float], Callable[[float], float]]:
    """(to, back): the search runs on a log scale for factors and epsilons, else on the numbers themselves."""
    return (math.log, math.exp) if family.log else (lambda v: v, lambda v: v)


def _narrow(error: Callable[[float], float], a: float, b: float) -> float:
    """The minimum of error in [a, b] by ternary search: the error is one smooth valley near its minimum."""
    for _ in range(NARROWING_STEPS):
        m1, m2 = a + (b - a) / 3, b - (b - a) / 3
        a, b = (a, m2) if error(m1) < error(m2) else (m1, b)
    return (a + b) / 2


def _roundings(value: float) -> list[float]:
    """The number as the student most likely typed it: the shortest rounding that fits as well is tried first."""
    return [float(f"{value:.{digits}g}") for digits in (1, 2, 3, 4)] + [value]


def _candidates(family: Family, case: tuple, out: Any) -> list[float]:
    """The values to verify: every whole number, or the best point of a grid narrowed by a ternary search."""
    if family.integer:
        return [float(v) for v in range(int(family.lo), int(family.hi) + 1)]
    if not isinstance(out, torch.Tensor) or not out.is_floating_point():
        return []
    to, back = _scale(family)
    lo, hi = to(family.lo), to(family.hi)
    grid = [lo + i * (hi - lo) / GRID_STEPS for i in range(GRID_STEPS + 1)]
    errors = [_error(family, back(u), case, out) for u in grid]
    best = min(range(len(grid)), key=errors.__getitem__)
    if math.isinf(errors[best]):
        return []
    a, b = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
    return _roundings(back(_narrow(lambda u: _error(family, back(u), case, out), a, b)))


def _polished(family: Family, value: float, cases: Sequence[tuple], outputs: Sequence[Any]) -> float:
    """A value that fits every case, found on one: narrowed again on all cases at once. On the case it was fitted
    on the number may barely matter (eps on large activations), so anything near it fits there; the case where it
    matters most pins it down (sqrt(1e-5) = 0.0031623 shown as 0.003162, not 0.003163)."""
    to, back = _scale(family)
    step = 2 * (to(family.hi) - to(family.lo)) / GRID_STEPS
    a, b = max(to(value) - step, to(family.lo)), min(to(value) + step, to(family.hi))
    return back(_narrow(lambda u: max(_error(family, back(u), c, o) for c, o in zip(cases, outputs)), a, b))


def _fits(family: Family, value: float, cases: Sequence[tuple], outputs: Sequence[Any], atol: float) -> bool:
    if math.isclose(value, family.correct, rel_tol=1e-4, abs_tol=1e-9):  # the reference's own number: no mistake
        return False
    f = family.compute(value)
    try:
        return all(same(out, f(*case), atol) for case, out in zip(cases, outputs))
    except Exception:
        return False


def fit(family: Family, cases: Sequence[tuple], outputs: Sequence[Any], atol: float) -> Variant | None:
    """The family's variant at the value that reproduces every output (within atol), or None. Fitted on each case in
    turn (the number may barely matter on one input, as eps on large activations), verified on all of them."""
    tried: list[float] = []
    for value in (v for case, out in zip(cases, outputs) for v in _candidates(family, case, out)):
        if any(math.isclose(value, t, rel_tol=1e-9) for t in tried):
            continue
        tried.append(value)
        if not _fits(family, value, cases, outputs, atol):
            continue
        if not family.integer:  # the value as read off every case together, in its shortest form that fits
            value = next((v for v in _roundings(_polished(family, value, cases, outputs))
                          if _fits(family, v, cases, outputs, atol)), value)
        shown = f"{int(value)}" if family.integer else f"{value:.4g}"
        return Variant(family.property.format(value=shown), family.compute(value),
                       family.explanation.format(value=shown), family.hint.format(value=shown))
    return None


def refine(problem: CheckResult | None, fn: Callable, cases: Sequence[tuple], families: Sequence[Family],
           atol: float = 1e-5, prepare: Callable[[tuple], tuple] = lambda case: case) -> CheckResult | None:
    """problem as it is, unless it is "not recognised" (or only "right to three digits", which a constant slightly
    off also gives) and a family fits every output: then that family's name, with the same counter-example. fn is
    run again on fresh copies of the cases (prepare)."""
    if problem is None or problem.passed or problem.property not in (NOT_RECOGNISED, LOW_PRECISION):
        return problem
    try:
        with torch.no_grad():
            outputs = [fn(*prepare(case)) for case in cases]
    except Exception:
        return problem
    for family in families:
        variant = fit(family, cases, outputs, atol)
        if variant is not None:
            return fail(problem.exercise, variant.property, variant.explanation, problem.counterexample,
                        variant.hint)
    return problem
