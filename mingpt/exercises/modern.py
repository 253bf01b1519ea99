"""
Checking a student's modern parts, the four pieces by which Llama differs from GPT-2: RMSNorm, rotary positions
(RoPE), the SwiGLU MLP and grouped-query attention (GQA). The references are mingpt.modern's own.

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

import math

import torch
import torch.nn.functional as F

from mingpt.exercises.checking import CheckResult, Variant
from mingpt.exercises.compare import check_cases
from mingpt.modern.rotary import inverse_frequencies, rotate_half

__all__ = ["check_rmsnorm", "check_rotary", "check_swiglu", "check_gqa", "RMSNORM_MISTAKES", "ROTARY_MISTAKES",
           "SWIGLU_MISTAKES", "GQA_MISTAKES", "rms_norm_reference", "rotary_reference", "swiglu_reference",
           "gqa_reference"]


def _randn(seed: int, *shape: int, scale: float = 1.0) -> torch.Tensor:
    return scale * torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------------------ 1. RMSNorm
def _rms(x, w, eps, dim=(-1,), square=True, eps_inside=True, root=True, mean=True):
    s = x.square() if square else x
    ms = s.mean(dim=dim, keepdim=True) if mean else s.sum(dim=dim, keepdim=True)
    if not root:
        return x / (ms + eps) * w
    return x / (ms + eps).sqrt() * w if eps_inside else x / (ms.sqrt() + eps) * w


def rms_norm_reference(x, weight, eps):
    """x / sqrt(mean(x^2 over the channels) + eps) * weight: the formula of nn.RMSNorm and Llama's."""
    return _rms(x, weight, eps)


RMSNORM_MISTAKES = [
    Variant("RMS over the time axis instead of the channels", lambda x, w, eps: _rms(x, w, eps, dim=(1,)),
            "Each position is normalised on its own: the mean square is over the last axis (the C channels of one "
            "token); yours averages over the positions, so a token's scale depends on its neighbours.",
            "mean over dim=-1, keepdim=True"),
    Variant("RMS over the whole tensor", lambda x, w, eps: _rms(x, w, eps, dim=(0, 1, 2)),
            "The mean square is per position (over the last axis), not one number for the whole batch.",
            "mean over dim=-1, keepdim=True"),
    Variant("mean instead of mean square", lambda x, w, eps: _rms(x, w, eps, square=False),
            "RMS is the root of the mean of x^2; yours takes the root of the mean of x (NaN when it is negative).",
            "x.pow(2).mean(-1, keepdim=True)"),
    Variant("eps outside the square root", lambda x, w, eps: _rms(x, w, eps, eps_inside=False),
            "Llama (and nn.RMSNorm) add eps under the root: x / sqrt(mean(x^2) + eps); yours adds it after "
            "(sqrt(mean(x^2)) + eps), which differs for small activations.", "sqrt(mean + eps)"),
    Variant("weight missing", lambda x, w, eps: _rms(x, torch.ones_like(w), eps),
            "The normalised vector is multiplied by the learned per-channel weight (the gain).", "* weight"),
    Variant("square root missing", lambda x, w, eps: _rms(x, w, eps, root=False),
            "Divide by the *root* of the mean square, so the output has RMS 1 (times the weight).", "sqrt or rsqrt"),
    Variant("sum of squares instead of the mean", lambda x, w, eps: _rms(x, w, eps, mean=False),
            "The mean square divides the sum by C; without it the output's size shrinks with the width.",
            ".mean, not .sum"),
    Variant("LayerNorm instead of RMSNorm (the mean subtracted)",
            lambda x, w, eps: F.layer_norm(x, x.shape[-1:], w, None, eps),
            "RMSNorm does not centre: it only divides by the root mean square. Subtracting the mean is LayerNorm.",
            "no x - mean"),
    Variant("variance instead of mean square", lambda x, w, eps: x / (x.var(-1, unbiased=False, keepdim=True)
                                                                    + eps).sqrt() * w,
            "x.var() subtracts the mean before squaring; RMSNorm's mean square does not.", "x.pow(2).mean(-1)"),
    Variant("square of the mean instead of the mean of squares",
            lambda x, w, eps: x / (x.mean(-1, keepdim=True).square() + eps).sqrt() * w,
            "RMS squares each channel first, then averages: mean(x^2); yours averages first, mean(x)^2.",
            "x.pow(2).mean(-1, keepdim=True)"),
    Variant("weight added instead of multiplied", lambda x, w, eps: _rms(x, torch.ones_like(w), eps) + w,
            "The weight is a per-channel gain: it multiplies the normalised x.", "* weight, not + weight"),
    Variant("mean absolute value instead of the root mean square",
            lambda x, w, eps: x / (x.abs().mean(-1, keepdim=True) + eps) * w,
            "RMS is sqrt(mean(x^2)); the mean of |x| is another (smaller) measure of size.",
            "x.pow(2).mean(-1, keepdim=True), then the root"),
    *[Variant(f"eps argument ignored ({e:g} hard-coded)", (lambda e: lambda x, w, eps: _rms(x, w, e))(e),
              f"Your output is right for eps = {e:g} whatever eps is passed: use the argument.", "+ eps, the argument")
      for e in (1e-5, 1e-6, 1e-8)],
    Variant("Gemma's (1 + weight) gain", lambda x, w, eps: _rms(x, 1 + w, eps),
            "Gemma stores the gain as an offset from 1; Llama multiplies by the weight itself.", "* weight"),
]


def check_rmsnorm(fn, seed: int = 0) -> CheckResult:
    """Check rms_norm(x (B, T, C), weight (C,), eps) -> x / sqrt(mean(x^2, last axis) + eps) * weight."""
    exercise = "RMSNorm"
    cases = [(_randn(seed, 2, 5, 6), 1 + _randn(seed + 1, 6, scale=0.3), 1e-5),
             (_randn(seed + 2, 1, 4, 7, scale=0.05) + 0.02, 1 + _randn(seed + 3, 7, scale=0.3), 0.1),
             (_randn(seed + 4, 3, 2, 5, scale=3.0), _randn(seed + 5, 5), 0.5)]
    problem = check_cases(exercise, fn, cases, rms_norm_reference, RMSNORM_MISTAKES,
                          lambda x, w, eps: f"x of shape {tuple(x.shape)}, weight of shape {tuple(w.shape)}, "
                                            f"eps={eps}", prepare=lambda c: (c[0].clone(), c[1].clone(), c[2]))
    if problem is not None:  # a failed CheckResult is falsy: `problem or ...` would hide it
        return problem
    return CheckResult(exercise, True, checked=["same output as nn.RMSNorm's formula on 3 inputs",
                                                           "per position, eps under the root, weight applied"])


# ------------------------------------------------------------------------------------------ 2. rotary
def _rotary(x, start, theta, positions_axis=1, offset=True, first=0, exponent=2.0, sign=1.0, swap=False,
            adjacent=False, interleaved_angles=False, per_channel=False):
    hs = x.shape[-1]
    inv_freq = 1.0 / (theta ** (torch.arange(0, hs // 2).double() * exponent / hs))
    n = x.shape[positions_axis]
    positions = torch.arange(n).double() + (start if offset else 0) + first
    angles = torch.outer(positions, inv_freq)  # (n, hs/2)
    angles = angles.repeat_interleave(2, dim=-1) if (adjacent or interleaved_angles) else torch.cat((angles,) * 2, -1)
    if per_channel:  # theta^(-j/hs) for every channel j: the pair's two channels turn at different speeds
        angles = torch.outer(positions, 1.0 / theta ** (torch.arange(hs).double() / hs))
    shape = [1] * x.dim()
    shape[positions_axis], shape[-1] = n, hs
    cos, sin = angles.cos().view(shape).float(), angles.sin().view(shape).float()
    if swap:
        cos, sin = sin, cos
    if adjacent:  # Meta's pairing: (x0, x1) -> (-x1, x0) for neighbours
        turned = torch.stack((-x[..., 1::2], x[..., 0::2]), dim=-1).flatten(-2)
    else:
        turned = rotate_half(x)
    return x * cos + sign * turned * sin


def rotary_reference(x, start, theta):
    """mingpt.modern.rotary's rotation of (B, T, nh, hs) by the positions start .. start + T - 1 (rotate_half)."""
    hs = x.shape[-1]
    angles = torch.outer(torch.arange(start, start + x.shape[1]).float(), inverse_frequencies(hs, theta))
    angles = torch.cat((angles, angles), dim=-1)[:, None, :]
    return x * angles.cos() + rotate_half(x) * angles.sin()


ROTARY_MISTAKES = [
    Variant("positions not offset (the KV cache's new token rotated as position 0)",
            lambda x, s, th: _rotary(x, s, th, offset=False),
            "With a KV cache the new token sits at position start (the cache's length), not at 0; rotated from 0, "
            "its query meets keys at the wrong relative distance.", "positions = start, start + 1, ..., start + T - 1"),
    Variant("positions counted from 1", lambda x, s, th: _rotary(x, s, th, first=1),
            "The first token is at position 0 (angle 0: no rotation).", "torch.arange(start, start + T)"),
    Variant("adjacent pairs (2j, 2j+1) instead of halves (j, j + hs/2)",
            lambda x, s, th: _rotary(x, s, th, adjacent=True),
            "That is Meta's original pairing, valid for weights permuted to it; this checker, mingpt and Hugging "
            "Face's Llama weights pair channel j with channel j + hs/2 ('rotate_half').",
            "rotate_half(x) = cat(-x2, x1) with x1, x2 the two halves of the last axis"),
    Variant("angles repeated pairwise while channels pair by halves",
            lambda x, s, th: _rotary(x, s, th, interleaved_angles=True),
            "With the rotate_half pairing, channels j and j + hs/2 share an angle: the angle table is "
            "cat(angles, angles), not angles.repeat_interleave(2).", "torch.cat((angles, angles), dim=-1)"),
    Variant("sin and cos swapped", lambda x, s, th: _rotary(x, s, th, swap=True),
            "A rotation is x cos + rotate_half(x) sin: at position 0 it leaves x unchanged.", "x * cos + ... * sin"),
    Variant("rotating the wrong way (sign of sin flipped)", lambda x, s, th: _rotary(x, s, th, sign=-1.0),
            "Pair (a, b) becomes (a cos - b sin, b cos + a sin); yours turns by minus the angle.",
            "rotate_half(x) = cat(-x2, x1), added with + sin"),
    Variant("theta exponent without the 2 (theta^(-i/hs))", lambda x, s, th: _rotary(x, s, th, exponent=1.0),
            "Pair i turns at theta^(-2i/hs), i = 0 .. hs/2 - 1 (equivalently arange(0, hs, 2) / hs).",
            "theta ** (-torch.arange(0, hs, 2) / hs)"),
    Variant("theta exponent over hs/2 instead of hs (theta^(-2i/(hs/2)))",
            lambda x, s, th: _rotary(x, s, th, exponent=4.0),
            "The exponent divides by the head size hs, not by the number of pairs: pair i turns at theta^(-2i/hs), "
            "so the slowest pair turns at about 1/theta per position; yours slows down twice as fast.",
            "theta ** (-torch.arange(0, hs, 2) / hs)"),
    Variant("one frequency per channel instead of per pair",
            lambda x, s, th: _rotary(x, s, th, per_channel=True),
            "Channels j and j + hs/2 form a pair and share one angle, p * theta^(-2j/hs); yours gives each of the "
            "hs channels its own frequency theta^(-j/hs), so a pair no longer turns as one.",
            "hs/2 frequencies, each used twice: torch.cat((angles, angles), dim=-1)"),
    Variant("start added twice", lambda x, s, th: _rotary(x, 2 * s, th),
            "The positions are start .. start + T - 1; yours are offset by start twice.",
            "torch.arange(start, start + T)"),
    Variant("the x * cos term missing", lambda x, s, th: _rotary(x, s, th) - x * _rotary(torch.ones_like(x), s, th,
                                                                                       sign=0.0),
            "A rotation is x * cos + rotate_half(x) * sin; yours keeps only the sin part.", "x * cos + ..."),
    Variant("theta ignored (10000 hard-coded)", lambda x, s, th: _rotary(x, s, 10000.0),
            "The base theta is an argument (Llama 3 uses 500000); yours always uses 10000.", "use the theta passed in"),
    Variant("frequencies theta^(+2i/hs) instead of theta^(-2i/hs)", lambda x, s, th: _rotary(x, s, th, exponent=-2.0),
            "Pair i turns at 1 / theta^(2i/hs): the later pairs turn *slower*; yours turns them faster.",
            "1.0 / theta ** (torch.arange(0, hs, 2) / hs)"),
    Variant("positions taken along the heads axis", lambda x, s, th: _rotary(x, s, th, positions_axis=2),
            "x is (B, T, nh, hs): the positions run along axis 1; yours rotates by the head's index.",
            "T = x.shape[1]; the angle table broadcasts as (T, 1, hs)"),
]


def check_rotary(fn, seed: int = 0) -> CheckResult:
    """Check apply_rotary(x (B, T, nh, hs), start, theta): rotate_half pairing, positions start .. start + T - 1."""
    exercise = "rotary positions (RoPE)"
    cases = [(_randn(seed, 2, 6, 3, 10), 0, 10000.0),
             (_randn(seed + 1, 1, 1, 2, 10), 7, 10000.0),  # the KV cache: one new token at position 7
             (_randn(seed + 2, 2, 4, 3, 8), 3, 100.0),  # a prompt continued after 3 cached tokens
             (_randn(seed + 3, 1, 5, 2, 12), 0, 500000.0)]
    problem = check_cases(exercise, fn, cases, rotary_reference, ROTARY_MISTAKES,
                          lambda x, s, th: f"x of shape {tuple(x.shape)}, start={s}, theta={th:g}", atol=1e-4,
                          prepare=lambda c: (c[0].clone(), *c[1:]))
    if problem is not None:  # a failed CheckResult is falsy: `problem or ...` would hide it
        return problem
    return CheckResult(exercise, True, checked=[
        "rotate_half pairing (j with j + hs/2), Hugging Face's Llama convention", "theta^(-2i/hs) frequencies",
        "positions offset by start (the KV cache)", "4 inputs"])


# ------------------------------------------------------------------------------------------ 3. SwiGLU
def _glu(x, wg, wu, wd, act=F.silu, combine=torch.mul, after=None):
    h = combine(act(F.linear(x, wg)), F.linear(x, wu))
    out = F.linear(h if after is None else after(h), wd)
    return out


def swiglu_reference(x, w_gate, w_up, w_down):
    """down(silu(gate(x)) * up(x)): Llama's MLP (mingpt.modern.mlps.SwiGLUMLP)."""
    return _glu(x, w_gate, w_up, w_down)


SWIGLU_MISTAKES = [
    Variant("gate and up swapped (SiLU on the up projection)", lambda x, g, u, d: _glu(x, u, g, d),
            "The SiLU goes on gate_proj's output, which then scales up_proj's output; swapping them is another "
            "function for the same weights.", "silu(x @ w_gate.T) * (x @ w_up.T)"),
    Variant("SiLU on both branches", lambda x, g, u, d: F.linear(F.silu(F.linear(x, g)) * F.silu(F.linear(x, u)), d),
            "Only the gate goes through SiLU; the up branch stays linear.", "no activation on the up branch"),
    Variant("GELU instead of SiLU (GeGLU)", lambda x, g, u, d: _glu(x, g, u, d, act=F.gelu),
            "SwiGLU's gate uses SiLU = x * sigmoid(x); GELU makes GeGLU (Gemma's MLP).", "F.silu"),
    Variant("sigmoid instead of SiLU (the original GLU)", lambda x, g, u, d: _glu(x, g, u, d, act=torch.sigmoid),
            "SiLU is x * sigmoid(x), not sigmoid(x) alone.", "F.silu(gate) = gate * sigmoid(gate)"),
    Variant("GPT-2's tanh GELU instead of SiLU", lambda x, g, u, d: _glu(x, g, u, d,
                                                                          act=lambda h: F.gelu(h, approximate="tanh")),
            "GPT-2's MLP used the tanh GELU; Llama's gate uses SiLU = x * sigmoid(x).", "F.silu"),
    Variant("ReLU instead of SiLU (ReGLU)", lambda x, g, u, d: _glu(x, g, u, d, act=F.relu),
            "SwiGLU's gate is smooth: SiLU lets small negative values through.", "F.silu"),
    Variant("the up branch missing (no gating)", lambda x, g, u, d: F.linear(F.silu(F.linear(x, g)), d),
            "The gate multiplies the up projection: two expansions, one product.", "silu(gate) * up"),
    Variant("gate added instead of multiplied", lambda x, g, u, d: _glu(x, g, u, d, combine=torch.add),
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
    Variant("tanh instead of SiLU", lambda x, g, u, d: _glu(x, g, u, d, act=torch.tanh),
            "SwiGLU's gate uses SiLU = x * sigmoid(x).", "F.silu"),
    *[Variant(f"{name} instead of SiLU", (lambda f: lambda x, g, u, d: _glu(x, g, u, d, act=f))(f),
              f"SwiGLU's gate uses SiLU = x * sigmoid(x); yours uses {name}.", "F.silu")
      for name, f in (("softplus", F.softplus), ("ELU", F.elu), ("Mish", F.mish), ("hardswish", F.hardswish),
                      ("leaky ReLU", F.leaky_relu))],
    Variant("weights used as (in, out): x @ W instead of x @ W.T",
            lambda x, g, u, d: (F.silu(x @ g) * (x @ u)) @ d,
            "The weights are stored as nn.Linear stores them, (out, in): w_gate is (H, C), so x (.., C) times it "
            "needs the transpose.", "F.linear(x, w_gate), i.e. x @ w_gate.T"),
]


def check_swiglu(fn, seed: int = 0) -> CheckResult:
    """Check swiglu(x, w_gate (H, C), w_up (H, C), w_down (C, H)) -> down(silu(gate(x)) * up(x))."""
    exercise = "SwiGLU MLP"
    C, H = 6, 10

    def case(s, *shape):
        return (_randn(s, *shape, C), _randn(s + 1, H, C, scale=0.5), _randn(s + 2, H, C, scale=0.5),
                _randn(s + 3, C, H, scale=0.5))
    cases = [case(seed, 2, 5), case(seed + 10, 1, 3), case(seed + 20, 3, 1)]
    problem = check_cases(exercise, fn, cases, swiglu_reference, SWIGLU_MISTAKES,
                          lambda x, g, u, d: f"x of shape {tuple(x.shape)}, w_gate and w_up {tuple(g.shape)}, "
                                             f"w_down {tuple(d.shape)}", prepare=lambda c: tuple(t.clone() for t in c))
    if problem is not None:  # a failed CheckResult is falsy: `problem or ...` would hide it
        return problem
    return CheckResult(exercise, True, checked=["down(silu(gate(x)) * up(x)) on 3 inputs"])


# ------------------------------------------------------------------------------------------ 4. GQA
def _attend(q, k, v, causal=True, scale=None, softmax_dim=-1, diagonal=1):
    att = (q @ k.transpose(-2, -1)) * (scale if scale is not None else 1 / math.sqrt(q.size(-1)))
    if causal:
        T = q.size(-2)
        att = att.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(diagonal), float("-inf"))
    return att.softmax(dim=softmax_dim) @ v


def _rep(t, g, interleave=True):
    return t.repeat_interleave(g, dim=1) if interleave else t.repeat(1, g, 1, 1)


def gqa_reference(q, k, v):
    """Causal attention with K/V head j // group serving query head j (mingpt.modern.attention)."""
    g = q.size(1) // k.size(1)
    return F.scaled_dot_product_attention(q, _rep(k, g), _rep(v, g), is_causal=True)


def _g(q, k):
    return q.size(1) // k.size(1)


GQA_MISTAKES = [
    Variant("K/V heads tiled (repeat) instead of repeated per group (repeat_interleave)",
            lambda q, k, v: _attend(q, _rep(k, _g(q, k), False), _rep(v, _g(q, k), False)),
            "Query heads 0 .. group-1 share K/V head 0, the next group K/V head 1, ...: head j reads K/V head "
            "j // group. `.repeat` tiles the heads, so head j reads j % n_kv_head.",
            "k.repeat_interleave(group, dim=1), or HF's repeat_kv (expand then reshape)"),
    Variant("K repeated per group, V tiled (repeat and repeat_interleave mixed up)",
            lambda q, k, v: _attend(q, _rep(k, _g(q, k)), _rep(v, _g(q, k), False)),
            "K and V must be repeated the same way: head j reads K/V head j // group for both.",
            "the same repeat_interleave for k and v"),
    Variant("K tiled, V repeated per group (repeat and repeat_interleave mixed up)",
            lambda q, k, v: _attend(q, _rep(k, _g(q, k), False), _rep(v, _g(q, k))),
            "K and V must be repeated the same way: head j reads K/V head j // group for both.",
            "the same repeat_interleave for k and v"),
    Variant("K/V heads not repeated", lambda q, k, v: _attend(q, k, v),
            "n_kv_head key/value heads serve n_head query heads: each K/V head must be repeated for its group of "
            "n_head // n_kv_head queries before the matmul (broadcasting only works when n_kv_head is 1).",
            "k.repeat_interleave(n_head // n_kv_head, dim=1)"),
    Variant("no causal mask", lambda q, k, v: _attend(q, _rep(k, _g(q, k)), _rep(v, _g(q, k)), causal=False),
            "Position t may only attend to positions <= t.", "mask the scores above the diagonal with -inf"),
    Variant("the diagonal masked too (a token cannot see itself)",
            lambda q, k, v: _attend(q, _rep(k, _g(q, k)), _rep(v, _g(q, k)), diagonal=0),
            "Position t attends to positions <= t, itself included; masking the diagonal leaves the first row "
            "with nothing to attend to (NaN).", "triu(diagonal=1): only the future is masked"),
    Variant("scores scaled by 1/hs instead of 1/sqrt(hs)",
            lambda q, k, v: _attend(q, _rep(k, _g(q, k)), _rep(v, _g(q, k)), scale=1 / q.size(-1)),
            "The scores are divided by sqrt(head_dim).", "/ math.sqrt(hs)"),
    Variant("scores not scaled", lambda q, k, v: _attend(q, _rep(k, _g(q, k)), _rep(v, _g(q, k)), scale=1.0),
            "The scores are divided by sqrt(head_dim), or the softmax saturates as heads grow.", "/ math.sqrt(hs)"),
    Variant("softmax over the queries axis", lambda q, k, v: _attend(q, _rep(k, _g(q, k)), _rep(v, _g(q, k)),
                                                                     softmax_dim=-2),
            "Each query's weights over the keys sum to 1: softmax over the last axis.", "softmax(dim=-1)"),
    Variant("K/V repeated along the time axis, not the heads",
            lambda q, k, v: _attend(q, k.repeat_interleave(_g(q, k), 2), v.repeat_interleave(_g(q, k), 2)),
            "k and v are (B, n_kv_head, T, hs): the heads are dim 1; repeating along dim 2 makes the sequence "
            "longer instead.", "repeat_interleave(group, dim=1)"),
    Variant("keys used as values (v replaced by k)", lambda q, k, v: _attend(q, _rep(k, _g(q, k)), _rep(k, _g(q, k))),
            "The weights average the *values*; yours averages the keys.", "att @ v, with v repeated like k"),
    Variant("values used as keys (k replaced by v)", lambda q, k, v: _attend(q, _rep(v, _g(q, k)), _rep(v, _g(q, k))),
            "The scores compare queries with the *keys*; yours uses the values.", "q @ k.transpose(-2, -1)"),
    Variant("scaled by the number of query heads' group", lambda q, k, v: _attend(
                q, _rep(k, _g(q, k)), _rep(v, _g(q, k)), scale=1 / math.sqrt(q.size(-1) * _g(q, k))),
            "The scale is 1/sqrt(head_dim) whatever the grouping.", "/ math.sqrt(hs)"),
]


def check_gqa(fn, seed: int = 0) -> CheckResult:
    """Check gqa_attention(q (B, nh, T, hs), k, v (B, nkv, T, hs)) -> causal attention (B, nh, T, hs)."""
    exercise = "grouped-query attention"

    def case(s, B, nh, nkv, T, hs):
        return (_randn(s, B, nh, T, hs), _randn(s + 1, B, nkv, T, hs), _randn(s + 2, B, nkv, T, hs))
    cases = [case(seed, 2, 6, 2, 5, 4), case(seed + 10, 1, 4, 4, 3, 4),  # n_kv_head = n_head: GPT-2's attention
             case(seed + 20, 1, 6, 3, 4, 8), case(seed + 30, 1, 4, 1, 4, 4)]  # and 1: multi-query attention
    problem = check_cases(exercise, fn, cases, gqa_reference, GQA_MISTAKES,
                          lambda q, k, v: f"q of shape {tuple(q.shape)}, k and v {tuple(k.shape)}", atol=1e-4,
                          prepare=lambda c: tuple(t.clone() for t in c))
    if problem is not None:  # a failed CheckResult is falsy: `problem or ...` would hide it
        return problem
    return CheckResult(exercise, True, checked=["K/V head j // group serves query head j",
                                                           "causal, scaled by 1/sqrt(hs)", "4 groupings"])
