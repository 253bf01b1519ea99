"""The held-out probe, round 19, core part, second file: attention, LayerNorm, MLP (imported by the first)."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import mingpt.exercises as ex
from heldout_probe_models import mistake, valid


# ------------------------------------------------------------------------------------------ attention (module)
class R19Attn(nn.Module):
    """A correct multi-head attention, written with helper methods that the mistakes override."""

    def __init__(self, config, layer_idx=0):
        super().__init__()
        self.heads = config.n_head
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)

    def split_heads(self, t, B, T, C):
        return t.view(B, T, self.heads, C // self.heads).transpose(1, 2)

    def merge_heads(self, y, B, T, C):
        return y.transpose(1, 2).reshape(B, T, C)

    def scores(self, q, k):
        return q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))

    def mask(self, s):
        T = s.size(-1)
        return s.masked_fill(torch.ones(T, T, dtype=torch.bool, device=s.device).tril() == 0, float("-inf"))

    def qkv(self, x):
        return self.c_attn(x).chunk(3, dim=-1)

    def forward(self, x, kv_cache=None):
        B, T, C = x.shape
        q, k, v = (self.split_heads(t, B, T, C) for t in self.qkv(x))
        w = torch.softmax(self.mask(self.scores(q, k)), dim=-1)
        return self.c_proj(self.merge_heads(w @ v, B, T, C))


def attn_with(**methods):
    return type("StudentAttention", (R19Attn,), methods)


mistake(ex.check_attention, r"reshape|view|transpos|head|split")(attn_with(
    split_heads=lambda self, t, B, T, C: t.reshape(B, self.heads, T, C // self.heads)))
mistake(ex.check_attention, r"merge|transpos|reshape|head|view")(attn_with(
    merge_heads=lambda self, y, B, T, C: y.reshape(B, T, C)))
mistake(ex.check_attention, r"order|split|swap|q.*k|k.*q")(attn_with(
    qkv=lambda self, x: (lambda q, k, v: (k, q, v))(*self.c_attn(x).chunk(3, dim=-1))))
mistake(ex.check_attention, r"scal|sqrt|head|n_embd|C\b")(attn_with(  # widened: "scaling factor"
    scores=lambda self, q, k: q @ k.transpose(-2, -1) / math.sqrt(q.size(-1) * self.heads)))
mistake(ex.check_attention, r"mask|causal")(attn_with(mask=lambda self, s: s))
mistake(ex.check_attention, r"mask|causal|scale")(attn_with(  # double slip: no mask and no scale
    mask=lambda self, s: s, scores=lambda self, q, k: q @ k.transpose(-2, -1)))


@mistake(ex.check_attention, r"proj|output")
class R19AttnNoProj(R19Attn):
    def forward(self, x, kv_cache=None):
        B, T, C = x.shape
        q, k, v = (self.split_heads(t, B, T, C) for t in self.qkv(x))
        w = torch.softmax(self.mask(self.scores(q, k)), dim=-1)
        return self.merge_heads(w @ v, B, T, C)


@mistake(ex.check_attention, r"axis|dim|softmax|query")
class R19AttnSoftmaxRows(R19Attn):
    def forward(self, x, kv_cache=None):
        B, T, C = x.shape
        q, k, v = (self.split_heads(t, B, T, C) for t in self.qkv(x))
        w = torch.softmax(self.mask(self.scores(q, k)), dim=-2)
        return self.c_proj(self.merge_heads(w @ v, B, T, C))


@mistake(ex.check_attention, r"regist|param|list")
class R19AttnListOfLinears(nn.Module):
    def __init__(self, config, layer_idx=0):
        super().__init__()
        self.n_head = config.n_head
        self.layers = [nn.Linear(config.n_embd, 3 * config.n_embd), nn.Linear(config.n_embd, config.n_embd)]

    def forward(self, x, kv_cache=None):
        B, T, C = x.shape
        qkv, proj = self.layers
        q, k, v = qkv(x).split(C, dim=-1)
        q, k, v = (t.view(B, T, self.n_head, -1).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return proj(y.transpose(1, 2).reshape(B, T, C))


@mistake(ex.check_attention, r"causal|mask")
class R19AttnSdpaNoCausal(nn.Module):
    def __init__(self, config, layer_idx=0):
        super().__init__()
        self.nh = config.n_head
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)

    def forward(self, x, kv_cache=None):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).view(B, T, 3, self.nh, C // self.nh).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v)
        return self.c_proj(y.permute(0, 2, 1, 3).flatten(2))


@valid(ex.check_attention)
class R19AttnValidSdpa(nn.Module):
    def __init__(self, config, layer_idx=0):
        super().__init__()
        self.nh = config.n_head
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)

    def forward(self, x, kv_cache=None):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).view(B, T, 3, self.nh, C // self.nh).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.permute(0, 2, 1, 3).flatten(2))


@valid(ex.check_attention)
class R19AttnValidEinsum(nn.Module):  # heads by einsum, no transposes
    def __init__(self, config, layer_idx=0):
        super().__init__()
        self.n_head = config.n_head
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)

    def forward(self, x, kv_cache=None):
        B, T, C = x.shape
        H = self.n_head
        q, k, v = (t.unflatten(-1, (H, C // H)) for t in self.c_attn(x).split(C, -1))  # (B, T, H, hs)
        att = torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(C // H)
        future = torch.triu(torch.ones(T, T, dtype=torch.bool, device=x.device), 1)
        att = att.masked_fill(future, float("-inf")).softmax(-1)
        return self.c_proj(torch.einsum("bhqk,bkhd->bqhd", att, v).reshape(B, T, C))


# ------------------------------------------------------------------------------------------ LayerNorm
class R19LN(nn.Module):
    def __init__(self, ndim, eps=1e-5, bias=True):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim))


@mistake(ex.check_layernorm, r"unbias|bessel|var|n.?-.?1|correction")
class R19LNUnbiased(R19LN):
    def forward(self, x):
        mu = x.mean(-1, keepdim=True)
        return (x - mu) / torch.sqrt(x.var(-1, keepdim=True) + self.eps) * self.weight + self.bias


@mistake(ex.check_layernorm, r"eps|std")
class R19LNStdPlusEps(R19LN):
    def forward(self, x):
        centred = x - x.mean(dim=-1, keepdim=True)
        sd = centred.pow(2).mean(dim=-1, keepdim=True).sqrt()
        return self.weight * centred / (sd + self.eps) + self.bias


@mistake(ex.check_layernorm, r"axis|dim")
class R19LNTimeAxis(R19LN):
    def forward(self, x):
        mu = x.mean(dim=1, keepdim=True)
        var = x.var(dim=1, keepdim=True, unbiased=False)
        return (x - mu) * torch.rsqrt(var + self.eps) * self.weight + self.bias


@mistake(ex.check_layernorm, r"param|regist")
class R19LNPlainTensors(nn.Module):
    def __init__(self, ndim, eps=1e-5, bias=True):
        super().__init__()
        self.eps = eps
        self.gamma = torch.ones(ndim)
        self.beta = torch.zeros(ndim)

    def forward(self, x):
        return F.layer_norm(x, x.shape[-1:], self.gamma, self.beta, self.eps)


@mistake(ex.check_layernorm, r"keepdim|shape|broadcast")
class R19LNNoKeepdim(R19LN):
    def forward(self, x):
        mu = x.mean(-1)
        var = ((x - mu[..., None]) ** 2).mean(-1)
        return (x - mu[..., None]) / torch.sqrt(var + self.eps) * self.weight + self.bias  # var not re-expanded


@mistake(ex.check_layernorm, r"eps")
class R19LNNoEps(R19LN):
    def forward(self, x):
        z = x - x.mean(-1, keepdim=True)
        return z / z.pow(2).mean(-1, keepdim=True).sqrt() * self.weight + self.bias


@mistake(ex.check_layernorm, r"eps")
class R19LNHardEps(R19LN):  # ignores the eps argument
    def forward(self, x):
        return F.layer_norm(x, (x.size(-1),), self.weight, self.bias, 1e-6)


@mistake(ex.check_layernorm, r"bias|shift|beta")
class R19LNNoBias(R19LN):
    def forward(self, x):
        z = x - x.mean(-1, keepdim=True)
        return z / torch.sqrt(z.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


@mistake(ex.check_layernorm, r"swap|weight|bias|gain|scale")
class R19LNSwapped(R19LN):
    def forward(self, x):
        z = x - x.mean(-1, keepdim=True)
        return z / torch.sqrt(z.pow(2).mean(-1, keepdim=True) + self.eps) * self.bias + self.weight


@mistake(ex.check_layernorm, r"super|init")
class R19LNNoSuper(nn.Module):
    def __init__(self, ndim, eps=1e-5, bias=True):
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim))

    def forward(self, x):
        return F.layer_norm(x, x.shape[-1:], self.weight, self.bias, self.eps)


@mistake(ex.check_layernorm, r"center|centre|mean|rms")
class R19LNNotCentred(R19LN):  # divides by the std but forgets to subtract the mean
    def forward(self, x):
        var = x.var(-1, keepdim=True, unbiased=False)
        return x / torch.sqrt(var + self.eps) * self.weight + self.bias


@valid(ex.check_layernorm)
class R19LNValidRsqrt(R19LN):
    def forward(self, x):
        var, mean = torch.var_mean(x, dim=-1, keepdim=True, correction=0)
        return torch.addcmul(self.bias, (x - mean) * torch.rsqrt(var + self.eps), self.weight)


@valid(ex.check_layernorm)
class R19LNValidNoBiasOption(nn.Module):  # honours bias=False; registers None then
    def __init__(self, ndim, eps=1e-5, bias=True):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, self.eps)


# ------------------------------------------------------------------------------------------ MLP
class R19MLPSeq(nn.Module):
    """nn.Sequential-free MLP whose activation is a class attribute that the mistakes override."""
    act = staticmethod(lambda h: F.gelu(h, approximate="tanh"))
    hidden = 4

    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, self.hidden * config.n_embd)
        self.c_proj = nn.Linear(self.hidden * config.n_embd, config.n_embd)

    def forward(self, x):
        return self.c_proj(self.act(self.c_fc(x)))


def mlp_act(fn):
    return type("StudentMLP", (R19MLPSeq,), {"act": staticmethod(fn)})


mistake(ex.check_mlp, r"relu")(mlp_act(torch.relu))
mistake(ex.check_mlp, r"exact|erf|tanh|approx")(mlp_act(F.gelu))
mistake(ex.check_mlp, r"constant|sqrt|gelu|pi")(mlp_act(
    lambda h: 0.5 * h * (1 + torch.tanh(math.sqrt(2 * math.pi) * (h + 0.044715 * h ** 3)))))
mistake(ex.check_mlp, r"constant|gelu|0\.5|half")(mlp_act(  # forgets the 0.5 in front
    lambda h: h * (1 + torch.tanh(math.sqrt(2 / math.pi) * (h + 0.044715 * h ** 3)))))
mistake(ex.check_mlp, r"activation|linear|missing|no ")(mlp_act(lambda h: h))
mistake(ex.check_mlp, r"twice|double|activation")(mlp_act(lambda h: F.gelu(F.gelu(h, approximate="tanh"),
                                                                         approximate="tanh")))
mistake(ex.check_mlp, r"silu|swish|sigmoid")(mlp_act(nn.SiLU()))
mistake(ex.check_mlp, r"hidden|4|width|size|shape|2")(type("StudentMLP", (R19MLPSeq,), {"hidden": 2}))


@mistake(ex.check_mlp, r"after|order|c_proj|placement|output")
class R19MLPActAfter(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd)
        self.act = nn.GELU(approximate="tanh")

    def forward(self, x):
        return self.act(self.c_proj(self.c_fc(x)))


@mistake(ex.check_mlp, r"regist|param|list")
class R19MLPList(nn.Module):
    def __init__(self, config):
        super().__init__()
        C = config.n_embd
        self.stack = [nn.Linear(C, 4 * C), nn.GELU(approximate="tanh"), nn.Linear(4 * C, C)]

    def forward(self, x):
        for layer in self.stack:
            x = layer(x)
        return x


@valid(ex.check_mlp)
class R19MLPValidFunctional(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd)
        self.drop = nn.Dropout(config.resid_pdrop)

    def forward(self, x):
        h = F.linear(x, self.c_fc.weight, self.c_fc.bias)
        h = 0.5 * h * (1.0 + torch.tanh((2.0 / math.pi) ** 0.5 * (h + 0.044715 * h * h * h)))
        return self.drop(F.linear(h, self.c_proj.weight, self.c_proj.bias))


import heldout_probe_round19_core3  # noqa: E402,F401  (block, embedding, GPT)
