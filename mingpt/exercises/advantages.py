"""
Checking a student's GRPO group advantages (mingpt.posttrain.rl.group_advantages): each answer's reward minus its
group's mean, divided by the group's (unbiased) std + a small eps when normalize_std. A mistake is named only when a
rebuilt variant from ADVANTAGE_MISTAKES (or two of its parts at once) reproduces every tested output, with the
student's own eps (any small eps is valid).

    from mingpt.exercises.advantages import check_group_advantages
    check_group_advantages(my_advantages)  # my_advantages(rewards (P, G), normalize_std) -> (P, G)
"""

from __future__ import annotations

import torch

from mingpt.exercises.checking import CheckResult, Variant, fail, run
from mingpt.exercises.compare import NOT_RECOGNISED, explain, modified_in_place, same, two_mistakes
from mingpt.exercises.advantage_rows import groups_left
from mingpt.posttrain.rl import group_advantages

__all__ = ["ADVANTAGE_MISTAKES", "check_group_advantages"]

HINT = "compare your code with the definition above the exercise, one step at a time"


# ------------------------------------------------------------------------------------------ 4. GRPO advantages
REWARDS = torch.tensor([[1.0, 0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0, 0.0],
                        [3.0, 1.0, 2.0, 2.0, 0.5], [1.0, 1.0, 1.0, 1.0, 1.0]])  # (P=4, G=5): two uniform groups
REWARDS_CASES = [REWARDS,  # then REWARDS' shape with other values: a running mean kept across calls shows there
                 torch.tensor([[0.0, 2.0, 1.0, 1.0, 0.0], [4.0, 1.0, 1.0, 0.0, 2.5], [1.0, 0.0, 1.0, 0.0, 1.0],
                               [2.0, 2.0, 2.0, 2.0, 2.0]]),
                 torch.tensor([[2.0, -1.0, 0.5, 4.0], [0.0, 1.0, 3.0, 1.5], [5.0, 5.5, 4.0, 6.0]]),  # P != G
                 torch.full((2, 3), 0.5)]  # a batch where every answer scored the same: a missing eps shows here too
# The third case shifted by 10^4 (last, so the indices above stay): the advantages do not change when every reward
# moves by the same amount, but a variance taken as E[r^2] - E[r]^2 subtracts two numbers near 10^8, whose float32
# rounding (8) swamps the spread (about 4): only a large reward shows that formula's cancellation.
LARGE_CASE = REWARDS_CASES[2] + 1e4
REWARDS_CASES.append(LARGE_CASE)
EPS = 1e-4
TOL = 1e-3  # any small eps (1e-8 ... 1e-4) or a clamp of the std is a valid choice
EPS_TRIED = (EPS, 1e-5, 1e-6, 1e-8)  # a mistake that divides a uniform group by eps shows the student's own eps


def _adv(r, s=True, centre=lambda r: r.mean(1, keepdim=True), scale=None, eps=EPS):
    """The reference with one part swapped: `centre` and `scale` (applied only if s, normalize_std)."""
    return (r - centre(r)) / ((r.std(1, keepdim=True) + eps if scale is None else scale(r)) if s else 1.0)


def _repeated(stat: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """A (P,) statistic laid out as .repeat(G) lays it over the flat P * G answers, seen as (P, G)."""
    return stat.repeat(r.size(1)).view(r.shape)


def _as_g_by_p(r: torch.Tensor, s: bool, eps: float) -> torch.Tensor:
    """The advantages of r.reshape(G, P) taken over its dim 0, reshaped back to (P, G): a reshape where a transpose
    was meant, so each "group" is G numbers read in memory order across prompts, not one prompt's answers."""
    q = r.reshape(r.size(1), r.size(0))
    a = q - q.mean(0, keepdim=True)
    return (a / (q.std(0, keepdim=True) + eps) if s else a).reshape(r.shape)


def _one_answer_zero(a: torch.Tensor, index: int) -> torch.Tensor:
    """a with one answer of every group (column index) left at 0, as a loop that never reaches it leaves it."""
    a = a.clone()
    a[:, index] = 0
    return a


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
        Variant("normalize_std read the wrong way round (normalised only when it is False)",
                lambda r, s: _adv_eps(r, not s),
                "normalize_std=True asks for the division by the group's std; False for the centred rewards only.",
                "if normalize_std: divide by the std"),
        Variant("centred on the mean of the *other* answers (RLOO's leave-one-out baseline), not the group's mean",
                lambda r, s: _adv_eps(r, s, centre=lambda r: (r.sum(1, keepdim=True) - r) / (r.size(1) - 1)),
                "GRPO's baseline is the mean of the whole group, the answer itself included; leaving the answer out "
                "is RLOO's baseline (it scales the advantages by G / (G - 1)).", "rewards.mean(dim=1, keepdim=True)"),
        Variant("the group mean by floor division (sum // G): rounded down",
                lambda r, s: _adv_eps(r, s, centre=lambda r: r.sum(1, keepdim=True) // r.size(1)),
                "// is floor division, for floats too: a mean of 0.6 becomes 0.", "rewards.mean(dim=1, keepdim=True)"),
        Variant("divided by the L2 norm of the centred rewards (F.normalize), not the std: sqrt(G - 1) times too small",
                lambda r, s: _adv_eps(r, s, scale=lambda r: (r - r.mean(1, keepdim=True)).norm(dim=1, keepdim=True)
                                      .clamp(min=1e-12)),
                "F.normalize divides by the vector's length, sqrt(sum of squares) = std * sqrt(G - 1): the advantages "
                "shrink as the group grows.", "divide by rewards.std(dim=1, keepdim=True) + eps"),
        Variant("groups mixed: the (P, G) rewards reshaped to (G, P) (a reshape/view where a transpose is needed)",
                lambda r, s: _as_g_by_p(r, s, EPS),
                "rewards.reshape(G, P) (or .view) keeps the numbers in memory order: its columns are not the groups "
                "but G rewards read across prompts, so each answer is compared with answers to other prompts. Only a "
                "transpose (rewards.T) turns prompts into columns.", "work on (P, G) with dim=1, or use rewards.T"),
        Variant("the last answer of each group left at 0 (a loop over range(G - 1))",
                lambda r, s: _one_answer_zero(_adv_eps(r, s), -1),
                "Every answer of a group gets its advantage; a loop that stops one short (range(G - 1)) never "
                "writes the last one, which keeps the 0 it was created with.", "loop over range(G), or no loop: "
                "(rewards - mean) / (std + eps) on the whole (P, G) tensor"),
        Variant("the first answer of each group left at 0 (a loop that starts at 1)",
                lambda r, s: _one_answer_zero(_adv_eps(r, s), 0),
                "Every answer of a group gets its advantage; a loop over range(1, G) never writes answer 0, which "
                "keeps the 0 it was created with.", "loop over range(G), or no loop"),
        Variant("centred and normalised over the whole batch, not each group",
                lambda r, s: _adv_eps(r, s, centre=lambda r: r.mean(), scale=lambda r: r.std() + EPS),
                "Each prompt is its own baseline and its own scale: statistics over dim 1, the group.",
                "mean and std over dim=1, keepdim=True"),
        *[Variant(f"the variance as E[r^2] - E[r]^2 ({how}): it cancels catastrophically for large rewards",
                  lambda r, s, bessel=bessel, clamp=clamp: _adv_eps(r, s, scale=lambda r: _one_pass_std(
                      r, bessel, clamp) + EPS),
                  "E[r^2] - E[r]^2 equals the variance on paper, but in float32 it subtracts two large, nearly equal "
                  "numbers: for rewards near 10^4 both are near 10^8, rounded to multiples of 8, and the difference "
                  "(the spread, a few units) is lost. The two-pass formula (subtract the mean, then square) keeps it.",
                  "rewards.std(dim=1, keepdim=True)") for bessel, clamp, how in (
            (True, True, "times G / (G - 1), clamped at 0"), (True, False, "times G / (G - 1)"),
            (False, True, "the population variance, clamped at 0"), (False, False, "the population variance"))],
    ]


def _later_mistakes(eps: float) -> list[Variant]:
    """Rows tried after the table and its pairs (so a row named before keeps its name): the group's mean as the
    scale, and every statistic over dim 0, alone and with each row of the table (computed on rewards.T)."""
    rows = _advantage_mistakes(eps)
    by_mean = Variant("divided by the group's mean (a relative advantage), not its std",
                      lambda r, s: _adv(r, s, scale=lambda r: r.mean(1, keepdim=True).abs() + eps),
                      "The scale is the spread of the group's rewards (its std), not their level: dividing by the "
                      "mean makes the same spread count ten times more in a group that scored 0.1 than in one that "
                      "scored 1.", "rewards.std(dim=1, keepdim=True) + eps")
    axis = Variant("every statistic over dim 0 (across prompts), not dim 1 (the group)",
                   lambda r, s: _adv(r.T, s, eps=eps).T,
                   "rewards is (prompts, group): mean and std are over dim 1, the G answers to one prompt; over dim 0 "
                   "(or without keepdim, which broadcasts a (G,) statistic along the wrong axis) each answer is "
                   "compared with the answers to other prompts.", "mean and std over dim=1, keepdim=True")
    # cousins (round 21): Bessel's correction off by one more (G - 2), and the below-average answers' negative
    # advantages clipped to 0 (a clamp(min=0) or relu), which keeps the push up and loses the push down
    g2 = Variant("the std's denominator is G - 2, not G - 1 (Bessel's correction off by one more)",
                 lambda r, s: _adv(r, s, scale=lambda r: ((r - r.mean(1, keepdim=True)) ** 2).sum(1, keepdim=True)
                                   .div(r.size(1) - 2).sqrt() + eps),
                 "The sample std divides the sum of squares by G - 1 (torch.std's default); G - 2 makes it "
                 "sqrt((G - 1) / (G - 2)) times too large.", "rewards.std(dim=1, keepdim=True)")
    clipped = Variant("negative advantages clipped to 0 (a clamp(min=0) or relu)",
                      lambda r, s: group_advantages(r, s, eps).clamp(min=0),
                      "An answer worse than its group's average gets a *negative* advantage: GRPO pushes it down. "
                      "Clipped to 0, only the better answers are ever trained on.", "keep the sign: no clamp, no relu")
    return [by_mean, axis] + [two_mistakes(axis, v, lambda r, s, v=v: v.compute(r.T, s).T) for v in rows
                              if "axis" not in v.property and "prompts" not in v.property] + [g2, clipped]


def _fitted_eps(cases, outputs, unbiased: bool = True) -> float | None:
    """The eps that makes the reference give the student's first normalised, nonzero advantage (None if none):
    out = c / (std + eps), so eps = c / out - std. A large one shows as "eps too large" only when the reference
    with it then reproduces every output. unbiased=False: the same with the population std."""
    for (r, s), o in zip(cases, outputs):
        if not (s and isinstance(o, torch.Tensor) and o.shape == r.shape and o.is_floating_point()):
            continue
        c, sd = r - r.mean(1, keepdim=True), r.std(1, keepdim=True, unbiased=unbiased).expand_as(r)
        pick = (c.abs() > 0.1) & (o.abs() > 1e-6)
        if pick.any():
            return float((c[pick][0] / o.double()[pick][0]) - sd[pick][0])
    return None


def _one_pass_std(r: torch.Tensor, bessel: bool, clamp: bool) -> torch.Tensor:
    """sqrt(E[r^2] - E[r]^2) per group (times G / (G - 1) if bessel), computed as a student would, in r's dtype."""
    var = (r ** 2).mean(1, keepdim=True) - r.mean(1, keepdim=True) ** 2
    var = var * r.size(1) / (r.size(1) - 1) if bessel else var
    return (var.clamp_min(0) if clamp else var).sqrt()


def _one_flag_only(v: Variant, flag: bool, eps: float) -> Variant:
    """v where normalize_std == flag, the reference otherwise: the slip is in one branch of an if normalize_std."""
    return Variant(f"{v.property}, only when normalize_std={flag}",
                   lambda r, s: v.compute(r, s) if s == flag else group_advantages(r, s, eps),
                   f"{v.explanation} (Your normalize_std={not flag} branch is right: the slip is in the other "
                   "branch only, where the two compute the advantages separately.)", v.hint)


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
               "advantages not centred (the group mean not subtracted)": lambda r: 0,
               "centred on the mean of the *other* answers (RLOO's leave-one-out baseline), not the group's mean":
                   lambda r: (r.sum(1, keepdim=True) - r) / (r.size(1) - 1)}
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
    # a wrong statistic of each group with its eps forgotten: two slips in one denominator (NaN for a uniform group)
    bare = {"the population std (over G) where the sample std (over G - 1) is asked":
                lambda r: r.std(1, keepdim=True, unbiased=False),
            "divided by the variance, not the std": lambda r: r.var(1, keepdim=True)}
    no_eps = rows["no eps: NaN for a group whose answers all scored the same"]
    batch = rows["centred and normalised over the whole batch, not each group"]
    # normalize_std ignored (always normalised) or read the wrong way round, with any other slip of the table
    flags = {"normalised although normalize_std=False": lambda s: True,
             "normalize_std read the wrong way round (normalised only when it is False)": lambda s: not s}
    others = [v for v in rows.values() if "normalize_std" not in v.property and "not normalised" not in v.property]
    flagged = [two_mistakes(v, rows[f], lambda r, s, v=v, flag=flag: v.compute(r, flag(s)))
               for f, flag in flags.items() for v in others]
    return [two_mistakes(rows[c], rows[sc], lambda r, s, centre=centre, scale=scale: _adv(r, s, centre, scale))
            for c, centre in centres.items() for sc, scale in scales.items()] + [
        two_mistakes(batch, rows[st], lambda r, s, scale=scale: _adv(r, s, lambda r: r.mean(), scale))
        for st, scale in statistics.items()] + [
        two_mistakes(rows[st], no_eps, lambda r, s, scale=scale: _adv(r, s, scale=scale)) for st, scale in bare.items()
    ] + flagged + [_one_flag_only(v, flag, eps) for v in others for flag in (True, False)]


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
    again, _ = run(exercise, "your function(rewards, normalize_std=True), a second time", fn, cases[2][0].clone(),
                   True)  # the third call again, after others: a stateless function repeats its answer
    if isinstance(again, torch.Tensor) and isinstance(outputs[2], torch.Tensor) and not same(again, outputs[2]):
        return fail(exercise, "the same rewards give other advantages on a second call (state kept across calls)",
                    "Advantages depend on this call's rewards only; yours changed between two identical calls, so "
                    "something is kept from one call to the next (a running mean, a counter, a cache).",
                    f"rewards {_rounded(cases[2][0])}\nfirst call  {_rounded(outputs[2])}\nsecond call "
                    f"{_rounded(again)}", "compute the mean and std of each group from the rewards passed, every call")
    if all(isinstance(o, torch.Tensor) and o.shape == r.T.shape and same(o.T, group_advantages(r, s, EPS), TOL)
           for o, (r, s) in zip(outputs, cases)):  # right numbers, returned as (G, P)
        return fail(exercise, "output transposed: (G, P) returned, not (P, G)", "Your advantages are right but laid "
                    "out with the answers along dim 0: computed on rewards.T and not transposed back. The caller "
                    "reads advantages[p, g] for answer g of prompt p.", f"rewards of shape {tuple(cases[4][0].shape)}"
                    f", yours of shape {tuple(outputs[4].shape)}", "return the (P, G) layout: transpose back (.T)")
    found = explain(exercise, cases, outputs, lambda r, s: group_advantages(r, s, EPS),
                    [v for eps in EPS_TRIED for v in _advantage_mistakes(eps)]
                    + [v for eps in EPS_TRIED for v in _advantage_pairs(eps)]
                    + [v for eps in EPS_TRIED for v in _later_mistakes(eps)],
                    lambda r, s: f"rewards {_rounded(r)}\nfunction(rewards, normalize_std={s})", TOL, HINT)
    if found is not None and found.property == NOT_RECOGNISED and all(
            same(o, group_advantages(r, s, EPS), TOL) for o, (r, s) in zip(outputs, cases) if r is not LARGE_CASE):
        return fail(exercise, "right for small rewards, wrong for large ones (precision lost)", "Your advantages are "
                    "right on every group of small rewards and wrong only when the rewards are near 10^4, although "
                    "shifting every reward by the same amount must not change them: precision is lost on the way "
                    "(a variance as E[r^2] - E[r]^2, a half-precision dtype, a large constant added and removed).",
                    found.counterexample, "subtract the group mean first, then square (rewards.std does), in "
                    "rewards' dtype")
    for unbiased in (True, False):  # eps fitted to the outputs, with the sample std, then the population std
        eps = _fitted_eps(cases, outputs, unbiased) if found is not None and found.property == NOT_RECOGNISED \
            else None
        if eps is not None and 1e-3 < eps < 10 and all(same(o, _adv(r, s, scale=lambda r: r.std(
                1, keepdim=True, unbiased=unbiased) + eps), TOL / 10) for o, (r, s) in zip(outputs, cases)):
            large = fail(exercise, "eps too large: it shrinks every advantage", f"Your advantages are the "
                         f"reference's with eps = {eps:.3g} (fitted to your outputs, and exact on every case). eps "
                         "only keeps a uniform group's 0/0 away; next to a std of order 1 it must be negligible "
                         "(1e-4 ... 1e-8), or it scales every advantage down, most in groups with a small spread.",
                         found.counterexample, "add a small eps, such as 1e-4, to the std")
            if unbiased:
                return large
            biased = next(v for v in ADVANTAGE_MISTAKES if "population std" in v.property)
            return fail(exercise, f"two mistakes: {biased.property}; and {large.property}", f"{biased.explanation} "
                        f"And: {large.explanation}", found.counterexample, f"{biased.hint}; and {large.hint}")
    if found is not None and found.property == NOT_RECOGNISED:
        rows = groups_left(exercise, cases, outputs, lambda r, s: group_advantages(r, s, EPS), TOL)
        found = found if rows is None else rows  # (a failed CheckResult is falsy: test for None)
    if found is not None:
        return found
    return CheckResult(exercise, True, checked=["centred on each group's mean", "divided by each group's std + eps",
                                                "zeros for a uniform group", "normalize_std=False: centred only",
                                                "the same answer on a second call", "rewards near 10^4"])
