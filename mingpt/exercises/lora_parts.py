"""
The LoRA checker's readings of slips confined to part of the layer or of its settings (lora.py): a scale row of the
tables confirmed at every (r, alpha) before it is named (at the checker's own setting alpha / r = 2, half the
scale reads as "not scaled"), a correction added at some positions only, and a square base layer, where a transposed
merge (or a product B A used untransposed) gives no shape error and only the values show it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from mingpt.exercises.checking import CheckResult, crashed, fail, fmt
from mingpt.exercises.compare import NOT_RECOGNISED, same, where_it_differs
from mingpt.exercises.loading import build
from mingpt.exercises.lora_merge import _merged_at, merge_scale, weights_of
from mingpt.exercises.lora_mistakes import (ALPHA, HINT, IN, LORA_MERGE_CRASHES, LORA_ORDER_CRASHES, OUT, RANK,
                                            SETTINGS, lora_output)

__all__ = ["FORWARD_SCALES", "MERGE_SCALES", "arguments_swapped", "confirm_merge_scale", "positions_left",
           "square_base"]

# the tables' rows that are a scale at one setting, with the formula of (alpha, r) each one means
FORWARD_SCALES = {"LoRA scaled by the rank instead of alpha / rank": lambda a, r: r,
                  "LoRA scaled by alpha instead of alpha / rank": lambda a, r: a,
                  "LoRA scaled by 1 / rank (alpha left out)": lambda a, r: 1 / r,
                  "LoRA scaled by rank / alpha (the ratio upside down)": lambda a, r: r / a,
                  "the LoRA correction is not scaled": lambda a, r: 1.0}
MERGE_SCALES = {"merge forgets the scale": lambda a, r: 1.0,
                "merge scales by the rank instead of alpha / rank": lambda a, r: r}


def confirm_merge_scale(exercise: str, cls, found: CheckResult, W, A, B, merged) -> CheckResult:
    """found, when its scale row holds at every (r, alpha) of SETTINGS; else the merge's scale read as a formula,
    a fixed number or a multiple of alpha / r (merge_scale), or "not recognised"."""
    formula = MERGE_SCALES.get(found.property)
    if formula is None:
        return found
    scales = [_merged_at(cls, r, a)[0] for r, a in SETTINGS[1:]]
    if all(s is not None and math.isclose(s, formula(a, r), rel_tol=1e-4) for s, (r, a) in zip(scales,
                                                                                                 SETTINGS[1:])):
        return found
    named = merge_scale(exercise, cls, W, A, B, merged)
    if named is not None:
        return named
    return fail(exercise, NOT_RECOGNISED, f"Your merge matches \"{found.property}\" at r={RANK}, alpha={ALPHA} but "
                "not at the other (r, alpha) tried, and no known mistake reproduces every setting.",
                found.counterexample, HINT)


def positions_left(exercise: str, x, out, W, b, A, B) -> CheckResult | None:
    """The positions of x where the correction is missing (your output is base(x) there and the reference's
    elsewhere), named by where they are; None unless every position is exactly one or the other."""
    if not (isinstance(out, torch.Tensor) and out.shape == (*x.shape[:-1], W.shape[0])) or x.dim() != 3:
        return None
    bare, ref = F.linear(x, W, b), lora_output(x, W, b, A, B, ALPHA / RANK)
    left = set()
    for i in range(x.size(0)):
        for t in range(x.size(1)):
            if same(out[i, t], bare[i, t]) and not same(out[i, t], ref[i, t]):
                left.add((i, t))
            elif not same(out[i, t], ref[i, t]):
                return None
    if not left:
        return None
    n, T = x.size(0), x.size(1)
    rows = sorted({i for i, _ in left})
    if left == {(i, t) for i in rows for t in range(T)}:
        where = f"batch row{'s' if len(rows) > 1 else ''} {', '.join(map(str, rows))} (the whole row)"
    elif left == {(i, T - 1) for i in range(n)}:
        where = "the last position of every row"
    elif left == {(i, 0) for i in range(n)}:
        where = "the first position of every row"
    else:
        where = "positions " + ", ".join(f"[{i}, {t}]" for i, t in sorted(left))
    return fail(exercise, f"the LoRA correction is missing at {where}: base(x) only there",
                "Every position of x gets the same layer: base(x) + (alpha / r) B A x. Yours is exactly right at "
                f"some positions and exactly the frozen layer's output (no correction) at {where}: the correction "
                "is added to part of the batch only (an index, a slice or a loop that misses some).",
                f"x of shape {tuple(x.shape)}\n" + where_it_differs(out, ref), "add the correction to the whole "
                "output: self.base(x) + scale * (x @ A.T @ B.T)")


def square_base(exercise: str, cls, n: int = 6) -> CheckResult | None:
    """None when the layer and its merge are right on a square base (n -> n); else which fails. On a square layer
    (B A).T has B A's shape, so a transposed correction raises nothing and only its values are wrong."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        base = nn.Linear(n, n)
    W, b = base.weight.detach().clone(), base.bias.detach().clone()
    gen = torch.Generator().manual_seed(9)
    x, s = torch.randn(2, 3, n, generator=gen), ALPHA / RANK
    try:
        layer = build(cls, base, RANK, ALPHA)
        A, B = weights_of(layer, "lora_A"), weights_of(layer, "lora_B")
        with torch.no_grad():
            A.copy_(torch.randn(A.shape, generator=gen))
            B.copy_(torch.randn(B.shape, generator=gen))
            A0, B0 = A.detach().clone(), B.detach().clone()
            out = layer(x)
    except Exception as e:
        return crashed(exercise, f"{cls.__name__}(nn.Linear({n}, {n}), r={RANK}, alpha={ALPHA}) and its forward", e)
    expected = lora_output(x, W, b, A0, B0, s)
    shown = f"a square base {n}->{n}, r={RANK}, alpha={ALPHA}, x of shape {tuple(x.shape)}"
    if not same(out, expected):
        for v in LORA_ORDER_CRASHES:  # a product that fails on 7 -> 5 but runs on a square layer
            try:
                rebuilt = F.linear(x, W, b) + s * v.compute(x, A0, B0)
            except RuntimeError:
                continue
            if same(out, rebuilt):
                return fail(exercise, f"{v.property}: a square layer hides the shape error", v.explanation,
                            f"{shown}\n" + where_it_differs(out, expected), v.hint)
        return fail(exercise, NOT_RECOGNISED, "Your layer is right on the 7 -> 5 base but not on a square one, and "
                    "no known mistake reproduces it.", f"{shown}\n" + where_it_differs(out, expected), HINT)
    try:
        with torch.no_grad():
            layer.merge()
    except Exception as e:
        return crashed(exercise, f"your layer.merge() on a square base {n}->{n}", e)
    merged, want = base.weight.detach(), W + s * B0 @ A0
    if same(merged, want):
        return None
    for v in LORA_MERGE_CRASHES:
        rebuilt = W + s * (v.compute(W, A0, B0) - W) if v.compute(W, A0, B0).shape == W.shape else None
        if rebuilt is not None and same(merged, rebuilt):
            return fail(exercise, f"{v.property} (a square layer hides the shape error)", v.explanation,
                        f"{shown}: base.weight after merge()\nyours    {fmt(merged, 5)}\nexpected {fmt(want, 5)}",
                        v.hint)
    return fail(exercise, NOT_RECOGNISED, "Your merge is right on the 7 -> 5 base but not on a square one, and no "
                "known mistake reproduces it.", f"{shown}: base.weight after merge()\n"
                + where_it_differs(merged, want), HINT)


def arguments_swapped(exercise: str, cls, problem: CheckResult) -> CheckResult:
    """problem (the constructor raised), or, when the same class builds a layer of the right shapes with r and alpha
    given the other way round, that slip: its __init__ reads (base, alpha, r), not (base, r, alpha)."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        base = nn.Linear(IN, OUT)
    try:
        layer = build(cls, base, ALPHA, RANK)
        A, B = weights_of(layer, "lora_A"), weights_of(layer, "lora_B")
    except Exception:
        return problem
    if A is None or B is None or A.shape != (RANK, IN) or B.shape != (OUT, RANK):
        return problem
    return fail(exercise, "r and alpha taken in the other order: __init__(base, alpha, r)", "The exercise builds "
                f"the layer as {cls.__name__}(base, r, alpha); yours reads the second argument as alpha and the "
                f"third as r, so r = {ALPHA} (a float) is the rank, and the constructor fails. Built with the two "
                "exchanged, your layer has the right shapes.", problem.explanation,
                "def __init__(self, base, r, alpha): the rank first, then alpha")
