"""
Checking a student's modern parts, the four pieces by which Llama differs from GPT-2: RMSNorm, rotary positions
(RoPE), the SwiGLU MLP and grouped-query attention (RMSNorm in rmsnorm.py, GQA in gqa.py). The references are
mingpt.modern's own.

The one idea, as in every checker (checking.py, compare.py): the checker owns the reference, so it rebuilds each
*known* mistake from a table and names a mistake only when the rebuilt one reproduces the student's output on
*every* tested input. Otherwise it says it does not recognise the mistake and shows the first differing element.
The tables (`RMSNORM_MISTAKES`, `ROTARY_MISTAKES`, `SWIGLU_MISTAKES`, `GQA_MISTAKES`) are public for teachers.

    from mingpt.exercises import check_rmsnorm, check_rotary, check_swiglu, check_gqa
    check_rmsnorm(rms_norm)      # rms_norm(x (B, T, C), weight (C,), eps) -> (B, T, C)
    check_rotary(apply_rotary)   # apply_rotary(x (B, T, nh, hs), start, theta) -> x rotated by positions start..
    check_swiglu(swiglu)         # swiglu(x, w_gate, w_up, w_down), weights as nn.Linear stores them (out, in)
    check_gqa(gqa_attention)     # gqa_attention(q (B, nh, T, hs), k, v (B, nkv, T, hs)) -> causal, (B, nh, T, hs)

Rotary's convention: the checker asks for Hugging Face's "rotate_half" pairing (channel j turns with channel
j + hs/2), the one mingpt.modern.rotary and Hugging Face's Llama weights use. Meta's original code pairs
neighbours (2j, 2j+1): a valid convention for weights permuted to match it, named here as a mistake because the
weights this course loads are in Hugging Face's layout.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mingpt.exercises.checking import CheckResult, Variant
from mingpt.exercises.compare import check_cases
from mingpt.exercises.compose import knob, pairs
from mingpt.exercises.families import Family, refine
from mingpt.exercises.gradients import function_gradient_problem
from mingpt.exercises.partial import localise
from mingpt.exercises.gqa import GQA_MISTAKES, check_gqa, gqa_reference  # noqa: F401  (the fourth part, re-exported)
from mingpt.exercises.rmsnorm import RMSNORM_MISTAKES, check_rmsnorm, rms_norm_reference  # noqa: F401  (the first)
from mingpt.modern.rotary import inverse_frequencies, rotate_half

__all__ = ["check_rmsnorm", "check_rotary", "check_swiglu", "check_gqa", "RMSNORM_MISTAKES", "ROTARY_MISTAKES",
           "SWIGLU_MISTAKES", "GQA_MISTAKES", "rms_norm_reference", "rotary_reference", "swiglu_reference",
           "gqa_reference"]


def _randn(seed: int, *shape: int, scale: float = 1.0) -> torch.Tensor:
    return scale * torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------------------ 2. rotary
def _rotary(x, start, theta, positions_axis=1, offset=True, first=0, exponent=2.0, sign=1.0, swap=False,
            adjacent=False, interleaved_angles=False, per_channel=False, reverse=False, cat_angles=False,
            start_times=1, end_at_T=False, as_written=False, no_cos=False, first_half=False, start_on_angles=False,
            freq_offset=0, angle_scale=1.0, cap=None):
    """start_times: the multiple of start added (0: none, -1: subtracted); end_at_T: arange(start, T), which stops at
    T instead of start + T; as_written: the angles in float32 as a student computes theta ** (arange(0, hs, 2) / hs)
    (the frequencies theta^(+2i/hs) make angles so large that float32's rounding shows); no_cos: cos replaced by 1,
    the small-angle approximation x + rotate_half(x) * angle's sin; first_half: only the first half's new values
    kept (x1 cos - x2 sin), the second half passed through; start_on_angles: start added to the angles, not the
    positions; freq_offset: added to the exponent's numerator (1: arange(1, hs, 2)); angle_scale: every angle times it
    (pi / 180: angles read as degrees); cap: positions clamped at that value (a table of that many rows)."""
    hs = x.shape[-1]
    inv_freq = angle_scale / (theta ** ((torch.arange(0, hs // 2).double() * exponent + freq_offset) / hs))
    n = x.shape[positions_axis]
    positions = torch.arange(n).double() + (start * start_times if offset else 0) + first
    if end_at_T:
        positions = torch.arange(start, n).double()  # T - start positions: raises once start > T
    positions = positions.flip(0) if reverse else positions  # the last token rotated as the first
    positions = positions.clamp(max=cap) if cap is not None else positions
    angles = torch.outer(positions - (start if start_on_angles else 0), inv_freq)  # (n, hs/2)
    angles = angles + start if start_on_angles else angles
    if as_written:
        angles = torch.outer(positions.float(), theta ** (-torch.arange(0, hs, 2).float() * exponent / 2 / hs))
    pairwise = (adjacent and not cat_angles) or interleaved_angles  # cat_angles: halves' layout, adjacent pairs
    angles = angles.repeat_interleave(2, dim=-1) if pairwise else torch.cat((angles,) * 2, -1)
    if per_channel:  # theta^(-j/hs) for every channel j: the pair's two channels turn at different speeds
        angles = torch.outer(positions, 1.0 / theta ** (torch.arange(hs).double() / hs))
    shape = [1] * x.dim()
    shape[positions_axis], shape[-1] = len(positions), hs
    cos, sin = angles.cos().view(shape).float(), angles.sin().view(shape).float()
    if swap:
        cos, sin = sin, cos
    if no_cos:
        cos = torch.ones_like(cos)
    if adjacent:  # Meta's pairing: (x0, x1) -> (-x1, x0) for neighbours
        turned = torch.stack((-x[..., 1::2], x[..., 0::2]), dim=-1).flatten(-2)
    else:
        turned = rotate_half(x)
    out = x * cos + sign * turned * sin
    return torch.cat((out[..., : hs // 2], x[..., hs // 2:]), -1) if first_half else out


def _table(x, start, theta):
    """The (T, hs) angle table of rotary_reference, before its heads axis is added."""
    angles = torch.outer(torch.arange(start, start + x.shape[1]).float(), inverse_frequencies(x.shape[-1], theta))
    return torch.cat((angles, angles), dim=-1)


def rotary_reference(x, start, theta):
    """mingpt.modern.rotary's rotation of (B, T, nh, hs) by the positions start .. start + T - 1 (rotate_half)."""
    hs = x.shape[-1]
    angles = torch.outer(torch.arange(start, start + x.shape[1]).float(), inverse_frequencies(hs, theta))
    angles = torch.cat((angles, angles), dim=-1)[:, None, :]
    return x * angles.cos() + rotate_half(x) * angles.sin()


ROTARY_MISTAKES = [
    knob(_rotary, "positions not offset (the KV cache's new token rotated as position 0)",
            dict(offset=False),
            "With a KV cache the new token sits at position start (the cache's length), not at 0; rotated from 0, "
            "its query meets keys at the wrong relative distance.", "positions = start, start + 1, ..., start + T - 1"),
    knob(_rotary, "positions counted from 1", dict(first=1),
            "The first token is at position 0 (angle 0: no rotation).", "torch.arange(start, start + T)"),
    knob(_rotary, "adjacent pairs (2j, 2j+1) instead of halves (j, j + hs/2)",
            dict(adjacent=True),
            "That is Meta's original pairing, valid for weights permuted to it; this checker, mingpt and Hugging "
            "Face's Llama weights pair channel j with channel j + hs/2 ('rotate_half').",
            "rotate_half(x) = cat(-x2, x1) with x1, x2 the two halves of the last axis"),
    knob(_rotary, "angles repeated pairwise while channels pair by halves",
            dict(interleaved_angles=True),
            "With the rotate_half pairing, channels j and j + hs/2 share an angle: the angle table is "
            "cat(angles, angles), not angles.repeat_interleave(2).", "torch.cat((angles, angles), dim=-1)"),
    knob(_rotary, "adjacent pairs (2j, 2j+1) rotated with the angles laid out by halves (cat, not "
            "repeat_interleave)", dict(adjacent=True, cat_angles=True),
            "Your pairs are neighbours (Meta's / GPT-J's pairing) but your angle table is cat(angles, angles), the "
            "layout for halves, so a pair's two channels turn by different angles. This checker pairs j with "
            "j + hs/2 ('rotate_half').", "rotate_half(x) = cat(-x2, x1), angles cat(angles, angles)"),
    knob(_rotary, "sin and cos swapped", dict(swap=True),
            "A rotation is x cos + rotate_half(x) sin: at position 0 it leaves x unchanged.", "x * cos + ... * sin"),
    knob(_rotary, "rotating the wrong way (sign of sin flipped)", dict(sign=-1.0),
            "Pair (a, b) becomes (a cos - b sin, b cos + a sin); yours turns by minus the angle.",
            "rotate_half(x) = cat(-x2, x1), added with + sin"),
    knob(_rotary, "theta exponent without the 2 (theta^(-i/hs))", dict(exponent=1.0),
            "Pair i turns at theta^(-2i/hs), i = 0 .. hs/2 - 1 (equivalently arange(0, hs, 2) / hs).",
            "theta ** (-torch.arange(0, hs, 2) / hs)"),
    knob(_rotary, "theta exponent over hs/2 instead of hs (theta^(-2i/(hs/2)))",
            dict(exponent=4.0),
            "The exponent divides by the head size hs, not by the number of pairs: pair i turns at theta^(-2i/hs), "
            "so the slowest pair turns at about 1/theta per position; yours slows down twice as fast.",
            "theta ** (-torch.arange(0, hs, 2) / hs)"),
    knob(_rotary, "frequencies from arange(1, hs, 2) instead of arange(0, hs, 2) (theta^(-(2i+1)/hs))",
            dict(freq_offset=1), "Pair i turns at theta^(-2i/hs), i = 0 .. hs/2 - 1: the first pair at speed 1 "
            "(theta^0); your exponents are odd, (2i + 1)/hs, so every pair turns slower.",
            "theta ** (-torch.arange(0, hs, 2).float() / hs)"),
    knob(_rotary, "one frequency per channel instead of per pair",
            dict(per_channel=True),
            "Channels j and j + hs/2 form a pair and share one angle, p * theta^(-2j/hs); yours gives each of the "
            "hs channels its own frequency theta^(-j/hs), so a pair no longer turns as one.",
            "hs/2 frequencies, each used twice: torch.cat((angles, angles), dim=-1)"),
    knob(_rotary, "only the first half rotated (the second half passed through)", dict(first_half=True),
            "Each pair (x1, x2) becomes (x1 cos - x2 sin, x2 cos + x1 sin): both halves change; yours keeps the "
            "second half as it was.", "x * cos + rotate_half(x) * sin, on the whole head"),
    knob(_rotary, "start added to the angles instead of to the positions", dict(start_on_angles=True),
            "The offset is a position: the angles are (start + t) * omega_i, so every pair turns by start times its "
            "own frequency; adding start to the angles turns every pair by the same start radians.",
            "positions = torch.arange(start, start + T), then the outer product with the frequencies"),
    Variant("start added twice", lambda x, s, th: _rotary(x, 2 * s, th),
            "The positions are start .. start + T - 1; yours are offset by start twice.",
            "torch.arange(start, start + T)"),
    Variant("the x * cos term missing", lambda x, s, th: _rotary(x, s, th) - x * _rotary(torch.ones_like(x), s, th,
                                                                                       sign=0.0),
            "A rotation is x * cos + rotate_half(x) * sin; yours keeps only the sin part.", "x * cos + ..."),
    knob(_rotary, "the cos factor left out (x + rotate_half(x) * sin: a small-angle approximation)", dict(no_cos=True),
            "A rotation keeps x * cos: x + rotate_half(x) * sin is only its first-order approximation for small "
            "angles, and it grows the vector instead of turning it.", "x * cos + rotate_half(x) * sin"),
    Variant("theta exponent over the model width (n_head * hs) instead of the head size hs",
            lambda x, s, th: _rotary(x, s, th, exponent=2.0 / x.shape[2]),
            "Each head is rotated on its own: pair i turns at theta^(-2i/hs) with hs the head size, x.shape[-1]; "
            "the paper's d is the dimension of the vector rotated, one head's, not n_head * hs.",
            "theta ** (-torch.arange(0, hs, 2) / hs), hs = x.shape[-1]"),
    knob(_rotary, "positions reversed (the last token rotated as position start)",
            dict(reverse=True),
            "Token t turns by (start + t) times its frequencies; yours turns token t by the angle of token T - 1 - t.",
            "torch.arange(start, start + T), in that order"),
    Variant("frequencies spaced over hs - 2 (linspace(0, 1, hs/2)) instead of hs",
            lambda x, s, th: _rotary(x, s, th, exponent=2.0 * x.shape[-1] / (x.shape[-1] - 2)),
            "Pair i turns at theta^(-2i/hs), i = 0 .. hs/2 - 1: the exponent stops short of -1. Yours reaches "
            "theta^-1 at the last pair (linspace(0, 1, hs/2) divides by hs/2 - 1).",
            "theta ** (-torch.arange(0, hs, 2) / hs)"),
    # GPT-NeoX / Pythia's partial rotary (rotary_pct): the first r channels (an even count) rotated as a head of r,
    # with r's own frequencies and halves, the rest passed through; Llama rotates the whole head
    *[Variant(f"only the first {pct:g} of each head rotated (GPT-NeoX's rotary_pct)", (lambda pct: lambda x, s, th: (
        lambda r: torch.cat((_rotary(x[..., :r], s, th), x[..., r:]), -1))(2 * int(x.shape[-1] * pct / 2)))(pct),
              "Llama (and this exercise) rotates every channel of the head: hs/2 pairs, j with j + hs/2. GPT-NeoX "
              "rotates only a fraction (rotary_pct) and passes the rest through unchanged.",
              "rotate the whole head: x * cos + rotate_half(x) * sin with hs/2 frequencies") for pct in (0.5, 0.25)],
    Variant("theta ignored (10000 hard-coded)", lambda x, s, th: _rotary(x, s, 10000.0),
            "The base theta is an argument (Llama 3 uses 500000); yours always uses 10000.", "use the theta passed in"),
    knob(_rotary, "frequencies theta^(+2i/hs) instead of theta^(-2i/hs)", dict(exponent=-2.0),
            "Pair i turns at 1 / theta^(2i/hs): the later pairs turn *slower*; yours turns them faster.",
            "1.0 / theta ** (torch.arange(0, hs, 2) / hs)"),
    knob(_rotary, "frequencies theta^(+2i/hs) instead of theta^(-2i/hs)", dict(exponent=-2.0, as_written=True),
            "Pair i turns at 1 / theta^(2i/hs): the later pairs turn *slower*; yours turns them faster.",
            "1.0 / theta ** (torch.arange(0, hs, 2) / hs)"),
    knob(_rotary, "every pair at the same speed (the exponent 2i/hs rounded to 0: integer division?)",
            dict(exponent=0.0), "Pair i turns at theta^(-2i/hs), a different speed per pair; yours turns every pair "
            "by the position itself, as if the exponent were 0 (arange(0, hs, 2) // hs is 0).",
            "theta ** (-torch.arange(0, hs, 2).float() / hs): true division"),
    knob(_rotary, "start subtracted instead of added (positions -start .. T - 1 - start)", dict(start_times=-1),
            "The positions are start, start + 1, ..., start + T - 1: the new tokens come after the cached ones.",
            "torch.arange(start, start + T)"),
    knob(_rotary, "positions arange(start, T) instead of arange(start, start + T)", dict(end_at_T=True),
            "arange's end is where the positions stop: start + T, so there are T of them; arange(start, T) has "
            "T - start (none, or an error, once start >= T).", "torch.arange(start, start + T)"),
    knob(_rotary, "positions taken along the heads axis", dict(positions_axis=2),
            "x is (B, T, nh, hs): the positions run along axis 1; yours rotates by the head's index.",
            "T = x.shape[1]; the angle table broadcasts as (T, 1, hs)"),
    Variant("T read from the heads axis (x.shape[2]): the angle table has n_head rows",
            lambda x, start, theta: x * _table(x.transpose(1, 2), start, theta)[:, None].cos()
            + rotate_half(x) * _table(x.transpose(1, 2), start, theta)[:, None].sin(),
            "x is (B, T, nh, hs): T is x.shape[1]; yours takes x.shape[2], the number of heads, so the table has a "
            "row per head and fails (or broadcasts wrongly) wherever T != nh.", "T = x.shape[1]"),
    Variant("angle table (T, hs) without a heads axis: it broadcasts against (nh, hs)",
            lambda x, start, theta: x * _table(x, start, theta).cos() + rotate_half(x) * _table(x, start, theta).sin(),
            "x is (B, T, nh, hs); a (T, hs) table lines up with its last two axes, (nh, hs): it fails where T != nh.",
            "cos[:, None, :] and sin[:, None, :]: shape (T, 1, hs)"),
]


NOT_ROTATED = Variant("not rotated (x passed through unchanged)", lambda x, s, th: x,
                      "Every head of every position is rotated by its position's angles.",
                      "x * cos + rotate_half(x) * sin on the whole (B, T, nh, hs) tensor")
ROTARY_FAMILIES = [  # fitted when no table row explains the output (families.py)
    Family("positions offset by {value} (start + {value} .. start + {value} + T - 1)",
           lambda k: lambda x, s, th: _rotary(x, s, th, first=int(k)),
           "The positions are start, start + 1, ..., start + T - 1; yours are all shifted by {value}.",
           "torch.arange(start, start + T)", lo=-6, hi=6, correct=0, integer=True),
    Family("rotation angles scaled by {value}",
           lambda a: lambda x, s, th: _rotary(x, s, th, angle_scale=a),
           "The angle of pair i at position p is p * theta^(-2i/hs) radians; every angle of yours is {value} times "
           "that (pi / 180 = 0.01745 would be angles read as degrees).",
           "angles = positions[:, None] * inv_freq[None, :], nothing else", lo=1e-3, hi=20.0, correct=1.0, log=True),
    Family("positions capped at {value} (every later token rotated as position {value})",
           lambda c: lambda x, s, th: _rotary(x, s, th, cap=int(c)),
           "Every position gets its own angle, however far it is; yours stop growing at {value} (a table of "
           "{value} + 1 rows, or a clamp), so later tokens all look alike to attention.",
           "torch.arange(start, start + T), unclamped", lo=1, hi=19, correct=10**9, integer=True),
]


def check_rotary(fn, seed: int = 0) -> CheckResult:
    """Check apply_rotary(x (B, T, nh, hs), start, theta): rotate_half pairing, positions start .. start + T - 1."""
    exercise = "rotary positions (RoPE)"
    cases = [(_randn(seed, 2, 6, 3, 10), 0, 10000.0),
             (_randn(seed + 1, 1, 1, 2, 10), 7, 10000.0),  # the KV cache: one new token at position 7
             (_randn(seed + 2, 2, 4, 3, 8), 3, 100.0),  # a prompt continued after 3 cached tokens
             (_randn(seed + 3, 1, 5, 2, 12), 0, 500000.0),
             (_randn(seed + 4, 1, 12, 2, 8), 9, 10000.0)]  # a longer prompt further on (positions 9 .. 20)
    prepare = lambda c: (c[0].clone(), *c[1:])  # noqa: E731
    problem = check_cases(exercise, fn, cases, rotary_reference, ROTARY_MISTAKES + pairs(_rotary, ROTARY_MISTAKES),
                          lambda x, s, th: f"x of shape {tuple(x.shape)}, start={s}, theta={th:g}", atol=1e-4,
                          prepare=prepare, precision=True)
    problem = refine(problem, fn, cases, ROTARY_FAMILIES, atol=1e-4, prepare=prepare)
    # a slip on one head, one position or some channels only (partial.py)
    problem = localise(problem, fn, cases, rotary_reference, ROTARY_MISTAKES + [NOT_ROTATED],
                       [("batch row", 0), ("position", 1), ("head", 2), ("channel", 3)], prepare, atol=1e-4)
    if problem is None:  # right outputs: are the gradients right too?
        problem = function_gradient_problem(exercise, fn, rotary_reference, cases[2], "x (2, 4, 3, 8), start=3")
    if problem is not None:  # a failed CheckResult is falsy: `problem or ...` would hide it
        return problem
    return CheckResult(exercise, True, checked=[
        "rotate_half pairing (j with j + hs/2), Hugging Face's Llama convention", "theta^(-2i/hs) frequencies",
        "positions offset by start (the KV cache)", "5 inputs"])


# ------------------------------------------------------------------------------------------ 3. SwiGLU
def _glu(x, wg, wu, wd, act=F.silu, combine=torch.mul, after=None, swap=False, on_input=False):
    wg, wu = (wu, wg) if swap else (wg, wu)
    gate = F.linear(act(x), wg) if on_input else act(F.linear(x, wg))  # on_input: the activation before the matmul
    h = combine(gate, F.linear(x, wu))
    out = F.linear(h if after is None else after(h), wd)
    return out


def swiglu_reference(x, w_gate, w_up, w_down):
    """down(silu(gate(x)) * up(x)): Llama's MLP (mingpt.modern.mlps.SwiGLUMLP)."""
    return _glu(x, w_gate, w_up, w_down)


SWIGLU_MISTAKES = [
    knob(_glu, "gate and up swapped (SiLU on the up projection)", dict(swap=True),
            "The SiLU goes on gate_proj's output, which then scales up_proj's output; swapping them is another "
            "function for the same weights.", "silu(x @ w_gate.T) * (x @ w_up.T)"),
    knob(_glu, "SiLU on the input x instead of the gate's output", dict(on_input=True),
            "The SiLU goes on the gate projection's output, silu(x @ w_gate.T); yours applies it to x before the "
            "projection.", "F.silu(F.linear(x, w_gate))"),
    Variant("SiLU on both branches", lambda x, g, u, d: F.linear(F.silu(F.linear(x, g)) * F.silu(F.linear(x, u)), d),
            "Only the gate goes through SiLU; the up branch stays linear.", "no activation on the up branch"),
    knob(_glu, "GELU instead of SiLU (GeGLU)", dict(act=F.gelu),
            "SwiGLU's gate uses SiLU = x * sigmoid(x); GELU makes GeGLU (Gemma's MLP).", "F.silu"),
    knob(_glu, "sigmoid instead of SiLU (the original GLU)", dict(act=torch.sigmoid),
            "SiLU is x * sigmoid(x), not sigmoid(x) alone.", "F.silu(gate) = gate * sigmoid(gate)"),
    Variant("GPT-2's tanh GELU instead of SiLU", lambda x, g, u, d: _glu(x, g, u, d,
                                                                          act=lambda h: F.gelu(h, approximate="tanh")),
            "GPT-2's MLP used the tanh GELU; Llama's gate uses SiLU = x * sigmoid(x).", "F.silu"),
    knob(_glu, "ReLU instead of SiLU (ReGLU)", dict(act=F.relu),
            "SwiGLU's gate is smooth: SiLU lets small negative values through.", "F.silu"),
    Variant("the up branch missing (no gating)", lambda x, g, u, d: F.linear(F.silu(F.linear(x, g)), d),
            "The gate multiplies the up projection: two expansions, one product.", "silu(gate) * up"),
    knob(_glu, "gate added instead of multiplied", dict(combine=torch.add),
            "GLU means a product: the gate scales the up branch channel by channel.", "*, not +"),
    Variant("SiLU after the product instead of on the gate",
            lambda x, g, u, d: F.linear(F.silu(F.linear(x, g) * F.linear(x, u)), d),
            "The SiLU is applied to the gate alone, before the product.", "silu(gate) * up"),
    Variant("activation after the down projection", lambda x, g, u, d: F.silu(F.linear(F.linear(x, g)
                                                                                     * F.linear(x, u), d)),
            "The output of down_proj goes to the residual stream as it is; the SiLU belongs on the gate.",
            "down(silu(gate) * up)"),
    Variant("w_down transposed (F.linear(h, w_down.T))",
            lambda x, g, u, d: F.linear(F.silu(F.linear(x, g)) * F.linear(x, u), d.T),
            "F.linear(h, W) computes h @ W.T with W stored (out, in): w_down (C, H) goes in as it is.",
            "F.linear(h, w_down)"),
    Variant("w_gate used for the up branch too", lambda x, g, u, d: _glu(x, g, g, d),
            "The up branch has its own weight, w_up.", "F.linear(x, w_up)"),
    Variant("w_up used for the gate too", lambda x, g, u, d: _glu(x, u, u, d),
            "The gate has its own weight, w_gate.", "F.silu(F.linear(x, w_gate))"),
    Variant("w_down applied to each branch before the product",
            lambda x, g, u, d: F.linear(F.silu(F.linear(x, g)), d) * F.linear(F.linear(x, u), d),
            "The branches are multiplied at the hidden width H, then w_down projects the product once; projecting "
            "each branch first multiplies two C-wide vectors, another function.", "F.linear(silu(g) * u, w_down)"),
    knob(_glu, "tanh instead of SiLU", dict(act=torch.tanh),
            "SwiGLU's gate uses SiLU = x * sigmoid(x).", "F.silu"),
    *[Variant(f"{name} instead of SiLU", (lambda f: lambda x, g, u, d: _glu(x, g, u, d, act=f))(f),
              f"SwiGLU's gate uses SiLU = x * sigmoid(x); yours uses {name}.", "F.silu")
      for name, f in (("softplus", F.softplus), ("ELU", F.elu), ("Mish", F.mish), ("hardswish", F.hardswish),
                      ("leaky ReLU", F.leaky_relu), ("ReLU squared (nanochat's relu(x)^2)", lambda h: F.relu(h) ** 2),
                      ("hardsigmoid", F.hardsigmoid))],
    knob(_glu, "no activation on the gate (a bilinear layer, not SwiGLU)", dict(act=lambda h: h),
            "Without the SiLU the gate is linear and the product of two linear maps is a bilinear layer; SwiGLU "
            "passes the gate through SiLU first.", "F.silu(F.linear(x, w_gate)) * F.linear(x, w_up)"),
    Variant("w_down never applied (the hidden units returned)", lambda x, g, u, d: F.silu(F.linear(x, g))
            * F.linear(x, u), "The product silu(gate) * up has the hidden width H; the down projection brings it back "
            "to the model's width C.", "F.linear(h, w_down) last"),
    Variant("weights reshaped to (in, out) instead of transposed (reshape/view, not .T)",
            lambda x, g, u, d: (F.silu(x @ g.reshape(g.shape[1], g.shape[0]))
                                * (x @ u.reshape(u.shape[1], u.shape[0]))) @ d.reshape(d.shape[1], d.shape[0]),
            "reshape keeps the numbers in memory order and only regroups them, so a (H, C) weight reshaped to (C, H) "
            "is not its transpose: rows and columns are mixed.", "F.linear(x, w_gate), i.e. x @ w_gate.T"),
    Variant("weights used as (in, out): x @ W instead of x @ W.T",
            lambda x, g, u, d: (F.silu(x @ g) * (x @ u)) @ d,
            "The weights are stored as nn.Linear stores them, (out, in): w_gate is (H, C), so x (.., C) times it "
            "needs the transpose.", "F.linear(x, w_gate), i.e. x @ w_gate.T"),
]


SWIGLU_FAMILIES = [  # fitted when no table row explains the output (families.py)
    Family("x * sigmoid({value} x) instead of SiLU (beta {value}, not 1)",
           lambda b: lambda x, g, u, d: _glu(x, g, u, d, act=lambda h: h * torch.sigmoid(b * h)),
           "SiLU is x * sigmoid(x) (Swish with beta = 1); yours multiplies inside the sigmoid by {value}.", "F.silu",
           lo=0.1, hi=10.0, correct=1.0, log=True),
    Family("x * sigmoid({value} x) instead of SiLU (the sign in the exponent flipped: x / (1 + exp(x)))",
           lambda b: lambda x, g, u, d: _glu(x, g, u, d, act=lambda h: h * torch.sigmoid(b * h)),
           "SiLU is x * sigmoid(x) = x / (1 + exp(-x)); yours has {value} inside the sigmoid, a minus sign too many "
           "(x / (1 + exp(x)) is x * sigmoid(-x)).", "F.silu, or x * torch.sigmoid(x)", lo=-10.0, hi=-0.1,
           correct=1.0),
]


def check_swiglu(fn, seed: int = 0) -> CheckResult:
    """Check swiglu(x, w_gate (H, C), w_up (H, C), w_down (C, H)) -> down(silu(gate(x)) * up(x))."""
    exercise = "SwiGLU MLP"
    C, H = 6, 10

    def case(s, *shape):
        return (_randn(s, *shape, C), _randn(s + 1, H, C, scale=0.5), _randn(s + 2, H, C, scale=0.5),
                _randn(s + 3, C, H, scale=0.5))
    cases = [case(seed, 2, 5), case(seed + 10, 1, 3), case(seed + 20, 3, 1)]
    prepare = lambda c: tuple(t.clone() for t in c)  # noqa: E731
    problem = check_cases(exercise, fn, cases, swiglu_reference, SWIGLU_MISTAKES + pairs(_glu, SWIGLU_MISTAKES),
                          lambda x, g, u, d: f"x of shape {tuple(x.shape)}, w_gate and w_up {tuple(g.shape)}, "
                                             f"w_down {tuple(d.shape)}", prepare=prepare, precision=True)
    problem = refine(problem, fn, cases, SWIGLU_FAMILIES, prepare=prepare)
    problem = localise(problem, fn, cases, swiglu_reference, SWIGLU_MISTAKES,  # one row or position only
                       [("batch row", 0), ("position", 1)], prepare)
    if problem is None:  # right outputs: are the gradients right too?
        problem = function_gradient_problem(exercise, fn, swiglu_reference, cases[0], "x (2, 5, 6)")
    if problem is not None:  # a failed CheckResult is falsy: `problem or ...` would hide it
        return problem
    return CheckResult(exercise, True, checked=["down(silu(gate(x)) * up(x)) on 3 inputs"])
