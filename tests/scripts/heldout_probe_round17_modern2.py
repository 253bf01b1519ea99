"""The held-out probe, round 17, modern part 2: GPT-2 conversion, LR schedule, weight-decay groups and training runs
(see heldout_probe_round17_modern.py for the angle and counts)."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import mingpt.exercises as ex
from heldout_probe_models import mistake, valid
from mingpt.model import MLP, Block, CausalSelfAttention

# ------------------------------------------------------------------------------------------ GPT-2 conversion
CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
MASKS = (".attn.bias", ".attn.masked_bias")


@mistake(ex.check_hf_conversion, r"transpos|conv1d")
def hf_no_transpose(sd):
    return {k: v for k, v in sd.items() if not k.endswith(MASKS)}


@mistake(ex.check_hf_conversion, r"transpos|embed|wte|wpe|lm_head")
def hf_transposes_every_matrix(sd):
    out = {}
    for k, v in sd.items():
        if k.endswith(MASKS):
            continue
        out[k] = v.t().contiguous() if v.dim() == 2 else v
    return out


@mistake(ex.check_hf_conversion, r"mask|attn\.bias|buffer|extra|unexpected")
def hf_keeps_masks(sd):
    return {k: (v.t() if k.endswith(CONV1D) else v) for k, v in sd.items()}


@mistake(ex.check_hf_conversion, r"bias|missing|dropped")
def hf_drops_every_bias(sd):
    out = {}
    for k, v in sd.items():
        if k.endswith("bias"):
            continue
        out[k] = v.T if k.endswith(CONV1D) else v
    return out


@mistake(ex.check_hf_conversion, r"c_proj|mlp|transpos")
def hf_forgets_mlp_c_proj(sd):
    out = {}
    for k, v in sd.items():
        if k.endswith(MASKS):
            continue
        out[k] = v.t() if k.endswith(CONV1D[:3]) else v
    return out


@mistake(ex.check_hf_conversion, r"mlp|c_fc|transpos")
def hf_only_attention_transposed(sd):
    out = {}
    for k, v in sd.items():
        if k.endswith(MASKS):
            continue
        out[k] = v.t() if ("attn.c_" in k and k.endswith("weight")) else v
    return out


@mistake(ex.check_hf_conversion, r"masked_bias|mask|extra|buffer|unexpected")
def hf_keeps_masked_bias(sd):
    out = {}
    for k, v in sd.items():
        if k.endswith(".attn.bias"):
            continue
        out[k] = v.t() if k.endswith(CONV1D) else v
    return out


@mistake(ex.check_hf_conversion, r"transpos|reshape|view")
def hf_view_not_transpose(sd):
    out = {}
    for k, v in sd.items():
        if k.endswith(MASKS):
            continue
        out[k] = v.reshape(v.shape[1], v.shape[0]) if k.endswith(CONV1D) else v
    return out


@mistake(ex.check_hf_conversion, r"lm_head|missing|tied|head")
def hf_drops_lm_head(sd):
    out = {}
    for k, v in sd.items():
        if k.endswith(MASKS) or k == "lm_head.weight":
            continue
        out[k] = v.t() if k.endswith(CONV1D) else v
    return out


@mistake(ex.check_hf_conversion, r"prefix|key|name|transformer")
def hf_strips_prefix(sd):
    out = {}
    for k, v in sd.items():
        if k.endswith(MASKS):
            continue
        out[k.removeprefix("transformer.")] = v.t() if k.endswith(CONV1D) else v
    return out


@mistake(ex.check_hf_conversion, r"c_attn|bias|missing|dropped")
def hf_substring_drops_c_attn_bias(sd):
    out = {}
    for k, v in sd.items():
        if "attn.bias" in k or "masked_bias" in k:  # also matches "attn.c_attn.bias"
            continue
        out[k] = v.t() if k.endswith(CONV1D) else v
    return out


@mistake(ex.check_hf_conversion, r"transpos|conv1d|mask|buffer|extra")
def hf_copies_everything(sd):
    return dict(sd)


@mistake(ex.check_hf_conversion, r"transpos|embed|wte|wpe|lm_head|missing|head")
def hf_transposes_all_and_drops_head(sd):
    out = {}
    for k, v in sd.items():
        if k.endswith(MASKS) or k.startswith("lm_head"):
            continue
        out[k] = v.T if v.ndim == 2 else v
    return out


@mistake(ex.check_hf_conversion, r"c_attn|transpos|attn")
def hf_forgets_c_attn(sd):
    out = {}
    for k, v in sd.items():
        if k.endswith(MASKS):
            continue
        out[k] = v.t() if k.endswith(CONV1D[1:]) else v
    return out


@valid(ex.check_hf_conversion)
def hf_no_contiguous_permute(sd):
    keep = [k for k in sd if not (k.endswith(".attn.bias") or k.endswith(".attn.masked_bias"))]
    return {k: (sd[k].permute(1, 0) if any(k.endswith(s) for s in CONV1D) else sd[k]) for k in keep}


@valid(ex.check_hf_conversion)
def hf_split_names(sd):
    out = {}
    for k, v in sd.items():
        parts = k.split(".")
        if parts[-2:] in (["attn", "bias"], ["attn", "masked_bias"]):
            continue
        if parts[-1] == "weight" and parts[-2] in ("c_attn", "c_proj", "c_fc"):
            v = v.transpose(0, 1).clone()
        out[k] = v
    return out


# ------------------------------------------------------------------------------------------ LR schedule
def _cos(it, lr, min_lr, warmup, decay):
    p = (it - warmup) / (decay - warmup)
    return min_lr + 0.5 * (1 + math.cos(math.pi * p)) * (lr - min_lr)


# widened after the count: "learning rate 0 at the first step" (hint: count the step, it + 1)
@mistake(ex.check_lr_schedule, r"warm.?up|off.by|\+ ?1|linear|0 at the first step")
def lr_nanogpt_warmup(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    if it < warmup_iters:
        return learning_rate * it / warmup_iters
    if it > lr_decay_iters:
        return min_lr
    return _cos(it, learning_rate, min_lr, warmup_iters, lr_decay_iters)


@mistake(ex.check_lr_schedule, r"warm.?up|off.by|\+ ?1")
def lr_warmup_over_w(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    if it < warmup_iters:
        return learning_rate * (it + 1) / warmup_iters
    if it >= lr_decay_iters:
        return min_lr
    return _cos(it, learning_rate, min_lr, warmup_iters, lr_decay_iters)


@mistake(ex.check_lr_schedule, r"warm.?up")
def lr_no_warmup(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    if it >= lr_decay_iters:
        return min_lr
    return _cos(it, learning_rate, min_lr, warmup_iters, lr_decay_iters) if it >= warmup_iters else learning_rate


@mistake(ex.check_lr_schedule, r"warm.?up|progress|ratio|start|shift|offset")
def lr_cosine_not_shifted(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:
        return min_lr
    ratio = it / lr_decay_iters
    return min_lr + 0.5 * (1 + math.cos(math.pi * ratio)) * (learning_rate - min_lr)


@mistake(ex.check_lr_schedule, r"cos|half|period|pi")
def lr_full_period(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:
        return min_lr
    p = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
    return min_lr + 0.5 * (1 + math.cos(2 * math.pi * p)) * (learning_rate - min_lr)


@mistake(ex.check_lr_schedule, r"min_lr|floor|zero|minimum")
def lr_decays_to_zero(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:
        return 0.0
    p = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
    return 0.5 * (1 + math.cos(math.pi * p)) * learning_rate


@mistake(ex.check_lr_schedule, r"after|beyond|past|end|lr_decay|min_lr|rise")
def lr_no_clamp_after_decay(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    return _cos(it, learning_rate, min_lr, warmup_iters, lr_decay_iters)


@mistake(ex.check_lr_schedule, r"0\.5|half|coefficient|factor|cos|twice|double")
def lr_missing_half(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:
        return min_lr
    p = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
    return min_lr + (1 + math.cos(math.pi * p)) * (learning_rate - min_lr)


@mistake(ex.check_lr_schedule, r"cos|coefficient|1 ?\+|offset|shift")
def lr_missing_one_plus(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:
        return min_lr
    p = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
    return min_lr + 0.5 * math.cos(math.pi * p) * (learning_rate - min_lr)


@mistake(ex.check_lr_schedule, r"linear|cos")
def lr_linear_decay(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:
        return min_lr
    p = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
    return learning_rate - p * (learning_rate - min_lr)


# widened after the count: "LR never reaches its floor", whose text says "dividing by lr_decay_iters stops short"
@mistake(ex.check_lr_schedule, r"progress|ratio|horizon|warm.?up|denominator|lr_decay|never reaches its floor")
def lr_progress_over_decay_iters(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:
        return min_lr
    p = (it - warmup_iters) / lr_decay_iters
    return min_lr + 0.5 * (1 + math.cos(math.pi * p)) * (learning_rate - min_lr)


# widened after the count: "the cosine goes up instead of down" (swapping lr and min_lr gives that same output)
@mistake(ex.check_lr_schedule, r"min_lr|swap|rise|invert|revers|learning_rate|goes up")
def lr_swapped_lr_and_min(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:
        return min_lr
    p = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
    return learning_rate + 0.5 * (1 + math.cos(math.pi * p)) * (min_lr - learning_rate)


@mistake(ex.check_lr_schedule, r"integer|division|//|warm.?up|floor")
def lr_integer_division(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    if it < warmup_iters:
        return learning_rate * ((it + 1) // (warmup_iters + 1))
    if it >= lr_decay_iters:
        return min_lr
    return _cos(it, learning_rate, min_lr, warmup_iters, lr_decay_iters)


@mistake(ex.check_lr_schedule, r"warm.?up|min_lr|zero|floor")
def lr_nanogpt_warmup_to_zero(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    if it < warmup_iters:
        return learning_rate * it / warmup_iters
    if it >= lr_decay_iters:
        return 0.0
    p = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
    return 0.5 * (1.0 + math.cos(math.pi * p)) * learning_rate


@mistake(ex.check_lr_schedule, r"0\.5|half|coefficient|factor|warm.?up|progress|shift|start")
def lr_no_half_not_shifted(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:
        return min_lr
    return min_lr + (1 + math.cos(math.pi * it / lr_decay_iters)) * (learning_rate - min_lr)


@valid(ex.check_lr_schedule)
def lr_cos_squared(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:
        return min_lr
    p = (it - warmup_iters) / max(1, lr_decay_iters - warmup_iters)
    return min_lr + (learning_rate - min_lr) * math.cos(math.pi * p / 2) ** 2


@valid(ex.check_lr_schedule)
def lr_torch_min(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    warm = learning_rate * (it + 1) / (warmup_iters + 1)
    p = min(1.0, max(0.0, (it - warmup_iters) / max(1, lr_decay_iters - warmup_iters)))
    cos = min_lr + (learning_rate - min_lr) * (1 - 0.5 * (1 - math.cos(math.pi * p)))
    return float(torch.tensor(warm if it < warmup_iters else cos, dtype=torch.float64))


# ------------------------------------------------------------------------------------------ weight-decay groups
@mistake(ex.check_weight_decay_groups, r"bias|layer ?norm|embedding|all|every")
def wd_decay_everything(model, weight_decay):
    return [{"params": list(model.parameters()), "weight_decay": weight_decay}]


@mistake(ex.check_weight_decay_groups, r"embedding|wte|wpe")
def wd_by_dim(model, weight_decay):
    params = [p for p in model.parameters() if p.requires_grad]
    return [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]


@mistake(ex.check_weight_decay_groups, r"layer ?norm|ln|embedding|gain")
def wd_by_weight_name(model, weight_decay):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if name.endswith("weight") else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


@mistake(ex.check_weight_decay_groups, r"swap|revers|opposite|invert")
def wd_swapped(model, weight_decay):
    decay = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
    a = [p for p in model.parameters() if id(p) in decay]
    b = [p for p in model.parameters() if id(p) not in decay]
    return [{"params": a, "weight_decay": 0.0}, {"params": b, "weight_decay": weight_decay}]


@mistake(ex.check_weight_decay_groups, r"weight_decay|value|given|hard|argument|0\.1")
def wd_hardcoded(model, weight_decay):
    decay = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
    a = [p for p in model.parameters() if id(p) in decay]
    b = [p for p in model.parameters() if id(p) not in decay]
    return [{"params": a, "weight_decay": 0.1}, {"params": b, "weight_decay": 0.0}]


@mistake(ex.check_weight_decay_groups, r"tied|twice|duplicate|both|once")
def wd_by_module_duplicates_tied(model, weight_decay):
    decay, no_decay = [], []
    for m in model.modules():
        if isinstance(m, nn.Linear):
            decay.append(m.weight)
            if m.bias is not None:
                no_decay.append(m.bias)
        elif isinstance(m, (nn.LayerNorm, nn.Embedding)):
            no_decay.extend(m.parameters(recurse=False))
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


@mistake(ex.check_weight_decay_groups, r"missing|bias|every|left out|not in")
def wd_forgets_biases(model, weight_decay):
    decay = [m.weight for m in model.modules() if isinstance(m, nn.Linear)]
    no_decay = [p for m in model.modules() if isinstance(m, (nn.LayerNorm, nn.Embedding))
                for p in m.parameters(recurse=False)]
    seen, nd = {id(p) for p in decay}, []
    for p in no_decay:
        if id(p) not in seen:
            nd.append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": nd, "weight_decay": 0.0}]


@mistake(ex.check_weight_decay_groups, r"weight_decay|0\.01|default|not.?decay|missing|key")
def wd_no_decay_group_without_value(model, weight_decay):
    decay = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
    a = [p for p in model.parameters() if id(p) in decay]
    b = [p for p in model.parameters() if id(p) not in decay]
    return [{"params": a, "weight_decay": weight_decay}, {"params": b}]


@mistake(ex.check_weight_decay_groups, r"embedding|wte|wpe")
def wd_names_ln_bias(model, weight_decay):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if "ln" in name or "bias" in name:
            no_decay.append(p)
        else:
            decay.append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


@mistake(ex.check_weight_decay_groups, r"bias")
def wd_linear_bias_decayed(model, weight_decay):
    decay_ids = {id(p) for m in model.modules() if isinstance(m, nn.Linear) for p in m.parameters(recurse=False)}
    a = [p for p in model.parameters() if id(p) in decay_ids]
    b = [p for p in model.parameters() if id(p) not in decay_ids]
    return [{"params": a, "weight_decay": weight_decay}, {"params": b, "weight_decay": 0.0}]


@mistake(ex.check_weight_decay_groups, r"layer ?norm|ln|gain|weight")
def wd_ln_weight_decayed(model, weight_decay):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if name.endswith("bias") or "wte" in name or "wpe" in name:
            no_decay.append(p)
        else:
            decay.append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


@mistake(ex.check_weight_decay_groups, r"swap|revers|opposite|invert|hard|value|given")
def wd_swapped_and_hardcoded(model, weight_decay):
    decay = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
    a = [p for p in model.parameters() if id(p) in decay]
    b = [p for p in model.parameters() if id(p) not in decay]
    return [{"params": b, "weight_decay": 0.1}, {"params": a, "weight_decay": 0.0}]


@mistake(ex.check_weight_decay_groups, r"embedding|wte|wpe|hard|value|given")
def wd_by_dim_hardcoded(model, weight_decay):
    params = list(model.parameters())
    return [{"params": [p for p in params if p.ndim >= 2], "weight_decay": 0.1},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]


@valid(ex.check_weight_decay_groups)
def wd_nanogpt_original_sets(model, weight_decay):
    decay, no_decay = set(), set()
    for mn, m in model.named_modules():
        for pn, p in m.named_parameters(recurse=False):
            fpn = f"{mn}.{pn}" if mn else pn
            if pn.endswith("bias"):
                no_decay.add(fpn)
            elif pn.endswith("weight") and isinstance(m, nn.Linear):
                decay.add(fpn)
            elif pn.endswith("weight") and isinstance(m, (nn.LayerNorm, nn.Embedding)):
                no_decay.add(fpn)
    every = dict(model.named_parameters(remove_duplicate=False))  # a tied matrix under both of its names
    decay_ids = {id(every[n]) for n in decay}
    unique = list(model.parameters())
    return [{"params": [p for p in unique if id(p) in decay_ids], "weight_decay": weight_decay},
            {"params": [p for p in unique if id(p) not in decay_ids], "weight_decay": 0.0}]


@valid(ex.check_weight_decay_groups)
def wd_by_ids(model, weight_decay):
    linear = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
    decay, other = [], []
    for p in model.parameters():  # unique parameters
        (decay if id(p) in linear else other).append(p)
    return [dict(params=other, weight_decay=0.0), dict(params=decay, weight_decay=weight_decay)]


# ------------------------------------------------------------------------------------------ training runs
def train_and_compare(component):
    """The probe's entry: a component class, passed to ex.train_and_compare under its kind (short runs)."""
    kind = ("block" if issubclass(component, Block) else "attention" if issubclass(component, CausalSelfAttention)
            else "mlp")
    return ex.train_and_compare(steps=20, **{kind: component})  # counted with 60; 20 give the same names


def _attn_forward(self, x, kv_cache=None, attn_mask=None, mask=True, dim=-1):
    B, T, C = x.shape
    nh = self.n_head
    q, k, v = self.c_attn(x).split(C, dim=2)
    q, k, v = (t.view(B, T, nh, C // nh).transpose(1, 2) for t in (q, k, v))
    att = q @ k.transpose(-2, -1) / math.sqrt(C // nh)
    if mask:
        att = att.masked_fill(torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1), float("-inf"))
    y = (F.softmax(att, dim=dim) @ v).transpose(1, 2).contiguous().view(B, T, C)
    return self.resid_dropout(self.c_proj(y))


@mistake(train_and_compare, r"look.?ahead|causal|future|later|mask")
class AttnNoMask(CausalSelfAttention):
    def forward(self, x, kv_cache=None, attn_mask=None):
        return _attn_forward(self, x, mask=False)


@mistake(train_and_compare, r"look.?ahead|causal|future|later|softmax")
class AttnSoftmaxOverQueries(CausalSelfAttention):
    def forward(self, x, kv_cache=None, attn_mask=None):
        return _attn_forward(self, x, dim=-2)


@mistake(train_and_compare, r"gradient|unused|never|learn|change")
class AttnUnusedLinear(CausalSelfAttention):
    def __init__(self, config, layer_idx):
        super().__init__(config, layer_idx)
        self.out_proj = nn.Linear(config.n_embd, config.n_embd)  # made, then c_proj used instead

    def forward(self, x, kv_cache=None, attn_mask=None):
        return _attn_forward(self, x)


@mistake(train_and_compare, r"change|learn|frozen|requires_grad|gradient")
class MLPFrozenFc(MLP):
    def __init__(self, config):
        super().__init__(config)
        self.c_fc.weight.requires_grad_(False)


@mistake(train_and_compare, r"gradient|detach|learn|change")
class MLPDetachedHidden(MLP):
    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x)).detach()))


@mistake(train_and_compare, r"gradient|ln_2|unused|never|learn|change")
class BlockUsesLn1Twice(Block):
    def forward(self, x, kv_cache=None, attn_mask=None):
        x = x + self.attn(self.ln_1(x), kv_cache)
        return x + self.mlp(self.ln_1(x))


@mistake(train_and_compare, r"residual|loss|behind|worse")
class BlockNoResidual(Block):
    def forward(self, x, kv_cache=None, attn_mask=None):
        x = self.attn(self.ln_1(x), kv_cache)
        return self.mlp(self.ln_2(x))


@valid(train_and_compare)
class AttnSdpa(CausalSelfAttention):
    def forward(self, x, kv_cache=None, attn_mask=None):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).chunk(3, dim=-1)
        q, k, v = (t.reshape(B, T, self.n_head, -1).permute(0, 2, 1, 3) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.resid_dropout(self.c_proj(y.permute(0, 2, 1, 3).reshape(B, T, C)))


@valid(train_and_compare)
class MLPSequential(MLP):
    def __init__(self, config):
        super().__init__(config)
        self.net = nn.Sequential(self.c_fc, nn.GELU(approximate="tanh"), self.c_proj, self.dropout)

    def forward(self, x):
        return self.net(x)

