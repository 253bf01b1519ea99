"""Round 18, modern part 2: SwiGLU, grouped-query attention and the GPT-2 conversion (see the first part)."""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
import torch.nn.functional as F

import mingpt.exercises as ex
from heldout_probe_models import mistake, valid


# ------------------------------------------------------------------------------------------ SwiGLU
@mistake(ex.check_swiglu, r"swap|gate|up")
def swi_silu_on_up(x, w_gate, w_up, w_down):  # the SiLU on the up branch
    return F.linear(F.linear(x, w_gate) * F.silu(F.linear(x, w_up)), w_down)


@mistake(ex.check_swiglu, r"gelu|activation|silu")
def swi_gelu(x, w_gate, w_up, w_down):  # GeGLU by habit from GPT-2
    return F.linear(F.gelu(F.linear(x, w_gate)) * F.linear(x, w_up), w_down)


@mistake(ex.check_swiglu, r"sigmoid|glu|activation|silu")
def swi_sigmoid_gate(x, w_gate, w_up, w_down):  # the original GLU's sigmoid gate, not SiLU
    return F.linear(torch.sigmoid(F.linear(x, w_gate)) * F.linear(x, w_up), w_down)


@mistake(ex.check_swiglu, r"order|product|after|silu|activation")
def swi_silu_after_product(x, w_gate, w_up, w_down):
    return F.linear(F.silu(F.linear(x, w_gate) * F.linear(x, w_up)), w_down)


@mistake(ex.check_swiglu, r"relu|activation|silu")
def swi_relu(x, w_gate, w_up, w_down):  # ReGLU
    return F.linear(F.relu(F.linear(x, w_gate)) * F.linear(x, w_up), w_down)


@mistake(ex.check_swiglu, r"1\.702|approximat|sigmoid|silu|activation|gelu")
def swi_scaled_sigmoid(x, w_gate, w_up, w_down):  # x * sigmoid(1.702 x): GELU's sigmoid approximation, not SiLU
    g = F.linear(x, w_gate)
    return F.linear(g * torch.sigmoid(1.702 * g) * F.linear(x, w_up), w_down)


@mistake(ex.check_swiglu, r"sum|add|plus|product|multipl")
def swi_sum_not_product(x, w_gate, w_up, w_down):
    return F.linear(F.silu(F.linear(x, w_gate)) + F.linear(x, w_up), w_down)


@mistake(ex.check_swiglu, r"down|project|shape")
def swi_no_down(x, w_gate, w_up, w_down):  # forgets the down projection: (.., H) out
    return F.silu(F.linear(x, w_gate)) * F.linear(x, w_up)


@mistake(ex.check_swiglu, r"down|order|each|branch|project")
def swi_down_on_each_branch(x, w_gate, w_up, w_down):  # projects each branch down, then multiplies
    return F.linear(F.silu(F.linear(x, w_gate)), w_down) * F.linear(F.linear(x, w_up), w_down)


@mistake(ex.check_swiglu, r"sign|sigmoid|silu|activation")
def swi_silu_sign_slip(x, w_gate, w_up, w_down):  # x / (1 + exp(x)): a sign slip in a hand-written SiLU
    g = F.linear(x, w_gate)
    return F.linear(g / (1 + torch.exp(g)) * F.linear(x, w_up), w_down)


@mistake(ex.check_swiglu, r"w_up|twice|same|copy|gate|weight")
def swi_up_weight_twice(x, w_gate, w_up, w_down):  # copy-paste: the up weight used for the gate too
    return F.linear(F.silu(F.linear(x, w_up)) * F.linear(x, w_up), w_down)


@mistake(ex.check_swiglu, r"transpos|layout|shape|\(out, in\)|\(in, out\)")
def swi_weights_as_in_out(x, w_gate, w_up, w_down):  # x @ W (only runs where H == C)
    return (F.silu(x @ w_gate) * (x @ w_up)) @ w_down


@mistake(ex.check_swiglu, r"swap|gate|up|gelu|activation")
def swi_double_swap_and_gelu(x, w_gate, w_up, w_down):  # two slips: GELU, and on the up branch
    return F.linear(F.linear(x, w_gate) * F.gelu(F.linear(x, w_up)), w_down)


@mistake(ex.check_swiglu, r"dtype|precision|half|float")
def swi_half_precision(x, w_gate, w_up, w_down):  # "to save memory": the hidden layer in float16
    h = F.silu(F.linear(x, w_gate).half()) * F.linear(x, w_up).half()
    return F.linear(h.to(x.dtype), w_down)


@valid(ex.check_swiglu)
def swi_valid_einsum(x, w_gate, w_up, w_down):
    g = torch.einsum("...c,hc->...h", x, w_gate)
    u = torch.einsum("...c,hc->...h", x, w_up)
    return torch.einsum("...h,ch->...c", g * torch.sigmoid(g) * u, w_down)


@valid(ex.check_swiglu)
def swi_valid_fused_weights(x, w_gate, w_up, w_down):  # one matmul for gate and up, then chunk
    g, u = F.linear(x, torch.cat((w_gate, w_up), 0)).chunk(2, dim=-1)
    return F.linear(F.silu(g, inplace=True) * u, w_down)  # in place on a fresh tensor: harmless


@valid(ex.check_swiglu)
def swi_valid_matmul_T(x, w_gate, w_up, w_down):
    g = x @ w_gate.T
    return (g / (1 + torch.exp(-g)) * (x @ w_up.T)) @ w_down.T


# ------------------------------------------------------------------------------------------ GQA
def _causal(T):
    return torch.ones(T, T, dtype=torch.bool).triu(1)


def _attend(q, k, v, scale=None, fill=float("-inf"), dim=-1):
    T = q.size(2)
    att = (q @ k.transpose(-2, -1)) / (math.sqrt(q.size(-1)) if scale is None else scale)
    att = att.masked_fill(_causal(T), fill)
    return att.softmax(dim=dim) @ v


def _ri(q, k, v):
    g = q.size(1) // k.size(1)
    return k.repeat_interleave(g, 1), v.repeat_interleave(g, 1)


@mistake(ex.check_gqa, r"repeat|interleav|group|tile|order|consecutive")
def gqa_tiled(q, k, v):  # .repeat: query head j reads K/V head j % n_kv, not j // group
    g = q.size(1) // k.size(1)
    return _attend(q, k.repeat(1, g, 1, 1), v.repeat(1, g, 1, 1))


@mistake(ex.check_gqa, r"mask|causal|future")
def gqa_no_mask(q, k, v):
    k, v = _ri(q, k, v)
    return ((q @ k.transpose(-2, -1)) / math.sqrt(q.size(-1))).softmax(-1) @ v


@mistake(ex.check_gqa, r"scal|sqrt")
def gqa_scale_hs(q, k, v):  # 1/hs instead of 1/sqrt(hs)
    k, v = _ri(q, k, v)
    return _attend(q, k, v, scale=q.size(-1))


@mistake(ex.check_gqa, r"diagonal|mask|nan|itself|self")
def gqa_mask_diagonal(q, k, v):  # triu(0): each position may not see itself (the first row is all -inf)
    k, v = _ri(q, k, v)
    T = q.size(2)
    att = (q @ k.transpose(-2, -1)) / math.sqrt(q.size(-1))
    att = att.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(0), float("-inf"))
    return att.softmax(-1) @ v


@mistake(ex.check_gqa, r"softmax|axis|dim")
def gqa_softmax_queries(q, k, v):
    k, v = _ri(q, k, v)
    return _attend(q, k, v, dim=-2)


@mistake(ex.check_gqa, r"repeat|interleav|group|tile|order|consecutive|head")
def gqa_modulo_loop(q, k, v):  # head by head, K/V head h % n_kv: the tiling slip in a loop
    outs = []
    for h in range(q.size(1)):
        j = h % k.size(1)
        outs.append(_attend(q[:, h:h + 1], k[:, j:j + 1], v[:, j:j + 1]))
    return torch.cat(outs, 1)


@mistake(ex.check_gqa, r"scal|sqrt")
def gqa_scale_by_T(q, k, v):  # sqrt(q.size(-2)): T, not hs (a layout slip; equal where T == hs)
    k, v = _ri(q, k, v)
    return _attend(q, k, v, scale=math.sqrt(q.size(-2)))


@mistake(ex.check_gqa, r"mask|fill|zero|0|-inf")
def gqa_fill_zero(q, k, v):  # masked scores set to 0, not -inf
    k, v = _ri(q, k, v)
    return _attend(q, k, v, fill=0.0)


@mistake(ex.check_gqa, r"shape|transpos|layout|\(B, T")
def gqa_returns_btnh(q, k, v):  # returns (B, T, nh, hs), ready for the merge: not the contract
    k, v = _ri(q, k, v)
    return _attend(q, k, v).transpose(1, 2)


@mistake(ex.check_gqa, r"mask|causal|future")
def gqa_sdpa_not_causal(q, k, v):
    k, v = _ri(q, k, v)
    return F.scaled_dot_product_attention(q, k, v)


@mistake(ex.check_gqa, r"dropout|random|determin|train")
def gqa_dropout(q, k, v):  # F.dropout defaults to training=True
    k, v = _ri(q, k, v)
    T = q.size(2)
    att = ((q @ k.transpose(-2, -1)) / math.sqrt(q.size(-1))).masked_fill(_causal(T), float("-inf"))
    return F.dropout(att.softmax(-1), p=0.1) @ v


@mistake(ex.check_gqa, r"mask|causal|invert|future|revers")
def gqa_mask_inverted(q, k, v):  # masks the past instead of the future
    k, v = _ri(q, k, v)
    T = q.size(2)
    att = (q @ k.transpose(-2, -1)) / math.sqrt(q.size(-1))
    att = att.masked_fill(torch.tril(torch.ones(T, T), -1) == 1, float("-inf"))
    return att.softmax(-1) @ v


@mistake(ex.check_gqa, r"batch|mix|tile|repeat")  # corrected: batches stay apart; it IS tiling
def gqa_batch_mixed(q, k, v):  # repeat_interleave on the batch axis, then a reshape: written to mix the batch
    B, nkv, T, hs = k.shape
    g = q.size(1) // nkv
    k2 = k.repeat_interleave(g, dim=0).reshape(B, nkv * g, T, hs)
    v2 = v.repeat_interleave(g, dim=0).reshape(B, nkv * g, T, hs)
    return _attend(q, k2, v2)


@mistake(ex.check_gqa, r"repeat|interleav|group|tile|scal|sqrt")
def gqa_double_tiled_unscaled(q, k, v):  # two slips: tiled groups and no 1/sqrt(hs)
    g = q.size(1) // k.size(1)
    return _attend(q, k.repeat(1, g, 1, 1), v.repeat(1, g, 1, 1), scale=1.0)


@valid(ex.check_gqa)
def gqa_valid_grouped_einsum(q, k, v):  # no repeat at all: queries reshaped into (B, n_kv, group, T, hs)
    B, nh, T, hs = q.shape
    nkv = k.size(1)
    qg = q.view(B, nkv, nh // nkv, T, hs)
    att = torch.einsum("bngth,bnsh->bngts", qg, k) / math.sqrt(hs)
    att = att.masked_fill(_causal(T), float("-inf")).softmax(-1)
    return torch.einsum("bngts,bnsh->bngth", att, v).reshape(B, nh, T, hs)


@valid(ex.check_gqa)
def gqa_valid_sdpa_expand(q, k, v):  # expand + reshape (no copy until reshape), SDPA's causal kernel
    B, nkv, T, hs = k.shape
    g = q.size(1) // nkv
    k = k[:, :, None].expand(B, nkv, g, T, hs).reshape(B, nkv * g, T, hs)
    v = v[:, :, None].expand(B, nkv, g, T, hs).reshape(B, nkv * g, T, hs)
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


@valid(ex.check_gqa)
def gqa_valid_float64_where(q, k, v):  # float64 inside, torch.where and a large negative fill
    k, v = _ri(q, k, v)
    T = q.size(2)
    att = (q.double() @ k.double().transpose(-2, -1)) * q.size(-1) ** -0.5
    att = torch.where(_causal(T), torch.tensor(-1e30, dtype=torch.float64), att)
    return (att.softmax(-1) @ v.double()).to(q.dtype)


# ------------------------------------------------------------------------------------------ HF conversion
CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def _skip(name):
    return name.endswith((".attn.bias", ".attn.masked_bias"))


@mistake(ex.check_hf_conversion, r"wte|wpe|embedding|lm_head|transpos|every|all")
def hf_transpose_all_2d(sd):  # every matrix transposed: the embeddings and lm_head too
    return {n: (t.t() if t.dim() == 2 else t) for n, t in sd.items() if not _skip(n)}


@mistake(ex.check_hf_conversion, r"masked_bias|mask|buffer|skip|extra|unexpected")
def hf_keeps_masked_bias(sd):  # skips only ".attn.bias"
    return {n: (t.t() if n.endswith(CONV1D) else t) for n, t in sd.items() if not n.endswith(".attn.bias")}


@mistake(ex.check_hf_conversion, r"bias|missing|dropp|skip")
def hf_drops_every_bias(sd):  # "skip the bias buffers": endswith(".bias") drops the real biases too
    return {n: (t.t() if n.endswith(CONV1D) else t) for n, t in sd.items()
            if not n.endswith((".bias", ".masked_bias"))}


@mistake(ex.check_hf_conversion, r"c_proj|c_fc|transpos|mlp")
def hf_only_c_attn(sd):  # transposes c_attn only
    return {n: (t.t() if n.endswith("attn.c_attn.weight") else t) for n, t in sd.items() if not _skip(n)}


@mistake(ex.check_hf_conversion, r"prefix|name|key|transformer")
def hf_strips_prefix(sd):  # drops "transformer." from every name
    return {n.removeprefix("transformer."): (t.t() if n.endswith(CONV1D) else t) for n, t in sd.items()
            if not _skip(n)}


@mistake(ex.check_hf_conversion, r"reshape|view|transpos|order|values")
def hf_view_not_transpose(sd):  # right shapes, wrong values: a view with swapped sizes is no transpose
    return {n: (t.reshape(t.shape[1], t.shape[0]) if n.endswith(CONV1D) else t) for n, t in sd.items()
            if not _skip(n)}


@mistake(ex.check_hf_conversion, r"in.place|input|modif|mutat|chang")
def hf_mutates_input(sd):  # edits the caller's dict and returns it
    for n in list(sd):
        if _skip(n):
            del sd[n]
        elif n.endswith(CONV1D):
            sd[n] = sd[n].t()
    return sd


@mistake(ex.check_hf_conversion, r"c_attn\.bias|bias|missing|dropp|skip")
def hf_substring_skip(sd):  # '"attn.bias" in name' also matches "c_attn.bias"
    return {n: (t.t() if n.endswith(CONV1D) else t) for n, t in sd.items()
            if "attn.bias" not in n and "masked_bias" not in n}


@mistake(ex.check_hf_conversion, r"square|c_proj|attn\.c_proj|shape|not transposed")  # widened: the square one
def hf_transpose_by_shape(sd):  # transposes the block's matrices that are not square: misses attn.c_proj
    return {n: (t.t() if ".h." in n and t.dim() == 2 and t.size(0) != t.size(1) else t)
            for n, t in sd.items() if not _skip(n)}


@mistake(ex.check_hf_conversion, r"dtype|half|float16|precision")
def hf_half(sd):  # "GPT-2 is big": stored in float16
    return {n: (t.t() if n.endswith(CONV1D) else t).half() for n, t in sd.items() if not _skip(n)}


@mistake(ex.check_hf_conversion, r"numpy|type|tensor|array")
def hf_numpy(sd):  # numpy arrays (copied from a notebook that saved with np.save)
    return {n: (t.t() if n.endswith(CONV1D) else t).numpy() for n, t in sd.items() if not _skip(n)}


@mistake(ex.check_hf_conversion, r"lm_head|head|transpos")
def hf_transposes_lm_head(sd):  # "lm_head is a Linear too, but stored like Conv1D" (it is not)
    return {n: (t.t() if n.endswith(CONV1D + ("lm_head.weight",)) else t) for n, t in sd.items() if not _skip(n)}


@mistake(ex.check_hf_conversion, r"mask|masked_bias|c_proj|mlp|transpos")
def hf_double_masked_bias_and_mlp(sd):  # two slips: masked_bias kept, mlp.c_proj not transposed
    conv = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight")
    return {n: (t.t() if n.endswith(conv) else t) for n, t in sd.items() if not n.endswith(".attn.bias")}


@mistake(ex.check_hf_conversion, r"ln|layer ?norm|weight|bias|swap")
def hf_ln_swapped(sd):  # LayerNorm weight and bias swapped (renamed from gamma/beta the wrong way round)
    out = {}
    for n, t in sd.items():
        if _skip(n):
            continue
        if ".ln_" in n:
            n = n[:-6] + "bias" if n.endswith("weight") else n[:-4] + "weight"
        out[n] = t.t() if n.endswith(CONV1D) else t
    return out


@valid(ex.check_hf_conversion)
def hf_valid_permute_noncontig(sd):  # permute(1, 0): non-contiguous views, an OrderedDict
    out = OrderedDict()
    for n, t in sd.items():
        if "masked_bias" in n or n.endswith(".attn.bias"):
            continue
        out[n] = t.permute(1, 0) if any(n.endswith(c) for c in CONV1D) else t
    return out


@valid(ex.check_hf_conversion)
def hf_valid_T_on_biases_too(sd):  # .t() on the Conv1D biases as well: a no-op on 1-D tensors (looks wrong)
    out = {}
    for n, t in sd.items():
        if _skip(n):
            continue
        layer = n.rsplit(".", 1)[0]
        out[n] = t.t().clone() if layer.endswith(("c_attn", "c_proj", "c_fc")) and t.dim() <= 2 else t.clone()
    return out


import heldout_probe_round18_modern3  # noqa: E402,F401
