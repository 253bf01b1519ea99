"""The held-out probe, round 14, modern part, continued (imported at the end of heldout_probe_round14_modern.py, so
row order = file order): GQA, the GPT-2 conversion, the LR schedule, the weight-decay groups and training."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

import mingpt.exercises as ex

from heldout_probe_models import mistake, valid

INPLACE = r"in.place|mutat|modif|input|chang"
DTYPE = r"dtype|float64|double|float16|half|precision"

# ------------------------------------------------------------------------------------------ GQA
G = ex.check_gqa
GROUP = r"repeat|interleav|group|tile|order|head"
MASK = r"mask|causal|future|later|triu|tril"


def gqa_with(expand="interleave", scale="sqrt", mask="triu1", fill=float("-inf"), sm_dim=-1, keep_fill=True,
             drop=False, mask_size="T", out="ok"):
    def f(q, k, v):
        B, nh, T, hs = q.shape
        g = nh // k.size(1)
        if expand == "interleave":
            k, v = k.repeat_interleave(g, 1), v.repeat_interleave(g, 1)
        elif expand == "tile":
            k, v = k.repeat(1, g, 1, 1), v.repeat(1, g, 1, 1)
        att = q @ k.transpose(-2, -1)
        att = att * {"sqrt": 1 / math.sqrt(hs), "hs": 1 / hs, "none": 1.0, "sqrt_nh": 1 / math.sqrt(nh)}[scale]
        n = T if mask_size == "T" else hs
        m = {"triu1": torch.ones(n, n, dtype=torch.bool).triu(1), "triu0": torch.ones(n, n, dtype=torch.bool).triu(0),
             "tril": torch.ones(n, n, dtype=torch.bool).tril(-1), "none": torch.zeros(n, n, dtype=torch.bool)}[mask]
        if keep_fill:
            att = att.masked_fill(m, fill)
        else:
            att.masked_fill(m, fill)  # the result thrown away: masked_fill is not in place
        att = F.softmax(att, dim=sm_dim) if sm_dim is not None else F.softmax(att)
        if drop:
            att = F.dropout(att, 0.1)
        y = att @ v
        return y.transpose(1, 2) if out == "bthd" else y
    return f


mistake(G, GROUP)(gqa_with(expand="tile"))  # the assistant's k.repeat(1, g, 1, 1)
mistake(G, r"scal|sqrt")(gqa_with(scale="hs"))  # 1/sqrt(hs) "fixed" on q and k both: 1/hs
mistake(G, r"scal|sqrt")(gqa_with(scale="none"))
mistake(G, r"scal|sqrt|head")(gqa_with(scale="sqrt_nh"))
mistake(G, r"diagonal|itself|triu|mask|nan")(gqa_with(mask="triu0"))
mistake(G, MASK + r"|invert")(gqa_with(mask="tril"))
mistake(G, MASK)(gqa_with(mask="none"))
mistake(G, MASK + r"|in.place|masked_fill")(gqa_with(keep_fill=False))
mistake(G, r"-inf|fill|zero|\b0\b|mask")(gqa_with(fill=0.0))
mistake(G, r"softmax|dim|axis|quer")(gqa_with(sm_dim=-2))
mistake(G, r"softmax|dim|axis|head")(gqa_with(sm_dim=None))  # F.softmax without dim: dim=1 on a 4-D tensor
mistake(G, r"dropout|random|determin|train")(gqa_with(drop=True))
mistake(G, r"mask|shape|size|\bT\b|hs|head size")(gqa_with(mask_size="hs"))
mistake(G, r"shape|transpose|axis|\(B, ?T")(gqa_with(out="bthd"))


@mistake(G, r"cache|state|call|mask|size|length")
def gqa_cached_mask(q, k, v, _cache={}):  # the mask made once, for the first call's T
    T = q.size(2)
    m = _cache.setdefault("mask", torch.ones(T, T, dtype=torch.bool).triu(1))[:T, :T]
    g = q.size(1) // k.size(1)
    att = (q @ k.repeat_interleave(g, 1).transpose(-2, -1)) / math.sqrt(q.size(-1))
    return att.masked_fill(m, float("-inf")).softmax(-1) @ v.repeat_interleave(g, 1)


@mistake(G, GROUP + r"|expand|view")
def gqa_expand_wrong(q, k, v):  # expand on a new axis before the kv heads, then reshape: tiles, not interleaves
    B, nkv, T, hs = k.shape
    g = q.size(1) // nkv
    k, v = (t[:, None].expand(B, g, nkv, T, hs).reshape(B, g * nkv, T, hs) for t in (k, v))
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


valid(G)(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True))


@valid(G)
def gqa_grouped(q, k, v):  # no copies: the query heads viewed as (kv head, group)
    B, nh, T, hs = q.shape
    nkv = k.size(1)
    qg = q.view(B, nkv, nh // nkv, T, hs) * hs ** -0.25
    att = torch.einsum("bngtd,bnsd->bngts", qg, k * hs ** -0.25)
    att = att.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf")).softmax(-1)
    return torch.einsum("bngts,bnsd->bngtd", att, v).reshape(B, nh, T, hs)


@valid(G)
def gqa_expand_right(q, k, v):  # expand after the kv heads: the same as repeat_interleave, without copies
    B, nkv, T, hs = k.shape
    g = q.size(1) // nkv
    k, v = (t[:, :, None].expand(B, nkv, g, T, hs).reshape(B, nkv * g, T, hs) for t in (k, v))
    bias = torch.full((T, T), float("-inf")).triu(1)
    return torch.softmax(q @ k.mT / math.sqrt(hs) + bias, dim=-1) @ v


# ------------------------------------------------------------------------------------------ GPT-2 conversion
H = ex.check_hf_conversion
CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def conv_with(skip=(".attn.bias", ".attn.masked_bias"), which=CONV1D, how="t", prefix=False, out="dict"):
    def f(sd):
        res = {}
        for name, t in sd.items():
            if name.endswith(skip):
                continue
            if (which == "2d" and t.dim() == 2) or (which != "2d" and name.endswith(which)):
                t = {"t": lambda: t.t(), "view": lambda: t.view(t.shape[1], t.shape[0]), "half": lambda: t.t().half(),
                     "inplace": lambda: t.t_()}[how]()
            res[name.removeprefix("transformer.") if prefix else name] = t
        return list(res.items()) if out == "list" else res
    return f


# (two regexes widened after the untuned count for the checker's fair names: "transposed a weight that was already
# right", "Conv1D weight not transposed"; the counter-example names the key)
mistake(H, r"wte|wpe|embedding|every|all|2-?d|lm_head|already right")(conv_with(which="2d"))  # transposes every matrix
mistake(H, r"masked_bias|mask|buffer|skip|extra")(conv_with(skip=(".attn.bias",)))
mistake(H, r"c_attn\.bias|bias|skip|drop|missing")(conv_with(skip=("attn.bias", "attn.masked_bias")))  # no dot
mistake(H, r"bias|skip|drop|missing")(conv_with(skip=("bias",)))  # every bias dropped with the masks
mistake(H, r"view|reshape|transpose")(conv_with(how="view"))
mistake(H, r"c_fc|mlp|not transposed")(conv_with(which=("c_attn.weight", "attn.c_proj.weight", "mlp.c_proj.weight")))
mistake(H, r"mlp\.c_proj|c_proj|mlp|not transposed")(conv_with(which=("attn.c_attn.weight", "attn.c_proj.weight",
                                                      "mlp.c_fc.weight")))
mistake(H, r"prefix|transformer|name|key")(conv_with(prefix=True))
mistake(H, DTYPE)(conv_with(how="half"))
mistake(H, INPLACE)(conv_with(how="inplace"))  # t_() transposes the caller's tensors
mistake(H, r"dict|type|list|return")(conv_with(out="list"))


@mistake(H, INPLACE + r"|pop|delete|remov")
def conv_pops(sd):  # "cleans" the caller's dict: pops the masks out of it
    for name in [n for n in sd if n.endswith((".attn.bias", ".attn.masked_bias"))]:
        sd.pop(name)
    return {n: (t.t() if n.endswith(CONV1D) else t) for n, t in sd.items()}


valid(H)(lambda sd: {n: (t.T.clone() if n.endswith(CONV1D) else t) for n, t in sd.items()
                     if not n.endswith((".attn.bias", ".attn.masked_bias"))})


@valid(H)
def conv_by_split(sd):  # the key split on dots, as an assistant parses names
    out = {}
    for n, t in sd.items():
        parts = n.split(".")
        if parts[-2] == "attn" and parts[-1] in ("bias", "masked_bias"):
            continue
        out[n] = t.transpose(0, 1).contiguous() if parts[-2] in ("c_attn", "c_proj", "c_fc") and parts[-1] == "weight" \
            else t
    return out


import heldout_probe_round14_modern3  # noqa: E402,F401  (the rest, in file order)
