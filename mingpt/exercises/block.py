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

import math

import torch
import torch.nn.functional as F

from mingpt.exercises.state import module_state_problem
from mingpt.exercises.attention import attention_config
from mingpt.exercises.block_branches import branch_scales, branch_variants
from mingpt.exercises.checking import CheckResult, Variant, close, fail, fmt, run
from mingpt.exercises.loading import student_with_reference_weights
from mingpt.exercises.mlp_dropout import dropout_placement
from mingpt.exercises.compare import check_cases, reports_in_place_edits
from mingpt.exercises.compose import knob, pairs
from mingpt.exercises.families import Family, refine
from mingpt.exercises.gradients import gradient_problem
from mingpt.exercises.partial import localise
from mingpt.model import MLP, Block

__all__ = ["check_mlp", "check_block", "MLP_MISTAKES", "BLOCK_MISTAKES"]

SQRT_2_OVER_PI = math.sqrt(2 / math.pi)


def _randomize(module, seed: int):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("ln_1.weight") or name.endswith("ln_2.weight"):
                p.copy_(1 + 0.3 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) * (0.5 if p.dim() == 2 else 0.2))
    return module.eval()


def _inputs(config, seed):
    """Several shapes and scales: a mistake that hides at one size or in one range of values shows in another."""
    g = torch.Generator().manual_seed(seed + 1)
    return [(torch.randn(2, 5, config.n_embd, generator=g),), (3 * torch.randn(1, 3, config.n_embd, generator=g),),
            (0.3 * torch.randn(3, 1, config.n_embd, generator=g),)]


def _check_module(exercise, student, ref, variants, config, seed, eval_hint, atol, fresh=None):
    """Determinism in eval mode, then every input compared with the reference (see compare.check_cases)."""
    cases = _inputs(config, seed)
    describe = lambda x: f"x of shape {tuple(x.shape)} (seeded random)"  # noqa: E731
    hint = "compare each intermediate tensor with the formula in the exercise text"
    with torch.no_grad():
        x = cases[0][0]
        out, problem = run(exercise, f"forward(x) with x of shape {tuple(x.shape)}", student, x)
        if problem is not None:  # a variant that raises the same exception on every input names it
            return check_cases(exercise, student, cases, ref, variants, describe, atol=atol, hint=hint)
        again, _ = run(exercise, "forward(x) again", student, x)
        if isinstance(out, torch.Tensor) and isinstance(again, torch.Tensor) and out.shape == again.shape \
                and not close(again, out, atol=0):
            return fail(exercise, "dropout active in eval mode",
                        "In eval mode the same input must give the same output; yours changes from run to run.",
                        f"the same x twice -> {fmt(out[0, 0])} then {fmt(again[0, 0])}", eval_hint)
        problem = check_cases(exercise, student, cases, ref, variants, describe, atol=atol, hint=hint)
        stale = None if problem is None else module_state_problem(exercise, fresh, cases, ref, describe, atol)
        problem = problem if stale is None else stale
    if problem is None:  # right outputs: are the gradients right too (nothing detached)?
        problem = gradient_problem(exercise, student, ref, x)
    return problem


# ------------------------------------------------------------------------------------------ MLP
def _gelu_by_hand(h, cube=0.044715, scale=SQRT_2_OVER_PI, linear=1.0):
    return 0.5 * h * (1 + torch.tanh(scale * (linear * h + cube * h ** 3)))


OTHER_ACTIVATIONS = [  # every other activation torch offers, by name: whichever a student picks is named
    ("sigmoid", torch.sigmoid), ("softplus", F.softplus), ("ELU", F.elu), ("SELU", F.selu), ("CELU", F.celu),
    ("Mish", F.mish), ("hardswish", F.hardswish), ("hardtanh", F.hardtanh), ("ReLU6", F.relu6),
    ("log-sigmoid", F.logsigmoid), ("softsign", F.softsign), ("hardsigmoid", F.hardsigmoid),
]

MLP_MISTAKES = [  # (name, the output from the reference's c_fc and c_proj: f(fc, proj, x), explanation, hint)
    ("exact GELU instead of GPT-2's tanh approximation", lambda fc, pj, x: pj(F.gelu(fc(x))),
     "GPT-2 was trained with the tanh approximation of GELU; the exact (erf) GELU differs by up to ~1e-3, enough "
     "to change a pretrained model's outputs.", "look at the `approximate` argument of GELU"),
    ("ReLU instead of GELU", lambda fc, pj, x: pj(F.relu(fc(x))),
     "GELU is smooth and lets small negative values through; ReLU cuts them to 0.", "use GELU"),
    ("no activation between the two layers", lambda fc, pj, x: pj(fc(x)),
     "Two Linear layers without a nonlinearity between them are just one Linear layer.",
     "apply the activation to the 4*C hidden units"),
    ("SiLU (swish) instead of GELU", lambda fc, pj, x: pj(F.silu(fc(x))),
     "x * sigmoid(x) is SiLU, the activation of LLaMA-style models; GPT-2 uses GELU.", "use GELU (tanh approximation)"),
    ("GELU's sigmoid approximation", lambda fc, pj, x: pj(fc(x) * torch.sigmoid(1.702 * fc(x))),
     "x * sigmoid(1.702 x) is a cheaper approximation of GELU than GPT-2's tanh formula; it differs by ~1e-2.",
     "GPT-2's formula uses tanh"),
    ("hand-written GELU without the cubic term", lambda fc, pj, x: pj(_gelu_by_hand(fc(x), cube=0.0)),
     "The tanh approximation is tanh(sqrt(2/pi) * (x + 0.044715 x^3)); yours leaves out the 0.044715 x^3 term.",
     "check every constant of the formula (or use F.gelu(..., approximate='tanh'))"),
    ("hand-written GELU without the linear term inside tanh (tanh(sqrt(2/pi) * 0.044715 x^3))",
     lambda fc, pj, x: pj(_gelu_by_hand(fc(x), linear=0.0)),
     "Inside the tanh GPT-2's GELU has x + 0.044715 x^3; yours keeps only the cubic term.",
     "0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x ** 3)))"),
    ("hand-written GELU with sqrt(pi/2) instead of sqrt(2/pi)",
     lambda fc, pj, x: pj(_gelu_by_hand(fc(x), scale=math.sqrt(math.pi / 2))),
     "The factor inside the tanh is sqrt(2/pi) (about 0.798); yours is its inverse.", "sqrt(2 / pi)"),
    ("hand-written GELU with x^2 instead of x^3",
     lambda fc, pj, x: pj(0.5 * fc(x) * (1 + torch.tanh(SQRT_2_OVER_PI * (fc(x) + 0.044715 * fc(x) ** 2)))),
     "The tanh approximation is tanh(sqrt(2/pi) * (x + 0.044715 x^3)): the correction term is cubic.",
     "x ** 3 (or x * x * x)"),
    ("hand-written GELU with 3x instead of x^3 (x * 3 typed for x ** 3)",  # the cube term turns linear: x (1 + 3c)
     lambda fc, pj, x: pj(_gelu_by_hand(fc(x), cube=0.0, linear=1 + 3 * 0.044715)),
     "The tanh approximation is tanh(sqrt(2/pi) * (x + 0.044715 x^3)); yours multiplies x by 3 instead of raising "
     "it to the power 3, so the correction is linear.", "x ** 3 (or x * x * x)"),
    ("c_proj without its bias", lambda fc, pj, x: F.linear(F.gelu(fc(x), approximate="tanh"), pj.weight),
     "Both Linear layers of GPT-2's MLP have a bias; your output projection leaves c_proj.bias out.",
     "call self.c_proj(h) (or add its bias) instead of multiplying by its weight alone"),
    ("c_fc without its bias", lambda fc, pj, x: pj(F.gelu(F.linear(x, fc.weight), approximate="tanh")),
     "Both Linear layers of GPT-2's MLP have a bias; your first layer leaves c_fc.bias out.",
     "call self.c_fc(x) (or add its bias) instead of multiplying by its weight alone"),
    ("hand-written exact GELU with erf(x / 2) instead of erf(x / sqrt(2))",
     lambda fc, pj, x: pj(0.5 * fc(x) * (1 + torch.erf(fc(x) / 2))),
     "The exact GELU is 0.5 x (1 + erf(x / sqrt(2))); yours divides by 2. (GPT-2 uses the tanh approximation.)",
     "x / math.sqrt(2), or F.gelu(x, approximate='tanh')"),
    ("hand-written GELU without the 1 + before tanh",
     lambda fc, pj, x: pj(0.5 * fc(x) * torch.tanh(SQRT_2_OVER_PI * (fc(x) + 0.044715 * fc(x) ** 3))),
     "GELU(x) = 0.5 x (1 + tanh(...)): the 1 + makes it pass positive values and damp negative ones; without it "
     "the activation is even (f(-x) = f(x)).", "0.5 * x * (1 + torch.tanh(...))"),
    ("hand-written GELU without the 0.5", lambda fc, pj, x: pj(2 * _gelu_by_hand(fc(x))),
     "GELU(x) = 0.5 x (1 + tanh(...)); yours is twice as large.", "check the factor in front"),
    ("leaky ReLU instead of GELU", lambda fc, pj, x: pj(F.leaky_relu(fc(x))),
     "Leaky ReLU keeps 1% of negative values on a straight line; GELU is smooth.", "use GELU"),
    ("tanh instead of GELU", lambda fc, pj, x: pj(torch.tanh(fc(x))),
     "tanh squashes every hidden unit into (-1, 1); GELU passes large positive values through unchanged.", "use GELU"),
    ("activation after c_proj", lambda fc, pj, x: F.gelu(pj(fc(x)), approximate="tanh"),
     "The activation goes between the two layers, on the 4*C hidden units; yours applies it to the output.",
     "c_proj(gelu(c_fc(x)))"),
    ("activation before c_fc", lambda fc, pj, x: pj(fc(F.gelu(x, approximate="tanh"))),
     "The activation goes between the two layers, on the 4*C hidden units; yours applies it to the input.",
     "c_proj(gelu(c_fc(x)))"),
    ("activation applied twice (after both layers)",
     lambda fc, pj, x: F.gelu(pj(F.gelu(fc(x), approximate="tanh")), approximate="tanh"),
     "Only the hidden units get the activation; the output of c_proj is added to the residual stream as it is.",
     "no activation after c_proj"),
    ("residual added inside the MLP", lambda fc, pj, x: x + pj(F.gelu(fc(x), approximate="tanh")),
     "The MLP computes only the branch; the Block adds it to the residual stream (x + mlp(ln_2(x))).",
     "return c_proj(...) without adding x"),
    ("GELU applied twice to the hidden units", lambda fc, pj, x: pj(_gelu_by_hand(_gelu_by_hand(fc(x)))),
     "The hidden units go through the activation once; yours applies GELU to its own output again.",
     "one activation between c_fc and c_proj"),
    ("activation also applied to the input, before c_fc",
     lambda fc, pj, x: pj(_gelu_by_hand(fc(_gelu_by_hand(x)))),
     "Only the hidden units (c_fc's output) go through GELU; yours also applies it to the MLP's input.",
     "c_proj(gelu(c_fc(x))): x goes into c_fc as it is"),
    ("squared ReLU instead of GELU", lambda fc, pj, x: pj(F.relu(fc(x)) ** 2),
     "relu(x)^2 is Primer's activation; GPT-2 uses GELU (tanh approximation).", "use GELU"),
    ("c_proj's weight transposed", lambda fc, pj, x: F.linear(_gelu_by_hand(fc(x)), pj.weight.T, pj.bias),
     "nn.Linear stores its weight as (out, in) and computes x @ W.T; passing W.T to F.linear transposes it twice.",
     "self.c_proj(h), or F.linear(h, self.c_proj.weight, self.c_proj.bias)"),
    ("c_fc's weight used as (in, out) in an einsum ('...c,cf'): nn.Linear stores (out, in)",
     lambda fc, pj, x: pj(_gelu_by_hand(torch.einsum("...c,cf->...f", x, fc.weight) + fc.bias)),
     "c_fc.weight is (4C, C), (out, in): the product over C needs the subscripts '...c,fc->...f' (x @ W.T).",
     "torch.einsum('btc,fc->btf', x, W), or self.c_fc(x)"),
    *[(f"{name} instead of GELU", (lambda f: lambda fc, pj, x: pj(f(fc(x))))(f),
       f"GPT-2's MLP uses GELU (tanh approximation) between the two layers; yours uses {name}.", "use GELU")
      for name, f in OTHER_ACTIVATIONS],
    *[(f"leaky ReLU (slope {a:g}) instead of GELU", (lambda a: lambda fc, pj, x: pj(F.leaky_relu(fc(x), a)))(a),
       f"Leaky ReLU keeps {a:g} x of negative values on a straight line; GELU is smooth.", "use GELU")
      for a in (0.02, 0.05, 0.1, 0.2, 0.3)],
]


def _mlp(fc, pj, x, act=lambda h: F.gelu(h, approximate="tanh"), fc_bias=True, proj_bias=True, residual=False,
         place="between"):
    """The reference MLP with a knob per part (compose.py pairs an activation mistake with a wiring mistake);
    place: where the activation sits ("between" the layers, "after" c_proj, "before" c_fc)."""
    a = {p: act if place == p else (lambda h: h) for p in ("before", "between", "after")}
    y = a["after"](F.linear(a["between"](F.linear(a["before"](x), fc.weight, fc.bias if fc_bias else None)),
                            pj.weight, pj.bias if proj_bias else None))
    return x + y if residual else y


MLP_ACTIVATIONS = [("ReLU", F.relu), ("exact GELU", F.gelu), ("SiLU (swish)", F.silu), ("tanh", torch.tanh),
                   ("GELU's sigmoid approximation", lambda h: h * torch.sigmoid(1.702 * h)),
                   ("no activation", lambda h: h), ("squared ReLU", lambda h: F.relu(h) ** 2),
                   ("leaky ReLU", F.leaky_relu), *OTHER_ACTIVATIONS]
MLP_WIRING = [("c_proj without its bias", dict(proj_bias=False)), ("c_fc without its bias", dict(fc_bias=False)),
              ("residual added inside the MLP", dict(residual=True)),
              ("activation after c_proj", dict(place="after")), ("activation before c_fc", dict(place="before"))]


def _mlp_pairs(fc, pj) -> list[Variant]:
    """Two slips at once: another activation *and* a wiring mistake (a bias left out, a residual added)."""
    base = lambda x, **knobs: _mlp(fc, pj, x, **knobs)  # noqa: E731
    acts = [knob(base, f"{name} instead of " + ("GPT-2's tanh approximation" if "GELU" in name else "GELU"),
                 dict(act=f), f"GPT-2's MLP uses GELU (tanh approximation); yours uses {name}.", "use GELU")
            for name, f in MLP_ACTIVATIONS]
    wiring = [knob(base, name, kw, f"Yours: {name}.", "c_proj(gelu(c_fc(x))), both layers called as modules")
              for name, kw in MLP_WIRING]
    return pairs(base, acts + wiring)


def _gelu_families(fc, pj) -> list[Family]:
    """A hand-written tanh GELU with one constant mistyped, any value (families.py)."""
    return [Family("hand-written GELU with {value} instead of 0.044715 (the cube's constant)",
                   lambda c: lambda x: pj(_gelu_by_hand(fc(x), cube=c)),
                   "GELU's tanh approximation is tanh(sqrt(2/pi) * (x + 0.044715 x^3)); your cube term uses {value}.",
                   "copy the constant again: 0.044715 (or use F.gelu(h, approximate='tanh'))", lo=1e-3, hi=1.0,
                   correct=0.044715, log=True),
            Family("hand-written GELU with {value} instead of sqrt(2/pi) = 0.7979 inside the tanh",
                   lambda c: lambda x: pj(_gelu_by_hand(fc(x), scale=c)),
                   "GELU's tanh approximation is tanh(sqrt(2/pi) * (x + 0.044715 x^3)); your factor is {value}.",
                   "math.sqrt(2 / math.pi)", lo=0.05, hi=5.0, correct=SQRT_2_OVER_PI, log=True),
            Family("GELU's sigmoid approximation with {value} instead of 1.702: h * sigmoid({value} h)",
                   lambda c: lambda x: pj((h := fc(x)) * torch.sigmoid(c * h)),
                   "GPT-2 uses GELU's tanh approximation; yours is the sigmoid approximation h * sigmoid(1.702 h), "
                   "and with {value} for 1.702 at that.", "F.gelu(h, approximate='tanh')", lo=0.3, hi=5.0,
                   correct=0.0, log=True),
            Family("GELU applied to {value} times its input", lambda c: lambda x: pj(F.gelu(c * fc(x),
                                                                                          approximate="tanh")),
                   "The activation takes c_fc's output as it is; yours multiplies it by {value} first.",
                   "self.gelu(self.c_fc(x)), no factor", lo=0.1, hi=10.0, correct=1.0, log=True)]


@reports_in_place_edits
def check_mlp(cls, seed: int = 0) -> CheckResult:
    """Check an MLP class (c_fc to 4*C, tanh-GELU, c_proj back to C) against mingpt's."""
    exercise = "MLP"
    config = attention_config()
    ref = _randomize(MLP(config), seed)
    student, problem = student_with_reference_weights(exercise, cls, ref.state_dict(), config)
    if problem is not None:
        return problem
    variants = [Variant(name, (lambda f: lambda x: f(ref.c_fc, ref.c_proj, x))(f), why, hint)
                for name, f, why, hint in MLP_MISTAKES] + _mlp_pairs(ref.c_fc, ref.c_proj)
    # A tight tolerance: the exact and the tanh GELU differ by ~1e-4 here, float32 rounding by ~1e-6.
    problem = _check_module(exercise, student, ref, variants, config, seed,
                            "use an nn.Dropout module for the output dropout", atol=1e-5,
                            fresh=lambda: student_with_reference_weights(exercise, cls, ref.state_dict(), config)[0])
    problem = refine(problem, student, _inputs(config, seed), _gelu_families(ref.c_fc, ref.c_proj))
    # a mistake on some positions or rows only (partial.py); zeros (no output) are named only on such a slice
    skipped = Variant("MLP output left at zero", torch.zeros_like, "The MLP must transform every position; yours "
                      "leaves zeros there.", "apply c_fc, GELU and c_proj to the whole (B, T, C) x")
    problem = localise(problem, student, _inputs(config, seed), ref, variants + [skipped],
                       [("position", 1), ("batch row", 0)])
    if problem is not None:
        return problem
    problem = dropout_placement(exercise, student, ref, _inputs(config, seed)[0][0])
    if problem is not None:
        return problem
    return CheckResult(exercise, True, checked=["same output as the reference MLP on 3 inputs",
                                                "deterministic in eval mode"])


# ------------------------------------------------------------------------------------------ Block
def _plain_norm(x):
    return F.layer_norm(x, x.shape[-1:])  # a LayerNorm without its gain and bias


def _wired(x, a, m, n1, n2):
    h = x + a(n1(x))
    return h + m(n2(h))


BLOCK_MISTAKES = [  # (name, the Block's output from the reference's sublayers f(a, m, ln1, ln2, x), explanation, hint)
    ("LayerNorm after the residual add (post-LN)", lambda a, m, n1, n2, x: n2((h := n1(x + a(x))) + m(h)),
     "GPT-2 normalises the *input* of each sublayer (pre-LN) and leaves the residual stream itself untouched; yours "
     "normalises after adding, as the original 2017 transformer did.", "the residual stream x should only be added to"),
    ("attention branch without its residual", lambda a, m, n1, n2, x: (h := a(n1(x))) + m(n2(h)),
     "The attention output must be *added* to x; yours replaces x with it, so the input is lost.", "x = x + ..."),
    ("MLP branch without its residual", lambda a, m, n1, n2, x: m(n2(x + a(n1(x)))),
     "The MLP output must be *added* to the residual stream; yours replaces it.", "x = x + ..."),
    ("residual adds the normalised x", lambda a, m, n1, n2, x: (h := n1(x) + a(n1(x))) + m(n2(h)),
     "The residual branch should carry x itself, not LayerNorm(x).", "add to x, not to ln_1(x)"),
    ("the stream overwritten by its norm", lambda a, m, n1, n2, x: (g := n2(n1(x) + a(n1(x)))) + m(g),
     "`x = self.ln_1(x)` replaces the residual stream by its normalised copy, so what is added to is LayerNorm(x), "
     "not x; each LayerNorm's output should only feed its sublayer.",
     "keep x; pass ln_1(x) to attn without storing it in x"),
    ("attention output indexed with [0] (batch element 0's output added to every sequence)",
     lambda a, m, n1, n2, x: (h := x + a(n1(x))[0]) + m(n2(h)),
     "The attention module returns one (B, T, C) tensor, not a tuple as Hugging Face's modules do; [0] takes "
     "sequence 0's output, which broadcasts over the batch.", "x = x + self.attn(self.ln_1(x))"),
    ("ln_1 used for both sublayers", lambda a, m, n1, n2, x: (h := x + a(n1(x))) + m(n1(h)),
     "Each sublayer has its own LayerNorm (with its own gain and bias); yours uses ln_1 twice.",
     "the MLP branch should use ln_2"),
    ("ln_2 used for both sublayers", lambda a, m, n1, n2, x: (h := x + a(n2(x))) + m(n2(h)),
     "Each sublayer has its own LayerNorm (with its own gain and bias); yours uses ln_2 twice.",
     "the attention branch should use ln_1"),
    ("ln_1 and ln_2 swapped", lambda a, m, n1, n2, x: (h := x + a(n2(x))) + m(n1(h)),
     "ln_1 normalises the attention's input and ln_2 the MLP's; yours uses each one's weights for the other.",
     "attn(ln_1(x)), then mlp(ln_2(x))"),
    ("MLP before attention", lambda a, m, n1, n2, x: (h := x + m(n2(x))) + a(n1(h)),
     "The Block first communicates (attention) and then computes (MLP); yours does the MLP first.",
     "swap the two lines"),
    ("MLP before attention, each fed by the other's LayerNorm", lambda a, m, n1, n2, x: (h := x + m(n1(x))) + a(n2(h)),
     "The Block first communicates (attention, through ln_1) and then computes (MLP, through ln_2); yours runs the "
     "MLP first, through ln_1.", "x = x + attn(ln_1(x)), then x = x + mlp(ln_2(x))"),
    ("parallel branches", lambda a, m, n1, n2, x: x + a(n1(x)) + m(n2(x)),
     "The MLP reads the stream *after* the attention output was added (GPT-J runs them in parallel; GPT-2 does not).",
     "compute the MLP branch from the updated x"),
    ("ln_1 missing", lambda a, m, n1, n2, x: (h := x + a(x)) + m(n2(h)),
     "The attention branch must see LayerNorm(x), not x itself.", "attn(ln_1(x))"),
    ("ln_2 missing", lambda a, m, n1, n2, x: (h := x + a(n1(x))) + m(h),
     "The MLP branch must see LayerNorm(x), not x itself.", "mlp(ln_2(x))"),
    ("no LayerNorm at all", lambda a, m, n1, n2, x: (h := x + a(x)) + m(h),
     "Both branches must see their LayerNorm of the stream, not the raw stream.", "attn(ln_1(x)), mlp(ln_2(x))"),
    ("MLP fed the attention output instead of the stream", lambda a, m, n1, n2, x: x + (y := a(n1(x))) + m(n2(y)),
     "The MLP's input is the updated residual stream x + attn(...), not the attention output alone.",
     "x = x + attn(...); then mlp(ln_2(x))"),
    ("LayerNorm on the branch outputs instead of their inputs",
     lambda a, m, n1, n2, x: (h := x + n1(a(x))) + n2(m(h)),
     "Pre-LN normalises what goes *into* each sublayer: x + attn(ln_1(x)); yours normalises what comes out.",
     "attn(ln_1(x)), not ln_1(attn(x))"),
    ("ln_1 used for both sublayers, MLP reading the block's input",
     lambda a, m, n1, n2, x: x + a(n1(x)) + m(n1(x)),
     "The MLP reads the updated stream through its own ln_2; yours gives it ln_1(x), the attention's input.",
     "h = x + attn(ln_1(x)); then h + mlp(ln_2(h))"),
    ("attention output added twice", lambda a, m, n1, n2, x: (h := x + a(n1(x))) + m(n2(h)) + a(n1(x)),
     "The attention branch is added to the stream once; yours adds it again at the end.",
     "return h + mlp(ln_2(h)), without another attn term"),
    ("attention branch missing", lambda a, m, n1, n2, x: x + m(n2(x)),
     "Your Block only adds the MLP branch: the attention sublayer (x = x + attn(ln_1(x))) never runs or is not "
     "added.", "x = x + self.attn(self.ln_1(x)) first"),
    ("MLP branch missing", lambda a, m, n1, n2, x: x + a(n1(x)),
     "Your Block returns the stream after attention: the MLP sublayer (x = x + mlp(ln_2(x))) never runs or is not "
     "added.", "x = x + self.mlp(self.ln_2(x)), then return x"),
    *[(f"{name} without its gain and bias (F.layer_norm without weight)", f,
       f"Each LayerNorm of the Block has a learned gain and bias; yours normalises without {name}'s.",
       f"call self.{name}(x), the module, so its weight and bias are used")
      for name, f in (("ln_1", lambda a, m, n1, n2, x: _wired(x, a, m, _plain_norm, n2)),
                      ("ln_2", lambda a, m, n1, n2, x: _wired(x, a, m, n1, _plain_norm)))],
    ("ln_1 and ln_2 without their gain and bias (F.layer_norm without weight)",
     lambda a, m, n1, n2, x: _wired(x, a, m, _plain_norm, _plain_norm),
     "Each LayerNorm of the Block has a learned gain and bias; yours normalises both branches' inputs without them "
     "(F.layer_norm(x, (C,)) only standardises).", "call self.ln_1(x) and self.ln_2(x), the modules, so their "
     "weights and biases are used"),
    ("ln_2 applied to the Block's output as well", lambda a, m, n1, n2, x: n2((h := x + a(n1(x))) + m(n2(h))),
     "The residual stream leaves the Block as it is; the next Block (or ln_f) normalises its own input.",
     "return h + mlp(ln_2(h)), not ln_2 of it"),
    ("attention branch applied twice", lambda a, m, n1, n2, x: _wired(x + a(n1(x)), a, m, n1, n2),
     "The Block runs its attention sublayer once; yours runs x = x + attn(ln_1(x)) twice before the MLP.",
     "one attention line, one MLP line"),
    *[(f"branches scaled by {c:g} before the add", (lambda c: lambda a, m, n1, n2, x: (h := x + c * a(n1(x)))
                                                     + c * m(n2(h)))(c),
       f"Each branch is added as it is; yours multiplies both by {c:g}.", "x = x + branch(...), no factor")
      for c in (0.5, 1 / math.sqrt(2), 2.0)],
]


@reports_in_place_edits
def check_block(cls, seed: int = 0) -> CheckResult:
    """Check a Block class (pre-LayerNorm, two residual branches) against mingpt's; name a wrong wiring."""
    exercise = "Block"
    config = attention_config()
    ref = _randomize(Block(config, 0), seed)
    student, problem = student_with_reference_weights(exercise, cls, ref.state_dict(), config, 0)
    if problem is not None:
        return problem
    parts = ref.attn, ref.mlp, ref.ln_1, ref.ln_2
    variants = [Variant(name, (lambda f: lambda x: f(*parts, x))(f), why, hint)
                for name, f, why, hint in BLOCK_MISTAKES] + branch_variants(parts)
    problem = _check_module(exercise, student, ref, variants, config, seed,
                            "the sublayers' dropouts must be nn.Dropout modules", atol=1e-4,
                            fresh=lambda: student_with_reference_weights(exercise, cls, ref.state_dict(), config, 0)[0])
    problem = refine(problem, student, _inputs(config, seed), branch_scales(parts))
    problem = localise(problem, student, _inputs(config, seed), ref, variants, [("batch row", 0), ("position", 1)],
                       atol=1e-4)  # a mistake on some rows or positions only (partial.py)
    if problem is not None:
        return problem
    return CheckResult(exercise, True, checked=["same output as the reference Block on 3 inputs",
                                                "pre-LayerNorm wiring with both residuals"])
