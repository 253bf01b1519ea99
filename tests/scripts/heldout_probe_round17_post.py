"""
The held-out probe, round 17, post part (this file: SFT targets and the LoRA layer; _post2: the DPO loss; _post3:
GRPO's group advantages). Written by the r17post helper before reading these checkers or their tables.

Angle: the mistakes COMMON in class, as a TA who has marked a hundred submissions of each exercise would list them,
most frequent first, in the surface forms different students write (loops, masked_fill, torch.where, helpers,
F.cross_entropy), with 2-3 double slips per checker; valid rows are the correct solutions other students write.

Untuned counts (mistakes / caught / named / misnamed, valid passed / valid), named by judgment; the probe's own
regexes matched 64 before four widenings, each commented on its line, where the message names the cause:
    check_sft_targets        16 / 16 / 16 / 0,   3 / 3
    check_lora_layer         17 / 17 / 17 / 0,   3 / 3
    check_dpo_loss           19 / 19 / 19 / 0,   3 / 3   (dpo_nll_as_logp: "the sign is swapped (chosen and rejected
                                                          exchanged)"; the sign is right, the parenthesis another cause)
    check_group_advantages   17 / 17 / 16 / 0,   4 / 4   (adv_biased_no_eps not recognised)
    total                    69 / 69 / 68 / 0,  13 / 13
After tuning: 69 / 69 / 69 / 0, 13 / 13 (the population std with no eps as two mistakes; x = ids with y padded by a
-1 named as one slip, "x and y kept at length T"; the swapped-sign row's message also names negated log-probs).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

import mingpt.exercises as ex
from heldout_probe_models import ROUND, cls_with, mistake, valid
import heldout_probe_round16_post  # noqa: F401  (earlier rounds registered first)

ROUND[0] = 17
IGNORE = -1


# ---------------------------------------------------------------------------------------------------- SFT targets
# The mistakes a TA sees most in Exercise 9.1, most frequent first, in the forms different students write them.

@mistake(ex.check_sft_targets, r"shift|mask.*(align|offset|position)|is_assistant\[1")
def sft_mask_not_shifted(ids, is_assistant):
    x, y = ids[:-1], ids[1:].clone()
    y[~is_assistant[:-1]] = IGNORE  # the mask of the input position, not of the predicted token
    return x, y


@mistake(ex.check_sft_targets, r"shift|mask.*(align|offset|position)")
def sft_mask_not_shifted_loop(ids, is_assistant):
    x = ids[:-1]
    y = torch.empty(len(ids) - 1, dtype=torch.long)
    for t in range(len(ids) - 1):
        y[t] = ids[t + 1] if is_assistant[t] else -1
    return x, y


@mistake(ex.check_sft_targets, r"shift|mask.*(align|offset|position)")
def sft_mask_rolled(ids, is_assistant):
    mask = torch.roll(is_assistant, 1)[1:]  # rolled the wrong way: is_assistant[:-1] again
    x, y = ids[:-1], ids[1:].clone()
    y[~mask] = -1
    return x, y


@mistake(ex.check_sft_targets, r"target.*(shift|not shifted)|shift")
def sft_targets_not_shifted(ids, is_assistant):
    x = ids[:-1]
    y = ids[:-1].clone()
    y[~is_assistant[1:]] = -1
    return x, y


@mistake(ex.check_sft_targets, r"invert|revers|user|opposite|flipped|the assistant.*masked")
def sft_mask_inverted(ids, is_assistant):
    x, y = ids[:-1], ids[1:].clone()
    y[is_assistant[1:]] = IGNORE  # masks the answer, keeps the question
    return x, y


@mistake(ex.check_sft_targets, r"no mask|not masked|every|all tokens|mask.*missing|unmasked"
         r"|nothing is masked")  # widened after the untuned run: "nothing is masked" names it
def sft_no_mask(ids, is_assistant):
    return ids[:-1], ids[1:]


@mistake(ex.check_sft_targets, r"\b0\b|zero|ignore|-1|IGNORE_INDEX")
def sft_masked_with_zero(ids, is_assistant):
    keep = is_assistant[1:].long()
    return ids[:-1], ids[1:] * keep  # masked positions become token 0, trained on


@mistake(ex.check_sft_targets, r"-100|ignore|IGNORE_INDEX|-1")
def sft_minus_100(ids, is_assistant):
    y = ids[1:].clone()
    y[~is_assistant[1:]] = -100  # Hugging Face's ignore index, not the course's -1
    return ids[:-1], y


@mistake(ex.check_sft_targets, r"in.?place|modif|mutat|clone|view|input")
def sft_no_clone(ids, is_assistant):
    x = ids[:-1]
    y = ids[1:]  # a view of ids: writing -1 into it changes ids, and x (another view) with it
    y[~is_assistant[1:]] = -1
    return x, y


@mistake(ex.check_sft_targets, r"x.*(length|shape|ids\[:-1\]|last)|shape|length|size")
def sft_x_full_length(ids, is_assistant):
    y = ids[1:].clone()
    y[~is_assistant[1:]] = -1
    return ids, y  # x keeps the last token


@mistake(ex.check_sft_targets, r"swap|x and y|revers|shift.*(wrong|other)|direction")
def sft_x_y_swapped(ids, is_assistant):
    x = ids[1:]
    y = ids[:-1].clone()
    y[~is_assistant[:-1]] = -1
    return x, y


@mistake(ex.check_sft_targets, r"dtype|long|float|integer|type")
def sft_float_targets(ids, is_assistant):
    y = torch.where(is_assistant[1:], ids[1:].float(), torch.tensor(-1.0))
    return ids[:-1], y


@mistake(ex.check_sft_targets, r"shift|-100|ignore|mask")  # double slip: unshifted mask and -100
def sft_unshifted_and_minus_100(ids, is_assistant):
    y = ids[1:].clone()
    y[~is_assistant[:-1]] = -100
    return ids[:-1], y


@mistake(ex.check_sft_targets, r"shift")  # double slip: neither targets nor mask shifted
def sft_nothing_shifted(ids, is_assistant):
    y = ids[:-1].clone()
    y[~is_assistant[:-1]] = -1
    return ids[:-1], y


@mistake(ex.check_sft_targets, r"invert|revers|user|opposite|zero|\b0\b|ignore")  # double: inverted, masked with 0
def sft_inverted_and_zero(ids, is_assistant):
    y = ids[1:].masked_fill(is_assistant[1:], 0)
    return ids[:-1], y


@mistake(ex.check_sft_targets, r"shape|length|size|pad"
         r"|x is not ids\[:-1\]")  # widened after the untuned run: x keeping the last token is this slip
def sft_padded_to_full_length(ids, is_assistant):
    # keeps T positions like a pretraining block: x = ids, y = ids[1:] + [-1]
    y = torch.cat([ids[1:], torch.tensor([-1])])
    y[~torch.cat([is_assistant[1:], torch.tensor([False])])] = -1
    return ids, y


@valid(ex.check_sft_targets)
def sft_where(ids, is_assistant):
    return ids[:-1], torch.where(is_assistant[1:], ids[1:], torch.full_like(ids[1:], IGNORE))


@valid(ex.check_sft_targets)
def sft_loop(ids, is_assistant):
    targets = []
    for t in range(1, len(ids)):
        targets.append(int(ids[t]) if bool(is_assistant[t]) else -1)
    return ids[:-1].clone(), torch.tensor(targets, dtype=torch.long)


@valid(ex.check_sft_targets)
def sft_masked_fill_eq_false(ids, is_assistant):
    y = ids.clone()[1:].masked_fill(is_assistant[1:] == False, -1)  # noqa: E712 (a student's spelling)
    return ids[:-1], y


# ---------------------------------------------------------------------------------------------------- LoRA layer
class _Lora(nn.Module):
    """A correct solution in the notebook's skeleton; the mistakes below replace one method each."""

    def __init__(self, base, r, alpha):
        super().__init__()
        self.base, self.merged = base, False
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features))
        self.lora_B = nn.Parameter(torch.empty(base.out_features, r))
        self.scale = alpha / r
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B)
        base.requires_grad_(False)

    def forward(self, x):
        out = self.base(x)
        if self.merged:
            return out
        return out + (x @ self.lora_A.T @ self.lora_B.T) * self.scale

    @torch.no_grad()
    def merge(self):
        self.base.weight += self.scale * (self.lora_B @ self.lora_A)
        self.merged = True


def _init_with(body):
    def __init__(self, base, r, alpha):
        nn.Module.__init__(self)
        self.base, self.merged = base, False
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features))
        self.lora_B = nn.Parameter(torch.empty(base.out_features, r))
        body(self, base, r, alpha)
    return __init__


def _b_random(self, base, r, alpha):
    self.scale = alpha / r
    nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
    nn.init.kaiming_uniform_(self.lora_B, a=math.sqrt(5))  # B random too: the fresh layer is not the base
    base.requires_grad_(False)


mistake(ex.check_lora_layer, r"B.*(zero|init)|zero|init|start")(cls_with(_Lora, __init__=_init_with(_b_random)))


def _both_zero(self, base, r, alpha):
    self.scale = alpha / r
    nn.init.zeros_(self.lora_A)  # both zero: neither ever gets a gradient
    nn.init.zeros_(self.lora_B)
    base.requires_grad_(False)


mistake(ex.check_lora_layer, r"A.*(random|zero|init)|init|gradient")(cls_with(_Lora, __init__=_init_with(_both_zero)))


def _swapped_init(self, base, r, alpha):
    self.scale = alpha / r
    nn.init.zeros_(self.lora_A)
    nn.init.kaiming_uniform_(self.lora_B, a=math.sqrt(5))  # A and B's inits swapped
    base.requires_grad_(False)


mistake(ex.check_lora_layer, r"init|swap|A.*(zero|random)|B.*(zero|random)")(
    cls_with(_Lora, __init__=_init_with(_swapped_init)))


def _scale_r_over_alpha(self, base, r, alpha):
    self.scale = r / alpha
    nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
    nn.init.zeros_(self.lora_B)
    base.requires_grad_(False)


mistake(ex.check_lora_layer, r"scal|alpha|r / alpha|invert")(cls_with(_Lora, __init__=_init_with(_scale_r_over_alpha)))


def _scale_alpha(self, base, r, alpha):
    self.scale = alpha  # forgot / r
    nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
    nn.init.zeros_(self.lora_B)
    base.requires_grad_(False)


mistake(ex.check_lora_layer, r"scal|alpha|/ ?r")(cls_with(_Lora, __init__=_init_with(_scale_alpha)))


def _forward_no_scale(self, x):
    return self.base(x) if self.merged else self.base(x) + x @ self.lora_A.t() @ self.lora_B.t()


mistake(ex.check_lora_layer, r"scal|alpha")(cls_with(_Lora, forward=_forward_no_scale))


def _not_frozen(self, base, r, alpha):
    self.scale = alpha / r
    nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
    nn.init.zeros_(self.lora_B)  # base.requires_grad_(False) forgotten


mistake(ex.check_lora_layer, r"fr[oe]+z|requires_grad|trainable|base.*(train|grad)")(
    cls_with(_Lora, __init__=_init_with(_not_frozen)))


@torch.no_grad()
def _merge_no_scale(self):
    self.base.weight += self.lora_B @ self.lora_A
    self.merged = True


mistake(ex.check_lora_layer, r"merge.*scal|scal")(cls_with(_Lora, merge=_merge_no_scale))


@torch.no_grad()
def _merge_no_flag(self):
    self.base.weight += self.scale * (self.lora_B @ self.lora_A)  # merged never set: forward adds it again


mistake(ex.check_lora_layer, r"twice|double|again|merged|flag")(cls_with(_Lora, merge=_merge_no_flag))


def _forward_ignores_flag(self, x):
    return self.base(x) + self.scale * (x @ self.lora_A.T) @ self.lora_B.T  # after merge: correction counted twice


mistake(ex.check_lora_layer, r"twice|double|again|merged|flag")(cls_with(_Lora, forward=_forward_ignores_flag))


@torch.no_grad()
def _merge_transposed(self):
    self.base.weight += self.scale * (self.lora_A.T @ self.lora_B.T)  # (in, out): the transpose of B A
    self.merged = True


mistake(ex.check_lora_layer, r"transpos|shape|merge|B ?@ ?A|order")(cls_with(_Lora, merge=_merge_transposed))


@torch.no_grad()
def _merge_subtracts(self):
    self.base.weight -= self.scale * self.lora_B @ self.lora_A
    self.merged = True


mistake(ex.check_lora_layer, r"sign|subtract|minus|negat|merge")(cls_with(_Lora, merge=_merge_subtracts))


def _integer_scale(self, base, r, alpha):
    self.scale = alpha // r  # floor division: 3 // 2 == 1
    nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
    nn.init.zeros_(self.lora_B)
    base.requires_grad_(False)


mistake(ex.check_lora_layer, r"scal|integer|floor|//|alpha")(cls_with(_Lora, __init__=_init_with(_integer_scale)))


def _forward_scales_all(self, x):
    out = self.base(x)
    if self.merged:
        return out
    return (out + x @ self.lora_A.T @ self.lora_B.T) * self.scale  # the base output scaled too


mistake(ex.check_lora_layer, r"scal|base")(cls_with(_Lora, forward=_forward_scales_all))


def _forward_no_bias(self, x):
    out = x @ self.base.weight.T  # the base layer's bias forgotten
    if self.merged:
        return out
    return out + (x @ self.lora_A.T @ self.lora_B.T) * self.scale


mistake(ex.check_lora_layer, r"bias")(cls_with(_Lora, forward=_forward_no_bias))


def _b_random_no_scale(self, base, r, alpha):  # double slip: B random and no alpha / r
    self.scale = 1.0
    nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
    nn.init.normal_(self.lora_B, std=0.02)
    base.requires_grad_(False)


mistake(ex.check_lora_layer, r"B.*(zero|init)|zero|init|scal")(cls_with(_Lora, __init__=_init_with(_b_random_no_scale)))


class LoraUnfrozenMergeNoScale(_Lora):  # double slip: base not frozen and merge without the scale
    def __init__(self, base, r, alpha):
        super().__init__(base, r, alpha)
        base.requires_grad_(True)

    @torch.no_grad()
    def merge(self):
        self.base.weight.add_(self.lora_B @ self.lora_A)
        self.merged = True


mistake(ex.check_lora_layer, r"fr[oe]+z|requires_grad|trainable|scal")(LoraUnfrozenMergeNoScale)


class LoraEinsum(_Lora):
    def forward(self, x):
        out = self.base(x)
        if not self.merged:
            out = out + self.scale * torch.einsum("...i,ri,or->...o", x, self.lora_A, self.lora_B)
        return out

    @torch.no_grad()
    def merge(self):
        self.base.weight.add_(torch.einsum("or,ri->oi", self.lora_B, self.lora_A), alpha=self.scale)
        self.merged = True


valid(ex.check_lora_layer)(LoraEinsum)


class LoraLinearCalls(_Lora):
    def forward(self, x):
        import torch.nn.functional as F
        if self.merged:
            return self.base(x)
        h = F.linear(x, self.lora_A)  # (..., r)
        return self.base(x) + self.scale * F.linear(h, self.lora_B)

    def merge(self):
        with torch.no_grad():
            self.base.weight.data = self.base.weight.data + (self.lora_B @ self.lora_A) * self.scale
        self.merged = True


valid(ex.check_lora_layer)(LoraLinearCalls)


class LoraDeltaWeight(_Lora):
    def delta(self):
        return self.scale * self.lora_B @ self.lora_A

    def forward(self, x):
        import torch.nn.functional as F
        w = self.base.weight if self.merged else self.base.weight + self.delta()
        return F.linear(x, w, self.base.bias)

    @torch.no_grad()
    def merge(self):
        self.base.weight.copy_(self.base.weight + self.delta())
        self.merged = True


valid(ex.check_lora_layer)(LoraDeltaWeight)


import heldout_probe_round17_post2  # noqa: E402,F401
