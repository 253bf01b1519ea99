"""Round 16, modern part, fourth file: training runs (train_and_compare) with components that do not learn, or
that look ahead (see heldout_probe_round16_modern.py). Short runs keep the part under two minutes."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import mingpt.exercises as ex
from heldout_probe_models import cls_with, mistake, valid
from mingpt.model import Block, CausalSelfAttention, NewGELU

STEPS = 20  # counted untuned with 100; 20 give every row the same verdict and name, in a fifth of the time


def _runner(kind):
    def train_and_compare(cls):  # named like the checker: the probe's table groups rows by this name
        return ex.train_and_compare(steps=STEPS, **{kind: cls})
    return train_and_compare


TRAIN_MLP, TRAIN_ATTN, TRAIN_LN, TRAIN_BLOCK = (_runner(k) for k in ("mlp", "attention", "layer_norm", "block"))
NO_GRAD = r"gradient|learn|chang|frozen|detach|no_grad|train"  # the cause a student must hear: no gradient reaches it
LOOKS_AHEAD = r"look.?ahead|future|later|causal|leak"


class _PlainMLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.gelu = NewGELU()


class MLPList(nn.Module):  # layers kept in a Python list: invisible to .parameters(), never trained
    def __init__(self, config):
        super().__init__()
        self.layers = [nn.Linear(config.n_embd, 4 * config.n_embd), nn.GELU(approximate="tanh"),
                       nn.Linear(4 * config.n_embd, config.n_embd)]

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


mistake(TRAIN_MLP, r"regist|parameter|list|learn|gradient")(MLPList)


def _mlp_no_grad(self, x):  # the expansion "frozen for speed"
    with torch.no_grad():
        h = self.c_fc(x)
    return self.c_proj(self.gelu(h))


def _mlp_detach(self, x):
    return self.c_proj(self.gelu(self.c_fc(x)).detach())


def _mlp_numpy(self, x):  # a numpy round trip for the activation cuts the graph
    h = self.c_fc(x).detach().numpy()
    h = 0.5 * h * (1 + __import__("numpy").tanh(0.7978845608 * (h + 0.044715 * h ** 3)))
    return self.c_proj(torch.from_numpy(h))


mistake(TRAIN_MLP, NO_GRAD)(cls_with(_PlainMLP, forward=_mlp_no_grad, name="MLPNoGrad"))
mistake(TRAIN_MLP, NO_GRAD)(cls_with(_PlainMLP, forward=_mlp_detach, name="MLPDetach"))
mistake(TRAIN_MLP, NO_GRAD + r"|numpy")(cls_with(_PlainMLP, forward=_mlp_numpy, name="MLPNumpy"))


class LNPlainTensors(nn.Module):  # torch.ones / torch.zeros, not nn.Parameter: never registered
    def __init__(self, ndim, eps=1e-5, bias=True):
        super().__init__()
        self.weight, self.bias, self.eps = torch.ones(ndim), torch.zeros(ndim), eps

    def forward(self, x):
        return F.layer_norm(x, x.shape[-1:], self.weight, self.bias, self.eps)


class LNFrozenBias(nn.Module):  # the bias made a Parameter with requires_grad=False
    def __init__(self, ndim, eps=1e-5, bias=True):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim), requires_grad=False)
        self.eps = eps

    def forward(self, x):
        return F.layer_norm(x, x.shape[-1:], self.weight, self.bias, self.eps)


class LNWeightData(LNFrozenBias):  # the gain read through .data: no gradient reaches it
    def __init__(self, ndim, eps=1e-5, bias=True):
        super().__init__(ndim, eps, bias)
        self.bias.requires_grad_(True)

    def forward(self, x):
        mu = x.mean(-1, keepdim=True)
        var = x.var(-1, unbiased=False, keepdim=True)
        return (x - mu) / torch.sqrt(var + self.eps) * self.weight.data + self.bias


mistake(TRAIN_LN, r"regist|parameter|learn|gradient")(LNPlainTensors)
mistake(TRAIN_LN, NO_GRAD + r"|requires_grad")(LNFrozenBias)
mistake(TRAIN_LN, NO_GRAD + r"|\.data")(LNWeightData)


def _qkv(self, x):
    B, T, C = x.shape
    q, k, v = self.c_attn(x).split(C, dim=2)
    return [t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v)]


def _attn_no_causal(self, x, kv_cache=None):  # sdpa without is_causal
    q, k, v = _qkv(self, x)
    return self.c_proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).flatten(2))


def _attn_mask_discarded(self, x, kv_cache=None):
    q, k, v = _qkv(self, x)
    T = x.size(1)
    att = q @ k.transpose(-2, -1) / math.sqrt(k.size(-1))
    att.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))  # result thrown away
    return self.c_proj((att.softmax(-1) @ v).transpose(1, 2).flatten(2))


def _attn_softmax_queries(self, x, kv_cache=None):
    q, k, v = _qkv(self, x)
    T = x.size(1)
    att = q @ k.transpose(-2, -1) / math.sqrt(k.size(-1))
    att = att.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    return self.c_proj((att.softmax(-2) @ v).transpose(1, 2).flatten(2))


def _attn_no_proj(self, x, kv_cache=None):  # c_proj built but never applied
    q, k, v = _qkv(self, x)
    return F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).flatten(2)


def _attn_mask_past(self, x, kv_cache=None):  # tril(-1) masked: the past hidden, the future seen
    q, k, v = _qkv(self, x)
    T = x.size(1)
    att = q @ k.transpose(-2, -1) / math.sqrt(k.size(-1))
    att = att.masked_fill(torch.ones(T, T, dtype=torch.bool).tril(-1), float("-inf"))
    return self.c_proj((att.softmax(-1) @ v).transpose(1, 2).flatten(2))


mistake(TRAIN_ATTN, LOOKS_AHEAD)(cls_with(CausalSelfAttention, forward=_attn_no_causal, name="AttnNoCausal"))
mistake(TRAIN_ATTN, LOOKS_AHEAD)(cls_with(CausalSelfAttention, forward=_attn_mask_discarded, name="AttnMaskLost"))
mistake(TRAIN_ATTN, LOOKS_AHEAD)(cls_with(CausalSelfAttention, forward=_attn_softmax_queries, name="AttnSoftmaxQ"))
mistake(TRAIN_ATTN, NO_GRAD + r"|c_proj|unused")(cls_with(CausalSelfAttention, forward=_attn_no_proj,
                                                           name="AttnNoProj"))
mistake(TRAIN_ATTN, LOOKS_AHEAD)(cls_with(CausalSelfAttention, forward=_attn_mask_past, name="AttnMaskPast"))


def _block_ln1_twice(self, x, kv_cache=None):  # copy-paste: ln_1 before the MLP too; ln_2 never used
    x = x + self.attn(self.ln_1(x), kv_cache)
    return x + self.mlp(self.ln_1(x))


def _block_attn_detached(self, x, kv_cache=None):  # .detach() "to save memory" on the attention branch
    x = x + self.attn(self.ln_1(x), kv_cache).detach()
    return x + self.mlp(self.ln_2(x))


mistake(TRAIN_BLOCK, NO_GRAD + r"|ln_2|unused")(cls_with(Block, forward=_block_ln1_twice, name="BlockLn1Twice"))
mistake(TRAIN_BLOCK, NO_GRAD)(cls_with(Block, forward=_block_attn_detached, name="BlockAttnDetached"))


class MLPSequential(nn.Module):  # the same layers in an nn.Sequential (created in the same order)
    def __init__(self, config):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias),
                                 nn.GELU(approximate="tanh"),
                                 nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias),
                                 nn.Dropout(config.resid_pdrop))

    def forward(self, x):
        return self.net(x)


class LNByHand(nn.Module):  # LayerNorm written out, with the biased variance
    def __init__(self, ndim, eps=1e-5, bias=True):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None
        self.eps = eps

    def forward(self, x):
        mu = x.mean(-1, keepdim=True)
        var = (x - mu).pow(2).mean(-1, keepdim=True)
        y = (x - mu) * torch.rsqrt(var + self.eps) * self.weight
        return y if self.bias is None else y + self.bias


def _attn_math(self, x, kv_cache=None):  # the explicit maths, mask -1e9 by addition
    q, k, v = _qkv(self, x)
    T = x.size(1)
    att = q @ k.transpose(-2, -1) / math.sqrt(k.size(-1))
    att = att + torch.full((T, T), -1e9).triu(1)
    att = self.attn_dropout(att.softmax(-1))
    return self.resid_dropout(self.c_proj((att @ v).transpose(1, 2).reshape(x.shape)))


valid(TRAIN_MLP)(MLPSequential)
valid(TRAIN_LN)(LNByHand)
valid(TRAIN_ATTN)(cls_with(CausalSelfAttention, forward=_attn_math, name="AttnMath"))
