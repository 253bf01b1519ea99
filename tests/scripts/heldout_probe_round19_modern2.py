"""The held-out probe, round 19, modern part 2: GPT-2 conversion, the LR schedule, weight-decay groups, training."""

from __future__ import annotations

import math

import torch.nn as nn

import mingpt.exercises as ex
from heldout_probe_models import mistake, valid

# ------------------------------------------------------------------------------------------ HF conversion
CONV = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
MASKS = (".attn.bias", ".attn.masked_bias")


@mistake(ex.check_hf_conversion, r"c_proj|transpos")
def conv_three_of_four(sd):  # attn.c_proj left out of the list
    out = {}
    for k, v in sd.items():
        if k.endswith(MASKS):
            continue
        out[k] = v.t() if k.endswith(("attn.c_attn.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")) else v
    return out


@mistake(ex.check_hf_conversion, r"transpos|wte|wpe|embed|all|every")
def conv_every_matrix(sd):  # transposes every 2-D tensor, embeddings included
    return {k: (v.T.contiguous() if v.ndim == 2 else v) for k, v in sd.items() if not k.endswith(MASKS)}


@mistake(ex.check_hf_conversion, r"mask|buffer|bias|skip|unexpected")
def conv_keeps_masks(sd):
    return {k: (v.t() if k.endswith(CONV) else v) for k, v in sd.items()}


@mistake(ex.check_hf_conversion, r"bias")
def conv_drops_all_biases(sd):  # skips every key ending in "bias": the real biases go too
    return {k: (v.t() if k.endswith(CONV) else v) for k, v in sd.items() if not k.endswith("bias")}


@mistake(ex.check_hf_conversion, r"reshape|view|transpos")
def conv_reshape_not_transpose(sd):
    out = {}
    for k, v in sd.items():
        if k.endswith(MASKS):
            continue
        out[k] = v.reshape(v.shape[1], v.shape[0]) if k.endswith(CONV) else v
    return out


@mistake(ex.check_hf_conversion, r"transpos")
def conv_no_transpose(sd):
    return {k: v.clone() for k, v in sd.items() if ".attn.bias" not in k and "masked_bias" not in k}


@mistake(ex.check_hf_conversion, r"prefix|name|key|transformer")
def conv_strips_prefix(sd):
    out = {}
    for k, v in sd.items():
        if k.endswith(MASKS):
            continue
        out[k.removeprefix("transformer.")] = v.t() if k.endswith(CONV) else v
    return out


@mistake(ex.check_hf_conversion, r"lm_head|missing|head")
def conv_only_transformer_keys(sd):  # keeps only keys under transformer.: lm_head.weight is lost
    return {k: (v.t() if k.endswith(CONV) else v) for k, v in sd.items()
            if k.startswith("transformer.") and not k.endswith(MASKS)}


@mistake(ex.check_hf_conversion, r"c_fc|mlp|transpos")
def conv_attention_only(sd):  # transposes the attention's weights but neither MLP layer
    out = {}
    for name, t in sd.items():
        if name.endswith(MASKS):
            continue
        out[name] = t.t() if (".attn." in name and name.endswith(".weight")) else t
    return out


@mistake(ex.check_hf_conversion, r"(mask|buffer|bias).*(c_proj|transpos)|(c_proj|transpos).*(mask|buffer|bias)")
def conv_two_slips(sd):  # keeps the masks and forgets attn.c_proj
    return {k: (v.t() if k.endswith(("c_attn.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")) else v)
            for k, v in sd.items()}


@mistake(ex.check_hf_conversion, r"mask|masked_bias|buffer|skip|unexpected")
def conv_skips_only_masked_bias(sd):  # skips masked_bias, keeps the (1, 1, T, T) attn.bias
    return {k: (v.t() if k.endswith(CONV) else v) for k, v in sd.items() if not k.endswith("masked_bias")}


@valid(ex.check_hf_conversion)
def conv_valid_substring(sd):  # .t() on a 1-D bias is a no-op, so matching on the layer name alone is fine
    out = {}
    for k, v in sd.items():
        if "attn.bias" in k and not k.endswith("c_attn.bias") or "masked_bias" in k:
            continue
        out[k] = v.t() if any(n in k for n in ("c_attn", "c_proj", "c_fc")) else v
    return out


@valid(ex.check_hf_conversion)
def conv_valid_noncontiguous(sd):  # transpose(0, 1) views, not made contiguous: load_state_dict copies them anyway
    keep = {k: v for k, v in sd.items() if k.split(".")[-1] not in ("masked_bias",) and
            not (k.endswith(".bias") and k.split(".")[-2] == "attn")}
    return {k: v.transpose(0, 1) if k.endswith(CONV) else v for k, v in keep.items()}


# ------------------------------------------------------------------------------------------ LR schedule
def _cos(progress, lr, mn):
    return mn + 0.5 * (1 + math.cos(math.pi * progress)) * (lr - mn)


@mistake(ex.check_lr_schedule, r"warm|first step")  # "learning rate 0 at the first step": fair
def lr_warmup_no_plus_one(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    if it < warmup_iters:
        return learning_rate * it / warmup_iters
    if it >= lr_decay_iters:
        return min_lr
    return _cos((it - warmup_iters) / (lr_decay_iters - warmup_iters), learning_rate, min_lr)


@mistake(ex.check_lr_schedule, r"min_lr|floor|ratio|hard|tenth|/ ?10")
def lr_hardcoded_floor(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    floor = 0.1 * learning_rate
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:
        return floor
    return _cos((it - warmup_iters) / (lr_decay_iters - warmup_iters), learning_rate, floor)


@mistake(ex.check_lr_schedule, r"progress|decay|floor|horizon|warm|never|reach")
def lr_progress_from_zero(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it > lr_decay_iters:
        return min_lr
    return _cos((it - warmup_iters) / lr_decay_iters, learning_rate, min_lr)  # never reaches 1 -> never min_lr


@mistake(ex.check_lr_schedule, r"min_lr|floor|zero|amplitude|0")
def lr_cosine_to_zero(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:
        return min_lr
    p = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
    return min_lr + 0.5 * (1 + math.cos(math.pi * p)) * learning_rate


@mistake(ex.check_lr_schedule, r"after|clamp|floor|beyond|rise|flat|end")
def lr_no_clamp(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # the cosine climbs back after the horizon
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    return _cos((it - warmup_iters) / (lr_decay_iters - warmup_iters), learning_rate, min_lr)


@mistake(ex.check_lr_schedule, r"half|period|full|cosine|2")
def lr_full_period(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:
        return min_lr
    p = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
    return min_lr + 0.5 * (1 + math.cos(2 * math.pi * p)) * (learning_rate - min_lr)


@mistake(ex.check_lr_schedule, r"linear|cosine")
def lr_linear_decay(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    p = min(1.0, (it - warmup_iters) / (lr_decay_iters - warmup_iters))
    return learning_rate - p * (learning_rate - min_lr)


@valid(ex.check_lr_schedule)  # written as a mistake; really valid: at it == warmup both branches give learning_rate
def lr_valid_warmup_inclusive(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    if it <= warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:
        return min_lr
    return _cos((it - warmup_iters) / (lr_decay_iters - warmup_iters), learning_rate, min_lr)


@mistake(ex.check_lr_schedule, r"sign|direction|cos|increas|rise|invert|1 ?- ?cos")
def lr_rising_cosine(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:
        return min_lr
    p = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
    return min_lr + 0.5 * (1 - math.cos(math.pi * p)) * (learning_rate - min_lr)


@mistake(ex.check_lr_schedule, r"warm")
def lr_warmup_overshoots(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # (it + 1) / warmup
    if it < warmup_iters:
        return learning_rate * (it + 1) / warmup_iters
    if it >= lr_decay_iters:
        return min_lr
    return _cos((it - warmup_iters) / (lr_decay_iters - warmup_iters), learning_rate, min_lr)


@mistake(ex.check_lr_schedule, r"warm|missing|no warm")
def lr_no_warmup(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # cosine from step 0, warm-up forgotten
    if it >= lr_decay_iters:
        return min_lr
    return _cos((it - warmup_iters) / (lr_decay_iters - warmup_iters), learning_rate, min_lr) if it >= warmup_iters \
        else learning_rate


@valid(ex.check_lr_schedule)
def lr_valid_cos_squared(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # (1 + cos x) / 2 = cos^2(x / 2)
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    p = min(1.0, (it - warmup_iters) / max(1, lr_decay_iters - warmup_iters))
    return min_lr + (learning_rate - min_lr) * math.cos(math.pi * p / 2) ** 2


@valid(ex.check_lr_schedule)
def lr_valid_lerp(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    warm = learning_rate * (it + 1) / (warmup_iters + 1)
    if it >= warmup_iters:
        p = max(0.0, min(1.0, (it - warmup_iters) / max(1, lr_decay_iters - warmup_iters)))
        coeff = (math.cos(math.pi * p) + 1) / 2
        return coeff * learning_rate + (1 - coeff) * min_lr
    return warm


# ------------------------------------------------------------------------------------------ weight-decay groups
def _groups(decay, no_decay, wd):
    return [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]


@mistake(ex.check_weight_decay_groups, r"embed|wte|wpe|dim|2-?D")
def wd_by_ndim(model, weight_decay):  # every matrix decayed: the position embedding too
    params = [p for p in model.parameters() if p.requires_grad]
    return _groups([p for p in params if p.dim() >= 2], [p for p in params if p.dim() < 2], weight_decay)


@mistake(ex.check_weight_decay_groups, r"layernorm|norm|ln|1-?D|gain")
def wd_by_name_weight(model, weight_decay):  # every ".weight": LayerNorm gains and embeddings decayed too
    d, nd = [], []
    for name, p in model.named_parameters():
        (d if name.endswith("weight") else nd).append(p)
    return _groups(d, nd, weight_decay)


@mistake(ex.check_weight_decay_groups, r"hard|value|weight_decay|given|0\.1|argument")
def wd_hardcoded(model, weight_decay):
    lin = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
    ps = list(model.parameters())
    return _groups([p for p in ps if id(p) in lin], [p for p in ps if id(p) not in lin], 0.1)


@mistake(ex.check_weight_decay_groups, r"swap|invert|revers|bias|opposite")
def wd_swapped(model, weight_decay):
    lin = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
    ps = list(model.parameters())
    return _groups([p for p in ps if id(p) not in lin], [p for p in ps if id(p) in lin], weight_decay)


@mistake(ex.check_weight_decay_groups, r"tie|tied|lm_head|head|wte|embed")
def wd_names_decide(model, weight_decay):  # by name: "wte" is an embedding, so the tied head matrix is not decayed
    d, nd = [], []
    for name, p in model.named_parameters():
        linear = name.endswith("weight") and p.dim() == 2 and "wte" not in name and "wpe" not in name
        (d if linear else nd).append(p)
    return _groups(d, nd, weight_decay)


@mistake(ex.check_weight_decay_groups, r"twice|both|duplicat|once|overlap")
def wd_everything_in_no_decay(model, weight_decay):
    lin = [m.weight for m in model.modules() if isinstance(m, nn.Linear)]
    return _groups(lin, list(model.parameters()), weight_decay)


@mistake(ex.check_weight_decay_groups, r"missing|bias|omit|left out|forgot|absent")
def wd_biases_forgotten(model, weight_decay):  # the no-decay group holds norms and embeddings but no biases
    lin = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
    d = [p for p in model.parameters() if id(p) in lin]
    nd = [m.weight for m in model.modules() if isinstance(m, (nn.LayerNorm, nn.Embedding)) and id(m.weight) not in lin]
    return _groups(d, nd, weight_decay)


@mistake(ex.check_weight_decay_groups, r"bias")
def wd_whole_linear(model, weight_decay):  # every parameter of an nn.Linear, its bias too
    d = {id(p): p for m in model.modules() if isinstance(m, nn.Linear) for p in m.parameters()}
    return _groups(list(d.values()), [p for p in model.parameters() if id(p) not in d], weight_decay)


@valid(ex.check_weight_decay_groups)
def wd_valid_module_walk(model, weight_decay):
    decay, seen = [], set()
    for module in model.modules():
        if isinstance(module, nn.Linear):
            decay.append(module.weight)
            seen.add(id(module.weight))
    rest = [p for p in model.parameters() if id(p) not in seen]
    return [{"params": rest, "weight_decay": 0.0}, {"params": decay, "weight_decay": weight_decay}]


@valid(ex.check_weight_decay_groups)
def wd_valid_sets(model, weight_decay):  # by module type and full names (minGPT style), a tied matrix decayed once
    decay, no_decay = {}, {}
    for mn, m in model.named_modules():
        for pn, p in m.named_parameters(recurse=False):
            (decay if pn == "weight" and isinstance(m, nn.Linear) else no_decay)[id(p)] = p
    no_decay = {i: p for i, p in no_decay.items() if i not in decay}
    return [{"params": list(decay.values()), "weight_decay": weight_decay},
            {"params": list(no_decay.values()), "weight_decay": 0.0}]


import heldout_probe_round19_modern3  # noqa: E402,F401
