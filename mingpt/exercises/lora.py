"""
Checking a student's LoRA layer (mingpt.posttrain.lora's idea): a frozen nn.Linear plus a trainable low-rank
correction, y = base(x) + (alpha / r) B A x, and merge() folding that correction into the base weight.

The checker seeds the layer, sets A and B to trained-looking values (with B = 0 a wrong scale would hide), and
compares the forward, the merged weight and the forward after merging with the reference; a mistake is named only
when a rebuilt variant from the tables (lora_mistakes.py) reproduces the student's output exactly (compare.explain).

    from mingpt.exercises.lora import check_lora_layer
    check_lora_layer(MyLoRALinear)         # MyLoRALinear(base: nn.Linear, r, alpha), with lora_A, lora_B, merge()
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from mingpt.exercises.checking import CheckResult, Variant, crashed, fail, fmt, run
from mingpt.exercises.loading import build, construct
from mingpt.exercises.compare import NOT_RECOGNISED, explain, reports_in_place_edits, same, where_it_differs
from mingpt.exercises.lora_mistakes import (ALPHA, CRASH_HINT, HINT, IN, LORA_FORWARD_MISTAKES, LORA_INIT_MISTAKES,
                                             LORA_MERGE_CRASHES, LORA_MERGE_MISTAKES, LORA_ORDER_CRASHES, OUT, RANK,
                                             SCALE_FORMULAS, SETTINGS, lora_output)
from mingpt.exercises.lora_merge import merge_scale, weights_of
from mingpt.exercises.lora_parts import (FORWARD_SCALES, arguments_swapped, confirm_merge_scale, positions_left,
                                         square_base)

__all__ = ["CRASH_HINT", "LORA_FORWARD_MISTAKES", "LORA_INIT_MISTAKES", "LORA_MERGE_MISTAKES", "check_lora_layer"]
def _order_crash(problem: CheckResult, *args, crashes=LORA_ORDER_CRASHES) -> CheckResult:
    # rebuilt on the values as given and on copies of A and B that require grad, as the student's parameters do:
    # torch's matmul of a 2-D and a 3-D tensor takes another path (and words its error otherwise) under autograd
    tracked = args[:-2] + tuple(t.detach().clone().requires_grad_() for t in args[-2:])
    for variant in crashes:
        for values in (args, tracked):
            try:
                variant.compute(*values)
            except RuntimeError as e:
                if f"RuntimeError: {e}" in problem.explanation:
                    return fail(problem.exercise, variant.property, variant.explanation, problem.explanation,
                                variant.hint)
    return problem


def _setting(cls, r: int, alpha: float):
    """(x, your output, the reference's, the correction B A x) at one setting, or None when the layer cannot run."""
    gen = torch.Generator().manual_seed(r)
    try:
        layer, W, b, A, B = _fresh(cls, r, alpha, gen=gen)
        with torch.no_grad():
            x = torch.randn(2, 3, IN, generator=gen)
            out = layer(x)
    except Exception:
        return None
    return x, out, lora_output(x, W, b, A.detach(), B.detach(), alpha / r), x @ A.detach().T @ B.detach().T


def _other_settings(exercise: str, cls) -> CheckResult | None:
    """None when the layer matches the reference at every setting; else the scale formula that explains every
    setting, a hard-coded scale, or "not recognised" with where the output differs."""
    settings = [_setting(cls, r, alpha) for r, alpha in SETTINGS]
    if any(s is None for s in settings) or all(same(s[1], s[2]) for s in settings):
        return None
    scales = []
    for (r, alpha), (x, out, expected, correction) in zip(SETTINGS, settings):
        base_out = expected - alpha / r * correction
        s = float(((out - base_out) * correction).sum() / (correction * correction).sum())
        scales.append(s if same(out, base_out + s * correction, 1e-4) else None)
    i = next(i for i, s in enumerate(settings) if not same(s[1], s[2]))
    r, alpha = SETTINGS[i]
    example = f"base {IN}->{OUT}, r={r}, alpha={alpha}, your layer(x), x of shape {tuple(settings[i][0].shape)}\n" \
              f"yours    {fmt(settings[i][1], 5)}\nexpected {fmt(settings[i][2], 5)}"
    if None not in scales:
        for name, formula, why in SCALE_FORMULAS:
            if all(math.isclose(s, formula(a, r), rel_tol=1e-4) for s, (r, a) in zip(scales, SETTINGS)):
                return fail(exercise, name, why, example, "scale = alpha / r")
        ratios = [s * r / a for s, (r, a) in zip(scales, SETTINGS)]  # a stray factor times the right scale
        if not any(math.isclose(ratios[0], c, rel_tol=1e-4) for c in (0.0, 1.0)) and all(
                math.isclose(c, ratios[0], rel_tol=1e-4) for c in ratios):
            return fail(exercise, f"LoRA scaled by {ratios[0]:.4g} * alpha / r (a stray factor {ratios[0]:.4g})",
                        f"Your correction is alpha / r times {ratios[0]:.4g} at every (r, alpha) tried: alpha and r "
                        "are read right, and a constant multiplies them.", example, "scale = alpha / r")
        if all(math.isclose(s, scales[0], rel_tol=1e-4) for s in scales):
            return fail(exercise, f"LoRA scale hard-coded to {scales[0]:.4g}, whatever alpha and r are",
                        f"Your correction is multiplied by {scales[0]:.4g} at every (r, alpha) tried; the scale is "
                        "alpha / r, computed from the arguments.", example, "self.scale = alpha / r")
        # one argument read, the other a number: c / r (alpha ignored) or alpha / c (r ignored)
        for arg, other, consts in (("alpha", "r", [s * r for s, (r, _) in zip(scales, SETTINGS)]),
                                   ("r", "alpha", [a / s if s else 0.0 for s, (_, a) in zip(scales, SETTINGS)])):
            if consts[0] and all(math.isclose(c, consts[0], rel_tol=1e-4) for c in consts):
                c = f"{consts[0]:.4g}"
                width = {IN: "in_features", OUT: "out_features"}.get(round(consts[0])) if arg == "r" else None
                # a layer width read as the rank (alpha / in_features): named as such, not as a number typed in
                if width is not None and math.isclose(consts[0], round(consts[0]), rel_tol=1e-4):
                    return fail(exercise, f"LoRA scale divides by the layer's {width} ({c}), not by r",
                                f"Your correction is multiplied by alpha / {c} at every r tried, and {c} is this "
                                f"layer's {width}: r is the rank of B A (lora_A.shape[0]), not a width of the layer.",
                                example, "self.scale = alpha / r, with the r passed to __init__")
                return fail(exercise, f"LoRA scale uses a fixed {arg} ({c}), not the {arg} argument",
                            f"Your correction is multiplied by {c} / r at every setting tried." if arg == "alpha" else
                            f"Your correction is multiplied by alpha / {c} at every setting tried.",
                            example, f"scale = alpha / r with the {arg} passed to __init__ (a default value or a "
                            f"number written in place of {arg}?); the {other} part is right")
    return fail(exercise, NOT_RECOGNISED, "Your layer matches the reference at one setting but not at "
                f"r={r}, alpha={alpha}, and no known mistake reproduces every setting.",
                example + "\n" + where_it_differs(settings[i][1], settings[i][2]), HINT)


@reports_in_place_edits
def check_lora_layer(cls) -> CheckResult:
    """Check cls(base: nn.Linear, r, alpha): lora_A (r, in), lora_B (out, r), forward = base(x) + alpha/r * B A x,
    and merge() folding the correction into base.weight, after which forward gives the same outputs."""
    exercise = "LoRA layer and merge"
    with torch.random.fork_rng():  # seeded, and the student's own random stream left as it was
        torch.manual_seed(0)
        base = nn.Linear(IN, OUT)
    W, b = base.weight.detach().clone(), base.bias.detach().clone()
    layer, problem = construct(exercise, cls, base, RANK, ALPHA)
    if problem is not None:
        return arguments_swapped(exercise, cls, problem)
    A, B = weights_of(layer, "lora_A"), weights_of(layer, "lora_B")
    if A is None or B is None or A.shape != (RANK, IN) or B.shape != (OUT, RANK):
        return fail(exercise, "lora_A (r, in) and lora_B (out, r) not found",
                    "The checker reads the factors as PEFT stores them: lora_A of shape (r, in_features) and lora_B "
                    "of shape (out_features, r), each an nn.Parameter or the weight of an nn.Linear.",
                    f"expected layer.lora_A of shape {(RANK, IN)} and layer.lora_B of shape {(OUT, RANK)}; yours: "
                    f"{None if A is None else tuple(A.shape)} and {None if B is None else tuple(B.shape)}",
                    hint="nn.Parameter(torch.empty(r, in_features)) and nn.Parameter(torch.zeros(out_features, r))")
    registered = {id(p) for p in layer.parameters()}
    hidden = [name for name, t in (("lora_A", A), ("lora_B", B)) if id(t) not in registered and t.requires_grad]
    if hidden:  # a bare tensor with requires_grad: never in layer.parameters(), so never trained, moved or saved
        # (without requires_grad it is told "A and B are not trainable" below, with the same fix)
        return fail(exercise, f"{' and '.join(hidden)} not registered as parameters", "A tensor kept as a plain "
                    "attribute is not one of the module's parameters: the optimizer (built from "
                    "model.parameters()) never updates it, .to(device) does not move it and the state dict leaves "
                    "it out.", f"{len(registered)} registered tensors; {', '.join(hidden)} not among them",
                    "self.lora_A = nn.Parameter(torch.empty(r, in_features)) (or an nn.Linear)")
    wrong = [f"{name} is {t.dtype}" for name, t in (("lora_A", A), ("lora_B", B)) if t.dtype != base.weight.dtype]
    if wrong:  # checked before any product: x (float32) @ A.T (float64) raises inside the checker's reference
        return fail(exercise, "wrong dtype: the adapters' dtype differs from the base layer's", f"{', '.join(wrong)}"
                    f", the base weight {base.weight.dtype}: the correction must be added to (and merged into) a "
                    "weight of the base's dtype.", ", ".join(wrong), "create A and B with the base weight's dtype "
                    "(torch.empty(r, in_features) is float32, as nn.Linear's weight)")
    broken = ("the base layer is not frozen" if base.weight.requires_grad and base.bias.requires_grad
              else "the base layer's bias is not frozen (its weight is)" if base.bias.requires_grad
              else "the base layer's weight is not frozen (its bias is)" if base.weight.requires_grad
              else "A and B are not trainable" if not (A.requires_grad and B.requires_grad)
              else "A and B initialisations swapped (A zero, B random)" if not A.detach().any() and B.detach().any()
              else "A initialised to zero" if not A.detach().any() else "B initialised non-zero" if B.detach().any()
              else None)
    if broken:
        state = f"base.weight requires_grad={base.weight.requires_grad}, base.bias requires_grad=" \
                f"{base.bias.requires_grad}, A nonzero={bool(A.detach().any())}, " \
                f"B nonzero={bool(B.detach().any())}"
        found = fail(exercise, broken, LORA_INIT_MISTAKES[broken][0], state, LORA_INIT_MISTAKES[broken][1])
        return found if broken == "A and B are not trainable" else _and_the_rest(found, cls)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():  # trained-looking adapters: with B = 0 a wrong scale would hide
        A.copy_(torch.randn(A.shape, generator=gen))
        B.copy_(torch.randn(B.shape, generator=gen))
    A0, B0, x = A.detach().clone(), B.detach().clone(), torch.randn(2, 3, IN, generator=gen)
    expected = lora_output(x, W, b, A0, B0, ALPHA / RANK)
    out, problem = run(exercise, "your layer(x)", layer, x, hint=CRASH_HINT)
    if problem is not None:
        return _order_crash(problem, x, A0, B0)
    found = explain(exercise, [(x, W, b, A0, B0)], [out], lambda *a: lora_output(*a, ALPHA / RANK),
                    LORA_FORWARD_MISTAKES,
                    lambda x, *_: f"base {IN}->{OUT}, r={RANK}, alpha={ALPHA}, your layer(x), x of shape "
                    f"{tuple(x.shape)}", hint=HINT)
    again, _ = run(exercise, "your layer(x), a second time", layer, x)
    if found is not None and isinstance(out, torch.Tensor) and isinstance(again, torch.Tensor) and \
            again.shape == out.shape and not torch.equal(again, out):
        return fail(exercise, "random output: the same x gives different outputs (dropout in train mode?)",
                    "Two calls on the same x returned different values, so no fixed formula explains them; the "
                    "checker's layer is in train mode, where nn.Dropout / F.dropout(training=True) is on.",
                    f"first call {fmt(out, 5)}\nsecond call {fmt(again, 5)}\nexpected {fmt(expected, 5)}",
                    "this exercise's layer has no dropout (or F.dropout(x, p, training=self.training))")
    if found is not None and found.property == NOT_RECOGNISED:  # the correction at some positions only?
        named = positions_left(exercise, x, out, W, b, A0, B0)
        found = found if named is None else named
    if found is not None and (found.property == NOT_RECOGNISED or found.property in FORWARD_SCALES and not all(
            s is not None and same(s[1], s[2] + (FORWARD_SCALES[found.property](a, r) - a / r) * s[3])
            for s, (r, a) in zip([_setting(cls, r, a) for r, a in SETTINGS[1:]], SETTINGS[1:]))):
        named = _other_settings(exercise, cls)  # a scale formula of alpha and r, read off settings
        found = found if named is None else named  # (a failed CheckResult is falsy: test for None)
    if found is not None:  # the forward is wrong: is the merge wrong in another way too?
        return _and_merge(exercise, found, layer, base, x, out, W, A0, B0)
    weight_before = base.weight
    _, problem = run(exercise, "your layer.merge()", layer.merge, hint=CRASH_HINT)
    if problem is not None:
        return _order_crash(problem, W, A0, B0, crashes=LORA_MERGE_CRASHES)
    merged = base.weight.detach()
    found = explain(exercise, [(W, A0, B0)], [merged], lambda W, A, B: W + ALPHA / RANK * B @ A, LORA_MERGE_MISTAKES,
                    lambda W, *_: f"base.weight after merge(), expected W + (alpha / r) B A; W[0] before "
                    f"{fmt(W[0], 5)}", hint=HINT)
    if found is not None and found.property not in {v.property for v in LORA_MERGE_MISTAKES}:
        named = merge_scale(exercise, cls, W, A0, B0, merged)  # W + s B A: the merge's scale, as a formula
        found = found if named is None else named
    if found is not None:  # a scale row of the table, confirmed at every (r, alpha) before it is named
        found = confirm_merge_scale(exercise, cls, found, W, A0, B0, merged)
    if found is not None:
        return found
    if any(p.requires_grad for p in base.parameters()):  # the value is right, the base no longer frozen
        replaced = base.weight is not weight_before
        return fail(exercise, "merge() left the base layer trainable" + (" (base.weight replaced by a new "
                    "nn.Parameter, which has requires_grad=True)" if replaced else ""), "After merge() the base "
                    "weight holds the correction and must stay frozen like before: a trainable base is updated by "
                    "the next optimizer step (and keeps Adam moments for the whole matrix)." + (
                        " nn.Parameter(...) creates a new, trainable tensor in place of the frozen one." if replaced
                        else ""), f"after merge(): base.weight.requires_grad={base.weight.requires_grad}",
                    "add in place to the existing weight under torch.no_grad(): self.base.weight += delta")
    after, problem = run(exercise, "your layer(x) after merge()", layer, x, hint=CRASH_HINT)
    if problem is not None:
        return problem
    twice = [Variant("the correction is added twice after merge",
                     lambda: lora_output(x, W + ALPHA / RANK * B0 @ A0, b, A0, B0, ALPHA / RANK),
                     "Once merged, the base weight already holds the correction: the forward must stop adding it.",
                     "remember that the layer is merged (a flag) and skip the correction then"),
             Variant("after merge() the forward still reads the weight from before the merge (a copy kept?)",
                     lambda: F.linear(x, W, b), "merge() put the correction into base.weight and the forward then "
                     "skips it, but the forward multiplies by the base weight as it was before merge (a clone or a "
                     "tensor kept from __init__): the merged layer has lost the correction.",
                     "compute the base's output from self.base (or self.base.weight) in every forward")]
    found = explain(exercise, [()], [after], lambda: expected, twice,
                    lambda: "your layer(x) after merge() (it must equal the output before merge)", hint=HINT)
    if found is not None:
        return found
    found = _other_settings(exercise, cls)  # right at r=3, alpha=6: and at the other settings?
    if found is None:
        found = _edges(exercise, cls)  # and for a 2-D x, new A and B, a base without bias?
    if found is None:
        found = square_base(exercise, cls)  # and on a square base, where a transposed correction fits?
    if found is None:
        found = _gradients(exercise, cls)  # and does backward reach A and B?
    if found is not None:
        return found
    return CheckResult(exercise, True, checked=["base frozen, A random, B zero", "y = base(x) + alpha/r B A x at "
                                                "three (r, alpha)", "merge folds alpha/r B A into the weight, "
                                                "outputs unchanged", "a 2-D x, A and B changed, a base without bias",
                                                "gradients reach A and B"])


def _and_merge(exercise, found: CheckResult, layer, base, x, out, W, A0, B0) -> CheckResult:
    """found (the forward's mistake), or both mistakes when merge() is wrong in a way that the forward's mistake does
    not account for: a merge that keeps the layer's own outputs is consistent with its forward, one slip only."""
    _, problem = run(exercise, "your layer.merge()", layer.merge)
    if problem is not None:
        return found
    merged = explain(exercise, [(W, A0, B0)], [base.weight.detach()],
                     lambda W, A, B: W + ALPHA / RANK * B @ A, LORA_MERGE_MISTAKES, lambda *_: "", hint=HINT)
    after, problem = run(exercise, "your layer(x) after merge()", layer, x)
    if (merged is None or merged.property == NOT_RECOGNISED) and problem is None and isinstance(out, torch.Tensor) \
            and isinstance(after, torch.Tensor) and after.shape == out.shape and not same(after, out):
        b = base.bias.detach() if base.bias is not None else None
        own = F.linear(x, base.weight.detach(), b) + (out - F.linear(x, W, b))  # the merged weight + its correction
        if same(after, own, 1e-4):  # whatever the correction's mistake, merging must not add it a second time
            merged = fail(exercise, "the correction is added twice after merge", "Once merged, the base weight "
                          "already holds the correction: the forward must stop adding it.", "",
                          "remember that the layer is merged (a flag) and skip the correction then")
    if merged is None or merged.property == NOT_RECOGNISED or problem is None and same(after, out):
        return found
    return fail(exercise, f"two mistakes: {found.property}; and {merged.property}", f"{found.explanation} And: "
                f"{merged.explanation}", found.counterexample, f"{found.hint}; and {merged.hint}")


def _and_the_rest(found: CheckResult, cls) -> CheckResult:
    """found (the base left trainable, or A or B initialised wrong), or both mistakes when the same class, with its
    base frozen and A random, B zero after construction, still has a named mistake: neither changes a value the
    rest of the check reads (it sets A and B itself), so the rest still applies."""
    class Frozen(cls):
        def __init__(self, base, *args, **kwargs):
            super().__init__(base, *args, **kwargs)
            base.requires_grad_(False)
            A, B = weights_of(self, "lora_A"), weights_of(self, "lora_B")
            with torch.no_grad():
                if not A.detach().any():
                    A.copy_(torch.randn(A.shape, generator=torch.Generator().manual_seed(11)))
                B.zero_()
    rest = check_lora_layer(Frozen)
    if rest or rest.property in (NOT_RECOGNISED, found.property) or "raised" in rest.property:
        return found
    return fail(found.exercise, f"two mistakes: {found.property}; and {rest.property}", f"{found.explanation} And: "
                f"{rest.explanation}", f"{found.counterexample}\n{rest.counterexample}",
                f"{found.hint}; and {rest.hint}")


def _fresh(cls, r: int = RANK, alpha: float = ALPHA, bias: bool = True, gen: torch.Generator | None = None):
    """(layer, W, b, A, B) with trained-looking A and B drawn from gen, on a seeded base (with or without bias)."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        base = nn.Linear(IN, OUT, bias=bias)
    W, b = base.weight.detach().clone(), None if base.bias is None else base.bias.detach().clone()
    layer = build(cls, base, r, alpha)
    A, B = weights_of(layer, "lora_A"), weights_of(layer, "lora_B")
    gen = torch.Generator().manual_seed(2) if gen is None else gen
    with torch.no_grad():
        A.copy_(torch.randn(A.shape, generator=gen))
        B.copy_(torch.randn(B.shape, generator=gen))
    return layer, W, b, A, B


def _edges(exercise: str, cls) -> CheckResult | None:
    """None when the layer, right on (2, 3, in) inputs, is right on a 2-D x too, follows A and B when they change
    after a first call (as training changes them), and works on a base built with bias=False; else which fails."""
    layer, W, b, A, B = _fresh(cls)
    x = torch.randn(2, 3, IN, generator=torch.Generator().manual_seed(3))
    first, problem = run(exercise, "your layer(x)", layer, x)
    if problem is not None:
        return problem
    A0, B0 = A.detach().clone(), B.detach().clone()
    flat, problem = run(exercise, f"your layer(x) on a 2-D x of shape {(3, IN)}", layer, x[0], hint=CRASH_HINT)
    if problem is not None or not same(flat, lora_output(x[0], W, b, A0, B0, ALPHA / RANK)):
        why = (problem.counterexample or problem.explanation) if problem is not None else \
            f"yours    {fmt(flat, 5)}\nexpected {fmt(lora_output(x[0], W, b, A0, B0, ALPHA / RANK), 5)}"
        return fail(exercise, "works on 3-D x (B, T, in) only: a 2-D x (N, in) fails", "A linear layer takes x of "
                    "any shape (..., in_features), as nn.Linear does: (N, in) rows, (B, T, in) sequences. Yours is "
                    "right on a (2, 3, in) x but not on its first row alone, (3, in).", why,
                    "write the correction for any leading dimensions: x @ A.T @ B.T, F.linear, or an einsum with "
                    "'...i'")
    with torch.no_grad():  # an optimizer step: the next forward must use the new values
        A.add_(torch.randn(A.shape, generator=torch.Generator().manual_seed(4)))
        B.add_(torch.randn(B.shape, generator=torch.Generator().manual_seed(5)))
    after, problem = run(exercise, "your layer(x) after A and B changed", layer, x)
    if problem is not None:
        return problem
    moved = lora_output(x, W, b, A.detach(), B.detach(), ALPHA / RANK)
    if not same(after, moved):
        stale = same(after, first)
        return fail(exercise, "the forward keeps the A and B of an earlier call (a cached B A)" if stale else
                    NOT_RECOGNISED, "After A and B change (an optimizer step), the next forward must use them; "
                    + ("yours returned the same output as before the change: something computed on an earlier call "
                       "was kept." if stale else "yours is right before the change but not after it."),
                    "your layer(x) after A and B changed\n" + where_it_differs(after, moved),
                    "compute the correction from self.lora_A and self.lora_B in every forward")
    try:  # a base without bias: nn.Linear(..., bias=False), as LLaMA's projections
        layer, W, b, A, B = _fresh(cls, bias=False)
        out, problem = run(exercise, "your layer(x) on a base built with bias=False", layer, x)
    except Exception as e:
        out, problem = None, crashed(exercise, f"{cls.__name__}(nn.Linear({IN}, {OUT}, bias=False), ...)", e)
        W, b, A, B = torch.zeros(OUT, IN), None, torch.zeros(RANK, IN), torch.zeros(OUT, RANK)
    expected = lora_output(x, W, None, A.detach(), B.detach(), ALPHA / RANK)
    if problem is not None or not same(out, expected):
        return fail(exercise, "fails on a base layer built with bias=False", "nn.Linear(..., bias=False) has "
                    "base.bias = None (LLaMA's projections, GPT-2's lm_head): the layer must work with it, as "
                    "base(x) does.", (problem.counterexample or problem.explanation) if problem is not None else
                    f"yours    {fmt(out, 5)}\nexpected {fmt(expected, 5)}", "let the base layer add its own bias: "
                    "self.base(x)")
    return None


def _gradients(exercise: str, cls) -> CheckResult | None:
    """None when backward through the layer gives A and B the reference's gradients; else a failed result. The
    values can be right while no gradient reaches the adapters (a correction computed from .data, .detach() or under
    torch.no_grad()): then the adapters never train."""
    layer, W, b, A, B = _fresh(cls)
    x = torch.randn(2, 3, IN, generator=torch.Generator().manual_seed(6))
    upstream = torch.randn(2, 3, OUT, generator=torch.Generator().manual_seed(7))
    out, problem = run(exercise, "your layer(x)", layer, x)
    if problem is not None or not isinstance(out, torch.Tensor):
        return problem
    A_ref, B_ref = A.detach().clone().requires_grad_(), B.detach().clone().requires_grad_()
    (lora_output(x, W, b, A_ref, B_ref, ALPHA / RANK) * upstream).sum().backward()
    if not out.requires_grad:
        missing = ["lora_A", "lora_B"]
    else:
        A.grad = B.grad = None
        (out * upstream).sum().backward()
        missing = [name for name, t in (("lora_A", A), ("lora_B", B)) if t.grad is None or not t.grad.any()]
    if missing:
        return fail(exercise, f"no gradient reaches {' and '.join(missing)} (the correction detached: .data, "
                    ".detach() or torch.no_grad() in the forward)", "The forward's values are right, but backward "
                    f"leaves {' and '.join(missing)} without a gradient, so the optimizer never moves them: the "
                    "correction must be computed from the parameters themselves, inside the autograd graph.",
                    f"your layer(x).backward(...): {', '.join(missing)}.grad is None or zero",
                    "x @ self.lora_A.T @ self.lora_B.T, without .data or a no_grad block in forward")
    for name, t, ref in (("lora_A", A, A_ref), ("lora_B", B, B_ref)):
        if not same(t.grad, ref.grad, 1e-4):
            return fail(exercise, NOT_RECOGNISED, f"The forward's values are right but {name}'s gradient is not "
                        "the reference's, and no known mistake explains it.", f"{name}.grad after backward\n"
                        + where_it_differs(t.grad, ref.grad), HINT)
    return None
