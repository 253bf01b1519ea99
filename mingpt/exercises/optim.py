"""
Checking a student's optimiser set-up: which parameters get weight decay, and (in schedule.py, re-exported here) the
cosine learning-rate schedule.

The one idea: both exercises have answers you can state as rules, so the checker states the broken rule with the
names or steps that break it. Weight decay pulls weights towards 0, which regularises the matmul weights but
only harms biases, LayerNorm gains and position embeddings; every parameter must be in exactly one group (a tied
matrix is one parameter with two names). The schedule warms up linearly, follows half a cosine from the peak
to min_lr, and stays at min_lr after lr_decay_iters. Each is checked in more than one setting (two weight-decay
values, three schedules with different ratios and lengths), so that a hard-coded number cannot pass by luck.

    from mingpt.exercises import check_weight_decay_groups, check_lr_schedule
    check_weight_decay_groups(my_groups)   # my_groups(model, weight_decay) -> [{"params": [...], "weight_decay": wd}]
    check_lr_schedule(my_lr)               # my_lr(it, learning_rate, min_lr, warmup_iters, lr_decay_iters) -> float
"""

from __future__ import annotations

import re

import torch.nn as nn

from mingpt.exercises.attention import attention_config
from mingpt.exercises.checking import CheckResult, fail, run
from mingpt.exercises.schedule import LR_MISTAKES, check_lr_schedule
from mingpt.model import GPT

__all__ = ["check_weight_decay_groups", "check_lr_schedule", "LR_MISTAKES"]  # the last two: schedule.py

WD_HINT = "decide by the module a parameter belongs to, e.g. isinstance(module, nn.Linear)"


def _groups_or_problem(exercise, fn, model, weight_decay):
    """{id(param): its decay} from the student's groups, or a failed result naming a structural mistake."""
    groups, problem = run(exercise, f"your function(model, weight_decay={weight_decay})", fn, model, weight_decay,
                          hint="loop over model.named_modules() and each module's own parameters")
    if problem is not None:
        return None, _unpacked_parameters(exercise, problem)
    names = {id(p): n for n, p in model.named_parameters()}  # a tied matrix appears once, under its first name
    if groups is None:
        return None, fail(exercise, "returned None (a missing return?)", "yours returned None: the groups were "
                          "built but not returned", f"weight_decay={weight_decay}",
                          hint='end with return [{"params": [...], "weight_decay": weight_decay}, ...]')
    if not isinstance(groups, (list, tuple)) or not all(isinstance(g, dict) and "params" in g for g in groups):
        return None, fail(exercise, "groups must be a list of dicts with 'params'", f"yours returned "
                          f"{type(groups).__name__}", f"weight_decay={weight_decay}",
                          hint='[{"params": [...], "weight_decay": 0.1}, ...]')
    seen: dict[int, float] = {}
    for group in groups:
        if isinstance(group["params"], (set, frozenset)):
            return None, fail(exercise, "params given as a set", "A set has no fixed order, so the optimizer state "
                              "could not be matched to the parameters when a checkpoint is loaded; AdamW refuses it.",
                              f"a group's params is a {type(group['params']).__name__}", "use a list")
        params = list(group["params"])
        if any(isinstance(p, str) for p in params):
            return None, fail(exercise, "groups hold names, not parameters", "AdamW needs the parameter tensors "
                              "themselves.", f"e.g. {next(p for p in params if isinstance(p, str))!r}",
                              "collect p from model.named_parameters(), not n")
        if "weight_decay" not in group:
            return None, fail(exercise, "a group without 'weight_decay'", "A group without its own weight_decay "
                              "gets the optimizer's default (AdamW: 0.01), not 0: the parameters you meant to spare "
                              "are decayed.", f"a group of {len(params)} parameters has only the keys "
                              f"{sorted(group)}", 'give every group "weight_decay" explicitly (0.0 for no decay)')
        for p in params:
            if id(p) in seen:
                return None, fail(exercise, "a parameter is listed twice",
                                  "Each parameter must be in exactly one group (AdamW refuses duplicates). A tied "
                                  "matrix (lm_head.weight is transformer.wte.weight) is one parameter with two names.",
                                  f"{names.get(id(p), '?')} appears twice",
                                  "collect parameters by identity (model.parameters() lists a tied one once)")
            seen[id(p)] = float(group["weight_decay"])
    missing = [names[i] for i in names if i not in seen]
    if missing:
        return None, fail(exercise, "parameters missing from the groups", "Every parameter must be in some group, or "
                          "it will never be trained.", f"not in any group: {', '.join(missing[:4])}"
                          + (f" and {len(missing) - 4} more" if len(missing) > 4 else ""),
                          hint="start from model.parameters() so nothing is left out")
    return seen, None


def check_weight_decay_groups(fn, weight_decay: float = 0.1) -> CheckResult:
    """Check fn(model, weight_decay) -> AdamW parameter groups: decay exactly the weights of nn.Linear layers, by
    the weight_decay given (checked with two values)."""
    exercise = "weight-decay groups"
    config = attention_config()
    config.n_layer = 2
    model = GPT(config)
    names = {id(p): n for n, p in model.named_parameters()}
    should_decay = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
    tied = id(model.lm_head.weight)
    runs = {}
    for wd in (weight_decay, round(weight_decay * 3.7, 6)):
        decay, problem = _groups_or_problem(exercise, fn, model, wd)
        if problem is not None:
            return problem
        runs[wd] = decay
    (wd1, d1), (wd2, d2) = runs.items()
    expected = {wd: {i: (wd if i in should_decay else 0.0) for i in names} for wd in runs}
    if all(runs[wd] == expected[wd] for wd in runs):
        return CheckResult(exercise, True, checked=["exactly the Linear weights decayed, by the value given",
                                                    "every parameter once"])
    setting = lambda wd: f"your_function(model, weight_decay={wd})"
    if d1 == expected[wd1] and all(d2[i] == (wd1 if i in should_decay else 0.0) for i in names):
        return fail(exercise, "weight decay value hard-coded", f"Your groups are right for weight_decay={wd1} but "
                    f"decay by {wd1} when asked for {wd2}.", setting(wd2), "use the weight_decay argument")
    if wd1 != wd2 and {v for v in d2.values() if v} == {wd1} and \
            {i for i, v in d1.items() if v} == {i for i, v in d2.items() if v}:  # wd1 written in, and a second slip
        rest = check_weight_decay_groups(lambda model, wd: [
            {**g, "weight_decay": wd if g.get("weight_decay") == wd1 else g.get("weight_decay")}
            for g in fn(model, wd1)], wd1)  # the value put right: what else is wrong
        if not rest:
            return fail(exercise, f"two mistakes: {rest.property}; and weight decay value hard-coded",
                        f"{rest.explanation} And: your groups decay by {wd1} when asked for {wd2}.",
                        rest.counterexample, f"{rest.hint}; and use the weight_decay argument")
    if all(runs[wd] == {i: (0.0 if i in should_decay else wd) for i in names} for wd in runs):
        return fail(exercise, "decay and no-decay groups swapped", "The Linear weights must be decayed and "
                    "everything else not; yours does the opposite.", setting(wd1), "swap the two lists")
    for wd, decay in runs.items():
        decayed_wrongly = [names[i] for i, d in decay.items() if d != 0 and i not in should_decay]
        not_decayed = [names[i] for i, d in decay.items() if d != wd and i in should_decay]
        if decayed_wrongly:
            found = {"biases" if n.endswith("bias") else "LayerNorm gains" if "ln_" in n
                     else "position embeddings" if "wpe" in n else "other parameters" for n in decayed_wrongly}
            kinds = [k for k in ("biases", "LayerNorm gains", "position embeddings", "other parameters") if k in found]
            return fail(exercise, f"weight decay on {' and '.join(kinds)}",
                        "Weight decay should only shrink the matmul weights (nn.Linear); pulling biases, LayerNorm "
                        "gains (which should stay near 1) or position embeddings towards 0 does not regularise "
                        "anything useful.",
                        f"{setting(wd)}\ndecayed but should not be: {', '.join(decayed_wrongly[:4])}"
                        + (f" and {len(decayed_wrongly) - 4} more" if len(decayed_wrongly) > 4 else ""), WD_HINT)
        if [names[tied]] == not_decayed and decay[tied] == 0:
            return fail(exercise, "the tied wte/lm_head weight not decayed", "lm_head is an nn.Linear whose weight "
                        "is the token embedding (tied): it is one matmul weight and gets weight decay.",
                        f"{setting(wd)}\n{names[tied]} has weight_decay 0",
                        "decide by nn.Linear modules: lm_head's weight is wte's")
        if not_decayed and all(decay[i] == 0 for i in should_decay):
            return fail(exercise, "matmul weights not decayed", "The weights of every nn.Linear (the tied wte/lm_head "
                        "included) get weight decay.", f"{setting(wd)}\nnot decayed: {', '.join(not_decayed[:4])}",
                        hint="every nn.Linear's weight goes in the decayed group")
        if not_decayed and all(decay[i] == 0 for i in should_decay if names[i] in not_decayed):
            # some Linears left out (a filter on names such as "attn" in name): say which, per layer kind
            short = lambda n: ".".join(n.split(".")[-3:-1])  # noqa: E731  (transformer.h.0.attn.c_proj.weight)
            every_layer = lambda n: sum(short(m) == short(n) for m in not_decayed if ".h." in m) == config.n_layer  # noqa: E731
            kinds = list(dict.fromkeys("the tied wte/lm_head" if n == names[tied] else short(n) if ".h." in n and
                                       every_layer(n) else n.removesuffix(".weight") for n in not_decayed))
            kinds = ", ".join(kinds[:-1]) + " and " + kinds[-1] if len(kinds) > 1 else kinds[0]
            return fail(exercise, f"only some Linear weights decayed: none on {kinds}",
                        "Every nn.Linear's weight is a matmul weight and gets the weight decay, whichever sublayer "
                        "it is in; a rule on parameter names (e.g. 'mlp' in name) leaves the others out.",
                        f"{setting(wd)}\nnot decayed: {', '.join(not_decayed[:4])}"
                        + (f" and {len(not_decayed) - 4} more" if len(not_decayed) > 4 else ""), WD_HINT)
        if not_decayed:
            return fail(exercise, "wrong weight decay on the matmul weights", "The weights of every nn.Linear get "
                        "exactly the weight_decay given.", f"{setting(wd)}\n" + ", ".join(
                            f"{names[i]}: {decay[i]}" for i in should_decay if decay[i] != wd)[:300], WD_HINT)
    raise AssertionError("unreachable: the groups differ from the expected ones but no difference was found")


def _unpacked_parameters(exercise, problem: CheckResult) -> CheckResult:
    """The crash, named when its line unpacks two values from .parameters() (not named_parameters()) and Python
    says exactly that: parameters() yields the tensors alone, so `for n, p in ...` unpacks a tensor's rows."""
    line = re.search(r"`([^`]*)`\s*$", problem.explanation.split("\n", 2)[1] if "\n" in problem.explanation else "")
    if not ("values to unpack (expected 2)" in problem.explanation and line
            and re.search(r"(?<!named_)parameters\(\)", line.group(1).split("#")[0])):
        return problem
    return fail(exercise, "(name, p) unpacked from model.parameters(), which yields tensors only",
                "model.parameters() gives each parameter alone; `for n, p in model.parameters()` tries to unpack a "
                "tensor into two names. model.named_parameters() gives (name, parameter) pairs.",
                problem.explanation, "for name, p in model.named_parameters()")
