"""Round 20, core part, second file: attention-weights rows (see heldout_probe_round20_core.py)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

import mingpt.exercises as ex
from heldout_probe_models import mistake, valid

# ------------------------------------------------------------------------------------------ attention weights
def _causal(T, device=None):
    return torch.ones(T, T, dtype=torch.bool, device=device).tril()


@mistake(ex.check_attention_weights, r"mask|future|leak|zero|-inf")
def aw_mask_with_zero(q, k):  # masked_fill(..., 0): exp(0) = 1 still counts the future
    T = q.size(1)
    s = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    return s.masked_fill(~_causal(T), 0.0).softmax(-1)


@mistake(ex.check_attention_weights, r"after.*softmax|renormal|sum|distribution|mask")
def aw_tril_after_softmax(q, k):  # mask applied after the softmax, rows not renormalised
    s = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    return s.softmax(-1) * _causal(q.size(1))


@mistake(ex.check_attention_weights, r"scal|sqrt|1/hs|hs")
def aw_scale_by_hs(q, k):  # muP attention's 1/d
    return (q @ k.transpose(-2, -1) / q.size(-1)).masked_fill(~_causal(q.size(1)), float("-inf")).softmax(-1)


@mistake(ex.check_attention_weights, r"scal|sqrt|length|T\b|size\(1\)")
def aw_scale_by_seq_len(q, k):  # (B, nh, T, hs) code's size(-2)... here q.size(1) is T
    return (q @ k.transpose(-2, -1) / math.sqrt(q.size(1))).masked_fill(~_causal(q.size(1)), float("-inf")).softmax(-1)


@mistake(ex.check_attention_weights, r"scal|sqrt")
def aw_no_scale(q, k):  # T5 attention: no 1/sqrt(d)
    return (q @ k.transpose(-2, -1)).masked_fill(~_causal(q.size(1)), float("-inf")).softmax(-1)


@mistake(ex.check_attention_weights, r"scal|sqrt|twice|1/hs|hs")
def aw_scaled_twice(q, k):  # q pre-scaled by hs**-0.5 (as some codebases do) and the scores scaled again
    hs = q.size(-1)
    q = q * hs ** -0.5
    return (q @ k.transpose(-2, -1) / math.sqrt(hs)).masked_fill(~_causal(q.size(1)), float("-inf")).softmax(-1)


@mistake(ex.check_attention_weights, r"axis|dim|quer|column")
def aw_softmax_over_queries(q, k):
    s = (q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))).masked_fill(~_causal(q.size(1)), float("-inf"))
    return s.softmax(dim=1)


@mistake(ex.check_attention_weights, r"future|past|triu|upper|mask|anti.?causal|inverted")
def aw_triu_mask(q, k):  # MHA-style "True = masked" mask used as "True = allowed"
    T = q.size(1)
    blocked = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    s = (q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))).masked_fill(~blocked, float("-inf"))
    return s.softmax(-1)


@mistake(ex.check_attention_weights, r"diagonal|self|itself|NaN|own position")
def aw_strictly_lower(q, k):  # tril(diagonal=-1): a position may not attend to itself
    T = q.size(1)
    allowed = torch.ones(T, T, dtype=torch.bool).tril(diagonal=-1)
    s = (q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))).masked_fill(~allowed, float("-inf"))
    return s.softmax(-1)


@mistake(ex.check_attention_weights, r"transpos|swap|quer|key|axis|k @ q")
def aw_einsum_transposed(q, k):  # einsum with the output axes swapped: bkq
    s = torch.einsum("bqd,bkd->bkq", q, k) / math.sqrt(q.size(-1))
    return s.masked_fill(~_causal(q.size(1)), float("-inf")).softmax(-1)


@mistake(ex.check_attention_weights, r"log.?softmax|log|probabilit|softmax")
def aw_log_softmax(q, k):  # TL's pattern is softmax; log_softmax returned
    s = (q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))).masked_fill(~_causal(q.size(1)), float("-inf"))
    return s.log_softmax(-1)


@mistake(ex.check_attention_weights, r"mask|inverted|future|past|NaN")
def aw_masked_fill_where_allowed(q, k):  # masked_fill(mask == 1, -inf): fills the allowed side
    T = q.size(1)
    mask = torch.tril(torch.ones(T, T))
    s = (q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))).masked_fill(mask == 1, float("-inf"))
    return s.softmax(-1)


@mistake(ex.check_attention_weights, r"scal|sqrt|batch|size\(0\)|B\b")
def aw_scale_by_batch(q, k):  # hs taken as q.shape[0]
    return (q @ k.transpose(-2, -1) / math.sqrt(q.shape[0])).masked_fill(~_causal(q.size(1)),
                                                                       float("-inf")).softmax(-1)


@valid(ex.check_attention_weights)
def aw_valid_sdpa_identity_values(q, k):  # SDPA with is_causal and identity values returns the weights themselves
    B, T, _ = q.shape
    eye = torch.eye(T, dtype=q.dtype).expand(B, T, T)
    return F.scaled_dot_product_attention(q, k, eye, is_causal=True)


@valid(ex.check_attention_weights)
def aw_valid_finfo_min(q, k):  # HF's torch.finfo(dtype).min as the mask value
    s = torch.einsum("bqd,bkd->bqk", q, k) / math.sqrt(q.size(-1))
    return s.masked_fill(~_causal(q.size(1)), torch.finfo(s.dtype).min).softmax(-1)


@valid(ex.check_attention_weights)
def aw_valid_mask_after_softmax_renormalised(q, k):  # masking after the softmax is right once rows are renormalised
    s = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    s = s - s.amax(-1, keepdim=True)
    w = s.exp() * _causal(q.size(1))
    return w / w.sum(-1, keepdim=True)


@valid(ex.check_attention_weights)
def aw_valid_tl_ignore(q, k):  # TransformerLens' IGNORE = -1e5 (exp underflows to exactly 0 in float32)
    s = (q @ k.transpose(-2, -1)) / q.size(-1) ** 0.5
    return torch.where(_causal(q.size(1)), s, torch.tensor(-1e5)).softmax(-1)


import heldout_probe_round20_core3  # noqa: E402,F401  (this part's third file)
