"""
Checking a student's cosine learning-rate schedule: warm up linearly, follow half a cosine from the peak down to
min_lr, stay at min_lr after lr_decay_iters (mingpt.training.schedule.get_lr).

The one idea: the schedule is built from parts (the warm-up, the progress through the decay, the shape of the
decay, what comes after it), and most mistakes live in one part. So besides a table of whole mistakes, the checker
rebuilds the reference with one part replaced, and with two parts replaced at once: "no warm-up *and* a cosine
towards 0" is two mistakes that no single rebuilt schedule reproduces (compare.part_variants). Where the schedule
switches from one part to the next (it < warmup_iters or <=, it >= lr_decay_iters or >), the reference gives the
same number either way, so both conventions are valid and every rebuilt mistake is tried with each: nanoGPT's
`if it > lr_decay_iters` is not a mistake, but with a cosine towards 0 it shows as a 0 at lr_decay_iters.

    from mingpt.exercises import check_lr_schedule
    check_lr_schedule(my_lr)               # my_lr(it, learning_rate, min_lr, warmup_iters, lr_decay_iters) -> float
"""

from __future__ import annotations

import math
import re

from mingpt.cfgnode import CfgNode
from mingpt.exercises.checking import CheckResult, Variant, fail, run
from mingpt.exercises.compare import NOT_RECOGNISED, Part, check_cases, part_variants
from mingpt.exercises.state import Slots
from mingpt.training.schedule import get_lr

__all__ = ["check_lr_schedule", "LR_MISTAKES", "LR_PARTS"]


# ------------------------------------------------------------------------------------------ learning-rate schedule
def _schedule(it, lr, mn, W, D, warm=None, progress=None, shape=None, after=None, warm_to_W=False, late_end=False):
    """The cosine schedule with each part replaceable: the variants below are this with one part changed.
    warm_to_W: warm up while it <= W (not < W); late_end: flat only after it > D (not >= D). Both give the
    reference's numbers, so they are conventions, not mistakes, but they change where another mistake shows."""
    if it < W or warm_to_W and it == W:
        return warm(it, lr, mn, W) if warm else lr * (it + 1) / (W + 1)
    if (it > D if late_end else it >= D) and after != "continue":
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
    ("min_lr taken as a fraction of learning_rate (floor learning_rate * min_lr)",
     lambda it, lr, mn, W, D: _schedule(it, lr, lr * mn, W, D),
     "min_lr is the floor itself, a learning rate, not a ratio of the peak (as Hugging Face's min_lr_rate is): "
     "yours decays to learning_rate * min_lr.", "min_lr + coeff * (learning_rate - min_lr), then min_lr"),
    # transformers' get_cosine_schedule_with_warmup copied whole (three parts at once, so no pair rebuilds it): its
    # warm-up starts at 0, its cosine heads for 0 (no floor) and, as it is meant to end at the last step, nothing
    # stops it after lr_decay_iters: the half cosine turns into a full one and climbs back
    ("Hugging Face's get_cosine_schedule_with_warmup: warm-up from 0, cosine to 0 (not min_lr), not flat after",
     lambda it, lr, mn, W, D: lr * it / max(1, W) if it < W else lr * max(
         0.0, 0.5 * (1 + math.cos(math.pi * (it - W) / max(1, D - W)))),
     "Hugging Face's schedule is another contract: its warm-up is it / warmup_iters (0 at the first step), its "
     "cosine ends at 0 and it never stops at lr_decay_iters. Here the first step already learns, (it + 1) / "
     "(warmup_iters + 1), the cosine ends at min_lr, and the rate stays at min_lr from lr_decay_iters on.",
     "warm-up (it + 1) / (warmup_iters + 1); min_lr + coeff * (learning_rate - min_lr); min_lr after the decay"),
]
# A rate rounded with round(x, n) "to print nicely": right to n decimals, wrong beyond (the step's size changes).
LR_MISTAKES += [(f"learning rate rounded to {n} decimals (round())",
                 (lambda n: lambda it, lr, mn, W, D: round(_schedule(it, lr, mn, W, D), n))(n),
                 f"Your rates are the reference's rounded to {n} decimal places: round() changes the step taken, and "
                 "small rates (1e-4 and below) lose most of their digits.", "return the float as computed")
                for n in range(1, 9)]

# One mistake per part of the schedule (kind: the part). Alone they repeat some rows of LR_MISTAKES; their use is in
# pairs (two parts wrong at once) and in the families fitted below (any warm-up length, any shift of the steps).
LR_PARTS = [
    Part("warm", lambda i, lr, mn, W: lr, "warm-up missing", "The rate must rise linearly during the first "
         "warmup_iters steps: large updates on random weights are unstable.",
         "for it < warmup_iters: learning_rate * (it + 1) / (warmup_iters + 1)"),
    Part("warm", lambda i, lr, mn, W: lr * i / W, "learning rate 0 at the first step",
         "The first step would not learn at all: warm-up starts above 0.", "count the step being taken: (it + 1)"),
    Part("warm", lambda i, lr, mn, W: lr * (i + 1) / W, "warm-up reaches the peak one step early",
         "During warm-up the rate is learning_rate * (it + 1) / (warmup_iters + 1).", "divide by warmup_iters + 1"),
    Part("warm", lambda i, lr, mn, W: lr * (i + 2) / (W + 1), "warm-up one step ahead ((it + 2) / (warmup_iters + "
         "1))", "During warm-up the rate is learning_rate * (it + 1) / (warmup_iters + 1); yours counts one step "
         "more, so it reaches the peak a step early (the decay after it is right).", "(it + 1) / (warmup_iters + 1)"),
    Part("warm", lambda i, lr, mn, W: lr * (i + 1) / (W + 2), "warm-up divides by warmup_iters + 2",
         "During warm-up the rate is learning_rate * (it + 1) / (warmup_iters + 1); one more in the denominator "
         "leaves it below the peak when the decay starts.", "(it + 1) / (warmup_iters + 1)"),
    Part("warm", lambda i, lr, mn, W: lr * (i + 1) // (W + 1), "integer division (//) in the warm-up",
         "`//` floors the warm-up's fraction: learning_rate * (it + 1) // (warmup_iters + 1) is 0 (or a whole "
         "number) instead of rising step by step.", "learning_rate * (it + 1) / (warmup_iters + 1), with /"),
    Part("warm", lambda i, lr, mn, W: mn + (lr - mn) * (i + 1) / (W + 1), "warm-up starts from min_lr",
         "Warm-up rises from (almost) 0 to learning_rate; min_lr is the floor of the decay, not the start.",
         "learning_rate * (it + 1) / (warmup_iters + 1)"),
] + [Part("warm", lambda i, lr, mn, W, c=c: lr * (i + 1) / c, f"warm-up divides by a fixed {c}, not by "
          "warmup_iters + 1", f"Your warm-up is learning_rate * (it + 1) / {c} whatever warmup_iters is (a warm-up "
          "length written as a number).", "learning_rate * (it + 1) / (warmup_iters + 1)")
     for c in [*range(2, 31), 32, 40, 50, 64, 100, 128, 200, 256, 500, 1000, 2000]] + [
    Part("progress", lambda i, W, D: i / D, "decay measured from step 0 instead of the end of warm-up",
         "Progress through the decay is (it - warmup_iters) / (lr_decay_iters - warmup_iters).",
         "the cosine starts when the warm-up ends"),
    Part("progress", lambda i, W, D: i / (D - W), "progress counts from step 0, not from the end of warm-up "
         "(it / (lr_decay_iters - warmup_iters))", "Progress through the decay is (it - warmup_iters) / "
         "(lr_decay_iters - warmup_iters): 0 when the warm-up ends. Yours starts at warmup / (decay length), so the "
         "rate drops at the end of warm-up and passes the floor before lr_decay_iters.", "(it - warmup_iters) / ..."),
    Part("progress", lambda i, W, D: (i - W) / D, "LR never reaches its floor during the decay",
         "Progress runs from 0 at the end of warm-up to 1 at lr_decay_iters: (it - warmup) / (lr_decay_iters - "
         "warmup).", "divide by the length of the decay, lr_decay_iters - warmup_iters"),
    Part("progress", lambda i, W, D: (i + 1 - W) / (D - W), "cosine one step ahead (it + 1 in the progress)",
         "Progress through the decay is (it - warmup_iters) / (lr_decay_iters - warmup_iters).",
         "(it - warmup_iters), no + 1"),
    Part("progress", lambda i, W, D: (i - W) / (D - W + 1), "decay one step too long (lr_decay_iters - warmup_iters "
         "+ 1)", "Progress must reach 1 at lr_decay_iters.", "divide by lr_decay_iters - warmup_iters"),
    Part("after", lambda lr, mn: lr, "learning_rate after lr_decay_iters", "After the decay the rate stays at its "
         "floor, min_lr.", "return min_lr when it >= lr_decay_iters"),
    Part("after", lambda lr, mn: 0.0, "0 after lr_decay_iters", "After the decay the rate stays at its floor, min_lr.",
         "return min_lr when it >= lr_decay_iters"),
    Part("after", "continue", "not flat after lr_decay_iters", "After lr_decay_iters the rate stays at min_lr; a "
         "cosine left running climbs back up.", "handle it >= lr_decay_iters first"),
    Part("floor", "zero", "decays to 0 instead of min_lr", "The cosine goes from learning_rate down to min_lr, not "
         "to 0.", "min_lr + (learning_rate - min_lr) * ..."),
    Part("floor", "towards zero", "cosine decays towards 0, then jumps to min_lr", "The cosine runs from "
         "learning_rate down to min_lr: min_lr + coeff * (learning_rate - min_lr); yours is coeff * learning_rate.",
         "min_lr + coeff * (learning_rate - min_lr)"),
*[Part("floor", k, f"cosine ends at {k:g} * min_lr, then jumps to min_lr", f"The cosine runs from learning_rate "
          f"down to min_lr itself: min_lr + coeff * (learning_rate - min_lr); yours runs down to {k:g} * min_lr.",
          "min_lr + coeff * (learning_rate - min_lr)") for k in (2.0, 0.5)],
        Part("floor", "added", "min_lr added on top of the cosine: it peaks at learning_rate + min_lr",
         "The cosine spans learning_rate - min_lr: min_lr + coeff * (learning_rate - min_lr); yours is min_lr + "
         "coeff * learning_rate, above learning_rate at the start of the decay.",
         "min_lr + coeff * (learning_rate - min_lr)"),
    Part("shape", lambda p: math.cos(math.pi * p / 2), "a quarter cosine instead of a half", "GPT's schedule is half "
         "a cosine, 0.5 * (1 + cos(pi * p)).", "0.5 * (1 + cos(pi * progress))"),
    Part("shape", lambda p: 0.5 * (1 + math.cos(2 * math.pi * p)), "wrong cosine period", "Over the decay the rate "
         "follows *half* a cosine, once down, without coming back up.", "cos(pi * progress), progress 0 -> 1"),
    Part("shape", lambda p: 1 - p, "linear decay instead of cosine", "The rate follows half a cosine, slow at both "
         "ends; yours falls in a straight line.", "0.5 * (1 + cos(pi * p))"),
    # the whole-schedule rows above again as parts, so that they are tried in every boundary convention too
    # (nanoGPT's `it > lr_decay_iters` shows a wrong shape at it = lr_decay_iters) and in pairs
    Part("shape", lambda p: 0.5 * (1 - math.cos(math.pi * p)), "the cosine goes up instead of down",
         "After warm-up the rate starts at learning_rate and falls; yours starts at min_lr and climbs.",
         "1 + cos(...), not 1 - cos(...)"),
    Part("shape", lambda p: 0.5 * (1 + math.cos(p)), "cosine without pi", "Progress p runs from 0 to 1, so cos(p) "
         "only goes from 1 to cos(1) ~ 0.54: half a cosine is cos(pi * p).", "math.cos(math.pi * progress)"),
    Part("shape", lambda p: 1 + math.cos(math.pi * p), "cosine without the factor 0.5", "0.5 * (1 + cos(pi * p)) "
         "runs from 1 to 0; without the 0.5 it runs from 2 to 0.", "0.5 * (1 + cos(pi * progress))"),
    # 0.5 * (1 + cos) half remembered: without the 1 + the coefficient runs from 0.5 to -0.5 (the decay starts
    # half-way down and ends below the floor before the jump up to min_lr); without both, from 1 to -1
    Part("shape", lambda p: 0.5 * math.cos(math.pi * p), "cosine without the 1 + (0.5 * cos(pi * p))",
         "The coefficient is 0.5 * (1 + cos(pi * p)), running from 1 to 0; 0.5 * cos(pi * p) runs from 0.5 to -0.5: "
         "the decay starts half-way between learning_rate and min_lr and ends below min_lr.",
         "0.5 * (1 + cos(pi * progress))"),
    Part("shape", lambda p: math.cos(math.pi * p), "cosine without 0.5 * (1 + ...)", "The coefficient is 0.5 * "
         "(1 + cos(pi * p)), running from 1 to 0; cos(pi * p) alone runs from 1 to -1, so the rate ends below "
         "min_lr.", "0.5 * (1 + cos(pi * progress))"),
    Part("shape", lambda p: 0.5 * (1 + math.cos(180 * p)), "cosine of degrees (180 * p) where math.cos takes radians",
         "math.cos takes radians: half a turn is pi, not 180.", "math.cos(math.pi * progress)"),
    Part("progress", lambda i, W, D: (i - 1 - W) / (D - W), "cosine one step behind (it - 1 in the progress)",
         "Progress through the decay is (it - warmup_iters) / (lr_decay_iters - warmup_iters): 0 at the first step "
         "after warm-up; yours counts one step behind, so the decay starts above the peak's cosine.",
         "(it - warmup_iters), no - 1"),
    Part("progress", lambda i, W, D: (i - W) // (D - W), "integer division in the progress",
         "`//` rounds the progress down to 0, so the rate stays at its peak until lr_decay_iters.", "use /"),
    Part("floor", "swapped", "learning_rate and min_lr swapped in the decay: it climbs to learning_rate",
         "After warm-up the rate falls from learning_rate to min_lr and stays there; yours starts the decay at "
         "min_lr and increases to learning_rate (the two exchanged in the cosine's formula).",
         "min_lr + coeff * (learning_rate - min_lr), then min_lr"),
    Part("it", lambda it, lr, mn, W, D: (it, lr, mn, W, W + D), "lr_decay_iters taken as the decay's length: the "
         "floor reached at warmup_iters + lr_decay_iters", "lr_decay_iters is the step at which the rate reaches "
         "min_lr, counted from 0 like it, not the length of the decay after warm-up.",
         "progress = (it - warmup_iters) / (lr_decay_iters - warmup_iters)"),
] + [Part("it", lambda it, lr, mn, W, D, k=k: (it + k, lr, mn, W, D), f"the whole schedule {abs(k)} step"
          f"{'s' if abs(k) > 1 else ''} {'ahead' if k > 0 else 'behind'} (it {'+' if k > 0 else '-'} {abs(k)})",
          f"Each of your rates is the reference's for step it {'+' if k > 0 else '-'} {abs(k)}: it counts from 0, "
          "the first step is it = 0.", "use it as given") for k in (1, -1, 2, -2, 3, -3, 4, -4, 5, -5)]


def _build(it=None, warm=None, progress=None, shape=None, after=None, floor=None, warm_to_W=False, late_end=False):
    """The reference schedule with the named parts replaced (see LR_PARTS), in one of the boundary conventions."""
    def compute(i, lr, mn, W, D):
        if it is not None:
            i, lr, mn, W, D = it(i, lr, mn, W, D)
        low = 0.0 if floor == "zero" else mn
        form = shape
        if floor == "added":  # min_lr + coeff * lr, whatever shape the coefficient has
            def form(p):
                return (shape(p) if shape else 0.5 * (1 + math.cos(math.pi * p))) * lr / (lr - mn)
        if floor == "towards zero":  # coeff * lr, whatever shape the coefficient has
            def form(p):
                return ((shape(p) if shape else 0.5 * (1 + math.cos(math.pi * p))) * lr - mn) / (lr - mn)
        if isinstance(floor, float):  # the cosine heads for floor * min_lr, and min_lr after the decay
            def form(p):
                c = shape(p) if shape else 0.5 * (1 + math.cos(math.pi * p))
                return (floor * mn + c * (lr - floor * mn) - mn) / (lr - mn)
        if floor == "swapped" and not (i < W or warm_to_W and i == W):  # the warm-up as it should be, the rest
            return _schedule(i, mn, lr, W, D, None, progress, form, after, False, late_end)  # with the two exchanged
        return _schedule(i, lr, low, W, D, warm, progress, form, after, warm_to_W, late_end)
    return compute


# The parts alone and in pairs, each in the four boundary conventions (it < W or <= W; it >= D or > D)
# (each convention bound as a default argument now: part_variants calls the builder later, inside the check)
PART_VARIANTS = [v for warm_to_W in (False, True) for late_end in (False, True) for v in part_variants(
    lambda warm_to_W=warm_to_W, late_end=late_end, **kw: _build(**kw, warm_to_W=warm_to_W, late_end=late_end),
    LR_PARTS)]

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
    def describe(it, lr, mn, W, D):
        return f"your_lr(it={it}, learning_rate={lr}, min_lr={mn}, warmup_iters={W}, lr_decay_iters={D})"
    slots = Slots(fn)  # the state fn keeps, before the first call (state.py)
    for case in cases:
        value, problem = run(exercise, describe(*case), fn, *case, hint="it counts from 0; all arguments are numbers")
        if problem is not None:
            return _torch_on_a_float(exercise, problem)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or math.isnan(value):
            return fail(exercise, "the learning rate must be a number", f"{describe(*case)} returned {value!r}",
                        describe(*case), hint="return a float (a tensor's .item())")
    problem = check_cases(exercise, fn, cases, _reference_lr, [Variant(*row) for row in LR_MISTAKES] + PART_VARIANTS,
                          describe,
                          atol=1e-9, hint="warm-up, then half a cosine from learning_rate to min_lr, then flat at "
                                          "min_lr", slots=slots)
    problem = _only_at(problem, fn, cases, describe)
    if problem is not None:
        return problem
    return CheckResult(exercise, True, checked=["warm-up", "cosine decay to min_lr", "flat after lr_decay_iters",
                                                "3 settings"])


# one step of the schedule, where a slip touches only that step (an `if it == 0` branch, an off-by-one boundary)
_STEPS = [("the first step (it = 0)", lambda it, W, D: it == 0),
          ("the last warm-up step (it = warmup_iters - 1)", lambda it, W, D: it == W - 1),
          ("the first step after warm-up (it = warmup_iters)", lambda it, W, D: it == W),
          ("the last step of the decay (it = lr_decay_iters - 1)", lambda it, W, D: it == D - 1),
          ("it = lr_decay_iters", lambda it, W, D: it == D)]


def _only_at(problem, fn, cases, describe):
    """problem as it is, unless it is "not recognised" and the rates differ from the reference at one step of the
    schedule only, the same step in every setting: then where (a fact about the outputs, which are right elsewhere)."""
    if problem is None or problem.property != NOT_RECOGNISED:
        return problem
    wrong = [c for c in cases if not math.isclose(fn(*c), _reference_lr(*c), rel_tol=1e-9, abs_tol=1e-12)]
    for where, at in _STEPS:
        spots = [c for c in cases if at(c[0], c[3], c[4])]
        if wrong and sorted(wrong) == sorted(spots):
            c = wrong[0]
            return fail(problem.exercise, f"wrong only at {where}: every other step is right",
                        f"Your schedule is the reference's everywhere except at {where}, in every setting tried: "
                        "look at the branch or boundary that handles that step.",
                        f"{describe(*c)}\nyours    {fn(*c)}\nexpected {_reference_lr(*c)}", problem.hint)
    return problem


def _torch_on_a_float(exercise, problem: CheckResult) -> CheckResult:
    """The crash, named when torch itself says what happened: a torch function given a Python float (the schedule's
    arguments are numbers, so its cosine is math.cos)."""
    said = re.search(r"TypeError: (\w+)\(\): argument 'input' \(position 1\) must be Tensor, not float",
                     problem.explanation)
    if said is None:
        return problem
    return fail(exercise, f"torch.{said.group(1)} given a Python float, not a tensor",
                f"The schedule's arguments are plain numbers, and torch.{said.group(1)} takes only tensors: use "
                f"math.{said.group(1)} (and math.pi).", problem.explanation, f"math.{said.group(1)}(...)")
