"""The held-out probe, round 13, core part (MLP, attention and its weights, LayerNorm, Block, embedding, GPT, bigram,
loss): written fresh by w24m before reading these checkers' tables, tests/mistakes_*.py or any earlier round, from
the checkers' docstrings, the notebooks' exercise text and mingpt/model.py only, and counted untuned first. The
angle: new instances of the issue's categories (activation choice, unregistered or misnamed parameters, data flow,
position ids, loss slicing and averaging, probabilities vs logits, extra dims, dtypes, tuples, reshape vs
transpose) and bugs visible only on some setting (B = 1, T = 1, a non-default eps or bias, B != T), in the styles
of nanoGPT, Karpathy's videos, ARENA and HF. Untuned, 129 of 160 matched at first and 8 more got another name, 7 of
them fair (the regexes were then widened for those words: "scal" for attention's two scale rows, "shape" for a wpe of
vocab_size rows, "one position", "unflatten", "both drop|same end", "wrong type"): 136 named. See heldout_probe.py."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import mingpt.exercises as ex
from mingpt.model import MLP

from heldout_probe_models import ROUND, mistake, valid
import heldout_probe_round12_post  # noqa: F401  (earlier rounds registered first)

ROUND[0] = 13


def cls_with(base, **methods):
    return type(methods.pop("name", "Student"), (base,), methods)


def gelu_tanh(h, c=math.sqrt(2 / math.pi), k=0.044715, half=0.5, power=3):
    return half * h * (1 + torch.tanh(c * (h + k * h ** power)))


# ------------------------------------------------------------------------------------------ MLP
M = ex.check_mlp


def mlp_with(act=lambda h: F.gelu(h, approximate="tanh"), where="ok", post=lambda y: y):
    def forward(self, x):
        if where == "input":  # the activation on the block's input, before c_fc
            return post(self.dropout(self.c_proj(self.c_fc(act(x)))))
        if where == "both":
            return post(self.dropout(act(self.c_proj(act(self.c_fc(x))))))
        if where == "residual":  # the MLP adds its own residual, as the Block also does
            return x + self.dropout(self.c_proj(act(self.c_fc(x))))
        if where == "fdrop":  # F.dropout without training=self.training: random in eval mode
            return post(F.dropout(self.c_proj(act(self.c_fc(x))), p=0.1))
        return post(self.dropout(self.c_proj(act(self.c_fc(x)))))
    return cls_with(MLP, forward=forward)


mistake(M, r"exact|erf|tanh|approximat")(mlp_with(act=nn.GELU()))  # nn.GELU's default is the exact erf form
mistake(M, r"relu|square")(mlp_with(act=lambda h: F.relu(h) ** 2))  # Primer's squared ReLU
mistake(M, r"leaky|relu")(mlp_with(act=F.leaky_relu))
mistake(M, r"\belu\b|elu")(mlp_with(act=F.elu))
mistake(M, r"mish")(mlp_with(act=F.mish))
mistake(M, r"0\.5|half|twice|factor|scale|gelu")(mlp_with(act=lambda h: gelu_tanh(h, half=1.0)))
mistake(M, r"constant|sqrt|pi|gelu")(mlp_with(act=lambda h: gelu_tanh(h, c=math.sqrt(2 * math.pi))))
mistake(M, r"constant|0\.044715|cube|gelu")(mlp_with(act=lambda h: gelu_tanh(h, k=1.0)))
mistake(M, r"before|order|input|c_fc|placement")(mlp_with(where="input"))
mistake(M, r"twice|both|after|c_proj")(mlp_with(where="both"))
mistake(M, r"residual|input|adds")(mlp_with(where="residual"))
mistake(M, r"dropout|train|random|eval")(mlp_with(where="fdrop"))
mistake(M, r"numpy|tensor|type")(mlp_with(post=lambda y: y.detach().numpy()))
mistake(M, r"float64|double|dtype")(mlp_with(post=lambda y: y.double()))
mistake(M, r"shape|dim|extra|unsqueeze")(mlp_with(post=lambda y: y.unsqueeze(1)))
mistake(M, r"tuple|two|return")(mlp_with(post=lambda y: (y, None)))


class MLP3C(nn.Module):  # hidden size 3C instead of 4C
    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.gelu = nn.GELU(approximate="tanh")
        self.c_proj = nn.Linear(3 * config.n_embd, config.n_embd)
        self.dropout = nn.Dropout(config.resid_pdrop)

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


mistake(M, r"4|size|shape|c_fc|hidden")(MLP3C)


class MLPNoBias(MLP3C):  # bias=False, as for config.bias = False (the checker's config has biases)
    def __init__(self, config):
        nn.Module.__init__(self)
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=False)
        self.gelu = nn.GELU(approximate="tanh")
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=False)
        self.dropout = nn.Dropout(config.resid_pdrop)


mistake(M, r"bias")(MLPNoBias)
valid(M)(mlp_with(act=lambda h: 0.5 * h * (1 + torch.tanh(0.7978845608 * (h + 0.044715 * h * h * h)))))
valid(M)(mlp_with(act=lambda h: 0.5 * h * (1 + torch.tanh(math.sqrt(2 / math.pi) * h * (1 + 0.044715 * h * h)))))
valid(M)(cls_with(MLP, forward=lambda self, x: F.dropout(
    F.linear(F.gelu(F.linear(x, self.c_fc.weight, self.c_fc.bias), approximate="tanh"),
             self.c_proj.weight, self.c_proj.bias), self.dropout.p, self.training)))
valid(M)(cls_with(MLP, forward=lambda self, x: self.c_proj(self.gelu(
    torch.einsum("btc,hc->bth", x, self.c_fc.weight) + self.c_fc.bias))))


# ------------------------------------------------------------------------------------------ attention
A = ex.check_attention


class Att(nn.Module):
    """nanoGPT's attention with knobs; each class attribute is one place a slip lives."""
    scale, mask, fill, split, merge, sm_dim, qk, proj, drop, out, heads, order = (
        "hs", "tril", "-inf", "ok", "ok", -1, "qk", True, "ok", "ok", None, "qkv")

    def __init__(self, config, layer_idx=0):
        super().__init__()
        self.n_head = self.heads or config.n_head
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)
        self.attn_dropout = nn.Dropout(config.attn_pdrop)
        self.resid_dropout = nn.Dropout(config.resid_pdrop)

    def forward(self, x, kv_cache=None):
        B, T, C = x.shape
        nh, hs = self.n_head, C // self.n_head
        parts = dict(zip(self.order, self.c_attn(x).split(C, dim=2)))
        q, k, v = parts["q"], parts["k"], parts["v"]
        if self.split == "view":  # heads first by view alone: (B, T, C) read as (B, nh, T, hs)
            q, k, v = (t.reshape(B, nh, T, hs) for t in (q, k, v))
        else:
            q, k, v = (t.view(B, T, nh, hs).transpose(1, 2) for t in (q, k, v))
        a, b = (q, k) if self.qk == "qk" else (k, q)
        att = a @ b.transpose(-2, -1)
        att = {"hs": att / math.sqrt(hs), "C": att / math.sqrt(C), "none": att, "hs1": att / hs,
               "mul": att * math.sqrt(hs)}[self.scale]
        keep = {"tril": torch.tril(torch.ones(T, T)), "self": torch.tril(torch.ones(T, T), diagonal=-1),
                "none": torch.ones(T, T), "triu": torch.triu(torch.ones(T, T))}[self.mask].to(x.device)
        if self.fill == "after":  # the mask applied to the probabilities, not the scores
            att = F.softmax(att, dim=self.sm_dim) * keep
        else:
            att = att.masked_fill(keep == 0, {"-inf": float("-inf"), "0": 0.0, "-1e9": -1e9}[self.fill])
            att = F.softmax(att, dim=self.sm_dim)
        att = F.dropout(att, 0.1) if self.drop == "F" else self.attn_dropout(att)
        y = att @ v  # (B, nh, T, hs)
        y = {"ok": lambda: y.transpose(1, 2).contiguous().view(B, T, C), "view": lambda: y.reshape(B, T, C),
             "permute": lambda: y.permute(0, 2, 3, 1).reshape(B, T, C)}[self.merge]()
        y = self.resid_dropout(self.c_proj(y)) if self.proj else y
        return {"ok": y, "tuple": (y, att)}[self.out]


def att_with(**knobs):
    return type("Student", (Att,), knobs)


SCALE = r"scale|sqrt|hs|head size"
for knobs, expect in [
        (dict(scale="C"), r"n_embd|\bC\b|head size|hs|embedding|scal"), (dict(scale="none"), SCALE),
        (dict(scale="hs1"), r"sqrt|square root|hs\b|head size"), (dict(scale="mul"), r"multipl|divid|scal"),
        (dict(mask="self"), r"diagonal|itself|own|nan|self"), (dict(mask="none"), r"mask|causal|future"),
        (dict(mask="triu"), r"upper|future|direction|revers|tril|triu|invert|mask"),
        (dict(fill="0"), r"zero|\b0\b|-inf|fill"), (dict(fill="after"), r"after|renormal|softmax"),
        (dict(sm_dim=-2), r"dim|axis|quer|softmax"), (dict(qk="kq"), r"swap|order|transpos|q.*k|k.*q"),
        (dict(order="kqv"), r"swap|order|split|q.*k|k.*q"),
        (dict(split="view"), r"view|reshape|transpose|split|head"),
        (dict(merge="view"), r"merge|transpose|reshape|view|head"),
        (dict(merge="permute"), r"merge|permute|order|head|interleav|transpose"),
        (dict(proj=False), r"c_proj|project"), (dict(drop="F"), r"dropout|train|random|eval"),
        (dict(out="tuple"), r"tuple|two|return"), (dict(heads=4), r"n_head|heads?\b|config|hard"),
        (dict(scale="none", mask="none"), r"(?=.*(scale|sqrt))(?=.*(mask|causal|future))"),
        (dict(merge="view", scale="C"), r"(?=.*(merge|transpose|reshape|view|head))(?=.*(C\b|n_embd|head size|hs))")]:
    mistake(A, expect)(att_with(**knobs))


class AttBlockMask(Att):  # nanoGPT's registered mask, but not sliced to T
    def __init__(self, config, layer_idx=0):
        super().__init__(config, layer_idx)
        self.register_buffer("bias", torch.tril(torch.ones(config.block_size, config.block_size)), persistent=False)

    def forward(self, x, kv_cache=None):
        B, T, C = x.shape
        hs = C // self.n_head
        q, k, v = (t.view(B, T, self.n_head, hs).transpose(1, 2) for t in self.c_attn(x).split(C, dim=2))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(hs)
        att = att.masked_fill(self.bias == 0, float("-inf"))  # should be self.bias[:T, :T]
        return self.c_proj((F.softmax(att, -1) @ v).transpose(1, 2).reshape(B, T, C))


class AttFloatMask(AttBlockMask):  # the mask passed to masked_fill as floats (torch wants bool)
    def forward(self, x, kv_cache=None):
        B, T, C = x.shape
        hs = C // self.n_head
        q, k, v = (t.view(B, T, self.n_head, hs).transpose(1, 2) for t in self.c_attn(x).split(C, dim=2))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(hs)
        att = att.masked_fill(1.0 - self.bias[:T, :T], float("-inf"))
        return self.c_proj((F.softmax(att, -1) @ v).transpose(1, 2).reshape(B, T, C))


class AttSdpa(Att):
    causal, sdpa_scale = True, None

    def forward(self, x, kv_cache=None):
        B, T, C = x.shape
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in self.c_attn(x).split(C, 2))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal, scale=self.sdpa_scale)
        return self.resid_dropout(self.c_proj(y.transpose(1, 2).reshape(B, T, C)))


mistake(A, r"slice|\[:T|block_size|size|shape|mask")(AttBlockMask)
mistake(A, r"bool|mask|dtype")(AttFloatMask)
mistake(A, r"causal|mask|future")(type("Student", (AttSdpa,), {"causal": False}))
mistake(A, r"scale|sqrt|hs\b|head size")(type("Student", (AttSdpa,), {"sdpa_scale": 1 / 4}))
valid(A)(AttSdpa)
valid(A)(att_with(fill="-1e9"))


class AttNano(Att):  # nanoGPT's persistent (1, 1, block_size, block_size) mask buffer, sliced to T
    def __init__(self, config, layer_idx=0):
        super().__init__(config, layer_idx)
        bs = config.block_size
        self.register_buffer("bias", torch.tril(torch.ones(bs, bs)).view(1, 1, bs, bs))

    def forward(self, x, kv_cache=None):
        B, T, C = x.size()
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in self.c_attn(x).split(C, 2))
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = F.softmax(att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf")), dim=-1)
        return self.resid_dropout(self.c_proj((self.attn_dropout(att) @ v).transpose(1, 2).contiguous().view(B, T, C)))


valid(A)(AttNano)


class AttLoop(Att):  # one head at a time, ARENA's einsum style; forward(x) without kv_cache
    def forward(self, x):
        B, T, C = x.shape
        hs = C // self.n_head
        q, k, v = self.c_attn(x).split(C, dim=2)
        future = torch.triu(torch.ones(T, T, dtype=torch.bool, device=x.device), diagonal=1)
        heads = []
        for h in range(self.n_head):
            sl = slice(h * hs, (h + 1) * hs)
            s = torch.einsum("bqd,bkd->bqk", q[..., sl] * hs ** -0.5, k[..., sl]).masked_fill(future, -torch.inf)
            heads.append(torch.einsum("bqk,bkd->bqd", s.softmax(-1), v[..., sl]))
        return self.resid_dropout(self.c_proj(torch.cat(heads, dim=-1)))


valid(A)(AttLoop)


# ------------------------------------------------------------------------------------------ attention weights
W = ex.check_attention_weights


def weights_with(scale="hs", mask="tril", fill="-inf", dim=-1, qk="qk", after="softmax", extra=None):
    def f(q, k):
        B, T, hs = q.shape
        a, b = (q, k) if qk == "qk" else (k, q)
        att = a @ b.transpose(-2, -1)
        att = {"hs": att / math.sqrt(hs), "T": att / math.sqrt(q.size(1)), "hs1": att / hs, "twice": att / hs,
               "mul": att * math.sqrt(hs), "none": att}[scale]
        n = {"tril": T, "B": q.size(0)}.get(mask, T)
        keep = torch.tril(torch.ones(n, n), diagonal=-1 if mask == "self" else 0)
        if fill == "mul":
            att = att * keep
        elif fill == "after":
            return F.softmax(att, dim=dim) * keep
        else:
            att = att.masked_fill(keep == 0, {"-inf": float("-inf"), "0": 0.0, "-1e4": -1e4}[fill])
        out = {"softmax": lambda: F.softmax(att, dim=dim), "log": lambda: F.log_softmax(att, dim=dim),
               "scores": lambda: att}[after]()
        return extra(out) if extra else out
    return f


for knobs, expect in [
        (dict(scale="hs1"), r"sqrt|square root|hs\b|head size"), (dict(scale="T"), r"\bT\b|length|time|position"),
        (dict(scale="twice"), r"twice|sqrt|hs\b|scale"), (dict(scale="mul"), r"multipl|divid|scale"),
        (dict(scale="none"), SCALE), (dict(dim=1), r"dim|axis|quer|column|softmax"),
        (dict(fill="0"), r"zero|\b0\b|-inf|fill"), (dict(fill="mul"), r"zero|\b0\b|multipl|-inf|fill"),
        (dict(mask="self"), r"diagonal|itself|own|nan|self"), (dict(qk="kq"), r"swap|order|transpos|k.*q"),
        (dict(fill="after"), r"after|renormal|softmax"), (dict(after="log"), r"log"),
        (dict(after="scores"), r"softmax|score|normalis|logit"), (dict(mask="B"), r"batch|\bB\b|size|shape|\bT\b"),
        (dict(extra=lambda w: w.numpy()), r"numpy|tensor|type"),
        (dict(extra=lambda w: w.unsqueeze(1)), r"shape|dim|head|extra"),
        (dict(dim=1, scale="none"), r"(?=.*(dim|axis|quer|column))(?=.*(scale|sqrt))"),
        (dict(extra=lambda w: w.transpose(-2, -1)), r"transpos|swap|order|k.*q")]:
    mistake(W, expect)(weights_with(**knobs))
mistake(W, r"\.T|transpose|dim|shape")(lambda q, k: F.softmax(
    (q @ k.T / math.sqrt(q.size(-1))).masked_fill(torch.tril(torch.ones(q.size(1), q.size(1))) == 0, -math.inf), -1))
valid(W)(weights_with(fill="-1e4"))
valid(W)(lambda q, k: torch.softmax(torch.einsum("bqd,bkd->bqk", q, k).div(q.shape[-1] ** 0.5).masked_fill(
    torch.ones(q.shape[1], q.shape[1], dtype=torch.bool).triu(1), float("-inf")), dim=2))
valid(W)(lambda q, k: F.scaled_dot_product_attention(q, k, torch.eye(q.size(1)).expand(q.size(0), -1, -1),
                                                     is_causal=True))
valid(W)(lambda q, k: torch.where(torch.ones(q.size(1), q.size(1)).tril().bool(),
                                  torch.baddbmm(q.new_zeros(1), q, k.mT, beta=0, alpha=q.size(-1) ** -0.5),
                                  float("-inf")).softmax(-1))


# ------------------------------------------------------------------------------------------ LayerNorm
L = ex.check_layernorm


class LN(nn.Module):
    var, eps_at, eps_value, axis, keepdim, center, sqrt, names, bias_knob, wrap, out = (
        "biased", "inside", None, -1, True, True, True, ("weight", "bias"), "ok", nn.Parameter, None)

    def __init__(self, ndim, eps=1e-5, bias=True):
        super().__init__()
        self.eps = self.eps_value if self.eps_value is not None else eps
        w, b = type(self).wrap(torch.ones(ndim)), type(self).wrap(torch.zeros(ndim))
        setattr(self, self.names[0], w)
        keep_bias = bias or self.bias_knob == "always"
        setattr(self, self.names[1], b if keep_bias else None)

    def forward(self, x):
        mean = x.mean(dim=self.axis, keepdim=self.keepdim) if self.center else 0
        xc = x - mean
        var = {"biased": (xc ** 2).mean(self.axis, keepdim=self.keepdim),
               "unbiased": x.var(self.axis, keepdim=self.keepdim),
               "raw": (x ** 2).mean(self.axis, keepdim=self.keepdim)}[self.var]
        if self.eps_at == "outside":
            y = xc / (var.sqrt() + self.eps)
        else:
            y = xc / ((var + self.eps).sqrt() if self.sqrt else var + self.eps)
        w, b = getattr(self, self.names[0]), getattr(self, self.names[1])
        if self.bias_knob == "swap":
            w, b = b, w
        y = y * w
        y = y + b if (b is not None or self.bias_knob == "crash") else y
        return self.out(y) if self.out else y


def ln_with(**knobs):
    return type("Student", (LN,), {k: staticmethod(v) if callable(v) and k != "wrap" else v for k, v in knobs.items()})


for knobs, expect in [
        (dict(var="unbiased"), r"unbiased|n - 1|bessel|correction"), (dict(eps_at="outside"), r"eps|outside|inside"),
        (dict(eps_value=0.0), r"eps|nan|zero"), (dict(eps_value=1e-6), r"eps|1e-5|1e-6|argument"),
        (dict(axis=0), r"dim|axis|channel|last|batch"), (dict(axis=1), r"dim|axis|channel|last|time|position"),
        (dict(keepdim=False), r"keepdim|shape|broadcast|dim"), (dict(center=False), r"mean|rms|cent"),
        (dict(var="raw"), r"mean|variance|cent|E\[x"), (dict(sqrt=False), r"sqrt|square root|variance|std"),
        (dict(wrap=lambda t: t), r"parameter|regist|state_dict|weight|learn"),
        (dict(names=("gamma", "beta")), r"name|weight|gamma|state_dict|load"),
        (dict(bias_knob="swap"), r"swap|weight|bias|gain"),
        (dict(out=lambda y: y.double()), r"float64|double|dtype"),
        (dict(var="unbiased", eps_at="outside"), r"(?=.*(unbiased|n - 1|bessel|correction))(?=.*eps)")]:
    mistake(L, expect)(ln_with(**knobs))
# Moved to valid after the untuned count: earlier rounds judge a LayerNorm that ignores bias=False valid (the
# checker builds it with bias=True only, and a bias=False check refused seven earlier valid rows).
valid(L)(ln_with(bias_knob="always"))
valid(L)(ln_with(bias_knob="crash"))
mistake(L, r"in.place|input|modif")(cls_with(LN, forward=lambda self, x: (
    x.sub_(x.mean(-1, keepdim=True)), x.div_((x.pow(2).mean(-1, keepdim=True) + self.eps).sqrt()))[1]
    * self.weight + (0 if self.bias is None else self.bias)))
mistake(L, r"dim|axis|all|whole|every|last")(cls_with(LN, forward=lambda self, x: (x - x.mean()) / torch.sqrt(
    x.var(unbiased=False) + self.eps) * self.weight + self.bias))
valid(L)(cls_with(LN, forward=lambda self, x: F.layer_norm(x, self.weight.shape, self.weight, self.bias, self.eps)))
valid(L)(cls_with(LN, forward=lambda self, x: (lambda v, m: (x - m) * torch.rsqrt(v + self.eps) * self.weight + (
    0 if self.bias is None else self.bias))(*torch.var_mean(x, -1, unbiased=False, keepdim=True))))
valid(L)(cls_with(LN, forward=lambda self, x: torch.addcmul(
    self.bias if self.bias is not None else torch.zeros_like(self.weight),
    (x - x.mean(-1, keepdim=True)) / x.std(-1, unbiased=False, keepdim=True).pow(2).add(self.eps).sqrt(),
    self.weight)))


import heldout_probe_round13_core2  # noqa: E402,F401  (the second half: Block, embedding, GPT, bigram, loss)
