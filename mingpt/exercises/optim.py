"""
Checking a student's optimiser set-up: which parameters get weight decay, and the cosine learning-rate schedule.

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

import math

import torch.nn as nn

from mingpt.cfgnode import CfgNode
from mingpt.exercises.attention import attention_config
from mingpt.exercises.checking import CheckResult, Variant, fail, run
from mingpt.exercises.compare import check_cases
from mingpt.model import GPT
from mingpt.training.schedule import get_lr

__all__ = ["check_weight_decay_groups", "check_lr_schedule", "LR_MISTAKES"]

WD_HINT = "decide by the module a parameter belongs to, e.g. isinstance(module, nn.Linear)"


def _groups_or_problem(exercise, fn, model, weight_decay):
    """{id(param): its decay} from the student's groups, or a failed result naming a structural mistake."""
    groups, problem = run(exercise, f"your function(model, weight_decay={weight_decay})", fn, model, weight_decay,
                          hint="loop over model.named_modules() and each module's own parameters")
    if problem is not None:
        return None, problem
    names = {id(p): n for n, p in model.named_parameters()}  # a tied matrix appears once, under its first name
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
        if not_decayed:
            return fail(exercise, "wrong weight decay on the matmul weights", "The weights of every nn.Linear get "
                        "exactly the weight_decay given.", f"{setting(wd)}\n" + ", ".join(
                            f"{names[i]}: {decay[i]}" for i in should_decay if decay[i] != wd)[:300], WD_HINT)
    raise AssertionError("unreachable: the groups differ from the expected ones but no difference was found")


# ------------------------------------------------------------------------------------------ learning-rate schedule
def _schedule(it, lr, mn, W, D, warm=None, progress=None, shape=None, after=None):
    """The cosine schedule with each part replaceable: the variants below are this with one part changed."""
    if it < W:
        return warm(it, lr, mn, W) if warm else lr * (it + 1) / (W + 1)
    if it >= D and after != "continue":
        return after(lr, mn) if after else mn
    p = progress(it, W, D) if progress else (it - W) / (D - W)
    return mn + (shape(p) if shape else 0.5 * (1 + math.cos(math.pi * p))) * (lr - mn)


def _reference_lr(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    config = CfgNode(learning_rate=learning_rate, warmup_iters=warmup_iters, lr_schedule="cosine", min_lr=min_lr,
                     lr_decay_iters=lr_decay_iters, max_iters=lr_decay_iters)
    return get_lr(it, config)


LR_MISTAKES = [  # (name, f(it, lr, min_lr, warmup, decay_iters), explanation, hint)
    ("learning rate 0 at the first step", lambda it, lr, mn, W, D: _schedule(it, lr, mn, W, D,
                                                                            warm=lambda i, lr, mn, W: lr * i / W),
     "The first step would not learn at all: warm-up starts above 0.", "count the step being taken: (it + 1)"),
    ("warm-up missing", lambda it, lr, mn, W, D: _schedule(max(it, W), lr, mn, W, D),
     "The rate must rise linearly during the first warmup_iters steps: large updates on random weights are unstable.",
     "for it < warmup_iters: learning_rate * (it + 1) / (warmup_iters + 1)"),
    ("warm-up reaches the peak one step early",
     lambda it, lr, mn, W, D: _schedule(it, lr, mn, W, D, warm=lambda i, lr, mn, W: lr * (i + 1) / W),
     "During warm-up the rate is learning_rate * (it + 1) / (warmup_iters + 1).", "divide by warmup_iters + 1"),
    ("warm-up divides it (not it + 1) by warmup_iters + 1",
     lambda it, lr, mn, W, D: _schedule(it, lr, mn, W, D, warm=lambda i, lr, mn, W: lr * i / (W + 1)),
     "During warm-up the rate is learning_rate * (it + 1) / (warmup_iters + 1): the first step (it = 0) already "
     "learns; yours is 0 there.", "count the step being taken: (it + 1)"),
    ("warm-up starts from min_lr",
     lambda it, lr, mn, W, D: _schedule(it, lr, mn, W, D, warm=lambda i, lr, mn, W: mn + (lr - mn) * (i + 1) / (W + 1)),
     "Warm-up rises from (almost) 0 to learning_rate; min_lr is the floor of the decay, not the start.",
     "learning_rate * (it + 1) / (warmup_iters + 1)"),
    ("not flat after lr_decay_iters", lambda it, lr, mn, W, D: _schedule(it, lr, mn, W, D, after="continue"),
     "After lr_decay_iters the rate stays at min_lr; a cosine left running climbs back up.",
     "handle it >= lr_decay_iters first"),
    ("learning_rate after lr_decay_iters", lambda it, lr, mn, W, D: _schedule(it, lr, mn, W, D,
                                                                            after=lambda lr, mn: lr),
     "After the decay the rate stays at its floor, min_lr.", "return min_lr when it >= lr_decay_iters"),
    ("0 after lr_decay_iters", lambda it, lr, mn, W, D: _schedule(it, lr, mn, W, D, after=lambda lr, mn: 0.0),
     "After the decay the rate stays at its floor, min_lr; at 0 the model stops learning.",
     "return min_lr when it >= lr_decay_iters"),
    ("decays to 0 instead of min_lr", lambda it, lr, mn, W, D: _schedule(it, lr, 0.0, W, D),
     "The cosine goes from learning_rate down to min_lr, not to 0.", "min_lr + (learning_rate - min_lr) * ..."),
    ("min_lr hard-coded as learning_rate / 10", lambda it, lr, mn, W, D: _schedule(it, lr, lr / 10, W, D),
     "Your floor is learning_rate / 10 whatever min_lr is (the two agree only when min_lr happens to be a tenth).",
     "use the min_lr argument"),
    ("learning_rate hard-coded", lambda it, lr, mn, W, D: _schedule(it, 6e-4, mn, W, D),
     "Your peak is 6e-4 whatever learning_rate is.", "use the learning_rate argument"),
    ("wrong cosine period", lambda it, lr, mn, W, D: _schedule(it, lr, mn, W, D,
                                                             shape=lambda p: 0.5 * (1 + math.cos(2 * math.pi * p))),
     "Over the decay the rate follows *half* a cosine: from its peak down to min_lr once, without coming back up.",
     "cos(pi * progress), progress 0 -> 1"),
    ("a quarter cosine: never reaches min_lr before the jump",
     lambda it, lr, mn, W, D: _schedule(it, lr, mn, W, D, shape=lambda p: math.cos(math.pi * p / 2) * 0.5 + 0.5),
     "At the end of the decay the rate must have arrived at min_lr; yours is still half-way and then jumps.",
     "0.5 * (1 + cos(pi * progress))"),
    ("a quarter cosine instead of a half",
     lambda it, lr, mn, W, D: _schedule(it, lr, mn, W, D, shape=lambda p: math.cos(math.pi * p / 2)),
     "cos(pi/2 * p) falls slowly at first and steeply at the end; GPT's schedule is half a cosine, "
     "0.5 * (1 + cos(pi * p)), flat at both ends.", "0.5 * (1 + cos(pi * progress))"),
    ("LR never reaches its floor during the decay",
     lambda it, lr, mn, W, D: _schedule(it, lr, mn, W, D, progress=lambda i, W, D: (i - W) / D),
     "Progress runs from 0 at the end of warm-up to 1 at lr_decay_iters: (it - warmup) / (lr_decay_iters - "
     "warmup); dividing by lr_decay_iters stops short of 1, so the rate jumps down to min_lr at the end.",
     "divide by the length of the decay, lr_decay_iters - warmup_iters"),
    ("decay measured from step 0 instead of the end of warm-up",
     lambda it, lr, mn, W, D: _schedule(it, lr, mn, W, D, progress=lambda i, W, D: i / D),
     "Progress through the decay is (it - warmup_iters) / (lr_decay_iters - warmup_iters).",
     "the cosine starts when the warm-up ends"),
    ("decay reaches min_lr one step early",
     lambda it, lr, mn, W, D: _schedule(it, lr, mn, W, D, progress=lambda i, W, D: min(1.0, (i - W) / (D - W - 1))),
     "Progress is (it - warmup_iters) / (lr_decay_iters - warmup_iters); dividing by one step less reaches the "
     "floor a step before lr_decay_iters.", "divide by lr_decay_iters - warmup_iters"),
    ("integer division in the progress",
     lambda it, lr, mn, W, D: _schedule(it, lr, mn, W, D, progress=lambda i, W, D: (i - W) // (D - W)),
     "`//` rounds the progress down to 0, so the rate stays at its peak until lr_decay_iters.", "use /"),
    ("cosine scaled by learning_rate instead of learning_rate - min_lr",
     lambda it, lr, mn, W, D: _schedule(it, lr, mn, W, D, shape=lambda p: 0.5 * (1 + math.cos(math.pi * p)) * lr
                                        / (lr - mn)),
     "The cosine spans the gap between the peak and the floor: min_lr + coeff * (learning_rate - min_lr); yours "
     "starts the decay at learning_rate + min_lr.", "multiply by (learning_rate - min_lr)"),
    ("cosine decays towards 0, then jumps to min_lr",
     lambda it, lr, mn, W, D: _schedule(it, lr, mn, W, D, shape=lambda p: 0.5 * (1 + math.cos(math.pi * p)) * lr
                                        / (lr - mn) - mn / (lr - mn)),
     "The cosine runs from learning_rate down to min_lr: min_lr + coeff * (learning_rate - min_lr); yours is "
     "coeff * learning_rate, which heads for 0 and then drops to min_lr at lr_decay_iters.",
     "min_lr + coeff * (learning_rate - min_lr)"),
    ("cosine without the factor 0.5", lambda it, lr, mn, W, D: _schedule(it, lr, mn, W, D,
                                                                       shape=lambda p: 1 + math.cos(math.pi * p)),
     "0.5 * (1 + cos(pi * p)) runs from 1 to 0; without the 0.5 it runs from 2 to 0, so the decay starts at twice "
     "the peak.", "0.5 * (1 + cos(pi * progress))"),
    ("cosine one step ahead (it + 1 in the progress)",
     lambda it, lr, mn, W, D: _schedule(it, lr, mn, W, D, progress=lambda i, W, D: (i + 1 - W) / (D - W)),
     "Progress through the decay is (it - warmup_iters) / (lr_decay_iters - warmup_iters): 0 at the first step "
     "after warm-up, so the decay starts at the peak; yours counts one step ahead.", "(it - warmup_iters), no + 1"),
    ("cosine without pi", lambda it, lr, mn, W, D: _schedule(it, lr, mn, W, D,
                                                             shape=lambda p: 0.5 * (1 + math.cos(p))),
     "Progress p runs from 0 to 1, so cos(p) only goes from 1 to cos(1) ~ 0.54: the rate never gets near min_lr "
     "and jumps there at the end. Half a cosine is cos(pi * p).", "math.cos(math.pi * progress)"),
    ("decay one step too long (lr_decay_iters - warmup_iters + 1): never reaches min_lr",
     lambda it, lr, mn, W, D: _schedule(it, lr, mn, W, D, progress=lambda i, W, D: (i - W) / (D - W + 1)),
     "Progress must reach 1 at lr_decay_iters: (it - warmup_iters) / (lr_decay_iters - warmup_iters); one more in "
     "the denominator leaves the rate above min_lr and it jumps there.", "divide by lr_decay_iters - warmup_iters"),
    ("flat at min_lr one step early (it >= lr_decay_iters - 1)",
     lambda it, lr, mn, W, D: mn if W <= it >= D - 1 else _schedule(it, lr, mn, W, D),
     "The cosine runs up to lr_decay_iters and only from there the rate stays at min_lr.",
     "if it >= lr_decay_iters: return min_lr"),
    ("cosine of degrees (180 * p) where math.cos takes radians",
     lambda it, lr, mn, W, D: _schedule(it, lr, mn, W, D, shape=lambda p: 0.5 * (1 + math.cos(180 * p))),
     "math.cos takes radians: half a turn is pi, not 180.", "math.cos(math.pi * progress)"),
    ("learning_rate and min_lr swapped (argument order)", lambda it, lr, mn, W, D: _schedule(it, mn, lr, W, D),
     "Your schedule is the right one with learning_rate and min_lr exchanged: check the order of the parameters "
     "(it, learning_rate, min_lr, warmup_iters, lr_decay_iters).", "def get_lr(it, learning_rate, min_lr, ...)"),
    ("the whole schedule one step ahead (it + 1)", lambda it, lr, mn, W, D: _schedule(it + 1, lr, mn, W, D),
     "Each of your rates is the reference's for the next step: it counts from 0, the first step is it = 0.",
     "use it as given"),
    ("the whole schedule one step behind (it - 1)", lambda it, lr, mn, W, D: _schedule(it - 1, lr, mn, W, D),
     "Each of your rates is the reference's for the step before: it counts from 0, the first step is it = 0.",
     "use it as given"),
    ("exponential decay instead of cosine",
     lambda it, lr, mn, W, D: _schedule(it, lr, mn, W, D, shape=lambda p: ((mn / lr) ** p * lr - mn) / (lr - mn)),
     "The rate follows half a cosine from learning_rate to min_lr; yours multiplies by a constant factor each step "
     "(learning_rate * (min_lr / learning_rate) ** progress).", "0.5 * (1 + cos(pi * progress))"),
    ("cosine towards 0, cut off at min_lr (max instead of the offset)",
     lambda it, lr, mn, W, D: _schedule(it, lr, mn, W, D, shape=lambda p: max(
         0.0, (0.5 * (1 + math.cos(math.pi * p)) * lr - mn) / (lr - mn))),
     "max(min_lr, coeff * learning_rate) follows a cosine towards 0 and stops at min_lr: it reaches the floor too "
     "early. The cosine spans the gap: min_lr + coeff * (learning_rate - min_lr).",
     "min_lr + coeff * (learning_rate - min_lr)"),
    ("quadratic warm-up instead of linear", lambda it, lr, mn, W, D: _schedule(
        it, lr, mn, W, D, warm=lambda i, lr, mn, W: lr * ((i + 1) / (W + 1)) ** 2),
     "Warm-up rises in a straight line: learning_rate * (it + 1) / (warmup_iters + 1).", "no square"),
    ("linear decay instead of cosine", lambda it, lr, mn, W, D: _schedule(it, lr, mn, W, D, shape=lambda p: 1 - p),
     "The rate follows half a cosine, slow at both ends; yours falls in a straight line.", "0.5 * (1 + cos(pi * p))"),
    ("the cosine goes up instead of down",
     lambda it, lr, mn, W, D: _schedule(it, lr, mn, W, D, shape=lambda p: 0.5 * (1 - math.cos(math.pi * p))),
     "After warm-up the rate starts at learning_rate and falls; yours starts at min_lr and climbs.",
     "1 + cos(...), not 1 - cos(...)"),
]

# Three settings: min_lr a tenth of the peak in the first only (a hard-coded ratio shows in the others), different
# warm-up and decay lengths, and a few steps past the end.
LR_SETTINGS = [(1.0, 0.1, 10, 100), (3e-3, 2e-4, 7, 53), (0.5, 0.2, 1, 20)]


def check_lr_schedule(fn) -> CheckResult:
    """
    Check fn(it, learning_rate, min_lr, warmup_iters, lr_decay_iters) against mingpt's cosine schedule:
    it < warmup: learning_rate * (it + 1) / (warmup_iters + 1); then half a cosine from learning_rate down to
    min_lr at lr_decay_iters; after that min_lr.
    """
    exercise = "cosine learning-rate schedule"
    cases = [(it, *setting) for setting in LR_SETTINGS for it in range(setting[3] + 25)]
    describe = lambda it, lr, mn, W, D: (f"your_lr(it={it}, learning_rate={lr}, min_lr={mn}, warmup_iters={W}, "
                                         f"lr_decay_iters={D})")
    for case in cases:
        value, problem = run(exercise, describe(*case), fn, *case, hint="it counts from 0; all arguments are numbers")
        if problem is not None:
            return problem
        if not isinstance(value, (int, float)) or isinstance(value, bool) or math.isnan(value):
            return fail(exercise, "the learning rate must be a number", f"{describe(*case)} returned {value!r}",
                        describe(*case), hint="return a float (a tensor's .item())")
    problem = check_cases(exercise, fn, cases, _reference_lr, [Variant(*row) for row in LR_MISTAKES], describe,
                          atol=1e-9, hint="warm-up, then half a cosine from learning_rate to min_lr, then flat at "
                                          "min_lr")
    if problem is not None:
        return problem
    return CheckResult(exercise, True, checked=["warm-up", "cosine decay to min_lr", "flat after lr_decay_iters",
                                                "3 settings"])
