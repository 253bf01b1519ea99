"""
The LoRA checker's tables (lora.py): the sizes and settings it tests, and the mistakes it can rebuild: properties
of a fresh layer, the forward's and merge()'s slips, the crashes of a product in the wrong order, and the scale as a
formula of alpha and r. Each row is (name, how to compute it, why it is wrong, the fix), read by compare.explain.
"""

from __future__ import annotations

import math

import torch.nn.functional as F

from mingpt.exercises.checking import Variant

__all__ = ["ALPHA", "CRASH_HINT", "HINT", "IN", "LORA_FORWARD_MISTAKES", "LORA_INIT_MISTAKES", "LORA_MERGE_CRASHES",
           "LORA_MERGE_MISTAKES", "LORA_ORDER_CRASHES", "OUT", "RANK", "SCALE_FORMULAS", "SETTINGS", "lora_output"]

CRASH_HINT = "x is (..., in_features); lora_A is (r, in), lora_B (out, r): x @ A.T @ B.T is (..., out)"
HINT = "compare your code with the definition above the exercise, one step at a time"

IN, OUT, RANK, ALPHA = 7, 5, 3, 6.0  # alpha / r = 2, distinct from r, alpha, 1, 1/r and r/alpha


def _reversed(t):
    """t.T for a tensor of any number of dims (every dim reversed), without torch's warning that .T on other than 2
    dims is deprecated: the student's code warns, the checker rebuilding it need not."""
    return t.permute(*reversed(range(t.dim())))


def lora_output(x, W, b, A, B, scale):
    return F.linear(x, W, b) + scale * (x @ A.T @ B.T)


LORA_INIT_MISTAKES = {  # properties of the fresh layer, each checked exactly
    "the base layer is not frozen": ("Only A and B train: the base weights must have requires_grad=False, or the "
                                     "optimizer updates (and keeps Adam moments for) the whole matrix.",
                                     "base.requires_grad_(False) in __init__"),
    "the base layer's bias is not frozen (its weight is)": ("Only A and B train: the base bias needs "
                                                            "requires_grad=False too, or the optimizer updates it.",
                                                            "base.requires_grad_(False) freezes weight and bias"),
    "the base layer's weight is not frozen (its bias is)": ("Only A and B train: the base weight needs "
                                                            "requires_grad=False too, or the optimizer updates (and "
                                                            "keeps Adam moments for) the whole matrix.",
                                                            "base.requires_grad_(False) freezes weight and bias"),
    "A initialised to zero": ("With A = 0 and B = 0 both gradients are zero (dL/dB needs A x, dL/dA needs B): the "
                              "adapter never learns.", "A random (nn.Linear's default init), B zero"),
    "A and B initialisations swapped (A zero, B random)": ("LoRA (the paper, PEFT, this exercise) starts A random "
                                                           "and B at zero; yours is the other way round. It also "
                                                           "starts as the base layer, but it trains differently (A "
                                                           "moves first) and is not the layer asked for.",
                                                           "A random (nn.Linear's default init), B zero"),
    "B initialised non-zero": ("B must start at zero so that the wrapped layer computes exactly what the pretrained "
                               "one did at step 0.", "A random, B zero"),
    "A and B are not trainable": ("lora_A and lora_B are what trains: they need requires_grad=True.",
                                  "make them nn.Parameter"),
}

LORA_FORWARD_MISTAKES = [
    Variant("LoRA scaled by the rank instead of alpha / rank", lambda x, W, b, A, B: lora_output(x, W, b, A, B, RANK),
            "The correction is multiplied by alpha / r: then changing r keeps the update's size.", "scale = alpha / r"),
    Variant("LoRA scaled by alpha instead of alpha / rank", lambda x, W, b, A, B: lora_output(x, W, b, A, B, ALPHA),
            "The correction is multiplied by alpha / r, not alpha alone.", "scale = alpha / r"),
    Variant("LoRA scaled by 1 / rank (alpha left out)", lambda x, W, b, A, B: lora_output(x, W, b, A, B, 1 / RANK),
            "The correction is multiplied by alpha / r; alpha is missing from yours.", "scale = alpha / r"),
    Variant("LoRA scaled by rank / alpha (the ratio upside down)",
            lambda x, W, b, A, B: lora_output(x, W, b, A, B, RANK / ALPHA), "The scale is alpha / r.",
            "scale = alpha / r"),
    Variant("the LoRA correction is not scaled", lambda x, W, b, A, B: lora_output(x, W, b, A, B, 1.0),
            "The correction B A x must be multiplied by alpha / r.", "scale = alpha / r"),
    Variant("the scale multiplies the base layer's output too ((base(x) + B A x) * alpha / r)",
            lambda x, W, b, A, B: ALPHA / RANK * (F.linear(x, W, b) + x @ A.T @ B.T),
            "alpha / r scales the correction only: y = base(x) + (alpha / r) B A x; the frozen layer's output "
            "passes unchanged.", "out = self.base(x) + (x @ A.T @ B.T) * scale: the scale on the second term only"),
    Variant("the base layer's output is missing", lambda x, W, b, A, B: lora_output(x, 0 * W, None, A, B, ALPHA / RANK),
            "LoRA *adds* a correction to the frozen layer's output: y = base(x) + (alpha / r) B A x.",
            "start from self.base(x)"),
]

LORA_MERGE_MISTAKES = [
    Variant("merge forgets the scale", lambda W, A, B: W + B @ A,
            "Merging must add exactly what the forward adds: (alpha / r) B A.", "W += scale * (B @ A)"),
    Variant("merge subtracts the correction", lambda W, A, B: W - ALPHA / RANK * B @ A,
            "Merging adds the correction to the base weight (unmerging subtracts it).", "W += scale * (B @ A)"),
    Variant("merge scales by the rank instead of alpha / rank", lambda W, A, B: W + RANK * B @ A,
            "The merged weight is W + (alpha / r) B A.", "W += scale * (B @ A)"),
    Variant("merge replaced the base weight with the correction", lambda W, A, B: ALPHA / RANK * B @ A,
            "Merging adds the correction to the pretrained weight: W + (alpha / r) B A; yours overwrote W.",
            "base.weight += scale * (B @ A)"),
    Variant("merge adds (B A).T reshaped to the weight's shape: the correction's numbers scrambled",
            lambda W, A, B: W + ALPHA / RANK * (B @ A).T.reshape(W.shape),
            "B A is already (out, in), nn.Linear's layout (a Conv1D habit transposes it to (in, out)); reshaping the "
            "transpose back to (out, in) does not undo it, it only reorders the numbers in memory order.",
            "base.weight += scale * (B @ A), no transpose, no reshape"),
    Variant("merge did not change the base weight", lambda W, A, B: W.clone(),
            "After merge() the base layer's weight holds W + (alpha / r) B A, so that inference costs one matmul.",
            "add in place to the base layer's weight, under torch.no_grad()"),
]

# A crash in the forward named when rebuilding one wrong product raises *the same* error (torch's message gives the
# shapes, so it is exact): the factors in the wrong order, or one of them not transposed.
LORA_ORDER_CRASHES = [
    Variant("lora_B applied before lora_A (x @ B.T @ A.T)", lambda x, A, B: x @ B.T @ A.T,
            "x (..., in) goes through A first (in -> r), then B (r -> out): the correction is x @ A.T @ B.T; the "
            "paper's B A x reads right to left.", "x @ self.lora_A.T @ self.lora_B.T"),
    Variant("lora_A not transposed (x @ A)", lambda x, A, B: x @ A,
            "lora_A is (r, in), as an nn.Linear's weight: x (..., in) multiplies its transpose.", "x @ self.lora_A.T"),
    Variant("lora_B not transposed (... @ B)", lambda x, A, B: x @ A.T @ B,
            "lora_B is (out, r): the (..., r) activations multiply its transpose.", "(x @ A.T) @ self.lora_B.T"),
    *[Variant(f"x.T on a 3-D x ({how}): .T reverses every dim, a transpose only for a 2-D x", compute,
              "x is (..., in): (B, T, in) sequences as well as (N, in) rows. .T reverses all the dims of a 3-D "
              "tensor ((in, T, B)), so the product that is right for a 2-D x fails or mixes the batch with the "
              "sequence (torch warns that .T on other than 2 dims is deprecated).",
              "x @ A.T @ B.T: the 2-D factors are transposed, x is not") for how, compute in (
        ("(B @ A @ x.T).T", lambda x, A, B: _reversed(B @ A @ _reversed(x))),
        ("(B @ (A @ x.T)).T", lambda x, A, B: _reversed(B @ (A @ _reversed(x)))))],
    Variant("the product B A not transposed (x @ (B @ A))", lambda x, A, B: x @ (B @ A),
            "B A is (out, in), a weight in nn.Linear's layout: x (..., in) multiplies its transpose, as F.linear "
            "does.", "x @ (B @ A).T, or x @ A.T @ B.T"),
]

# A crash in merge() named the same way: the correction added in the wrong layout raises torch's exact error.
LORA_MERGE_CRASHES = [
    Variant("merge adds (B A).T: the correction transposed", lambda W, A, B: W + (B @ A).T,
            "base.weight is (out, in), nn.Linear's layout, and so is B A ((out, r) @ (r, in)): it is added as it "
            "is; (B A).T, or A.T @ B.T, is (in, out).", "base.weight += scale * (B @ A)"),
    Variant("merge multiplies A @ B (the factors in the wrong order)", lambda W, A, B: W + A @ B,
            "The correction is B A: (out, r) @ (r, in) = (out, in), the base weight's shape.",
            "base.weight += scale * (B @ A)"),
]


# The scale is one number per (r, alpha): read off the output at several settings, it names a *formula* of alpha
# and r (a family, not one row per value). At the first setting alpha / r = 2, which a hard-coded 2.0 (16 / 8, a
# tutorial's values) or alpha // r reproduces; the other settings tell them apart.
SETTINGS = [(RANK, ALPHA), (4, 6.0), (2, 5.0)]  # alpha / r = 2, 1.5, 2.5
SCALE_FORMULAS = [
    ("LoRA scaled by alpha / sqrt(rank) (rsLoRA's scale), not alpha / rank", lambda a, r: a / math.sqrt(r),
     "alpha / sqrt(r) is rsLoRA's scale (PEFT's use_rslora=True); this exercise, as the LoRA paper and PEFT's "
     "default, uses alpha / r."),
    ("LoRA scaled by alpha // rank (integer division)", lambda a, r: a // r,
     "alpha // r rounds down: right only when r divides alpha (6 / 4 = 1.5, 6 // 4 = 1)."),
    ("LoRA scaled by alpha instead of alpha / rank", lambda a, r: a, "The correction is multiplied by alpha / r."),
    ("LoRA scaled by the rank instead of alpha / rank", lambda a, r: r, "The correction is multiplied by alpha / r."),
    ("LoRA scaled by rank / alpha (the ratio upside down)", lambda a, r: r / a, "The scale is alpha / r."),
    ("LoRA scaled by 1 / rank (alpha left out)", lambda a, r: 1 / r, "The correction is multiplied by alpha / r."),
    ("LoRA scaled twice: (alpha / r)^2 (the scale on both A and B, or on the input and the output)",
     lambda a, r: (a / r) ** 2, "The correction B A x is multiplied by alpha / r once; scaling both factors (or x "
     "and the result) multiplies it by (alpha / r)^2."),
]
