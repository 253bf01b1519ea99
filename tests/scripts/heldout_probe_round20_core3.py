"""Round 20, core part, third file: attention, LayerNorm and MLP rows (see heldout_probe_round20_core.py)."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import mingpt.exercises as ex
from heldout_probe_models import mistake, valid


# ------------------------------------------------------------------------------------------ attention
class Att(nn.Module):
    """A correct nanoGPT-style attention; each row overrides one step."""

    def __init__(self, config, layer_idx=0):
        super().__init__()
        self.n_head, self.n_embd = config.n_head, config.n_embd
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)
        self.attn_dropout = nn.Dropout(config.attn_pdrop)
        self.resid_dropout = nn.Dropout(config.resid_pdrop)

    def qkv(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        return [t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v)]

    def attend(self, q, k, v):
        T, hs = q.size(-2), q.size(-1)
        att = q @ k.transpose(-2, -1) / math.sqrt(hs)
        att = att.masked_fill(~torch.ones(T, T, dtype=torch.bool, device=q.device).tril(), float("-inf"))
        return self.attn_dropout(att.softmax(-1)) @ v

    def merge(self, y):
        B, nh, T, hs = y.shape
        return y.transpose(1, 2).contiguous().view(B, T, nh * hs)

    def project(self, y):
        return self.resid_dropout(self.c_proj(y))

    def forward(self, x, kv_cache=None):
        return self.project(self.merge(self.attend(*self.qkv(x))))


def att_row(expect, name, **methods):
    cls = type(name, (Att,), methods)
    if expect is None:
        valid(ex.check_attention)(cls)
    else:
        mistake(ex.check_attention, expect)(cls)
    return cls


# Conv1D habit: x @ W + b with nn.Linear's (out, in) weight; c_proj is square, so it runs, transposed
att_row(r"transpos|c_proj|orientation|x @ W|W\.T|output projection", "AttConv1DProj",
        project=lambda self, y: y @ self.c_proj.weight + self.c_proj.bias)


def _sdpa_mha_mask(self, q, k, v):  # nn.MultiheadAttention's bool mask (True = blocked) handed to SDPA (True = kept)
    T = q.size(-2)
    blocked = torch.triu(torch.ones(T, T, dtype=torch.bool, device=q.device), diagonal=1)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=blocked)


att_row(r"mask|inverted|future|causal|NaN|past", "AttSdpaMhaMask", attend=_sdpa_mha_mask)
att_row(r"causal|future|mask|leak", "AttSdpaNoCausal",
        attend=lambda self, q, k, v: F.scaled_dot_product_attention(q, k, v))
att_row(r"scal|sqrt|n_embd|C\b|head size|hs", "AttSdpaScaleDModel",  # single-head tutorial's 1/sqrt(d_model)
        attend=lambda self, q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                                                    scale=1 / math.sqrt(self.n_embd)))


def _qkv_tl_split(self, x):  # heads split as (hs, nh): "d_head, n_heads" order mixed up
    B, T, C = x.shape
    q, k, v = self.c_attn(x).split(C, dim=2)
    nh, hs = self.n_head, C // self.n_head
    return [t.view(B, T, hs, nh).permute(0, 3, 1, 2) for t in (q, k, v)]


att_row(r"split|head|order|reshape|interleav", "AttSplitHsNh", qkv=_qkv_tl_split)
att_row(r"merge|transpose|head|reshape|order", "AttMergeNoTranspose",
        merge=lambda self, y: y.reshape(y.size(0), y.size(2), -1))


def _qkv_neox(self, x):  # GPT-NeoX / Megatron layout: per head [q|k|v] interleaved in c_attn's output
    B, T, C = x.shape
    nh, hs = self.n_head, C // self.n_head
    qkv = self.c_attn(x).view(B, T, nh, 3 * hs)
    q, k, v = qkv.split(hs, dim=-1)
    return [t.transpose(1, 2) for t in (q, k, v)]


att_row(r"qkv|interleav|per.?head|split|order|layout|c_attn", "AttNeoxQkvLayout", qkv=_qkv_neox)
att_row(r"c_proj|projection|output", "AttNoProj", project=lambda self, y: self.resid_dropout(y))


def _attend_zero_fill(self, q, k, v):
    T = q.size(-2)
    att = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    att = att.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), 0.0)
    return att.softmax(-1) @ v


att_row(r"mask|future|leak|zero|-inf|causal", "AttMaskZero", attend=_attend_zero_fill)
att_row(r"residual", "AttResidualInside",
        forward=lambda self, x, kv_cache=None: x + self.project(self.merge(self.attend(*self.qkv(x)))))
att_row(r"scal|1/hs|hs|sqrt", "AttMuP",  # muP's 1/hs scaling
        attend=lambda self, q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=1 / q.size(-1)))


def _attend_keys_as_values(self, q, k, v):
    return Att.attend(self, q, k, k)


att_row(r"value|\bv\b|key", "AttKeysAsValues", attend=_attend_keys_as_values)


def _attend_softmax_queries(self, q, k, v):
    T = q.size(-2)
    att = (q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))).masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(),
                                                                         float("-inf"))
    return att.softmax(-2) @ v


att_row(r"axis|dim|softmax|quer", "AttSoftmaxQueries", attend=_attend_softmax_queries)


def _qkv_no_bias(self, x):  # Llama habit: projections without bias, c_attn's bias ignored
    B, T, C = x.shape
    q, k, v = F.linear(x, self.c_attn.weight).split(C, dim=2)
    return [t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v)]


att_row(r"bias|c_attn", "AttNoQkvBias", qkv=_qkv_no_bias)


def _qkv_arena_wrong(self, x):  # ARENA's W_Q (nh, d_model, d_head) made by a bare reshape of Linear's (out, in)
    B, T, C = x.shape
    nh, hs = self.n_head, C // self.n_head
    W = self.c_attn.weight.view(3, nh, C, hs)  # wrong: (out, in) is not (in, out)
    b = self.c_attn.bias.view(3, nh, hs)
    return [torch.einsum("btc,nch->bnth", x, W[i]) + b[i][None, :, None, :] for i in range(3)]


att_row(r"weight|reshape|layout|transpos|split|orientation", "AttArenaWrongReshape", qkv=_qkv_arena_wrong)


def _qkv_kqv(self, x):  # q, k, v read in another order (k first)
    B, T, C = x.shape
    k, q, v = self.c_attn(x).split(C, dim=2)
    return [t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v)]


att_row(r"order|swap|q.*k|split|c_attn", "AttKQVOrder", qkv=_qkv_kqv)

# valid rows
att_row(None, "AttValidSdpa",
        attend=lambda self, q, k, v: F.scaled_dot_product_attention(
            q, k, v, is_causal=True, dropout_p=self.attn_dropout.p if self.training else 0.0))


def _attend_hf_buffer(self, q, k, v):  # HF GPT-2's registered bias buffer and finfo.min
    T = q.size(-2)
    if not hasattr(self, "_bias"):
        self._bias = torch.tril(torch.ones(64, 64, dtype=torch.bool)).view(1, 1, 64, 64)
    att = torch.matmul(q, k.transpose(-1, -2)) / torch.full([], v.size(-1) ** 0.5, dtype=q.dtype)
    att = torch.where(self._bias[:, :, :T, :T], att, torch.finfo(att.dtype).min)
    return self.attn_dropout(nn.functional.softmax(att, dim=-1)) @ v


att_row(None, "AttValidHFBuffer", attend=_attend_hf_buffer)


class AttValidEinsum(nn.Module):  # TransformerLens-style: per-head weights cut from c_attn, torch.einsum throughout
    def __init__(self, config, layer_idx=0):
        super().__init__()
        self.n_head = config.n_head
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)

    def forward(self, x, kv_cache=None):
        B, T, C = x.shape
        nh, hs = self.n_head, C // self.n_head
        W = self.c_attn.weight.view(3, nh, hs, C)  # Linear's (out, in): out = (which, head, hs)
        b = self.c_attn.bias.view(3, nh, hs)
        q, k, v = (torch.einsum("btc,nhc->btnh", x, W[i]) + b[i] for i in range(3))
        scores = torch.einsum("bqnh,bknh->bnqk", q, k) / hs ** 0.5
        scores = scores.masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool), 1), -1e5)
        z = torch.einsum("bnqk,bknh->bqnh", scores.softmax(-1), v)
        W_O = self.c_proj.weight.view(C, nh, hs)
        return torch.einsum("bqnh,cnh->bqc", z, W_O) + self.c_proj.bias


valid(ex.check_attention)(AttValidEinsum)


class Conv1D(nn.Module):  # HF's Conv1D: weight stored (in, out), y = x @ W + b
    def __init__(self, nf, nx):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(nx, nf) * 0.02)
        self.bias = nn.Parameter(torch.zeros(nf))

    def forward(self, x):
        return x @ self.weight + self.bias


class AttValidConv1D(Att):  # HF GPT-2's own layers, loaded right (the checker loads (in, out) weights transposed)
    def __init__(self, config, layer_idx=0):
        super().__init__(config, layer_idx)
        self.c_attn = Conv1D(3 * config.n_embd, config.n_embd)
        self.c_proj = Conv1D(config.n_embd, config.n_embd)


valid(ex.check_attention)(AttValidConv1D)


# ------------------------------------------------------------------------------------------ LayerNorm
class LN(nn.Module):
    def __init__(self, ndim, eps=1e-5, bias=True):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim))

    def forward(self, x):
        mean = x.mean(-1, keepdim=True)
        var = x.var(-1, keepdim=True, unbiased=False)
        return self.finish((x - mean) / torch.sqrt(var + self.eps))

    def finish(self, xhat):
        return xhat * self.weight + self.bias


def ln_row(expect, name, **methods):
    cls = type(name, (LN,), methods)
    if expect is None:
        valid(ex.check_layernorm)(cls)
    else:
        mistake(ex.check_layernorm, expect)(cls)
    return cls


def _ln_init_eps(eps_value):
    def __init__(self, ndim, eps=1e-5, bias=True):
        LN.__init__(self, ndim, eps, bias)
        self.eps = eps_value  # a hard-coded default from another codebase
    return __init__


ln_row(r"eps|epsilon", "LNEpsLlama", __init__=_ln_init_eps(1e-6))  # Llama / T5 default
ln_row(r"eps|epsilon", "LNEpsBert", __init__=_ln_init_eps(1e-12))  # BERT's layer_norm_eps
ln_row(r"mean|rms|center|subtract", "LNAsRMSNorm",
       forward=lambda self, x: self.finish(x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)))
ln_row(r"1 ?\+ ?(weight|gain|w)|gain|weight|scale", "LNGemmaOnePlus",
       finish=lambda self, xhat: xhat * (1 + self.weight) + self.bias)
ln_row(r"unbiased|n ?- ?1|bessel|variance", "LNTorchVarDefault",
       forward=lambda self, x: self.finish((x - x.mean(-1, keepdim=True)) /
                                           torch.sqrt(x.var(-1, keepdim=True) + self.eps)))


def _ln_annotated(self, x):  # the Annotated Transformer: a * (x - mean) / (std + eps) + b, std unbiased
    mean = x.mean(-1, keepdim=True)
    std = x.std(-1, keepdim=True)
    return self.finish((x - mean) / (std + self.eps))


ln_row(r"unbiased|n ?- ?1|bessel|eps|std|outside", "LNAnnotatedTransformer", forward=_ln_annotated)


def _ln_eps_outside(self, x):
    mean = x.mean(-1, keepdim=True)
    return self.finish((x - mean) / (x.std(-1, keepdim=True, unbiased=False) + self.eps))


ln_row(r"eps|epsilon|outside|sqrt|std", "LNEpsOutsideStd", forward=_ln_eps_outside)
# "wrong axes (time and channels)": the right cause, plural "axes" (widened from axis)
ln_row(r"ax[ie]s|dim|shape|last|normalized_shape|two|both", "LNFLayerNormTwoAxes",
       forward=lambda self, x: F.layer_norm(x, x.shape[-2:], None, None, self.eps) * self.weight + self.bias)
ln_row(r"axis|dim|batch", "LNBatchNormAxis",
       forward=lambda self, x: self.finish((x - x.mean(0, keepdim=True)) /
                                           torch.sqrt(x.var(0, keepdim=True, unbiased=False) + self.eps)))
ln_row(r"order|bias|gain|weight|before", "LNBiasBeforeGain", finish=lambda self, xhat: (xhat + self.bias) * self.weight)
ln_row(r"eps|epsilon|NaN", "LNNoEps",
       forward=lambda self, x: self.finish((x - x.mean(-1, keepdim=True)) /
                                           x.var(-1, keepdim=True, unbiased=False).sqrt()))
ln_row(r"sqrt|variance|std", "LNDivideByVar",
       forward=lambda self, x: self.finish((x - x.mean(-1, keepdim=True)) /
                                           (x.var(-1, keepdim=True, unbiased=False) + self.eps)))
ln_row(r"eps|epsilon|hard|F\.layer_norm", "LNFunctionalBertEps",
       forward=lambda self, x: F.layer_norm(x, (x.size(-1),), self.weight, self.bias, 1e-12))


def _ln_half(self, x):  # fp16 habit: the statistics computed in half precision
    h = x.half()
    mean = h.mean(-1, keepdim=True)
    var = ((h - mean) ** 2).mean(-1, keepdim=True)
    return self.finish(((h - mean) / torch.sqrt(var + self.eps)).to(x.dtype))


ln_row(r"precision|half|float16|dtype|fp16|round", "LNHalfPrecision", forward=_ln_half)


def _ln_valid_llama_float(self, x):  # Llama's habit: compute in float32, cast back to x's dtype
    xf = x.float()
    xf = xf - xf.mean(-1, keepdim=True)
    out = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
    return (out * self.weight.float() + self.bias.float()).type_as(x)


ln_row(None, "LNValidFloat32", forward=_ln_valid_llama_float)


def _ln_valid_tl(self, x):  # TransformerLens' LayerNorm: centre, then scale = sqrt(mean(x^2) + eps)
    x = x - x.mean(-1, keepdim=True)
    scale = (x.pow(2).mean(-1, keepdim=True) + self.eps).sqrt()
    return self.finish(x / scale)


ln_row(None, "LNValidTransformerLens", forward=_ln_valid_tl)
ln_row(None, "LNValidFunctional",
       forward=lambda self, x: F.layer_norm(x, self.weight.shape, self.weight, self.bias, self.eps))


# ------------------------------------------------------------------------------------------ MLP
class M(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd)
        self.dropout = nn.Dropout(config.resid_pdrop)

    def act(self, h):
        return F.gelu(h, approximate="tanh")

    def forward(self, x):
        return self.dropout(self.c_proj(self.act(self.c_fc(x))))


def mlp_row(expect, name, **methods):
    cls = type(name, (M,), methods)
    if expect is None:
        valid(ex.check_mlp)(cls)
    else:
        mistake(ex.check_mlp, expect)(cls)
    return cls


mlp_row(r"exact|erf|tanh|approximat", "MLPTorchDefaultGelu", act=lambda self, h: nn.GELU()(h))
mlp_row(r"sigmoid|quick|1\.702|approximat", "MLPQuickGelu", act=lambda self, h: h * torch.sigmoid(1.702 * h))
mlp_row(r"relu", "MLPRelu", act=lambda self, h: F.relu(h))
mlp_row(r"silu|swish", "MLPSilu", act=lambda self, h: F.silu(h))
mlp_row(r"constant|sqrt|pi|gelu", "MLPGeluNewWrongConstant",
        act=lambda self, h: 0.5 * h * (1 + torch.tanh(math.sqrt(2 * math.pi) * (h + 0.044715 * h ** 3))))
mlp_row(r"0\.5|half|factor|scale|gelu", "MLPGeluNoHalf",
        act=lambda self, h: h * (1 + torch.tanh(math.sqrt(2 / math.pi) * (h + 0.044715 * h ** 3))))
mlp_row(r"bias|c_proj", "MLPNoProjBias",  # Llama habit: bias-free projections
        forward=lambda self, x: self.dropout(F.linear(self.act(self.c_fc(x)), self.c_proj.weight)))
mlp_row(r"residual", "MLPResidualInside", forward=lambda self, x: x + self.dropout(self.c_proj(self.act(self.c_fc(x)))))
mlp_row(r"after|order|c_proj|output", "MLPActAfterProj",
        forward=lambda self, x: self.dropout(self.act(self.c_proj(self.c_fc(x)))))
mlp_row(r"activation|linear|gelu|missing", "MLPNoActivation",
        forward=lambda self, x: self.dropout(self.c_proj(self.c_fc(x))))
mlp_row(r"dropout|eval|random|training|determin", "MLPFunctionalDropout",  # F.dropout's training=True default
        forward=lambda self, x: F.dropout(self.c_proj(self.act(self.c_fc(x))), 0.1))


def _mlp_geglu(self, x):  # GeGLU / SwiGLU habit: the 4C hidden split in a gate and an up half
    a, b = self.c_fc(x).chunk(2, dim=-1)
    h = self.act(a) * b
    return self.dropout(self.c_proj(torch.cat([h, h], dim=-1)))


mlp_row(r"glu|gate|chunk|split|half", "MLPGeGLU", forward=_mlp_geglu)
mlp_row(r"twice|both|after|order", "MLPGeluTwice",
        forward=lambda self, x: self.dropout(self.act(self.c_proj(self.act(self.c_fc(x))))))
mlp_row(r"cube|x\^3|h\^3|x³|constant|gelu|0\.044715", "MLPGeluCubeMissing",  # pow(h, 3) written as h * 3
        act=lambda self, h: 0.5 * h * (1 + torch.tanh(math.sqrt(2 / math.pi) * (h + 0.044715 * h * 3))))

# valid rows
mlp_row(None, "MLPValidGeluFast",  # HF's gelu_fast: same function, factored
        act=lambda self, h: 0.5 * h * (1.0 + torch.tanh(h * 0.7978845608 * (1.0 + 0.044715 * h * h))))


def _mlp_tl_einsum(self, x):  # TransformerLens: W_in (d_model, d_mlp) = c_fc.weight.T, einsum throughout
    W_in, W_out = self.c_fc.weight.T, self.c_proj.weight.T
    pre = torch.einsum("btd,dm->btm", x, W_in) + self.c_fc.bias
    return torch.einsum("btm,md->btd", self.act(pre), W_out) + self.c_proj.bias


mlp_row(None, "MLPValidEinsum", forward=_mlp_tl_einsum)


def _mlp_conv1d_init(self, config):  # HF GPT-2's Conv1D layers, weight (in, out)
    M.__init__(self, config)
    self.c_fc = Conv1D(4 * config.n_embd, config.n_embd)
    self.c_proj = Conv1D(config.n_embd, 4 * config.n_embd)


mlp_row(None, "MLPValidConv1D", __init__=_mlp_conv1d_init)
mlp_row(None, "MLPValidSigmoidForm",  # tanh(z) = 2 sigmoid(2z) - 1, so 0.5 (1 + tanh z) = sigmoid(2z)
        act=lambda self, h: h * torch.sigmoid(2 * math.sqrt(2 / math.pi) * (h + 0.044715 * h ** 3)))


import heldout_probe_round20_core4  # noqa: E402,F401  (this part's fourth file)
