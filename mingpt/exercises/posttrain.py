"""
Checking a student's post-training pieces: the SFT loss mask, a LoRA layer and its merge, the DPO loss and GRPO's
group advantages (the references are mingpt.posttrain's own).

The one idea, as in every checker (checking.py): the checker owns the reference, so it rebuilds each *known*
mistake from a table and names the mistake only when the rebuilt one reproduces the student's output exactly. When
no row of the table explains every tested input, it says so (compare.NOT_RECOGNISED) and shows the first element
that differs, instead of guessing (compare.explain does both). The LoRA checker lives in lora.py, the DPO checker
in dpo.py. The tables
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
from mingpt.exercises.compare import NOT_RECOGNISED, explain, modified_in_place, two_mistakes
from mingpt.exercises.dpo import DPO_MISTAKES, check_dpo_loss
from mingpt.exercises.lora import (
    LORA_FORWARD_MISTAKES,
    LORA_INIT_MISTAKES,
    LORA_MERGE_MISTAKES,
    check_lora_layer,
)
from mingpt.model import IGNORE_INDEX
from mingpt.posttrain.rl import group_advantages

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
    out, problem = run(exercise, "your function(ids, is_assistant)", fn, ids.clone(), is_assistant.clone(),
                       hint="ids and is_assistant are 1-D tensors of length T; x and y have length T - 1")
    if problem is not None:
        return _uncut_mask(exercise, problem, ids, is_assistant)
    if not (isinstance(out, (tuple, list)) and len(out) == 2 and all(isinstance(t, torch.Tensor) for t in out)):
        got = type(out).__name__ + (" of " + ", ".join(type(t).__name__ for t in out) if isinstance(
            out, (tuple, list)) else "")
        return fail(exercise, "must return (x, y), two tensors", f"yours returned {got}",
                    f"your function(ids={ids.tolist()}, is_assistant=...)", "return x, y (torch.tensor(...) around a "
                    "list)")
    x, y = out
    wrong_type = [f"{name} has dtype {t.dtype}" for name, t in (("x", x), ("y", y)) if t.dtype != torch.long]
    if wrong_type:  # a float y would be read by cross_entropy as class probabilities, not as ids
        return fail(exercise, "wrong dtype: token ids must be integers (torch.long)", "; ".join(wrong_type) + ": "
                    "x indexes the embedding and y names the target class, both as int64 ids.",
                    f"your y {y.tolist()}", "keep the ids' own dtype (torch.where with an int fill, or .long())")
    if not torch.equal(x, ids[:-1]):
        return fail(exercise, "x is not ids[:-1]", "The inputs are every token but the last (the last has nothing "
                    "after it to predict).", f"ids {ids.tolist()}\nyour x {x.tolist()}", "x = ids[:-1]")
    found = explain(exercise, [(ids, is_assistant)], [y], lambda i, a: _sft(i, a[1:]), SFT_MISTAKES + SFT_PAIRS,
                    lambda i, a: f"ids          {i.tolist()}   (user {USER}, assistant {ASSISTANT}, end {END})\n"
                    f"is_assistant {a.int().tolist()}\nyour y       {y.tolist() if isinstance(y, torch.Tensor) else y}"
                    f"\nexpected y   {_sft(i, a[1:]).tolist()}", atol=1e-6, hint=HINT)
    if found is not None:
        return found
    return CheckResult(exercise, True, checked=["targets shifted by one", "loss on the assistant's tokens and "
                                                "their end of turn only", "-1 elsewhere"])


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


# ------------------------------------------------------------------------------------------ 4. GRPO advantages
REWARDS = torch.tensor([[1.0, 0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0, 0.0],
                        [3.0, 1.0, 2.0, 2.0, 0.5], [1.0, 1.0, 1.0, 1.0, 1.0]])  # (P=4, G=5): two uniform groups
REWARDS_CASES = [REWARDS, torch.tensor([[2.0, -1.0, 0.5, 4.0], [0.0, 1.0, 3.0, 1.5], [5.0, 5.5, 4.0, 6.0]]),  # P != G
                 torch.full((2, 3), 0.5)]  # a batch where every answer scored the same: a missing eps shows here too
EPS = 1e-4
TOL = 1e-3  # any small eps (1e-8 ... 1e-4) or a clamp of the std is a valid choice
EPS_TRIED = (EPS, 1e-5, 1e-6, 1e-8)  # a mistake that divides a uniform group by eps shows the student's own eps


def _adv(r, s=True, centre=lambda r: r.mean(1, keepdim=True), scale=None, eps=EPS):
    """The reference with one part swapped: `centre` and `scale` (applied only if s, normalize_std)."""
    return (r - centre(r)) / ((r.std(1, keepdim=True) + eps if scale is None else scale(r)) if s else 1.0)


def _repeated(stat: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """A (P,) statistic laid out as .repeat(G) lays it over the flat P * G answers, seen as (P, G)."""
    return stat.repeat(r.size(1)).view(r.shape)


def _advantage_mistakes(EPS: float) -> list[Variant]:
    def _adv_eps(r, s=True, **kw):  # the student's own eps in every rebuilt mistake
        return _adv(r, s, eps=EPS, **kw)

    return [
        Variant("advantages not centred (the group mean not subtracted)",
                lambda r, s: _adv_eps(r, s, centre=lambda r: 0),
                "An advantage is how much better an answer did than its group's average; without the baseline every "
                "answer of an easy prompt is pushed up.", "subtract rewards.mean(dim=1, keepdim=True)"),
        Variant("centred on the whole batch's mean, not each group's",
                lambda r, s: _adv_eps(r, s, centre=lambda r: r.mean()),
                "Each prompt is its own baseline: answers are compared with the other answers *to the same prompt*.",
                "mean over dim=1 (the group), keepdim=True"),
        Variant("centred across prompts (the mean over the wrong axis)",
                lambda r, s: _adv_eps(r, s, centre=lambda r: r.mean(0, keepdim=True)),
                "rewards is (prompts, group): the group is dim 1.", "mean over dim=1, keepdim=True"),
        Variant("normalised by the whole batch's std, not each group's",
                lambda r, s: _adv_eps(r, s, scale=lambda r: r.std() + EPS),
                "GRPO divides by the standard deviation of each group, so a rare success in a hard group counts as "
                "much as a rare failure in an easy one.", "std over dim=1, keepdim=True"),
        Variant("the population std (over G) where the sample std (over G - 1) is asked",
                lambda r, s: _adv_eps(r, s, scale=lambda r: r.std(1, keepdim=True, unbiased=False) + EPS),
                "This exercise follows TRL's GRPOTrainer (and torch's default): the unbiased std, dividing by G - 1.",
                "rewards.std(dim=1, keepdim=True)"),
        Variant("divided by the variance, not the std",
                lambda r, s: _adv_eps(r, s, scale=lambda r: r.var(1, keepdim=True) + EPS),
                "Normalise by the standard deviation (the square root of the variance).", "rewards.std(...)"),
        Variant("no eps: NaN for a group whose answers all scored the same",
                lambda r, s: _adv_eps(r, s, scale=lambda r: r.std(1, keepdim=True)),
                "A group whose answers all got the same reward has std 0; its advantages must be 0 (no signal), "
                "not 0/0.",
                "add a small eps to the std"),
        Variant("not normalised although normalize_std=True", lambda r, s: _adv_eps(r, False),
                "With normalize_std=True the centred rewards are divided by the group's std (+ eps).",
                "if normalize_std: divide by the std"),
        Variant("normalised although normalize_std=False", lambda r, s: _adv_eps(r),
                "normalize_std=False asks for the centred rewards only (Dr. GRPO's choice).",
                "divide only if normalize_std"),
        Variant("normalised by the range (max - min), not the std",
                lambda r, s: _adv_eps(r, s, scale=lambda r: r.amax(1, keepdim=True) - r.amin(1, keepdim=True) + EPS),
                "GRPO divides by each group's standard deviation.", "rewards.std(dim=1, keepdim=True)"),
        Variant("centred on the median, not the mean",
                lambda r, s: _adv_eps(r, s, centre=lambda r: r.median(1, keepdim=True).values),
                "The baseline is the group's mean reward.", "rewards.mean(dim=1, keepdim=True)"),
        Variant("normalised by the std across prompts (the wrong axis)",
                lambda r, s: _adv_eps(r, s, scale=lambda r: r.std(0, keepdim=True) + EPS),
                "rewards is (prompts, group): each group's std is over dim 1, the answers to one prompt.",
                "std over dim=1, keepdim=True"),
        Variant("centred on the group's best reward (max), not its mean",
                lambda r, s: _adv_eps(r, s, centre=lambda r: r.amax(1, keepdim=True)),
                "The baseline is the group's *mean*: an answer is pushed up when it beats the average answer, so "
                "half the group goes up; against the best, every answer but the best is pushed down.",
                "rewards.mean(dim=1, keepdim=True)"),
        Variant("centred on the group's worst reward (min), not its mean",
                lambda r, s: _adv_eps(r, s, centre=lambda r: r.amin(1, keepdim=True)),
                "The baseline is the group's *mean*; against the worst answer, every other answer is pushed up.",
                "rewards.mean(dim=1, keepdim=True)"),
        Variant("each answer given another prompt's statistics (repeat where repeat_interleave is needed)",
                lambda r, s: _adv_eps(r, s, centre=lambda r: _repeated(r.mean(1), r),
                                      scale=lambda r: _repeated(r.std(1), r) + EPS),
                "In TRL's flat layout (P * G answers, prompt by prompt) the P group statistics must be repeated "
                "*each* G times in a row (repeat_interleave); .repeat(G) tiles them, so answer k gets group k % P's.",
                "work on (P, G) with keepdim=True, or mean.repeat_interleave(G)"),
        Variant("the std as sqrt(p (1 - p)), right only for 0/1 rewards",
                lambda r, s: _adv_eps(r, s, scale=lambda r: (r.mean(1, keepdim=True) * (1 - r.mean(1, keepdim=True)))
                                      .sqrt() + EPS),
                "sqrt(p (1 - p)) is the (population) std of 0/1 rewards only; rewards can be any numbers, and the "
                "exercise asks for the sample std of each group.", "rewards.std(dim=1, keepdim=True)"),
        Variant("centred and normalised over the whole batch, not each group",
                lambda r, s: _adv_eps(r, s, centre=lambda r: r.mean(), scale=lambda r: r.std() + EPS),
                "Each prompt is its own baseline and its own scale: statistics over dim 1, the group.",
                "mean and std over dim=1, keepdim=True"),
    ]


ADVANTAGE_MISTAKES = _advantage_mistakes(EPS)


# The centre and the scale are two parts: a wrong centre *and* a wrong scale (the whole batch's mean with the
# population std; both over the wrong axis) is two mistakes, named together when they explain every output.
def _advantage_pairs(eps: float) -> list[Variant]:
    """Every wrong centre of the table with every wrong scale, named by the two rows (the same eps)."""
    centres = {"centred on the whole batch's mean, not each group's": lambda r: r.mean(),
               "centred across prompts (the mean over the wrong axis)": lambda r: r.mean(0, keepdim=True),
               "centred on the median, not the mean": lambda r: r.median(1, keepdim=True).values,
               "centred on the group's best reward (max), not its mean": lambda r: r.amax(1, keepdim=True),
               "centred on the group's worst reward (min), not its mean": lambda r: r.amin(1, keepdim=True),
               "advantages not centred (the group mean not subtracted)": lambda r: 0}
    scales = {"normalised by the whole batch's std, not each group's": lambda r: r.std() + eps,
              "the population std (over G) where the sample std (over G - 1) is asked":
                  lambda r: r.std(1, keepdim=True, unbiased=False) + eps,
              "divided by the variance, not the std": lambda r: r.var(1, keepdim=True) + eps,
              "normalised by the std across prompts (the wrong axis)": lambda r: r.std(0, keepdim=True) + eps,
              "normalised by the range (max - min), not the std":
                  lambda r: r.amax(1, keepdim=True) - r.amin(1, keepdim=True) + eps}
    # the whole batch's statistics (one mistake) computed with the wrong statistic (another)
    statistics = {"the population std (over G) where the sample std (over G - 1) is asked":
                      lambda r: r.std(unbiased=False) + eps, "divided by the variance, not the std": lambda r: r.var()
                  + eps, "normalised by the range (max - min), not the std": lambda r: r.amax() - r.amin() + eps,
                  "no eps: NaN for a group whose answers all scored the same": lambda r: r.std()}
    rows = {v.property: v for v in _advantage_mistakes(eps)}
    batch = rows["centred and normalised over the whole batch, not each group"]
    return [two_mistakes(rows[c], rows[sc], lambda r, s, centre=centre, scale=scale: _adv(r, s, centre, scale))
            for c, centre in centres.items() for sc, scale in scales.items()] + [
        two_mistakes(batch, rows[st], lambda r, s, scale=scale: _adv(r, s, lambda r: r.mean(), scale))
        for st, scale in statistics.items()]


def _rounded(t):
    return [[round(v, 4) for v in row] for row in t.tolist()] if isinstance(t, torch.Tensor) and t.dim() == 2 else t


def check_group_advantages(fn) -> CheckResult:
    """Check fn(rewards (P, G), normalize_std) -> (P, G): reward minus its group's mean, divided by the group's
    (unbiased) std + a small eps if normalize_std; a group with equal rewards gets zeros."""
    exercise = "GRPO group advantages"
    problem = modified_in_place(exercise, fn, (REWARDS, True), "function(rewards, normalize_std=True)",
                                "rewards - mean makes a new tensor; rewards -= mean (or .sub_) changes the caller's")
    if problem is not None:  # the trainer still needs the rewards (logging, the next group's baseline)
        return problem
    cases = [(rewards, normalize_std) for rewards in REWARDS_CASES for normalize_std in (True, False)]
    outputs = []
    for rewards, normalize_std in cases:
        out, problem = run(exercise, f"your function(rewards, normalize_std={normalize_std})", fn, rewards.clone(),
                           normalize_std, hint="rewards is (P, G): reduce over dim=1 with keepdim=True, so that the "
                           "(P, 1) statistics broadcast against (P, G)")
        if problem is not None and "must match the size of tensor" in problem.explanation:
            return fail(exercise, "group statistics without keepdim=True", "rewards.mean(1) has shape (P,), which "
                        "lines up with the *last* axis of (P, G) and cannot broadcast (or pairs the wrong numbers "
                        "when P == G).", problem.explanation, "rewards.mean(dim=1, keepdim=True): shape (P, 1)")
        if problem is not None:
            return problem
        outputs.append(out)
    found = explain(exercise, cases, outputs, lambda r, s: group_advantages(r, s, EPS),
                    [v for eps in EPS_TRIED for v in _advantage_mistakes(eps)]
                    + [v for eps in EPS_TRIED for v in _advantage_pairs(eps)],
                    lambda r, s: f"rewards {_rounded(r)}\nfunction(rewards, normalize_std={s})", TOL, HINT)
    if found is not None:
        return found
    return CheckResult(exercise, True, checked=["centred on each group's mean", "divided by each group's std + eps",
                                                "zeros for a uniform group", "normalize_std=False: centred only"])
