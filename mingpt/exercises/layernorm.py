"""
Checking a student's LayerNorm: normalise each position's C channels to mean 0 and variance 1, then scale and
shift by learned gain and bias.

The one idea: three inputs reveal almost every LayerNorm mistake. Ordinary random activations catch the wrong
axis, a missing gain/bias and the unbiased (n - 1) variance; activations with a *tiny* variance make epsilon
dominate, so epsilon outside the square root or missing altogether shows; a constant row (variance exactly 0)
turns a missing epsilon into 0 / 0 = NaN.

    from mingpt.exercises import check_layernorm
    check_layernorm(MyLayerNorm)          # MyLayerNorm(ndim, eps=1e-5, bias=True); forward(x)
"""

from __future__ import annotations

import re

import torch
import torch.nn as nn
import torch.nn.functional as F

from mingpt.exercises.checking import CheckResult, Variant, close, crashed, fail, fmt
from mingpt.exercises.loading import build, load_reference_weights, names_differ, student_with_reference_weights
from mingpt.exercises.compare import (NOT_RECOGNISED, TYPE_HINT, reports_in_place_edits, same, shape_problem,
                                      where_it_differs)
from mingpt.exercises.compose import knob, pairs
from mingpt.exercises.families import Family, fit
from mingpt.exercises.gradients import gradient_problem
from mingpt.exercises.partial import localise
from mingpt.exercises.state import module_state_problem
from mingpt.exercises.relations import permuted, relation

__all__ = ["check_layernorm"]

EXERCISE = "LayerNorm"
EPS = 1e-5  # GPT-2's epsilon


def _norm(ln, x, unbiased=False, eps_outside=False, eps=EPS, dims=(-1,), affine=True, center=True, root=True,
          spread="std", count=0, var_dims=None):
    """The reference LayerNorm with one knob per classic mistake (defaults: correct)."""
    mean = x.mean(dim=dims, keepdim=True) if center else 0.0
    var = ((x - mean) ** 2).mean(dim=dims, keepdim=True) if not unbiased else x.var(dim=dims, keepdim=True)
    if count:  # the summed squares divided by n + count (n - 1 is torch.var's default; n + 1 a cousin)
        var = ((x - mean) ** 2).sum(dim=dims, keepdim=True) / (x.shape[-1] + count)
    if var_dims is not None:  # the mean over the channels, but the variance over other axes (around their mean)
        var = ((x - x.mean(dim=var_dims, keepdim=True)) ** 2).mean(dim=var_dims, keepdim=True)
    if center == "median":  # centred by the median instead of the mean (the variance still around the mean)
        mean = x.median(dim=-1, keepdim=True).values
    if spread == "l2":  # the L2 norm of the centred row: sqrt(C) times the standard deviation
        var = ((x - mean) ** 2).sum(dim=dims, keepdim=True)
    if spread == "raw":  # the mean square of x itself, not of x - mean
        var = (x ** 2).mean(dim=dims, keepdim=True)
    y = (x - mean) / (var.sqrt() + eps) if eps_outside else (x - mean) / ((var + eps) ** (0.5 if root else 1.0))
    if root == "twice":  # the root of the standard deviation: sqrt(std + eps), x.std() then a torch.sqrt
        y = (x - mean) / (var.sqrt() + eps).sqrt()
    if center == "numerator":  # the variance taken around the mean, but x itself divided: the mean stays in
        y = x / (var + eps).sqrt()
    if eps_outside == "both":  # a fix half made: eps moved inside the root and also kept outside
        y = (x - mean) / ((var + eps).sqrt() + eps)
    if spread == "none":  # centred only: never divided by the spread
        y = x - mean
    if spread == "abs":  # the mean absolute deviation instead of the standard deviation
        y = (x - mean) / ((x - mean).abs().mean(dim=dims, keepdim=True) + eps)
    if affine == "swapped":  # the gain used as the bias and the bias as the gain
        return y * ln.bias + ln.weight
    if affine == "minus":  # the bias subtracted
        return y * ln.weight - ln.bias
    if affine == "bias_first":  # the bias added before the gain multiplies
        return (y + ln.bias) * ln.weight
    if affine == "bias_only":
        return y + ln.bias
    if affine == "one_plus":  # Gemma's RMSNorm stores the gain as an offset from 1: y * (1 + weight)
        return y * (1 + ln.weight) + ln.bias
    return y * ln.weight + ln.bias if affine else y


def _variants(ln) -> list[Variant]:
    base = lambda x, **knobs: _norm(ln, x, **knobs)  # noqa: E731
    return [
        knob(base, "unbiased variance", dict(unbiased=True),
                "LayerNorm divides the summed squares by n (the biased, population variance); yours divides by "
                "n - 1, as torch.var does by default.", "look at torch.var's `unbiased`/`correction` argument"),
        knob(base, "epsilon outside the square root", dict(eps_outside=True),
                "The reference computes (x - mean) / sqrt(var + eps); yours adds eps after the square root.",
                "where exactly does eps go in the formula?"),
        knob(base, "epsilon both inside and outside the square root", dict(eps_outside="both"),
                "The reference computes (x - mean) / sqrt(var + eps); yours adds eps twice, under the root and after "
                "it: (x - mean) / (sqrt(var + eps) + eps).", "keep only the eps inside the square root"),
        knob(base, "epsilon missing", dict(eps=0.0),
                "Without eps, a row whose values are all equal (variance 0) divides 0 by 0.",
                "add the small constant eps to the variance before the square root"),
        *[knob(base, f"epsilon {eps:g} instead of {EPS:g}", dict(eps=eps),
                  f"GPT-2's LayerNorm adds eps = {EPS:g} to the variance; yours adds {eps:g}, which shows where the "
                  "variance is tiny.", f"eps={EPS:g} (nn.LayerNorm's default)") for eps in (1e-3, 1e-6, 1e-8, 1e-12)],
        knob(base, "normalised over the wrong axis (time)", dict(dims=(1,)),
                "The statistics must be taken over the C channels of each position (the last axis); yours are taken "
                "over the positions, so one position's output depends on the others.", "which axis holds C?"),
        knob(base, "variance over the wrong axis (time), the mean over the channels", dict(var_dims=(-2,)),
             "Both statistics must be taken over the C channels of each position; your mean is, but your variance "
             "is taken over the positions, so one position's output depends on the others.",
             "var over dim=-1 too, with keepdim=True"),
        knob(base, "normalised over the wrong axis (batch)", dict(dims=(0,)),
                "Yours takes the mean and variance over the batch (that is BatchNorm); LayerNorm uses the C channels "
                "of each position.", "which axis holds C?"),
        knob(base, "normalised over the wrong axes (whole tensor)", dict(dims=(0, 1, 2)),
                "Yours takes one mean and variance over the whole tensor; LayerNorm uses each position's C channels.",
                "keep the reduction to the last axis, with keepdim=True"),
        knob(base, "normalised over the wrong axes (time and channels)", dict(dims=(-2, -1)),
                "Yours takes the mean and variance over a whole sequence (positions and channels); LayerNorm uses "
                "each position's C channels alone, so one position's output depends on the others.",
                "reduce over the last axis only: dim=-1, keepdim=True"),
        knob(base, "gain and bias swapped", dict(affine="swapped"),
                "LayerNorm computes x_hat * weight + bias; yours multiplies by the bias and adds the weight.",
                "x_hat * self.weight + self.bias"),
        knob(base, "gain (weight) not applied, only the bias added", dict(affine="bias_only"),
             "After normalising, LayerNorm multiplies by the learned gain and then adds the bias; yours skips the "
             "gain.", "x_hat * self.weight + self.bias"),
        knob(base, "gain and bias not applied", dict(affine=False),
                "After normalising, LayerNorm multiplies by a learned gain (weight) and adds a learned bias.",
                "use your weight and bias parameters in forward"),
        knob(base, "divided by the variance, not the standard deviation", dict(root=False),
                "LayerNorm divides by sqrt(var + eps); yours divides by var + eps, without the square root.",
                "torch.sqrt(var + eps) (or var.add(eps).rsqrt() as a factor)"),
        knob(base, "gain applied as (1 + weight) (Gemma's convention), not weight", dict(affine="one_plus"),
             "Gemma stores its norm's gain as an offset from 1 and multiplies by (1 + weight); GPT-2's LayerNorm "
             "(and nn.LayerNorm) multiplies by the weight itself, which starts at ones.", "x_hat * self.weight + "
             "self.bias"),
        knob(base, "bias added before the gain multiplies", dict(affine="bias_first"),
                "LayerNorm computes x_hat * weight + bias; yours computes (x_hat + bias) * weight.",
                "multiply by the weight first, then add the bias"),
        Variant("gain applied before normalising", lambda x: _norm(ln, x * ln.weight, affine="bias_only"),
                "The gain multiplies the *normalised* x; applied before, it is normalised away.",
                "normalise first, then * weight + bias"),
        knob(base, "mean absolute deviation instead of the standard deviation", dict(spread="abs"),
                "LayerNorm divides by sqrt(mean((x - mean)^2) + eps); yours by the mean of |x - mean|.",
                "square the deviations, average, add eps, take the root"),
        knob(base, "variance taken around 0: mean(x^2), not mean((x - mean)^2)", dict(spread="raw"),
                "The variance is the mean square of the *centred* row; yours averages the squares of x itself, "
                "which adds mean^2 to it.", "var = ((x - mean) ** 2).mean(-1, keepdim=True)"),
        knob(base, "divided by the L2 norm instead of the standard deviation", dict(spread="l2"),
                "The L2 norm of a centred row is sqrt(C) times its standard deviation: the *mean* of the squares, "
                "not their sum.", "mean, not sum (or norm)"),
        *[Variant(f"F.normalize (unit L2 norm, eps {e:g}) instead of unit variance",
                  (lambda e: lambda x: F.normalize(x - x.mean(-1, keepdim=True), dim=-1, eps=e) * ln.weight
                   + ln.bias)(e),
                  "F.normalize divides by the L2 norm of the row, which is sqrt(C) times its standard deviation.",
                  "divide by sqrt(var + eps), var the *mean* of the squared deviations") for e in (EPS, 1e-12)],
        knob(base, "only centred: not divided by the standard deviation", dict(spread="none"),
             "LayerNorm subtracts the mean *and* divides by sqrt(var + eps), so each row has variance 1 before the "
             "gain; yours only subtracts the mean.", "(x - mean) / torch.sqrt(var + eps)"),
        knob(base, "bias subtracted instead of added", dict(affine="minus"),
                "LayerNorm computes x_hat * weight + bias; yours subtracts the bias.", "+ self.bias"),
        knob(base, "mean not subtracted", dict(center=False),
                "Yours divides by the root mean square without subtracting the mean first (that is RMSNorm).",
                "centre each row before computing the variance"),
        knob(base, "mean not subtracted from x (only used for the variance)", dict(center="numerator"),
             "The variance is taken around the mean, as it should, but the row divided is x itself, not x - mean, "
             "so each output row keeps mean / std instead of mean 0.", "(x - mean) / torch.sqrt(var + eps)"),
        knob(base, "square root taken twice: sqrt(std + eps)", dict(root="twice"),
             "LayerNorm divides by sqrt(var + eps), the standard deviation; yours takes the standard deviation and "
             "then its square root again (x.std() already is a root).", "torch.sqrt(var + eps), var the mean of "
             "the squared deviations (or x.std(unbiased=False) alone, eps inside)"),
        knob(base, "centred by the median instead of the mean", dict(center="median"),
             "LayerNorm subtracts each row's *mean*; yours subtracts its median, so the output's mean is not 0.",
             "x - x.mean(dim=-1, keepdim=True)"),
    ]


def _families(ln) -> list[Family]:
    """Mistakes with a free number, fitted when no table row explains the output (families.py)."""
    return [Family("epsilon {value} instead of 1e-05", lambda e: lambda x: _norm(ln, x, eps=e),
                   f"GPT-2's LayerNorm adds eps = {EPS:g} to the variance; yours adds {{value}}, which shows where "
                   "the variance is tiny.", f"eps={EPS:g} (nn.LayerNorm's default)", lo=1e-9, hi=1.0, correct=EPS,
                   log=True),
            Family("epsilon {value} added after the square root", lambda e: lambda x: _norm(ln, x, eps=e,
                                                                                              eps_outside=True),
                   "The reference computes (x - mean) / sqrt(var + eps); yours adds {value} to the standard deviation "
                   "instead.", "eps goes inside the square root: sqrt(var + eps)", lo=1e-9, hi=1.0, correct=0.0,
                   log=True),
            Family("variance divided by n + {value} instead of n", lambda c: lambda x: _norm(ln, x, count=c),
                   "LayerNorm's variance is the *mean* of the squared deviations: their sum divided by n, the number "
                   "of channels; yours divides by n + {value}.", "((x - mean) ** 2).mean(-1, keepdim=True)",
                   lo=-3, hi=3, correct=0.0, integer=True)]


@reports_in_place_edits
def check_layernorm(cls, ndim: int = 8, seed: int = 0) -> CheckResult:
    """Check a LayerNorm class against torch's nn.LayerNorm (eps 1e-5); on failure, name the mistake."""
    g = torch.Generator().manual_seed(seed)
    ref = nn.LayerNorm(ndim, eps=EPS)
    with torch.no_grad():
        ref.weight.copy_(1 + 0.5 * torch.randn(ndim, generator=g))
        ref.bias.copy_(0.5 * torch.randn(ndim, generator=g))
    student, problem = student_with_reference_weights(EXERCISE, cls, ref.state_dict(), ndim)
    if problem is not None:
        return problem
    inputs = {
        "random activations": 3 * torch.randn(3, 4, ndim, generator=g) + 2,
        "activations with a tiny variance (where eps matters)": 1 + 1e-3 * torch.randn(3, 4, ndim, generator=g),
        "a constant row (variance exactly 0)": torch.full((1, 2, ndim), 2.0),
    }
    fresh = lambda: student_with_reference_weights(EXERCISE, cls, ref.state_dict(), ndim)[0]  # noqa: E731
    stale = lambda: module_state_problem(EXERCISE, fresh, [(x,) for x in inputs.values()], lambda x: _norm(ref, x),  # noqa
                                lambda x: f"x of shape {tuple(x.shape)}", atol=1e-4)
    with torch.no_grad():
        outputs = {}
        for label, x in inputs.items():
            try:
                outputs[label] = student(x)
            except Exception as e:
                if stale() is not None:  # each input alone right on a new module: something kept from a call
                    return stale()
                if _same_error(lambda: x - x.mean(-1), e):  # the rebuilt slip raises the student's exact error
                    return fail(EXERCISE, "mean or variance without keepdim=True",
                                "A statistic of shape (B, T) does not line up with x (B, T, C): broadcasting matches "
                                "the last axes, T against C.", f"forward(x) with x of shape {tuple(x.shape)} raised "
                                f"{type(e).__name__}: {e}", "x.mean(-1, keepdim=True): shape (B, T, 1)")
                return crashed(EXERCISE, f"forward(x) with x of shape {tuple(x.shape)}", e,
                               "mean and variance over the last axis with keepdim=True, so they broadcast against x")
            if not isinstance(outputs[label], torch.Tensor):  # a tuple, an array, None: say so before any maths
                name, why = shape_problem(outputs[label], x)
                return fail(EXERCISE, name, why + ".", f"{label}: x of shape {tuple(x.shape)}", hint=TYPE_HINT)
            if outputs[label].dtype != x.dtype:
                return fail(EXERCISE, "wrong dtype", f"LayerNorm keeps the dtype: x {x.dtype} -> yours "
                            f"{outputs[label].dtype}.", f"{label}: x of shape {tuple(x.shape)}, dtype {x.dtype}",
                            hint="no .double() / .float() conversions in forward")
            if outputs[label].shape != x.shape:
                axes = permuted(outputs[label], _norm(ref, x))
                if axes is not None:  # the right numbers with two axes exchanged: a transpose not undone
                    return fail(EXERCISE,
                                f"output's axis {axes[0]} and axis {axes[1]} swapped (a transpose not undone)",
                                f"Your output is the reference's with axes {axes[0]} and {axes[1]} exchanged: x "
                                f"{tuple(x.shape)} -> yours {tuple(outputs[label].shape)}.",
                                f"{label}: x of shape {tuple(x.shape)}", "normalise x as it is, over its last axis")
                return fail(EXERCISE, "wrong output shape", f"LayerNorm keeps the shape: x {tuple(x.shape)} -> "
                            f"yours {tuple(outputs[label].shape)}.", f"{label}: x of shape {tuple(x.shape)}",
                            hint="reduce with keepdim=True so the statistics broadcast")
        wrong = [label for label, x in inputs.items() if not close(outputs[label], _norm(ref, x), atol=1e-4)]
        if wrong and stale() is not None:
            return stale()
        if wrong and _right_in_training_mode(fresh, ref, inputs):
            return fail(EXERCISE, "eval mode differs from training mode (running statistics, as BatchNorm keeps?)",
                        "In training mode your module normalises each position right, but in eval mode (where the "
                        "checker, and generation, run it) it gives another output. LayerNorm has no mode: it uses "
                        "each position's own mean and variance always; running averages kept for eval are "
                        "BatchNorm's.", f"{wrong[0]}: x[0, 0] = {fmt(inputs[wrong[0]][0, 0])}\nyours (eval) "
                        f"{fmt(outputs[wrong[0]][0, 0])}\nexpected    {fmt(_norm(ref, inputs[wrong[0]])[0, 0])}",
                        "compute the mean and variance from x in forward, whatever self.training is")
        if wrong:
            label, x = wrong[0], inputs[wrong[0]]
            order = wrong + [lb for lb in inputs if lb not in wrong]  # the wrong inputs rule most variants out first
            singles = _variants(ref)  # then two of them at once, then a wrong number fitted (families.py)
            fitted = (fit(f, [(v,) for v in inputs.values()], list(outputs.values()), 1e-4) for f in _families(ref))
            for variant in [*singles, *pairs(lambda v, **k: _norm(ref, v, **k), singles), *fitted]:
                if variant is not None and all(_matches(variant, inputs[lb], outputs[lb]) for lb in order):
                    return fail(EXERCISE, variant.property, variant.explanation,
                                _example(student, ref, variant, x, label), variant.hint)
            out, expected = outputs[label], _norm(ref, x)
            try:  # a relation to the reference's output on every input (relations.py), e.g. a factor 2
                found = relation(list(inputs.values()), list(outputs.values()),
                                 [_norm(ref, v) for v in inputs.values()], atol=1e-4)
            except Exception:
                found = None
            if found:
                return fail(EXERCISE, found[0], found[1], f"{label}: x[0, 0] = {fmt(x[0, 0])}\nyours    "
                            f"{fmt(out[0, 0])}\nexpected {fmt(expected[0, 0])}", found[2])
            problem = fail(EXERCISE, NOT_RECOGNISED, "Your output differs from the reference, and no mistake the "
                           "checker knows reproduces your outputs on every tested input, so it names none. Here is "
                           "where:", f"{label}: x[0, 0] = {fmt(x[0, 0])}\nyours    {fmt(out[0, 0])}\n"
                           f"expected {fmt(expected[0, 0])}\n" + where_it_differs(out, expected, 1e-4),
                           "mean and variance over the last axis, (x - mean) / sqrt(var + eps), then * weight + bias")
            # a known mistake made on some channels, positions or rows only (partial.py), e.g. the gain on half
            return localise(problem, student, [(v,) for v in inputs.values()], lambda v: _norm(ref, v), singles,
                            [("channel", -1), ("position", 1), ("batch row", 0)], atol=1e-4)
        problem = names_differ(EXERCISE, student, ["weight", "bias"], "self.weight and self.bias, as the exercise "
                               "names them (nn.LayerNorm's and GPT-2's names)")
        if problem is None:
            problem = _arguments_ignored(cls, ref, ndim, inputs["activations with a tiny variance (where eps matters)"])
        if problem is None:
            problem = _initial_values(cls, ndim, inputs["random activations"])
        if problem is None:
            problem = _bf16_dtype(fresh, inputs["random activations"])
        if problem is None:  # right outputs: is the gradient right too (statistics not taken under no_grad)?
            problem = gradient_problem(EXERCISE, student, ref, inputs["random activations"], seed)
        if problem is not None:
            return problem
    return CheckResult(EXERCISE, True, checked=["same output as nn.LayerNorm on random, tiny-variance and constant "
                                                "rows", "statistics over the channels of each position"])


def _initial_values(cls, ndim: int, x: torch.Tensor) -> CheckResult | None:
    """Every test above loads the reference's weights; a new module must also start as nn.LayerNorm does (weight
    ones, bias zeros: the identity on normalised rows), or a new model starts with its residual branches zeroed or
    shifted. A constructor that cannot be called with ndim alone is left alone."""
    try:
        out = build(cls, ndim).eval()(x)
    except Exception:
        return None
    expected = F.layer_norm(x, (ndim,), eps=EPS)
    if not isinstance(out, torch.Tensor) or out.shape != x.shape or close(out, expected, atol=1e-4):
        return None
    return fail(EXERCISE, "weight or bias initialised wrongly (nn.LayerNorm starts with weight ones, bias zeros)",
                f"With the reference's weights loaded your output is right, but a new {cls.__name__}({ndim}) does not "
                "start as the identity on normalised rows: its weight or bias starts at another value.",
                f"a new {cls.__name__}({ndim}), x[0, 0] = {fmt(x[0, 0])}\nyours    {fmt(out[0, 0])}\n"
                f"expected {fmt(expected[0, 0])}", "torch.ones(ndim) for the weight, torch.zeros(ndim) for the bias")


def _right_in_training_mode(fresh, ref, inputs) -> bool:
    """Wrong in eval mode, yet right on every input on a new module in training mode: the mode is the cause."""
    try:
        module = fresh().train()
        return all(close(module(x), _norm(ref, x), atol=1e-4) for x in inputs.values())
    except Exception:
        return False


def _bf16_dtype(fresh, x: torch.Tensor) -> CheckResult | None:
    """A module cast to bfloat16 (model.to(torch.bfloat16)) must return bfloat16, as nn.LayerNorm does: statistics
    computed in float32 for accuracy are fine, but the result cast back (.to(x.dtype)), or the next layer's bf16
    weights meet a float32 input. Float32 inputs cannot show a missing cast; a module that cannot run in bf16 is
    left alone."""
    try:
        out = fresh().to(torch.bfloat16)(x.to(torch.bfloat16))
    except Exception:
        return None
    if not isinstance(out, torch.Tensor) or out.dtype == torch.bfloat16:
        return None
    return fail(EXERCISE, "output dtype not kept for a bfloat16 input (computed in float32, not cast back)",
                f"On float32 inputs your output is right, but a module cast to bfloat16 returns {out.dtype} for a "
                "bfloat16 input; nn.LayerNorm returns the input's dtype.", f"x of shape {tuple(x.shape)} in "
                f"bfloat16 (the module .to(torch.bfloat16)): yours {out.dtype}",
                "return y.to(x.dtype) (or .type_as(x))")


def _arguments_ignored(cls, ref, ndim: int, x: torch.Tensor) -> CheckResult | None:
    """The constructor's eps must be used, not a number written into forward: cls(ndim, eps=1e-3) on rows with a tiny
    variance (where eps shows). A constructor that cannot take eps is left alone (GPT-2 uses the default). A bias kept
    with bias=False is not refused: earlier rounds count it valid (it is loaded and used as the reference's)."""
    other = 1e-3
    try:
        student = build(cls, ndim, eps=other)
        load_reference_weights(student, ref.state_dict(), "yours")
        out = student.eval()(x)
    except Exception:
        return None
    if not close(out, _norm(ref, x, eps=other), atol=1e-4) and close(out, _norm(ref, x), atol=1e-4):
        return fail(EXERCISE, "the eps argument ignored (1e-05 used whatever eps is passed)",
                    f"{cls.__name__}(ndim, eps={other:g}) must add {other:g} to the variance; yours still adds "
                    f"{EPS:g}, a number written into forward instead of the constructor's eps.",
                    f"{cls.__name__}({ndim}, eps={other:g}), rows with a tiny variance: x[0, 0] = {fmt(x[0, 0])}\n"
                    f"yours    {fmt(out[0, 0])}\nexpected {fmt(_norm(ref, x, eps=other)[0, 0])}",
                    "store eps in __init__ (self.eps = eps) and use self.eps in forward")
    return None


def _example(student, ref, variant, x, label) -> str:
    """A small, readable counter-example for the diagnosed mistake."""
    if variant.property == "unbiased variance":
        row = torch.arange(x.shape[-1], dtype=torch.float32).expand(1, 1, -1)
        n = row.shape[-1]
        return (f"the row x = {fmt(row, n)} has mean {row.mean():.4g}, variance (divide by n) "
                f"{row.var(unbiased=False):.4g} and (divide by n - 1) {row.var():.4g}\n"
                f"yours    {fmt(student(row))}\nexpected {fmt(_norm(ref, row))}")
    if variant.property.startswith("normalised over the wrong axis"):
        x2 = x.clone()
        x2[:, 1:] += 5.0
        x2[1:] += 5.0
        return (f"shifting only the *other* positions/rows of x moved your output at [0, 0]:\n"
                f"before {fmt(student(x)[0, 0])}\nafter  {fmt(student(x2)[0, 0])}\n"
                f"it must not move: each position is normalised on its own")
    return f"{label}: x[0, 0] = {fmt(x[0, 0])}\nyours    {fmt(student(x)[0, 0])}\nexpected {fmt(_norm(ref, x)[0, 0])}"


def _matches(variant, x, out) -> bool:
    try:
        # A smaller eps damps less: float32 rounding on the tiny-variance rows then reaches ~2e-4, while the eps
        # values compared differ there by 1e-2 or more, so those variants get a looser (still decisive) tolerance.
        atol = 1e-3 if variant.property.startswith("epsilon 1e") else 1e-4
        return same(out, variant.compute(x), atol=atol)  # NaN where the variant has NaN (a 0/0) counts as equal
    except Exception:
        return False


def _same_error(rebuilt, error: BaseException) -> bool:
    """rebuilt() raises the student's exception: the same type and the same sizes in its message."""
    try:
        rebuilt()
    except Exception as e:
        ours, theirs = re.findall(r"\d+", str(e)), re.findall(r"\d+", str(error))
        return type(e) is type(error) and (ours == theirs if ours and theirs else str(e) == str(error))
    return False
