"""
Checking a student's causal self-attention (multi-head), the heart of the course.

The one idea: attention has a few *properties* that can be tested without looking at the code, and each classic
mistake breaks exactly one of them. Position t must not see later positions (change a later token: nothing
before it may move). Attention weights are a distribution over keys (feed the same vector at every position: a
weighted average of identical values is that value, whatever the weights). Scores are divided by sqrt(hs)
(rebuild the reference with other factors: the one that matches *is* the student's factor). Heads are a
reshape (undo the output projection: the right numbers in the wrong places means a split or merge in the wrong
order). In eval mode nothing is random (run twice: dropout would show).

    from mingpt.exercises import check_attention
    check_attention(MyAttention)          # MyAttention(config) or MyAttention(config, layer_idx); forward(x)
"""

from __future__ import annotations

import math

import torch

from mingpt.exercises.attention_mistakes import _attend, heads_not_transposed, variants as _variants
from mingpt.exercises.attention_weights import check_attention_weights
from mingpt.exercises.checking import CheckResult, close, crashed, fail, fmt
from mingpt.exercises.gradients import gradient_problem
from mingpt.exercises.loading import student_with_reference_weights
from mingpt.exercises.compare import (NOT_RECOGNISED, TYPE_HINT, reports_in_place_edits, same, shape_problem,
                                      where_it_differs)
from mingpt.exercises.state import module_state_problem
from mingpt.exercises.large_scores import large_score_slip
from mingpt.exercises.relations import relation
from mingpt.model import GPT, CausalSelfAttention

__all__ = ["check_attention", "check_attention_weights", "attention_config", "reference_attention"]

EXERCISE = "causal self-attention"


def attention_config(n_embd: int = 12, n_head: int = 3, block_size: int = 8, dropout: float = 0.3):
    """A small GPT config for attention exercises; dropout is on so that dropout left active in eval shows."""
    config = GPT.get_default_config()
    config.n_layer, config.n_head, config.n_embd = 1, n_head, n_embd
    config.vocab_size, config.block_size = 16, block_size
    config.attn_pdrop = config.resid_pdrop = config.embd_pdrop = dropout
    config.attention = "math"
    return config


def reference_attention(config, seed: int = 0) -> CausalSelfAttention:
    """The reference module with weights large enough that attention is far from uniform (mistakes show)."""
    g = torch.Generator().manual_seed(seed)
    module = CausalSelfAttention(config, 0).eval()
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * (0.6 if p.dim() == 2 else 0.2))
    return module


def _find_scale(student_out, ref, x, hs: int) -> float | None:
    """Search the factor s for which softmax(q k^T * s) reproduces the student's output (None if none does)."""
    def error(log_s):
        return (_attend(ref, x, scale=math.exp(log_s)) - student_out).abs().max().item()

    grid = [math.log(1e-3) + i * (math.log(1e3) - math.log(1e-3)) / 240 for i in range(241)]
    best = min(grid, key=error)
    lo, hi = best - 0.06, best + 0.06
    for _ in range(60):  # ternary search around the best grid point
        a, b = lo + (hi - lo) / 3, hi - (hi - lo) / 3
        lo, hi = (lo, b) if error(a) < error(b) else (a, hi)
    s = math.exp((lo + hi) / 2)
    if error(math.log(s)) < 1e-4 and abs(s * math.sqrt(hs) - 1) > 1e-3:
        return s
    return None


def _leak(student, x, T: int) -> tuple[int, int, torch.Tensor, torch.Tensor] | None:
    """(changed position, earlier position that moved, before, after) if a later token changes earlier output."""
    base = student(x)
    for changed in range(T - 1, 0, -1):
        x2 = x.clone()
        x2[:, changed] += 1.5
        out = student(x2)
        moved = (out[:, :changed] - base[:, :changed]).abs().amax(dim=(0, 2))  # (changed,)
        if moved.max() > 1e-6:
            t = int(moved.argmax())
            return changed, t, base[0, t], out[0, t]
    return None


def _full_mask_error(error: BaseException, B: int, nh: int, T: int, block_size: int) -> bool:
    """True when the student's exception is the one a (block_size, block_size) mask raises against (B, nh, T, T)
    scores, rebuilt as masked_fill or as an added mask (the exact message, sizes included)."""
    if T == block_size:
        return False
    scores, mask = torch.zeros(B, nh, T, T), torch.zeros(block_size, block_size)
    for attempt in (lambda: scores.masked_fill(mask == 0, 0.0), lambda: scores + mask, lambda: mask + scores):
        try:
            attempt()
        except Exception as e:
            if type(e) is type(error) and str(e) == str(error):
                return True
    return False


@reports_in_place_edits
def check_attention(cls, n_embd: int = 12, n_head: int = 3, seed: int = 0) -> CheckResult:
    """Check a causal self-attention class against mingpt's; on failure, name the mistake (see module doc)."""
    config = attention_config(n_embd, n_head)
    hs = n_embd // n_head
    ref = reference_attention(config, seed)
    student, problem = student_with_reference_weights(EXERCISE, cls, ref.state_dict(), config, 0)
    if problem is not None:
        return problem
    g = torch.Generator().manual_seed(seed + 1)
    B, T = 2, 6
    x = torch.randn(B, T, n_embd, generator=g)
    with torch.no_grad():
        try:
            out = student(x)
        except Exception as e:
            where = f"{cls.__name__}.forward(x) with x of shape {tuple(x.shape)}"
            if _full_mask_error(e, B, n_head, T, config.block_size):
                return fail(EXERCISE, "causal mask built for block_size, not cut to T",
                            f"Your code raised torch's error for a ({config.block_size}, {config.block_size}) mask "
                            f"(block_size) meeting ({T}, {T}) scores (T = {T}).",
                            f"{where} raised {type(e).__name__}: {e}", "mask[:T, :T]: the scores are (B, nh, T, T)")
            if _full_mask_error(e, B, n_head, T, B):  # a (B, B) mask: its size read from x.size(0)
                return fail(EXERCISE, "causal mask built with the batch size x.size(0), not T",
                            f"Your code raised torch's error for a ({B}, {B}) mask meeting ({T}, {T}) scores: x is "
                            "(B, T, C), so x.size(0) is the batch size. It runs only when B == T, and with B = 1 the "
                            "(1, 1) mask hides nothing (the future leaks).", f"{where} raised {type(e).__name__}: {e}",
                            "T = x.size(1): torch.tril(torch.ones(T, T))")
            if heads_not_transposed(ref, x, e, student):
                return fail(EXERCISE, "heads not moved before the time axis (view without transpose(1, 2))",
                            f"After view(B, T, nh, hs) the heads sit on axis 2, so q @ k^T compares heads, not "
                            f"positions: ({B}, {T}, {n_head}, {n_head}) scores that your ({T}, {T}) mask cannot fit; "
                            f"with T = n_head = {n_head} it runs, and gives exactly that wrong attention.",
                            f"{where} raised {type(e).__name__}: {e}",
                            "q.view(B, T, nh, hs).transpose(1, 2): (B, nh, T, hs), and back before the merge")
            return crashed(EXERCISE, where, e)
        expected = ref(x)
        if not isinstance(out, torch.Tensor):  # a tuple (y, att), None, an array: say what it is, not a head hint
            name, why = shape_problem(out, expected)
            return fail(EXERCISE, name, why + ".", f"x of shape (B, T, C) = {tuple(x.shape)}",
                        hint=TYPE_HINT)
        if out.shape != expected.shape:
            got = tuple(out.shape)
            return fail(EXERCISE, "wrong output shape",
                        f"For x of shape (B, T, C) = {tuple(x.shape)} the output must have the same shape; yours: "
                        f"{got}.", hint="re-assemble the heads side by side: (B, nh, T, hs) -> (B, T, C)")
        if torch.isnan(out).any():
            # NaN hides where the outputs differ, so a variant must reproduce the NaN pattern too (equal_nan) on
            # the whole output: naming from "row 0 is NaN" alone would blame the diagonal for any NaN source.
            def nan_matches(**knobs):
                return torch.allclose(out.double(), _attend(ref, x, **knobs).double(), atol=1e-5, equal_nan=True)
            if nan_matches(mask="strict"):
                return fail(EXERCISE, "position t cannot attend to itself",
                            "Your mask also hides the diagonal, so position 0 has no key left: its softmax over "
                            "nothing but -inf is NaN.",
                            f"x of shape {tuple(x.shape)} -> your output[0, 0, :4] = {fmt(out[0, 0])}; "
                            f"expected {fmt(expected[0, 0])}",
                            "query t may look at keys 0..t, t included")
            if nan_matches(mask="inverted"):
                return fail(EXERCISE, "mask inverted: the past hidden, the future kept",
                            "Your mask hides keys 0..t from query t and keeps the later ones, so the last position has "
                            "no key left (NaN) and every other one sees only the future.",
                            f"x of shape {tuple(x.shape)} -> your output[0, {T - 1}] is NaN, output[0, 0, :4] = "
                            f"{fmt(out[0, 0])}", "masked_fill where the mask is 0 (the future), not where it is 1")
            if nan_matches(softmax_dim=1):
                return fail(EXERCISE, "softmax over the wrong dimension",
                            "Your softmax normalises across the heads (dim 1 of (B, nh, T, T)): a masked score is -inf "
                            "in every head, so those entries become 0/0 = NaN. The weights of each query must sum "
                            "to 1 over the keys (the last axis).",
                            f"x of shape {tuple(x.shape)} -> your output[0] has {int(torch.isnan(out[0]).sum())} NaN "
                            "values", "softmax(dim=-1)")
            return fail(EXERCISE, "NaN in the output", "Some outputs are NaN (often a softmax over all -inf).",
                        f"your output[0] has {int(torch.isnan(out[0]).sum())} NaN values",
                        hint="a row of scores that is all -inf gives NaN after the softmax: check what your mask hides")
        if not close(student(x), out, atol=0):
            again = student(x)
            return fail(EXERCISE, "dropout active in eval mode",
                        "In eval mode the same input must give the same output; yours changes from run to run, so "
                        "a dropout is still on.",
                        f"the same x twice -> output[0, 0, :4] = {fmt(out[0, 0])} then {fmt(again[0, 0])}",
                        "use nn.Dropout modules (switched off by model.eval()), or pass training=self.training")
        if close(out, expected):
            fresh = lambda: student_with_reference_weights(EXERCISE, cls, ref.state_dict(), config, 0)[0]  # noqa
            for T_edge in (1, config.block_size):  # edge cases: one token, a full context
                x_edge = torch.randn(1, T_edge, n_embd, generator=g)
                stale = module_state_problem(EXERCISE, fresh, [(x,), (x_edge,)], ref,
                                    lambda v: f"x of shape {tuple(v.shape)}")  # a mask kept from the first call?
                if stale is not None:
                    return stale
                try:
                    out_edge = student(x_edge)
                except Exception as e:
                    return crashed(EXERCISE, f"forward(x) with T = {T_edge}", e)
                if not close(out_edge, ref(x_edge)):
                    return fail(EXERCISE, f"wrong result for a sequence of length {T_edge}",
                                f"Your attention matches on T = {T} but not on T = {T_edge}.",
                                f"x of shape {tuple(x_edge.shape)} -> yours {fmt(out_edge[0, -1])}, expected "
                                f"{fmt(ref(x_edge)[0, -1])}",
                                "build the mask for the actual length T of x, not a fixed one")
            big = 300 * torch.randn(2, 6, n_embd, generator=torch.Generator().manual_seed(seed + 7))
            slip = large_score_slip(EXERCISE, student, lambda v, **kw: _attend(ref, v, **kw), (big,),
                                    f"x of shape (2, 6, {n_embd}) scaled by 300 (scores near a million)")
            if slip is not None:
                return slip
            # right outputs: do the gradients reach c_attn, c_proj and x (no q/k/v computed under no_grad)?
            blocked = gradient_problem(EXERCISE, student, ref, x, seed)
            if blocked is not None:
                return blocked
            return CheckResult(EXERCISE, True, checked=[
                "same output as the reference", "no future leakage", "deterministic in eval mode",
                f"T = 1 and T = block_size = {config.block_size} work"])
        return _diagnose(student, ref, x, out, expected, hs, T)


def _diagnose(student, ref, x, out, expected, hs, T) -> CheckResult:
    """The output differs from the reference: find which property is broken."""
    where = f"x of shape {tuple(x.shape)} (seeded random)"
    # A variant is the diagnosis only if it also reproduces the student's output on other shapes (one sequence of
    # a longer sequence, three of length 3): matching one input can be a coincidence.
    g = torch.Generator().manual_seed(T)
    others = [torch.randn(1, T + 2, x.shape[-1], generator=g), torch.randn(3, 3, x.shape[-1], generator=g)]
    try:
        other_outs = [student(o) for o in others]
    except Exception:
        other_outs = None
    variant = next((v for v in _variants(ref, hs) if _explains(v, [x] + others, [out] + (other_outs or [None] * 2))),
                   None)
    if variant is not None:
        example = (f"{where}\nyour output[0, {T - 1}, :4] = {fmt(out[0, T - 1])}\n"
                   f"expected      {fmt(expected[0, T - 1])}")
        if variant.property in ("softmax over the wrong dimension", "mask applied after the softmax"):
            same = x[:, :1].expand_as(x).contiguous()  # the same vector at every position
            y_same = student(same)
            example = (f"every position gets the same vector x[0, 0] = {fmt(same[0, 0])}: a weighted average of "
                       f"identical values must give the same output everywhere\nyour output at position 0: "
                       f"{fmt(y_same[0, 0])}\nyour output at position {T - 1}: {fmt(y_same[0, T - 1])}")
        elif variant.property in ("no causal mask", "masked scores set to 0 instead of -inf"):
            leak = _leak(student, x, T)
            if leak:
                changed, t, before, after = leak
                example = _leak_example(changed, t, before, after)
        return fail(EXERCISE, variant.property, variant.explanation, example, variant.hint)
    try:
        found = other_outs and relation([x] + others, [out] + other_outs, [ref(i) for i in [x] + others])
    except Exception:  # a relation that cannot be tested on these outputs names nothing
        found = None
    if found:  # a relation to the reference's output on every input (relations.py), e.g. an extra residual
        return fail(EXERCISE, found[0], found[1], f"{where}\nyour output[0, {T - 1}, :4] = {fmt(out[0, T - 1])}\n"
                    f"expected      {fmt(expected[0, T - 1])}", found[2])
    leak = _leak(student, x, T)
    if leak:
        changed, t, before, after = leak
        # Only the fact: a wrong mask does this (on every head and row, or on some of them), but so does a softmax
        # over another axis than the keys (heads: the masked keys share the weight) or a reshape that mixes positions.
        return fail(EXERCISE, "future leakage", f"Your output at position {t} depends on a later position: a mask "
                    "that lets the future through (on some heads or rows, or on all), a softmax over another axis "
                    "than the keys, or q/k/v split or reshaped across the time axis.",
                    _leak_example(changed, t, before, after),
                    "query t may only attend to keys 0..t: check the mask's triangle, and that q, k, v are split "
                    "on the last axis (split(C, dim=2)) before the heads")
    scale = _find_scale(out, ref, x, hs)
    if scale is not None:
        return fail(EXERCISE, "wrong scaling factor",
                    f"Your scores are multiplied by {scale:.4g} (= 1/{1 / scale:.4g}); the reference multiplies by "
                    f"1/sqrt(hs) = {1 / math.sqrt(hs):.4g} with hs = {hs} (the head size, not n_embd).",
                    f"{where}\nyour output[0, {T - 1}, :4] = {fmt(out[0, T - 1])}\nexpected      "
                    f"{fmt(expected[0, T - 1])}", "scale by one over the square root of the head size")
    if ref.c_proj.weight.shape[0] == ref.c_proj.weight.shape[1]:  # undo c_proj: right values, wrong places?
        W, b = ref.c_proj.weight.double(), ref.c_proj.bias.double()
        pre = torch.linalg.solve(W, (out.double() - b).reshape(-1, W.shape[0]).T).T
        want = _attend(ref, x, project=False).double().reshape(-1)
        if torch.allclose(pre.reshape(-1).sort().values, want.sort().values, atol=1e-4):
            return fail(EXERCISE, "heads split or merged in the wrong order",
                        "Before the output projection your tensor holds exactly the reference's numbers, but in a "
                        "different arrangement.", f"{where}\nyour output[0, 0, :4] = {fmt(out[0, 0])}\nexpected "
                        f"{fmt(expected[0, 0])}", "split (B, T, C) -> (B, T, nh, hs) -> (B, nh, T, hs) and undo "
                        "exactly those steps in reverse")
    return fail(EXERCISE, NOT_RECOGNISED, "Your output differs from the reference, and no mistake the checker knows "
                "reproduces your outputs on every tested input, so it names none. Here is where:",
                f"{where}\nyour output[0, {T - 1}, :4] = {fmt(out[0, T - 1])}\n"
                f"expected      {fmt(expected[0, T - 1])}\n"
                + where_it_differs(out, expected),
                "print the shapes after each step: (B, T, C) -> q, k, v (B, nh, T, hs) -> scores (B, nh, T, T)")


def _explains(variant, inputs, outputs) -> bool:
    try:
        return all(same(out, variant.compute(x), atol=1e-5) for x, out in zip(inputs, outputs))
    except Exception:
        return False


def _leak_example(changed, t, before, after) -> str:
    return (f"changing only position {changed} of x moved your output at position {t} < {changed}:\n"
            f"before: output[0, {t}, :4] = {fmt(before)}\nafter:  output[0, {t}, :4] = {fmt(after)}\n"
            f"it must not move: position {t} may only see positions 0..{t}")
