"""The held-out probe, round 15, modern part (RMSNorm, rotary, SwiGLU, GQA here; the GPT-2 conversion, the schedule,
the weight-decay groups and a training run in heldout_probe_round15_modern2): written fresh by w24v before reading
these checkers' tables, tests/mistakes_*.py or rounds 13-14, from the checkers' docstrings, the course's notebooks 03,
08 and 10 (the fill-in cells and their skeletons) and mingpt's reference code only, and counted untuned first. The
angle: filling in the course's cells (the wrong variable or axis in a blank, the right formula in the wrong place),
interface slips (a tuple returned, the input modified in place, a forgotten return, a Python float), numerics
(float16/bfloat16 intermediates, integer tensors, math vs torch) and two slips that partly cancel. See
heldout_probe.py."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

import mingpt.exercises as ex

from heldout_probe_models import ROUND, mistake, valid
import heldout_probe_round14_post  # noqa: F401  (earlier rounds registered first)

ROUND[0] = 15


def both(a: str, b: str) -> str:
    return rf"(?=.*(?:{a}))(?=.*(?:{b}))"


TUPLE = r"tuple|two (values|outputs)|extra|more than one|return(s|ed)? .*(pair|tuple)"
INPLACE = r"in.place|modif|input|mutat|alias|changed"
NONE = r"None|return"
DTYPE = r"dtype|float16|half|bfloat16|precision|float32"

# ------------------------------------------------------------------------------------------ RMSNorm
R = ex.check_rmsnorm
EPS = r"eps|epsilon"


def rms_with(eps_at="in", dim=-1, keepdim=True, stat="meansq", weight="mul", dtype=None, out="plain"):
    """The notebook's one line, return x * rsqrt(mean(x^2) + eps) * weight, with the slips."""
    def f(x, w, eps):
        h = x.to(dtype) if dtype is not None else x
        s = {"meansq": lambda: h.pow(2).mean(dim=dim, keepdim=keepdim),
             "var": lambda: h.var(dim=dim, keepdim=keepdim, unbiased=False),
             "absmean": lambda: h.abs().mean(dim=dim, keepdim=keepdim),
             "sumsq": lambda: h.pow(2).sum(dim=dim, keepdim=keepdim)}[stat]()
        r = {"in": lambda: torch.rsqrt(s + eps), "out": lambda: 1 / (s.sqrt() + eps), "none": lambda: torch.rsqrt(s),
             "nosqrt": lambda: 1 / (s + eps)}[eps_at]()
        if out == "inplace":
            return x.mul_(r.to(x.dtype)).mul_(w)
        y = (h * r).to(x.dtype)
        y = {"mul": lambda: y * w, "none": lambda: y, "add": lambda: y + w, "both": lambda: y * w + w}[weight]()
        return {"plain": y, "tuple": (y, r), "none": None}[out]
    return f


mistake(R, EPS)(rms_with(eps_at="out"))  # eps added to the root, not under it
mistake(R, EPS)(rms_with(eps_at="none"))  # eps left out: visible only on a row of (near) zeros
mistake(R, r"sqrt|square root|root|rsqrt")(rms_with(eps_at="nosqrt"))  # divided by the mean square itself
mistake(R, r"axis|dim|last|time|\bT\b")(rms_with(dim=1))  # the skeleton's blank filled with the wrong axis
mistake(R, r"keepdim|broadcast|shape")(rms_with(keepdim=False))  # (B, T) against (B, T, C)
mistake(R, r"mean|var|LayerNorm|centr|subtract")(rms_with(stat="var"))  # LayerNorm's variance: the mean removed
mistake(R, r"sum|mean|\bC\b|sqrt\(C\)|size")(rms_with(stat="sumsq"))  # sum of squares, not their mean
mistake(R, r"weight|gain|scale")(rms_with(weight="none"))  # the weight forgotten
mistake(R, r"weight|gain|add|\+")(rms_with(weight="add"))  # weight added (a bias), not multiplied
mistake(R, DTYPE)(rms_with(dtype=torch.float16))  # a float16 intermediate: precision lost (and overflow)
mistake(R, DTYPE)(rms_with(dtype=torch.bfloat16))
mistake(R, INPLACE)(rms_with(out="inplace"))  # x.mul_(...): the caller's x overwritten
mistake(R, TUPLE)(rms_with(out="tuple"))  # (out, rms) returned
mistake(R, NONE)(rms_with(out="none"))  # return forgotten
mistake(R, r"norm|sqrt\(C\)|\bC\b|mean|size")(lambda x, w, eps: x / (x.norm(dim=-1, keepdim=True) + eps) * w)
mistake(R, r"math|sqrt|tensor|item|float")(  # math.sqrt on a tensor: the student's own TypeError
    lambda x, w, eps: x / math.sqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w)
valid(R)(lambda x, w, eps: x / torch.sqrt(x.square().mean(-1, keepdim=True) + eps) * w)
valid(R)(lambda x, w, eps: (x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + eps)).type_as(x) * w)
valid(R)(lambda x, w, eps: torch.einsum("btc,c->btc", x / (x * x).mean(-1, keepdim=True).add(eps).sqrt(), w))


# ------------------------------------------------------------------------------------------ rotary
Q = ex.check_rotary
PAIR = r"pair|interleav|rotate_half|half|adjacent|even|odd"
POS = r"start|position|offset"


def rope_with(pos="start", freq="ok", sign=1, pairing="half", expand="cat", t_from=1, dtype=None, out="plain"):
    """The notebook's solution, with the slips: positions, frequencies, rotation's sign, pairing and the interface."""
    def f(x, start, theta):
        T, hs = x.shape[t_from], x.shape[-1]
        i = torch.arange(0, hs, 2)
        inv = {"ok": lambda: 1.0 / theta ** (i.float() / hs), "intdiv": lambda: 1.0 / theta ** (i // hs),
               "pos": lambda: theta ** (i.float() / hs), "half": lambda: 1.0 / theta ** (i.float() / (hs // 2)),
               "noshift": lambda: 1.0 / theta ** (torch.arange(hs // 2).float() / hs)}[freq]()
        p = {"start": torch.arange(start, start + T), "zero": torch.arange(T), "plus1": torch.arange(start + 1,
             start + T + 1)}[pos]
        ang = torch.outer(p.float(), inv.float())
        if dtype is not None:
            ang = ang.to(dtype)
        ang = torch.cat((ang, ang), -1) if expand == "cat" else ang.repeat_interleave(2, -1)
        cos, sin = ang.cos().float()[:, None, :], ang.sin().float()[:, None, :]
        if pairing == "half":
            x1, x2 = x.chunk(2, dim=-1)
            rot = torch.cat((-x2, x1), -1)
        else:  # GPT-J / Meta's interleaved pairs (x0, x1), (x2, x3) ...
            x1, x2 = x[..., ::2], x[..., 1::2]
            rot = torch.stack((-x2, x1), -1).flatten(-2)
        y = x * cos + sign * rot * sin
        return {"plain": y, "tuple": (y, ang), "inplace": x.copy_(y) if out == "inplace" else None}[out]
    return f


mistake(Q, POS)(rope_with(pos="zero"))  # start ignored: visible only with a KV cache's start > 0
mistake(Q, POS + r"|one|off by")(rope_with(pos="plus1"))
mistake(Q, PAIR)(rope_with(pairing="interleaved"))  # Meta's pairing against HF's rotate_half
mistake(Q, PAIR + r"|repeat")(rope_with(expand="repeat"))  # angles interleaved, halves rotated: pairs disagree
# Meta's own convention (pairs and angles both interleaved): the checker's "adjacent pairs" is the right name
# (regex widened after the untuned count from both(PAIR, angles) to PAIR: a fair name, not a misname)
mistake(Q, PAIR)(rope_with(pairing="interleaved", expand="repeat"))
mistake(Q, r"sign|direction|revers|negat|clockwise|inverse")(rope_with(sign=-1))  # rotated by -angle
mistake(Q, r"frequenc|theta|inv_freq|exponent|integer|divis")(rope_with(freq="intdiv"))  # i // hs == 0
mistake(Q, r"frequenc|theta|inv_freq|exponent|1 ?/|reciprocal|invert")(rope_with(freq="pos"))  # theta ** +...
mistake(Q, r"frequenc|theta|inv_freq|exponent|hs|half|2")(rope_with(freq="half"))  # / (hs // 2)
mistake(Q, r"frequenc|theta|inv_freq|exponent|step|arange|2")(rope_with(freq="noshift"))  # arange(hs/2) / hs
mistake(Q, r"\bT\b|head|nh|axis|dim|shape|length|position")(rope_with(t_from=2))  # T read from the heads' axis
mistake(Q, DTYPE)(rope_with(dtype=torch.float16))  # float16 angles: large positions lose precision
mistake(Q, TUPLE)(rope_with(out="tuple"))
mistake(Q, INPLACE)(rope_with(out="inplace"))


def rope_complex(x, start, theta):
    """Valid: the halves as the real and imaginary parts of complex numbers, multiplied by e^{i angle}."""
    T, hs = x.shape[1], x.shape[-1]
    inv = theta ** (-torch.arange(0, hs, 2, dtype=torch.float64) / hs)
    ang = torch.outer(torch.arange(start, start + T, dtype=torch.float64), inv)[:, None, :]
    z = torch.complex(*(t.double() for t in x.chunk(2, -1))) * torch.polar(torch.ones_like(ang), ang)
    return torch.cat((z.real, z.imag), -1).to(x.dtype)


def rope_matrix(x, start, theta):
    """Valid: an explicit (hs, hs) rotation matrix per position, applied with einsum."""
    T, hs = x.shape[1], x.shape[-1]
    h = hs // 2
    ang = torch.outer(torch.arange(start, start + T).float(), 1.0 / theta ** (torch.arange(h).float() * 2 / hs))
    c, s = ang.cos(), ang.sin()
    m = torch.zeros(T, hs, hs)
    idx = torch.arange(h)
    m[:, idx, idx], m[:, idx + h, idx + h], m[:, idx, idx + h], m[:, idx + h, idx] = c, c, s, -s
    return torch.einsum("btni,tij->btnj", x, m)


valid(Q)(rope_complex)
valid(Q)(rope_matrix)


# ------------------------------------------------------------------------------------------ SwiGLU
S = ex.check_swiglu


def swiglu_with(act=F.silu, where="gate", combine="mul", transpose=True, down=True, dtype=None, out="plain"):
    """The notebook's one line, F.linear(F.silu(F.linear(x, w_gate)) * F.linear(x, w_up), w_down), with slips."""
    def f(x, w_gate, w_up, w_down):
        h = x.to(dtype) if dtype is not None else x
        lin = (lambda a, w: F.linear(a, w.to(a.dtype))) if transpose else (lambda a, w: a @ w.to(a.dtype))
        g, u = lin(h, w_gate), lin(h, w_up)
        g, u = {"gate": (act(g), u), "up": (g, act(u)), "both": (act(g), act(u)), "none": (g, u)}.get(where, (g, u))
        hid = g * u if combine == "mul" else g + u
        if where == "after":
            hid = act(hid)
        y = lin(hid, w_down).to(x.dtype) if down else hid.to(x.dtype)
        return {"plain": y, "tuple": (y, hid), "none": None}[out]
    return f


ACT = r"silu|swish|activation|sigmoid|gelu|relu"
mistake(S, r"gate|up|swap|silu")(swiglu_with(where="up"))  # silu on the up projection: the roles swapped
mistake(S, ACT)(swiglu_with(act=torch.sigmoid))  # GLU's sigmoid, not SiLU
mistake(S, ACT)(swiglu_with(act=F.gelu))  # GeGLU
mistake(S, ACT)(swiglu_with(act=F.relu))  # ReGLU
mistake(S, ACT + r"|after|product|order")(swiglu_with(where="after"))  # silu(gate * up)
mistake(S, ACT + r"|both|up")(swiglu_with(where="both"))
mistake(S, ACT + r"|missing|no |linear|bilinear")(swiglu_with(where="none"))  # the activation forgotten
mistake(S, r"add|sum|\+|multipl|product")(swiglu_with(combine="add"))
mistake(S, r"transpose|\.T|shape|orientation|F\.linear")(swiglu_with(transpose=False))  # x @ w, not x @ w.T
mistake(S, r"down|w_down|projection|shape|hidden|\bH\b")(swiglu_with(down=False))
mistake(S, DTYPE)(swiglu_with(dtype=torch.float16))
mistake(S, TUPLE)(swiglu_with(out="tuple"))
mistake(S, NONE)(swiglu_with(out="none"))
mistake(S, r"gate|up|w_gate|w_up|order|swap|argument")(  # the arguments' order read as (x, w_up, w_gate, w_down)
    lambda x, w_up, w_gate, w_down: F.linear(F.silu(F.linear(x, w_gate)) * F.linear(x, w_up), w_down))
valid(S)(lambda x, wg, wu, wd: (x @ wg.T * torch.sigmoid(x @ wg.T) * (x @ wu.T)) @ wd.T)
valid(S)(lambda x, wg, wu, wd: torch.einsum("bth,ch->btc", F.silu(torch.einsum("btc,hc->bth", x, wg))
                                            * torch.einsum("btc,hc->bth", x, wu), wd))
valid(S)(lambda x, wg, wu, wd: (lambda g, u: F.linear(F.silu(g) * u, wd))(
    *F.linear(x, torch.cat((wg, wu))).chunk(2, -1)))


# ------------------------------------------------------------------------------------------ GQA
G = ex.check_gqa
GROUP = r"repeat_interleave|repeat|group|head|interleav|kv|order"
MASK = r"mask|causal|future|diagonal|tril|triu|later"


def gqa_with(rep="interleave", mask="ok", scale="hs", sm_dim=-1, fill=float("-inf"), t_from=2, dtype=None,
             out="plain"):
    """The notebook's solution, with the slips."""
    def f(q, k, v):
        group = q.size(1) // k.size(1)
        if rep == "interleave":
            k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
        elif rep == "repeat":  # tiles (0, 1, 0, 1): query head 1 reads kv head 1, not 0
            k, v = k.repeat(1, group, 1, 1), v.repeat(1, group, 1, 1)
        elif rep == "k_only":
            k, v = k.repeat_interleave(group, dim=1), v.repeat(1, group, 1, 1)
        T = q.size(t_from)
        d = {"hs": q.size(-1), "T": T, "nh": q.size(1), "none": 1}[scale]
        att = (q @ k.transpose(-2, -1)) / math.sqrt(d)
        if dtype is not None:
            att = att.to(dtype)
        if mask != "none":
            m = torch.ones(T, T, dtype=torch.bool).triu(0 if mask == "diag" else 1)
            if mask == "tril":
                m = torch.ones(T, T, dtype=torch.bool).tril(-1)
            att = att.masked_fill(m, fill)
        w = att.softmax(dim=sm_dim).to(v.dtype)
        y = w @ v
        return {"plain": y, "tuple": (y, w), "transposed": y.transpose(1, 2)}[out]
    return f


mistake(G, GROUP)(gqa_with(rep="repeat"))  # tiles instead of interleaves: visible only with nkv > 1
mistake(G, GROUP + r"|value|\bv\b")(gqa_with(rep="k_only"))  # k interleaved, v tiled
mistake(G, MASK)(gqa_with(mask="none"))
mistake(G, MASK + r"|nan|itself|own")(gqa_with(mask="diag"))  # triu(0): the diagonal masked, row 0 all -inf
mistake(G, MASK + r"|past|upper|lower|revers|anti")(gqa_with(mask="tril"))  # the past masked, not the future
mistake(G, r"scale|sqrt|hs|head size|temperature")(gqa_with(scale="T"))
mistake(G, r"scale|sqrt|hs|head size|temperature|heads")(gqa_with(scale="nh"))  # blank filled with q.size(1)
mistake(G, r"scale|sqrt|hs|head size|temperature")(gqa_with(scale="none"))
mistake(G, r"softmax|axis|dim|query|normali")(gqa_with(sm_dim=-2))
mistake(G, MASK + r"|zero|0|fill|-inf")(gqa_with(fill=0.0))  # masked_fill(..., 0): exp(0) still weighs
mistake(G, r"\bT\b|head|nh|axis|dim|shape|size|mask")(gqa_with(t_from=1))  # T = q.size(1), the heads' count
mistake(G, DTYPE)(gqa_with(dtype=torch.float16))
mistake(G, TUPLE)(gqa_with(out="tuple"))  # (out, att), as nanoGPT's debugging code returns
mistake(G, r"transpose|shape|axis|layout|\(B, T")(gqa_with(out="transposed"))  # (B, T, nh, hs)
valid(G)(lambda q, k, v: F.scaled_dot_product_attention(q, k.repeat_interleave(q.size(1) // k.size(1), 1),
                                                        v.repeat_interleave(q.size(1) // k.size(1), 1), is_causal=True))


def gqa_grouped(q, k, v):
    """Valid: queries grouped per kv head (B, nkv, g, T, hs), attending by broadcast without copying k and v."""
    B, nh, T, hs = q.shape
    nkv = k.size(1)
    qg = q.view(B, nkv, nh // nkv, T, hs)
    att = torch.einsum("bngtd,bnsd->bngts", qg, k) * hs ** -0.5
    att = att.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), -1e30)
    return torch.einsum("bngts,bnsd->bngtd", att.softmax(-1), v).reshape(B, nh, T, hs)


def gqa_expand(q, k, v):
    """Valid: Llama's repeat_kv, expand + reshape, and a -1e9 mask."""
    B, nkv, T, hs = k.shape
    n = q.size(1) // nkv
    k, v = (t[:, :, None].expand(B, nkv, n, T, hs).reshape(B, nkv * n, T, hs) for t in (k, v))
    att = (q @ k.mT) / hs ** 0.5 + torch.full((T, T), -1e9).triu(1)
    return F.softmax(att, dim=-1) @ v


valid(G)(gqa_grouped)
valid(G)(gqa_expand)

import heldout_probe_round15_modern2  # noqa: E402,F401  (the rest of this part, in file order)
