"""Round 20, modern part, second file: grouped-query attention and the Hugging Face GPT-2 conversion."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

import mingpt.exercises as ex
from heldout_probe_models import mistake, valid


# ------------------------------------------------------------------------------------------ GQA
def _attend(q, k, v, scale=None, fill=float("-inf"), diag=1, sm_dim=-1):
    T = q.size(2)
    att = (q @ k.transpose(-2, -1)) * (scale if scale is not None else 1 / math.sqrt(q.size(-1)))
    att = att.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(diag), fill)
    return att.softmax(dim=sm_dim) @ v


def _interleave(q, k, v):
    g = q.size(1) // k.size(1)
    return k.repeat_interleave(g, 1), v.repeat_interleave(g, 1)


@mistake(ex.check_gqa, r"repeat|interleave|group|tile|head")
def gqa_tile(q, k, v):  # k.repeat: query head j reads K/V head j % n_kv
    g = q.size(1) // k.size(1)
    return _attend(q, k.repeat(1, g, 1, 1), v.repeat(1, g, 1, 1))


@mistake(ex.check_gqa, r"repeat|interleave|group|tile|head")
def gqa_expand_wrong_axis(q, k, v):  # repeat_kv's expand with the repeat axis before the K/V heads
    B, nkv, T, hs = k.shape
    g = q.size(1) // nkv
    k = k[:, None].expand(B, g, nkv, T, hs).reshape(B, g * nkv, T, hs)
    v = v[:, None].expand(B, g, nkv, T, hs).reshape(B, g * nkv, T, hs)
    return _attend(q, k, v)


@mistake(ex.check_gqa, r"causal|mask")
def gqa_sdpa_no_causal(q, k, v):  # PyTorch docs' default is_causal=False
    k, v = _interleave(q, k, v)
    return F.scaled_dot_product_attention(q, k, v)


@mistake(ex.check_gqa, r"scal|sqrt")
def gqa_scale_model_width(q, k, v):  # 1/sqrt(n_head * hs), the d_model habit
    k, v = _interleave(q, k, v)
    return _attend(q, k, v, scale=1 / math.sqrt(q.size(1) * q.size(-1)))


@mistake(ex.check_gqa, r"mask|-1e4|leak|finite|large|fill")
def gqa_hf_minus_1e4(q, k, v):  # old HF GPT-2: masked scores set to -1e4
    k, v = _interleave(q, k, v)
    return _attend(q, k, v, fill=-1e4)


@mistake(ex.check_gqa, r"diagonal|mask|causal|itself")
def gqa_mask_diagonal(q, k, v):  # triu(0): a position cannot see itself
    k, v = _interleave(q, k, v)
    T = q.size(2)
    att = (q @ k.transpose(-2, -1)) / math.sqrt(q.size(-1))
    att = att.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(0), -1e9)
    return att.softmax(-1) @ v


@mistake(ex.check_gqa, r"softmax|axis|dim|quer")
def gqa_softmax_queries(q, k, v):
    k, v = _interleave(q, k, v)
    return _attend(q, k, v, sm_dim=-2)


@mistake(ex.check_gqa, r"mask|zero|-inf|0")
def gqa_mask_zero(q, k, v):
    k, v = _interleave(q, k, v)
    return _attend(q, k, v, fill=0.0)


@mistake(ex.check_gqa, r"mask|softmax|renormal|order|after")
def gqa_mask_after_softmax(q, k, v):  # HF's attention_mask multiplied in after softmax
    k, v = _interleave(q, k, v)
    T = q.size(2)
    att = ((q @ k.transpose(-2, -1)) / math.sqrt(q.size(-1))).softmax(-1)
    return (att * torch.ones(T, T).tril()) @ v


@mistake(ex.check_gqa, r"scal|sqrt")
def gqa_no_scale(q, k, v):
    k, v = _interleave(q, k, v)
    return _attend(q, k, v, scale=1.0)


@mistake(ex.check_gqa, r"scal|sqrt")
def gqa_scale_hs(q, k, v):  # divides by hs, not sqrt(hs)
    k, v = _interleave(q, k, v)
    return _attend(q, k, v, scale=1 / q.size(-1))


@mistake(ex.check_gqa, r"transpos|query|key|axis|softmax|einsum")
def gqa_einsum_swapped_letters(q, k, v):  # ARENA-style einsum with the output letters swapped: scores (k, q)
    k, v = _interleave(q, k, v)
    T = q.size(2)
    att = torch.einsum("bhqd,bhkd->bhkq", q, k) / math.sqrt(q.size(-1))
    att = att.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    return torch.einsum("bhqk,bhkd->bhqd", att.softmax(-1), v)


@mistake(ex.check_gqa, r"repeat|interleave|group|tile|head|scal|sqrt")
def gqa_tile_no_scale(q, k, v):  # double: tiled heads and no scale
    g = q.size(1) // k.size(1)
    return _attend(q, k.repeat(1, g, 1, 1), v.repeat(1, g, 1, 1), scale=1.0)


@mistake(ex.check_gqa, r"shape|transpos|layout|head|axis")
def gqa_returns_bthd(q, k, v):  # HF's attention returns (B, T, nh, hs): transposed back too early
    k, v = _interleave(q, k, v)
    return _attend(q, k, v).transpose(1, 2)


@mistake(ex.check_gqa, r"dropout|random|determin|train")
def gqa_sdpa_dropout(q, k, v):  # dropout_p copied from a training config
    k, v = _interleave(q, k, v)
    return F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=0.1)


@valid(ex.check_gqa)
def gqa_valid_repeat_kv(q, k, v):  # HF's repeat_kv: expand after the K/V heads, then reshape
    B, nkv, T, hs = k.shape
    g = q.size(1) // nkv
    k = k[:, :, None].expand(B, nkv, g, T, hs).reshape(B, nkv * g, T, hs)
    v = v[:, :, None].expand(B, nkv, g, T, hs).reshape(B, nkv * g, T, hs)
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


@valid(ex.check_gqa)
def gqa_valid_enable_gqa(q, k, v):
    return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)


@valid(ex.check_gqa)
def gqa_valid_grouped_einsum(q, k, v):  # no copies: queries viewed as (B, nkv, group, T, hs)
    B, nh, T, hs = q.shape
    nkv = k.size(1)
    qg = q.view(B, nkv, nh // nkv, T, hs)
    att = torch.einsum("bngqd,bnkd->bngqk", qg, k) / math.sqrt(hs)
    att = att.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), torch.finfo(att.dtype).min)
    return torch.einsum("bngqk,bnkd->bngqd", att.softmax(-1), v).reshape(B, nh, T, hs)


@valid(ex.check_gqa)
def gqa_valid_float64(q, k, v):
    k, v = _interleave(q, k, v)
    return _attend(q.double(), k.double(), v.double()).to(q.dtype)


# ------------------------------------------------------------------------------------------ HF conversion
CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
SKIP = (".attn.bias", ".attn.masked_bias")


def _convert(sd, transpose=CONV1D, skip=lambda n: n.endswith(SKIP), op=lambda t: t.t().contiguous()):
    return {n: (op(t) if n.endswith(transpose) else t) for n, t in sd.items() if not skip(n)}


@mistake(ex.check_hf_conversion, r"wte|wpe|embed|transpos|lm_head")
def conv_transpose_all_2d(sd):  # every 2-D tensor transposed (embeddings too)
    return {n: (t.t() if t.dim() == 2 else t) for n, t in sd.items() if not n.endswith(SKIP)}


@mistake(ex.check_hf_conversion, r"mlp|c_proj|c_fc|transpos")
def conv_attn_only(sd):
    return _convert(sd, transpose=("attn.c_attn.weight", "attn.c_proj.weight"))


@mistake(ex.check_hf_conversion, r"mask|masked_bias|buffer|skip|extra|unexpected")
def conv_keeps_masked_bias(sd):  # nanoGPT skips both; this one only attn.bias
    return _convert(sd, skip=lambda n: n.endswith(".attn.bias"))


@mistake(ex.check_hf_conversion, r"bias|missing|dropp|skip")
def conv_drops_all_bias(sd):  # endswith("bias"): every bias gone
    return _convert(sd, skip=lambda n: n.endswith("bias"))


@mistake(ex.check_hf_conversion, r"c_attn|bias|missing|substring|dropp")
def conv_substring_skip(sd):  # "attn.bias" in name also matches "c_attn.bias"
    return _convert(sd, skip=lambda n: "attn.bias" in n or "masked_bias" in n)


@mistake(ex.check_hf_conversion, r"prefix|name|transformer|key")
def conv_strips_prefix(sd):  # GPT2Model's key names (no "transformer.")
    return {n.removeprefix("transformer."): t for n, t in _convert(sd).items()}


@mistake(ex.check_hf_conversion, r"lm_head|transpos|head")
def conv_transposes_lm_head(sd):
    return _convert(sd, transpose=CONV1D + ("lm_head.weight",))


@mistake(ex.check_hf_conversion, r"reshape|view|transpos|layout")
def conv_reshape_not_transpose(sd):  # .view(out, in) relabels, does not transpose
    return _convert(sd, op=lambda t: t.reshape(t.shape[1], t.shape[0]))


@mistake(ex.check_hf_conversion, r"lm_head|missing|tied|head")
def conv_drops_lm_head(sd):  # "tied, so not needed"
    out = _convert(sd)
    out.pop("lm_head.weight", None)
    return out


@mistake(ex.check_hf_conversion, r"c_proj|c_fc|mlp|transpos")
def conv_c_attn_only(sd):
    return _convert(sd, transpose=("c_attn.weight",))


@mistake(ex.check_hf_conversion, r"dtype|half|precision|float16")
def conv_half(sd):
    return {n: t.half() for n, t in _convert(sd).items()}


@mistake(ex.check_hf_conversion, r"wpe|position|missing")
def conv_drops_wpe(sd):  # Llama habit: no position table
    out = _convert(sd)
    del out["transformer.wpe.weight"]
    return out


@mistake(ex.check_hf_conversion, r"mask|masked_bias|buffer|wte|embed|transpos|extra|unexpected")
def conv_keeps_buffers_transposes_wte(sd):  # double: nothing skipped, wte transposed too
    return {n: (t.t() if n.endswith(CONV1D + ("wte.weight",)) else t) for n, t in sd.items()}


@mistake(ex.check_hf_conversion, r"q, ?k, ?v|qkv|permut|order")
def conv_qkv_reordered(sd):  # Llama conversion habit: q, k, v reordered (k, q, v) inside c_attn
    out = _convert(sd)
    for n in list(out):
        if n.endswith("c_attn.weight") or n.endswith("c_attn.bias"):
            q, k, v = out[n].chunk(3, 0)
            out[n] = torch.cat((k, q, v), 0)
    return out


@valid(ex.check_hf_conversion)
def conv_valid_nanogpt(sd):  # nanoGPT's from_pretrained: filter, then copy with .t() for the Conv1D keys
    keys = [k for k in sd if not k.endswith(".attn.masked_bias") and not k.endswith(".attn.bias")]
    out = {}
    for k in keys:
        if any(k.endswith(w) for w in CONV1D):
            out[k] = sd[k].t().clone()
        else:
            out[k] = sd[k].clone()
    return out


@valid(ex.check_hf_conversion)
def conv_valid_permute(sd):  # 1-D tensors "transposed" too (a no-op), .permute(1, 0) on matrices
    out = {}
    for n, t in sd.items():
        if n.split(".")[-2:] in (["attn", "bias"], ["attn", "masked_bias"]):
            continue
        if n.endswith(CONV1D):
            t = t.permute(1, 0)
        out[n] = t
    return out


@valid(ex.check_hf_conversion)
def conv_valid_regex(sd):
    import re
    out = {}
    for n, t in sd.items():
        if re.search(r"\.attn\.(masked_)?bias$", n):
            continue
        out[n] = t.T if re.search(r"(c_attn|c_proj|c_fc)\.weight$", n) else t
    return out


import heldout_probe_round20_modern3  # noqa: E402,F401
