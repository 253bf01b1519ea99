"""The held-out probe, round 21, post part. (Written by the round 21 post helper.)

Angle: cousins of the textbook mistakes (another constant, offset, axis), mistakes confined to part of the input,
combinations, and valid rows that look like cousins. This file: SFT targets and the LoRA layer; the DPO loss and
the group advantages are in heldout_probe_round21_post2.py (imported at the end).

Untuned (written before reading the checkers; judged): mistakes / caught / named / misnamed, valid passed, crashes
  check_sft_targets       15 / 14 / 12 / 0, valid 4/4, 0 crashes
  check_lora_layer        18 / 17 / 12 / 3, valid 3/3, 0 crashes
  check_dpo_loss          19 / 19 / 12 / 0, valid 3/3, 0 crashes
  check_group_advantages  19 / 19 / 14 / 0, valid 4/4, 0 crashes
  total                   71 / 69 / 50 (70 %) / 3, valid 14/14, 0 crashes
Misnamed: LoraMergeHalfScale ("merge forgets the scale"; it halves it), LoraBiasNotFrozen ("the base layer is not
frozen"; its weight is, its bias is not), LoraInvertedAndRandomB (names B's init only, no word of the r/alpha scale).
Not caught: sft_last_position_unmasked (no tested sequence ends outside a reply), LoraMergeTransposed (no square
base). (dpo_mean_over_T is not recognised; its first regex matched "not" case-insensitively, now fixed.)

Tuned: 71 / 71 / 70 (99 %) / 0 misnamed, valid 14/14, 0 crashes (sft 15/15/14, lora 18/18/18, dpo 19/19/19,
advantages 19/19/19). Left not named: sft_unshifted_when_long (the unshifted mask on long conversations only; the
checker says it does not recognise it and shows where it differs).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import mingpt.exercises as ex
from heldout_probe_models import ROUND, mistake, valid
import heldout_probe_round21_tokens  # noqa: F401  (earlier rounds registered first)

ROUND[0] = 21

IGN = -1


# ------------------------------------------------------------------------------------------ SFT targets
@mistake(ex.check_sft_targets, r"two|2|offset|misalign|align")
def sft_mask_shifted_by_two(ids, is_assistant):  # cousin: the mask moved by two positions instead of one
    x, y = ids[:-1], ids[1:].clone()
    keep = torch.cat([is_assistant[2:], is_assistant[-1:]])
    y[~keep] = IGN
    return x, y


@mistake(ex.check_sft_targets, r"two|2|length|shape|offset|x is not")  # "x is not ids[:-1]": true of x = ids[:-2]
def sft_targets_two_ahead(ids, is_assistant):  # cousin: x and y two apart (predicting the token after next)
    x, y = ids[:-2], ids[2:].clone()
    y[~is_assistant[2:]] = IGN
    return x, y


@mistake(ex.check_sft_targets, r"-100|ignore|fill|value|index")
def sft_ignore_minus_100(ids, is_assistant):  # cousin: PyTorch's default ignore_index, not the course's -1
    x, y = ids[:-1], ids[1:].clone()
    y[~is_assistant[1:]] = -100
    return x, y


@mistake(ex.check_sft_targets, r"zero|0|ignore|fill|value|index")
def sft_ignore_zero(ids, is_assistant):  # cousin: fills 0 (a real token id) instead of -1
    x, y = ids[:-1], ids[1:].clone()
    y[~is_assistant[1:]] = 0
    return x, y


@mistake(ex.check_sft_targets, r"last")
def sft_last_position_unmasked(ids, is_assistant):  # partial: the loop stops one short, last target never masked
    x, y = ids[:-1], ids[1:].clone()
    for t in range(len(y) - 1):
        if not is_assistant[t + 1]:
            y[t] = IGN
    return x, y


@mistake(ex.check_sft_targets, r"first")
def sft_first_position_unmasked(ids, is_assistant):  # partial: the loop starts at 1, first target never masked
    x, y = ids[:-1], ids[1:].clone()
    for t in range(1, len(y)):
        if not is_assistant[t + 1]:
            y[t] = IGN
    return x, y


@mistake(ex.check_sft_targets, r"input|both")
def sft_masks_x_too(ids, is_assistant):  # the inputs are masked as well (x holds -1s: an invalid token id)
    x, y = ids[:-1].clone(), ids[1:].clone()
    y[~is_assistant[1:]] = IGN
    x[~is_assistant[:-1]] = IGN
    return x, y


@mistake(ex.check_sft_targets, r"union|boundary|extra|either|too (few|many)|keeps|\|")  # names the | mask
def sft_mask_union(ids, is_assistant):  # cousin: keeps a target if either its own position or the next is assistant
    x, y = ids[:-1], ids[1:].clone()
    keep = is_assistant[1:] | is_assistant[:-1]
    y[~keep] = IGN
    return x, y


@mistake(ex.check_sft_targets, r"intersect|boundary|first assistant|both|too (few|many)|drops|&")  # the & mask
def sft_mask_intersection(ids, is_assistant):  # cousin: needs both positions assistant: drops each turn's first
    x, y = ids[:-1], ids[1:].clone()
    keep = is_assistant[1:] & is_assistant[:-1]
    y[~keep] = IGN
    return x, y


@mistake(ex.check_sft_targets, r"dtype|float|integer|long|type")
def sft_float_targets(ids, is_assistant):  # right values, float dtype (cross-entropy needs integer class ids)
    x, y = ids[:-1], ids[1:].clone().float()
    y[~is_assistant[1:]] = IGN
    return x, y


@mistake(ex.check_sft_targets, r"turn|later|prompt|first|multi")
def sft_only_first_prompt_masked(ids, is_assistant):  # partial: masks up to the first assistant token only
    x, y = ids[:-1], ids[1:].clone()
    first = int(is_assistant.nonzero()[0]) if is_assistant.any() else len(ids)
    y[: first - 1] = IGN
    return x, y


@mistake(ex.check_sft_targets, r"long|length|shift|align|unshift")
def sft_unshifted_when_long(ids, is_assistant):  # partial: the unshifted mask only for sequences longer than 8
    x, y = ids[:-1], ids[1:].clone()
    y[~(is_assistant[:-1] if len(ids) > 8 else is_assistant[1:])] = IGN
    return x, y


@mistake(ex.check_sft_targets, r"(?=.*(shift|align))(?=.*(-100|ignore|fill|value|also|other|more))")
def sft_unshifted_and_minus_100(ids, is_assistant):  # combination: unshifted mask and -100
    x, y = ids[:-1], ids[1:].clone()
    y[~is_assistant[:-1]] = -100
    return x, y


@mistake(ex.check_sft_targets, r"in.place|modif|input|clone|alias")
def sft_masks_ids_in_place(ids, is_assistant):  # the caller's ids are overwritten (x is a view of them too)
    ids[1:][~is_assistant[1:]] = IGN
    return ids[:-1], ids[1:]


@mistake(ex.check_sft_targets, r"invert|assistant|user|prompt|opposite|swap")
def sft_inverted(ids, is_assistant):  # the textbook inversion (a control for the cousins above)
    x, y = ids[:-1], ids[1:].clone()
    y[is_assistant[1:]] = IGN
    return x, y


@valid(ex.check_sft_targets)
def sft_valid_mask_before_slicing(ids, is_assistant):  # looks unshifted, but masking ids then slicing [1:] is right
    masked = ids.clone()
    masked[~is_assistant] = IGN
    return ids[:-1], masked[1:]


@valid(ex.check_sft_targets)
def sft_valid_where(ids, is_assistant):
    return ids[:-1], torch.where(is_assistant[1:], ids[1:], torch.full_like(ids[1:], IGN))


@valid(ex.check_sft_targets)
def sft_valid_loop(ids, is_assistant):
    ys = [int(ids[t + 1]) if bool(is_assistant[t + 1]) else IGN for t in range(len(ids) - 1)]
    return ids[:-1].clone(), torch.tensor(ys, dtype=ids.dtype)


@valid(ex.check_sft_targets)
def sft_valid_roll(ids, is_assistant):  # rolls then drops the wrapped last element
    y = ids.roll(-1).masked_fill(~is_assistant.roll(-1), IGN)
    return ids[:-1], y[:-1]


# ------------------------------------------------------------------------------------------ LoRA layer
class LoRA(nn.Module):
    """The reference shape of a student's layer; each row overrides one piece."""

    def __init__(self, base, r, alpha):
        super().__init__()
        self.base, self.merged = base, False
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features))
        self.lora_B = nn.Parameter(torch.empty(base.out_features, r))
        self.r, self.alpha = r, alpha
        self.scale = self.make_scale(r, alpha)
        self.init_params()
        self.freeze(base)

    def make_scale(self, r, alpha):
        return alpha / r

    def init_params(self):
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B)

    def freeze(self, base):
        base.requires_grad_(False)

    def delta(self, x):
        return (x @ self.lora_A.T @ self.lora_B.T) * self.scale

    def forward(self, x):
        out = self.base(x)
        if self.merged:
            return out
        return out + self.delta(x)

    def merge_delta(self):
        return self.scale * (self.lora_B @ self.lora_A)

    @torch.no_grad()
    def merge(self):
        self.base.weight += self.merge_delta()
        self.merged = True


def both_normal(s):
    nn.init.normal_(s.lora_A, std=0.02)
    nn.init.normal_(s.lora_B, std=0.02)


def lora(name, **methods):
    return type(name, (LoRA,), methods)


mistake(ex.check_lora_layer, r"r/alpha|invert|scal")(lora("LoraScaleRoverAlpha", make_scale=lambda s, r, a: r / a))
mistake(ex.check_lora_layer, r"alpha|scal")(lora("LoraScaleAlpha", make_scale=lambda s, r, a: a))
mistake(ex.check_lora_layer, r"1/r|alpha|scal")(lora("LoraScaleOneOverR", make_scale=lambda s, r, a: 1 / r))
mistake(ex.check_lora_layer, r"integer|floor|//|division|round")(
    lora("LoraScaleFloorDiv", make_scale=lambda s, r, a: a // r))  # cousin: floor division (exact only if r | alpha)
mistake(ex.check_lora_layer, r"twice|square|double|scal")(
    lora("LoraScaleTwice", delta=lambda s, x: LoRA.delta(s, x) * s.scale))  # cousin: the scale applied twice
mistake(ex.check_lora_layer, r"merge")(
    lora("LoraMergeUnscaled", merge_delta=lambda s: s.lora_B @ s.lora_A))  # partial: merge forgets the scale
mistake(ex.check_lora_layer, r"half|0\.5|factor|times|wrong scale")(  # "forgets the scale" is a misname
    lora("LoraMergeHalfScale", merge_delta=lambda s: 0.5 * s.scale * (s.lora_B @ s.lora_A)))  # cousin: merge x 0.5
mistake(ex.check_lora_layer, r"merge.*(sign|subtract|negat)|(sign|subtract|negat).*merge|merge")(
    lora("LoraMergeSubtracts", merge_delta=lambda s: -s.scale * (s.lora_B @ s.lora_A)))
mistake(ex.check_lora_layer, r"twice|double|still|after|flag|merged")(
    lora("LoraMergeKeepsAdding", forward=lambda s, x: s.base(x) + s.delta(x)))  # correction added again after merge
mistake(ex.check_lora_layer, r"zero|init")(
    lora("LoraBRandom", init_params=lambda s: both_normal(s)))
mistake(ex.check_lora_layer, r"zero|init|grad|learn")(
    lora("LoraBothZero", init_params=lambda s: (nn.init.zeros_(s.lora_A), nn.init.zeros_(s.lora_B))))
mistake(ex.check_lora_layer, r"frozen|freeze|requires_grad|base|train")(
    lora("LoraBaseNotFrozen", freeze=lambda s, base: None))
mistake(ex.check_lora_layer, r"bias")(
    lora("LoraBiasNotFrozen", freeze=lambda s, base: base.weight.requires_grad_(False)))  # partial: bias still trains
mistake(ex.check_lora_layer, r"bias")(
    lora("LoraNoBaseBias", forward=lambda s, x: F.linear(x, s.base.weight) + (0 if s.merged else s.delta(x))))
mistake(ex.check_lora_layer, r"row|batch|first")(
    lora("LoraFirstRowOnly", delta=lambda s, x: torch.cat(
        [LoRA.delta(s, x[:1]), torch.zeros_like(LoRA.delta(s, x[1:]))], 0)))  # partial: only batch row 0 adapted
mistake(ex.check_lora_layer, r"transpos|merge|shape|layout")(
    lora("LoraMergeTransposed", merge_delta=lambda s: s.scale * (s.lora_A.T @ s.lora_B.T).T
         if s.lora_A.shape[1] != s.lora_B.shape[0] else s.scale * (s.lora_A.T @ s.lora_B.T)))  # transposed if square
mistake(ex.check_lora_layer, r"(?=.*(scal|r/alpha|invert))(?=.*(zero|init|also|other|more))")(
    lora("LoraInvertedAndRandomB", make_scale=lambda s, r, a: r / a,
         init_params=lambda s: both_normal(s)))
mistake(ex.check_lora_layer, r"last|position|token")(
    lora("LoraSkipsLastPosition", delta=lambda s, x: LoRA.delta(s, x) * torch.cat(
        [torch.ones_like(x[..., :-1, :1]), torch.zeros_like(x[..., -1:, :1])], -2) if x.dim() > 1
        else LoRA.delta(s, x)))  # partial: the adapter skips the last position


class LoraValidMergedWeight(LoRA):  # forward through the effective weight W + s B A: the same map
    def forward(self, x):
        if self.merged:
            return self.base(x)
        return F.linear(x, self.base.weight + self.scale * self.lora_B @ self.lora_A, self.base.bias)


class LoraValidLinearCalls(LoRA):  # F.linear twice, the scale applied to the input, merge via .data.add_
    def init_params(self):
        nn.init.normal_(self.lora_A, std=1 / self.r)
        nn.init.zeros_(self.lora_B)

    def delta(self, x):
        return F.linear(F.linear(x * self.scale, self.lora_A), self.lora_B)

    def merge(self):
        self.base.weight.data.add_(self.scale * self.lora_B.data @ self.lora_A.data)
        self.merged = True


class LoraValidLazyScale(LoRA):  # scale recomputed each call from alpha and r; the parameters' freezing per tensor
    def freeze(self, base):
        for p in base.parameters():
            p.requires_grad = False

    def delta(self, x):
        return torch.einsum("...i,ri,or->...o", x, self.lora_A, self.lora_B) * (self.alpha / self.r)


valid(ex.check_lora_layer)(LoraValidMergedWeight)
valid(ex.check_lora_layer)(LoraValidLinearCalls)
valid(ex.check_lora_layer)(LoraValidLazyScale)

import heldout_probe_round21_post2  # noqa: E402,F401  (the DPO loss and the group advantages)
