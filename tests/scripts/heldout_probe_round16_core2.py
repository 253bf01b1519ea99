"""The held-out probe, round 16, core part 2: attention weights, attention (see heldout_probe_round16_core.py)."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import mingpt.exercises as ex
from heldout_probe_models import cls_with, mistake, valid


# ============================================================================================ check_attention_weights
def _tril(T, device=None):
    return torch.ones(T, T, dtype=torch.bool, device=device).tril()


@mistake(ex.check_attention_weights, r"scal|sqrt")
def attw_scaled_by_sqrt_T(q, k):  # sqrt of the sequence length, not of the head size
    T = q.size(1)
    s = (q @ k.transpose(-2, -1) / math.sqrt(T)).masked_fill(~_tril(T), float("-inf"))
    return F.softmax(s, dim=-1)


@mistake(ex.check_attention_weights, r"scal|sqrt")
def attw_unscaled(q, k):
    T = q.size(1)
    return F.softmax((q @ k.transpose(-2, -1)).masked_fill(~_tril(T), float("-inf")), dim=-1)


@mistake(ex.check_attention_weights, r"scal|sqrt")
def attw_divided_by_hs(q, k):
    T = q.size(1)
    s = (q @ k.transpose(-2, -1) / q.size(-1)).masked_fill(~_tril(T), float("-inf"))
    return F.softmax(s, dim=-1)


@mistake(ex.check_attention_weights, r"mask|causal|future")
def attw_mask_result_discarded(q, k):  # masked_fill is out of place: its result thrown away
    T = q.size(1)
    s = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    s.masked_fill(~_tril(T), float("-inf"))
    return F.softmax(s, dim=-1)


@mistake(ex.check_attention_weights, r"triu|future|mask|causal|upper|direction|anti")
def attw_triu(q, k):
    T = q.size(1)
    s = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    s = s.masked_fill(~torch.ones(T, T, dtype=torch.bool).triu(), float("-inf"))
    return F.softmax(s, dim=-1)


@mistake(ex.check_attention_weights, r"diagonal|self|mask|nan")
def attw_tril_diagonal_minus_1(q, k):  # the diagonal masked too: a token may not see itself, row 0 sees nothing
    T = q.size(1)
    s = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    s = s.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(diagonal=-1), float("-inf"))
    return F.softmax(s, dim=-1)


@mistake(ex.check_attention_weights, r"dim|softmax|axis|batch|normali")
def attw_softmax_no_dim(q, k):  # implicit dim on 3-D is 0: normalised over the batch
    T = q.size(1)
    s = (q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))).masked_fill(~_tril(T), float("-inf"))
    return F.softmax(s)


@mistake(ex.check_attention_weights, r"dim|axis|column|quer|normali")
def attw_softmax_axis_1(q, k):  # numpy's axis=1: over the queries
    T = q.size(1)
    s = (q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))).masked_fill(~_tril(T), float("-inf"))
    return F.softmax(s, dim=1)


@mistake(ex.check_attention_weights, r"reshape|view|transpose")
def attw_view_as_transpose(q, k):  # k.view(B, hs, T) is not k transposed
    B, T, hs = k.shape
    s = (q @ k.view(B, hs, T) / math.sqrt(hs)).masked_fill(~_tril(T), float("-inf"))
    return F.softmax(s, dim=-1)


@mistake(ex.check_attention_weights, r"mask|-inf|zero|future|fill")
def attw_masked_with_zero(q, k):  # 0 is no mask: exp(0) = 1 still counts
    T = q.size(1)
    s = (q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))).masked_fill(~_tril(T), 0.0)
    return F.softmax(s, dim=-1)


@mistake(ex.check_attention_weights, r"after|renormal|sum|mask")
def attw_mask_after_softmax(q, k):  # future weights zeroed after the softmax: rows no longer sum to 1
    T = q.size(1)
    w = F.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.size(-1)), dim=-1)
    return w.masked_fill(~_tril(T), 0.0)


@mistake(ex.check_attention_weights, r"mask|invert|keep|revers|future|nan")
def attw_hf_keep_mask_inverted(q, k):  # HF's attention_mask is 1 = keep; filled where it is 1
    T = q.size(1)
    keep = torch.tril(torch.ones(T, T))
    s = (q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))).masked_fill(keep.bool(), float("-inf"))
    return F.softmax(s, dim=-1)


@mistake(ex.check_attention_weights, r"keepdim|normali|sum|broadcast")
def attw_manual_softmax_keepdim_forgotten(q, k):
    T = q.size(1)
    s = (q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))).masked_fill(~_tril(T), float("-inf"))
    e = torch.exp(s - s.amax(dim=-1, keepdim=True))
    return e / e.sum(dim=-1)


@mistake(ex.check_attention_weights, r"grad|numpy|detach|dtype|float64|double")
def attw_numpy(q, k):  # numpy's float64 maths, the graph lost
    qn, kn = q.detach().numpy().astype(np.float64), k.detach().numpy().astype(np.float64)
    T = qn.shape[1]
    s = qn @ kn.transpose(0, 2, 1) / np.sqrt(qn.shape[-1])
    s = np.where(np.tril(np.ones((T, T))) == 1, s, -np.inf)
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return torch.from_numpy(e / e.sum(axis=-1, keepdims=True))


@mistake(ex.check_attention_weights, r"transpos|swap|key|quer|k @ q")  # widened: "k @ q^T instead of q @ k^T" names it
def attw_keys_dot_queries(q, k):  # k @ q^T: scores[i, j] = k_i . q_j
    T = q.size(1)
    s = (k @ q.transpose(-2, -1) / math.sqrt(q.size(-1))).masked_fill(~_tril(T), float("-inf"))
    return F.softmax(s, dim=-1)


@valid(ex.check_attention_weights)
def attw_big_negative_fill(q, k):  # -1e9 rather than -inf: exp underflows to exactly 0
    T = q.size(1)
    s = torch.matmul(q, k.mT) * q.size(-1) ** -0.5
    s = s.masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool, device=q.device), diagonal=1), -1e9)
    return s.softmax(-1)


@valid(ex.check_attention_weights)
def attw_loop_per_row(q, k):  # one query row at a time, over keys 0..t only
    B, T, hs = q.shape
    out = q.new_zeros(B, T, T)
    for t in range(T):
        s = torch.einsum("bd,bsd->bs", q[:, t], k[:, : t + 1]) / math.sqrt(hs)
        out[:, t, : t + 1] = torch.softmax(s, dim=-1)
    return out


@valid(ex.check_attention_weights)
def attw_sdpa_identity_values(q, k):  # the weights read off SDPA by attending over an identity matrix of values
    B, T, _ = q.shape
    eye = torch.eye(T, dtype=q.dtype, device=q.device).expand(B, T, T)
    return F.scaled_dot_product_attention(q, k, eye, is_causal=True)


# ============================================================================================ check_attention
class _MHA(nn.Module):
    def __init__(self, config, layer_idx=0):
        super().__init__()
        self.n_head = config.n_head
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)
        self.attn_dropout = nn.Dropout(config.attn_pdrop)
        self.resid_dropout = nn.Dropout(config.resid_pdrop)

    def heads(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        return [t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v)]

    def merge(self, y):
        B, nh, T, hs = y.shape
        return y.transpose(1, 2).contiguous().view(B, T, nh * hs)

    def forward(self, x, kv_cache=None):
        q, k, v = self.heads(x)
        T = x.size(1)
        att = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
        att = att.masked_fill(~torch.ones(T, T, dtype=torch.bool, device=x.device).tril(), float("-inf"))
        att = self.attn_dropout(F.softmax(att, dim=-1))
        return self.resid_dropout(self.c_proj(self.merge(att @ v)))


def _causal(T, device=None):
    return torch.ones(T, T, dtype=torch.bool, device=device).tril()


def _attend(q, k, v, scale=None, mask=None, dim=-1):
    T = q.size(-2)
    att = q @ k.transpose(-2, -1) * (scale if scale is not None else 1 / math.sqrt(q.size(-1)))
    att = att.masked_fill(~(_causal(T, q.device) if mask is None else mask), float("-inf"))
    return F.softmax(att, dim=dim) @ v


def _fwd_proj_xw(self, x, kv_cache=None):  # Keras' x @ W habit on a Linear's (out, in) weight
    q, k, v = self.heads(x)
    return self.merge(_attend(q, k, v)) @ self.c_proj.weight + self.c_proj.bias


def _fwd_scale_d_model(self, x, kv_cache=None):  # the paper's d_k read as d_model
    q, k, v = self.heads(x)
    return self.c_proj(self.merge(_attend(q, k, v, scale=1 / math.sqrt(x.size(-1)))))


def _fwd_split_heads_by_view(self, x, kv_cache=None):  # view straight to (B, nh, T, hs): no transpose
    B, T, C = x.shape
    q, k, v = (t.reshape(B, self.n_head, T, C // self.n_head) for t in self.c_attn(x).split(C, dim=2))
    return self.c_proj(self.merge(_attend(q, k, v)))


def _fwd_merge_without_transpose(self, x, kv_cache=None):  # (B, nh, T, hs) reshaped straight to (B, T, C)
    q, k, v = self.heads(x)
    return self.c_proj(_attend(q, k, v).reshape(x.shape))


def _fwd_kqv_order(self, x, kv_cache=None):  # the fused projection unpacked in another order
    k, q, v = self.heads(x)
    return self.c_proj(self.merge(_attend(q, k, v)))


def _fwd_mask_discarded(self, x, kv_cache=None):  # masked_fill's result thrown away
    q, k, v = self.heads(x)
    T = x.size(1)
    att = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    att.masked_fill(~_causal(T, x.device), float("-inf"))
    return self.c_proj(self.merge(F.softmax(att, dim=-1) @ v))


def _fwd_triu(self, x, kv_cache=None):
    q, k, v = self.heads(x)
    T = x.size(1)
    return self.c_proj(self.merge(_attend(q, k, v, mask=torch.ones(T, T, dtype=torch.bool).triu())))


def _fwd_softmax_dim_minus_2(self, x, kv_cache=None):
    q, k, v = self.heads(x)
    return self.c_proj(self.merge(_attend(q, k, v, dim=-2)))


def _fwd_no_c_proj(self, x, kv_cache=None):
    q, k, v = self.heads(x)
    return self.merge(_attend(q, k, v))


def _fwd_residual_inside(self, x, kv_cache=None):
    q, k, v = self.heads(x)
    return x + self.c_proj(self.merge(_attend(q, k, v)))


def _fwd_dropout_hard_coded(self, x, kv_cache=None):  # F.dropout's training=True default: on in eval too
    q, k, v = self.heads(x)
    T = x.size(1)
    att = (q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))).masked_fill(~_causal(T), float("-inf"))
    return self.c_proj(self.merge(F.dropout(F.softmax(att, dim=-1), 0.1) @ v))


def _fwd_hf_keep_mask_inverted(self, x, kv_cache=None):  # 1 = keep, filled where it is 1
    q, k, v = self.heads(x)
    T = x.size(1)
    keep = torch.tril(torch.ones(T, T))
    att = (q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))).masked_fill(keep == 1, float("-inf"))
    return self.c_proj(self.merge(F.softmax(att, dim=-1) @ v))


def _fwd_qkv_under_no_grad(self, x, kv_cache=None):  # "the projections are just a lookup": no gradient to c_attn
    with torch.no_grad():
        q, k, v = self.heads(x)
    return self.c_proj(self.merge(_attend(q, k, v)))


for _name, _fwd, _expect in [
    ("AttnProjXTimesW", _fwd_proj_xw, r"transpos|weight|layout|c_proj|proj"),
    ("AttnScaleDModel", _fwd_scale_d_model, r"scal|sqrt|head.?size|d_k"),
    ("AttnSplitHeadsByView", _fwd_split_heads_by_view, r"reshape|view|transpose|head|split"),
    ("AttnMergeWithoutTranspose", _fwd_merge_without_transpose, r"merge|transpose|reshape|head|concat"),
    ("AttnKQVOrder", _fwd_kqv_order, r"order|split|swap|q.*k|k.*q"),
    ("AttnMaskDiscarded", _fwd_mask_discarded, r"mask|causal|future"),
    ("AttnTriu", _fwd_triu, r"mask|causal|future|triu|upper"),
    ("AttnSoftmaxDimMinus2", _fwd_softmax_dim_minus_2, r"dim|softmax|axis|normali"),
    ("AttnNoCProj", _fwd_no_c_proj, r"proj|output"),
    ("AttnResidualInside", _fwd_residual_inside, r"residual|add|input"),
    ("AttnDropoutHardCoded", _fwd_dropout_hard_coded, r"dropout|eval|train|random|determin"),
    ("AttnHFKeepMaskInverted", _fwd_hf_keep_mask_inverted, r"mask|invert|future|causal|keep|nan"),
    ("AttnQKVUnderNoGrad", _fwd_qkv_under_no_grad, r"grad|detach|no_grad"),
]:
    mistake(ex.check_attention, _expect)(cls_with(_MHA, forward=_fwd, name=_name))


@mistake(ex.check_attention, r"bias")
class AttnNoBias(_MHA):  # Llama habit: projections without bias
    def __init__(self, config, layer_idx=0):
        super().__init__(config, layer_idx)
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=False)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=False)


@valid(ex.check_attention)
class AttnMaskBuffer(_MHA):  # the original minGPT's registered mask (non-persistent), sliced to T
    def __init__(self, config, layer_idx=0):
        super().__init__(config, layer_idx)
        n = config.block_size or 64
        self.register_buffer("mask", torch.tril(torch.ones(n, n)).view(1, 1, n, n), persistent=False)

    def forward(self, x, kv_cache=None):
        q, k, v = self.heads(x)
        T = x.size(1)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = att.masked_fill(self.mask[:, :, :T, :T] == 0, float("-inf"))
        return self.resid_dropout(self.c_proj(self.merge(self.attn_dropout(F.softmax(att, dim=-1)) @ v)))


@valid(ex.check_attention)
class AttnLoopOverHeads(_MHA):  # one head at a time, slices of q, k, v, outputs concatenated
    def forward(self, x, kv_cache=None):
        B, T, C = x.shape
        hs = C // self.n_head
        q, k, v = self.c_attn(x).split(C, dim=2)
        outs = []
        for h in range(self.n_head):
            sl = slice(h * hs, (h + 1) * hs)
            outs.append(_attend(q[..., sl], k[..., sl], v[..., sl]))
        return self.resid_dropout(self.c_proj(torch.cat(outs, dim=-1)))


@valid(ex.check_attention)
class AttnSDPA(_MHA):
    def forward(self, x, kv_cache=None):
        q, k, v = self.heads(x)
        p = self.attn_dropout.p if self.training else 0.0
        return self.resid_dropout(self.c_proj(self.merge(
            F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=p))))


@valid(ex.check_attention)
class AttnEinsum(_MHA):
    def forward(self, x, kv_cache=None):
        q, k, v = self.heads(x)
        T = x.size(1)
        att = torch.einsum("bhqd,bhkd->bhqk", q, k) / math.sqrt(q.size(-1))
        att = att + torch.full((T, T), float("-inf"), device=x.device).triu(1)
        y = torch.einsum("bhqk,bhkd->bqhd", self.attn_dropout(att.softmax(-1)), v)
        return self.resid_dropout(self.c_proj(y.flatten(2)))


import heldout_probe_round16_core3  # noqa: E402,F401
