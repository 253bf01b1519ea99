"""
Checking a student's post-training pieces: the SFT loss mask, a LoRA layer and its merge, the DPO loss and GRPO's
group advantages (the references are mingpt.posttrain's own).

The one idea, as in every checker (checking.py): the checker owns the reference, so it rebuilds each *known*
mistake from a table and names the mistake only when the rebuilt one reproduces the student's output exactly. When
no row of the table explains every tested input, it says so (compare.NOT_RECOGNISED) and shows the first element
that differs, instead of guessing (compare.explain does both). The LoRA checker lives in lora.py, the DPO checker
in dpo.py, the group advantages' in advantages.py. The tables
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
from mingpt.exercises.compare import NOT_RECOGNISED, explain, modified_in_place, shape_problem, two_mistakes
from mingpt.exercises.advantages import ADVANTAGE_MISTAKES, check_group_advantages
from mingpt.exercises.dpo import DPO_MISTAKES, check_dpo_loss
from mingpt.exercises.lora import (
    LORA_FORWARD_MISTAKES,
    LORA_INIT_MISTAKES,
    LORA_MERGE_MISTAKES,
    check_lora_layer,
)
from mingpt.model import IGNORE_INDEX

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
USER, ASSISTANT, END = 20, 21, 22  # the special ids of the checker's conversation
CONVERSATION = [USER, 3, 9, 4, END, ASSISTANT, 7, 11, END, USER, 5, END, ASSISTANT, 12, 2, 8, END]
IS_ASSISTANT = [False] * 6 + [True] * 3 + [False] * 4 + [True] * 4  # the replies and the END after each
# ids past a byte, a signed byte and int16 (GPT-2's vocabulary has 50257), a user token (END) also in a reply
BIG = [USER, 300, 1000, 7, END, ASSISTANT, 50000, 257, 200, END, USER, 33000, END, ASSISTANT, 256, END]
BIG_IS_ASSISTANT = [False] * 6 + [True] * 4 + [False] * 4 + [True] * 2
# T = 2, an empty reply (its END) at ids[1] (a squeeze() to 0-dim, a loop that starts at 1 show here), and the
# first conversation again with another mask (y must follow is_assistant, not a mask kept from an earlier call)
SHORT, SHORT_IS_ASSISTANT = [ASSISTANT, END], [False, True]
OTHER_IS_ASSISTANT = [False] * 2 + [True] * 3 + [False] * 6 + [True] * 6
# Token 0 in a reply (and in a question): a real id, which a mask built by value (y * mask, then y == 0) loses.
ZERO, ZERO_IS_ASSISTANT = [USER, 0, 4, END, ASSISTANT, 0, 6, 0, END], [False] * 5 + [True] * 4
SFT_CASES = [(torch.tensor(CONVERSATION), torch.tensor(IS_ASSISTANT)),
             (torch.tensor(BIG), torch.tensor(BIG_IS_ASSISTANT)),
             (torch.tensor(SHORT), torch.tensor(SHORT_IS_ASSISTANT)),
             (torch.tensor(CONVERSATION), torch.tensor(OTHER_IS_ASSISTANT)),
             (torch.tensor(ZERO), torch.tensor(ZERO_IS_ASSISTANT))]
# A tie-break: a window cut off in a user turn (after the last reply the user speaks again). Every case above ends
# with a reply, where some rows give the same targets (a running flag, one span from the first reply to the last);
# among the rows that explain every case above, one that also explains this one is named first.
TIE_BREAK = (torch.tensor([USER, 3, END, ASSISTANT, 7, 11, END, USER, 5, 9]),
             torch.tensor([False] * 4 + [True] * 3 + [False] * 3))


def _sft(ids: torch.Tensor, keep: torch.Tensor, targets: torch.Tensor | None = None, fill: int = IGNORE_INDEX):
    targets = ids[1:] if targets is None else targets
    return torch.where(keep, targets, torch.full_like(targets, fill))


def _replies(a: torch.Tensor) -> torch.Tensor:
    """The index in ids of each reply's first token (where is_assistant turns on)."""
    return (a[1:] & ~a[:-1]).nonzero().flatten() + 1


# The mask of y[t] can only be made of two flags: is the input ids[t] the assistant's (a[:-1]) and is the predicted
# ids[t+1] (a[1:]). Beside the slips named in words below, every other plausible combination of the two is named by
# its formula (the conversation has all four pairs of flags, so no two formulas give the same targets).
SFT_MISTAKES = [
    Variant("the mask is not shifted with the targets (off by one)", lambda ids, a: _sft(ids, a[:-1]),
            "y[t] is the token at t+1, so whether it counts depends on is_assistant[t+1]; yours used "
            "is_assistant[t]: it skips the assistant's first token and trains on the token after each end of "
            "turn (the next speaker's marker).", "shift the mask exactly as the targets: [1:]"),
    Variant("the targets are not shifted (predicting the current token)", lambda ids, a: _sft(ids, a[1:], ids[:-1]),
            "Position t must predict the *next* token ids[t+1]; yours asks it to copy ids[t].", "y comes from ids[1:]"),
    Variant("nothing is masked (loss on the user's tokens too)", lambda ids, a: ids[1:].clone(),
            "SFT trains only on the assistant's tokens: the model should answer questions, not learn to write them.",
            "set the targets of non-assistant tokens to -1"),
    Variant("the mask is inverted (loss on everything but the assistant)", lambda ids, a: _sft(ids, ~a[1:]),
            "The loss must be on the assistant's tokens, and on nothing else.", "keep where is_assistant is True"),
    Variant("the end-of-turn token is masked out", lambda ids, a: _sft(ids, a[1:] & (ids[1:] != END)),
            "The END after each reply is in the loss on purpose: it is how the model learns to stop talking.",
            "is_assistant already marks that END: use it as it is"),
    Variant("the assistant's role marker is trained on", lambda ids, a: _sft(ids, a[1:] | (ids[1:] == ASSISTANT)),
            "The program writes the assistant marker itself to say 'your turn'; the model never has to predict it.",
            "use is_assistant as it is, without adding the role markers"),
    Variant("loss on everything after the assistant's first token", lambda ids, a: _sft(ids, a.cumsum(0)[1:] > 0),
            "Every later user turn is masked too: only the assistant's own tokens (and each reply's END) count.",
            "use is_assistant[1:] itself, not a running flag"),
    Variant("one span from the assistant's first token to its last (the user turns between replies trained too)",
            lambda ids, a: _sft(ids, (a.cumsum(0) > 0)[1:] & (a.flip(0).cumsum(0).flip(0) > 0)[1:]),
            "Each reply is its own span: the user's turns between two replies are not the assistant's and must "
            "stay masked; one span from the first reply to the last trains on them.",
            "use is_assistant[1:] position by position, not the span between its first and last True"),
    Variant("the labels are not shifted (Hugging Face's models shift inside; mingpt's GPT does not)",
            lambda ids, a: _sft(ids, a[:-1], ids[:-1]),
            "Yours masks ids with is_assistant and returns it unshifted, as for a Hugging Face model, which shifts "
            "the labels inside its forward; mingpt's GPT compares the logits at t with y[t] as given.",
            "shift the masked labels: y = labels[1:] (x = ids[:-1])"),
    Variant("only the last reply is trained (the earlier assistant turns are masked)",
            lambda ids, a: _sft(ids, a[1:] & (torch.arange(len(a) - 1) >= _replies(a)[-1] - 1)),
            "Every reply of the conversation is the assistant's and is trained on, not just the final one.",
            "keep = is_assistant[1:], for every turn"),
    Variant("only the first reply is trained (the later assistant turns are masked)",
            lambda ids, a: _sft(ids, a[1:] & (torch.arange(len(a) - 1) < (list(_replies(a)) + [len(a)])[1] - 1)),
            "Every reply of the conversation is the assistant's and is trained on, not just the first one.",
            "keep = is_assistant[1:], for every turn"),
    *[Variant(f"the mask is {formula}, not is_assistant[1:]", lambda ids, a, keep=keep: _sft(ids, keep(a[:-1], a[1:])),
              "y[t] counts exactly when the token it asks for, ids[t+1], is the assistant's: is_assistant[1:], "
              "whatever the input token ids[t] is.", "keep = is_assistant[1:]") for formula, keep in (
        ("is_assistant[:-1] & is_assistant[1:] (each reply's first token is not trained)", lambda i, o: i & o),
        ("is_assistant[:-1] | is_assistant[1:] (the token after each reply's END is trained too)", lambda i, o: i | o),
        ("empty (every target is -1)", lambda i, o: torch.zeros_like(o)),
        ("~is_assistant[:-1] (the unshifted mask, inverted)", lambda i, o: ~i),
        ("is_assistant[:-1] ^ is_assistant[1:] (only where the speaker changes)", lambda i, o: i ^ o),
        ("is_assistant[1:] & ~is_assistant[:-1] (only each reply's first token)", lambda i, o: o & ~i),
        ("is_assistant[:-1] & ~is_assistant[1:] (only the token after each reply)", lambda i, o: i & ~o))],
    *[Variant(f"the mask is shifted twice (is_assistant[2:], {how}), not once", lambda ids, a, pad=pad: _sft(
        ids, torch.cat([a[2:], a[-1:] if pad is None else torch.tensor([pad])])),
        "y[t] counts when ids[t+1] is the assistant's: is_assistant[1:], the same one-place shift as the targets; "
        "yours shifts the mask one place further and asks about ids[t+2].", "keep = is_assistant[1:]")
      for pad, how in ((None, "its last flag repeated"), (False, "padded with False"))],
    Variant("the first target is always masked (y[0]: a loop that starts at 1?)",
            lambda ids, a: _sft(ids, a[1:] & (torch.arange(len(a) - 1) > 0)),
            "y[0] is the token ids[1]: when the assistant speaks first, it is trained on like any other of its "
            "tokens (a loop over range(1, ...) never fills it).", "keep = is_assistant[1:] for every position, the "
            "first one included"),
    Variant("the last target is masked (the final end of turn is not trained)",
            lambda ids, a: _sft(ids, a[1:] & (torch.arange(len(a) - 1) < len(a) - 2)),
            "The last target, ids[-1], is the END of the final reply: it is the assistant's and is trained on like "
            "every other reply's END (a loop over range(len(y) - 1), or a y[-1] = -1, drops it).",
            "keep = is_assistant[1:] for every position, the last one included"),
    Variant("the assistant's tokens of id 0 masked too (y * mask, then 0 read as 'masked')",
            lambda ids, a: _sft(ids, a[1:] & (ids[1:] != 0)),
            "0 is a real token id: after multiplying the targets by the mask, a 0 can be a masked position or an "
            "answer token 0, and testing y == 0 masks both.", "torch.where(is_assistant[1:], ids[1:], -1): the "
            "mask decides, not the value"),
    Variant("masked by token value (ids that also occur in a reply), not by position",
            lambda ids, a: _sft(ids, torch.isin(ids[1:], ids[a])),
            "Whether a target counts depends on *who wrote that position*, not on which token it is: a token of the "
            "user's (an END, a number) that also occurs in a reply is not the assistant's there.",
            "keep = is_assistant[1:], position by position"),
    *[Variant(f"the ids pass through {dtype} (ids above {top} wrap around)",
              lambda ids, a, dtype=dtype: _sft(ids, a[1:], ids[1:].to(dtype).long()),
              f"{dtype} holds integers up to {top} only; a vocabulary has more ids (GPT-2's 50257), and larger ids "
              "wrap around to other tokens.", "keep the ids' own dtype, torch.long")
      for dtype, top in ((torch.uint8, 255), (torch.int8, 127), (torch.int16, 32767))],
    *[Variant(f"the mask broadcast against the targets: y is (T-1, T-1), not (T-1,) ({how})", compute,
              "torch.where (or a product) of a (T-1, 1) tensor and a (T-1,) one broadcasts to a (T-1, T-1) square: "
              "row t is the whole target sequence masked by one flag (or the other way round). Both must be 1-D.",
              "keep both 1-D: torch.where(is_assistant[1:], ids[1:], -1)") for how, compute in (
        ("the mask of shape (T-1, 1)", lambda ids, a: torch.where(a[1:, None], ids[1:], IGNORE_INDEX)),
        ("the targets of shape (T-1, 1)", lambda ids, a: torch.where(a[1:], ids[1:, None], IGNORE_INDEX)))],
    Variant("masked with 0 instead of -1", lambda ids, a: _sft(ids, a[1:], fill=0),
            "0 is a real token id: the model would be trained to predict token 0 everywhere you meant to mask.",
            "mingpt's ignored target is -1 (mingpt.model.IGNORE_INDEX)"),
    Variant("masked with -100 (PyTorch's default) instead of mingpt's -1", lambda ids, a: _sft(ids, a[1:], fill=-100),
            "mingpt's loss ignores -1 (IGNORE_INDEX), as the original minGPT did; -100 would crash its cross-entropy.",
            "use mingpt.model.IGNORE_INDEX"),
]

# A wrong fill value (0, -100) composes exactly with every other slip: it only relabels that slip's -1s.
SFT_PAIRS = [two_mistakes(v, f, (lambda v, fill: lambda ids, a: (lambda y: torch.where(y == IGNORE_INDEX, fill, y))(
    v.compute(ids, a)))(v, fill)) for f, fill in ((SFT_MISTAKES[-2], 0), (SFT_MISTAKES[-1], -100))
    for v in SFT_MISTAKES[:-2]]


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
        wrong_type = [f"{name} has dtype {t.dtype}" for name, t in (("x", x), ("y", y)) if t.dtype != torch.long]
        if wrong_type:  # a float y would be read by cross_entropy as class probabilities, not as ids
            return fail(exercise, "wrong dtype: token ids must be integers (torch.long)", "; ".join(wrong_type) + ": "
                        "x indexes the embedding and y names the target class, both as int64 ids.",
                        f"your y {y.tolist()}", "keep the ids' own dtype (torch.where with an int fill, or .long())")
        outs.append((x, y))
    tie, _ = run(exercise, "your function(ids, is_assistant)", fn, *(t.clone() for t in TIE_BREAK))
    tie = tie[1] if isinstance(tie, (tuple, list)) and len(tie) == 2 and isinstance(tie[1], torch.Tensor) else None
    found = _judge(exercise, SFT_CASES, outs, tie)
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
    return explain(exercise, cases, ys, lambda i, a: _sft(i, a[1:]), variants,
                   lambda i, a: f"ids          {i.tolist()}   (user {USER}, assistant {ASSISTANT}, end {END})\n"
                   f"is_assistant {a.int().tolist()}\nyour y       {y_of[id(i)].tolist()}"
                   f"\nexpected y   {_sft(i, a[1:]).tolist()}", atol=1e-6, hint=HINT)


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
    if all(torch.equal(x, i) and torch.equal(y, _sft(i, a, i)) for x, y, (i, a) in zip(xs, ys, cases)):
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
    masked = _inputs_masked(exercise, cases, xs)
    if masked is not None:
        return masked
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
        if all(torch.equal(y, _sft(i, a[1:])[cut]) for y, (i, a) in zip(ys, cases)):
            ids, a = cases[0]
            return fail(exercise, f"y is one short: the {end} target is missing (a slice one off)", "x and y "
                        f"both have T - 1 entries, y[t] the token after x[t]; yours drops the target of {which} "
                        "(ids[1:T] with T = len(ids) - 1 stops one early, or a slice starts one late).",
                        f"ids {ids.tolist()}\nyour y     {ys[0].tolist()}\nexpected y {_sft(ids, a[1:]).tolist()}",
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
            if torch.equal(i, j) and not torch.equal(_sft(i, a[1:]), _sft(j, b[1:])) and ys[n].shape == ys[m].shape \
                    and torch.equal(ys[n], ys[m]):
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
    found = explain(problem.exercise, [(ids, is_assistant)], [y], lambda i, a: _sft(i, a[1:]),
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
