"""Round 16, modern part, third file: the learning-rate schedule and the weight-decay groups (see
heldout_probe_round16_modern.py)."""

from __future__ import annotations

import math

import numpy as np
import torch.nn as nn

import mingpt.exercises as ex
from heldout_probe_models import mistake, valid


def _cos(it, lr, min_lr, warmup, decay):  # the decay part of the schedule, right
    p = (it - warmup) / max(1, decay - warmup)
    return min_lr + 0.5 * (1 + math.cos(math.pi * p)) * (lr - min_lr)


# ------------------------------------------------------------------------------------------ cosine schedule
@mistake(ex.check_lr_schedule, r"warm|first step")  # widened: "learning rate 0 at the first step" names it
def lr_nanogpt_warmup(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # lr * it / warmup: 0 at step 0
    if it < warmup_iters:
        return learning_rate * it / warmup_iters
    if it >= lr_decay_iters:
        return min_lr
    return _cos(it, learning_rate, min_lr, warmup_iters, lr_decay_iters)


@mistake(ex.check_lr_schedule, r"warm")
def lr_warmup_over_w(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # (it + 1) / warmup
    if it < warmup_iters:
        return learning_rate * (it + 1) / warmup_iters
    if it >= lr_decay_iters:
        return min_lr
    return _cos(it, learning_rate, min_lr, warmup_iters, lr_decay_iters)


@mistake(ex.check_lr_schedule, r"min_lr|floor")
def lr_to_zero(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # decays to 0, min_lr ignored
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:
        return 0.0
    return _cos(it, learning_rate, 0.0, warmup_iters, lr_decay_iters)


@mistake(ex.check_lr_schedule, r"after|beyond|past|lr_decay_iters|clamp|rise|back|stay")
def lr_no_clamp(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # the cosine goes on, back up
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    return _cos(it, learning_rate, min_lr, warmup_iters, lr_decay_iters)


@mistake(ex.check_lr_schedule, r"progress|warm|offset|from (step )?0|start")
def lr_progress_from_zero(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # it / decay, not from warmup
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:
        return min_lr
    return min_lr + 0.5 * (1 + math.cos(math.pi * it / lr_decay_iters)) * (learning_rate - min_lr)


@mistake(ex.check_lr_schedule, r"half|full|period|2 ?pi|twice")
def lr_full_cosine(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # a whole period: back to lr
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:
        return min_lr
    p = (it - warmup_iters) / max(1, lr_decay_iters - warmup_iters)
    return min_lr + 0.5 * (1 + math.cos(2 * math.pi * p)) * (learning_rate - min_lr)


@mistake(ex.check_lr_schedule, r"integer|floor|division|warm")
def lr_floor_division(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # // during warmup
    if it < warmup_iters:
        return learning_rate * (it + 1) // (warmup_iters + 1)
    if it >= lr_decay_iters:
        return min_lr
    return _cos(it, learning_rate, min_lr, warmup_iters, lr_decay_iters)


@mistake(ex.check_lr_schedule, r"0\.5|half|twice|double|amplitude|factor")
def lr_no_half(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # (1 + cos) without the 0.5
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:
        return min_lr
    p = (it - warmup_iters) / max(1, lr_decay_iters - warmup_iters)
    return min_lr + (1 + math.cos(math.pi * p)) * (learning_rate - min_lr)


@mistake(ex.check_lr_schedule, r"sign|rise|increas|invert|revers|upside|goes up")  # widened: "goes up instead of down"
def lr_one_minus_cos(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # 1 - cos: rises to lr
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:
        return min_lr
    p = (it - warmup_iters) / max(1, lr_decay_iters - warmup_iters)
    return min_lr + 0.5 * (1 - math.cos(math.pi * p)) * (learning_rate - min_lr)


@mistake(ex.check_lr_schedule, r"linear|cosine|shape")
def lr_linear(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # a straight line down
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:
        return min_lr
    p = (it - warmup_iters) / max(1, lr_decay_iters - warmup_iters)
    return learning_rate - p * (learning_rate - min_lr)


@mistake(ex.check_lr_schedule, r"round|precision|digits")
def lr_rounded(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # round() "to print nicely"
    if it < warmup_iters:
        return round(learning_rate * (it + 1) / (warmup_iters + 1), 4)
    if it >= lr_decay_iters:
        return min_lr
    return round(_cos(it, learning_rate, min_lr, warmup_iters, lr_decay_iters), 4)


@mistake(ex.check_lr_schedule, r"warm|min_lr|from min")
def lr_warmup_from_min(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # warms up from min_lr
    if it < warmup_iters:
        return min_lr + (learning_rate - min_lr) * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:
        return min_lr
    return _cos(it, learning_rate, min_lr, warmup_iters, lr_decay_iters)


@mistake(ex.check_lr_schedule, r"min_lr|lr ?- ?min_lr|amplitude|range|above")
def lr_amplitude_lr(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # min_lr + ... * lr
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:
        return min_lr
    p = (it - warmup_iters) / max(1, lr_decay_iters - warmup_iters)
    return min_lr + 0.5 * (1 + math.cos(math.pi * p)) * learning_rate


@mistake(ex.check_lr_schedule, r"min_lr|floor|ratio|fraction")
def lr_min_as_ratio(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # HF's min_lr_rate habit
    floor = learning_rate * min_lr
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:
        return floor
    return _cos(it, learning_rate, floor, warmup_iters, lr_decay_iters)


# widened below: "never reaches its floor during the decay", its message naming the division by lr_decay_iters
@mistake(ex.check_lr_schedule, r"progress|denominator|lr_decay_iters|warm|horizon|never reaches its floor")
def lr_denominator_decay(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # / lr_decay_iters
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:
        return min_lr
    p = (it - warmup_iters) / lr_decay_iters
    return min_lr + 0.5 * (1 + math.cos(math.pi * p)) * (learning_rate - min_lr)


@valid(ex.check_lr_schedule)
def lr_clamped_progress(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # one formula, progress clamped
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    p = min(1.0, (it - warmup_iters) / max(1, lr_decay_iters - warmup_iters))
    return min_lr + 0.5 * (1 + math.cos(math.pi * p)) * (learning_rate - min_lr)


@valid(ex.check_lr_schedule)
def lr_cos_squared(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # (1 + cos 2a) / 2 = cos^2 a, numpy
    if it < warmup_iters:
        return float(learning_rate * (it + 1) / (warmup_iters + 1))
    if it >= lr_decay_iters:
        return float(min_lr)
    p = (it - warmup_iters) / max(1, lr_decay_iters - warmup_iters)
    return float(min_lr + (learning_rate - min_lr) * np.cos(np.pi * p / 2) ** 2)


# ------------------------------------------------------------------------------------------ weight-decay groups
def _linear_weights(model):
    return {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}


@mistake(ex.check_weight_decay_groups, r"embedding|wpe|wte|dim|2-?d|matri")
def wd_dim_rule(model, weight_decay):  # nanoGPT's rule: every 2-D parameter decayed, the position table too
    ps = [p for p in model.parameters() if p.requires_grad]
    return [{"params": [p for p in ps if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in ps if p.dim() < 2], "weight_decay": 0.0}]


@mistake(ex.check_weight_decay_groups, r"layer ?norm|ln|gain|norm")
def wd_name_weight(model, weight_decay):  # every "...weight" decayed, LayerNorm gains too
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    return [{"params": [p for n, p in named if n.endswith("weight")], "weight_decay": weight_decay},
            {"params": [p for n, p in named if not n.endswith("weight")], "weight_decay": 0.0}]


@mistake(ex.check_weight_decay_groups, r"twice|both|duplicat|tied|more than once|once")
def wd_tied_in_both(model, weight_decay):  # module by module: the tied matrix lands in both groups
    decay, rest = [], []
    for m in model.modules():
        for p in m.parameters(recurse=False):
            if not p.requires_grad:
                continue
            (decay if isinstance(m, nn.Linear) and p is m.weight else rest).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


@mistake(ex.check_weight_decay_groups, r"weight_decay|value|argument|ignor|0\.1")
def wd_hardcoded(model, weight_decay):  # 0.1 hard-coded
    lin = _linear_weights(model)
    ps = [p for p in model.parameters() if p.requires_grad]
    return [{"params": [p for p in ps if id(p) in lin], "weight_decay": 0.1},
            {"params": [p for p in ps if id(p) not in lin], "weight_decay": 0.0}]


@mistake(ex.check_weight_decay_groups, r"default|0\.01|missing|weight_decay|not set|key")
def wd_second_group_default(model, weight_decay):  # no weight_decay key: AdamW's default 0.01 applies
    lin = _linear_weights(model)
    ps = [p for p in model.parameters() if p.requires_grad]
    return [{"params": [p for p in ps if id(p) in lin], "weight_decay": weight_decay},
            {"params": [p for p in ps if id(p) not in lin]}]


@mistake(ex.check_weight_decay_groups, r"swap|revers|invert|bias|layer ?norm|wrong group|opposite")
def wd_swapped(model, weight_decay):
    lin = _linear_weights(model)
    ps = [p for p in model.parameters() if p.requires_grad]
    return [{"params": [p for p in ps if id(p) not in lin], "weight_decay": weight_decay},
            {"params": [p for p in ps if id(p) in lin], "weight_decay": 0.0}]


@mistake(ex.check_weight_decay_groups, r"bias")
def wd_linear_biases(model, weight_decay):  # every parameter of a Linear decayed, its bias too
    inside = {id(p) for m in model.modules() if isinstance(m, nn.Linear) for p in m.parameters()}
    ps = [p for p in model.parameters() if p.requires_grad]
    return [{"params": [p for p in ps if id(p) in inside], "weight_decay": weight_decay},
            {"params": [p for p in ps if id(p) not in inside], "weight_decay": 0.0}]


@mistake(ex.check_weight_decay_groups, r"missing|omit|not in any|forgot|every param|left out|no group")
def wd_only_decayed(model, weight_decay):  # the no-decay group never returned
    lin = _linear_weights(model)
    return [{"params": [p for p in model.parameters() if id(p) in lin], "weight_decay": weight_decay}]


@mistake(ex.check_weight_decay_groups, r"\bset\b|order")
def wd_sets(model, weight_decay):  # sets of parameters: the optimizer refuses them
    lin = _linear_weights(model)
    ps = [p for p in model.parameters() if p.requires_grad]
    return [{"params": {p for p in ps if id(p) in lin}, "weight_decay": weight_decay},
            {"params": {p for p in ps if id(p) not in lin}, "weight_decay": 0.0}]


@mistake(ex.check_weight_decay_groups, r"name|string|str|tensor")
def wd_names(model, weight_decay):  # parameter names where the tensors go
    lin = _linear_weights(model)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    return [{"params": [n for n, p in named if id(p) in lin], "weight_decay": weight_decay},
            {"params": [n for n, p in named if id(p) not in lin], "weight_decay": 0.0}]


@mistake(ex.check_weight_decay_groups, r"twice|duplicat|more than once|once")
def wd_recursive_modules(model, weight_decay):  # m.parameters() of every module: each parameter many times
    decay, rest = [], []
    for m in model.modules():
        for p in m.parameters():
            (decay if any(p is mm.weight for mm in m.modules() if isinstance(mm, nn.Linear)) else rest).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


@mistake(ex.check_weight_decay_groups, r"weight_decay|key|default|missing|\bwd\b")
def wd_optax_key(model, weight_decay):  # "wd" as the key: torch ignores it, the default 0.01 applies to both
    lin = _linear_weights(model)
    ps = [p for p in model.parameters() if p.requires_grad]
    return [{"params": [p for p in ps if id(p) in lin], "wd": weight_decay},
            {"params": [p for p in ps if id(p) not in lin], "wd": 0.0}]


@mistake(ex.check_weight_decay_groups, r"list|type|format|dict|group")
def wd_dict(model, weight_decay):  # a dict of two lists instead of AdamW's list of groups
    lin = _linear_weights(model)
    ps = [p for p in model.parameters() if p.requires_grad]
    return {"decay": [p for p in ps if id(p) in lin], "no_decay": [p for p in ps if id(p) not in lin]}


@mistake(ex.check_weight_decay_groups, r"weight.?decay|value|half|factor")  # widened: "weight decay" with a space
def wd_halved(model, weight_decay):  # L2 habit: lambda / 2
    lin = _linear_weights(model)
    ps = [p for p in model.parameters() if p.requires_grad]
    return [{"params": [p for p in ps if id(p) in lin], "weight_decay": weight_decay / 2},
            {"params": [p for p in ps if id(p) not in lin], "weight_decay": 0.0}]


@valid(ex.check_weight_decay_groups)
def wd_no_decay_first(model, weight_decay):  # the groups in the other order
    lin = _linear_weights(model)
    ps = [p for p in model.parameters() if p.requires_grad]
    return [{"params": [p for p in ps if id(p) not in lin], "weight_decay": 0.0},
            {"params": [p for p in ps if id(p) in lin], "weight_decay": weight_decay}]


@valid(ex.check_weight_decay_groups)
def wd_one_group_each(model, weight_decay):  # one group per parameter
    lin = _linear_weights(model)
    return [{"params": [p], "weight_decay": weight_decay if id(p) in lin else 0.0}
            for p in model.parameters() if p.requires_grad]


import heldout_probe_round16_modern4  # noqa: E402,F401
