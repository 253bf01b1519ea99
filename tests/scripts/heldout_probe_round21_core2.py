"""Round 21, core part 2: attention (class), LayerNorm, MLP. Imported by heldout_probe_round21_core.py."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import mingpt.exercises as ex
from heldout_probe_models import mistake, valid


# ------------------------------------------------------------------------------------------ attention (class)
class _A(nn.Module):
    def __init__(self, config, layer_idx=0):
        super().__init__()
        self.n_head = config.n_head
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)
        self.attn_dropout = nn.Dropout(config.attn_pdrop)
        self.resid_dropout = nn.Dropout(config.resid_pdrop)

    def heads(self, t, B, T, C):
        return t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)

    def qkv(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        return self.heads(q, B, T, C), self.heads(k, B, T, C), self.heads(v, B, T, C)

    def scores(self, q, k):
        return q @ k.transpose(-2, -1) / math.sqrt(k.size(-1))

    def mask(self, att):
        T = att.size(-1)
        return att.masked_fill(~torch.ones(T, T, dtype=torch.bool, device=att.device).tril(), float("-inf"))

    def probs(self, att):
        return F.softmax(att, dim=-1)

    def merge(self, y, B, T, C):
        return y.transpose(1, 2).contiguous().view(B, T, C)

    def forward(self, x, kv_cache=None):
        B, T, C = x.shape
        q, k, v = self.qkv(x)
        att = self.attn_dropout(self.probs(self.mask(self.scores(q, k))))
        return self.resid_dropout(self.c_proj(self.merge(att @ v, B, T, C)))


def _attn(name, **methods):
    return type(name, (_A,), methods)


def _causal(T, diag=0):
    return torch.ones(T, T, dtype=torch.bool).tril(diag)


def _last_head_unscaled(self, q, k):
    s = q @ k.transpose(-2, -1) / math.sqrt(k.size(-1))
    return torch.cat([s[:, :-1], (q[:, -1:] @ k[:, -1:].transpose(-2, -1))], 1)


def _k_heads_no_transpose(self, x):  # k reshaped straight to (B, nh, T, hs): mixes time and heads; q, v right
    B, T, C = x.shape
    q, k, v = self.c_attn(x).split(C, dim=2)
    return self.heads(q, B, T, C), k.reshape(B, self.n_head, T, C // self.n_head), self.heads(v, B, T, C)


def _qvk(self, x):
    B, T, C = x.shape
    q, v, k = self.c_attn(x).split(C, dim=2)  # k and v swapped (q right)
    return self.heads(q, B, T, C), self.heads(k, B, T, C), self.heads(v, B, T, C)


def _first_head_unmasked(self, att):
    T = att.size(-1)
    m = att.masked_fill(~_causal(T), float("-inf"))
    return torch.cat([att[:, :1], m[:, 1:]], 1)


def _first_row_masked_only(self, att):
    T = att.size(-1)
    m = att.masked_fill(~_causal(T), float("-inf"))
    return torch.cat([m[:1], att[1:]], 0)


for _name, _rx, _m in [
    # attn_scale_sqrt_C: "wrong scaling factor" (the message gives 1/3.464, not hs): fair; attn_fill_minus_1: "future
    # leakage", a mask that lets the future through: fair
    ("attn_scale_sqrt_C", r"sqrt\(?C|n_embd|scal", {"scores": lambda self, q, k: q @ k.transpose(-2, -1)
                                                     / math.sqrt(self.c_proj.in_features)}),
    ("attn_scale_hs", r"scale|hs", {"scores": lambda self, q, k: q @ k.transpose(-2, -1) / k.size(-1)}),
    ("attn_mask_diag_1", r"mask|diag|future|off", {"mask": lambda self, att: att.masked_fill(
        ~_causal(att.size(-1), 1), float("-inf"))}),
    ("attn_mask_diag_2", r"mask|diag|future|off", {"mask": lambda self, att: att.masked_fill(
        ~_causal(att.size(-1), 2), float("-inf"))}),
    ("attn_last_head_unscaled", r"(last|one|single).*head|head.*(scale|sqrt)|partial", {"scores": _last_head_unscaled}),
    ("attn_first_head_unmasked", r"(first|one|single).*head|head.*mask|partial", {"mask": _first_head_unmasked}),
    ("attn_mask_first_batch_row_only", r"batch|row", {"mask": _first_row_masked_only}),
    # "future leakage" whose message names a reshape across the time axis: fair
    ("attn_k_reshaped_without_transpose", r"k\b|key|split|reshape|head|transpose|leak",
     {"qkv": _k_heads_no_transpose}),
    ("attn_k_v_swapped", r"swap|order|k.*v|v.*k|split", {"qkv": _qvk}),
    ("attn_merge_hs_major", r"merge|head|transpose|permute|order", {"merge": lambda self, y, B, T, C: y.permute(
        0, 2, 3, 1).reshape(B, T, C)}),
    ("attn_softmax_over_heads", r"dim|axis|softmax|head", {"probs": lambda self, att: F.softmax(
        att.masked_fill(att == float("-inf"), -1e9), dim=1)}),
    ("attn_softmax_over_queries", r"dim|axis|softmax|quer|column", {"probs": lambda self, att: F.softmax(
        att, dim=-2).nan_to_num(0.0)}),
    ("attn_scale_sqrt_C_and_no_mask", r"(scale|sqrt).*(mask|caus)|(mask|caus).*(scale|sqrt)|and|also", {
        "scores": lambda self, q, k: q @ k.transpose(-2, -1) / math.sqrt(self.c_proj.in_features),
        "mask": lambda self, att: att}),
    ("attn_fill_minus_1", r"fill|finite|mask value|-1|leak", {"mask": lambda self, att: att.masked_fill(
        ~_causal(att.size(-1)), -1.0)}),
]:
    mistake(ex.check_attention, _rx)(_attn(_name, **_m))


@mistake(ex.check_attention, r"value|v\b|k\b|key")
class attn_weights_times_k(_A):  # att @ k instead of att @ v
    def forward(self, x, kv_cache=None):
        B, T, C = x.shape
        q, k, v = self.qkv(x)
        return self.c_proj(self.merge(self.probs(self.mask(self.scores(q, k))) @ k, B, T, C))


@mistake(ex.check_attention, r"bias|c_proj")
class attn_c_proj_no_bias(_A):
    def forward(self, x, kv_cache=None):
        B, T, C = x.shape
        q, k, v = self.qkv(x)
        y = self.merge(self.probs(self.mask(self.scores(q, k))) @ v, B, T, C)
        return F.linear(y, self.c_proj.weight)


valid(ex.check_attention)(_attn("attn_valid_additive_mask", mask=lambda self, att: att + torch.full(
    (att.size(-1), att.size(-1)), float("-inf")).triu(1)))


@valid(ex.check_attention)
class attn_valid_sdpa(_A):
    def forward(self, x, kv_cache=None):
        B, T, C = x.shape
        q, k, v = self.qkv(x)
        return self.c_proj(self.merge(F.scaled_dot_product_attention(q, k, v, is_causal=True), B, T, C))


@valid(ex.check_attention)
class attn_valid_head_loop(_A):
    def forward(self, x, kv_cache=None):
        B, T, C = x.shape
        hs = C // self.n_head
        q, k, v = self.c_attn(x).split(C, dim=2)
        outs = []
        for h in range(self.n_head):
            sl = slice(h * hs, (h + 1) * hs)
            s = torch.einsum("btd,bsd->bts", q[..., sl], k[..., sl]) / hs ** 0.5
            s = s.masked_fill(~_causal(T), float("-inf"))
            e = (s - s.amax(-1, keepdim=True)).exp()
            outs.append((e / e.sum(-1, keepdim=True)) @ v[..., sl])
        return self.c_proj(torch.cat(outs, -1))


# ------------------------------------------------------------------------------------------ LayerNorm
class _LN(nn.Module):
    def __init__(self, ndim, eps=1e-5, bias=True):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim))


def _ln(name, fwd):
    return type(name, (_LN,), {"forward": fwd})


def _m(x, d=-1):
    return x.mean(d, keepdim=True)


def _v(x, d=-1):
    return ((x - _m(x, d)) ** 2).mean(d, keepdim=True)


for _name, _rx, _f in [
    ("ln_eps_1e3", r"eps", lambda self, x: (x - _m(x)) / torch.sqrt(_v(x) + 1e-3) * self.weight + self.bias),
    ("ln_eps_squared", r"eps", lambda self, x: (x - _m(x)) / torch.sqrt(_v(x) + self.eps ** 2) * self.weight
     + self.bias),
    ("ln_eps_plus_sqrt_eps", r"eps", lambda self, x: (x - _m(x)) / (torch.sqrt(_v(x)) + math.sqrt(self.eps))
     * self.weight + self.bias),
    ("ln_var_n_plus_1", r"var|n ?\+ ?1|denominator|count|bessel|unbias",
     lambda self, x: (x - _m(x)) / torch.sqrt(((x - _m(x)) ** 2).sum(-1, keepdim=True) / (x.size(-1) + 1)
                                             + self.eps) * self.weight + self.bias),
    ("ln_over_batch", r"dim|axis|batch", lambda self, x: (x - _m(x, 0)) / torch.sqrt(_v(x, 0) + self.eps)
     * self.weight + self.bias),
    ("ln_var_over_time_only", r"var.*(dim|axis|time)|(dim|axis|time).*var",
     lambda self, x: (x - _m(x)) / torch.sqrt(_v(x, -2) + self.eps) * self.weight + self.bias),
    ("ln_weight_bias_swapped", r"swap|weight.*bias|bias.*weight",
     lambda self, x: (x - _m(x)) / torch.sqrt(_v(x) + self.eps) * self.bias + self.weight),
    ("ln_bias_subtracted", r"bias|sign|subtract",
     lambda self, x: (x - _m(x)) / torch.sqrt(_v(x) + self.eps) * self.weight - self.bias),
    ("ln_not_centred", r"mean|cent", lambda self, x: x / torch.sqrt(_v(x) + self.eps) * self.weight + self.bias),
    ("ln_sqrt_of_std", r"std|sqrt|var", lambda self, x: (x - _m(x)) / torch.sqrt(_v(x).sqrt() + self.eps)
     * self.weight + self.bias),
    ("ln_one_plus_weight", r"weight|gain|scale|1 ?\+",
     lambda self, x: (x - _m(x)) / torch.sqrt(_v(x) + self.eps) * (1 + self.weight) + self.bias),
    ("ln_bias_before_weight", r"order|bias.*(before|weight)|weight",
     lambda self, x: ((x - _m(x)) / torch.sqrt(_v(x) + self.eps) + self.bias) * self.weight),
    ("ln_eps_1e3_and_unbiased", r"(eps.*(var|unbias|bessel))|((var|unbias|bessel).*eps)|and|also",
     lambda self, x: (x - _m(x)) / torch.sqrt(x.var(-1, keepdim=True) + 1e-3) * self.weight + self.bias),
    ("ln_weight_on_first_half_only", r"weight.*(half|part|some)|partial|weight",
     lambda self, x: (x - _m(x)) / torch.sqrt(_v(x) + self.eps) * torch.cat(
         [self.weight[: x.size(-1) // 2], torch.ones_like(self.weight[x.size(-1) // 2:])]) + self.bias),
]:
    mistake(ex.check_layernorm, _rx)(_ln(_name, _f))

valid(ex.check_layernorm)(_ln("ln_valid_F", lambda self, x: F.layer_norm(x, (x.size(-1),), self.weight,
                                                                           self.bias, self.eps)))
valid(ex.check_layernorm)(_ln("ln_valid_var_mean_rsqrt", lambda self, x: (lambda vm: (x - vm[1]) * torch.rsqrt(
    vm[0] + self.eps) * self.weight + self.bias)(torch.var_mean(x, -1, unbiased=False, keepdim=True))))
valid(ex.check_layernorm)(_ln("ln_valid_addcmul", lambda self, x: torch.addcmul(
    self.bias, (x - _m(x)) / (_v(x) + self.eps).sqrt(), self.weight)))


# ------------------------------------------------------------------------------------------ MLP
class _M(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd)
        self.dropout = nn.Dropout(config.resid_pdrop)


def _gelu(h, c=math.sqrt(2 / math.pi), a=0.044715, half=0.5):
    return half * h * (1 + torch.tanh(c * (h + a * h ** 3)))


def _mlp(name, act=None, fwd=None):
    if fwd is None:
        def fwd(self, x):
            return self.dropout(self.c_proj(act(self.c_fc(x))))
    return type(name, (_M,), {"forward": fwd})


for _name, _rx, _act in [
    ("mlp_gelu_coef_typo", r"constant|coef|0\.0447|cube|gelu", lambda h: _gelu(h, a=0.0447 * 10)),
    ("mlp_gelu_no_half", r"0\.5|half|factor|scale|2", lambda h: _gelu(h, half=1.0)),
    ("mlp_gelu_const_pi_over_2", r"constant|sqrt|pi|gelu", lambda h: _gelu(h, c=math.sqrt(math.pi / 2))),
    ("mlp_gelu_twice", r"twice|double|two", lambda h: F.gelu(F.gelu(h, approximate="tanh"), approximate="tanh")),
    ("mlp_sigmoid_1_5", r"sigmoid|approx|1\.5|constant", lambda h: h * torch.sigmoid(1.5 * h)),
    ("mlp_leaky_relu", r"leaky|relu", lambda h: F.leaky_relu(h, 0.1)),
    ("mlp_gelu_first_half_units", r"half|part|some|unit", lambda h: torch.cat(
        [F.gelu(h[..., : h.size(-1) // 2], approximate="tanh"), h[..., h.size(-1) // 2:]], -1)),
    ("mlp_gelu_of_scaled", r"scale|input|factor|2", lambda h: F.gelu(2 * h, approximate="tanh")),
]:
    mistake(ex.check_mlp, _rx)(_mlp(_name, act=_act))

mistake(ex.check_mlp, r"after|c_proj|order|output")(_mlp("mlp_gelu_after_both", fwd=lambda self, x: F.gelu(
    self.c_proj(F.gelu(self.c_fc(x), approximate="tanh")), approximate="tanh")))
mistake(ex.check_mlp, r"residual|skip|add|input")(_mlp("mlp_with_residual", fwd=lambda self, x: x + self.c_proj(
    F.gelu(self.c_fc(x), approximate="tanh"))))
mistake(ex.check_mlp, r"bias|c_fc")(_mlp("mlp_c_fc_no_bias", fwd=lambda self, x: self.c_proj(
    F.gelu(F.linear(x, self.c_fc.weight), approximate="tanh"))))
mistake(ex.check_mlp, r"(relu.*bias)|(bias.*relu)|and|also")(_mlp("mlp_relu_and_no_proj_bias", fwd=lambda self, x:
                                                                   F.linear(F.relu(self.c_fc(x)), self.c_proj.weight)))
mistake(ex.check_mlp, r"last|position|partial|some")(_mlp("mlp_skips_last_position", fwd=lambda self, x: torch.cat(
    [self.c_proj(F.gelu(self.c_fc(x[:, :-1]), approximate="tanh")), torch.zeros_like(x[:, -1:])], 1)))


@mistake(ex.check_mlp, r"expan|hidden|4|size|shape|width")
class mlp_expand_2C(_M):
    def __init__(self, config):
        super().__init__(config)
        self.c_fc = nn.Linear(config.n_embd, 2 * config.n_embd)
        self.c_proj = nn.Linear(2 * config.n_embd, config.n_embd)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))


valid(ex.check_mlp)(_mlp("mlp_valid_formula_pow", act=lambda h: h * 0.5 * (1.0 + torch.tanh(
    math.sqrt(2.0 / math.pi) * (h + 0.044715 * torch.pow(h, 3.0))))))
valid(ex.check_mlp)(_mlp("mlp_valid_sigmoid_form", act=lambda h: h * torch.sigmoid(
    2 * math.sqrt(2 / math.pi) * (h + 0.044715 * h ** 3))))  # 0.5(1+tanh z) == sigmoid(2z)
valid(ex.check_mlp)(_mlp("mlp_valid_addmm", fwd=lambda self, x: torch.matmul(F.gelu(
    x @ self.c_fc.weight.T + self.c_fc.bias, approximate="tanh"), self.c_proj.weight.T) + self.c_proj.bias))


import heldout_probe_round21_core3  # noqa: E402,F401
