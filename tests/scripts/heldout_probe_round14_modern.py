"""The held-out probe, round 14, modern part (RMSNorm, rotary, SwiGLU, GQA, the GPT-2 conversion, the LR schedule,
the weight-decay groups and a short training run): written fresh by w24r before reading these checkers' tables,
tests/mistakes_*.py or any earlier round, from the checkers' docstrings, notebooks 08 and 10 and mingpt's own
modules only, and counted untuned first. The angle: the student's second attempt and the assistant's answer: code
an LLM would write for the exercise text (torch defaults: var's correction, F.softmax without dim, F.dropout's
training=True, masked_fill not in place, integer division), a first slip "fixed" the wrong way (eps inside and
outside the root, the start added twice, a scale on both q and k), state kept across calls (a cache of the angles or
the mask made on the first call, a call counter, inputs changed in place), and edge sizes. See heldout_probe.py."""

from __future__ import annotations


import torch
import torch.nn.functional as F

import mingpt.exercises as ex

from heldout_probe_models import ROUND, mistake, valid
import heldout_probe_round13_post  # noqa: F401  (earlier rounds registered first)

ROUND[0] = 14
INPLACE = r"in.place|mutat|modif|input|chang"
DTYPE = r"dtype|float64|double|float16|half|precision"


# ------------------------------------------------------------------------------------------ RMSNorm
R = ex.check_rmsnorm


def rms_with(ms="mean", eps="in", gain="w", dim=-1, keep=True, out=None):
    """x / root(mean square + eps) * w, with knobs for the slips."""
    def f(x, weight, e):
        sq = {"mean": lambda: x.pow(2).mean(dim, keepdim=keep), "var": lambda: x.var(dim, keepdim=keep),
              "var0": lambda: x.var(dim, keepdim=keep, unbiased=False), "sum": lambda: x.pow(2).sum(dim, keepdim=keep),
              "abs": lambda: x.abs().mean(dim, keepdim=keep) ** 2}[ms]()
        r = {"in": lambda: torch.sqrt(sq + e), "out": lambda: torch.sqrt(sq) + e,
             "both": lambda: torch.sqrt(sq + e) + e, "fixed": lambda: torch.sqrt(sq + 1e-6),
             "sq": lambda: sq + e}[eps]()
        g = {"w": weight, "1+w": 1 + weight, "none": 1.0}[gain]
        y = x / r * g
        return y.double() if out == "double" else y
    return f


mistake(R, r"var|mean|subtract|center|layernorm")(rms_with(ms="var"))  # the assistant's torch.var (unbiased, centred)
mistake(R, r"var|mean|subtract|center|layernorm")(rms_with(ms="var0"))
mistake(R, r"eps.*(outside|inside|root|sqrt)|(outside|inside|root|sqrt).*eps")(rms_with(eps="out"))
mistake(R, r"eps")(rms_with(eps="both"))  # "fixed" by adding eps in both places
mistake(R, r"eps")(rms_with(eps="fixed"))  # a hard-coded eps, the given one ignored
mistake(R, r"sqrt|root|square")(rms_with(eps="sq"))  # divided by the mean square itself
mistake(R, r"sum|mean|divide|\bC\b|channels")(rms_with(ms="sum"))
mistake(R, r"abs|square|l1|mean of")(rms_with(ms="abs"))
mistake(R, r"axis|dim|time|position|last")(rms_with(dim=1))
mistake(R, r"keepdim|shape|broadcast")(rms_with(keep=False))
mistake(R, r"1 ?\+|gemma|gain|weight|offset")(rms_with(gain="1+w"))
mistake(R, r"weight|gain|scale")(rms_with(gain="none"))
mistake(R, DTYPE)(rms_with(out="double"))


@mistake(R, INPLACE)
def rms_in_place(x, weight, eps):  # the "memory-efficient" version: x scaled in place
    return x.mul_(torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)).mul_(weight)


@mistake(R, r"axis|dim|last|time|position")
def rms_two_axes(x, weight, eps):  # the mean over (T, C), as a "layer" norm over the whole layer
    return x * torch.rsqrt(x.pow(2).mean(dim=(-2, -1), keepdim=True) + eps) * weight


@mistake(R, r"cache|state|call|first|second|eps|weight")
def rms_cached(x, weight, eps, _cache={}):  # the gain "prepared" once and reused on every later call
    w = _cache.setdefault("w", weight.clone())
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


valid(R)(lambda x, weight, eps: F.rms_norm(x, (x.size(-1),), weight, eps))
valid(R)(lambda x, weight, eps: weight * (x.float() * (x.float().pow(2).mean(-1, keepdim=True) + eps) ** -0.5)
         .to(x.dtype))  # HF's LlamaRMSNorm
valid(R)(lambda x, weight, eps: torch.einsum("btc,c->btc", x / x.square().mean(-1, keepdim=True).add(eps).sqrt(),
                                             weight))


# ------------------------------------------------------------------------------------------ rotary
Q = ex.check_rotary
PAIR = r"pair|interleav|neighbo|adjacent|rotate_half|halves"
START = r"start|offset|position"


def rot_with(pair="half", pos="ok", freq="ok", sign=1, trig="ok", dtype=torch.float32, t_axis=1, bcast=True):
    """The notebook's apply_rotary with knobs."""
    def f(x, start, theta):
        T, hs = x.shape[t_axis], x.shape[-1]
        i = torch.arange(0, hs, 2, dtype=dtype)
        expo = {"ok": i / hs, "half": torch.arange(hs // 2, dtype=dtype) / hs, "hs2": i / (hs // 2), "neg": i,
                "int": torch.arange(0, hs, 2) // hs}[freq]
        inv = 1.0 / theta ** expo if freq != "neg" else theta ** (i / hs)
        p = {"ok": torch.arange(start, start + T), "zero": torch.arange(T),
             "twice": torch.arange(start, start + T) + start,
             "one": torch.arange(start + 1, start + T + 1)}[pos].to(dtype)
        a = torch.outer(p, inv)
        a = torch.cat((a, a), -1) if pair == "half" or pair == "halfrep" else a.repeat_interleave(2, -1)
        if pair == "halfrep":
            a = torch.outer(p, inv).repeat_interleave(2, -1)
        if bcast:
            a = a[:, None, :]
        cos, sin = (a.cos(), a.sin()) if trig == "ok" else (a.sin(), a.cos())
        if pair == "adj":  # Meta's pairing: (2j, 2j+1)
            x1, x2 = x[..., 0::2], x[..., 1::2]
            rh = torch.stack((-x2, x1), -1).flatten(-2)
        else:
            x1, x2 = x.chunk(2, -1)
            rh = torch.cat((-x2, x1), -1) if sign == 1 else torch.cat((x2, -x1), -1)
        return x * cos + rh * sin
    return f


mistake(Q, PAIR)(rot_with(pair="adj"))  # the assistant's Meta-style pairing
mistake(Q, PAIR + r"|repeat")(rot_with(pair="halfrep"))  # halves paired, angles repeated as for neighbours
mistake(Q, START)(rot_with(pos="zero"))
mistake(Q, START + r"|twice")(rot_with(pos="twice"))  # the start "fixed" by adding it a second time
mistake(Q, START + r"|one|off by")(rot_with(pos="one"))
mistake(Q, r"sign|direction|negat|clockwise|invers|opposite|angle")(rot_with(sign=-1))
mistake(Q, r"freq|2i|exponent|theta|speed")(rot_with(freq="half"))
mistake(Q, r"freq|exponent|theta|speed|hs ?/ ?2")(rot_with(freq="hs2"))
mistake(Q, r"freq|invers|theta|exponent|speed")(rot_with(freq="neg"))
mistake(Q, r"freq|integer|division|exponent|theta|speed")(rot_with(freq="int"))
mistake(Q, r"sin|cos|swap")(rot_with(trig="swap"))
mistake(Q, DTYPE)(rot_with(dtype=torch.float64))
mistake(Q, r"axis|head|shape|position|T\b|length")(rot_with(t_axis=2))  # T read off the heads axis
mistake(Q, r"broadcast|head|axis|shape|position")(rot_with(bcast=False))


@mistake(Q, r"cache|state|call|length|start|position")
def rot_cached(x, start, theta, _cache={}):  # cos/sin made on the first call, for its T and start only
    if "cs" not in _cache:
        T, hs = x.shape[1], x.shape[-1]
        a = torch.outer(torch.arange(start, start + T).float(), 1.0 / theta ** (torch.arange(0, hs, 2).float() / hs))
        a = torch.cat((a, a), -1)[:, None, :]
        _cache["cs"] = (a.cos(), a.sin())
    cos, sin = _cache["cs"]
    x1, x2 = x.chunk(2, -1)
    return x * cos[: x.size(1)] + torch.cat((-x2, x1), -1) * sin[: x.size(1)]


@mistake(Q, INPLACE)
def rot_in_place(x, start, theta):
    T, hs = x.shape[1], x.shape[-1]
    a = torch.outer(torch.arange(start, start + T).float(), 1.0 / theta ** (torch.arange(0, hs, 2).float() / hs))
    c, s = a.cos()[:, None], a.sin()[:, None]
    x1, x2 = x[..., : hs // 2], x[..., hs // 2:]
    r1, r2 = x1 * c - x2 * s, x2 * c + x1 * s
    x[..., : hs // 2], x[..., hs // 2:] = r1, r2
    return x


@valid(Q)
def rot_complex(x, start, theta):  # the halves as real and imaginary parts of a complex number
    T, hs = x.shape[1], x.shape[-1]
    a = torch.outer(torch.arange(start, start + T).float(), 1.0 / theta ** (torch.arange(0, hs, 2).float() / hs))
    z = torch.complex(*x.float().chunk(2, -1)) * torch.polar(torch.ones_like(a), a)[:, None, :]
    return torch.cat((z.real, z.imag), -1).to(x.dtype)


@valid(Q)
def rot_explicit(x, start, theta):
    T, hs = x.shape[1], x.shape[-1]
    inv = theta ** (-torch.arange(hs // 2).float() * 2 / hs)
    a = torch.einsum("t,f->tf", torch.arange(T).float() + start, inv).unsqueeze(1)
    x1, x2 = x[..., : hs // 2], x[..., hs // 2:]
    return torch.cat((x1 * a.cos() - x2 * a.sin(), x2 * a.cos() + x1 * a.sin()), -1)


# ------------------------------------------------------------------------------------------ SwiGLU
S = ex.check_swiglu


def glu_with(act=F.silu, where="gate", combine="mul", drop=False):
    def f(x, w_gate, w_up, w_down):
        g, u = F.linear(x, w_gate), F.linear(x, w_up)
        h = {"gate": lambda: act(g) * u, "up": lambda: g * act(u), "both": lambda: act(g) * act(u),
             "after": lambda: act(g * u), "input": lambda: F.linear(act(x), w_gate) * u}[where]()
        if combine == "add":
            h = act(g) + u
        if drop:
            h = F.dropout(h, 0.1)  # the assistant's dropout: F.dropout trains by default
        return F.linear(h, w_down)
    return f


GATE = r"gate|up|swap|branch"
mistake(S, GATE)(glu_with(where="up"))
mistake(S, r"both|up|branch|gate")(glu_with(where="both"))
mistake(S, r"after|product|order|placement|outside")(glu_with(where="after"))
mistake(S, r"before|input|placement|order|x\b")(glu_with(where="input"))
mistake(S, r"gelu")(glu_with(act=F.gelu))
mistake(S, r"sigmoid|silu|swish|glu")(glu_with(act=torch.sigmoid))
mistake(S, r"relu")(glu_with(act=lambda z: F.relu(z) ** 2))
mistake(S, r"add|sum|plus|multipl|product")(glu_with(combine="add"))
mistake(S, r"dropout|random|train|determin")(glu_with(drop=True))
mistake(S, r"silu|sigmoid|sign|swish")(glu_with(act=lambda z: z / (1 + torch.exp(z))))
mistake(S, r"transpose|shape|\.T|layout|\(out, in\)")(lambda x, w_gate, w_up, w_down:
                                                        (F.silu(x @ w_gate) * (x @ w_up)) @ w_down)
mistake(S, r"tuple|tensor|type|return")(lambda x, w_gate, w_up, w_down:
                                        (F.linear(F.silu(F.linear(x, w_gate)) * F.linear(x, w_up), w_down),))
mistake(S, DTYPE)(lambda x, w_gate, w_up, w_down: F.linear(F.silu(F.linear(x.double(), w_gate.double()))
                                                           * F.linear(x.double(), w_up.double()), w_down.double()))
valid(S)(lambda x, w_gate, w_up, w_down: torch.einsum("bth,ch->btc", (lambda g: g * torch.sigmoid(g))(
    torch.einsum("btc,hc->bth", x, w_gate)) * torch.einsum("btc,hc->bth", x, w_up), w_down))
valid(S)(lambda x, w_gate, w_up, w_down: (lambda gu: F.linear(F.silu(gu[0]) * gu[1], w_down))(
    F.linear(x, torch.cat((w_gate, w_up))).chunk(2, -1)))

valid(S)(lambda x, w_gate, w_up, w_down: (F.silu(x @ w_gate.T) * (x @ w_up.T)) @ w_down.T)

import heldout_probe_round14_modern2  # noqa: E402,F401  (the rest of this round, in file order)
