"""
Checking a student's MLP and transformer Block.

The one idea: a Block is two residual branches, ``x = x + attn(ln_1(x))`` then ``x = x + mlp(ln_2(x))``. Each
classic mistake is a different *wiring* of the same four sublayers (LayerNorm after the add, a branch without
its residual, one LayerNorm used twice, the branches swapped), so the checker rebuilds each wiring from the
reference's own sublayers and tells which one the student's Block computes. The MLP's mistakes are in its
activation: GPT-2 uses GELU's tanh approximation, which differs from the exact GELU by about 1e-3.

    from mingpt.exercises import check_mlp, check_block
    check_mlp(MyMLP)        # MyMLP(config); forward(x)
    check_block(MyBlock)    # MyBlock(config) with attn, mlp, ln_1, ln_2; forward(x)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mingpt.exercises.attention import attention_config
from mingpt.exercises.checking import (CheckResult, Variant, close, fail, first_match, fmt, run,
                                       student_with_reference_weights)
from mingpt.model import MLP, Block

__all__ = ["check_mlp", "check_block"]


def _randomize(module, seed: int):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("ln_1.weight") or name.endswith("ln_2.weight"):
                p.copy_(1 + 0.3 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) * (0.5 if p.dim() == 2 else 0.2))
    return module.eval()


def _compare(exercise, student, ref_fn, variants, x, eval_hint, atol=1e-4) -> CheckResult | None:
    """Shared steps: run, check shape, determinism in eval, equality, then the variants. None means passed."""
    out, problem = run(exercise, f"forward(x) with x of shape {tuple(x.shape)}", student, x)
    if problem is not None:
        return problem
    expected = ref_fn(x)
    if not isinstance(out, torch.Tensor) or out.shape != expected.shape:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        return fail(exercise, "wrong output shape",
                    f"x {tuple(x.shape)} must give {tuple(expected.shape)}; yours {got}.",
                    hint="print the shape after each step and compare with the comments (B, T, C)")
    again = student(x)
    if not close(again, out, atol=0):
        return fail(exercise, "dropout active in eval mode",
                    "In eval mode the same input must give the same output; yours changes from run to run.",
                    f"the same x twice -> {fmt(out[0, 0])} then {fmt(again[0, 0])}", eval_hint)
    if close(out, expected, atol=atol, rtol=atol):
        return None
    variant = first_match(out, variants, x, atol=atol)
    example = f"x of shape {tuple(x.shape)} (seeded random)\nyour output[0, 0, :4] = {fmt(out[0, 0])}\n" \
              f"expected              {fmt(expected[0, 0])}"
    if variant is not None:
        return fail(exercise, variant.property, variant.explanation, example, variant.hint)
    return fail(exercise, "output differs from the reference", "No known mistake explains the difference.", example,
                "compare each intermediate tensor with the formula in the exercise text")


# ------------------------------------------------------------------------------------------ MLP
def check_mlp(cls, seed: int = 0) -> CheckResult:
    """Check an MLP class (c_fc to 4*C, tanh-GELU, c_proj back to C) against mingpt's."""
    exercise = "MLP"
    config = attention_config()
    ref = _randomize(MLP(config), seed)
    student, problem = student_with_reference_weights(exercise, cls, ref.state_dict(), config)
    if problem is not None:
        return problem

    def mlp(x, act):
        return ref.c_proj(act(ref.c_fc(x)))

    variants = [
        Variant("exact GELU instead of GPT-2's tanh approximation", lambda x: mlp(x, F.gelu),
                "GPT-2 was trained with the tanh approximation of GELU; the exact (erf) GELU differs by up to ~1e-3, "
                "enough to change a pretrained model's outputs.", "look at the `approximate` argument of GELU"),
        Variant("ReLU instead of GELU", lambda x: mlp(x, F.relu),
                "GELU is smooth and lets small negative values through; ReLU cuts them to 0.", "use GELU"),
        Variant("no activation between the two layers", lambda x: mlp(x, lambda h: h),
                "Two Linear layers without a nonlinearity between them are just one Linear layer.",
                "apply the activation to the 4*C hidden units"),
    ]
    x = torch.randn(2, 5, config.n_embd, generator=torch.Generator().manual_seed(seed + 1))
    with torch.no_grad():
        # A tight tolerance: the exact and the tanh GELU differ by ~1e-4 here, float32 rounding by ~1e-6.
        problem = _compare(exercise, student, ref, variants, x, "use an nn.Dropout module for the output dropout",
                           atol=1e-5)
    if problem is not None:
        return problem
    return CheckResult(exercise, True, checked=["same output as the reference MLP", "deterministic in eval mode"])


# ------------------------------------------------------------------------------------------ Block
def check_block(cls, seed: int = 0) -> CheckResult:
    """Check a Block class (pre-LayerNorm, two residual branches) against mingpt's; name a wrong wiring."""
    exercise = "Block"
    config = attention_config()
    ref = _randomize(Block(config, 0), seed)
    student, problem = student_with_reference_weights(exercise, cls, ref.state_dict(), config, 0)
    if problem is not None:
        return problem
    a, m, ln1, ln2 = ref.attn, ref.mlp, ref.ln_1, ref.ln_2
    variants = [
        Variant("LayerNorm after the residual add (post-LN)", lambda x: ln2((h := ln1(x + a(x))) + m(h)),
                "GPT-2 normalises the *input* of each sublayer (pre-LN) and leaves the residual stream itself "
                "untouched; yours normalises after adding, as the original 2017 transformer did.",
                "the residual stream x should only ever be added to"),
        Variant("attention branch without its residual", lambda x: (h := a(ln1(x))) + m(ln2(h)),
                "The attention output must be *added* to x; yours replaces x with it, so the input is lost.",
                "x = x + ..."),
        Variant("MLP branch without its residual", lambda x: m(ln2(x + a(ln1(x)))),
                "The MLP output must be *added* to the residual stream; yours replaces it.", "x = x + ..."),
        Variant("residual adds the normalised x", lambda x: (h := ln1(x) + a(ln1(x))) + m(ln2(h)),
                "The residual branch should carry x itself, not LayerNorm(x).", "add to x, not to ln_1(x)"),
        Variant("ln_1 used for both sublayers", lambda x: (h := x + a(ln1(x))) + m(ln1(h)),
                "Each sublayer has its own LayerNorm (with its own gain and bias); yours uses ln_1 twice.",
                "the MLP branch should use ln_2"),
        Variant("MLP before attention", lambda x: (h := x + m(ln2(x))) + a(ln1(h)),
                "The Block first communicates (attention) and then computes (MLP); yours does the MLP first.",
                "swap the two lines"),
    ]
    x = torch.randn(2, 5, config.n_embd, generator=torch.Generator().manual_seed(seed + 1))
    with torch.no_grad():
        problem = _compare(exercise, student, ref, variants, x, "the sublayers' dropouts must be nn.Dropout modules")
    if problem is not None:
        return problem
    return CheckResult(exercise, True, checked=["same output as the reference Block",
                                                "pre-LayerNorm wiring with both residuals"])
