"""
mingpt/exercises/posttrain.py: every mistake in each checker's table, written the way a student would write it, is
caught and named; an unknown mistake is reported as unrecognised with the first differing element; correct
solutions written differently pass.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from mingpt.exercises.lora import CRASH_HINT
from students_posttrain_more import MORE_ADVANTAGE, MORE_DPO, MORE_LORA, MORE_SFT  # rows added with held-out 12+
import students_posttrain_round21  # rows added with held-out round 21
from mingpt.exercises.posttrain import (ADVANTAGE_MISTAKES, DPO_MISTAKES, LORA_FORWARD_MISTAKES, LORA_INIT_MISTAKES,
                                        LORA_MERGE_MISTAKES, SFT_MISTAKES, check_dpo_loss, check_group_advantages,
                                        check_lora_layer, check_sft_targets)

UNKNOWN = "a mistake the checker does not recognise"  # compare.NOT_RECOGNISED


# ------------------------------------------------------------------------------------------ SFT
def sft(ids, is_assistant, shift_mask=1, targets_from=1, fill=-1, invert=False, end_out=None, plus_marker=None,
        mask=True):
    x, targets = ids[:-1], ids[targets_from:][: len(ids) - 1]
    keep = is_assistant[shift_mask:][: len(ids) - 1] if shift_mask else is_assistant[:-1]
    keep = ~keep if invert else keep
    if end_out is not None:
        keep = keep & (ids[1:] != end_out)
    if plus_marker is not None:
        keep = keep | (ids[1:] == plus_marker)
    y = targets.clone()
    if mask:
        y[~keep] = fill
    return x, y


SFT_STUDENTS = {
    "the mask is not shifted with the targets (off by one)": lambda i, a: sft(i, a, shift_mask=0),
    "the targets are not shifted (predicting the current token)": lambda i, a: (i[:-1], torch.where(a[1:], i[:-1], -1)),
    "nothing is masked (loss on the user's tokens too)": lambda i, a: sft(i, a, mask=False),
    "the mask is inverted (loss on everything but the assistant)": lambda i, a: sft(i, a, invert=True),
    "the end-of-turn token is masked out": lambda i, a: sft(i, a, end_out=22),
    "the assistant's role marker is trained on": lambda i, a: sft(i, a, plus_marker=21),
    "masked with 0 instead of -1": lambda i, a: sft(i, a, fill=0),
    "masked with -100 (PyTorch's default) instead of mingpt's -1": lambda i, a: sft(i, a, fill=-100),
    "loss on everything after the assistant's first token": lambda i, a: (
        i[:-1], torch.where(a.cumsum(0)[1:] > 0, i[1:], -1)),
}


def sft_loop(ids, is_assistant):  # a valid alternative: plain Python
    ids, a = ids.tolist(), is_assistant.tolist()
    return torch.tensor(ids[:-1]), torch.tensor([t if keep else -1 for t, keep in zip(ids[1:], a[1:])])


def sft_masked_fill(ids, is_assistant):  # another: masked_fill with the library's constant
    from mingpt.model import IGNORE_INDEX
    return ids[:-1].clone(), ids[1:].masked_fill(~is_assistant[1:], IGNORE_INDEX)


# ------------------------------------------------------------------------------------------ LoRA
def lora_class(scale=lambda r, alpha: alpha / r, init_a=nn.init.kaiming_uniform_, b_value=0.0, freeze=True,
               merge_scale=None, merge_sign=1.0, merge_noop=False, skip_after_merge=True, with_base=True,
               as_linear=False, trainable=True, merge_replace=False):
    class LoRA(nn.Module):
        def __init__(self, base, r, alpha):
            super().__init__()
            self.base, self.scale, self.merged = base, scale(r, alpha), False
            self.merge_scale = merge_scale(r, alpha) if callable(merge_scale) else merge_scale
            if as_linear:  # valid: A and B as nn.Linear layers
                self.lora_A, self.lora_B = nn.Linear(base.in_features, r, bias=False), nn.Linear(r, base.out_features,
                                                                                                 bias=False)
                A, B = self.lora_A.weight, self.lora_B.weight
            else:
                self.lora_A = nn.Parameter(torch.empty(r, base.in_features))
                self.lora_B = nn.Parameter(torch.empty(base.out_features, r))
                A, B = self.lora_A, self.lora_B
            if init_a is nn.init.kaiming_uniform_:
                nn.init.kaiming_uniform_(A, a=math.sqrt(5))
            else:
                init_a(A)
            nn.init.constant_(B, b_value)
            A.requires_grad_(trainable)
            B.requires_grad_(trainable)
            if freeze:
                base.requires_grad_(False)

        def ab(self):
            return (self.lora_A.weight, self.lora_B.weight) if as_linear else (self.lora_A, self.lora_B)

        def forward(self, x):
            A, B = self.ab()
            out = self.base(x) if with_base else 0
            if self.merged and skip_after_merge:
                return out
            return out + (x @ A.T @ B.T) * self.scale

        @torch.no_grad()
        def merge(self):
            A, B = self.ab()
            if merge_replace:
                self.base.weight.copy_(self.scale * (B @ A))
            elif not merge_noop:
                self.base.weight += merge_sign * (self.merge_scale or self.scale) * (B @ A)
            self.merged = True

    return LoRA


LORA_STUDENTS = {
    "the base layer is not frozen": lora_class(freeze=False),
    "A initialised to zero": lora_class(init_a=nn.init.zeros_),
    "B initialised non-zero": lora_class(b_value=0.01),
    "A and B initialisations swapped (A zero, B random)": lora_class(init_a=nn.init.zeros_, b_value=0.01),
    "A and B are not trainable": lora_class(trainable=False),
    "LoRA scaled by the rank instead of alpha / rank": lora_class(scale=lambda r, alpha: r),
    "LoRA scaled by alpha instead of alpha / rank": lora_class(scale=lambda r, alpha: alpha),
    "LoRA scaled by 1 / rank (alpha left out)": lora_class(scale=lambda r, alpha: 1 / r),
    "LoRA scaled by rank / alpha (the ratio upside down)": lora_class(scale=lambda r, alpha: r / alpha),
    "the LoRA correction is not scaled": lora_class(scale=lambda r, alpha: 1.0),
    "the base layer's output is missing": lora_class(with_base=False),
    "merge forgets the scale": lora_class(merge_scale=1.0),
    "merge subtracts the correction": lora_class(merge_sign=-1.0),
    "merge scales by the rank instead of alpha / rank": lora_class(merge_scale=lambda r, alpha: r),
    "merge did not change the base weight": lora_class(merge_noop=True),
    "merge replaced the base weight with the correction": lora_class(merge_replace=True),
    "the correction is added twice after merge": lora_class(skip_after_merge=False),
}


class _ScaleOnEverything(lora_class()):  # (base(x) + B A x) * scale: the scale on the base's output too
    def forward(self, x):
        A, B = self.ab()
        return (self.base(x) + x @ A.T @ B.T) * self.scale


LORA_STUDENTS["the scale multiplies the base layer's output too ((base(x) + B A x) * alpha / r)"] = _ScaleOnEverything


# ------------------------------------------------------------------------------------------ DPO
def logps(model, x, y, mean=False, unmasked=False, from_x=False, probs=False):
    B, _, T = x.shape
    logits = model(x.reshape(2 * B, T))[0]
    targets = y.reshape(2 * B, T)
    if from_x:
        targets = torch.where(targets != -1, x.reshape(2 * B, T), targets)
    token = (F.softmax if probs else F.log_softmax)(logits, -1).gather(-1, targets.clamp(min=0).unsqueeze(-1))
    token = token.squeeze(-1)
    mask = (targets != -1).float()
    out = token.sum(-1) if unmasked else (token * mask).sum(-1)
    return (out / mask.sum(-1) if mean else out).view(B, 2)


def dpo(policy, reference, x, y, beta, *, frozen=True, swap=False, beta_as=lambda b: b, no_ref=False,
        logsig=True, reduce="mean", beta_chosen_only=False, ref_swapped=False, **kw):
    pi = logps(policy, x, y, **kw)
    if frozen:
        with torch.no_grad():
            ref = logps(reference, x, y, **kw)
    else:
        ref = logps(reference, x, y, **kw)
    if no_ref:
        ref = torch.zeros_like(ref)
    if ref_swapped:  # pi_chosen - ref_rejected and pi_rejected - ref_chosen
        ref = ref[:, [1, 0]]
    chosen, rejected = (1, 0) if swap else (0, 1)
    margin = beta_as(beta) * ((pi[:, chosen] - ref[:, chosen]) - (pi[:, rejected] - ref[:, rejected]))
    if beta_chosen_only:
        margin = beta * (pi[:, chosen] - ref[:, chosen]) - (pi[:, rejected] - ref[:, rejected])
    losses = -F.logsigmoid(margin) if logsig else -margin
    return losses.mean() if reduce == "mean" else losses.sum()


DPO_STUDENTS = {
    "log-probs summed over the prompt and padding too": lambda *a: dpo(*a, unmasked=True),
    "log-probs averaged over the answer's tokens, not summed": lambda *a: dpo(*a, mean=True),
    "log-probs of the input tokens instead of the targets": lambda *a: dpo(*a, from_x=True),
    "the sign is swapped (chosen and rejected exchanged)": lambda *a: dpo(*a, swap=True),
    "beta left out": lambda *a: dpo(*a, beta_as=lambda b: 1.0),
    "beta divides the margin instead of multiplying it": lambda *a: dpo(*a, beta_as=lambda b: 1 / b),
    "the reference's chosen and rejected log-probs swapped": lambda *a: dpo(*a, ref_swapped=True),
    "beta scales the loss, not the margin inside the log-sigmoid": lambda *a: a[4] * dpo(*a, beta_as=lambda b: 1.0),
    "the reference model is left out": lambda *a: dpo(*a, no_ref=True),
    "the log-sigmoid is missing": lambda *a: dpo(*a, logsig=False),
    "summed over the pairs instead of averaged": lambda *a: dpo(*a, reduce="sum"),
    "probabilities summed instead of log-probabilities": lambda *a: dpo(*a, probs=True),
    "beta multiplies only the chosen answer's log-ratio": lambda *a: dpo(*a, beta_chosen_only=True),
    "the loss's sign flipped (logsigmoid without the minus)": lambda *a: -dpo(*a),
    "gradients flow through the reference model": lambda *a: dpo(*a, frozen=False),
}


def dpo_cross_entropy(policy, reference, x, y, beta):  # valid: log-probs from cross_entropy(ignore_index=-1)
    def lp(model):
        B, _, T = x.shape
        logits = model(x.reshape(2 * B, T))[0]
        nll = F.cross_entropy(logits.transpose(1, 2), y.reshape(2 * B, T), ignore_index=-1, reduction="none")
        return -nll.sum(-1).view(B, 2)

    pi = lp(policy)
    ref = lp(reference).detach()
    logits = beta * ((pi[:, 0] - pi[:, 1]) - (ref[:, 0] - ref[:, 1]))
    return -torch.log(torch.sigmoid(logits)).mean()


def dpo_library(policy, reference, x, y, beta):  # valid: mingpt's own pieces, chosen and rejected in two passes
    from mingpt.posttrain.dpo import dpo_loss, sequence_logprobs
    lp = [sequence_logprobs(policy(x[:, i])[0], y[:, i]) for i in (0, 1)]
    with torch.no_grad():
        ref = [sequence_logprobs(reference(x[:, i])[0], y[:, i]) for i in (0, 1)]
    return dpo_loss(lp[0], lp[1], ref[0], ref[1], beta)[0].mean()


# ------------------------------------------------------------------------------------------ advantages
def adv(r, s, centre="group", scale="group", eps=1e-4):
    means = {"group": r.mean(1, keepdim=True), "none": 0.0, "batch": r.mean(), "axis0": r.mean(0, keepdim=True),
             "median": r.median(1, keepdim=True).values}
    centred = r - means[centre]
    if not s and scale != "always":
        return centred
    std = {"group": r.std(1, keepdim=True), "always": r.std(1, keepdim=True), "batch": r.std(),
           "population": r.std(1, keepdim=True, unbiased=False), "var": r.var(1, keepdim=True), "none": None,
           "axis0": r.std(0, keepdim=True), "range": r.amax(1, keepdim=True) - r.amin(1, keepdim=True)}[scale]
    if std is None:
        return centred
    return centred / (std + eps) if eps else centred / std


ADVANTAGE_STUDENTS = {
    "advantages not centred (the group mean not subtracted)": lambda r, s: adv(r, s, centre="none"),
    "centred on the whole batch's mean, not each group's": lambda r, s: adv(r, s, centre="batch"),
    "centred across prompts (the mean over the wrong axis)": lambda r, s: adv(r, s, centre="axis0"),
    "normalised by the whole batch's std, not each group's": lambda r, s: adv(r, s, scale="batch"),
    "the population std (over G) where the sample std (over G - 1) is asked":
        lambda r, s: adv(r, s, scale="population"),
    "divided by the variance, not the std": lambda r, s: adv(r, s, scale="var"),
    "no eps: NaN for a group whose answers all scored the same": lambda r, s: adv(r, s, eps=0),
    "not normalised although normalize_std=True": lambda r, s: adv(r, s, scale="none"),
    "normalised although normalize_std=False": lambda r, s: adv(r, s, scale="always"),
    "normalised by the std across prompts (the wrong axis)": lambda r, s: adv(r, s, scale="axis0", eps=1e-6),
    "normalised by the range (max - min), not the std": lambda r, s: adv(r, s, scale="range"),
    "centred on the median, not the mean": lambda r, s: adv(r, s, centre="median"),
    "centred and normalised over the whole batch, not each group": lambda r, s: adv(r, s, "batch", "batch", 1e-8),
}


def adv_loop(rewards, normalize_std):  # valid: a loop over groups, a tiny eps
    rows = []
    for group in rewards.tolist():
        mean = sum(group) / len(group)
        std = math.sqrt(sum((g - mean) ** 2 for g in group) / (len(group) - 1))
        rows.append([(g - mean) / (std + 1e-8) if normalize_std else g - mean for g in group])
    return torch.tensor(rows)


def adv_clamp(rewards, normalize_std):  # valid: std clamped instead of + eps
    centred = rewards - rewards.mean(dim=-1, keepdim=True)
    return centred / rewards.std(dim=-1, keepdim=True).clamp(min=1e-6) if normalize_std else centred


def adv_where(rewards, normalize_std):  # valid: zero std handled explicitly
    centred = rewards - rewards.mean(1, keepdim=True)
    std = rewards.std(1, keepdim=True)
    return torch.where(std > 0, centred / std, torch.zeros_like(centred)) if normalize_std else centred


# ------------------------------------------------------------------------------------------ the tests
SFT_STUDENTS.update(MORE_SFT), DPO_STUDENTS.update(MORE_DPO), ADVANTAGE_STUDENTS.update(MORE_ADVANTAGE)
LORA_STUDENTS.update(MORE_LORA)
SFT_STUDENTS.update(students_posttrain_round21.SFT), DPO_STUDENTS.update(students_posttrain_round21.DPO)
LORA_STUDENTS.update(students_posttrain_round21.LORA)
CASES = ([(check_sft_targets, name, fn) for name, fn in SFT_STUDENTS.items()]
         + [(check_lora_layer, name, cls) for name, cls in LORA_STUDENTS.items()]
         + [(check_dpo_loss, name, fn) for name, fn in DPO_STUDENTS.items()]
         + [(check_group_advantages, name, fn) for name, fn in ADVANTAGE_STUDENTS.items()])


@pytest.mark.parametrize("checker, mistake, student", CASES, ids=[f"{c.__name__}:{m}" for c, m, _ in CASES])
def test_each_mistake_is_caught_and_named(checker, mistake, student):
    result = checker(student)
    assert not result and result.property == mistake, str(result)
    assert "counter-example" in str(result) and result.hint


@pytest.mark.parametrize("table, students", [
    ([v.property for v in SFT_MISTAKES], SFT_STUDENTS),
    (list(LORA_INIT_MISTAKES) + [v.property for v in LORA_FORWARD_MISTAKES + LORA_MERGE_MISTAKES]
     + ["the correction is added twice after merge"], LORA_STUDENTS),
    ([v.property for v in DPO_MISTAKES] + ["gradients flow through the reference model"], DPO_STUDENTS),
    ([v.property for v in ADVANTAGE_MISTAKES], ADVANTAGE_STUDENTS),
])
def test_every_row_of_each_table_has_a_student_and_there_are_at_least_six(table, students):
    assert sorted(table) == sorted(students) and len(table) >= 6


VALID = [(check_sft_targets, sft_loop), (check_sft_targets, sft_masked_fill), (check_sft_targets, sft),
         (check_lora_layer, lora_class()), (check_lora_layer, lora_class(as_linear=True)),
         (check_lora_layer, lora_class(init_a=lambda t: nn.init.normal_(t, std=0.02))),
         (check_dpo_loss, dpo), (check_dpo_loss, dpo_cross_entropy), (check_dpo_loss, dpo_library),
         (check_group_advantages, lambda r, s: adv(r, s)), (check_group_advantages, adv_loop),
         (check_group_advantages, adv_clamp), (check_group_advantages, adv_where)]


@pytest.mark.parametrize("checker, student", VALID, ids=[f"{c.__name__}:{i}" for i, (c, _) in enumerate(VALID)])
def test_valid_alternatives_pass(checker, student):
    result = checker(student)
    assert result, str(result)
    assert str(result).startswith("PASSED")


# Two mistakes at once: a wrong centre and a wrong scale (posttrain._advantage_pairs), named together.
TWO_ADVANTAGE_MISTAKES = [
    (lambda r, s: adv(r, s, centre="axis0", scale="axis0"), "two mistakes: centred across prompts (the mean over the "
     "wrong axis); and normalised by the std across prompts (the wrong axis)"),
    (lambda r, s: adv(r, s, centre="median", scale="population"), "two mistakes: centred on the median, not the mean; "
     "and the population std (over G) where the sample std (over G - 1) is asked"),
    (lambda r, s: (r - r.mean()) / (r.std(unbiased=False) + 1e-4) if s else r - r.mean(), "two mistakes: centred and "
     "normalised over the whole batch, not each group; and the population std (over G) where the sample std (over "
     "G - 1) is asked"),
]


@pytest.mark.parametrize("student, name", [
    (lambda *a: dpo(*a[:4], 0.3), "beta fixed at 0.3, not the beta argument"),
    (lambda *a: dpo(*a, mean=True, reduce="sum"), "two mistakes: log-probs averaged over the answer's tokens, not "
     "summed; and summed over the pairs instead of averaged"),
    (lambda *a: dpo(*a, ref_swapped=True, logsig=False), "two mistakes: the reference's chosen and rejected log-probs "
     "swapped; and the log-sigmoid is missing")])
def test_dpo_fitted_beta_and_two_mistakes_at_once_are_named(student, name):
    result = check_dpo_loss(student)
    assert not result and result.property == name, str(result)


@pytest.mark.parametrize("student, name", TWO_ADVANTAGE_MISTAKES)
def test_two_advantage_mistakes_at_once_are_both_named(student, name):
    result = check_group_advantages(student)
    assert not result and result.property == name, str(result)


def sft_in_place(ids, is_assistant):  # y is a view of ids: the -1 are written into the caller's ids
    y = ids[1:]
    y[~is_assistant[1:]] = -1
    return ids[:-1], y


@pytest.mark.parametrize("student, name", [
    (sft_in_place, "changes its input in place"),
    (lambda i, a: (i[:-1], torch.where(a[1:], i[1:].float(), -1.0)), "wrong dtype: token ids must be integers "
                                                                     "(torch.long)")])
def test_sft_targets_in_place_and_float_targets_are_named(student, name):
    result = check_sft_targets(student)
    assert not result and result.property == name, str(result)


def test_an_unknown_mistake_is_not_guessed_but_shows_the_first_difference():
    def two_swapped(ids, is_assistant):  # a mistake no table row makes: two targets of a reply swapped
        x, y = sft(ids, is_assistant)
        return x, torch.cat([y[:5], y[[6, 5]], y[7:]]) if len(y) > 7 else y  # (the checker also tries T = 2)

    result = check_sft_targets(two_swapped)
    assert result.property == UNKNOWN and "first differing element [5]: yours 11, expected 7" in str(result)
    result = check_group_advantages(lambda r, s: adv(r, s) * 1.5)
    assert result.property == UNKNOWN and "first differing element [0, 0]" in str(result)
    result = check_dpo_loss(lambda *a: dpo(*a) + 0.01)
    assert result.property == UNKNOWN and "difference" in str(result)


def test_placeholders_and_crashes_fail_cleanly():
    def todo(*args):
        raise NotImplementedError

    class Todo(nn.Module):
        def __init__(self, base, r, alpha):
            super().__init__()
            raise NotImplementedError

    for checker, student in ((check_sft_targets, todo), (check_lora_layer, Todo), (check_dpo_loss, todo),
                             (check_group_advantages, todo)):
        assert checker(student).property == "not implemented yet"
    assert check_group_advantages(lambda r, s: r @ r).property == "your code raised an exception"


@pytest.mark.parametrize("scale, name", [
    (lambda r, a: 2.0, "LoRA scale hard-coded to 2, whatever alpha and r are"),  # alpha / r = 2 at the first setting
    (lambda r, a: a // r, "LoRA scaled by alpha // rank (integer division)"),
    (lambda r, a: a / math.sqrt(r), "LoRA scaled by alpha / sqrt(rank) (rsLoRA's scale), not alpha / rank")])
def test_a_lora_scale_is_named_as_a_formula_of_alpha_and_r_read_off_several_settings(scale, name):
    result = check_lora_layer(lora_class(scale=scale))
    assert not result and result.property == name, str(result)


def test_a_crash_keeps_the_exercises_hint_and_a_rebuilt_crash_is_named():
    class Swapped(lora_class()):  # x @ B.T @ A.T: torch's error is exactly the rebuilt product's
        def forward(self, x):
            return self.base(x) + x @ self.lora_B.T @ self.lora_A.T * self.scale

    assert check_lora_layer(Swapped).property == "lora_B applied before lora_A (x @ B.T @ A.T)"
    result = check_lora_layer(type("Raises", (lora_class(),), {"forward": lambda self, x: {}["adapter"]}))
    assert result.property == "your code raised an exception" and result.hint == CRASH_HINT, str(result)
