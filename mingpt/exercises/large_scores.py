"""
Large attention scores: two slips that ordinary inputs never show. A softmax written as exp(s) / sum(exp(s)) is
exact until a score passes ~88, where float32's exp overflows to inf and the row becomes inf / inf = NaN (torch's
softmax subtracts the row's maximum first). A mask that writes a finite number (-1e4, fp16's -65504) instead of
-inf hides the future only while the visible scores stay far above it.

The one idea: after a pass on ordinary inputs, run once more on inputs scaled up (scores in the tens of thousands)
and name a slip only when the reference rebuilt with it (knobs fill= and normalise='naive' of the exercise's own
reference) reproduces the student's output there while the reference does not; otherwise stay silent, since
float32 rounding at that scale is no one's mistake.
"""

from __future__ import annotations

from typing import Callable

import torch

from mingpt.exercises.checking import CheckResult, fail, fmt

__all__ = ["LARGE_SCORE_SLIPS", "large_score_slip"]

NAIVE = ("softmax written as exp / sum without subtracting the max (overflows on large scores)",
         "exp of a score above ~88 is inf in float32, so a row with a large score becomes inf / inf = NaN; "
         "F.softmax subtracts each row's maximum first, which changes nothing mathematically and never overflows.",
         "F.softmax(scores, dim=-1), or subtract scores.amax(-1, keepdim=True) before the exp")
LARGE_SCORE_SLIPS = [({"normalise": "naive"}, *NAIVE)] + [
    ({"fill": fill}, "masked scores set to a finite number instead of -inf (large scores outweigh it)",
     f"A future key gets a finite score ({fill:g} reproduces yours): once the visible scores of a row are far below "
     "it (large inputs), the masked keys win the softmax and the future leaks in; -inf gives them weight exactly 0 "
     "at any scale.",
     "masked_fill(..., float('-inf'))") for fill in (-1e4, -65504.0, -1e5, -1e3, -1e6, -100.0)]


def large_score_slip(exercise: str, student: Callable, reference: Callable, args: tuple,
                     describe: str) -> CheckResult | None:
    """reference(*args, **knobs) rebuilds the exercise with a slip's knobs; args are inputs with large scores."""
    try:
        out = student(*args)
        want = reference(*args)
    except Exception:
        return None
    tol = 1e-3 * float(want.abs().max())

    def near(a, b):
        return isinstance(a, torch.Tensor) and a.shape == b.shape and torch.allclose(
            a.double(), b.double(), rtol=1e-3, atol=tol, equal_nan=True)
    if near(out, want):
        return None
    for knobs, name, why, hint in LARGE_SCORE_SLIPS:
        try:
            if near(out, reference(*args, **knobs)):
                nan = int(torch.isnan(out).sum())
                return fail(exercise, name, why, f"{describe}\nyours    {fmt(out)}" + (f" ({nan} NaN values)" if nan
                            else "") + f"\nexpected {fmt(want)}", hint)
        except Exception:
            continue
    return None


def future_weight_slip(exercise: str, student: Callable, cases: list[tuple], describe: Callable) -> CheckResult | None:
    """Weights right within tolerance, yet a future key gets a weight that is not exactly 0. A score of -inf gives
    exp(-inf) = 0 exactly, and so does any fill far below the row (-1e9, even -1e4 on ordinary scores: exp underflows
    to 0 in float32), so a nonzero future weight is a leak however small: a fill only a little below the row's scores
    (e.g. its minimum or maximum minus a margin), or a small number added to the weights."""
    for case in cases:
        try:
            out = student(*case)
        except Exception:
            return None
        T = case[0].size(-2)
        if not isinstance(out, torch.Tensor) or out.shape[-2:] != (T, T):
            return None
        leak = out.detach().double().masked_select(torch.ones(T, T, dtype=torch.bool).triu(1).expand(out.shape))
        leak = leak[leak.isfinite()]  # a NaN row is another matter (a renormalised row of zeros), not a leak
        if leak.numel() and bool((leak != 0).any()):
            return fail(exercise, "future keys get a small nonzero weight (a finite mask fill, not -inf?)",
                        "Your weights are within tolerance of the reference's, but some future keys get a weight "
                        "that is not exactly 0: the mask sets their scores to a finite number not far enough below "
                        "the row (or something is added to the weights), so a little of the future leaks in, more "
                        "where the scores are spread out.", f"{describe(*case)}\nlargest future weight "
                        f"{leak.abs().max().item():.3g} (expected exactly 0)", "masked_fill(..., float('-inf'))")
    return None
