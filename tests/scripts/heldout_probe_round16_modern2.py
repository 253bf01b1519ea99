"""Round 16, modern part, second file: SwiGLU, grouped-query attention, GPT-2 conversion (see
heldout_probe_round16_modern.py)."""

from __future__ import annotations

import math
import re

import numpy as np
import torch
import torch.nn.functional as F

import mingpt.exercises as ex
from heldout_probe_models import mistake, valid


# ------------------------------------------------------------------------------------------ SwiGLU
@mistake(ex.check_swiglu, r"up|gate|branch|swap|wrong (branch|side)")
def swi_silu_on_up(x, w_gate, w_up, w_down):  # the SiLU on the up branch
    return F.linear(F.linear(x, w_gate) * F.silu(F.linear(x, w_up)), w_down)


@mistake(ex.check_swiglu, r"both|silu|activation")
def swi_silu_both(x, w_gate, w_up, w_down):
    return F.linear(F.silu(F.linear(x, w_gate)) * F.silu(F.linear(x, w_up)), w_down)


@mistake(ex.check_swiglu, r"gelu|activation|silu")
def swi_gelu(x, w_gate, w_up, w_down):  # GPT-2 habit: GELU (makes GeGLU)
    return F.linear(F.gelu(F.linear(x, w_gate)) * F.linear(x, w_up), w_down)


@mistake(ex.check_swiglu, r"sigmoid|activation|silu|glu")
def swi_sigmoid(x, w_gate, w_up, w_down):  # the original GLU's sigmoid gate
    return F.linear(torch.sigmoid(F.linear(x, w_gate)) * F.linear(x, w_up), w_down)


@mistake(ex.check_swiglu, r"silu|after|product|placement|order")
def swi_silu_after_product(x, w_gate, w_up, w_down):
    return F.linear(F.silu(F.linear(x, w_gate) * F.linear(x, w_up)), w_down)


@mistake(ex.check_swiglu, r"silu|output|after|placement|down")
def swi_silu_on_output(x, w_gate, w_up, w_down):
    return F.silu(F.linear(F.linear(x, w_gate) * F.linear(x, w_up), w_down))


@mistake(ex.check_swiglu, r"sum|add|plus|product|multipl")
def swi_sum(x, w_gate, w_up, w_down):  # gate added to up, not multiplied
    return F.linear(F.silu(F.linear(x, w_gate)) + F.linear(x, w_up), w_down)


@mistake(ex.check_swiglu, r"w_up|\bup\b|unused|same|twice")
def swi_gate_twice(x, w_gate, w_up, w_down):  # copy-paste: w_gate used for both branches
    return F.linear(F.silu(F.linear(x, w_gate)) * F.linear(x, w_gate), w_down)


@mistake(ex.check_swiglu, r"silu|sigmoid|activation|sign")
def swi_silu_by_hand(x, w_gate, w_up, w_down):  # z / (1 + exp(z)) is z * sigmoid(-z)
    g = F.linear(x, w_gate)
    return F.linear(g / (1 + torch.exp(g)) * F.linear(x, w_up), w_down)


@mistake(ex.check_swiglu, r"grad|detach|no_grad")
def swi_gate_no_grad(x, w_gate, w_up, w_down):  # the gate computed as a constant
    with torch.no_grad():
        gate = F.silu(F.linear(x, w_gate))
    return F.linear(gate * F.linear(x, w_up), w_down)


@mistake(ex.check_swiglu, r"relu|activation|silu")
def swi_relu(x, w_gate, w_up, w_down):  # ReGLU: max(0, z) by clamp
    return F.linear(F.linear(x, w_gate).clamp(min=0) * F.linear(x, w_up), w_down)


@mistake(ex.check_swiglu, r"down|shape|project")
def swi_no_down(x, w_gate, w_up, w_down):  # the down projection forgotten: (.., H)
    return F.silu(F.linear(x, w_gate)) * F.linear(x, w_up)


@mistake(ex.check_swiglu, r"dtype|float64|double")
def swi_numpy(x, w_gate, w_up, w_down):  # a numpy round trip keeps numpy's float64
    xn, g, u, d = (t.detach().numpy().astype(np.float64) for t in (x, w_gate, w_up, w_down))
    a = xn @ g.T
    h = a / (1 + np.exp(-a)) * (xn @ u.T)
    return torch.from_numpy(h @ d.T)


@mistake(ex.check_swiglu, r"silu|sigmoid|activation|gelu|1\.702|approx")
def swi_quick_gelu(x, w_gate, w_up, w_down):  # z sigmoid(1.702 z): the quick-GELU, not the SiLU
    g = F.linear(x, w_gate)
    return F.linear(g * torch.sigmoid(1.702 * g) * F.linear(x, w_up), w_down)


@mistake(ex.check_swiglu, r"transpos|layout|\(in, ?out\)|\.T|orientation")
def swi_keras_layout(x, w_gate, w_up, w_down):  # Keras habit: x @ W, reshaping the weight to (in, out)
    C, H = x.size(-1), w_gate.size(0)
    g = x @ w_gate.reshape(C, H)
    u = x @ w_up.reshape(C, H)
    return (F.silu(g) * u) @ w_down.reshape(H, C)


@valid(ex.check_swiglu)
def swi_matmul(x, w_gate, w_up, w_down):
    return (F.silu(x @ w_gate.T) * (x @ w_up.T)) @ w_down.T


@valid(ex.check_swiglu)
def swi_fused(x, w_gate, w_up, w_down):  # gate and up in one matmul, silu written out
    g, u = F.linear(x, torch.cat((w_gate, w_up), 0)).chunk(2, -1)
    return torch.einsum("...h,ch->...c", g * torch.sigmoid(g) * u, w_down)


# ------------------------------------------------------------------------------------------ GQA
def _attend(q, k, v, scale=None):
    T = q.size(2)
    att = (q @ k.transpose(-2, -1)) / (math.sqrt(q.size(-1)) if scale is None else scale)
    att = att.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    return att.softmax(-1) @ v


def _rep(q, k, v):
    g = q.size(1) // k.size(1)
    return k.repeat_interleave(g, 1), v.repeat_interleave(g, 1)


@mistake(ex.check_gqa, r"repeat|interleav|tile|group|modulo|%|which (k/?v )?head")
def gqa_repeat(q, k, v):  # repeat tiles the heads: query head j reads K/V head j % n_kv
    g = q.size(1) // k.size(1)
    return _attend(q, k.repeat(1, g, 1, 1), v.repeat(1, g, 1, 1))


@mistake(ex.check_gqa, r"repeat|interleav|tile|group|modulo|%|which (k/?v )?head|expand")
def gqa_expand_wrong_axis(q, k, v):  # expand with the new axis before the K/V heads: a tiling too
    B, nkv, T, hs = k.shape
    g = q.size(1) // nkv
    k = k[:, None].expand(B, g, nkv, T, hs).reshape(B, g * nkv, T, hs)
    v = v[:, None].expand(B, g, nkv, T, hs).reshape(B, g * nkv, T, hs)
    return _attend(q, k, v)


@mistake(ex.check_gqa, r"scal|sqrt|d_model|n_embd")
def gqa_scale_d_model(q, k, v):  # paper habit: sqrt(d_model) = sqrt(n_head * hs)
    k, v = _rep(q, k, v)
    return _attend(q, k, v, scale=math.sqrt(q.size(1) * q.size(-1)))


@mistake(ex.check_gqa, r"scal|sqrt")
def gqa_scale_hs(q, k, v):  # 1/hs, the root forgotten
    k, v = _rep(q, k, v)
    return _attend(q, k, v, scale=q.size(-1))


@mistake(ex.check_gqa, r"scal|sqrt")
def gqa_no_scale(q, k, v):
    k, v = _rep(q, k, v)
    return _attend(q, k, v, scale=1.0)


@mistake(ex.check_gqa, r"causal|mask|future|look.?ahead")
def gqa_mask_discarded(q, k, v):  # masked_fill's result thrown away
    k, v = _rep(q, k, v)
    T = q.size(2)
    att = (q @ k.transpose(-2, -1)) / math.sqrt(q.size(-1))
    att.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    return att.softmax(-1) @ v


@mistake(ex.check_gqa, r"causal|mask|future|tril|triu|look.?ahead|invert|revers|past")
def gqa_mask_past(q, k, v):  # tril where triu was meant: the past hidden, the future seen
    k, v = _rep(q, k, v)
    T = q.size(2)
    att = (q @ k.transpose(-2, -1)) / math.sqrt(q.size(-1))
    att = att.masked_fill(torch.ones(T, T, dtype=torch.bool).tril(-1), float("-inf"))
    return att.softmax(-1) @ v


@mistake(ex.check_gqa, r"diagonal|itself|own|self|nan|triu\(0\)")
def gqa_mask_diagonal(q, k, v):  # triu() without 1 hides each position from itself
    k, v = _rep(q, k, v)
    T = q.size(2)
    att = (q @ k.transpose(-2, -1)) / math.sqrt(q.size(-1))
    att = att.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(), float("-inf"))
    return att.softmax(-1) @ v


@mistake(ex.check_gqa, r"softmax|dim|axis|normali|quer")
def gqa_softmax_queries(q, k, v):  # softmax over the queries' axis
    k, v = _rep(q, k, v)
    T = q.size(2)
    att = (q @ k.transpose(-2, -1)) / math.sqrt(q.size(-1))
    att = att.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    return att.softmax(-2).nan_to_num() @ v


@mistake(ex.check_gqa, r"softmax|dim|axis|head")
def gqa_softmax_no_dim(q, k, v):  # F.softmax without dim: picks dim 1 (the heads) for 4-D input
    k, v = _rep(q, k, v)
    T = q.size(2)
    att = (q @ k.transpose(-2, -1)) / math.sqrt(q.size(-1))
    att = att.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return F.softmax(att, _stacklevel=3).nan_to_num() @ v


@mistake(ex.check_gqa, r"causal|mask|future|look.?ahead|additive")
def gqa_hf_additive_mask(q, k, v):  # HF habit: mask of 1 = keep, added to the scores
    k, v = _rep(q, k, v)
    T = q.size(2)
    att = (q @ k.transpose(-2, -1)) / math.sqrt(q.size(-1))
    att = att + torch.ones(T, T).tril()
    return att.softmax(-1) @ v


@mistake(ex.check_gqa, r"shape|transpose|layout|\(B, ?T")
def gqa_heads_last(q, k, v):  # returns (B, T, nh, hs), ready for the next step
    k, v = _rep(q, k, v)
    return _attend(q, k, v).transpose(1, 2)


@mistake(ex.check_gqa, r"mean|averag|group|share|head|mqa|multi-query")
def gqa_mean_kv(q, k, v):  # every query head reads the average K/V head
    return _attend(q, k.mean(1, keepdim=True).expand_as(q), v.mean(1, keepdim=True).expand_as(q))


@mistake(ex.check_gqa, r"dropout|random|determin")
def gqa_functional_dropout(q, k, v):  # F.dropout trains by default
    k, v = _rep(q, k, v)
    T = q.size(2)
    att = (q @ k.transpose(-2, -1)) / math.sqrt(q.size(-1))
    att = att.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    return F.dropout(att.softmax(-1), 0.1) @ v


@mistake(ex.check_gqa, r"value|\bv\b|key")
def gqa_attend_keys(q, k, v):  # the keys weighted instead of the values
    k, v = _rep(q, k, v)
    return _attend(q, k, k)


@mistake(ex.check_gqa, r"transpos|reshape|view")
def gqa_view_not_transpose(q, k, v):  # view where a transpose is needed
    k, v = _rep(q, k, v)
    B, nh, T, hs = k.shape
    att = (q @ k.reshape(B, nh, hs, T)) / math.sqrt(hs)
    att = att.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    return att.softmax(-1) @ v


@valid(ex.check_gqa)
def gqa_head_loop(q, k, v):  # one query head at a time, reading K/V head j // group, mask -1e9
    g = q.size(1) // k.size(1)
    T = q.size(2)
    outs = []
    for j in range(q.size(1)):
        s = q[:, j] @ k[:, j // g].mT / q.size(-1) ** 0.5
        s = s.masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool), 1), -1e9)
        s = s - s.max(-1, keepdim=True).values
        p = s.exp() / s.exp().sum(-1, keepdim=True)
        outs.append(p @ v[:, j // g])
    return torch.stack(outs, 1)


@valid(ex.check_gqa)
def gqa_sdpa(q, k, v):
    k, v = _rep(q, k, v)
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


@valid(ex.check_gqa)
def gqa_grouped_view(q, k, v):  # queries grouped (B, nkv, g, T, hs) against their shared K/V head
    B, nh, T, hs = q.shape
    nkv = k.size(1)
    qg = q.view(B, nkv, nh // nkv, T, hs)
    s = qg @ k[:, :, None].transpose(-2, -1) / math.sqrt(hs)
    s = s.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf"))
    return (s.softmax(-1) @ v[:, :, None]).reshape(B, nh, T, hs)


# ------------------------------------------------------------------------------------------ GPT-2 conversion
CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
MASKS = (".attn.bias", ".attn.masked_bias")


@mistake(ex.check_hf_conversion, r"transpos|conv1d|layout")
def hf_no_transpose(sd):
    return {k: v for k, v in sd.items() if not k.endswith(MASKS)}


@mistake(ex.check_hf_conversion, r"transpos|wte|wpe|embedding|lm_head|every|all")
def hf_transpose_all_2d(sd):  # every matrix transposed, the embeddings and the head too
    return {k: (v.t() if v.dim() == 2 else v) for k, v in sd.items() if not k.endswith(MASKS)}


@mistake(ex.check_hf_conversion, r"c_attn\.bias|bias|dropp|missing")
def hf_suffix_without_dot(sd):  # endswith("attn.bias") also matches "c_attn.bias"
    out = {}
    for k, v in sd.items():
        if k.endswith(("attn.bias", "attn.masked_bias")):
            continue
        out[k] = v.t() if k.endswith(CONV1D) else v
    return out


@mistake(ex.check_hf_conversion, r"mask|attn\.bias|masked_bias|buffer|unexpected|extra")
def hf_keeps_masks(sd):
    return {k: (v.t() if k.endswith(CONV1D) else v) for k, v in sd.items()}


@mistake(ex.check_hf_conversion, r"masked_bias|mask|unexpected|extra")
def hf_keeps_masked_bias(sd):  # only the old name skipped
    return {k: (v.t() if k.endswith(CONV1D) else v) for k, v in sd.items() if not k.endswith(".attn.bias")}


@mistake(ex.check_hf_conversion, r"mlp|c_fc|transpos")
def hf_attention_only_transposed(sd):
    return {k: (v.t() if k.endswith(CONV1D[:2]) else v) for k, v in sd.items() if not k.endswith(MASKS)}


@mistake(ex.check_hf_conversion, r"prefix|transformer\.|name|key")
def hf_strip_prefix(sd):  # GPT2Model habit: names without "transformer."
    return {k.removeprefix("transformer."): (v.t() if k.endswith(CONV1D) else v)
            for k, v in sd.items() if not k.endswith(MASKS)}


@mistake(ex.check_hf_conversion, r"lm_head|missing|tied")
def hf_drop_head(sd):  # "lm_head is just wte again"
    return {k: (v.t() if k.endswith(CONV1D) else v) for k, v in sd.items()
            if not k.endswith(MASKS) and not k.startswith("lm_head")}


@mistake(ex.check_hf_conversion, r"reshape|view|transpos")
def hf_reshape(sd):  # reshape to the transposed shape: the numbers in the wrong places
    return {k: (v.reshape(v.shape[1], v.shape[0]) if k.endswith(CONV1D) else v)
            for k, v in sd.items() if not k.endswith(MASKS)}


@mistake(ex.check_hf_conversion, r"dtype|float16|half|precision")
def hf_half(sd):  # torch_dtype=float16 habit
    return {k: (v.t() if k.endswith(CONV1D) else v).half() for k, v in sd.items() if not k.endswith(MASKS)}


@mistake(ex.check_hf_conversion, r"in.?place|modif|input|mutat|caller")
def hf_pops_input(sd):  # deletes the masks from the caller's dict and transposes in it
    for k in [k for k in sd if k.endswith(MASKS)]:
        del sd[k]
    for k in list(sd):
        if k.endswith(CONV1D):
            sd[k] = sd[k].t()
    return sd


@mistake(ex.check_hf_conversion, r"attn\.c_proj|c_proj|transpos")
def hf_forgets_attn_proj(sd):
    keys = ("attn.c_attn.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
    return {k: (v.t() if k.endswith(keys) else v) for k, v in sd.items() if not k.endswith(MASKS)}


@mistake(ex.check_hf_conversion, r"ln_1|ln1|name|key|rename")
def hf_transformerlens_names(sd):  # TransformerLens' ln1 / ln2
    out = {}
    for k, v in sd.items():
        if k.endswith(MASKS):
            continue
        out[k.replace(".ln_1.", ".ln1.").replace(".ln_2.", ".ln2.")] = v.t() if k.endswith(CONV1D) else v
    return out


@mistake(ex.check_hf_conversion, r"bias")
def hf_drops_all_biases(sd):  # "bias" in the name: every bias skipped with the masks
    return {k: (v.t() if k.endswith(CONV1D) else v) for k, v in sd.items() if "bias" not in k}


@mistake(ex.check_hf_conversion, r"numpy|tensor|type|ndarray")
def hf_numpy(sd):
    return {k: (v.t() if k.endswith(CONV1D) else v).numpy() for k, v in sd.items() if not k.endswith(MASKS)}


@mistake(ex.check_hf_conversion, r"layer|h\.1|missing|last")
def hf_layers_off_by_one(sd):  # per-layer names rebuilt with range(n_layer - 1)
    n_layer = 1 + max(int(m.group(1)) for k in sd if (m := re.match(r"transformer\.h\.(\d+)\.", k)))
    out = {k: v for k, v in sd.items() if not k.startswith("transformer.h.")}
    for i in range(n_layer - 1):
        for k, v in sd.items():
            if k.startswith(f"transformer.h.{i}.") and not k.endswith(MASKS):
                out[k] = v.t() if k.endswith(CONV1D) else v
    return out


@valid(ex.check_hf_conversion)
def hf_substring(sd):  # substring test: the biases are "transposed" too, a no-op on 1-D tensors
    out = {}
    for k, v in sd.items():
        if k.endswith(MASKS):
            continue
        out[k] = v.t().clone() if any(s in k for s in ("c_attn", "c_proj", "c_fc")) else v.clone()
    return out


@valid(ex.check_hf_conversion)
def hf_regex(sd):
    skip = re.compile(r"\.attn\.(masked_)?bias$")
    return {k: (v.permute(1, 0).contiguous() if k.endswith(CONV1D) else v) for k, v in sd.items()
            if not skip.search(k)}


import heldout_probe_round16_modern3  # noqa: E402,F401
