"""
Checking a student's post-training pieces: the SFT loss mask, a LoRA layer and its merge, the DPO loss and GRPO's
group advantages (the references are mingpt.posttrain's own).

The one idea, as in every checker (checking.py): the checker owns the reference, so it rebuilds each *known*
mistake from a table and names the mistake only when the rebuilt one reproduces the student's output exactly. When
no row of the table explains every tested input, it says so (compare.NOT_RECOGNISED) and shows the first element
that differs, instead of guessing (compare.explain does both). The LoRA checker lives in lora.py, the DPO checker
in dpo.py, the group advantages' in advantages.py, and the SFT checker's table in sft_mistakes.py. The tables
(`SFT_MISTAKES`, `DPO_MISTAKES`, ...) are public so a teacher can read them.

    from mingpt.exercises.posttrain import check_sft_targets, check_lora_layer, check_dpo_loss, check_group_advantages
    check_sft_targets(my_targets)          # my_targets(ids (T,), is_assistant (T,) bool) -> (x, y), each (T-1,)
    check_lora_layer(MyLoRALinear)         # MyLoRALinear(base: nn.Linear, r, alpha), with lora_A, lora_B, merge()
    check_dpo_loss(my_dpo_loss)            # my_dpo_loss(policy, reference, x, y, beta) -> the mean loss
    check_group_advantages(my_advantages)  # my_advantages(rewards (P, G), normalize_std) -> (P, G)
"""

from __future__ import annotations

import torch

from mingpt.exercises.checking import CheckResult, Variant, fail, run
from mingpt.exercises.compare import NOT_RECOGNISED, explain, modified_in_place, shape_problem
from mingpt.exercises.advantages import ADVANTAGE_MISTAKES, check_group_advantages
from mingpt.exercises.dpo import DPO_MISTAKES, check_dpo_loss
from mingpt.exercises.lora import (
    LORA_FORWARD_MISTAKES,
    LORA_INIT_MISTAKES,
    LORA_MERGE_MISTAKES,
    check_lora_layer,
)
from mingpt.model import IGNORE_INDEX
from mingpt.exercises.sft_mistakes import (
    ASSISTANT,
    CONVERSATION,
    END,
    IS_ASSISTANT,
    SFT_CASES,
    SFT_MISTAKES,
    SFT_PAIRS,
    TIE_BREAK,
    USER,
    masked,
)

__all__ = [
    "ADVANTAGE_MISTAKES",
    "DPO_MISTAKES",
    "LORA_FORWARD_MISTAKES",
    "LORA_INIT_MISTAKES",
    "LORA_MERGE_MISTAKES",
    "SFT_MISTAKES",
    "check_dpo_loss",
    "check_group_advantages",
    "check_lora_layer",
    "check_sft_targets",
]


HINT = "compare your code with the definition above the exercise, one step at a time"


# ------------------------------------------------------------------------------------------ 1. the SFT mask
# The conversations tested and the table of named mistakes are in sft_mistakes.py.


def check_sft_targets(fn) -> CheckResult:
    """Check fn(ids (T,), is_assistant (T,) bool) -> (x, y): x = ids[:-1], y = ids[1:] with -1 wherever the
    predicted token is not the assistant's."""
    exercise = "SFT targets and loss mask"
    ids, is_assistant = torch.tensor(CONVERSATION), torch.tensor(IS_ASSISTANT)
    problem = modified_in_place(exercise, fn, (ids, is_assistant), "your function(ids, is_assistant)",
                                "y = ids[1:] is a view of ids: writing -1 into it writes into ids; ids[1:].clone() "
                                "or torch.where(...) make a new tensor")
    if problem is not None:
        return _and_targets(problem, fn, ids, is_assistant)
    outs = []
    for n, (ids, is_assistant) in enumerate(SFT_CASES):
        out, problem = run(exercise, "your function(ids, is_assistant)", fn, ids.clone(), is_assistant.clone(),
                           hint="ids and is_assistant are 1-D tensors of length T; x and y have length T - 1")
        if problem is not None:
            return _uncut_mask(exercise, problem, ids, is_assistant) if n == 0 else problem
        if not (isinstance(out, (tuple, list)) and len(out) == 2 and all(isinstance(t, torch.Tensor) for t in out)):
            got = type(out).__name__ + (" of " + ", ".join(type(t).__name__ for t in out) if isinstance(
                out, (tuple, list)) else "")
            return fail(exercise, "must return (x, y), two tensors", f"yours returned {got}",
                        f"your function(ids={ids.tolist()}, is_assistant=...)", "return x, y (torch.tensor(...) around "
                        "a list)")
        x, y = out
        # an empty tensor built from an empty list is float whatever the code: its length is the mistake to name
        wrong_type = [f"{name} has dtype {t.dtype}" for name, t in (("x", x), ("y", y))
                      if t.dtype != torch.long and t.numel() > 0]
        if wrong_type:  # a float y would be read by cross_entropy as class probabilities, not as ids
            return fail(exercise, "wrong dtype: token ids must be integers (torch.long)", "; ".join(wrong_type) + ": "
                        "x indexes the embedding and y names the target class, both as int64 ids.",
                        f"your y {y.tolist()}", "keep the ids' own dtype (torch.where with an int fill, or .long())")
        outs.append((x, y))
    tie_out, _ = run(exercise, "your function(ids, is_assistant)", fn, *(t.clone() for t in TIE_BREAK))
    pair = isinstance(tie_out, (tuple, list)) and len(tie_out) == 2 and all(isinstance(t, torch.Tensor)
                                                                             for t in tie_out)
    tie = tie_out[1] if pair else None
    found = _judge(exercise, SFT_CASES, outs, tie)
    if found is None and pair:  # right on every case above, which all end in a reply: and on a window that does not?
        found = _judge(exercise, SFT_CASES + [TIE_BREAK], outs + [tuple(tie_out)])  # a row must explain them all
    if found is not None:
        return found
    return CheckResult(exercise, True, checked=["targets shifted by one", "loss on the assistant's tokens and "
                                                "their end of turn only", "-1 elsewhere", "ids above 255", "T = 2",
                                                "y follows each call's mask", "token 0 in a reply"])


def _explains_tie(variant: Variant, tie: torch.Tensor) -> bool:
    try:
        return torch.equal(variant.compute(*TIE_BREAK), tie)
    except Exception:  # a row that cannot run on it (or a y of another shape) does not explain it
        return False


def _targets(exercise: str, cases, ys, shifted: bool = False, tie: torch.Tensor | None = None) -> CheckResult | None:
    """The targets judged with the table. shifted: y was built from ids[:-1] (x and y swapped), so the reference and
    every variant read their targets from ids moved one place right (ids' [1:] == ids[:-1]). tie: the student's y on
    TIE_BREAK; the rows that reproduce it are tried first."""
    cases = [(torch.cat([i[:1], i[:-1]]), a) if shifted else (i, a) for i, a in cases]
    y_of = {id(i): y for (i, _), y in zip(cases, ys)}  # the student's y for the case shown
    variants = SFT_MISTAKES + SFT_PAIRS
    if tie is not None and not shifted:
        variants = sorted(variants, key=lambda v: not _explains_tie(v, tie))  # stable: the table's order otherwise
    return explain(exercise, cases, ys, lambda i, a: masked(i, a[1:]), variants,
                   lambda i, a: f"ids          {i.tolist()}   (user {USER}, assistant {ASSISTANT}, end {END})\n"
                   f"is_assistant {a.int().tolist()}\nyour y       {y_of[id(i)].tolist()}"
                   f"\nexpected y   {masked(i, a[1:]).tolist()}", atol=1e-6, hint=HINT)


def _with(first: CheckResult, second: CheckResult | None) -> CheckResult:
    """first, or both mistakes when second (the rest of the output, judged on its own) names another one."""
    if second is None or second.property == NOT_RECOGNISED:
        return first
    return fail(first.exercise, f"two mistakes: {first.property}; and {second.property}", f"{first.explanation} "
                f"And: {second.explanation}", first.counterexample, f"{first.hint}; and {second.hint}")


def _judge(exercise: str, cases, outs, tie: torch.Tensor | None = None) -> CheckResult | None:
    """None when every (x, y) is right; else x's mistake (with y's, when y has a named one too) or y's."""
    xs, ys = [x for x, _ in outs], [y for _, y in outs]
    if all(torch.equal(x, i[:-1]) for x, (i, _) in zip(xs, cases)):
        short = _one_short(exercise, cases, ys)
        return short if short is not None else _mask_ignored(exercise, cases, ys, _targets(exercise, cases, ys,
                                                                                         tie=tie))
    ids = cases[0][0]
    if all(torch.equal(y, i[:-1]) for y, (i, _) in zip(ys, cases)):  # (y, x): the order of the pair
        order = fail(exercise, "x and y returned in the wrong order: (y, x)", "The function returns the "
                     "inputs first, then the targets, as a Dataset item (x, y) is unpacked by the Trainer.",
                     f"ids {ids.tolist()}\nyour first  {xs[0].tolist()}\nyour second {ys[0].tolist()}", "return x, y")
        return _with(order, _targets(exercise, cases, xs))
    if all(torch.equal(x, i[1:]) for x, (i, _) in zip(xs, cases)):  # x = ids[1:], y from ids[:-1]
        swapped = fail(exercise, "x and y swapped: x = ids[1:], and y built from ids[:-1]", "The inputs are every "
                       "token but the last, ids[:-1], and the targets the tokens one step later, ids[1:]; yours "
                       "feed the model the targets and ask it to predict the previous token.",
                       f"ids {ids.tolist()}\nyour x {xs[0].tolist()}\nyour y {ys[0].tolist()}",
                       "x = ids[:-1], y = ids[1:] (masked)")
        rest = _targets(exercise, cases, ys, shifted=True)
        if rest is None or rest.property != NOT_RECOGNISED:
            return _with(swapped, rest)
    if all(torch.equal(x, i) and torch.equal(y, masked(i, a, i)) for x, y, (i, a) in zip(xs, ys, cases)):
        return fail(exercise, "x = ids and y = ids masked, both unshifted (Hugging Face's labels = input_ids)",
                    "A Hugging Face model takes labels equal to input_ids and shifts them inside its forward; "
                    "mingpt's GPT compares the logits at t with y[t] as given, so the shift is yours to do: the "
                    "inputs lose the last token and the targets (and their mask) the first.",
                    f"ids {ids.tolist()}\nyour x {xs[0].tolist()}\nyour y {ys[0].tolist()}",
                    "x = ids[:-1], y = ids[1:] masked with is_assistant[1:]")
    full = _full_length(exercise, cases, xs, ys)
    if full is not None:
        return full
    if all(any(torch.equal(x, k) for k in (i[a][:-1], i[a])) for x, (i, a) in zip(xs, cases)):
        return fail(exercise, "only the assistant's tokens kept: the user's turns (the context) dropped from x",
                    "The model reads the whole conversation, questions included, and the mask only decides which "
                    "*targets* count; ids[is_assistant] throws the questions away, so every answer is learnt without "
                    "the question it answers.", f"ids {ids.tolist()}\nyour x {xs[0].tolist()}",
                    "x = ids[:-1] (every token), y = ids[1:] with -1 where is_assistant[1:] is False")
    inputs_masked = _inputs_masked(exercise, cases, xs)
    if inputs_masked is not None:
        return inputs_masked
    if all(torch.equal(x, i[:-2]) and torch.equal(y, masked(i, a[1:])[:-1]) for x, y, (i, a) in zip(xs, ys, cases)):
        return fail(exercise, "x and y one position short: the last input and its target left out (a loop over "
                    "range(T - 2), or [:-2])", "There are T - 1 (input, target) pairs: position t = 0 ... T - 2 "
                    "reads ids[t] and predicts ids[t + 1]; yours stop one early, so the last token (often the "
                    "<end> that teaches the model to stop) is never a target.",
                    f"ids {cases[0][0].tolist()}\nyour x {xs[0].tolist()}\nyour y {ys[0].tolist()}",
                    "loop over range(T - 1), or no loop: ids[:-1] and ids[1:]")
    if all(torch.equal(x, i[:-2]) and torch.equal(y, masked(i, a[2:], i[2:])) for x, y, (i, a) in zip(xs, ys, cases)):
        return fail(exercise, "x and y two apart: x = ids[:-2], y = ids[2:] (each target the token after next)",
                    "Position t predicts the *next* token: x = ids[:-1] and y = ids[1:], one apart; yours slice off "
                    "two, so every target is the token after the next one (and its mask is moved the same way).",
                    f"ids {cases[0][0].tolist()}\nyour x {xs[0].tolist()}\nyour y {ys[0].tolist()}",
                    "x = ids[:-1], y = ids[1:], and the mask is_assistant[1:]")
    n = next(n for n, (x, (i, _)) in enumerate(zip(xs, cases)) if not torch.equal(x, i[:-1]))
    x, ids = xs[n], cases[n][0]  # the first case whose x is wrong
    expected = ids[:-1]
    if x.shape != expected.shape and x.numel() == expected.numel() and torch.equal(x.flatten(), expected):
        problem = shape_problem(x, expected)
        return fail(exercise, problem[0], f"x: {problem[1]}.", f"ids {ids.tolist()}\nyour x {x.tolist()}",
                    "x = ids[:-1], y = ids[1:] (masked): one dimension each, (T - 1,)")
    return fail(exercise, "x is not ids[:-1]", "The inputs are every token but the last (the last has nothing "
                "after it to predict).", f"ids {ids.tolist()}\nyour x {x.tolist()}", "x = ids[:-1]")


def _full_length(exercise: str, cases, xs, ys) -> CheckResult | None:
    """None, or, when every x is the whole of ids and every y has T entries ending in -1: a pretraining block's
    habit, x and y both kept at length T (the last token fed in, a -1 target appended for it). y's first T - 1
    entries are then judged on their own, so a slip in the mask is named beside it."""
    if not all(torch.equal(x, i) and y.shape == i.shape and y[-1] == IGNORE_INDEX for x, y, (i, _) in
               zip(xs, ys, cases)):
        return None
    ids = cases[0][0]
    first = fail(exercise, "x and y kept at length T: x = ids (the last token included), y padded with a -1",
                 "The last token has nothing after it to predict: the inputs are ids[:-1] and the targets ids[1:], "
                 "T - 1 of each. Feeding it anyway (with a -1 target so that it costs nothing) makes every example "
                 "one longer than the model's block, and x no longer the tokens the targets follow.",
                 f"ids {ids.tolist()}\nyour x {xs[0].tolist()}\nyour y {ys[0].tolist()}",
                 "x = ids[:-1], y = ids[1:] masked: both of length T - 1")
    rest = _targets(exercise, cases, [y[:-1] for y in ys])
    if rest is not None and rest.property == NOT_RECOGNISED:
        return None  # y's targets wrong in a way the table does not know: shown where x differs, as before
    return _with(first, rest)


def _one_short(exercise: str, cases, ys) -> CheckResult | None:
    """None, or, when every y is the right targets without their last (or first) one: a slice that stops one early
    (ids[1:T] with T = len(ids) - 1) or starts one late."""
    for end, which, cut in (("last", "ids[-1], the final reply's END", slice(None, -1)),
                            ("first", "ids[1]", slice(1, None))):
        if all(torch.equal(y, masked(i, a[1:])[cut]) for y, (i, a) in zip(ys, cases)):
            ids, a = cases[0]
            return fail(exercise, f"y is one short: the {end} target is missing (a slice one off)", "x and y "
                        f"both have T - 1 entries, y[t] the token after x[t]; yours drops the target of {which} "
                        "(ids[1:T] with T = len(ids) - 1 stops one early, or a slice starts one late).",
                        f"ids {ids.tolist()}\nyour y     {ys[0].tolist()}\nexpected y {masked(ids, a[1:]).tolist()}",
                        "y = ids[1:] (then masked): everything after the first token")
    return None


def _inputs_masked(exercise: str, cases, xs) -> CheckResult | None:
    """None, or, when every x is ids[:-1] with one constant written wherever its token (or the token it predicts) is
    not the assistant's: the inputs masked like the targets."""
    for flags, which in ((lambda a: a[:-1], "x[t] is not the assistant's"), (lambda a: a[1:], "y[t] is masked")):
        fills = {int(x[~flags(a)][0]) for x, (i, a) in zip(xs, cases) if x.shape == i[:-1].shape and (~flags(a)).any()}
        if len(fills) == 1 and all(x.shape == i[:-1].shape and torch.equal(x, torch.where(
                flags(a), i[:-1], torch.full_like(i[:-1], next(iter(fills))))) for x, (i, a) in zip(xs, cases)):
            ids = cases[0][0]
            return fail(exercise, f"the inputs masked too: x set to {next(iter(fills))} where {which}", "Only the "
                        "targets are masked: the model still reads the whole conversation, the user's questions "
                        "included, or it answers without knowing the question. x = ids[:-1], untouched.",
                        f"ids {ids.tolist()}\nyour x {xs[0].tolist()}", "x = ids[:-1]; mask only y")
    return None


def _mask_ignored(exercise: str, cases, ys, found: CheckResult | None) -> CheckResult | None:
    """found, or, when no mistake explains the targets and two cases with the same ids but different masks got the
    same y although their expected targets differ: y does not follow the is_assistant passed (a mask computed once
    and kept, or one written for a single conversation)."""
    if found is None or found.property != NOT_RECOGNISED:
        return found
    for n, (i, a) in enumerate(cases):
        for m in range(n):
            j, b = cases[m]
            if torch.equal(i, j) and not torch.equal(masked(i, a[1:]), masked(j, b[1:])) \
                    and ys[n].shape == ys[m].shape and torch.equal(ys[n], ys[m]):
                return fail(exercise, "y ignores the is_assistant passed: another mask, the same targets (a mask "
                            "kept from a previous call?)",
                            "The same ids with two different masks must give two different y: the mask of each call "
                            "decides which targets count. Yours returned the same y for both (a mask computed on "
                            "an earlier call and kept, or one written for a single conversation?).",
                            f"ids {i.tolist()}\nis_assistant {b.int().tolist()} and {a.int().tolist()}\nyour y, "
                            f"both times {ys[n].tolist()}", "compute the mask from this call's is_assistant[1:], "
                            "every call")
    return found


def _and_targets(problem: CheckResult, fn, ids, is_assistant) -> CheckResult:
    """problem (ids changed in place), or both mistakes when the y returned is also a named mistake (e.g. -100 written
    through a view of ids): the targets are judged on their own, since x, a view of ids, changed with them."""
    try:
        y = fn(ids.clone(), is_assistant.clone())[1]
    except Exception:
        return problem
    found = explain(problem.exercise, [(ids, is_assistant)], [y], lambda i, a: masked(i, a[1:]),
                    SFT_MISTAKES + SFT_PAIRS, lambda *_: "", atol=1e-6)
    if found is None or found.property == NOT_RECOGNISED:
        return problem
    return fail(problem.exercise, f"two mistakes: {problem.property}; and {found.property}",
                f"{problem.explanation} And: {found.explanation}", problem.counterexample,
                f"{problem.hint}; and {found.hint}")


def _uncut_mask(exercise, problem: CheckResult, ids, is_assistant) -> CheckResult:
    """The crash, named when it is exactly the error of indexing a (T - 1) tensor with the whole mask (T), as in
    y = ids[1:]; y[~is_assistant] = -1 (the observable fact, whichever tensor of length T - 1 it was)."""
    y = ids[1:].clone()
    try:
        y[~is_assistant] = IGNORE_INDEX
    except IndexError as e:
        if f"IndexError: {e}" in problem.explanation:
            return fail(exercise, "the whole mask (length T) indexes a tensor of length T - 1: is_assistant not cut",
                        "y = ids[1:] has T - 1 entries, and the mask for y[t] is is_assistant[t + 1]: the mask must "
                        "be shifted and cut the same way, is_assistant[1:].", problem.explanation,
                        "y[~is_assistant[1:]] = -1")
    return problem
