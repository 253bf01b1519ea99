"""Round 20, modern part, fourth file: train_and_compare rows (see heldout_probe_round20_modern.py)."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import mingpt.exercises as ex
from heldout_probe_models import mistake, valid
from mingpt.model import MLP, CausalSelfAttention

# ------------------------------------------------------------------------------------------ train_and_compare
STEPS = 30


def _train(kind):
    def train_and_compare(cls):  # named like the checker: the probe's table groups rows by this name
        return ex.train_and_compare(steps=STEPS, **{kind: cls})
    return train_and_compare


train_attention, train_mlp, train_norm = _train("attention"), _train("mlp"), _train("layer_norm")


class _Attn(nn.Module):
    def __init__(self, config, layer_idx=0):
        super().__init__()
        self.n_head = config.n_head
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)

    def qkv(self, x):
        B, T, C = x.shape
        return (t.view(B, T, self.n_head, -1).transpose(1, 2) for t in self.c_attn(x).split(C, 2))

    def out(self, y):
        B, nh, T, hs = y.shape
        return self.c_proj(y.transpose(1, 2).reshape(B, T, nh * hs))


@mistake(train_attention, r"future|later|causal|leak|mask")
class SDPANoCausal(_Attn):  # F.scaled_dot_product_attention's default is_causal=False
    def forward(self, x, kv_cache=None):
        return self.out(F.scaled_dot_product_attention(*self.qkv(x)))


@mistake(train_attention, r"future|later|causal|leak|mask")
class MHAMaskInverted(nn.Module):  # nn.MultiheadAttention: True means "masked"; a tril mask hides the past
    def __init__(self, config, layer_idx=0):
        super().__init__()
        self.mha = nn.MultiheadAttention(config.n_embd, config.n_head, batch_first=True)

    def forward(self, x, kv_cache=None):
        T = x.size(1)
        mask = torch.ones(T, T, dtype=torch.bool).tril(-1)
        return self.mha(x, x, x, attn_mask=mask, need_weights=False)[0]


@mistake(train_attention, r"future|later|causal|leak|mask")
class MHANoMask(nn.Module):  # nn.MultiheadAttention without a mask
    def __init__(self, config, layer_idx=0):
        super().__init__()
        self.mha = nn.MultiheadAttention(config.n_embd, config.n_head, batch_first=True)

    def forward(self, x, kv_cache=None):
        return self.mha(x, x, x, need_weights=False)[0]


@mistake(train_attention, r"regist|parameter|gradient|chang|train|learn")
class Conv1DPlainTensors(nn.Module):  # HF Conv1D weights held as plain tensors, never registered
    def __init__(self, config, layer_idx=0):
        super().__init__()
        C = config.n_embd
        self.n_head = config.n_head
        self.w_attn = torch.randn(C, 3 * C) * 0.02  # (in, out), x @ W + b
        self.b_attn = torch.zeros(3 * C)
        self.proj = nn.Linear(C, C)

    def forward(self, x, kv_cache=None):
        B, T, C = x.shape
        q, k, v = (t.view(B, T, self.n_head, -1).transpose(1, 2) for t in (x @ self.w_attn + self.b_attn).split(C, 2))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


@mistake(train_attention, r"nan|diagonal|mask|itself|inf")
class MaskDiagonal(_Attn):  # triu(0): position 0 has nothing to attend to (NaN)
    def forward(self, x, kv_cache=None):
        q, k, v = self.qkv(x)
        T = q.size(2)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(q.size(-1))
        att = att.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(0), float("-inf"))
        return self.out(att.softmax(-1) @ v)


@mistake(train_attention, r"gradient|detach|no_grad|chang|train|learn|c_attn")
class DetachedQKV(_Attn):  # qkv computed under no_grad (copied from an inference cache path)
    def forward(self, x, kv_cache=None):
        with torch.no_grad():
            q, k, v = self.qkv(x)
        return self.out(F.scaled_dot_product_attention(q, k, v, is_causal=True))


@mistake(train_mlp, r"gradient|frozen|requires_grad|chang|train|learn|c_fc")
class FrozenFcMLP(MLP):  # PEFT habit: base weights frozen
    def __init__(self, config):
        super().__init__(config)
        self.c_fc.weight.requires_grad_(False)


@mistake(train_mlp, r"regist|parameter|gradient|chang|list|train|learn")
class ListLayersMLP(nn.Module):  # layers kept in a Python list: not registered
    def __init__(self, config):
        super().__init__()
        C = config.n_embd
        self.layers = [nn.Linear(C, 4 * C), nn.Linear(4 * C, C)]
        self.scale = nn.Parameter(torch.ones(C))

    def forward(self, x):
        return self.layers[1](F.gelu(self.layers[0](x))) * self.scale


@mistake(train_norm, r"future|later|leak|position|axis|causal")
class NormOverTime(nn.Module):  # normalised over the sequence axis (BatchNorm-like habit): reads later tokens
    def __init__(self, ndim, eps=1e-5, bias=True):
        super().__init__()
        self.weight, self.bias = nn.Parameter(torch.ones(ndim)), nn.Parameter(torch.zeros(ndim))
        self.eps = eps

    def forward(self, x):
        mu, var = x.mean(1, keepdim=True), x.var(1, keepdim=True, unbiased=False)
        return (x - mu) / torch.sqrt(var + self.eps) * self.weight + self.bias


@mistake(train_norm, r"regist|parameter|gradient|chang|train|learn|weight")
class NormPlainGain(nn.Module):  # gain and bias as plain tensors (not nn.Parameter)
    def __init__(self, ndim, eps=1e-5, bias=True):
        super().__init__()
        self.weight, self.bias = torch.ones(ndim), torch.zeros(ndim)
        self.eps = eps
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return F.layer_norm(x, x.shape[-1:], self.weight, self.bias, self.eps) + 0 * self.dummy


@valid(train_attention)
class SDPACausal(_Attn):
    def forward(self, x, kv_cache=None):
        return self.out(F.scaled_dot_product_attention(*self.qkv(x), is_causal=True))


@valid(train_attention)
class MHACausal(nn.Module):  # nn.MultiheadAttention with the right boolean mask (True above the diagonal)
    def __init__(self, config, layer_idx=0):
        super().__init__()
        self.mha = nn.MultiheadAttention(config.n_embd, config.n_head, batch_first=True)

    def forward(self, x, kv_cache=None):
        T = x.size(1)
        mask = torch.ones(T, T, dtype=torch.bool).triu(1)
        return self.mha(x, x, x, attn_mask=mask, need_weights=False)[0]


@valid(train_attention)
class HFBufferMask(_Attn):  # GPT-2's registered mask buffer, masked with finfo.min
    def __init__(self, config, layer_idx=0):
        super().__init__(config, layer_idx)
        n = config.block_size
        self.register_buffer("bias", torch.tril(torch.ones(n, n)).view(1, 1, n, n), persistent=False)

    def forward(self, x, kv_cache=None):
        q, k, v = self.qkv(x)
        T = q.size(2)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(q.size(-1))
        att = att.masked_fill(self.bias[:, :, :T, :T] == 0, torch.finfo(att.dtype).min)
        return self.out(att.softmax(-1) @ v)


@valid(train_norm)
class RMSLikeLayerNorm(nn.Module):  # a LayerNorm written by hand in float32 (Llama's cast habit)
    def __init__(self, ndim, eps=1e-5, bias=True):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None
        self.eps = eps

    def forward(self, x):
        xf = x.float()
        y = ((xf - xf.mean(-1, keepdim=True)) * torch.rsqrt(xf.var(-1, keepdim=True, unbiased=False) + self.eps))
        y = y.type_as(x) * self.weight
        return y + self.bias if self.bias is not None else y


_ = CausalSelfAttention  # imported for readers comparing with the reference
