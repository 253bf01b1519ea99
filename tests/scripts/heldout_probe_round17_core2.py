"""The held-out probe, round 17, core part 2: check_attention, check_layernorm, check_mlp (see _core.py)."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import mingpt.exercises as ex
from heldout_probe_models import cls_with, mistake, valid


# ---------------------------------------------------------------- check_attention: cls(config, layer_idx)
class MHA(nn.Module):
    """The notebook's skeleton: c_attn, c_proj, two dropouts; forward written per row."""

    def __init__(self, config, layer_idx=0):
        super().__init__()
        self.n_head = config.n_head
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)
        self.attn_dropout = nn.Dropout(config.attn_pdrop)
        self.resid_dropout = nn.Dropout(config.resid_pdrop)

    def forward(self, x, kv_cache=None):
        B, T, C = x.shape
        hs = C // self.n_head
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, hs).transpose(1, 2) for t in (q, k, v))
        att = q @ k.transpose(-2, -1) / math.sqrt(hs)
        att = att.masked_fill(torch.ones(T, T, dtype=torch.bool).tril().logical_not(), float("-inf"))
        att = self.attn_dropout(F.softmax(att, dim=-1))
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


def _mask(T):
    return torch.tril(torch.ones(T, T, dtype=torch.bool))


def _heads(t, B, T, nh):
    return t.view(B, T, nh, t.size(-1) // nh).transpose(1, 2)


def att_no_head_transpose(self, x, kv_cache=None):
    B, T, C = x.shape
    hs = C // self.n_head
    q, k, v = self.c_attn(x).split(C, dim=2)
    q, k, v = (t.view(B, T, self.n_head, hs) for t in (q, k, v))  # (B, T, nh, hs): attends across heads
    att = q @ k.transpose(-2, -1) / math.sqrt(hs)
    att = F.softmax(att.masked_fill(~_mask(T), float("-inf")), dim=-1)
    y = (att @ v).reshape(B, T, C)
    return self.c_proj(y)


def att_no_transpose_back(self, x, kv_cache=None):
    B, T, C = x.shape
    hs = C // self.n_head
    q, k, v = (_heads(t, B, T, self.n_head) for t in self.c_attn(x).split(C, dim=2))
    att = q @ k.transpose(-2, -1) / math.sqrt(hs)
    att = F.softmax(att.masked_fill(~_mask(T), float("-inf")), dim=-1)
    y = (att @ v).reshape(B, T, C)  # (B, nh, T, hs) flattened without moving the heads back
    return self.c_proj(y)


def att_scale_by_C(self, x, kv_cache=None):
    B, T, C = x.shape
    q, k, v = (_heads(t, B, T, self.n_head) for t in self.c_attn(x).split(C, dim=2))
    att = q @ k.transpose(-2, -1) / math.sqrt(C)  # the full width, not the head size
    att = F.softmax(att.masked_fill(~_mask(T), float("-inf")), dim=-1)
    return self.c_proj((att @ v).transpose(1, 2).contiguous().view(B, T, C))


def att_no_causal_mask(self, x, kv_cache=None):
    B, T, C = x.shape
    q, k, v = (_heads(t, B, T, self.n_head) for t in self.c_attn(x).split(C, dim=2))
    att = F.softmax(q @ k.transpose(-2, -1) / math.sqrt(k.size(-1)), dim=-1)
    return self.c_proj((att @ v).transpose(1, 2).contiguous().view(B, T, C))


def att_kqv_order(self, x, kv_cache=None):
    B, T, C = x.shape
    k, q, v = self.c_attn(x).split(C, dim=2)  # GPT-2's c_attn is q, k, v in that order
    q, k, v = (_heads(t, B, T, self.n_head) for t in (q, k, v))
    att = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    att = F.softmax(att.masked_fill(~_mask(T), float("-inf")), dim=-1)
    return self.c_proj((att @ v).transpose(1, 2).contiguous().view(B, T, C))


def att_view_heads_first(self, x, kv_cache=None):
    B, T, C = x.shape
    nh, hs = self.n_head, C // self.n_head
    q, k, v = (t.view(B, nh, T, hs) for t in self.c_attn(x).split(C, dim=2))  # not view-then-transpose
    att = q @ k.transpose(-2, -1) / math.sqrt(hs)
    att = F.softmax(att.masked_fill(~_mask(T), float("-inf")), dim=-1)
    return self.c_proj((att @ v).transpose(1, 2).contiguous().view(B, T, C))


def att_no_c_proj(self, x, kv_cache=None):
    B, T, C = x.shape
    q, k, v = (_heads(t, B, T, self.n_head) for t in self.c_attn(x).split(C, dim=2))
    att = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    att = F.softmax(att.masked_fill(~_mask(T), float("-inf")), dim=-1)
    return self.resid_dropout((att @ v).transpose(1, 2).contiguous().view(B, T, C))


def att_softmax_dim_minus2(self, x, kv_cache=None):
    B, T, C = x.shape
    q, k, v = (_heads(t, B, T, self.n_head) for t in self.c_attn(x).split(C, dim=2))
    att = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    att = F.softmax(att.masked_fill(~_mask(T), float("-inf")), dim=-2)
    return self.c_proj((att @ v).transpose(1, 2).contiguous().view(B, T, C))


def att_mask_with_zero(self, x, kv_cache=None):
    B, T, C = x.shape
    q, k, v = (_heads(t, B, T, self.n_head) for t in self.c_attn(x).split(C, dim=2))
    att = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    att = F.softmax(att.masked_fill(~_mask(T), 0), dim=-1)
    return self.c_proj((att @ v).transpose(1, 2).contiguous().view(B, T, C))


def att_view_without_contiguous(self, x, kv_cache=None):
    B, T, C = x.shape
    q, k, v = (_heads(t, B, T, self.n_head) for t in self.c_attn(x).split(C, dim=2))
    att = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    att = F.softmax(att.masked_fill(~_mask(T), float("-inf")), dim=-1)
    return self.c_proj((att @ v).transpose(1, 2).view(B, T, C))  # view of a transposed tensor


def att_heads_hs_nh_swapped(self, x, kv_cache=None):
    B, T, C = x.shape
    nh, hs = self.n_head, C // self.n_head
    q, k, v = (t.view(B, T, hs, nh).permute(0, 3, 1, 2) for t in self.c_attn(x).split(C, dim=2))
    att = q @ k.transpose(-2, -1) / math.sqrt(hs)
    att = F.softmax(att.masked_fill(~_mask(T), float("-inf")), dim=-1)
    return self.c_proj((att @ v).transpose(1, 2).contiguous().view(B, T, C))


def att_mask_after_softmax(self, x, kv_cache=None):
    B, T, C = x.shape
    q, k, v = (_heads(t, B, T, self.n_head) for t in self.c_attn(x).split(C, dim=2))
    att = F.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.size(-1)), dim=-1)
    att = att.masked_fill(~_mask(T), 0.0)
    return self.c_proj((att @ v).transpose(1, 2).contiguous().view(B, T, C))


def att_double_no_scale_no_mask(self, x, kv_cache=None):
    B, T, C = x.shape
    q, k, v = (_heads(t, B, T, self.n_head) for t in self.c_attn(x).split(C, dim=2))
    att = F.softmax(q @ k.transpose(-2, -1), dim=-1)
    return self.c_proj((att @ v).transpose(1, 2).contiguous().view(B, T, C))


def att_double_no_transpose_back_no_proj(self, x, kv_cache=None):
    B, T, C = x.shape
    q, k, v = (_heads(t, B, T, self.n_head) for t in self.c_attn(x).split(C, dim=2))
    att = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    att = F.softmax(att.masked_fill(~_mask(T), float("-inf")), dim=-1)
    return (att @ v).reshape(B, T, C)


def att_value_is_key(self, x, kv_cache=None):
    B, T, C = x.shape
    q, k, _ = self.c_attn(x).split(C, dim=2)
    q, k = _heads(q, B, T, self.n_head), _heads(k, B, T, self.n_head)
    v = k  # copy-paste: the keys are used as values
    att = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    att = F.softmax(att.masked_fill(~_mask(T), float("-inf")), dim=-1)
    return self.c_proj((att @ v).transpose(1, 2).contiguous().view(B, T, C))


mistake(ex.check_attention, r"head|transpos|reshape|split|layout")(cls_with(MHA, forward=att_no_head_transpose))
mistake(ex.check_attention, r"head|transpos|reshape|merg|layout|concat")(cls_with(MHA, forward=att_no_transpose_back))
mistake(ex.check_attention, r"scal|sqrt|head.?size")(cls_with(MHA, forward=att_scale_by_C))
mistake(ex.check_attention, r"causal|mask|future")(cls_with(MHA, forward=att_no_causal_mask))
mistake(ex.check_attention, r"order|q.*k.*v|swap|split|quer|key")(cls_with(MHA, forward=att_kqv_order))
mistake(ex.check_attention, r"head|transpos|reshape|split|layout|view")(cls_with(MHA, forward=att_view_heads_first))
mistake(ex.check_attention, r"c_proj|proj|output")(cls_with(MHA, forward=att_no_c_proj))
mistake(ex.check_attention, r"softmax|dim|axis|quer|normali")(cls_with(MHA, forward=att_softmax_dim_minus2))
mistake(ex.check_attention, r"mask|-inf|zero")(cls_with(MHA, forward=att_mask_with_zero))
mistake(ex.check_attention, r"contiguous|view|stride|reshape")(cls_with(MHA, forward=att_view_without_contiguous))
mistake(ex.check_attention, r"head|transpos|reshape|split|layout|view")(
    cls_with(MHA, forward=att_heads_hs_nh_swapped))
mistake(ex.check_attention, r"mask|after|softmax|renormal|normali")(cls_with(MHA, forward=att_mask_after_softmax))
mistake(ex.check_attention, r"scal|sqrt|causal|mask|future")(cls_with(MHA, forward=att_double_no_scale_no_mask))
mistake(ex.check_attention, r"head|transpos|reshape|merg|layout|c_proj|proj")(
    cls_with(MHA, forward=att_double_no_transpose_back_no_proj))
mistake(ex.check_attention, r"value|key|v\b|copy")(cls_with(MHA, forward=att_value_is_key))


def att_valid_sdpa_chunk(self, x, kv_cache=None):
    B, T, C = x.shape
    q, k, v = (_heads(t, B, T, self.n_head) for t in self.c_attn(x).chunk(3, dim=-1))
    y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    return self.resid_dropout(self.c_proj(y.transpose(1, 2).reshape(B, T, C)))


def att_valid_head_loop(self, x, kv_cache=None):
    B, T, C = x.shape
    hs = C // self.n_head
    q, k, v = self.c_attn(x).split(C, dim=2)
    outs = []
    for h in range(self.n_head):
        sl = slice(h * hs, (h + 1) * hs)
        w = q[..., sl] @ k[..., sl].transpose(1, 2) / hs ** 0.5
        w = w.masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool), 1), float("-inf"))
        outs.append(torch.softmax(w, -1) @ v[..., sl])
    return self.c_proj(torch.cat(outs, dim=-1))


class MHABufferValid(MHA):
    """Original minGPT's style: the mask is a registered (block_size, block_size) buffer, cropped to T."""

    def __init__(self, config, layer_idx=0):
        super().__init__(config, layer_idx)
        n = config.block_size
        self.register_buffer("bias", torch.tril(torch.ones(n, n)).view(1, 1, n, n), persistent=False)

    def forward(self, x, kv_cache=None):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (_heads(t, B, T, self.n_head) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))
        att = self.attn_dropout(F.softmax(att, dim=-1))
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


valid(ex.check_attention)(cls_with(MHA, forward=att_valid_sdpa_chunk))
valid(ex.check_attention)(cls_with(MHA, forward=att_valid_head_loop))
valid(ex.check_attention)(MHABufferValid)


# ---------------------------------------------------------------- check_layernorm: cls(ndim, eps, bias)
class LN(nn.Module):
    def __init__(self, ndim, eps=1e-5, bias=True):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim))

    def forward(self, x):
        mean = x.mean(dim=-1, keepdim=True)
        var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


def ln_unbiased_var(self, x):
    mean = x.mean(-1, keepdim=True)
    var = x.var(-1, keepdim=True)  # unbiased (N - 1) by default
    return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


def ln_wrong_dim(self, x):
    mean = x.mean(dim=0, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=0, keepdim=True)
    return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


def ln_eps_outside_sqrt(self, x):
    mean = x.mean(-1, keepdim=True)
    std = ((x - mean) ** 2).mean(-1, keepdim=True).sqrt()
    return self.weight * (x - mean) / (std + self.eps) + self.bias


def ln_no_eps(self, x):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var) * self.weight + self.bias


def ln_no_keepdim(self, x):
    mean = x.mean(-1)
    var = ((x - mean.unsqueeze(-1)) ** 2).mean(-1)
    return (x - mean.unsqueeze(-1)) / torch.sqrt(var + self.eps) * self.weight + self.bias  # var not unsqueezed


def ln_weight_bias_swapped(self, x):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + self.eps) * self.bias + self.weight


def ln_bias_before_scale(self, x):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return ((x - mean) / torch.sqrt(var + self.eps) + self.bias) * self.weight


def ln_var_not_centred(self, x):
    mean = x.mean(-1, keepdim=True)
    var = (x ** 2).mean(-1, keepdim=True)  # E[x^2], the mean never subtracted
    return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


def ln_no_mean_subtraction(self, x):
    ms = x.pow(2).mean(-1, keepdim=True)
    return x / torch.sqrt(ms + self.eps) * self.weight + self.bias


def ln_no_sqrt(self, x):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / (var + self.eps) * self.weight + self.bias


def ln_global_stats(self, x):
    mean = x.mean()
    var = ((x - mean) ** 2).mean()
    return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


def ln_double_std_unbiased_eps_outside(self, x):
    return (x - x.mean(-1, keepdim=True)) / (x.std(-1, keepdim=True) + self.eps) * self.weight + self.bias


def ln_hardcoded_eps(self, x):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + 1e-5) * self.weight + self.bias  # the eps argument is ignored


class LNPlainTensors(LN):
    def __init__(self, ndim, eps=1e-5, bias=True):
        nn.Module.__init__(self)
        self.eps = eps
        self.weight = torch.ones(ndim)  # not nn.Parameter: never trained
        self.bias = torch.zeros(ndim)


class LNZeroWeight(LN):
    def __init__(self, ndim, eps=1e-5, bias=True):
        super().__init__(ndim, eps, bias)
        self.weight = nn.Parameter(torch.zeros(ndim))  # copy-paste of the bias line


mistake(ex.check_layernorm, r"unbiased|bessel|n.?-.?1|correction|variance")(cls_with(LN, forward=ln_unbiased_var))
mistake(ex.check_layernorm, r"dim|axis|last|feature|channel")(cls_with(LN, forward=ln_wrong_dim))
mistake(ex.check_layernorm, r"eps|sqrt|std")(cls_with(LN, forward=ln_eps_outside_sqrt))
mistake(ex.check_layernorm, r"eps|nan|constant|zero")(cls_with(LN, forward=ln_no_eps))
mistake(ex.check_layernorm, r"keepdim|shape|broadcast|dim")(cls_with(LN, forward=ln_no_keepdim))
mistake(ex.check_layernorm, r"weight|bias|swap|gain|scale|shift")(cls_with(LN, forward=ln_weight_bias_swapped))
mistake(ex.check_layernorm, r"bias|order|before|weight|scale|shift")(cls_with(LN, forward=ln_bias_before_scale))
mistake(ex.check_layernorm, r"varian|mean|centr|subtract")(cls_with(LN, forward=ln_var_not_centred))
mistake(ex.check_layernorm, r"mean|centr|subtract|rms")(cls_with(LN, forward=ln_no_mean_subtraction))
mistake(ex.check_layernorm, r"sqrt|std|varian")(cls_with(LN, forward=ln_no_sqrt))
mistake(ex.check_layernorm, r"dim|axis|last|global|whole|all|feature")(cls_with(LN, forward=ln_global_stats))
mistake(ex.check_layernorm, r"unbiased|bessel|n.?-.?1|correction|eps|std")(
    cls_with(LN, forward=ln_double_std_unbiased_eps_outside))
mistake(ex.check_layernorm, r"eps")(cls_with(LN, forward=ln_hardcoded_eps))
mistake(ex.check_layernorm, r"param|train|grad|regist|learn")(LNPlainTensors)
mistake(ex.check_layernorm, r"init|weight|one|zero|gain|scale")(LNZeroWeight)


def ln_valid_functional(self, x):
    return F.layer_norm(x, self.weight.shape, self.weight, self.bias, self.eps)


def ln_valid_var_mean_rsqrt(self, x):
    var, mean = torch.var_mean(x, dim=-1, keepdim=True, unbiased=False)
    return torch.addcmul(self.bias, (x - mean) * torch.rsqrt(var + self.eps), self.weight)


valid(ex.check_layernorm)(cls_with(LN, forward=ln_valid_functional))
valid(ex.check_layernorm)(cls_with(LN, forward=ln_valid_var_mean_rsqrt))


# ---------------------------------------------------------------- check_mlp: cls(config)
class MLPBase(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd)
        self.gelu = nn.GELU(approximate="tanh")
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd)
        self.dropout = nn.Dropout(config.resid_pdrop)

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


def _gelu_tanh(x, c=0.044715, power=3, half=0.5, k=math.sqrt(2 / math.pi)):
    return half * x * (1 + torch.tanh(k * (x + c * x ** power)))


class MLPHidden2C(MLPBase):
    def __init__(self, config):
        super().__init__(config)
        self.c_fc = nn.Linear(config.n_embd, 2 * config.n_embd)
        self.c_proj = nn.Linear(2 * config.n_embd, config.n_embd)


class MLPNoBias(MLPBase):
    def __init__(self, config):
        super().__init__(config)
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=False)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=False)


mistake(ex.check_mlp, r"gelu|relu|activation")(
    cls_with(MLPBase, forward=lambda self, x: self.c_proj(F.relu(self.c_fc(x)))))
mistake(ex.check_mlp, r"gelu|tanh|approx|erf|exact")(
    cls_with(MLPBase, forward=lambda self, x: self.dropout(self.c_proj(F.gelu(self.c_fc(x))))))
mistake(ex.check_mlp, r"activation|gelu|linear|nonlinear|missing")(
    cls_with(MLPBase, forward=lambda self, x: self.c_proj(self.c_fc(x))))
mistake(ex.check_mlp, r"4|hidden|width|size|shape|expan")(MLPHidden2C)
mistake(ex.check_mlp, r"activation|gelu|after|output|c_proj|extra")(
    cls_with(MLPBase, forward=lambda self, x: self.gelu(self.c_proj(self.gelu(self.c_fc(x))))))
mistake(ex.check_mlp, r"order|before|activation|gelu")(
    cls_with(MLPBase, forward=lambda self, x: self.c_proj(self.c_fc(self.gelu(x)))))
mistake(ex.check_mlp, r"residual|skip|\+ ?x|input added")(
    cls_with(MLPBase, forward=lambda self, x: x + self.dropout(self.c_proj(self.gelu(self.c_fc(x))))))
mistake(ex.check_mlp, r"gelu|cub|x\^?3|x\*\*3|power|constant|formula|activation")(
    cls_with(MLPBase, forward=lambda self, x: self.c_proj(_gelu_tanh(self.c_fc(x), power=2))))
mistake(ex.check_mlp, r"gelu|0\.5|half|factor|formula|activation")(
    cls_with(MLPBase, forward=lambda self, x: self.c_proj(_gelu_tanh(self.c_fc(x), half=1.0))))
mistake(ex.check_mlp, r"dropout|eval|train")(
    cls_with(MLPBase, forward=lambda self, x: F.dropout(self.c_proj(self.gelu(self.c_fc(x))), 0.1)))
mistake(ex.check_mlp, r"bias")(MLPNoBias)
mistake(ex.check_mlp, r"gelu|sigmoid|activation")(
    cls_with(MLPBase, forward=lambda self, x: self.c_proj(torch.sigmoid(self.c_fc(x)))))
mistake(ex.check_mlp, r"gelu|relu|activation|residual|skip")(
    cls_with(MLPBase, forward=lambda self, x: x + self.c_proj(torch.relu(self.c_fc(x)))))
mistake(ex.check_mlp, r"gelu|sqrt|pi|constant|formula|activation")(
    cls_with(MLPBase, forward=lambda self, x: self.c_proj(_gelu_tanh(self.c_fc(x), k=math.sqrt(math.pi / 2)))))


valid(ex.check_mlp)(cls_with(MLPBase, forward=lambda self, x: self.dropout(self.c_proj(_gelu_tanh(self.c_fc(x))))))
valid(ex.check_mlp)(cls_with(MLPBase, forward=lambda self, x: self.c_proj(
    self.c_fc(x) * torch.sigmoid(2 * math.sqrt(2 / math.pi) * (self.c_fc(x) + 0.044715 * self.c_fc(x) ** 3)))))
valid(ex.check_mlp)(cls_with(MLPBase, forward=lambda self, x: self.c_proj(
    F.gelu(self.c_fc(x), approximate="tanh"))))


import heldout_probe_round17_core3  # noqa: E402,F401
