"""
The sampling distribution on edge inputs (sampling.py runs the checker): ties, where more than one answer is right,
and large logits, where a right formula can still overflow.

The one idea: the reference fixes one answer, but on ties any tie-break is right (which of two equal tokens fills
the nucleus or the k-th place is arbitrary), so the checker accepts the reference with ties broken the other way
and any exactly-k choice among the tied; likewise, at an exact sum (the mass above a token equal to p), top-p's
decision computed another way (in log space) may round to either side. And a softmax written as exp(x) / sum(exp(x))
agrees with the reference on ordinary logits and returns NaN once a logit divided by the temperature passes about 88
(exp overflows float32 to inf, and inf / inf is NaN); torch's softmax subtracts each row's max first, so the large
logits show the slip. Last, a distribution right up to a factor per row: a step after the softmax (a power such as
p ** (1 / T), a product, a mask) changed the mass and nothing renormalised it; divided by its row sums it is the
reference (or one known slip), which names it exactly. And logits all far below zero, where a removed logit set to
a finite number (-1e4) instead of -inf outranks every kept one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mingpt.exercises.checking import CheckResult, fail, fmt, run
from mingpt.exercises.compare import NOT_RECOGNISED, same, where_it_differs
from mingpt.generation import filter_logits

__all__ = ["reference", "TIE_LOGITS", "ties_other_way", "exactly_k_of_the_tied", "accepted", "large_logits_problem",
           "unnormalised_problem"]

# The logits of the checker's last stage (ties and exact sums): a tie with the k-th largest (top-k keeps all of the
# tied tokens), and float32 logits 0, log(1/2), log(1/4), log(1/4) whose softmax is *exactly* 1/2, 1/4, 1/8, 1/8, so
# that the mass above a token can equal p exactly (with p = 0.5 or 0.75) and a strict comparison shows.
HALF, QUARTER = -0.6931471824645996, -1.3862943649291992
TIE_LOGITS = [torch.tensor([[1.0, 2.0, 1.0, 0.5, 1.0, -1.0], [0.5, 0.5, 3.0, 0.5, 1.0, 2.0]]),
              torch.tensor([[0.0, HALF, QUARTER, QUARTER], [QUARTER, 0.0, QUARTER, HALF]])]


def reference(logits, temperature=1.0, top_k=None, top_p=None):
    return F.softmax(filter_logits(logits / temperature, top_k, top_p), dim=-1)


def ties_other_way(lg, t, k, p):
    """The reference with ties between equal logits broken the other way (by the last index, as an ascending
    sort does): which of several tied tokens fills the nucleus is arbitrary, so either answer is right."""
    return reference(lg.flip(-1), t, k, p).flip(-1)


def exactly_k_of_the_tied(case, out) -> bool:
    """Whether out is top-k's distribution with exactly k tokens kept, the tie at the k-th broken any way: every
    logit above the k-th kept, the rest of the k chosen among those equal to it, softmax over the kept ones."""
    lg, t, k, p = case
    if k is None or p is not None or k >= lg.size(-1) or out.shape != lg.shape:
        return False
    x = lg / t
    kth = torch.topk(x, k, dim=-1).values[:, -1:]
    kept = out > 0
    if not ((kept.sum(-1) == k).all() and (kept | (x <= kth)).all() and (~kept | (x >= kth)).all()):
        return False
    return same(out, F.softmax(x.masked_fill(~kept, float("-inf")), dim=-1))


def top_p_rounded_other_way(case, out) -> bool:
    """Whether each row of out is the reference's, or the reference's with top-p's decision flipped for the tokens
    whose mass above lies within rounding (1e-6) of p. At an exact sum (mass above = p) the same rule computed another
    way (in log space, from 1 - the tail) can land on either side of p; a strict > lands on the far side on *every*
    exact sum, and sampling.py names that slip first when it explains all the outputs."""
    lg, t, k, p = case
    if p is None or not isinstance(out, torch.Tensor) or out.shape != lg.shape:
        return False
    x = filter_logits(lg / t, k, None)
    s, order = x.sort(dim=-1, descending=True)
    probs = s.softmax(-1)
    above = probs.cumsum(-1) - probs
    near = (above - p).abs() <= 1e-6
    flipped = (above >= p) ^ near
    other = F.softmax(x.masked_fill(flipped.scatter(-1, order, flipped), float("-inf")), dim=-1)
    ref = reference(*case)
    return bool(near.any()) and all(same(o, r) or same(o, f) for o, r, f in zip(out, ref, other))


def accepted(case, out, rounding: bool = False) -> bool:
    """Whether out, which differs from the reference, is still right: a tie broken another way, exactly k of the
    tokens tied at the k-th, or (rounding) top-p's decision at an exact sum rounded the other way."""
    return same(out, ties_other_way(*case)) or exactly_k_of_the_tied(case, out) or \
        rounding and top_p_rounded_other_way(case, out)


def _exp_over_sum(lg, t, k, p):
    """The reference's formula with the softmax written out and no max subtracted: exp overflows to inf."""
    e = torch.exp(filter_logits(lg / t, k, p))
    return e / e.sum(-1, keepdim=True)


# Logits of a size a model can give (a sharp, confident row), at temperature 0.5: up to 190 after the division.
LARGE = torch.tensor([[90.0, 88.0, 85.0, 60.0, -20.0], [10.0, 95.0, 94.5, 30.0, 0.0]])
LARGE_CASES = [(LARGE, 0.5, None, None), (LARGE, 0.5, 2, 0.9)]


def large_logits_problem(exercise: str, fn, describe) -> CheckResult | None:
    """None when fn's distributions on large logits are the reference's; else the slip (named when the softmax
    written as exp / sum explains both cases) or where they differ."""
    outputs = []
    for case in LARGE_CASES:
        out, problem = run(exercise, describe(*case), fn, case[0].clone(), *case[1:])
        if problem is not None:
            return problem
        outputs.append(out)
    wrong = [n for n, (case, out) in enumerate(zip(LARGE_CASES, outputs)) if not same(out, reference(*case))]
    if not wrong:
        return _low_logits_problem(exercise, fn, describe)
    case, out = LARGE_CASES[wrong[0]], outputs[wrong[0]]
    expected = reference(*case)
    example = f"{describe(*case)}\nyours    {fmt(out, 6)}\nexpected {fmt(expected, 6)}"
    if all(same(o, _exp_over_sum(*c)) for c, o in zip(LARGE_CASES, outputs)):
        return fail(exercise, "softmax written as exp / sum without subtracting the max: exp overflows on large "
                    "logits (NaN)", "Right on ordinary logits, but exp of a logit above about 88 is inf in float32, "
                    "and inf / inf is NaN. Softmax is unchanged by subtracting each row's max first, which keeps "
                    "every exp at most 1; F.softmax does that for you.", example,
                    "F.softmax(logits, dim=-1), or subtract logits.max(dim=-1, keepdim=True).values before exp")
    return fail(exercise, NOT_RECOGNISED, "Right on ordinary logits, but not on large ones (a confident model's "
                "logits, here up to 190 after the temperature), and no mistake the checker knows explains it.",
                f"{example}\n{where_it_differs(out, expected)}", "compute in a way that cannot overflow: F.softmax")


# The same logits a million lower: softmax only sees differences, so the distributions are LARGE's. But a removed
# logit set to a large *finite* negative number (-1e4, as Hugging Face's old masks; -1e5, TransformerLens' IGNORE;
# -1e9) is then above every kept one (about -2e6 after the temperature), and the removed tokens take all the mass.
LOW_CASES = [(LARGE - 1e6, 0.5, 2, None), (LARGE - 1e6, 0.5, None, 0.9)]


def _finite_fill(lg, t, k, p):
    """The reference with the removed logits set to -1e4: on LOW_CASES, what any fill between about -1.9e6 and the
    top logit gives (the removed tokens share the mass equally, the kept ones underflow to 0)."""
    x = filter_logits(lg / t, k, p)
    return F.softmax(x.masked_fill(x.isinf(), -1e4), dim=-1)


def _low_logits_problem(exercise: str, fn, describe) -> CheckResult | None:
    """None when fn's distributions on very negative logits are the reference's; else the finite fill (named when
    it explains both cases) or where they differ."""
    outputs = []
    for case in LOW_CASES:
        out, problem = run(exercise, describe(*case), fn, case[0].clone(), *case[1:])
        if problem is not None:
            return problem
        outputs.append(out)
    wrong = [n for n, (case, out) in enumerate(zip(LOW_CASES, outputs)) if not same(out, reference(*case))]
    if not wrong:
        return None
    case, out = LOW_CASES[wrong[0]], outputs[wrong[0]]
    expected = reference(*case)
    example = f"{describe(*case)}\nyours    {fmt(out, 6)}\nexpected {fmt(expected, 6)}"
    if all(same(o, _finite_fill(*c)) for c, o in zip(LOW_CASES, outputs)):
        return fail(exercise, "removed logits set to a finite number (such as -1e4 or -1e5), not -inf: they leak when "
                    "the logits are lower still", "Right on ordinary logits, but softmax only sees differences: when "
                    "every logit is far below zero (here about -2e6 after the temperature), a removed token at -1e4 "
                    "is the *most* likely one, and the removed tokens take all the probability. -inf is below "
                    "every logit.", example, "masked_fill(remove, float('-inf'))")
    return fail(exercise, NOT_RECOGNISED, "Right on ordinary logits, but not when every logit is far below zero "
                "(softmax only sees differences, so the answer is that of the same logits a million higher), and no "
                "mistake the checker knows explains it.", f"{example}\n{where_it_differs(out, expected)}",
                "filter with -inf, then F.softmax")


def _row_normalised(out, case):
    """out divided by its row sums, or None where that is no distribution (not a float tensor of the logits' shape,
    a negative or non-finite entry, a row summing to 0)."""
    if not isinstance(out, torch.Tensor) or not out.is_floating_point() or out.shape != case[0].shape:
        return None
    total = out.sum(-1, keepdim=True)
    if not torch.isfinite(out).all() or (out < 0).any() or (total <= 0).any():
        return None
    return out / total


def unnormalised_problem(exercise: str, fn, cases, problem: CheckResult, variants) -> CheckResult:
    """problem, unless it is "not recognised" and some row of fn's outputs does not sum to 1 while every output,
    divided by its row sums, is the reference's (or, for all cases, one of variants': then two mistakes)."""
    if problem.property != NOT_RECOGNISED:
        return problem
    outputs = [run(exercise, "", fn, case[0].clone(), *case[1:])[0] for case in cases]
    scaled = [_row_normalised(out, case) for case, out in zip(cases, outputs)]
    if any(s is None for s in scaled) or all(same(out, s) for out, s in zip(outputs, scaled)):
        return problem
    n = next(n for n, (out, s) in enumerate(zip(outputs, scaled)) if not same(out, s))
    example = f"{_describe(*cases[n])}\nyours    {fmt(outputs[n], 6)}\nexpected {fmt(reference(*cases[n]), 6)}"
    why = ("Divided by its own sum, each of your rows is {}, but the probabilities must sum to 1: a step after the "
           "softmax (a power such as p ** (1 / T), a product, a mask) changed the mass and nothing renormalised it.")
    hint = "finish with the softmax of the filtered logits (temperature, top-k and top-p all act on the logits before)"
    if all(same(s, reference(*case)) for case, s in zip(cases, scaled)):
        return fail(exercise, "rows do not sum to 1: the right distribution times a factor (not normalised)",
                    why.format("the right distribution"), example, hint)
    for v in variants:
        try:
            if all(same(s, v.compute(*case)) for case, s in zip(cases, scaled)):
                return fail(exercise, f"two mistakes: {v.property}; and the rows do not sum to 1 (not normalised)",
                            f"{why.format('the distribution of this slip')} {v.explanation}", example,
                            f"{v.hint}; {hint}")
        except Exception:  # a variant that cannot run on a case explains nothing
            continue
    return problem


def _describe(lg, t, k, p) -> str:
    return f"logits = {lg.tolist()}, temperature={t}, top_k={k}, top_p={p}"
