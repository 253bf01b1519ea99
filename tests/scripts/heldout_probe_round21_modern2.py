"""The held-out probe, round 21, modern part 2: grouped-query attention, the Hugging Face conversion, the LR
schedule."""

from __future__ import annotations

import math

import torch

import mingpt.exercises as ex
from heldout_probe_models import mistake, valid

CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


# ------------------------------------------------------------------------------------------ GQA
def _gqa(q, k, v, expand="interleave", scale=None, diag=1, fill=float("-inf"), sm_dim=-1, kv_of_head=None,
         mask_heads=None):
    B, nh, T, hs = q.shape
    group = nh // k.size(1)
    if kv_of_head is not None:
        idx = torch.tensor([kv_of_head(h, group, k.size(1)) for h in range(nh)])
        k, v = k[:, idx], v[:, idx]
    elif expand == "interleave":
        k, v = k.repeat_interleave(group, 1), v.repeat_interleave(group, 1)
    elif expand == "repeat":
        k, v = k.repeat(1, group, 1, 1), v.repeat(1, group, 1, 1)
    elif expand == "v_repeat":
        k, v = k.repeat_interleave(group, 1), v.repeat(1, group, 1, 1)
    att = q @ k.transpose(-2, -1) / (math.sqrt(hs) if scale is None else scale(q))
    mask = torch.ones(T, T, dtype=torch.bool).triu(diag)
    if mask_heads is not None:
        mask = mask & mask_heads.view(1, nh, 1, 1)
    att = att.masked_fill(mask, fill)
    return att.softmax(sm_dim) @ v


@mistake(ex.check_gqa, r"scale|sqrt|hs|head size|C\b|n_embd")
def gqa_scale_sqrt_c(q, k, v):  # cousin: sqrt(nh * hs) instead of sqrt(hs)
    return _gqa(q, k, v, scale=lambda q: math.sqrt(q.size(1) * q.size(-1)))


@mistake(ex.check_gqa, r"scale|sqrt|hs|head size")
def gqa_scale_hs(q, k, v):  # cousin: divided by hs instead of sqrt(hs)
    return _gqa(q, k, v, scale=lambda q: q.size(-1))


@mistake(ex.check_gqa, r"scale|sqrt|T\b|length|time")
def gqa_scale_sqrt_t(q, k, v):  # cousin: sqrt(T)
    return _gqa(q, k, v, scale=lambda q: math.sqrt(q.size(2)))


@mistake(ex.check_gqa, r"repeat|interleave|group|order|tile")
def gqa_repeat(q, k, v):
    return _gqa(q, k, v, expand="repeat")


@mistake(ex.check_gqa, r"v\b|value|repeat|interleave|group")
def gqa_v_only_repeat(q, k, v):  # partial: k expanded right, v tiled with repeat
    return _gqa(q, k, v, expand="v_repeat")


@mistake(ex.check_gqa, r"first|one|single|kv head|k/v head|group|shared")  # k/v head: fair
def gqa_all_heads_kv0(q, k, v):  # every query head uses kv head 0
    return _gqa(q, k, v, kv_of_head=lambda h, g, nkv: 0)


@mistake(ex.check_gqa, r"group|shift|off|kv head|k/v head|map")  # k/v head: fair
def gqa_group_shifted(q, k, v):  # cousin: head h uses kv head (h // group + 1) % nkv
    return _gqa(q, k, v, kv_of_head=lambda h, g, nkv: (h // g + 1) % nkv)


@mistake(ex.check_gqa, r"mask|diagonal|future|causal|shift|offset")
def gqa_mask_sees_next(q, k, v):  # cousin: the mask shifted by one, every query sees the next key too
    return _gqa(q, k, v, diag=2)


@mistake(ex.check_gqa, r"mask|diagonal|future|causal|shift|offset")
def gqa_mask_sees_two_ahead(q, k, v):  # cousin: the mask shifted by two
    return _gqa(q, k, v, diag=3)


@mistake(ex.check_gqa, r"fill|0\b|zero|mask")
def gqa_fill_zero(q, k, v):  # masked with 0 instead of -inf
    return _gqa(q, k, v, fill=0.0)


@mistake(ex.check_gqa, r"softmax|dim|axis")
def gqa_softmax_dim2(q, k, v):
    return _gqa(q, k, v, sm_dim=-2)


@mistake(ex.check_gqa, r"head|first|part|mask")
def gqa_mask_first_head_only(q, k, v):  # partial: the causal mask only on head 0
    nh = q.size(1)
    return _gqa(q, k, v, mask_heads=torch.arange(nh) == 0)


@mistake(ex.check_gqa, r"(repeat|interleave|group).*(scale|sqrt)|(scale|sqrt).*(repeat|interleave|group)|two|and")
def gqa_repeat_no_scale(q, k, v):  # combination: repeat instead of repeat_interleave, and no scaling
    return _gqa(q, k, v, expand="repeat", scale=lambda q: 1.0)


@mistake(ex.check_gqa, r"mean|average|kv head|group|shared")
def gqa_kv_averaged(q, k, v):  # the kv heads averaged into one, shared by every head
    nh = q.size(1)
    k, v = k.mean(1, keepdim=True).expand(-1, nh, -1, -1), v.mean(1, keepdim=True).expand(-1, nh, -1, -1)
    return _gqa(q, k, v)


@valid(ex.check_gqa)
def gqa_valid_sdpa(q, k, v):
    g = q.size(1) // k.size(1)
    return torch.nn.functional.scaled_dot_product_attention(q, k.repeat_interleave(g, 1), v.repeat_interleave(g, 1),
                                                            is_causal=True)


@valid(ex.check_gqa)
def gqa_valid_grouped_view(q, k, v):  # (B, nkv, group, T, hs) and broadcast, -inf added, softmax by exp-minus-max
    B, nh, T, hs = q.shape
    nkv = k.size(1)
    qg = q.view(B, nkv, nh // nkv, T, hs)
    att = qg @ k.unsqueeze(2).transpose(-2, -1) / math.sqrt(hs)
    att = att + torch.full((T, T), float("-inf")).triu(1)
    att = torch.exp(att - att.amax(-1, keepdim=True))
    att = att / att.sum(-1, keepdim=True)
    return (att @ v.unsqueeze(2)).reshape(B, nh, T, hs)


@valid(ex.check_gqa)
def gqa_valid_head_loop(q, k, v):  # one head at a time, kv head h // group
    g = q.size(1) // k.size(1)
    T = q.size(2)
    outs = []
    for h in range(q.size(1)):
        s = q[:, h] @ k[:, h // g].transpose(-2, -1) * q.size(-1) ** -0.5
        s = s.masked_fill(~torch.tril(torch.ones(T, T, dtype=torch.bool)), -1e9)
        outs.append(s.softmax(-1) @ v[:, h // g])
    return torch.stack(outs, 1)


# ------------------------------------------------------------------------------------------ HF conversion
def _conv(sd, transpose=lambda n, t: n.endswith(CONV1D), drop=lambda n: n.endswith((".attn.bias", ".attn.masked_bias")),
          rename=lambda n: n, fn=lambda n, t: t):
    out = {}
    for n, t in sd.items():
        if drop(n):
            continue
        t = t.t().contiguous() if transpose(n, t) else t
        out[rename(n)] = fn(n, t)
    return out


@mistake(ex.check_hf_conversion, r"mlp|c_fc")  # strict: the name must say where (the MLP's)
def hf_attn_only_transposed(sd):  # partial: only the attention's Conv1D weights transposed, the MLP's not
    return _conv(sd, transpose=lambda n, t: n.endswith(CONV1D[:2]))


@mistake(ex.check_hf_conversion, r"c_proj|c_fc|mlp|only")  # strict: where
def hf_c_attn_only(sd):  # partial: only c_attn transposed
    return _conv(sd, transpose=lambda n, t: n.endswith("attn.c_attn.weight"))


@mistake(ex.check_hf_conversion, r"layer|block|h\.1|first|only")  # strict: where
def hf_first_layer_only(sd):  # partial: only layer 0 transposed
    return _conv(sd, transpose=lambda n, t: n.endswith(CONV1D) and ".h.0." in n)


@mistake(ex.check_hf_conversion, r"wte|wpe|embedding|every 2|all 2|transpos")
def hf_transpose_all_2d(sd):  # cousin: every 2-D tensor transposed, the embeddings too
    return _conv(sd, transpose=lambda n, t: t.dim() == 2)


@mistake(ex.check_hf_conversion, r"reshape|view|transpos")
def hf_view_not_transpose(sd):  # cousin: reshaped to the transposed shape instead of transposed
    return _conv(sd, transpose=lambda n, t: False,
                 fn=lambda n, t: t.reshape(t.shape[1], t.shape[0]) if n.endswith(CONV1D) else t)


@mistake(ex.check_hf_conversion, r"mask|attn\.bias|buffer")
def hf_keeps_attn_bias(sd):  # partial: masked_bias dropped, attn.bias (the mask) kept
    return _conv(sd, drop=lambda n: n.endswith(".attn.masked_bias"))


@mistake(ex.check_hf_conversion, r"prefix|transformer|name|key")
def hf_prefix_stripped(sd):
    return _conv(sd, rename=lambda n: n.replace("transformer.", ""))


@mistake(ex.check_hf_conversion, r"ln_1|ln_2|swap|layernorm|wrong keys")  # "under the wrong keys": fair
def hf_ln_swapped(sd):
    return _conv(sd, rename=lambda n: n.replace("ln_1", "LN_X").replace("ln_2", "ln_1").replace("LN_X", "ln_2"))


@mistake(ex.check_hf_conversion, r"q.*k|order|qkv|split|permut")
def hf_qkv_reordered(sd):  # q, k, v blocks of c_attn reordered k, q, v
    def fn(n, t):
        if n.endswith("attn.c_attn.weight"):
            q, k, v = t.chunk(3, 0)
            return torch.cat([k, q, v], 0)
        if n.endswith("attn.c_attn.bias"):
            q, k, v = t.chunk(3, 0)
            return torch.cat([k, q, v], 0)
        return t
    return _conv(sd, fn=fn)


@mistake(ex.check_hf_conversion, r"transpos|conv1d|mask|two|and|both")
def hf_no_transpose_keeps_mask(sd):  # combination: nothing transposed and the masks kept
    return _conv(sd, transpose=lambda n, t: False, drop=lambda n: False)


@mistake(ex.check_hf_conversion, r"last|layer|h\.1|only")  # strict: where (one key of the last layer)
def hf_last_mlp_proj_untransposed(sd):  # partial: the last layer's mlp.c_proj not transposed
    last = max(int(n.split(".")[2]) for n in sd if n.startswith("transformer.h."))
    return _conv(sd, transpose=lambda n, t: n.endswith(CONV1D) and not n.endswith(f"h.{last}.mlp.c_proj.weight"))


@mistake(ex.check_hf_conversion, r"wpe|position|missing|dropped")
def hf_drop_wpe(sd):
    return _conv(sd, drop=lambda n: n.endswith((".attn.bias", ".attn.masked_bias")) or "wpe" in n)


@mistake(ex.check_hf_conversion, r"bias|c_proj|missing|dropped")
def hf_drop_proj_bias(sd):  # partial: the attention's c_proj biases dropped
    return _conv(sd, drop=lambda n: n.endswith((".attn.bias", ".attn.masked_bias", "attn.c_proj.bias")))


@mistake(ex.check_hf_conversion, r"ln_f|weight.*bias|bias.*weight|swap")
def hf_ln_f_swapped(sd):  # ln_f's weight and bias swapped
    return _conv(sd, rename=lambda n: {"transformer.ln_f.weight": "transformer.ln_f.bias",
                                       "transformer.ln_f.bias": "transformer.ln_f.weight"}.get(n, n))


@mistake(ex.check_hf_conversion, r"c_attn\.bias|dropped")  # written as valid: endswith("attn.bias") drops c_attn.bias
def hf_valid_comprehension(sd):
    return {n: (t.T if any(n.endswith(s) for s in CONV1D) else t.clone()) for n, t in sd.items()
            if not n.endswith(("attn.bias", "attn.masked_bias"))}


@valid(ex.check_hf_conversion)
def hf_valid_by_parts(sd):  # transpose(0, 1) chosen by the layer's part names, masks recognised by their name parts
    out = {}
    for n, t in sd.items():
        parts = n.split(".")
        if parts[-2] in ("attn",) and parts[-1] in ("bias", "masked_bias"):
            continue
        if parts[-1] == "weight" and parts[-2] in ("c_attn", "c_proj", "c_fc"):
            t = t.transpose(0, 1)
        out[n] = t
    return out


@valid(ex.check_hf_conversion)
def hf_valid_ordered_copy(sd):  # iterating in reverse order, copying every tensor
    out = {}
    for n in reversed(list(sd)):
        if n.endswith((".attn.bias", ".attn.masked_bias")):
            continue
        t = sd[n].detach().clone()
        out[n] = t.t().contiguous() if n.endswith(CONV1D) else t
    return out


# ------------------------------------------------------------------------------------------ LR schedule
def _lr(it, lr, mn, wu, dec, warm=lambda it, wu: (it + 1) / (wu + 1), coeff=lambda p: 0.5 * (1 + math.cos(math.pi * p)),
        floor=None, after=None, progress=None):
    if it < wu:
        return lr * warm(it, wu)
    if it >= dec:
        return mn if after is None else after(lr, mn)
    p = (it - wu) / (dec - wu) if progress is None else progress(it, wu, dec)
    f = mn if floor is None else floor(mn)
    return f + coeff(p) * (lr - f)


@mistake(ex.check_lr_schedule, r"warm|\+ ?2|off by|offset")
def lr_warm_plus_two(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # cousin: (it + 2) / (wu + 1)
    return _lr(it, learning_rate, min_lr, warmup_iters, lr_decay_iters, warm=lambda it, wu: min(1, (it + 2) / (wu + 1)))


@mistake(ex.check_lr_schedule, r"warm|denominator|\+ ?1|wu|warmup_iters")
def lr_warm_over_wu(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # (it + 1) / warmup_iters
    return _lr(it, learning_rate, min_lr, warmup_iters, lr_decay_iters, warm=lambda it, wu: (it + 1) / wu)


@mistake(ex.check_lr_schedule, r"warm|\+ ?2|denominator")
def lr_warm_over_wu_plus_two(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # (it + 1) / (wu + 2)
    return _lr(it, learning_rate, min_lr, warmup_iters, lr_decay_iters, warm=lambda it, wu: (it + 1) / (wu + 2))


@mistake(ex.check_lr_schedule, r"floor|2 ?\* ?min|twice|min_lr")
def lr_floor_twice_min(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # cousin: the cosine ends at 2 min_lr
    return _lr(it, learning_rate, min_lr, warmup_iters, lr_decay_iters, floor=lambda mn: 2 * mn)


@mistake(ex.check_lr_schedule, r"zero|0\b|floor|min_lr")
def lr_cosine_to_zero(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # cosine to 0, min_lr only after
    return _lr(it, learning_rate, min_lr, warmup_iters, lr_decay_iters, floor=lambda mn: 0.0)


@mistake(ex.check_lr_schedule, r"full|2 ?\*? ?pi|period|twice|cosine")
def lr_full_cosine(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # cos(2 pi p): back up to the peak
    return _lr(it, learning_rate, min_lr, warmup_iters, lr_decay_iters,
               coeff=lambda p: 0.5 * (1 + math.cos(2 * math.pi * p)))


@mistake(ex.check_lr_schedule, r"quarter|pi ?/ ?2|half|cosine")
def lr_quarter_cosine(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # cos(pi p / 2)
    return _lr(it, learning_rate, min_lr, warmup_iters, lr_decay_iters, coeff=lambda p: math.cos(math.pi * p / 2))


@mistake(ex.check_lr_schedule, r"progress|warm|subtract|decay_iters|horizon|never reaches its floor")  # fair
def lr_progress_over_decay(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # (it - wu) / dec
    return _lr(it, learning_rate, min_lr, warmup_iters, lr_decay_iters,
               progress=lambda it, wu, dec: (it - wu) / dec)


@mistake(ex.check_lr_schedule, r"after|learning_rate|peak|end|past|jump")
def lr_after_peak(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # after lr_decay_iters: back to the peak
    return _lr(it, learning_rate, min_lr, warmup_iters, lr_decay_iters, after=lambda lr, mn: lr)


@mistake(ex.check_lr_schedule, r"linear")
def lr_linear_decay(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    return _lr(it, learning_rate, min_lr, warmup_iters, lr_decay_iters, coeff=lambda p: 1 - p)


@mistake(ex.check_lr_schedule, r"0\.5|half|factor|1 ?\+|coefficient")
def lr_missing_half(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # (1 + cos) without 0.5
    return _lr(it, learning_rate, min_lr, warmup_iters, lr_decay_iters, coeff=lambda p: 1 + math.cos(math.pi * p))


@mistake(ex.check_lr_schedule, r"first|it ?= ?0|step 0|warm")
def lr_first_step_full(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # partial: step 0 at the peak
    if it == 0:
        return learning_rate
    return _lr(it, learning_rate, min_lr, warmup_iters, lr_decay_iters)


@mistake(ex.check_lr_schedule, r"(warm|0 at).*(linear)|linear.*(warm|0 at)|two|and")
def lr_zero_start_linear(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # combination: it / wu and linear
    return _lr(it, learning_rate, min_lr, warmup_iters, lr_decay_iters, warm=lambda it, wu: it / wu,
               coeff=lambda p: 1 - p)


@mistake(ex.check_lr_schedule, r"progress|off by|\+ ?1|offset|step")
def lr_progress_plus_one(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # progress (it - wu + 1) / (...)
    return _lr(it, learning_rate, min_lr, warmup_iters, lr_decay_iters,
               progress=lambda it, wu, dec: min(1.0, (it - wu + 1) / (dec - wu)))


@valid(ex.check_lr_schedule)
def lr_valid_le_warmup(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # `it <= warmup_iters` (allowed)
    if it <= warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    return _lr(it, learning_rate, min_lr, warmup_iters, lr_decay_iters)


@valid(ex.check_lr_schedule)
def lr_valid_gt_decay(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # `it > lr_decay_iters`: same value
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it > lr_decay_iters:
        return min_lr
    p = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
    return min_lr + 0.5 * (1 + math.cos(math.pi * p)) * (learning_rate - min_lr)


@valid(ex.check_lr_schedule)
def lr_valid_cos_squared(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # (1 + cos pi p)/2 = cos^2(pi p/2)
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    p = min(1.0, (it - warmup_iters) / max(1, lr_decay_iters - warmup_iters))
    return min_lr + math.cos(math.pi * p / 2) ** 2 * (learning_rate - min_lr)


@valid(ex.check_hf_conversion)
def hf_valid_einops_like(sd):  # permute(1, 0) on the Conv1D weights, the masks dropped by their last two name parts
    out = {}
    for n, t in sd.items():
        if n.split(".")[-2:] in (["attn", "bias"], ["attn", "masked_bias"]):
            continue
        out[n] = t.permute(1, 0) if n.endswith(CONV1D) else t
    return out


import heldout_probe_round21_modern3  # noqa: E402,F401
