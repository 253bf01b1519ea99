"""The held-out probe, round 13, modern part (RMSNorm, rotary, SwiGLU, GQA, the GPT-2 conversion, a training run, the
LR schedule and the weight-decay groups): written by w24n before reading these checkers' tables, tests/mistakes_*.py
or any earlier round, from the checkers' docstrings, notebooks 08 and 10 and mingpt's own modules only, and counted
untuned first. The angle: new instances of the issue's categories: bugs visible only on some setting (start > 0, a
theta or eps other than the default, H != C, n_kv_head of 1, T = 1, warmup_iters = 0), two causes for one output,
type and shape slips (numpy, float64, a tuple, a set, extra dims), and code as people write it from HF's Llama,
Meta's llama, nanoGPT and ARENA. About one row in eight carries two slips. See heldout_probe.py."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

import mingpt.exercises as ex

from heldout_probe_models import ROUND, mistake, valid
import heldout_probe_round12_post  # noqa: F401  (earlier rounds registered first)

ROUND[0] = 13


def both(a: str, b: str) -> str:
    return rf"(?=.*(?:{a}))(?=.*(?:{b}))"


DTYPE = r"dtype|float64|double|float32"
# ------------------------------------------------------------------------------------------ RMSNorm
R = ex.check_rmsnorm


def rms_with(ms="mean", eps_at="under", gain="mul", dim=-1, root=True):
    """x / sqrt(mean(x^2) + eps) * weight with one knob turned."""
    def f(x, weight, eps):
        sq = {"mean": lambda: x.pow(2).mean(dim, keepdim=True), "sum": lambda: x.pow(2).sum(dim, keepdim=True),
              "abs": lambda: x.abs().mean(dim, keepdim=True) ** 2, "sqmean": lambda: x.mean(dim, keepdim=True) ** 2,
              "var": lambda: x.var(dim, keepdim=True), "centred": lambda: x.var(dim, keepdim=True, unbiased=False),
              }[ms]()
        e = {"under": eps, "none": 0.0, "fixed": 1e-6, "outside": 0.0}[eps_at]
        d = (sq + e).sqrt() if root else sq + e
        if eps_at == "outside":
            d = d + eps
        y = (x - x.mean(dim, keepdim=True) if ms in ("var", "centred") else x) / d
        return {"mul": y * weight, "none": y, "add": y + weight, "one_plus": y * (1 + weight), "div": y / weight}[gain]
    return f


mistake(R, r"eps|outside|root")(rms_with(eps_at="outside"))
mistake(R, r"eps|1e-6|hard|argument")(rms_with(eps_at="fixed"))  # Llama's default, not the argument
mistake(R, r"eps|missing|without")(rms_with(eps_at="none"))
mistake(R, r"sum|mean|channels|C\b")(rms_with(ms="sum"))
mistake(R, r"abs|square|mean of")(rms_with(ms="abs"))
mistake(R, r"square of the mean|mean of (the )?squares|x\^2|x²|order|sqmean|mean\(x\)")(rms_with(ms="sqmean"))
mistake(R, r"mean|subtract|centr|layernorm|layer norm|unbiased|variance")(rms_with(ms="var"))
mistake(R, r"mean|subtract|centr|layernorm|layer norm|variance")(rms_with(ms="centred"))
mistake(R, r"axis|axes|dim|time|position|over T")(rms_with(dim=1))
mistake(R, r"gain|weight|not applied|missing")(rms_with(gain="none"))
mistake(R, r"gain|weight|add|bias")(rms_with(gain="add"))
mistake(R, r"1 \+|one plus|gemma|gain|weight|offset")(rms_with(gain="one_plus"))  # Gemma's (1 + w)
mistake(R, r"sqrt|root|square root")(rms_with(root=False))
mistake(R, both(r"eps|outside", r"sum|mean"))(rms_with(ms="sum", eps_at="outside"))


mistake(R, r"keepdim|shape|broadcast|dim")(  # (B, T) against (B, T, C): fails to broadcast
    lambda x, weight, eps: x / torch.sqrt(x.pow(2).mean(-1) + eps) * weight)


mistake(R, r"multipl|divid|rsqrt|invert|reciprocal|times the rms")(  # rsqrt already inverts, then divided by it
    lambda x, weight, eps: x / torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight)


@mistake(R, r"gain|weight|before|order|inside")
def rms_gain_first(x, weight, eps):  # the gain applied before normalising: it cancels out
    x = x * weight
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)


mistake(R, r"norm|sqrt\(C\)|sqrt C|sum|mean|scale|factor")(  # F.normalize: the L2 norm, off by sqrt(C)
    lambda x, weight, eps: F.normalize(x, dim=-1, eps=eps) * weight)


@mistake(R, DTYPE)
def rms_float64(x, weight, eps):  # upcast "for stability", never cast back
    x = x.double()
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight.double()


@mistake(R, r"numpy|tensor|type|ndarray")
def rms_numpy(x, weight, eps):
    a = x.detach().numpy()
    return a / np.sqrt((a ** 2).mean(-1, keepdims=True) + eps) * weight.detach().numpy()


@mistake(R, r"in place|in-place|modif|input|overwr|mul_")
def rms_in_place(x, weight, eps):
    return x.mul_(torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)).mul_(weight)


@mistake(R, r"shape|squeeze|dim|B\s*=\s*1|T\s*=\s*1|size 1")
def rms_squeeze(x, weight, eps):  # squeeze() drops a batch or time axis of size 1
    x = x.squeeze()
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


@mistake(R, r"detach|grad|no_grad|backward")
def rms_detached(x, weight, eps):  # the scale computed under no_grad "as a constant"
    with torch.no_grad():
        scale = torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    return x * scale * weight


valid(R)(lambda x, weight, eps: F.rms_norm(x, (x.size(-1),), weight, eps))
valid(R)(lambda x, weight, eps: x / torch.sqrt((x * x + eps).mean(dim=2, keepdim=True)) * weight)  # eps inside mean
valid(R)(lambda x, weight, eps: weight * (x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + eps))
         .type_as(x))  # HF's LlamaRMSNorm
valid(R)(lambda x, weight, eps: x / torch.sqrt(x.norm(dim=-1, keepdim=True) ** 2 / x.shape[-1] + eps) * weight)


# ------------------------------------------------------------------------------------------ rotary
RO = ex.check_rotary


def rope_with(pair="half", pos="ok", freq="ok", sign=1, trig="ok", dup="cat", layout="bthd"):
    """HF Llama's apply_rotary_pos_emb, each knob one slip."""
    def f(x, start, theta):
        T, hs = (x.shape[2] if layout == "bhtd" else x.shape[1]), x.shape[-1]
        th = 10000.0 if freq == "theta" else theta
        i = torch.arange(0, hs, 2).float()
        inv = {"no2": 1.0 / th ** (i / 2 / hs), "noinv": th ** (i / hs),
               "int": 1.0 / th ** torch.div(torch.arange(0, hs, 2), hs, rounding_mode="floor").float()}.get(
                   freq, 1.0 / th ** (i / hs))
        lo, hi = {"ok": (start, start + T), "zero": (0, T), "neg": (-start, T - start), "end": (start, T),
                  "one": (start + 1, start + T + 1)}[pos]
        p = torch.arange(lo, hi).float()
        ang = torch.outer(p, inv)
        ang = torch.cat((ang, ang), -1) if dup == "cat" else ang.repeat_interleave(2, -1)
        ang = ang if layout == "bhtd" else ang[:, None, :]  # (T, hs) broadcasts over (nh, hs) for bhtd
        cos, sin = ang.cos(), ang.sin()
        if trig == "swap":
            cos, sin = sin, cos
        if pair == "half":
            x1, x2 = x.chunk(2, dim=-1)
            rot = torch.cat((-x2, x1), -1) if sign == 1 else torch.cat((x2, -x1), -1)
        else:  # Meta's neighbours (2j, 2j+1)
            rot = torch.stack((-x[..., 1::2], x[..., ::2]), -1).flatten(-2)
        return x * cos + rot * sin
    return f


mistake(RO, r"pair|interleav|neighbo|adjacent|half|2j")(rope_with(pair="adjacent"))
mistake(RO, r"start|offset|cache")(rope_with(pos="zero"))
mistake(RO, r"off by one|start|one|\+ ?1|1-based|from 1")(rope_with(pos="one"))  # "from 1": widened, fair
mistake(RO, r"start|sign|minus|negative|offset")(rope_with(pos="neg"))
mistake(RO, r"start|arange|length|end|positions")(rope_with(pos="end"))  # arange(start, T): too short for start > 0
mistake(RO, r"theta|base|10000|10,000")(rope_with(freq="theta"))
mistake(RO, r"frequenc|exponent|2i|speed|hs/2|/ 2")(rope_with(freq="no2"))
mistake(RO, r"frequenc|invers|1 ?/|negative exponent|reciprocal")(rope_with(freq="noinv"))
mistake(RO, r"frequenc|integer|division|floor")(rope_with(freq="int"))
mistake(RO, r"sign|direction|rotate_half|negat|clockwise|-x2|-x1|opposite")(rope_with(sign=-1))
mistake(RO, r"sin|cos|swap")(rope_with(trig="swap"))
mistake(RO, r"repeat_interleave|interleav|duplicat|cat|pair|angle")(rope_with(dup="interleave"))
mistake(RO, r"axis|layout|head|\(B, ?nh, ?T|transpose|T\b|position")(rope_with(layout="bhtd"))
mistake(RO, both(r"pair|interleav|neighbo|adjacent", r"start|offset"))(rope_with(pair="adjacent", pos="zero"))


@mistake(RO, r"sign|direction|negat|opposite|minus")
def rope_minus(x, start, theta):  # x cos - rotate_half(x) sin: the other way round
    hs, T = x.shape[-1], x.shape[1]
    ang = torch.outer(torch.arange(start, start + T).float(), theta ** (-torch.arange(0, hs, 2).float() / hs))
    ang = torch.cat((ang, ang), -1)[:, None]
    x1, x2 = x.chunk(2, -1)
    return x * ang.cos() - torch.cat((-x2, x1), -1) * ang.sin()


@mistake(RO, DTYPE)
def rope_float64(x, start, theta):  # angles in float64 "for long contexts": the output comes back float64
    hs, T = x.shape[-1], x.shape[1]
    inv = 1.0 / theta ** (torch.arange(0, hs, 2, dtype=torch.float64) / hs)
    ang = torch.outer(torch.arange(start, start + T, dtype=torch.float64), inv)
    ang = torch.cat((ang, ang), -1)[:, None]
    x1, x2 = x.chunk(2, -1)
    return x * ang.cos() + torch.cat((-x2, x1), -1) * ang.sin()


mistake(RO, r"tuple|tensor|type")(lambda x, start, theta: (rope_with()(x, start, theta),))  # written for (q, k)


@mistake(RO, r"in place|in-place|modif|input|overwr")
def rope_in_place(x, start, theta):
    out = rope_with()(x, start, theta)
    x.copy_(out)
    return x


@mistake(RO, r"pair|interleav|neighbo|adjacent|complex|half")
def rope_meta_complex(x, start, theta):  # Meta's llama: complex numbers over neighbouring pairs
    B, T, nh, hs = x.shape
    inv = 1.0 / theta ** (torch.arange(0, hs, 2).float() / hs)
    freqs = torch.polar(torch.ones(T, hs // 2), torch.outer(torch.arange(start, start + T).float(), inv))
    z = torch.view_as_complex(x.float().reshape(B, T, nh, hs // 2, 2))
    return torch.view_as_real(z * freqs[:, None]).flatten(3).type_as(x)


@valid(RO)
def rope_complex_halves(x, start, theta):  # complex numbers, but over the halves (j, j + hs/2)
    T, hs = x.shape[1], x.shape[-1]
    inv = 1.0 / theta ** (torch.arange(hs // 2).float() / (hs // 2))
    ang = torch.outer(torch.arange(start, start + T).float(), inv)
    z = torch.complex(*x.chunk(2, -1)) * torch.polar(torch.ones_like(ang), ang)[:, None]
    return torch.cat((z.real, z.imag), -1)


@valid(RO)
def rope_einsum_pairs(x, start, theta):  # (a cos - b sin, b cos + a sin) with half-width angles
    hs = x.shape[-1]
    ang = torch.einsum("t,f->tf", torch.arange(start, start + x.shape[1], dtype=torch.float64),
                       theta ** (-torch.arange(0, hs, 2, dtype=torch.float64) / hs)).to(x.dtype)[:, None]
    a, b = x[..., : hs // 2], x[..., hs // 2:]
    return torch.cat((a * ang.cos() - b * ang.sin(), b * ang.cos() + a * ang.sin()), dim=-1)


valid(RO)(lambda x, start, theta: rope_with()(x, start, float(theta)))


# ------------------------------------------------------------------------------------------ SwiGLU
SW = ex.check_swiglu


def swiglu_with(act=F.silu, on="gate", combine="mul", down=True):
    def f(x, w_gate, w_up, w_down):
        g, u = F.linear(x, w_gate), F.linear(x, w_up)
        if on == "gate":
            h = act(g) * u if combine == "mul" else act(g) + u
        elif on == "up":
            h = g * act(u)
        elif on == "both":
            h = act(g) * act(u)
        else:  # "product": the activation after the gating
            h = act(g * u)
        return F.linear(h, w_down) if down else h
    return f


mistake(SW, r"gate|up|swap|wrong branch")(swiglu_with(on="up"))
mistake(SW, r"both|up|silu on")(swiglu_with(on="both"))
mistake(SW, r"after|product|order|outside")(swiglu_with(on="product"))
mistake(SW, r"gelu")(swiglu_with(act=F.gelu))
mistake(SW, r"gelu|tanh")(swiglu_with(act=lambda z: F.gelu(z, approximate="tanh")))
mistake(SW, r"sigmoid|glu\b|silu|swish")(swiglu_with(act=torch.sigmoid))
mistake(SW, r"relu")(swiglu_with(act=F.relu))
mistake(SW, r"relu|square")(swiglu_with(act=lambda z: F.relu(z) ** 2))
mistake(SW, r"activation|silu|bilinear|linear|none|missing")(swiglu_with(act=lambda z: z))
mistake(SW, r"sum|add|\+|multipl|product")(swiglu_with(combine="add"))
mistake(SW, r"down|projection|w_down|shape")(swiglu_with(down=False))
mistake(SW, r"silu|sigmoid|sign|exp|swish")(swiglu_with(act=lambda z: z / (1 + torch.exp(z))))
mistake(SW, r"silu|sigmoid|1\.702|beta|swish|gelu")(swiglu_with(act=lambda z: z * torch.sigmoid(1.702 * z)))
mistake(SW, both(r"gate|up|swap", r"gelu"))(swiglu_with(act=F.gelu, on="up"))


@mistake(SW, r"transpose|\.T|\(out, in\)|shape|F\.linear|orientation")
def swiglu_matmul(x, w_gate, w_up, w_down):  # x @ W as if stored (in, out)
    return (F.silu(x @ w_gate) * (x @ w_up)) @ w_down


@mistake(SW, r"transpose|\.T|\(out, in\)|shape|F\.linear|orientation")
def swiglu_double_t(x, w_gate, w_up, w_down):  # F.linear already transposes; .T again
    return F.linear(F.silu(F.linear(x, w_gate.T)) * F.linear(x, w_up.T), w_down.T)


@mistake(SW, r"shape|reshape|view|flatten|dims")
def swiglu_flat(x, w_gate, w_up, w_down):  # flattened to (B*T, C) for the matmuls, never reshaped back
    x = x.reshape(-1, x.shape[-1])
    return F.silu(x @ w_gate.t()) * (x @ w_up.t()) @ w_down.t()


@mistake(SW, DTYPE)
def swiglu_float64(x, w_gate, w_up, w_down):
    x, w_gate, w_up, w_down = (t.double() for t in (x, w_gate, w_up, w_down))
    return F.linear(F.silu(F.linear(x, w_gate)) * F.linear(x, w_up), w_down)


@mistake(SW, r"sigmoid|glu|gate|up|swap")
def swiglu_glu_swapped(x, w_gate, w_up, w_down):  # F.glu over cat(gate, up): sigmoid(up) * gate
    return F.linear(F.glu(torch.cat((F.linear(x, w_gate), F.linear(x, w_up)), -1), dim=-1), w_down)


valid(SW)(lambda x, w_gate, w_up, w_down: torch.einsum(
    "...h,ch->...c", F.silu(torch.einsum("...c,hc->...h", x, w_gate)) * torch.einsum("...c,hc->...h", x, w_up), w_down))
valid(SW)(lambda x, w_gate, w_up, w_down: ((lambda g: g * torch.sigmoid(g))(x @ w_gate.T) * (x @ w_up.T)) @ w_down.T)
valid(SW)(lambda x, w_gate, w_up, w_down: F.linear(  # one fused matmul for gate and up, as vLLM does
    (lambda gu: F.silu(gu[0]) * gu[1])(F.linear(x, torch.cat((w_gate, w_up))).chunk(2, -1)), w_down))
valid(SW)(lambda x, w_gate, w_up, w_down: F.linear(F.silu(F.linear(x, w_gate)).mul(F.linear(x, w_up)), w_down))


# ------------------------------------------------------------------------------------------ GQA
G = ex.check_gqa
REP = r"repeat_interleave|interleav|group|tile|consecutive|j ?// ?group|order|wrong k/v head|kv head"


def gqa_with(expand="interleave", scale="sqrt", mask="ok", fill="-inf", sm=-1, out="ok"):
    def f(q, k, v):
        B, nh, T, hs = q.shape
        g = nh // k.size(1)
        rep = {"interleave": lambda t: t.repeat_interleave(g, dim=1), "repeat": lambda t: t.repeat(1, g, 1, 1),
               "expand_wrong": lambda t: t[:, None].expand(B, g, *t.shape[1:]).reshape(B, nh, T, hs)}[expand]
        k, v = rep(k), rep(v)
        s = q @ k.transpose(-2, -1) * {"sqrt": hs ** -0.5, "none": 1.0, "hs": 1 / hs, "C": (nh * hs) ** -0.5}[scale]
        future = torch.ones(T, T, dtype=torch.bool).triu(1)
        m = {"ok": future, "diag": torch.ones(T, T, dtype=torch.bool).triu(0), "inverted": ~future,
             "none": torch.zeros(T, T, dtype=torch.bool)}[mask]
        s = s.masked_fill(m, {"-inf": float("-inf"), "0": 0.0}[fill])
        y = s.softmax(dim=sm) @ v
        return {"ok": y, "bthd": y.transpose(1, 2), "merged": y.transpose(1, 2).reshape(B, T, nh * hs)}[out]
    return f


mistake(G, REP)(gqa_with(expand="repeat"))  # tiles: query head j reads k/v head j % n_kv_head
mistake(G, REP)(gqa_with(expand="expand_wrong"))  # the expand's new axis before the kv heads
mistake(G, r"scal|sqrt")(gqa_with(scale="none"))
mistake(G, r"scal|sqrt|1/hs")(gqa_with(scale="hs"))
mistake(G, r"scal|sqrt|head size|n_embd|C\b")(gqa_with(scale="C"))
mistake(G, r"causal|mask|future")(gqa_with(mask="none"))
mistake(G, r"diagonal|mask|itself|triu|nan")(gqa_with(mask="diag"))
mistake(G, r"mask|invert|future|causal|past")(gqa_with(mask="inverted"))
mistake(G, r"\b0\b|zero|-inf|fill|mask")(gqa_with(fill="0"))
mistake(G, r"softmax|dim|axis")(gqa_with(sm=-2))
mistake(G, r"shape|transpose|layout|\(B, ?nh, ?T|axes")(gqa_with(out="bthd"))
mistake(G, r"shape|merge|\(B, ?nh, ?T|reshape|dims")(gqa_with(out="merged"))
mistake(G, both(REP, r"scal|sqrt"))(gqa_with(expand="repeat", scale="none"))


@mistake(G, r"group|ratio|n_kv_head|n_head|repeat")
def gqa_group_inverted(q, k, v):  # n_kv_head // n_head: 0 repeats
    g = k.size(1) // q.size(1)
    return F.scaled_dot_product_attention(q, k.repeat_interleave(g, 1), v.repeat_interleave(g, 1), is_causal=True)


@mistake(G, r"mask|size|T\b|length|block|8")
def gqa_fixed_mask(q, k, v):  # a mask for a fixed length, as a registered buffer of block_size would be
    g = q.size(1) // k.size(1)
    k, v = k.repeat_interleave(g, 1), v.repeat_interleave(g, 1)
    mask = torch.tril(torch.ones(8, 8))
    att = (q @ k.transpose(-2, -1)) / math.sqrt(q.size(-1))
    return att.masked_fill(mask == 0, float("-inf")).softmax(-1) @ v


def pattern(q, k, v, then=lambda att, v: att @ v, repeat_v=True):
    """The notebook's repeat_interleave and causal softmax; `then` does what the student does with the weights."""
    g, T = q.size(1) // k.size(1), q.size(2)
    k, v = k.repeat_interleave(g, 1), v.repeat_interleave(g if repeat_v else 1, 1)
    att = (q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))).masked_fill(
        torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    return then(att.softmax(-1), v)


mistake(G, r"dropout|random|determin|training")(  # F.dropout defaults to training=True
    lambda q, k, v: pattern(q, k, v, lambda att, v: F.dropout(att, p=0.1) @ v))
mistake(G, r"\bv\b|value|repeat|shape|broadcast")(  # v not repeated: broadcasts only when n_kv_head == 1
    lambda q, k, v: pattern(q, k, v, repeat_v=False))
mistake(G, r"causal|mask|is_causal")(lambda q, k, v: F.scaled_dot_product_attention(
    q, k.repeat_interleave(q.size(1) // k.size(1), 1), v.repeat_interleave(q.size(1) // k.size(1), 1)))
mistake(G, r"tuple|type|tensor|weights")(  # ARENA-style: returns (out, attention pattern)
    lambda q, k, v: pattern(q, k, v, lambda att, v: (att @ v, att)))


mistake(G, r"scal|sqrt|v\b|value|after")(  # the 1/sqrt(hs) applied to the output instead of the scores
    lambda q, k, v: gqa_with(scale="none")(q, k, v) / math.sqrt(q.size(-1)))


valid(G)(lambda q, k, v: F.scaled_dot_product_attention(
    q, k.repeat_interleave(q.size(1) // k.size(1), 1), v.repeat_interleave(q.size(1) // k.size(1), 1), is_causal=True))
valid(G)(gqa_with(expand="interleave", fill="-inf"))


@valid(G)
def gqa_grouped_einsum(q, k, v):  # no repeat: the query heads viewed as (n_kv_head, group)
    B, nh, T, hs = q.shape
    nkv = k.size(1)
    qg = q.view(B, nkv, nh // nkv, T, hs)
    s = torch.einsum("bkgqd,bksd->bkgqs", qg, k) / math.sqrt(hs)
    s = s.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), torch.finfo(s.dtype).min)
    return torch.einsum("bkgqs,bksd->bkgqd", s.softmax(-1), v).reshape(B, nh, T, hs)


@valid(G)
def gqa_expand(q, k, v):  # HF's repeat_kv: expand then reshape
    B, nkv, T, hs = k.shape
    g = q.size(1) // nkv
    k, v = (t[:, :, None].expand(B, nkv, g, T, hs).reshape(B, nkv * g, T, hs) for t in (k, v))
    att = (q @ k.transpose(-2, -1)) / math.sqrt(hs) + torch.full((T, T), float("-inf")).triu(1)
    return att.softmax(-1) @ v


import heldout_probe_round13_modern_train  # noqa: E402,F401  (the second half: conversion, training, schedule, decay)
