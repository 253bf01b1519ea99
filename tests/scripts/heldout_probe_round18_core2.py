"""The held-out probe, round 18, core part 2: attention, LayerNorm, MLP (see heldout_probe_round18_core.py)."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import mingpt.exercises as ex
from heldout_probe_models import cls_with, mistake, valid


# ------------------------------------------------------------------------------------------ check_attention
class A(nn.Module):
    """Knobs for one slip each; the defaults are right."""
    scale, split, merge, order, sm_dim, mask, residual, scale_v = "hs", "ok", "ok", "qkv", -1, "ok", False, False

    def __init__(self, config, layer_idx=0):
        super().__init__()
        self.n_head, self.n_embd = config.n_head, config.n_embd
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)
        self.attn_dropout = nn.Dropout(config.attn_pdrop)
        self.resid_dropout = nn.Dropout(config.resid_pdrop)

    def heads(self, t, B, T, nh, hs):
        if self.split == "ok":
            return t.view(B, T, nh, hs).transpose(1, 2)
        if self.split == "hs_nh":  # (hs, nh) order: each "head" takes every nh-th channel
            return t.view(B, T, hs, nh).permute(0, 3, 1, 2)
        return t.reshape(B * nh, T, hs).view(B, nh, T, hs)  # "flat": heads taken from time, no transpose

    def forward(self, x, kv_cache=None):
        B, T, C = x.shape
        nh, hs = self.n_head, C // self.n_head
        parts = dict(zip(self.order, self.c_attn(x).split(C, dim=2)))
        q, k, v = (self.heads(parts[n], B, T, nh, hs) for n in "qkv")
        att = q @ k.transpose(-2, -1)
        att = att / {"hs": math.sqrt(hs), "C": math.sqrt(C), "nh": math.sqrt(nh), "none": 1.0}[self.scale]
        if self.mask == "ok":
            att = att.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf"))
        elif self.mask == "batch_T":  # the mask's size read from x.size(0): B == 1 broadcasts a 1x1 "mask"
            n = x.size(0)
            att = att.masked_fill(~torch.ones(n, n, dtype=torch.bool).tril(), float("-inf"))
        att = F.softmax(att, dim=self.sm_dim)
        y = self.attn_dropout(att) @ v
        if self.scale_v:
            y = y / math.sqrt(hs)
        y = y.transpose(1, 2).reshape(B, T, C) if self.merge == "ok" else y.permute(0, 2, 3, 1).reshape(B, T, C)
        y = self.resid_dropout(self.c_proj(y))
        return x + y if self.residual else y


# sqrt(C): equals sqrt(hs) when n_head == 1, a look-alike of a right scale on one head
mistake(ex.check_attention, r"scal|sqrt")(cls_with(A, scale="C"))
mistake(ex.check_attention, r"scal|sqrt")(cls_with(A, scale="nh"))
mistake(ex.check_attention, r"head|split|interleav|view|reshape|permute")(cls_with(A, split="hs_nh"))
mistake(ex.check_attention, r"head|split|view|reshape|transpose")(cls_with(A, split="flat"))
mistake(ex.check_attention, r"merge|head|re-?assembl|transpose|permute|concat")(cls_with(A, merge="bad"))
# k, q, v: the scores transposed under the mask, a look-alike of a softmax over the wrong axis
mistake(ex.check_attention, r"q|k|order|swap|split")(cls_with(A, order="kqv"))
mistake(ex.check_attention, r"q|v|order|swap|split")(cls_with(A, order="vkq"))
mistake(ex.check_attention, r"mask|causal|future")(cls_with(A, mask="none"))
# the mask sized by the batch: right when B == T, no mask at all when B == 1, a shape error otherwise
mistake(ex.check_attention, r"mask|causal|future|shape|size|batch")(cls_with(A, mask="batch_T"))
mistake(ex.check_attention, r"residual|x ?\+|skip|add")(cls_with(A, residual=True))
mistake(ex.check_attention, r"softmax|axis|dim")(cls_with(A, sm_dim=1))  # over heads
# the 1/sqrt(hs) applied to the output instead of the scores
mistake(ex.check_attention, r"scal|sqrt|value|output")(cls_with(A, scale="none", scale_v=True))
# double slip: sqrt(C) and softmax over the queries
mistake(ex.check_attention, r"scal|sqrt|softmax|axis|dim")(cls_with(A, scale="C", sm_dim=-2))


class AttnMaskBuffer(A):
    # the causal mask as a registered buffer of n_embd x n_embd: T > n_embd breaks it (block_size is the limit)
    def __init__(self, config, layer_idx=0):
        super().__init__(config, layer_idx)
        self.register_buffer("bias", torch.ones(4, 4).tril().view(1, 1, 4, 4))

    def forward(self, x, kv_cache=None):
        B, T, C = x.shape
        nh, hs = self.n_head, C // self.n_head
        q, k, v = (t.view(B, T, nh, hs).transpose(1, 2) for t in self.c_attn(x).split(C, dim=2))
        att = q @ k.transpose(-2, -1) / math.sqrt(hs)
        m = self.bias[:, :, :T, :T]
        if m.size(-1) < T:  # pads the mask with ones where it is too small: the future leaks beyond position 4
            m = F.pad(m, (0, T - m.size(-1), 0, T - m.size(-2)), value=1.0)
        att = att.masked_fill(m == 0, float("-inf"))
        y = F.softmax(att, -1) @ v
        return self.c_proj(y.transpose(1, 2).reshape(B, T, C))


mistake(ex.check_attention, r"mask|causal|future|long|length")(AttnMaskBuffer)


class AttnEinsumLoop(A):
    # explicit loop over heads with einsum, log-space softmax in float64
    def forward(self, x, kv_cache=None):
        B, T, C = x.shape
        hs = C // self.n_head
        q, k, v = self.c_attn(x).split(C, dim=2)
        outs = []
        for h in range(self.n_head):
            sl = slice(h * hs, (h + 1) * hs)
            s = torch.einsum("btd,bsd->bts", q[..., sl].double(), k[..., sl].double()) / math.sqrt(hs)
            s = s.masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool), 1), float("-inf"))
            w = torch.exp(s - torch.logsumexp(s, -1, keepdim=True)).to(x.dtype)
            outs.append(w @ v[..., sl])
        return self.resid_dropout(self.c_proj(torch.cat(outs, -1)))


class AttnSDPAMask(A):
    def forward(self, x, kv_cache=None):
        B, T, C = x.shape
        q, k, v = (t.unflatten(-1, (self.n_head, -1)).transpose(1, 2) for t in self.c_attn(x).chunk(3, dim=-1))
        mask = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.resid_dropout(self.c_proj(y.transpose(1, 2).flatten(2)))


valid(ex.check_attention)(AttnEinsumLoop)
valid(ex.check_attention)(AttnSDPAMask)
valid(ex.check_attention)(cls_with(A, scale="hs"))


# ------------------------------------------------------------------------------------------ check_layernorm
class LN(nn.Module):
    def __init__(self, ndim, eps=1e-5, bias=True):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def affine(self, xhat):
        return xhat * self.weight + (self.bias if self.bias is not None else 0)


def ln(norm, name="Student"):
    return cls_with(LN, forward=lambda self, x: norm(self, x), name=name)


def _m(x, dim=-1):
    return x.mean(dim, keepdim=True)


mistake(ex.check_layernorm, r"unbiased|bessel|n ?- ?1|correction|var")(ln(
    lambda s, x: s.affine((x - _m(x)) / torch.sqrt(x.var(-1, keepdim=True) + s.eps))))
# eps outside the root: a look-alike of eps ignored, seen only when the variance is small
mistake(ex.check_layernorm, r"eps|sqrt|std")(ln(
    lambda s, x: s.affine((x - _m(x)) / (x.std(-1, keepdim=True, unbiased=False) + s.eps))))
# eps hard-coded 1e-5, self.eps ignored: right at the default eps, wrong when the constructor gets another
mistake(ex.check_layernorm, r"eps")(ln(
    lambda s, x: s.affine((x - _m(x)) / torch.sqrt(((x - _m(x)) ** 2).mean(-1, keepdim=True) + 1e-5))))
mistake(ex.check_layernorm, r"dim|axis|over|last|channel|time")(ln(
    lambda s, x: s.affine((x - _m(x, (-2, -1))) / torch.sqrt(x.var((-2, -1), keepdim=True, unbiased=False) + s.eps))))
mistake(ex.check_layernorm, r"swap|weight|bias|gamma|beta")(ln(
    lambda s, x: (x - _m(x)) / torch.sqrt(x.var(-1, keepdim=True, unbiased=False) + s.eps) * s.bias + s.weight))
mistake(ex.check_layernorm, r"order|bias|weight|affine|before")(ln(
    lambda s, x: ((x - _m(x)) / torch.sqrt(x.var(-1, keepdim=True, unbiased=False) + s.eps) + s.bias) * s.weight))
# no centring: RMSNorm's formula under LayerNorm's name
mistake(ex.check_layernorm, r"mean|cent|rms|subtract")(ln(
    lambda s, x: s.affine(x / torch.sqrt((x * x).mean(-1, keepdim=True) + s.eps))))
# centred, but divided by the root of the raw second moment (a half-RMSNorm)
mistake(ex.check_layernorm, r"var|mean|cent|moment|second|rms")(ln(
    lambda s, x: s.affine((x - _m(x)) / torch.sqrt((x * x).mean(-1, keepdim=True) + s.eps))))
mistake(ex.check_layernorm, r"sqrt|std|var|root")(ln(
    lambda s, x: s.affine((x - _m(x)) / (x.var(-1, keepdim=True, unbiased=False) + s.eps))))
# BatchNorm habit: statistics over the batch
mistake(ex.check_layernorm, r"batch|dim|axis|over")(ln(
    lambda s, x: s.affine((x - _m(x, 0)) / torch.sqrt(x.var(0, keepdim=True, unbiased=False) + s.eps))))


class LNZeroWeight(LN):
    # weight initialised to zeros (the habit of zero-init for residual branches)
    def __init__(self, ndim, eps=1e-5, bias=True):
        super().__init__(ndim, eps, bias)
        self.weight = nn.Parameter(torch.zeros(ndim))

    def forward(self, x):
        return self.affine(F.layer_norm(x, x.shape[-1:], None, None, self.eps))


mistake(ex.check_layernorm, r"init|weight|zero|ones|gamma")(LNZeroWeight)


class LNFloat32Out(LN):
    # computes in float32 and forgets to cast back: a bf16 / float64 input comes back float32
    def forward(self, x):
        x = x.float()
        return self.affine((x - _m(x)) / torch.sqrt(x.var(-1, keepdim=True, unbiased=False) + self.eps))


mistake(ex.check_layernorm, r"dtype|precision|float|type")(LNFloat32Out)


class LNRunning(LN):
    # BatchNorm habit: running statistics kept in training and used in eval
    def __init__(self, ndim, eps=1e-5, bias=True):
        super().__init__(ndim, eps, bias)
        self.register_buffer("rm", torch.zeros(1))
        self.register_buffer("rv", torch.ones(1))

    def forward(self, x):
        if self.training:
            m, v = _m(x), x.var(-1, keepdim=True, unbiased=False)
            self.rm = 0.9 * self.rm + 0.1 * m.mean().detach()
            self.rv = 0.9 * self.rv + 0.1 * v.mean().detach()
        else:
            m, v = self.rm, self.rv
        return self.affine((x - m) / torch.sqrt(v + self.eps))


mistake(ex.check_layernorm, r"running|batch|eval|state|train")(LNRunning)


class LNValidRsqrt64(LN):
    def forward(self, x):
        xd = x.double()
        c = xd - xd.mean(-1, keepdim=True)
        return self.affine((c * torch.rsqrt(c.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype))


class LNValidFunctional(LN):
    def forward(self, x):
        return F.layer_norm(x, (x.size(-1),), self.weight, self.bias, self.eps)


class LNValidMoments(LN):
    # var = E[x^2] - E[x]^2, in float64 so the cancellation is harmless
    def forward(self, x):
        xd = x.double()
        m = xd.mean(-1, keepdim=True)
        v = (xd * xd).mean(-1, keepdim=True) - m * m
        return self.affine(((xd - m) / (v + self.eps).sqrt()).to(x.dtype))


valid(ex.check_layernorm)(LNValidRsqrt64)
valid(ex.check_layernorm)(LNValidFunctional)
valid(ex.check_layernorm)(LNValidMoments)


# ------------------------------------------------------------------------------------------ check_mlp
class M(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd)
        self.dropout = nn.Dropout(config.resid_pdrop)


def mlp(act, post=None, residual=False, name="Student"):
    def forward(self, x):
        y = self.c_proj(act(self.c_fc(x)))
        y = post(y) if post else y
        return self.dropout(y) + (x if residual else 0)
    return cls_with(M, forward=forward, name=name)


def gelu_tanh(h, c=math.sqrt(2 / math.pi), half=0.5, one=1.0):
    return half * h * (one + torch.tanh(c * (h + 0.044715 * h ** 3)))


mistake(ex.check_mlp, r"exact|erf|tanh|approx")(mlp(F.gelu))
mistake(ex.check_mlp, r"constant|sqrt|gelu|formula")(mlp(lambda h: gelu_tanh(h, c=math.sqrt(2) / math.pi)))
mistake(ex.check_mlp, r"0\.5|half|factor|scale|gelu|twice|double")(mlp(lambda h: gelu_tanh(h, half=1.0)))
mistake(ex.check_mlp, r"after|output|twice|gelu|activation")(mlp(lambda h: gelu_tanh(h), post=lambda y: gelu_tanh(y)))
mistake(ex.check_mlp, r"residual|x ?\+|skip")(mlp(lambda h: gelu_tanh(h), residual=True))
# pi typed as 3.14: tiny, a look-alike of the exact GELU's small difference
mistake(ex.check_mlp, r"constant|pi|gelu|formula|approx|3\.14")(mlp(lambda h: gelu_tanh(h, c=math.sqrt(2 / 3.14))))
mistake(ex.check_mlp, r"gelu|constant|formula|activation|1 ?\+|tanh")(mlp(lambda h: gelu_tanh(h, one=0.0)))
# double slip: exact GELU and a residual
mistake(ex.check_mlp, r"residual|x ?\+|skip|erf|exact")(mlp(F.gelu, residual=True))
mistake(ex.check_mlp, r"norm|layer.?norm")(cls_with(M, forward=lambda self, x: self.dropout(self.c_proj(
    F.gelu(self.c_fc(F.layer_norm(x, x.shape[-1:])), approximate="tanh")))))
mistake(ex.check_mlp, r"dropout|train|eval|random")(cls_with(M, forward=lambda self, x: F.dropout(self.c_proj(
    F.gelu(self.c_fc(x), approximate="tanh")), 0.5, training=True)))


class MLPNoBias(M):
    def __init__(self, config):
        super().__init__(config)
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=False)

    def forward(self, x):
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x), approximate="tanh")))


mistake(ex.check_mlp, r"bias")(MLPNoBias)


class MLPWide(M):
    # hidden width 2*C (a "smaller model" edit): the weights no longer fit
    def __init__(self, config):
        super().__init__(config)
        self.c_fc = nn.Linear(config.n_embd, 2 * config.n_embd)
        self.c_proj = nn.Linear(2 * config.n_embd, config.n_embd)

    def forward(self, x):
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x), approximate="tanh")))


mistake(ex.check_mlp, r"4|hidden|size|shape|width|expan")(MLPWide)
# relu on the hidden layer, then tanh-GELU after c_proj: two slips that look like "activation after"
mistake(ex.check_mlp, r"relu|after|output|activation")(mlp(F.relu, post=lambda y: F.gelu(y, approximate="tanh")))
# GELU applied in float16 (autocast habit): about 1e-3 off
mistake(ex.check_mlp, r"precision|half|float16|dtype|round")(mlp(
    lambda h: F.gelu(h.half(), approximate="tanh").to(h.dtype)))

valid(ex.check_mlp)(mlp(lambda h: gelu_tanh(h.double()).to(h.dtype)))
valid(ex.check_mlp)(cls_with(M, forward=lambda self, x: self.dropout(torch.einsum(
    "btf,cf->btc", F.gelu(torch.einsum("btc,fc->btf", x, self.c_fc.weight) + self.c_fc.bias, approximate="tanh"),
    self.c_proj.weight) + self.c_proj.bias)))
valid(ex.check_mlp)(mlp(lambda h: h * torch.sigmoid(2 * math.sqrt(2 / math.pi) * (h + 0.044715 * h ** 3))))


import heldout_probe_round18_core3  # noqa: E402,F401
