"""
Student-style RMSNorm, rotary, SwiGLU and grouped-query attention functions, written from notebook 10's exercise
text (not from the checkers' variant tables): each MISTAKES row is (checker, buggy implementation, the name the
checker must give); VALID rows must pass; UNNAMED rows are mistakes no table names.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from mingpt.exercises import check_gqa, check_rmsnorm, check_rotary, check_swiglu


# ------------------------------------------------------------------------------------------ RMSNorm
def rms(x, weight, eps, dim=-1, square=True, eps_in=True, root=True, reduce="mean", centre=False, gain=None):
    if centre:
        x = x - x.mean(dim=-1, keepdim=True)
    s = x * x if square else x
    m = s.mean(dim=dim, keepdim=True) if reduce == "mean" else s.sum(dim=dim, keepdim=True)
    if reduce == "all":
        m = s.mean()
    d = (torch.sqrt(m + eps) if eps_in else torch.sqrt(m) + eps) if root else m + eps
    return x / d * (weight if gain is None else gain(weight))


RMSNORM_MISTAKES = [
    (check_rmsnorm, lambda x, w, eps: rms(x, w, eps, dim=1), "RMS over the time axis instead of the channels"),
    (check_rmsnorm, lambda x, w, eps: rms(x, w, eps, reduce="all"), "RMS over the whole tensor"),
    (check_rmsnorm, lambda x, w, eps: rms(x, w, eps, square=False), "mean instead of mean square"),
    (check_rmsnorm, lambda x, w, eps: rms(x, w, eps, eps_in=False), "eps outside the square root"),
    (check_rmsnorm, lambda x, w, eps: x / torch.sqrt((x ** 2).mean(-1, keepdim=True) + eps), "weight missing"),
    (check_rmsnorm, lambda x, w, eps: rms(x, w, eps, root=False), "square root missing"),
    (check_rmsnorm, lambda x, w, eps: rms(x, w, eps, reduce="sum"), "sum of squares instead of the mean"),
    (check_rmsnorm, lambda x, w, eps: rms(x, w, eps, centre=True), "LayerNorm instead of RMSNorm (the mean subtracted)"),
    (check_rmsnorm, lambda x, w, eps: x / torch.sqrt(torch.var(x, dim=-1, keepdim=True, correction=0) + eps) * w,
     "variance instead of mean square"),
    (check_rmsnorm, lambda x, w, eps: rms(x, w, eps, gain=lambda g: g + 1), "Gemma's (1 + weight) gain"),
]
RMSNORM_VALID = [
    (check_rmsnorm, lambda x, w, eps: w * (x * torch.rsqrt(torch.mean(x.pow(2), -1, True) + eps))),
    (check_rmsnorm, lambda x, w, eps: torch.nn.functional.rms_norm(x, x.shape[-1:], w, eps)),
    (check_rmsnorm, lambda x, w, eps: x / torch.linalg.vector_norm(x, dim=-1, keepdim=True).div(
        math.sqrt(x.shape[-1])).square().add(eps).sqrt() * w),
]


# ------------------------------------------------------------------------------------------ rotary
def rope(x, start, theta, pairs="halves", angle_layout="cat", swap=False, minus=False, exp_scale=2,
         pos_from=None, axis=1, per_channel=False):
    hs = x.shape[-1]
    n = x.shape[axis]
    pos = torch.arange(n, dtype=torch.float32) + (start if pos_from is None else pos_from)
    if per_channel:
        ang = torch.outer(pos, theta ** (-torch.arange(hs, dtype=torch.float32) / hs))
    else:
        ang = torch.outer(pos, theta ** (-exp_scale * torch.arange(hs // 2, dtype=torch.float32) / hs))
        ang = ang.repeat_interleave(2, -1) if angle_layout == "interleave" else torch.cat([ang, ang], -1)
    shape = [1, 1, 1, hs]
    shape[axis] = n
    c, s = ang.cos().reshape(shape), ang.sin().reshape(shape)
    if swap:
        c, s = s, c
    if pairs == "halves":
        half = hs // 2
        turned = torch.cat([-x[..., half:], x[..., :half]], -1)
    else:
        turned = torch.stack([-x[..., 1::2], x[..., ::2]], -1).reshape(x.shape)
    return x * c - turned * s if minus else x * c + turned * s


ROTARY_MISTAKES = [
    (check_rotary, lambda x, s, th: rope(x, s, th, pos_from=0),
     "positions not offset (the KV cache's new token rotated as position 0)"),
    (check_rotary, lambda x, s, th: rope(x, s, th, pos_from=s + 1), "positions counted from 1"),
    (check_rotary, lambda x, s, th: rope(x, s, th, pairs="adjacent", angle_layout="interleave"),
     "adjacent pairs (2j, 2j+1) instead of halves (j, j + hs/2)"),
    (check_rotary, lambda x, s, th: rope(x, s, th, angle_layout="interleave"),
     "angles repeated pairwise while channels pair by halves"),
    (check_rotary, lambda x, s, th: rope(x, s, th, swap=True), "sin and cos swapped"),
    (check_rotary, lambda x, s, th: rope(x, s, th, minus=True), "rotating the wrong way (sign of sin flipped)"),
    (check_rotary, lambda x, s, th: rope(x, s, th, exp_scale=1), "theta exponent without the 2 (theta^(-i/hs))"),
    (check_rotary, lambda x, s, th: rope(x, s, th, exp_scale=4),
     "theta exponent over hs/2 instead of hs (theta^(-2i/(hs/2)))"),
    (check_rotary, lambda x, s, th: rope(x, s, th, per_channel=True), "one frequency per channel instead of per pair"),
    (check_rotary, lambda x, s, th: rope(x, s, th, axis=2), "positions taken along the heads axis"),
]


def rope_complex(x, start, theta):
    hs = x.shape[-1]
    freqs = torch.polar(torch.ones(x.shape[1], hs // 2), torch.outer(
        torch.arange(start, start + x.shape[1]).float(), 1 / theta ** (torch.arange(0, hs, 2).float() / hs)))
    z = torch.view_as_complex(torch.stack(x.chunk(2, -1), -1).contiguous()) * freqs[:, None, :]
    return torch.cat(torch.view_as_real(z).unbind(-1), -1)


ROTARY_VALID = [
    (check_rotary, rope),
    (check_rotary, rope_complex),
    (check_rotary, lambda x, s, th: rope(x.double(), s, th).float()),  # angles in float32, product in float64
]


# ------------------------------------------------------------------------------------------ SwiGLU
def glu(x, wg, wu, wd, act=F.silu):
    return (act(x @ wg.t()) * (x @ wu.t())) @ wd.t()


SWIGLU_MISTAKES = [
    (check_swiglu, lambda x, g, u, d: glu(x, u, g, d), "gate and up swapped (SiLU on the up projection)"),
    (check_swiglu, lambda x, g, u, d: (F.silu(x @ g.t()) * F.silu(x @ u.t())) @ d.t(), "SiLU on both branches"),
    (check_swiglu, lambda x, g, u, d: glu(x, g, u, d, act=F.gelu), "GELU instead of SiLU (GeGLU)"),
    (check_swiglu, lambda x, g, u, d: glu(x, g, u, d, act=lambda h: F.gelu(h, approximate="tanh")),
     "GPT-2's tanh GELU instead of SiLU"),
    (check_swiglu, lambda x, g, u, d: glu(x, g, u, d, act=torch.sigmoid), "sigmoid instead of SiLU (the original GLU)"),
    (check_swiglu, lambda x, g, u, d: glu(x, g, u, d, act=torch.relu), "ReLU instead of SiLU (ReGLU)"),
    (check_swiglu, lambda x, g, u, d: F.silu(x @ g.t()) @ d.t(), "the up branch missing (no gating)"),
    (check_swiglu, lambda x, g, u, d: (F.silu(x @ g.t()) + x @ u.t()) @ d.t(), "gate added instead of multiplied"),
    (check_swiglu, lambda x, g, u, d: F.silu((x @ g.t()) * (x @ u.t())) @ d.t(),
     "SiLU after the product instead of on the gate"),
    (check_swiglu, lambda x, g, u, d: F.silu(((x @ g.t()) * (x @ u.t())) @ d.t()),
     "activation after the down projection"),
]
SWIGLU_VALID = [
    (check_swiglu, glu),
    (check_swiglu, lambda x, g, u, d: glu(x, g, u, d, act=lambda h: h * torch.sigmoid(h))),
    (check_swiglu, lambda x, g, u, d: torch.einsum(
        "bth,ch->btc", F.silu(torch.einsum("btc,hc->bth", x, g)) * torch.einsum("btc,hc->bth", x, u), d)),
]


# ------------------------------------------------------------------------------------------ GQA
def attend(q, k, v, tile=(False, False), repeat=True, mask=True, diag=1, scale=None, sm_dim=-1):
    g = q.shape[1] // k.shape[1]
    if repeat:
        k = k.repeat(1, g, 1, 1) if tile[0] else torch.repeat_interleave(k, g, dim=1)
        v = v.repeat(1, g, 1, 1) if tile[1] else torch.repeat_interleave(v, g, dim=1)
    T = q.shape[2]
    w = q @ k.transpose(2, 3) / (math.sqrt(q.shape[-1]) if scale is None else scale)
    if mask:
        w = w.masked_fill(torch.triu(torch.ones(T, T), diagonal=diag) == 1, -math.inf)
    return torch.softmax(w, dim=sm_dim) @ v


GQA_MISTAKES = [
    (check_gqa, lambda q, k, v: attend(q, k, v, tile=(True, True)),
     "K/V heads tiled (repeat) instead of repeated per group (repeat_interleave)"),
    (check_gqa, lambda q, k, v: attend(q, k, v, tile=(False, True)),
     "K repeated per group, V tiled (repeat and repeat_interleave mixed up)"),
    (check_gqa, lambda q, k, v: attend(q, k, v, tile=(True, False)),
     "K tiled, V repeated per group (repeat and repeat_interleave mixed up)"),
    (check_gqa, lambda q, k, v: attend(q, k, v, repeat=False), "K/V heads not repeated"),
    (check_gqa, lambda q, k, v: attend(q, k, v, mask=False), "no causal mask"),
    (check_gqa, lambda q, k, v: attend(q, k, v, diag=0), "the diagonal masked too (a token cannot see itself)"),
    (check_gqa, lambda q, k, v: attend(q, k, v, scale=q.shape[-1]), "scores scaled by 1/hs instead of 1/sqrt(hs)"),
    (check_gqa, lambda q, k, v: attend(q, k, v, scale=1), "scores not scaled"),
    (check_gqa, lambda q, k, v: attend(q, k, v, sm_dim=-2), "softmax over the queries axis"),
    (check_gqa, lambda q, k, v: attend(q, k, v, scale=math.sqrt(q.shape[-1] * q.shape[1] // k.shape[1])),
     "scaled by the number of query heads' group"),
]
GQA_VALID = [
    (check_gqa, attend),
    (check_gqa, lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)),
    (check_gqa, lambda q, k, v: torch.cat([F.scaled_dot_product_attention(
        q[:, j:j + 1], k[:, j // (q.shape[1] // k.shape[1])][:, None], v[:, j // (q.shape[1] // k.shape[1])][:, None],
        is_causal=True) for j in range(q.shape[1])], dim=1)),  # one query head at a time
]

UNNAMED = [
    (check_rmsnorm, lambda x, w, eps: rms(x, w, eps) + 0.01),
    (check_rotary, lambda x, s, th: rope(x, s, th / 10)),
    (check_swiglu, lambda x, g, u, d: glu(x, g, u, d, act=lambda h: h * torch.tanh(h))),  # tanh alone is named
    (check_gqa, lambda q, k, v: attend(q, k, v).flip(2)),
]

MISTAKES = RMSNORM_MISTAKES + ROTARY_MISTAKES + SWIGLU_MISTAKES + GQA_MISTAKES
VALID = RMSNORM_VALID + ROTARY_VALID + SWIGLU_VALID + GQA_VALID
