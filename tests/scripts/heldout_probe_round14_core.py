"""The held-out probe, round 14, core part (MLP, attention, one head's weights; LayerNorm, Block and embedding are
in heldout_probe_round14_core2.py, GPT, loss and bigram in ..._core3.py, each imported at the end of the one before):
written fresh by w24q before reading these checkers' tables, tests/mistakes_*.py or any round-13 file, from the
checkers' docstrings, the notebooks' solutions and mingpt/model.py, and counted untuned first. The angle: the
student's second attempt and the assistant's answer -- confident idiomatic code with a torch default slipped
(F.softmax without dim, torch.var's unbiased default, F.dropout's training=True, masked_fill not in place), an
over-corrected first fix (the scale on both q and k, the mask shifted twice, eps inside and outside the sqrt), state
kept across calls (a mask or a statistic cached on the first call) and edge sizes. See heldout_probe.py."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import mingpt.exercises as ex

from heldout_probe_models import ROUND, mistake, valid
import heldout_probe_round13_post  # noqa: F401  (earlier rounds registered first)

ROUND[0] = 14
DROP = r"dropout|random|determin|train|eval"
STATE = r"cache|first call|state|call|twice|length|size|\bT\b"
DTYPE = r"dtype|float64|double|float32"


def both(a: str, b: str) -> str:
    return rf"(?=.*(?:{a}))(?=.*(?:{b}))"


# ------------------------------------------------------------------------------------------ MLP
M = ex.check_mlp
GELU_T = lambda h: F.gelu(h, approximate="tanh")  # noqa: E731


class Mlp(nn.Module):
    """The notebook's MLP with knobs: act (on the hidden layer), where it goes, and what happens around it."""
    act, where, extra = staticmethod(GELU_T), "ok", None

    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd)
        self.gelu = nn.GELU(approximate="tanh")
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd)
        self.dropout = nn.Dropout(config.resid_pdrop)
        self.cache = None

    def forward(self, x):
        e = self.extra
        if e == "squeeze":
            x = x.squeeze()
        h = self.c_fc(x)
        if self.where == "after":
            out = self.act(self.c_proj(h))
        else:
            h = self.act(h)
            out = self.c_proj(h)
        if e == "F.dropout":
            return F.dropout(out, 0.1)  # training=True by default
        if e == "residual_inplace":
            x += out
            return x
        if e == "cache":  # "speed-up": the first call's output kept
            if self.cache is None:
                self.cache = out
            return self.cache
        if e == "double":
            return self.dropout(out).double()  # "more precise"
        return self.dropout(out)


def mlp(**knobs):
    act = knobs.pop("act", None)
    if act is not None:
        knobs["act"] = staticmethod(act)
    return type("StudentMLP", (Mlp,), knobs)


GELU = r"gelu|approximat|tanh|erf|exact|activation"
mistake(M, r"exact|erf|tanh|approximat")(mlp(act=nn.GELU()))  # the assistant's nn.GELU(): exact, not GPT-2's
mistake(M, r"twice|double|two|gelu")(mlp(act=lambda h: GELU_T(GELU_T(h))))  # a second gelu "fixing" a missing one
mistake(M, r"constant|sqrt|2/pi|2 ?/ ?π|gelu|coefficient")(mlp(act=lambda h: 0.5 * h * (1 + torch.tanh(
    (2 / math.pi) * (h + 0.044715 * h ** 3)))))  # sqrt forgotten on 2/pi
mistake(M, r"constant|coefficient|0\.044715|gelu")(mlp(act=lambda h: 0.5 * h * (1 + torch.tanh(
    math.sqrt(2 / math.pi) * (h + 0.44715 * h ** 3)))))  # a digit lost
mistake(M, r"silu|swish|sigmoid")(mlp(act=F.silu))  # a Llama habit
mistake(M, r"after|order|c_proj|placement|place")(mlp(where="after"))
mistake(M, DROP)(mlp(extra="F.dropout"))
mistake(M, r"residual|skip|\+ ?x|input|in.place")(mlp(extra="residual_inplace"))
mistake(M, STATE)(mlp(extra="cache"))
mistake(M, DTYPE)(mlp(extra="double"))
mistake(M, r"squeeze|shape|batch|dim|B ?= ?1|T ?= ?1")(mlp(extra="squeeze"))
mistake(M, r"half|0\.5|gelu|constant|factor|scale")(mlp(act=lambda h: h * (1 + torch.tanh(
    math.sqrt(2 / math.pi) * (h + 0.044715 * h ** 3)))))  # the 0.5 dropped
mistake(M, r"relu")(mlp(act=torch.relu))


class MlpNoBias(Mlp):
    def __init__(self, config):
        super().__init__(config)
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=False)  # bias=False copied from a Llama MLP


mistake(M, r"bias|c_fc")(MlpNoBias)


class MlpFunctional(nn.Module):  # valid: F.linear on the registered weights, flattening the rows first
    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd)
        self.dropout = nn.Dropout(config.resid_pdrop)

    def forward(self, x):
        h = F.linear(x.reshape(-1, x.size(-1)), self.c_fc.weight, self.c_fc.bias)
        h = 0.5 * h * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (h + 0.044715 * h * h * h)))
        return self.dropout(F.linear(h, self.c_proj.weight, self.c_proj.bias)).reshape(x.shape)


valid(M)(MlpFunctional)
valid(M)(mlp(act=lambda h: F.gelu(h, approximate="tanh")))
valid(M)(mlp(act=lambda h: h * torch.sigmoid(2 * math.sqrt(2 / math.pi) * (h + 0.044715 * h.pow(3)))))  # same formula


# ------------------------------------------------------------------------------------------ attention
A = ex.check_attention


class Attn(nn.Module):
    """The notebook's multi-head attention with knobs for the assistant's slips."""
    scale, mask, sm, split, merge, order, drop, project, cached = "hs", "tril", "dim-1", "ok", "ok", "qk", "ok", 1, 0

    def __init__(self, config, layer_idx=0):
        super().__init__()
        self.n_head = config.n_head
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)
        self.attn_dropout = nn.Dropout(config.attn_pdrop)
        self.resid_dropout = nn.Dropout(config.resid_pdrop)
        self.saved_mask = None

    def causal(self, T):
        if self.cached:  # built on the first call at that call's length, then reused
            if self.saved_mask is None:
                self.saved_mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
            return self.saved_mask
        return torch.tril(torch.ones(T, T, dtype=torch.bool))

    def forward(self, x, kv_cache=None):
        B, T, C = x.shape
        nh, hs = self.n_head, C // self.n_head
        if self.order == "kq":
            k, q, v = self.c_attn(x).split(C, dim=2)
        else:
            q, k, v = self.c_attn(x).split(C, dim=2)
        if self.split == "view":  # heads first straight away: no transpose
            q, k, v = (t.view(B, nh, T, hs) for t in (q, k, v))
        else:
            q, k, v = (t.view(B, T, nh, hs).transpose(1, 2) for t in (q, k, v))
        if self.scale == "both":  # over-correction: each of q and k scaled by 1/sqrt(hs)
            q, k = q / math.sqrt(hs), k / math.sqrt(hs)
        if self.order == "einsum_kq":
            att = torch.einsum("bhqd,bhkd->bhkq", q, k)
        else:
            att = q @ k.transpose(-2, -1)
        att = att * {"hs": 1 / math.sqrt(hs), "both": 1.0, "C": 1 / math.sqrt(C), "int": 1 / hs ** (1 // 2),
                     "after": 1.0}[self.scale]
        allowed = self.causal(T)
        if self.mask == "tril":
            att = att.masked_fill(~allowed, float("-inf"))
        elif self.mask == "not_inplace":
            att.masked_fill(~allowed, float("-inf"))  # the result thrown away
        elif self.mask == "shift2":  # "fixed" the diagonal twice: a query no longer sees itself
            att = att.masked_fill(~torch.tril(torch.ones(T, T, dtype=torch.bool), diagonal=-1), float("-inf"))
        elif self.mask == "minus_big":
            att = att.masked_fill(~allowed, -1e4)  # fp16 habit: not small enough for large scores
        elif self.mask == "zero":
            att = att.masked_fill(~allowed, 0.0)
        if self.sm == "dim-1":
            att = F.softmax(att, dim=-1)
        elif self.sm == "nodim":
            att = F.softmax(att)  # implicit dim: 1 for a 4-d tensor, the heads
        elif self.sm == "dim-2":
            att = F.softmax(att, dim=-2)
        elif self.sm == "manual":
            att = att.exp() / att.exp().sum(-1, keepdim=True)  # no max subtracted
        if self.scale == "after":
            att = att / math.sqrt(hs)
        att = F.dropout(att, 0.1) if self.drop == "F" else self.attn_dropout(att)
        y = att @ v
        if self.merge == "view":
            y = y.reshape(B, T, C)  # no transpose back
        else:
            y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y)) if self.project else y


def attn(**knobs):
    return type("StudentAttention", (Attn,), knobs)


SCALE = r"scale|sqrt|hs|head size"
mistake(A, both(SCALE, r"twice|both|double|q and k|hs\b|1 ?/ ?hs"))(attn(scale="both"))
# (regex widened after the untuned count by "scaling", the checker's fair name "wrong scaling factor")
mistake(A, r"sqrt\(C\)|n_embd|C\b|embedding|scal")(attn(scale="C"))
mistake(A, r"scale|sqrt|unscaled|missing|integer|1 ?// ?2")(attn(scale="int"))  # hs ** (1 // 2) == 1
mistake(A, r"after|softmax|scale|order")(attn(scale="after"))
mistake(A, r"mask|causal|future|masked_fill|in.place")(attn(mask="not_inplace"))
mistake(A, r"diagonal|itself|self|shift|nan|mask")(attn(mask="shift2"))
mistake(A, r"0\b|zero|-inf|fill|mask")(attn(mask="zero"))
mistake(A, r"dim|softmax|head|axis")(attn(sm="nodim"))
mistake(A, r"dim|softmax|quer|axis|column")(attn(sm="dim-2"))
mistake(A, r"split|view|transpose|reshape|head")(attn(split="view"))
mistake(A, r"merge|view|transpose|reshape|head")(attn(merge="view"))
mistake(A, r"order|swap|q.*k|k.*q|split|transpose")(attn(order="kq"))
mistake(A, r"einsum|transpose|order|swap|key|quer")(attn(order="einsum_kq"))
mistake(A, DROP)(attn(drop="F"))
mistake(A, r"c_proj|projection|output")(attn(project=0))
mistake(A, STATE + r"|mask")(attn(cached=1))
mistake(A, r"exp|overflow|stab|max|large|nan|inf|softmax")(attn(sm="manual"))  # only big scores show it
mistake(A, r"-1e4|fill|large|big|-inf|mask|value")(attn(mask="minus_big"))  # only big scores show it


class AttnSdpa(Attn):  # valid: the fused kernel
    def forward(self, x, kv_cache=None):
        B, T, C = x.shape
        q, k, v = (t.unflatten(-1, (self.n_head, -1)).transpose(1, 2) for t in self.c_attn(x).chunk(3, dim=-1))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.resid_dropout(self.c_proj(y.transpose(1, 2).flatten(2)))


class AttnEinsum(Attn):  # valid: einsum with an additive -inf mask and a buffer sliced to T
    def __init__(self, config, layer_idx=0):
        super().__init__(config, layer_idx)
        n = config.block_size
        self.register_buffer("neg", torch.full((n, n), float("-inf")).triu(1), persistent=False)

    def forward(self, x, kv_cache=None):
        B, T, C = x.shape
        q, k, v = (t.reshape(B, T, self.n_head, -1) for t in self.c_attn(x).split(C, dim=-1))
        s = torch.einsum("bqhd,bkhd->bhqk", q, k) * q.size(-1) ** -0.5 + self.neg[:T, :T]
        y = torch.einsum("bhqk,bkhd->bqhd", s.softmax(-1), v).reshape(B, T, C)
        return self.resid_dropout(self.c_proj(y))


valid(A)(AttnSdpa)
valid(A)(AttnEinsum)


class AttnQuarter(Attn):  # valid: the scale split evenly between q and k
    def forward(self, x, kv_cache=None):
        B, T, C = x.shape
        hs = C // self.n_head
        q, k, v = (t.view(B, T, self.n_head, hs).transpose(1, 2) for t in self.c_attn(x).split(C, dim=2))
        att = (q * hs ** -0.25) @ (k * hs ** -0.25).transpose(-2, -1)
        att = att.masked_fill(torch.ones(T, T).tril() == 0, float("-inf")).softmax(dim=-1)
        return self.resid_dropout(self.c_proj((att @ v).transpose(1, 2).reshape(B, T, C)))


valid(A)(AttnQuarter)


# ------------------------------------------------------------------------------------------ one head's weights
W = ex.check_attention_weights


def weights(scale="hs", mask="ok", sm="ok", order="qk", after=None):
    def f(q, k):
        T, hs = q.size(1), q.size(-1)
        s = (k @ q.transpose(-2, -1)) if order == "kq" else (q @ k.transpose(-2, -1))
        s = s * {"hs": hs ** -0.5, "T": q.size(1) ** -0.5, "both": 1 / hs, "int": 1 / hs ** (1 // 2)}[scale]
        tril = torch.tril(torch.ones(T, T))
        if mask == "ok" and after != "mask":
            s = s.masked_fill(tril == 0, float("-inf"))
        elif mask == "inverted":
            s = s.masked_fill(tril == 1, float("-inf"))
        elif mask == "not_inplace":
            s.masked_fill(tril == 0, float("-inf"))
        elif mask == "shift2":
            s = s.masked_fill(torch.tril(torch.ones(T, T), diagonal=-1) == 0, float("-inf"))
        elif mask == "multiply":
            s = s * tril
        elif mask == "float":
            s = s.masked_fill(1.0 - tril, float("-inf"))  # a float mask: masked_fill wants bool
        if sm == "ok":
            w = F.softmax(s, dim=-1)
        elif sm == "nodim":
            w = F.softmax(s)  # implicit dim: 0 for a 3-d tensor, the batch
        elif sm == "dim1":
            w = F.softmax(s, dim=1)
        elif sm == "manual":
            w = s.exp() / s.exp().sum(-1, keepdim=True)
        if after == "mask":  # masked only after the softmax, not renormalised
            w = w * tril
        elif after == "double":
            w = w.double()
        elif after == "squeeze":
            w = w.squeeze()
        return w
    return f


mistake(W, r"dim|softmax|batch|axis")(weights(sm="nodim"))
mistake(W, r"sqrt\(T\)|\bT\b|length|scale|size")(weights(scale="T"))
mistake(W, both(SCALE, r"twice|both|double|hs\b|1 ?/ ?hs"))(weights(scale="both"))
mistake(W, r"scale|sqrt|unscaled|missing|integer")(weights(scale="int"))
mistake(W, r"future|triu|tril|invert|mask|opposite")(weights(mask="inverted"))
mistake(W, r"diagonal|itself|self|shift|nan|mask")(weights(mask="shift2"))
mistake(W, r"mask|causal|future|masked_fill|in.place")(weights(mask="not_inplace"))
mistake(W, r"0\b|zero|-inf|mask|multipl")(weights(mask="multiply"))
mistake(W, r"bool|float|mask|masked_fill|dtype")(weights(mask="float"))
mistake(W, r"order|transpose|swap|k ?@ ?q|key|quer")(weights(order="kq"))
mistake(W, r"dim|axis|quer|column|normali")(weights(sm="dim1"))
mistake(W, r"after|renormal|normali|sum|before|mask")(weights(after="mask"))
mistake(W, DTYPE)(weights(after="double"))
mistake(W, r"squeeze|shape|batch|dim|B ?= ?1|T ?= ?1")(weights(after="squeeze"))
mistake(W, r"exp|overflow|stab|max|large|nan|inf|softmax")(weights(sm="manual"))  # only big scores show it


def weights_where(q, k):  # valid: torch.where and a stable manual softmax
    T = q.size(1)
    s = torch.einsum("bqd,bkd->bqk", q, k) / math.sqrt(q.size(-1))
    s = torch.where(torch.ones(T, T, dtype=torch.bool).tril(), s, torch.tensor(float("-inf")))
    e = (s - s.amax(-1, keepdim=True)).exp()
    return e / e.sum(-1, keepdim=True)


def weights_additive(q, k):  # valid: an additive mask, and the scale folded into q
    T = q.size(1)
    return ((q / q.size(-1) ** 0.5) @ k.mT + torch.full((T, T), float("-inf")).triu(1)).softmax(-1)


valid(W)(weights_where)
valid(W)(weights_additive)
valid(W)(lambda q, k: torch.baddbmm(torch.full((q.size(1), q.size(1)), float("-inf")).triu(1).expand(q.size(0), -1, -1),
                                    q, k.transpose(1, 2), alpha=q.size(-1) ** -0.5).softmax(-1))

import heldout_probe_round14_core2  # noqa: E402,F401  (the rest of this part, in row order)
