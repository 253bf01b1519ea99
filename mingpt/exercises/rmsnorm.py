"""
Checking a student's RMSNorm, the first of Llama's four parts (modern.py has the checkers of all four and re-exports
this one). The reference is nn.RMSNorm's formula, x / sqrt(mean(x^2, last axis) + eps) * weight.

The one idea, as in every checker (compare.py): rebuild each known mistake and name it only when it reproduces the
student's output on every tested input. Most mistakes are one keyword of `_rms`, the reference with a knob per
mistake (which axis, the square, where eps goes, the centring of LayerNorm, the gain), so two of them can also be
rebuilt *together* (compose.py): LayerNorm with torch.var's unbiased default is named as both slips. Mistakes with a
free number (the mean square to the power 1/4) are fitted (families.py).

    from mingpt.exercises import check_rmsnorm
    check_rmsnorm(rms_norm)      # rms_norm(x (B, T, C), weight (C,), eps) -> (B, T, C)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from mingpt.exercises.checking import CheckResult, Variant
from mingpt.exercises.compare import check_cases
from mingpt.exercises.compose import knob, pairs
from mingpt.exercises.families import Family, refine
from mingpt.exercises.gradients import function_gradient_problem
from mingpt.exercises.partial import localise

__all__ = ["check_rmsnorm", "RMSNORM_MISTAKES", "rms_norm_reference"]


def _randn(seed: int, *shape: int, scale: float = 1.0) -> torch.Tensor:
    return scale * torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _rms(x, w, eps, dim=(-1,), square=True, eps_inside=True, power=0.5, mean=True, gain="times", fixed_eps=None,
         absolute=False, mean_first=False, centre=False, centre_stat=False, unbiased=False, eps_clamp=False,
         over_C=False, eps_squared=False):
    """The reference with one knob per mistake (defaults: correct); power=1.0 is the root left out. absolute: |x|
    measured; eps_inside="both": eps under the root and after it; mean_first: the mean taken before squaring;
    centre: LayerNorm's x - mean (centre_stat: only inside the statistic, as x.var() does); unbiased: divided by
    C - 1; eps_clamp: max(rms, eps), as F.normalize does; over_C: the sum over `dim` divided by C whatever axes it
    runs over (Python's built-in sum() on a tensor adds along the first axis, the batch, and the student divides by
    C as for the mean over channels); eps_squared: eps ** 2 under the root (eps read as a standard deviation)."""
    eps = eps if fixed_eps is None else fixed_eps
    eps = eps ** 2 if eps_squared else eps
    if gain == "before":  # the gain applied first: normalising then undoes it
        x = x * w
    s = x.abs() if absolute else x
    if centre or centre_stat:
        s = s - s.mean(dim=dim, keepdim=True)
    if mean_first:
        ms = s.mean(dim=dim, keepdim=True)
        ms = ms.square() if square else ms
    else:
        s = s.square() if square else s
        if not mean:
            ms = s.sum(dim=dim, keepdim=True)
        elif over_C:
            ms = s.sum(dim=dim, keepdim=True) / x.shape[-1]
        elif unbiased:
            ms = s.sum(dim=dim, keepdim=True) / (math.prod(s.shape[d] for d in dim) - 1)
        else:
            ms = s.mean(dim=dim, keepdim=True)
    num = x - x.mean(dim=dim, keepdim=True) if centre else x
    if eps_clamp:
        y = num / (ms ** power).clamp_min(eps)
    else:
        y = num / ((ms + eps) ** power + (eps if eps_inside == "both" else 0.0)) if eps_inside \
            else num / (ms ** power + eps)
    return {"times": y * w, "none": y, "plus": y + w, "one_plus": y * (1 + w), "before": y, "twice": y * w * w}[gain]


def rms_norm_reference(x, weight, eps):
    """x / sqrt(mean(x^2 over the channels) + eps) * weight: the formula of nn.RMSNorm and Llama's."""
    return _rms(x, weight, eps)


_PER_POSITION = ("Each position is normalised on its own: the mean square is over the last axis (the C channels of one "
                 "token); yours averages over {}, so a token's scale depends on other tokens.")
_RMS_KNOBS = [
    ("RMS over the time axis instead of the channels", dict(dim=(1,)), _PER_POSITION.format("the positions"),
     "mean over dim=-1, keepdim=True"),
    ("RMS over the whole tensor", dict(dim=(0, 1, 2)), "The mean square is per position (over the last axis), not "
     "one number for the whole batch.", "mean over dim=-1, keepdim=True"),
    *[(f"RMS over the wrong axes ({name})", dict(dim=d), _PER_POSITION.format(name), "mean over dim=-1, keepdim=True")
      for d, name in (((0,), "the batch"), ((0, 1), "batch and time"), ((1, 2), "time and channels"),
                      ((0, 2), "batch and channels"))],
    ("Python's sum() on a tensor: it adds over the first axis (the batch), not the channels",
     dict(dim=(0,), over_C=True), "The built-in sum() iterates a tensor along its first axis, so sum(x * x) adds the "
     "squares of the batch's rows, a (T, C) tensor, not each position's channels.",
     "x.pow(2).mean(dim=-1, keepdim=True), a torch reduction with its dim"),
    ("mean instead of mean square", dict(square=False),
     "RMS is the root of the mean of x^2; yours takes the root of the mean of x (NaN when it is negative).",
     "x.pow(2).mean(-1, keepdim=True)"),
    ("eps outside the square root", dict(eps_inside=False),
     "Llama (and nn.RMSNorm) add eps under the root: x / sqrt(mean(x^2) + eps); yours adds it after "
     "(sqrt(mean(x^2)) + eps), which differs for small activations.", "sqrt(mean + eps)"),
    ("eps squared under the root (eps ** 2)", dict(eps_squared=True),
     "eps is added to the mean square as it is: x / sqrt(mean(x^2) + eps); yours adds eps ** 2, as if eps were a "
     "standard deviation, which is far smaller.", "sqrt(mean(x^2) + eps)"),
    ("eps both under the square root and added after it", dict(eps_inside="both"),
     "eps goes under the root only: x / sqrt(mean(x^2) + eps); yours also adds it to the root, so eps counts twice.",
     "sqrt(mean + eps), nothing added after"),
    ("weight missing", dict(gain="none"),
     "The normalised vector is multiplied by the learned per-channel weight (the gain).", "* weight"),
    ("square root missing", dict(power=1.0),
     "Divide by the *root* of the mean square, so the output has RMS 1 (times the weight).", "sqrt or rsqrt"),
    ("sum of squares instead of the mean", dict(mean=False),
     "The mean square divides the sum by C; without it the output's size shrinks with the width.", ".mean, not .sum"),
    ("weight applied twice (times weight ** 2)", dict(gain="twice"),
     "The normalised vector is multiplied by the weight once; yours multiplies by it twice.", "* weight, once"),
    ("weight added instead of multiplied", dict(gain="plus"),
     "The weight is a per-channel gain: it multiplies the normalised x.", "* weight, not + weight"),
    *[(f"eps argument ignored ({e:g} hard-coded)", dict(fixed_eps=e),
       f"Your output is right for eps = {e:g} whatever eps is passed: use the argument.", "+ eps, the argument")
      for e in (1e-5, 1e-6)],
    ("eps left out (none added, or a negligible one hard-coded)", dict(fixed_eps=0.0),
     "Your output is right for eps = 0 whatever eps is passed: the eps argument is never added under the root.",
     "+ eps, the argument"),
    ("eps not passed (F.rms_norm's default: float32's machine epsilon, 1.19e-07)",
     dict(fixed_eps=torch.finfo(torch.float32).eps), "With eps=None, F.rms_norm uses torch.finfo(x.dtype).eps, not "
     "the eps argument; your output matches that default whatever eps is passed.", "F.rms_norm(x, (C,), weight, eps)"),
    ("Gemma's (1 + weight) gain", dict(gain="one_plus"),
     "Gemma stores the gain as an offset from 1; Llama multiplies by the weight itself.", "* weight"),
    # as knobs (not whole formulas) so that each also combines with the other slips (compose.pairs)
    *[(f"variance{how} instead of mean square", dict(centre_stat=True, unbiased=u),
       "x.var() subtracts the mean before squaring; RMSNorm's mean square does not.", "x.pow(2).mean(-1)")
      for u, how in ((False, ""), (True, " (unbiased, N - 1: torch.var's default)"))],
    ("LayerNorm instead of RMSNorm (the mean subtracted)", dict(centre=True),
     "RMSNorm does not centre: it only divides by the root mean square. Subtracting the mean is LayerNorm.",
     "no x - mean"),
    ("mean square divided by C - 1 (unbiased) instead of C", dict(unbiased=True),
     "The mean square divides the sum of squares by the number of channels C, not C - 1.", "x.pow(2).mean(-1)"),
    ("square of the mean instead of the mean of squares", dict(mean_first=True),
     "RMS squares each channel first, then averages: mean(x^2); yours averages first, mean(x)^2.",
     "x.pow(2).mean(-1, keepdim=True)"),
    ("mean absolute value instead of the root mean square", dict(absolute=True, mean_first=True),
     "RMS is sqrt(mean(x^2)); the mean of |x| is another (smaller) measure of size.",
     "x.pow(2).mean(-1, keepdim=True), then the root"),
    ("mean of |x| under the root instead of the mean square", dict(absolute=True, square=False),
     "RMS is sqrt(mean(x^2)): the square, not the absolute value, goes under the root.",
     "x.pow(2).mean(-1, keepdim=True)"),
    ("multiplied by the RMS instead of divided by it (x / rsqrt(...))", dict(power=-0.5),
     "torch.rsqrt is already 1 / sqrt: multiply by it (x * rsqrt(ms + eps)), or divide by torch.sqrt.",
     "x * torch.rsqrt(ms + eps), or x / torch.sqrt(ms + eps)"),
    ("weight applied before normalising (it cancels out)", dict(gain="before"),
     "Normalise x first, then multiply by the gain: normalising x * weight divides most of the weight away again.",
     "x * rsqrt(mean(x^2) + eps) * weight"),
    ("eps as a lower bound (max(rms, eps)) instead of added under the root", dict(eps_clamp=True),
     "eps is added to the mean square under the root; clamping the root at eps (as F.normalize does) differs "
     "wherever eps matters.", "sqrt(mean(x^2) + eps)"),
    ("F.normalize (the L2 norm) instead of the RMS: too small by sqrt(C)", dict(mean=False, eps_clamp=True),
     "F.normalize divides by the length of the vector, sqrt(sum(x^2)); the RMS is sqrt(mean(x^2)), sqrt(C) times "
     "smaller, and eps goes under the root.", "x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)"),
]
_RMS_SINGLES = [knob(_rms, *row) for row in _RMS_KNOBS]
RMSNORM_MISTAKES = _RMS_SINGLES + [
    Variant("LayerNorm instead of RMSNorm (the mean subtracted)",
            lambda x, w, eps: F.layer_norm(x, x.shape[-1:], w, None, eps),
            "RMSNorm does not centre: it only divides by the root mean square. Subtracting the mean is LayerNorm.",
            "no x - mean"),
    Variant("mean square without keepdim=True", lambda x, w, eps: x / torch.sqrt(x.pow(2).mean(-1) + eps) * w,
            "A mean square of shape (B, T) does not line up with x (B, T, C): broadcasting matches the last axes, "
            "T against C.", "x.pow(2).mean(-1, keepdim=True): shape (B, T, 1)"),
    Variant("divided by the largest |x| (max norm) instead of the root mean square",
            lambda x, w, eps: x / (x.abs().amax(-1, keepdim=True) + eps) * w,
            "RMS is sqrt(mean(x^2)) over the channels; the largest |x| is another measure of size.",
            "x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)"),
    Variant("mean absolute value instead of the root mean square",
            lambda x, w, eps: x / (x.abs().mean(-1, keepdim=True) + eps) * w,
            "RMS is sqrt(mean(x^2)); the mean of |x| is another (smaller) measure of size.",
            "x.pow(2).mean(-1, keepdim=True), then the root"),
]
NOT_NORMALISED = Variant("not normalised (only the weight applied)", lambda x, w, eps: x * w,
                         "Every position is divided by its own root mean square before the weight.",
                         "x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight, for every position")
RMS_FAMILIES = [  # fitted when no table row explains the output (families.py)
    # any eps typed in instead of the argument (Keras' 1e-3, 1e-8, ...): the cases' eps differ, so one fitted value
    # reproduces them all only when the argument is ignored (correct=-1: no fixed value is the reference's)
    Family("eps argument ignored ({value} hard-coded)", lambda e: lambda x, w, eps: _rms(x, w, eps, fixed_eps=e),
           "Your output is right for eps = {value} whatever eps is passed: use the argument.", "+ eps, the argument",
           lo=1e-10, hi=1.0, correct=-1.0, log=True),
    Family("mean square raised to the power {value} instead of 1/2 (the root)",
           lambda p: lambda x, w, eps: _rms(x, w, eps, power=p),
           "RMSNorm divides by (mean(x^2) + eps) ** 0.5; yours by the power {value}.", "torch.rsqrt(ms + eps)",
           lo=0.05, hi=3.0, correct=0.5),
]


def check_rmsnorm(fn, seed: int = 0) -> CheckResult:
    """Check rms_norm(x (B, T, C), weight (C,), eps) -> x / sqrt(mean(x^2, last axis) + eps) * weight."""
    exercise = "RMSNorm"
    cases = [(_randn(seed, 2, 5, 6), 1 + _randn(seed + 1, 6, scale=0.3), 1e-5),
             (_randn(seed + 2, 1, 4, 7, scale=0.05) + 0.02, 1 + _randn(seed + 3, 7, scale=0.3), 0.1),
             (_randn(seed + 4, 3, 2, 5, scale=3.0), _randn(seed + 5, 5), 0.5),
             # float64 in, float64 out: an x.float() that is never cast back shows only on another dtype
             (_randn(seed + 6, 2, 4, 8).double(), 1 + _randn(seed + 7, 8, scale=0.3).double(), 1e-3)]
    prepare = lambda c: (c[0].clone(), c[1].clone(), c[2])  # noqa: E731
    problem = check_cases(exercise, fn, cases, rms_norm_reference, RMSNORM_MISTAKES + pairs(_rms, _RMS_SINGLES),
                          lambda x, w, eps: f"x of shape {tuple(x.shape)}, weight of shape {tuple(w.shape)}, "
                                            f"eps={eps}", prepare=prepare, precision=True)
    problem = refine(problem, fn, cases, RMS_FAMILIES, prepare=prepare)
    # a slip on one batch row, one position or some channels only (partial.py)
    problem = localise(problem, fn, cases, rms_norm_reference, RMSNORM_MISTAKES + [NOT_NORMALISED],
                       [("batch row", 0), ("position", 1), ("channel", -1)], prepare)
    if problem is None:  # right outputs: are the gradients right too?
        problem = function_gradient_problem(exercise, fn, rms_norm_reference, cases[0], "x (2, 5, 6)")
    if problem is not None:  # a failed CheckResult is falsy: `problem or ...` would hide it
        return problem
    return CheckResult(exercise, True, checked=["same output as nn.RMSNorm's formula on 4 inputs (one float64)",
                                                           "per position, eps under the root, weight applied"])
