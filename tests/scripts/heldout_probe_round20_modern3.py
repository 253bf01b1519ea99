"""Round 20, modern part, third file: the LR schedule and weight-decay groups (train_and_compare in _modern4)."""

from __future__ import annotations

import math

import torch
import torch.nn as nn

import mingpt.exercises as ex
from heldout_probe_models import mistake, valid


# ------------------------------------------------------------------------------------------ LR schedule
def _cos(it, lr, min_lr, warmup, decay, coeff=None):
    ratio = (it - warmup) / (decay - warmup)
    c = 0.5 * (1.0 + math.cos(math.pi * ratio)) if coeff is None else coeff(ratio)
    return min_lr + c * (lr - min_lr)


@mistake(ex.check_lr_schedule, r"warm|first step")  # "learning rate 0 at the first step": fair, widened
def lr_old_nanogpt_warmup(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # nanoGPT's first get_lr
    if it < warmup_iters:
        return learning_rate * it / warmup_iters
    if it > lr_decay_iters:
        return min_lr
    return _cos(it, learning_rate, min_lr, warmup_iters, lr_decay_iters)


@mistake(ex.check_lr_schedule, r"min_lr|zero|floor|warm")
def lr_hf_cosine_with_warmup(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    # transformers' get_cosine_schedule_with_warmup: it / warmup, then down to 0 (no min_lr)
    if it < warmup_iters:
        return learning_rate * it / max(1, warmup_iters)
    progress = (it - warmup_iters) / max(1, lr_decay_iters - warmup_iters)
    return learning_rate * max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))


@mistake(ex.check_lr_schedule, r"min_lr|zero|floor")
def lr_decays_to_zero(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:
        return min_lr
    return _cos(it, learning_rate, 0.0, warmup_iters, lr_decay_iters)


@mistake(ex.check_lr_schedule, r"half|period|full|cos|2 ?pi|π")
def lr_full_cosine(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:
        return min_lr
    return _cos(it, learning_rate, min_lr, warmup_iters, lr_decay_iters,
                coeff=lambda r: 0.5 * (1 + math.cos(2 * math.pi * r)))


@mistake(ex.check_lr_schedule, r"ratio|warm|progress|offset|start|decay")
def lr_torch_cosine_annealing(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    # CosineAnnealingLR's T_max = lr_decay_iters counted from 0, not from the end of the warm-up
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:
        return min_lr
    return min_lr + 0.5 * (1 + math.cos(math.pi * it / lr_decay_iters)) * (learning_rate - min_lr)


@mistake(ex.check_lr_schedule, r"after|min_lr|end|past|beyond")
def lr_after_decay_peak(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # constant-schedule habit
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:
        return learning_rate
    return _cos(it, learning_rate, min_lr, warmup_iters, lr_decay_iters)


@mistake(ex.check_lr_schedule, r"linear|cos")
def lr_linear_decay(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # get_linear_schedule_with_warmup
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:
        return min_lr
    return _cos(it, learning_rate, min_lr, warmup_iters, lr_decay_iters, coeff=lambda r: 1 - r)


@mistake(ex.check_lr_schedule, r"0\.5|1 ?\+|half|cos|range|coeff|negative|below")
def lr_raw_cosine(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # cos() without 0.5 * (1 + .)
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:
        return min_lr
    return _cos(it, learning_rate, min_lr, warmup_iters, lr_decay_iters, coeff=lambda r: math.cos(math.pi * r))


@mistake(ex.check_lr_schedule, r"direction|increas|invert|revers|up|swap|cos")
def lr_rising_cosine(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # 1 - coeff
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:
        return min_lr
    return _cos(it, learning_rate, min_lr, warmup_iters, lr_decay_iters,
                coeff=lambda r: 0.5 * (1 - math.cos(math.pi * r)))


@mistake(ex.check_lr_schedule, r"after|min_lr|end|clamp|past|beyond|rise")
def lr_no_clamp(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # no branch after lr_decay_iters
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    return _cos(it, learning_rate, min_lr, warmup_iters, lr_decay_iters)


@mistake(ex.check_lr_schedule, r"warm|min_lr|start")
def lr_warmup_from_min(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # warm-up from min_lr, not 0
    if it < warmup_iters:
        return min_lr + (learning_rate - min_lr) * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:
        return min_lr
    return _cos(it, learning_rate, min_lr, warmup_iters, lr_decay_iters)


@mistake(ex.check_lr_schedule, r"integer|division|floor|//|ratio")
def lr_floor_division(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:
        return min_lr
    ratio = (it - warmup_iters) // (lr_decay_iters - warmup_iters)
    return min_lr + 0.5 * (1 + math.cos(math.pi * ratio)) * (learning_rate - min_lr)


@mistake(ex.check_lr_schedule, r"warm")
def lr_warmup_over_warmup(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # (it + 1) / warmup
    if it < warmup_iters:
        return learning_rate * (it + 1) / warmup_iters
    if it >= lr_decay_iters:
        return min_lr
    return _cos(it, learning_rate, min_lr, warmup_iters, lr_decay_iters)


@mistake(ex.check_lr_schedule, r"warm|min_lr|zero|floor")
def lr_old_warmup_to_zero(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # double: it/warmup, no floor
    if it < warmup_iters:
        return learning_rate * it / warmup_iters
    if it >= lr_decay_iters:
        return 0.0
    return _cos(it, learning_rate, 0.0, warmup_iters, lr_decay_iters)


@valid(ex.check_lr_schedule)
def lr_valid_nanogpt(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # nanoGPT's current get_lr
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it > lr_decay_iters:
        return min_lr
    decay_ratio = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
    assert 0 <= decay_ratio <= 1
    coeff = 0.5 * (1.0 + math.cos(math.pi * decay_ratio))
    return min_lr + coeff * (learning_rate - min_lr)


@valid(ex.check_lr_schedule)
def lr_valid_lambda_multiplier(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # LambdaLR style factor
    def factor(step):
        if step < warmup_iters:
            return (step + 1) / (warmup_iters + 1)
        progress = min(1.0, (step - warmup_iters) / max(1, lr_decay_iters - warmup_iters))
        floor = min_lr / learning_rate if learning_rate else 0.0
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    return learning_rate * factor(it) if learning_rate else min_lr


@valid(ex.check_lr_schedule)
def lr_valid_torch_tensor(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # clamp instead of branch
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    r = torch.tensor((it - warmup_iters) / max(1, lr_decay_iters - warmup_iters), dtype=torch.float64).clamp(0, 1)
    return float(min_lr + 0.5 * (1 + torch.cos(math.pi * r)) * (learning_rate - min_lr))


# ------------------------------------------------------------------------------------------ weight decay groups
def _groups(decay, no_decay, wd):
    return [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]


@mistake(ex.check_weight_decay_groups, r"embed|wte|wpe")
def wd_nanogpt_dim(model, weight_decay):  # nanoGPT: every p.dim() >= 2 decayed (embeddings too)
    ps = [p for p in model.parameters() if p.requires_grad]
    return _groups([p for p in ps if p.dim() >= 2], [p for p in ps if p.dim() < 2], weight_decay)


@mistake(ex.check_weight_decay_groups, r"bias|norm|all|every")
def wd_everything(model, weight_decay):  # AdamW(model.parameters(), weight_decay=wd)
    return [{"params": list(model.parameters()), "weight_decay": weight_decay}]


@mistake(ex.check_weight_decay_groups, r"no.*decay|none|nothing|linear|zero")
def wd_nothing(model, weight_decay):
    return [{"params": list(model.parameters()), "weight_decay": 0.0}]


@mistake(ex.check_weight_decay_groups, r"norm|embed|ln|gain|layer")
def wd_hf_no_decay_names(model, weight_decay):  # HF Trainer: no_decay = ["bias", "LayerNorm.weight"]
    no = ["bias", "LayerNorm.weight"]
    named = [(n, p) for n, p in model.named_parameters()]
    return _groups([p for n, p in named if not any(nd in n for nd in no)],
                   [p for n, p in named if any(nd in n for nd in no)], weight_decay)


@mistake(ex.check_weight_decay_groups, r"swap|revers|invert|wrong group|opposite|bias|norm|linear")
def wd_swapped(model, weight_decay):
    linear = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
    ps = list(model.parameters())
    return _groups([p for p in ps if id(p) not in linear], [p for p in ps if id(p) in linear], weight_decay)


@mistake(ex.check_weight_decay_groups, r"weight_decay|value|given|hard|argument|0\.1")
def wd_hardcoded(model, weight_decay):  # 0.1 from nanoGPT's config
    linear = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
    ps = list(model.parameters())
    return _groups([p for p in ps if id(p) in linear], [p for p in ps if id(p) not in linear], 0.1)


@mistake(ex.check_weight_decay_groups, r"default|0\.01|weight_decay|missing|key|not decayed")
def wd_missing_key(model, weight_decay):  # no "weight_decay" in the second group: AdamW's default 0.01 applies
    linear = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
    ps = list(model.parameters())
    return [{"params": [p for p in ps if id(p) in linear], "weight_decay": weight_decay},
            {"params": [p for p in ps if id(p) not in linear]}]


@mistake(ex.check_weight_decay_groups, r"tied|lm_head|head|wte|embed|linear")
def wd_embedding_first(model, weight_decay):  # Embedding checked first: the tied wte/lm_head matrix not decayed
    no = set()
    for m in model.modules():
        if isinstance(m, (nn.Embedding, nn.LayerNorm)):
            no |= {id(p) for p in m.parameters(recurse=False)}
    ps = list(model.parameters())
    return _groups([p for p in ps if id(p) not in no and p.dim() >= 2], [p for p in ps if id(p) in no or p.dim() < 2],
                   weight_decay)


@mistake(ex.check_weight_decay_groups, r"bias")
def wd_linear_bias(model, weight_decay):  # every parameter of an nn.Linear decayed, its bias too
    lin = {id(p) for m in model.modules() if isinstance(m, nn.Linear) for p in m.parameters(recurse=False)}
    ps = list(model.parameters())
    return _groups([p for p in ps if id(p) in lin], [p for p in ps if id(p) not in lin], weight_decay)


@mistake(ex.check_weight_decay_groups, r"missing|group|bias|norm|embed|every param|all param")
def wd_only_decay_group(model, weight_decay):  # the no-decay group forgotten: those never trained
    lin = [m.weight for m in model.modules() if isinstance(m, nn.Linear)]
    return [{"params": lin, "weight_decay": weight_decay}]


@mistake(ex.check_weight_decay_groups, r"twice|duplic|tied|more than once|once")
def wd_tied_duplicate(model, weight_decay):  # named_parameters(remove_duplicate=False): the tied matrix twice
    named = list(model.named_parameters(remove_duplicate=False))
    linear_names = {n + ".weight" for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    return _groups([p for n, p in named if n in linear_names],
                   [p for n, p in named if n not in linear_names], weight_decay)


@mistake(ex.check_weight_decay_groups, r"embed|wte|wpe|weight|norm|ln|gain")
def wd_name_endswith_weight(model, weight_decay):  # "weight" in name: LayerNorm gains and embeddings too
    named = list(model.named_parameters())
    return _groups([p for n, p in named if n.endswith("weight")], [p for n, p in named if not n.endswith("weight")],
                   weight_decay)


@valid(ex.check_weight_decay_groups)
def wd_valid_original_mingpt(model, weight_decay):  # the original minGPT's whitelist/blacklist by module
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
    params = dict(model.named_parameters())
    decay -= no_decay  # a tied weight seen as Embedding first and Linear later: the matmul wins in mingpt
    decay |= {n for n in no_decay if n in params and any(params[n] is m.weight for m in model.modules()
                                                         if isinstance(m, nn.Linear))}
    no_decay -= decay
    return _groups([params[n] for n in sorted(decay) if n in params],
                   [params[n] for n in sorted(no_decay) if n in params], weight_decay)


@valid(ex.check_weight_decay_groups)
def wd_valid_no_decay_first(model, weight_decay):  # groups in the other order
    lin = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
    ps = list(model.parameters())
    return [{"params": [p for p in ps if id(p) not in lin], "weight_decay": 0.0},
            {"params": [p for p in ps if id(p) in lin], "weight_decay": weight_decay}]


@valid(ex.check_weight_decay_groups)
def wd_valid_generators_by_id(model, weight_decay):  # ids, tuple groups
    lin = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
    return ({"params": (p for p in model.parameters() if id(p) in lin), "weight_decay": weight_decay},
            {"params": (p for p in model.parameters() if id(p) not in lin), "weight_decay": 0.0})


import heldout_probe_round20_modern4  # noqa: E402,F401  (this part's fourth file: train_and_compare)
