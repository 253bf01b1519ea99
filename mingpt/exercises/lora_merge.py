"""
The LoRA checker's reading of a merge() whose scale is wrong (lora.py): when the forward is right and the merged
weight is exactly W + s B A for some other number s, the merge's scale is read off at every (r, alpha) of SETTINGS and
named as a formula of alpha and r (the same formulas as the forward's, SCALE_FORMULAS), or as a fixed number. Read at
one setting only, a scale of 4 = (alpha / r)^2 is also "2 * the reference minus W", an affine relation that names a
forward's mistake (the input mixed into the output), which is not what a merge does wrong.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from mingpt.exercises.checking import CheckResult, fail, fmt
from mingpt.exercises.compare import same
from mingpt.exercises.loading import build
from mingpt.exercises.lora_mistakes import IN, OUT, SCALE_FORMULAS, SETTINGS

__all__ = ["merge_scale", "weights_of"]


def weights_of(module: nn.Module, name: str) -> torch.Tensor | None:
    """A LoRA factor as a tensor: an nn.Parameter (the exercise's) or the weight of an nn.Linear (PEFT's)."""
    value = getattr(module, name, None)
    return value.weight if isinstance(value, nn.Linear) else value if isinstance(value, torch.Tensor) else None


def _scale(merged: torch.Tensor, W: torch.Tensor, delta: torch.Tensor) -> float | None:
    """s when merged == W + s * delta (delta = B A) within rounding, else None."""
    if not isinstance(merged, torch.Tensor) or merged.shape != W.shape or not delta.any():
        return None
    s = float(((merged - W) * delta).sum() / (delta * delta).sum())  # least squares, exact when the form holds
    return s if same(merged, W + s * delta, 1e-4) else None


def _merged_at(cls, r: int, alpha: float) -> tuple[float | None, float]:
    """(the merge's scale, or None when it is not of the form W + s B A or the layer fails, alpha / r)."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        base = nn.Linear(IN, OUT)
    W = base.weight.detach().clone()
    try:
        layer = build(cls, base, r, alpha)
        A, B = weights_of(layer, "lora_A"), weights_of(layer, "lora_B")
        gen = torch.Generator().manual_seed(10 + r)
        with torch.no_grad():
            A.copy_(torch.randn(A.shape, generator=gen))
            B.copy_(torch.randn(B.shape, generator=gen))
            delta = B.detach() @ A.detach()
        layer.merge()
    except Exception:  # a layer that cannot run at this setting names no formula
        return None, alpha / r
    return _scale(base.weight.detach(), W, delta), alpha / r


def merge_scale(exercise: str, cls, W, A, B, merged) -> CheckResult | None:
    """The merge's wrong scale named (as a formula of alpha and r, or a fixed number) when merged == W + s B A at the
    checker's setting and at every other one; None when the merged weight is not of that form, or no formula fits."""
    r, alpha = SETTINGS[0]
    s = _scale(merged, W, B @ A)
    if s is None or math.isclose(s, alpha / r, rel_tol=1e-4):
        return None
    scales = [s] + [_merged_at(cls, r, a)[0] for r, a in SETTINGS[1:]]
    if None in scales:
        return None
    example = f"base.weight after merge() is W + s (B A) with s = {s:.4g} at r={r}, alpha={alpha} (alpha / r = " \
              f"{alpha / r:.4g}); at the other (r, alpha) tried, s = {', '.join(f'{t:.4g}' for t in scales[1:])}\n" \
              f"yours    {fmt(merged, 5)}\nexpected {fmt(W + alpha / r * B @ A, 5)}"
    why = " Your forward adds the correction scaled by alpha / r, so the merged layer computes something else than " \
          "the layer before merging."
    for name, formula, reason in SCALE_FORMULAS:
        if all(math.isclose(t, formula(a, r), rel_tol=1e-4) for t, (r, a) in zip(scales, SETTINGS)):
            return fail(exercise, "merge(): " + name, reason + why, example, "merge adds self.scale * (B @ A), the "
                        "forward's own scale, once")
    ratios = [t * r / a for t, (r, a) in zip(scales, SETTINGS)]  # a stray factor times the right scale
    if all(math.isclose(c, ratios[0], rel_tol=1e-4) for c in ratios):
        return fail(exercise, f"merge() scales the correction by {ratios[0]:.4g} * alpha / r (a stray factor "
                    f"{ratios[0]:.4g})", f"Your merge adds {ratios[0]:.4g} * (alpha / r) B A at every (r, alpha) "
                    "tried: alpha and r are read right, and a constant multiplies them." + why, example,
                    "merge adds self.scale * (B @ A), the forward's own scale, once")
    if all(math.isclose(t, scales[0], rel_tol=1e-4) for t in scales):
        return fail(exercise, f"merge() scales the correction by a fixed {scales[0]:.4g}, not alpha / r",
                    f"Your merge adds {scales[0]:.4g} B A at every (r, alpha) tried." + why, example,
                    "merge adds self.scale * (B @ A), with scale = alpha / r")
    return None
