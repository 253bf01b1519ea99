"""
Checking a student's optimiser set-up: which parameters get weight decay, and the cosine learning-rate schedule.

The one idea: both exercises have answers you can state as rules, so the checker states the broken rule with the
names or steps that break it. Weight decay pulls weights towards 0, which regularises the matmul weights but
only harms biases, LayerNorm gains and position embeddings; every parameter must be in exactly one group (a tied
matrix is one parameter with two names). The schedule warms up linearly, follows half a cosine from the peak
to min_lr, and stays at min_lr after lr_decay_iters.

    from mingpt.exercises import check_weight_decay_groups, check_lr_schedule
    check_weight_decay_groups(my_groups)   # my_groups(model, weight_decay) -> [{"params": [...], "weight_decay": wd}]
    check_lr_schedule(my_lr)               # my_lr(it, learning_rate, min_lr, warmup_iters, lr_decay_iters) -> float
"""

from __future__ import annotations

import math

import torch.nn as nn

from mingpt.cfgnode import CfgNode
from mingpt.exercises.attention import attention_config
from mingpt.exercises.checking import CheckResult, fail, run
from mingpt.model import GPT
from mingpt.training.schedule import get_lr

__all__ = ["check_weight_decay_groups", "check_lr_schedule"]


def check_weight_decay_groups(fn, weight_decay: float = 0.1) -> CheckResult:
    """Check fn(model, weight_decay) -> AdamW parameter groups: decay exactly the weights of nn.Linear layers."""
    exercise = "weight-decay groups"
    config = attention_config()
    config.n_layer = 2
    model = GPT(config)
    groups, problem = run(exercise, "your function(model, weight_decay)", fn, model, weight_decay)
    if problem is not None:
        return problem
    if not isinstance(groups, (list, tuple)) or not all(isinstance(g, dict) and "params" in g for g in groups):
        return fail(exercise, "groups must be a list of dicts with 'params'",
                    f"yours returned {type(groups).__name__}", hint='[{"params": [...], "weight_decay": 0.1}, ...]')
    names = {id(p): n for n, p in model.named_parameters()}  # a tied matrix appears once, under its first name
    should_decay = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
    seen: dict[int, float] = {}
    for group in groups:
        decay = group.get("weight_decay", weight_decay)
        for p in group["params"]:
            if id(p) in seen:
                return fail(exercise, "a parameter is listed twice",
                            "Each parameter must be in exactly one group (AdamW refuses duplicates). A tied matrix "
                            "(lm_head.weight is transformer.wte.weight) is one parameter with two names.",
                            f"{names.get(id(p), '?')} appears twice",
                            "collect parameters by identity (model.parameters() lists a tied one once)")
            seen[id(p)] = decay
    missing = [names[i] for i in names if i not in seen]
    if missing:
        return fail(exercise, "parameters missing from the groups", "Every parameter must be in some group, or "
                    "it will never be trained.", f"not in any group: {', '.join(missing[:4])}"
                    + (f" and {len(missing) - 4} more" if len(missing) > 4 else ""),
                    hint="start from model.parameters() so nothing is left out")
    decayed_wrongly = [names[i] for i, d in seen.items() if d > 0 and i not in should_decay]
    not_decayed = [names[i] for i, d in seen.items() if d == 0 and i in should_decay]
    if decayed_wrongly:
        found = {"biases" if n.endswith("bias") else "LayerNorm gains" if "ln_" in n
                 else "position embeddings" if "wpe" in n else "other parameters" for n in decayed_wrongly}
        kinds = [k for k in ("biases", "LayerNorm gains", "position embeddings", "other parameters") if k in found]
        return fail(exercise, f"weight decay on {' and '.join(kinds)}",
                    "Weight decay should only shrink the matmul weights (nn.Linear); pulling biases, LayerNorm gains "
                    "(which should stay near 1) or position embeddings towards 0 does not regularise anything useful.",
                    f"decayed but should not be: {', '.join(decayed_wrongly[:4])}",
                    "decide by the module a parameter belongs to, e.g. isinstance(module, nn.Linear)")
    if not_decayed:
        return fail(exercise, "matmul weights not decayed", "The weights of every nn.Linear (the tied wte/lm_head "
                    "included) get weight decay.", f"not decayed: {', '.join(not_decayed[:4])}",
                    hint="every nn.Linear's weight goes in the decayed group")
    return CheckResult(exercise, True, checked=["exactly the Linear weights decayed", "every parameter once"])


def _reference_lr(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    config = CfgNode(learning_rate=learning_rate, warmup_iters=warmup_iters, lr_schedule="cosine", min_lr=min_lr,
                     lr_decay_iters=lr_decay_iters, max_iters=lr_decay_iters)
    return get_lr(it, config)


def check_lr_schedule(fn) -> CheckResult:
    """
    Check fn(it, learning_rate, min_lr, warmup_iters, lr_decay_iters) against mingpt's cosine schedule:
    it < warmup: learning_rate * (it + 1) / (warmup_iters + 1); then half a cosine from learning_rate down to
    min_lr at lr_decay_iters; after that min_lr.
    """
    exercise = "cosine learning-rate schedule"
    args = dict(learning_rate=1.0, min_lr=0.1, warmup_iters=10, lr_decay_iters=100)
    its = list(range(0, 130))
    ours = {it: _reference_lr(it, **args) for it in its}
    yours = {}
    for it in its:
        value, problem = run(exercise, f"your function({it}, **{args})", fn, it, *args.values())
        if problem is not None:
            return problem
        if not isinstance(value, (int, float)) or isinstance(value, bool) or math.isnan(value):
            return fail(exercise, "the learning rate must be a number", f"at it={it} yours returned {value!r}",
                        hint="return a float")
        yours[it] = float(value)
    wrong = [it for it in its if abs(yours[it] - ours[it]) > 1e-6]
    if not wrong:
        return CheckResult(exercise, True, checked=["warm-up", "cosine decay to min_lr", "flat after lr_decay_iters"])
    it = wrong[0]
    table = "\n".join(f"it={i:3d}: yours {yours[i]:.4f}, expected {ours[i]:.4f}"
                      for i in sorted({0, args["warmup_iters"], 55, 100, 120, it}))
    setting = f"learning_rate=1.0, min_lr=0.1, warmup_iters=10, lr_decay_iters=100\n{table}"
    if yours[0] == 0:
        return fail(exercise, "learning rate 0 at the first step", "The first step would not learn at all: "
                    "warm-up starts above 0.", setting, "count the step being taken: (it + 1)")
    if all(i < args["warmup_iters"] for i in wrong) and abs(yours[0] - 1.0) < 1e-9:
        return fail(exercise, "warm-up missing", "The rate must rise linearly during the first warmup_iters steps: "
                    "large updates on random weights are unstable.", setting,
                    hint="for it < warmup_iters: learning_rate * (it + 1) / (warmup_iters + 1)")
    if all(i < args["warmup_iters"] for i in wrong):
        return fail(exercise, "wrong warm-up", "During warm-up the rate is learning_rate * (it + 1) / "
                    "(warmup_iters + 1).", setting,
                    hint="for it < warmup_iters: learning_rate * (it + 1) / (warmup_iters + 1)")
    if all(i > args["lr_decay_iters"] for i in wrong):
        return fail(exercise, "not flat after lr_decay_iters", "After lr_decay_iters the rate stays at min_lr; "
                    "a cosine left running climbs back up.", setting, "handle it >= lr_decay_iters first")
    if abs(yours[args["lr_decay_iters"]]) < 1e-9 or abs(yours[99]) < 0.05:
        return fail(exercise, "decays to 0 instead of min_lr", "The cosine goes from learning_rate down to min_lr, "
                    "not to 0.", setting, "min_lr + (learning_rate - min_lr) * ...")
    if yours[55] > ours[55] + 0.2 or yours[55] < 0.2:
        return fail(exercise, "wrong cosine period", "Over the decay the rate follows *half* a cosine: from its "
                    "peak down to min_lr once, without coming back up.", setting, "cos(pi * progress), progress 0 -> 1")
    if abs(yours[args["warmup_iters"]] - ours[args["warmup_iters"]]) > 1e-6:
        return fail(exercise, "decay measured from step 0 instead of the end of warm-up",
                    "Progress through the decay is (it - warmup_iters) / (lr_decay_iters - warmup_iters).", setting,
                    hint="the cosine starts when the warm-up ends")
    return fail(exercise, "wrong learning rate", "No known mistake explains the difference.", setting,
                hint="warm-up, then half a cosine from learning_rate to min_lr, then flat at min_lr")
