"""
Checking one head's causal attention weights: softmax over the keys of q.k / sqrt(hs), the future masked.

The one idea: the weights are built from a few replaceable parts (the scale, the mask, where the softmax normalises,
the order of q and k, what happens after the softmax), and each classic mistake replaces one of them. The checker
rebuilds the weights with each part replaced, and each pair of parts replaced, on two inputs whose sizes keep the
candidates apart (T = 5, hs = 4 and T = 7, hs = 9: sqrt(T), sqrt(hs) and hs all differ), and names a mistake only
when the rebuilt weights equal the student's on both.

    from mingpt.exercises import check_attention_weights
    check_attention_weights(my_weights)   # my_weights(q, k) with q, k (B, T, hs) -> (B, T, T)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from mingpt.exercises.checking import CheckResult, Variant
from mingpt.exercises.compare import Part, check_cases, part_variants
from mingpt.exercises.families import Family, refine
from mingpt.exercises.large_scores import future_weight_slip, large_score_slip

__all__ = ["check_attention_weights", "attention_weights"]

EXERCISE = "causal attention weights"


def attention_weights(q, k, scale="sqrt_hs", mask="causal", softmax_dim=-1, order="qk", after="nothing",
                      normalise="softmax", fill=float("-inf")):
    """The reference weights (B, T, T), each keyword one replaceable part (its default is the right choice); a
    number as scale is a factor typed in by hand."""
    T, hs = q.size(-2), q.size(-1)
    a, b = (q, k) if order == "qk" else (k, q)
    scale = "none" if after == "scaled" else scale  # the scale moved from the scores to the weights
    factors = {"sqrt_hs": 1 / math.sqrt(hs), "none": 1.0, "hs": 1 / hs, "sqrt_T": 1 / math.sqrt(T), "T": 1 / T,
               "times_sqrt_hs": math.sqrt(hs)}
    factor = scale if isinstance(scale, float) else factors[scale]
    # order "view": k.view(B, hs, T) (or reshape) where k.transpose(-2, -1) was meant: the numbers in memory order
    att = (q @ k.reshape(k.size(0), hs, T) if order == "view" else a @ b.transpose(-2, -1)) * factor
    ones = torch.ones(T, T, dtype=torch.bool)
    if mask == "batch":  # the (T, T) mask built from q.size(0), the batch size: (B, B)
        ones = torch.ones(q.size(0), q.size(0), dtype=torch.bool)
    hidden = {"causal": ones.triu(1), "batch": ones.triu(1), "none": ~ones, "zero": ones.triu(1),
              "diagonal": ones.triu(0), "one_ahead": ones.triu(2), "two_ahead": ones.triu(3), "inverted": ones.tril(-1),
              "inverted_diagonal": ones.tril(0),
              "after": ones.triu(1)}[mask]
    if mask not in ("zero", "after"):
        att = att.masked_fill(hidden, fill)  # fill: -inf, or a finite number (large_scores.py)
    elif mask == "zero":
        att = att.masked_fill(hidden, 0.0)
    w = {"softmax": F.softmax, "log": F.log_softmax, "none": lambda a, dim: a,
         "naive": lambda a, dim: a.exp() / a.exp().sum(dim, keepdim=True),
         "exp": lambda a, dim: a.exp(),  # half a softmax by hand: the exponentials, never divided by their sum
         # a softmax by hand whose sum lost its axis (keepdim forgotten): (B, T, T) / (B, T) broadcasts the sums
         # along the last axis, so entry [i, j] is divided by row j's sum; with and without the max subtracted
         "no_keepdim": lambda a, dim: a.exp() / a.exp().sum(dim),
         "no_keepdim_shifted": lambda a, dim: (lambda e: e / e.sum(dim))((a - a.amax(dim, keepdim=True)).exp()),
         }[normalise](att, dim=softmax_dim)
    if mask == "after":
        w = w.masked_fill(hidden, 0.0)
    if after == "scaled":  # the 1/sqrt(hs) applied to the weights instead of the scores
        w = w / math.sqrt(hs)
    elif after == "transposed":
        w = w.transpose(-2, -1)
    return w


_PARTS = [
    Part("scale", "none", "missing 1/sqrt(hs) scaling", "Your scores are q @ k^T unscaled; the reference divides "
         "them by sqrt(hs) so that the softmax does not saturate as hs grows.", "q @ k^T / sqrt(head size)"),
    Part("scale", "hs", "scaled by 1/hs instead of 1/sqrt(hs)", "Your scores are divided by hs: the square root "
         "forgotten, or 1/sqrt(hs) applied to both q and k.", "divide by math.sqrt(hs)"),
    Part("scale", "times_sqrt_hs", "scores multiplied by sqrt(hs) instead of divided", "Your scores are "
         "q @ k^T * sqrt(hs); the reference divides by sqrt(hs).", "q @ k^T / math.sqrt(hs)"),
    Part("scale", "sqrt_T", "scaled by 1/sqrt(T) instead of 1/sqrt(hs)", "Your scores are divided by the square "
         "root of the sequence length; the reference uses the head size (q.size(-1)).", "hs = q.size(-1)"),
    Part("scale", "T", "scaled by 1/T instead of 1/sqrt(hs)", "Your scores are divided by the sequence length.",
         "hs = q.size(-1), and its square root"),
    Part("mask", "none", "future leakage", "No causal mask: every query also sees the keys after it (a masked_fill "
         "whose result is not assigned does this too: it returns a new tensor).",
         "set the scores of future keys to -inf before the softmax: s = s.masked_fill(...), or masked_fill_"),
    Part("mask", "zero", "masked scores set to 0 instead of -inf", "A score of 0 still gets weight exp(0) after the "
         "softmax: the future leaks in.", "masked_fill with float('-inf')"),
    Part("mask", "diagonal", "position t cannot attend to itself", "Your mask also hides the diagonal (key t for "
         "query t); the first row is then all -inf and becomes NaN.", "query t may look at keys 0..t, t included"),
    Part("mask", "one_ahead", "mask off by one (each query sees the next key)", "Your mask hides keys t+2 and later "
         "but lets query t see key t+1.", "hide keys j > t: torch.ones(T, T).triu(1) (or ~tril())"),
    Part("mask", "two_ahead", "mask off by two (each query sees the next two keys)", "Your mask hides keys t+3 and "
         "later but lets query t see keys t+1 and t+2 (tril(diagonal=2), or triu(3)).",
         "hide keys j > t: torch.ones(T, T).triu(1) (or ~tril())"),
    Part("mask", "inverted", "mask inverted (the past hidden, the future kept)", "Your mask hides the keys before "
         "each query instead of those after it.", "hide the upper triangle (j > t), keep the lower"),
    Part("mask", "inverted_diagonal", "mask inverted: the past and the diagonal hidden, the future kept",
         "Your mask hides the keys a query may see (0..t, its own included) and keeps those after it: "
         "masked_fill(tril == 1, -inf) where the kept triangle is tril; the last row has no key left (NaN).",
         "masked_fill where the lower triangle is 0 (tril == 0), i.e. hide keys j > t"),
    Part("mask", "after", "mask applied after the softmax", "Zeroing the future after the softmax leaves rows that "
         "no longer sum to 1.", "mask the scores with -inf, then softmax (or renormalise the rows)"),
    Part("mask", "batch", "mask built with the batch size q.size(0), not T", "q is (B, T, hs): q.size(0) is the "
         "batch size, so the mask is (B, B); it fails against the (B, T, T) scores unless B == T, and with B = 1 "
         "it hides nothing.", "T = q.size(1) (or q.size(-2)): torch.tril(torch.ones(T, T))"),
    Part("normalise", "none", "softmax missing (masked scores returned)", "Your weights are the masked scores "
         "themselves; a softmax over the keys turns them into a distribution.", "F.softmax(scores, dim=-1)"),
    Part("normalise", "exp", "exp of the scores without dividing by the row sum", "Your weights are exp(scores): "
         "the numerator of a softmax without its denominator, so the rows do not sum to 1.",
         "e = scores.exp(); e / e.sum(-1, keepdim=True) (or F.softmax(scores, dim=-1))"),
    Part("normalise", "log", "log_softmax instead of softmax", "Your weights are log-probabilities (negative, -inf "
         "in the future); attention averages the values with probabilities.", "F.softmax, not F.log_softmax"),
    Part("softmax_dim", 0, "softmax over the wrong dimension", "Your softmax normalises over the batch (dim 0); "
         "each query's weights must sum to 1 over the keys.", "softmax(dim=-1): the last axis holds the keys"),
    Part("softmax_dim", -2, "softmax over the wrong dimension", "Your softmax normalises over the queries (dim -2); "
         "each query's weights must sum to 1 over the keys.", "softmax(dim=-1): the last axis holds the keys"),
    Part("order", "kq", "k @ q^T instead of q @ k^T", "Your scores are k @ q^T, the transpose of q @ k^T: row t "
         "holds the scores of key t against every query.", "scores = q @ k.transpose(-2, -1)"),
    Part("order", "view", "k reshaped to (B, hs, T) with view/reshape where a transpose is needed",
         "k.view(B, hs, T) keeps the numbers in memory order and cuts them into new rows: it is not k transposed, "
         "so every score multiplies a query with a mix of several keys' channels.",
         "k.transpose(-2, -1) (or k.mT): swap the last two axes"),
    *[Part("normalise", how, "softmax by hand with the sum's keepdim forgotten", "e / e.sum(-1) divides a (B, T, T) "
           "tensor by a (B, T) one: broadcasting lines the sums up with the last axis, so entry [i, j] is divided by "
           "row j's sum, not row i's (an error when B != T, a wrong answer when B is 1).",
           "e.sum(-1, keepdim=True): shape (B, T, 1)") for how in ("no_keepdim", "no_keepdim_shifted")],
    Part("after", "scaled", "1/sqrt(hs) applied after the softmax", "You divide the weights by sqrt(hs) instead "
         "of the scores: the rows sum to 1/sqrt(hs).", "scale the scores, then softmax"),
    Part("after", "transposed", "weights transposed (queries and keys swapped)", "Your (B, T, T) weights are "
         "transposed: row t should be query t's weights over the keys.", "return weights[b, query, key]"),
]
VARIANTS = part_variants(lambda **kw: lambda q, k: attention_weights(q, k, **kw), _PARTS) + [
    Variant("mask built with q's shape (B, T, hs), not (T, T)", lambda q, k: (q @ k.transpose(-2, -1)).masked_fill(
            torch.tril(torch.ones_like(q)) == 0, float("-inf")).softmax(-1),
            "The mask must match the scores (T, T): torch.tril(torch.ones_like(q)) is (B, T, hs) and fails to "
            "broadcast unless hs == T.", "torch.tril(torch.ones(T, T))"),
    # the NaN of the diagonal mask's first row "fixed" afterwards (nan_to_num, or a mask of the NaN): the mask stays
    Variant("position t cannot attend to itself (its NaN rows then zeroed)",
            lambda q, k: torch.nan_to_num(attention_weights(q, k, mask="diagonal"), nan=0.0),
            "Your mask also hides the diagonal (key t for query t); the first row is then all -inf, a NaN after "
            "the softmax, and setting that NaN to 0 hides the symptom, not the cause.",
            "query t may look at keys 0..t, t included: hide only j > t (triu(diagonal=1))"),
    Variant("k.T on a 3-D tensor reverses every axis, (B, T, hs) -> (hs, T, B)",
            lambda q, k: q @ k.permute(*reversed(range(k.dim()))),  # k.T, without its deprecation warning
            "Tensor.T reverses all the axes (torch warns about it for 3-D tensors): it is not the transpose of each "
            "sequence's keys, so the matmul fails or multiplies the wrong numbers.",
            "k.transpose(-2, -1) (or k.mT): swap only the last two axes"),
]
# A factor typed in by hand (1/8 from a tutorial's head size of 64, 0.5 from this exercise's first input): fitted, and
# named only when the one number reproduces both inputs, whose head sizes differ (families.py).
FIXED_SCALE = Family("scores scaled by a fixed {value} (not 1/sqrt(hs) of the input)",
                     lambda c: lambda q, k: attention_weights(q, k, scale=c), "Your scores are multiplied by "
                     "{value} whatever the head size; the factor is 1/sqrt(hs) with hs = q.size(-1).",
                     "compute the factor from q.size(-1)", lo=1e-3, hi=10.0, correct=-1.0, log=True)
# Cousins of the scale: the right 1/sqrt(hs) times a constant (2 sqrt(hs), sqrt(hs)/2: a temperature typed in), or the
# head size under another power (hs^-1/4). The two inputs' head sizes (4, 9) tell these apart from a fixed factor.
SCALE_MULTIPLE = Family("scores scaled by {value}/sqrt(hs) (the right scale times a constant)",
                        lambda c: lambda q, k: attention_weights(q, k, scale=c / math.sqrt(q.size(-1))),
                        "Your scores are q @ k^T * {value}/sqrt(hs): the head size is right, an extra factor "
                        "{value} (a temperature, a 2 or a 1/2 typed in) is not.", "q @ k^T / math.sqrt(hs), nothing "
                        "more", lo=0.05, hi=20.0, correct=1.0, log=True)
SCALE_POWER = Family("scores scaled by hs^-{value} instead of hs^-0.5",
                     lambda p: lambda q, k: attention_weights(q, k, scale=q.size(-1) ** -p), "Your scores are "
                     "divided by the head size to the power {value}; the reference divides by its square root.",
                     "q @ k^T / math.sqrt(hs) (hs ** 0.5)", lo=0.05, hi=2.0, correct=0.5)
# A finite number where -inf belongs (-10, -1e2): the future keeps a weight exp(fill - score), fitted on a log scale.
FINITE_FILL = Family("masked scores filled with -{value} instead of -inf",
                     lambda c: lambda q, k: attention_weights(q, k, fill=-c), "masked_fill(..., -{value}) leaves "
                     "each future key a weight exp(-{value} - max score) > 0: the future leaks in.",
                     "masked_fill(mask, float('-inf'))", lo=0.01, hi=1e3, correct=math.inf, log=True)


def check_attention_weights(fn, seed: int = 0) -> CheckResult:
    """Check fn(q, k) -> (B, T, T) causal attention weights of one head (softmax over keys of q.k / sqrt(hs))."""
    g = torch.Generator().manual_seed(seed)
    cases = [(torch.randn(2, 5, 4, generator=g) * 2, torch.randn(2, 5, 4, generator=g) * 2),
             (torch.randn(1, 7, 9, generator=g) * 2, torch.randn(1, 7, 9, generator=g) * 2)]
    problem = check_cases(EXERCISE, fn, cases, attention_weights, VARIANTS,
                          lambda q, k: f"q, k of shape {tuple(q.shape)} (seeded random)", atol=1e-5,
                          hint="scores q @ k^T / sqrt(hs), future set to -inf, softmax over the last axis",
                          crash_hint="q, k are (B, T, hs): scores q @ k^T are (B, T, T)")
    problem = refine(problem, fn, cases, [FIXED_SCALE, SCALE_MULTIPLE, SCALE_POWER, FINITE_FILL])
    if problem is None:  # right on ordinary scores: and on large ones (an overflowing exp, a finite mask)?
        g = torch.Generator().manual_seed(seed + 7)
        big = (torch.randn(2, 6, 4, generator=g) * 60, torch.randn(2, 6, 4, generator=g) * 60)
        problem = large_score_slip(EXERCISE, fn, attention_weights, big,
                                   "q, k of shape (2, 6, 4) scaled by 60 (scores in the thousands)")
    if problem is None:  # right within tolerance: does a future key keep a weight above exactly 0 (ordinary scores)?
        problem = future_weight_slip(EXERCISE, fn, cases, lambda q, k: f"q, k of shape {tuple(q.shape)}")
    if problem is not None:
        return problem
    return CheckResult(EXERCISE, True, checked=["same weights as the reference on two sizes", "no future",
                                                "rows sum to 1"])
