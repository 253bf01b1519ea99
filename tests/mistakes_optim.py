"""
Student-style learning-rate schedules and weight-decay groups: (checker, buggy function, expected name) rows,
valid alternatives, and unnamed mistakes that must be reported as not recognised.
"""

from __future__ import annotations

import math

import torch.nn as nn

from mingpt.exercises import check_lr_schedule, check_weight_decay_groups


def lr_ok(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:
        return min_lr
    progress = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
    return min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (learning_rate - min_lr)


def lr_by_coefficient(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # valid: nanoGPT's layout
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it > lr_decay_iters:
        return min_lr
    decay_ratio = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
    coeff = 0.5 * (1.0 + math.cos(math.pi * decay_ratio))
    return min_lr + coeff * (learning_rate - min_lr)


def lr_with(warmup=None, decay=None, after=None, peak=None, floor=None):
    """A student's schedule with one part written differently."""
    def lr(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
        learning_rate = learning_rate if peak is None else peak
        min_lr = floor(learning_rate, min_lr) if floor else min_lr
        if it < warmup_iters:
            return warmup(it, learning_rate, min_lr, warmup_iters) if warmup else \
                learning_rate * (it + 1) / (warmup_iters + 1)
        if it >= lr_decay_iters and after != "keep going":
            return after(learning_rate, min_lr) if after else min_lr
        if decay:
            return decay(it, learning_rate, min_lr, warmup_iters, lr_decay_iters)
        progress = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
        return min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (learning_rate - min_lr)
    return lr


def cosine(progress_fn=lambda it, W, D: (it - W) / (D - W), curve=lambda p: 0.5 * (1 + math.cos(math.pi * p))):
    return lambda it, lr, mn, W, D: mn + curve(progress_fn(it, W, D)) * (lr - mn)


LR_MISTAKES = [
    (check_lr_schedule, lr_with(warmup=lambda it, lr, mn, W: lr * it / W), "learning rate 0 at the first step"),
    (check_lr_schedule, lr_with(warmup=lambda it, lr, mn, W: lr), "warm-up missing"),
    (check_lr_schedule, lr_with(warmup=lambda it, lr, mn, W: lr * (it + 1) / W),
     "warm-up reaches the peak one step early"),
    (check_lr_schedule, lr_with(warmup=lambda it, lr, mn, W: mn + (lr - mn) * (it + 1) / (W + 1)),
     "warm-up starts from min_lr"),
    (check_lr_schedule, lr_with(after="keep going"), "not flat after lr_decay_iters"),
    (check_lr_schedule, lr_with(after=lambda lr, mn: lr), "learning_rate after lr_decay_iters"),
    (check_lr_schedule, lr_with(floor=lambda lr, mn: 0.0), "decays to 0 instead of min_lr"),
    (check_lr_schedule, lr_with(floor=lambda lr, mn: lr / 10), "min_lr hard-coded as learning_rate / 10"),
    (check_lr_schedule, lr_with(peak=6e-4), "learning_rate hard-coded"),
    (check_lr_schedule, lr_with(decay=cosine(curve=lambda p: 0.5 * (1 + math.cos(2 * math.pi * p)))),
     "wrong cosine period"),
    (check_lr_schedule, lr_with(decay=cosine(curve=lambda p: 0.5 + 0.5 * math.cos(math.pi / 2 * p))),
     "a quarter cosine: never reaches min_lr before the jump"),
    (check_lr_schedule, lr_with(decay=cosine(curve=lambda p: math.cos(math.pi * p / 2))),
     "a quarter cosine instead of a half"),
    (check_lr_schedule, lr_with(decay=cosine(progress_fn=lambda it, W, D: (it - W) / D)),
     "LR never reaches its floor during the decay"),
    (check_lr_schedule, lr_with(decay=cosine(progress_fn=lambda it, W, D: it / D)),
     "decay measured from step 0 instead of the end of warm-up"),
    (check_lr_schedule, lr_with(decay=cosine(progress_fn=lambda it, W, D: (it - W) // (D - W))),
     "integer division in the progress"),
    (check_lr_schedule, lr_with(decay=lambda it, lr, mn, W, D: mn + 0.5 * (1 + math.cos(math.pi * (it - W) / (D - W)))
                                * lr), "cosine scaled by learning_rate instead of learning_rate - min_lr"),
    (check_lr_schedule, lr_with(decay=cosine(curve=lambda p: 1 - p)), "linear decay instead of cosine"),
    (check_lr_schedule, lr_with(decay=cosine(curve=lambda p: 0.5 * (1 - math.cos(math.pi * p)))),
     "the cosine goes up instead of down"),
    (check_lr_schedule, lambda it, lr, mn, W, D: str(lr_ok(it, lr, mn, W, D)), "the learning rate must be a number"),
    # fitted families, two mistakes at once, and a mistake shown through nanoGPT's `it > lr_decay_iters` boundary
    (check_lr_schedule, lr_with(warmup=lambda it, lr, mn, W: lr * (it + 1) / 8),
     "warm-up divides by a fixed 8, not by warmup_iters + 1"),
    (check_lr_schedule, lr_with(warmup=lambda it, lr, mn, W: lr * (it + 1) / 40),
     "warm-up divides by a fixed 40, not by warmup_iters + 1"),
    (check_lr_schedule, lambda it, lr, mn, W, D: lr_ok(it - 5, lr, mn, W, D),
     "the whole schedule 5 steps behind (it - 5)"),
    (check_lr_schedule, lambda it, lr, mn, W, D: lr_ok(it + 2, lr, mn, W, D),
     "the whole schedule 2 steps ahead (it + 2)"),
    (check_lr_schedule, lr_with(warmup=lambda it, lr, mn, W: lr, decay=lambda it, lr, mn, W, D: lr * 0.5 * (
        1 + math.cos(math.pi * (it - W) / (D - W)))),
     "two mistakes: warm-up missing; and cosine decays towards 0, then jumps to min_lr"),
    (check_lr_schedule, lambda it, lr, mn, W, D: lr if it > D else lr_by_coefficient(it, lr, mn, W, D),
     "learning_rate after lr_decay_iters"),
]

LR_VALID = [(check_lr_schedule, lr_ok), (check_lr_schedule, lr_by_coefficient)]


# ------------------------------------------------------------------------------------------ weight decay
def linear_weights(model):
    return {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}


def groups(decide, decay_value=lambda wd: wd, no_decay_value=0.0):
    """A student's two groups; decide(model, name, param) -> decay or not."""
    def make(model, weight_decay):
        params = list(model.named_parameters())
        return [{"params": [p for n, p in params if decide(model, n, p)], "weight_decay": decay_value(weight_decay)},
                {"params": [p for n, p in params if not decide(model, n, p)], "weight_decay": no_decay_value}]
    return make


def groups_ok(model, weight_decay):
    decay = linear_weights(model)
    return [{"params": [p for p in model.parameters() if id(p) in decay], "weight_decay": weight_decay},
            {"params": [p for p in model.parameters() if id(p) not in decay], "weight_decay": 0.0}]


def groups_by_module(model, weight_decay):  # valid: nanoGPT/minGPT style walk over modules, tied weight by identity
    decay, no_decay, seen = [], [], set()
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if id(p) in seen:
                continue
            seen.add(id(p))
            (decay if isinstance(module, nn.Linear) and name == "weight" or id(p) in linear_weights(model)
             else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def groups_twice(model, weight_decay):
    named = dict(model.named_parameters(remove_duplicate=False))
    decay = linear_weights(model)
    return [{"params": [p for p in named.values() if id(p) in decay], "weight_decay": weight_decay},
            {"params": [p for n, p in named.items() if id(p) not in decay], "weight_decay": 0.0}]


def groups_without_key(model, weight_decay):
    decay = linear_weights(model)
    return [{"params": [p for p in model.parameters() if id(p) in decay], "weight_decay": weight_decay},
            {"params": [p for p in model.parameters() if id(p) not in decay]}]


def groups_of_names(model, weight_decay):
    decay = linear_weights(model)
    return [{"params": [n for n, p in model.named_parameters() if id(p) in decay], "weight_decay": weight_decay},
            {"params": [n for n, p in model.named_parameters() if id(p) not in decay], "weight_decay": 0.0}]


def groups_as_sets(model, weight_decay):
    decay = linear_weights(model)
    return [{"params": {p for p in model.parameters() if id(p) in decay}, "weight_decay": weight_decay},
            {"params": {p for p in model.parameters() if id(p) not in decay}, "weight_decay": 0.0}]


def groups_forgets_no_decay(model, weight_decay):
    decay = linear_weights(model)
    return [{"params": [p for p in model.parameters() if id(p) in decay], "weight_decay": weight_decay}]


def module_is_linear_not_embedding(model, n, p):
    owner = model.get_submodule(n.rsplit(".", 1)[0])
    return isinstance(owner, nn.Linear) and n.endswith("weight") and not n.startswith("transformer.wte")


WD_MISTAKES = [
    (check_weight_decay_groups, groups(lambda m, n, p: id(p) in linear_weights(m) and ".mlp." not in n),
     "only some Linear weights decayed: none on mlp.c_fc and mlp.c_proj"),
    (check_weight_decay_groups, groups(lambda m, n, p: id(p) in linear_weights(m) and n != "transformer.h.1.attn.c_proj"
                                       ".weight"),
     "only some Linear weights decayed: none on transformer.h.1.attn.c_proj"),
    (check_weight_decay_groups, groups(lambda m, n, p: True), "weight decay on biases and LayerNorm gains and position "
                                                              "embeddings"),
    (check_weight_decay_groups, groups(lambda m, n, p: p.dim() >= 2), "weight decay on position embeddings"),
    (check_weight_decay_groups, groups(lambda m, n, p: n.endswith("weight")),
     "weight decay on LayerNorm gains and position embeddings"),
    (check_weight_decay_groups, groups(lambda m, n, p: id(p) in linear_weights(m) or n.endswith("bias")),
     "weight decay on biases"),
    (check_weight_decay_groups, groups(lambda m, n, p: id(p) in linear_weights(m), decay_value=lambda wd: 0.1),
     "weight decay value hard-coded"),
    (check_weight_decay_groups, groups(lambda m, n, p: id(p) not in linear_weights(m)),
     "decay and no-decay groups swapped"),
    (check_weight_decay_groups, groups(lambda m, n, p: False), "matmul weights not decayed"),
    (check_weight_decay_groups, groups(lambda m, n, p: id(p) in linear_weights(m), decay_value=lambda wd: 0.0),
     "matmul weights not decayed"),
    (check_weight_decay_groups, groups(module_is_linear_not_embedding), "the tied wte/lm_head weight not decayed"),
    (check_weight_decay_groups, groups(lambda m, n, p: id(p) in linear_weights(m), decay_value=lambda wd: wd / 2),
     "wrong weight decay on the matmul weights"),
    (check_weight_decay_groups, groups_twice, "a parameter is listed twice"),
    (check_weight_decay_groups, groups_forgets_no_decay, "parameters missing from the groups"),
    (check_weight_decay_groups, groups_without_key, "a group without 'weight_decay'"),
    (check_weight_decay_groups, groups_of_names, "groups hold names, not parameters"),
    (check_weight_decay_groups, groups_as_sets, "params given as a set"),
    (check_weight_decay_groups, lambda model, wd: {"params": list(model.parameters()), "weight_decay": wd},
     "groups must be a list of dicts with 'params'"),
]

WD_VALID = [(check_weight_decay_groups, groups_ok), (check_weight_decay_groups, groups_by_module)]

UNNAMED = [(check_lr_schedule, lambda it, lr, mn, W, D: lr_ok(it, lr, mn, W, D) * 1.01),
           (check_lr_schedule, lambda it, lr, mn, W, D: lr_ok(it + 9, lr, mn, W, D))]  # no family shifts by 9

MISTAKES = LR_MISTAKES + WD_MISTAKES
VALID = LR_VALID + WD_VALID
