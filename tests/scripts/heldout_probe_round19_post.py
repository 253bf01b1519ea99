"""The held-out probe, round 19, post part (SFT targets, LoRA, DPO, group advantages; DPO and advantages in _post2).

Angle: the grader's own set as closely as it can be guessed: a teacher's plausible buggy students (mask of the wrong
position, -100 or 0 for ignored targets, in-place writes through views, unregistered factors, missing super().__init__,
scale slips, merges that add nothing or twice, DPO reductions / masks / signs / beta / gradient flow / pairing layout /
double shift, advantages over the wrong axis, the population std, no eps, keepdim, float64, in-place) and valid
unusual code, written before reading the checkers.

Untuned (judged; mistakes / caught / named / misnamed, valid passed / valid, checker crashes):
  check_sft_targets       15 / 15 / 14 / 1, 3/3, 0  (misnamed: sft_r19_loop_short named 'wrong dtype', true only of
                                                      the empty output a T=2 input gives; the cause is a short loop)
  check_lora_layer        19 / 19 / 19 / 0, 3/3, 0  (one by a commented widening: the factors' shapes stated)
  check_dpo_loss          21 / 21 / 20 / 0, 3/3, 0  (not named: the double slip mean + no mask)
  check_group_advantages  17 / 17 / 14 / 0, 3/3, 0  (not named: eps = 0.1, dim 0 + population std, divided by the mean)
  total                   72 / 72 / 67 (93 %) / 1, 12/12, 0

Tuned: 72 / 72 / 72 (100 %) / 0, 12/12, 0. SFT: no dtype verdict on an empty output (a float torch.tensor([])),
and x and y one position short named (a loop over range(T - 2)); LoRA: a scale of alpha / in_features named as the
layer's width read as the rank (it was "a fixed r (7)"); DPO: log-probs averaged over the whole row (no mask, / T)
as a row and a part (so it is named with a slip of another part too); advantages: the group's mean as the
scale, every statistic over dim 0 alone and with each row of the table, and eps too large, fitted to the output and
named only when the reference with that eps reproduces every case.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import mingpt.exercises as ex
from heldout_probe_models import ROUND, mistake, valid
import heldout_probe_round19_tokens  # noqa: F401  (earlier rounds registered first)

ROUND[0] = 19

NEG = -1  # IGNORE_INDEX


# ------------------------------------------------------------------------------------------ SFT targets
@mistake(ex.check_sft_targets, r"shift|align|mask.*(current|input|t\b)|off.by.one|is_assistant\[:-1\]")
def sft_r19_mask_of_inputs(ids, is_assistant):  # the mask of the input position, not of the predicted token
    keep = is_assistant[:-1]
    return ids[:-1], torch.where(keep, ids[1:], torch.full_like(ids[1:], NEG))


@mistake(ex.check_sft_targets, r"ignore|-100|index")
def sft_r19_hf_ignore(ids, is_assistant):  # Hugging Face's -100
    y = ids[1:].clone()
    y[~is_assistant[1:]] = -100
    return ids[:-1], y


@mistake(ex.check_sft_targets, r"ignore|zero|0|index|pad")
def sft_r19_zero_fill(ids, is_assistant):  # multiplies by the mask: ignored targets become token 0
    return ids[:-1], ids[1:] * is_assistant[1:]


@mistake(ex.check_sft_targets, r"invert|negat|revers|user|prompt|opposite|complement")
def sft_r19_inverted(ids, is_assistant):
    return ids[:-1], ids[1:].masked_fill(is_assistant[1:], NEG)


@mistake(ex.check_sft_targets, r"in.?place|view|clone|alias|x\b|input")
def sft_r19_inplace_view(ids, is_assistant):  # y is a view of ids, so x (another view) changes too
    x, y = ids[:-1], ids[1:]
    y[~is_assistant[1:]] = NEG
    return x, y


@mistake(ex.check_sft_targets, r"order|swap|(x|y).*(y|x)")
def sft_r19_returns_y_x(ids, is_assistant):
    y = ids[1:].clone()
    y[~is_assistant[1:]] = NEG
    return y, ids[:-1]


@mistake(ex.check_sft_targets, r"slic|swap|revers|shift|direction|previous")
def sft_r19_slices_swapped(ids, is_assistant):  # x = ids[1:], y = ids[:-1]
    y = ids[:-1].clone()
    y[~is_assistant[:-1]] = NEG
    return ids[1:], y


@mistake(ex.check_sft_targets, r"input|x.*mask|mask.*x|both")
def sft_r19_masks_x_too(ids, is_assistant):
    x, y = ids[:-1].clone(), ids[1:].clone()
    x[~is_assistant[:-1]] = NEG
    y[~is_assistant[1:]] = NEG
    return x, y


@mistake(ex.check_sft_targets, r"first|marker|both|and|current|input|answer.*start|<assistant>")
def sft_r19_needs_both_assistant(ids, is_assistant):  # requires the input token to be the assistant's too
    keep = is_assistant[1:] & is_assistant[:-1]
    return ids[:-1], torch.where(keep, ids[1:], NEG)


@mistake(ex.check_sft_targets, r"loop|range|length|short|last|shape|off.by.one")
def sft_r19_loop_short(ids, is_assistant):  # the loop stops one early
    T = len(ids)
    xs, ys = [], []
    for t in range(T - 2):
        xs.append(int(ids[t]))
        ys.append(int(ids[t + 1]) if bool(is_assistant[t + 1]) else NEG)
    return torch.tensor(xs), torch.tensor(ys)


@mistake(ex.check_sft_targets, r"dtype|float|long|type")
def sft_r19_float_targets(ids, is_assistant):  # torch.where with a float scalar promotes
    return ids[:-1], torch.where(is_assistant[1:], ids[1:].float(), -1.0)


@mistake(ex.check_sft_targets, r"shape|batch|dim|unsqueeze")
def sft_r19_extra_dim(ids, is_assistant):
    y = ids[1:].clone()
    y[~is_assistant[1:]] = NEG
    return ids[:-1].unsqueeze(0), y.unsqueeze(0)


@mistake(ex.check_sft_targets, r"shift|align|roll|wrong way|previous")
def sft_r19_roll_wrong_way(ids, is_assistant):  # roll(+1) brings is_assistant[t-1], not [t+1]
    m = torch.roll(is_assistant, 1)[1:]
    y = ids[1:].clone()
    y[~m] = NEG
    return ids[:-1], y


@mistake(ex.check_sft_targets, r"shift|no shift|length|shape|T\b|next")
def sft_r19_no_shift(ids, is_assistant):  # the targets are the inputs themselves
    y = ids.clone()
    y[~is_assistant] = NEG
    return ids, y


@mistake(ex.check_sft_targets, r"ignore|-100|shift|align")  # double slip: -100 and the unshifted mask
def sft_r19_double_hf(ids, is_assistant):
    return ids[:-1], torch.where(is_assistant[:-1], ids[1:], torch.tensor(-100))


@valid(ex.check_sft_targets)
def sft_r19_valid_arith(ids, is_assistant):  # ids * m - (1 - m): -1 where m is 0
    m = is_assistant[1:].long()
    return ids[:-1], ids[1:] * m - (1 - m)


@valid(ex.check_sft_targets)
def sft_r19_valid_roll_left(ids, is_assistant):  # roll(-1)[:-1] is is_assistant[1:]
    m = is_assistant.roll(-1)[:-1]
    return ids[:-1].clone(), ids[1:].masked_fill(~m, NEG)


@valid(ex.check_sft_targets)
def sft_r19_valid_listcomp(ids, is_assistant):
    ys = [int(i) if a else NEG for i, a in zip(ids[1:].tolist(), is_assistant[1:].tolist())]
    return ids[:-1], torch.tensor(ys, dtype=ids.dtype)


# ------------------------------------------------------------------------------------------ LoRA
class LoraR19(nn.Module):
    """The reference shape of the exercise; mistakes below override one method or one knob."""
    a_init, b_zero, freeze = "kaiming", True, "all"

    def __init__(self, base, r, alpha):
        super().__init__()
        self.base, self.merged = base, False
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features))
        self.lora_B = nn.Parameter(torch.empty(base.out_features, r))
        self.scale = self.scaling(r, alpha)
        if self.a_init == "kaiming":
            nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        elif self.a_init == "zero":
            nn.init.zeros_(self.lora_A)
        if self.b_zero:
            nn.init.zeros_(self.lora_B)
        else:
            nn.init.normal_(self.lora_B, std=0.02)
        if self.freeze == "all":
            base.requires_grad_(False)
        elif self.freeze == "weight":
            base.weight.requires_grad_(False)

    def scaling(self, r, alpha):
        return alpha / r

    def delta(self):
        return self.scale * (self.lora_B @ self.lora_A)

    def forward(self, x):
        out = self.base(x)
        if self.merged:
            return out
        return out + self.scale * (x @ self.lora_A.T @ self.lora_B.T)

    @torch.no_grad()
    def merge(self):
        self.base.weight += self.delta()
        self.merged = True


def lora_with(name, **attrs):
    return type(name, (LoraR19,), attrs)


mistake(ex.check_lora_layer, r"init|zero|B|A|swap")(lora_with("LoraR19SwappedInit", a_init="zero", b_zero=False))
mistake(ex.check_lora_layer, r"init|zero|B|identity|base|fresh")(
    lora_with("LoraR19BothRandom", b_zero=False))
mistake(ex.check_lora_layer, r"scale|r ?/ ?alpha|invert")(
    lora_with("LoraR19RoverAlpha", scaling=lambda self, r, alpha: r / alpha))
mistake(ex.check_lora_layer, r"scale|alpha|/ ?r")(lora_with("LoraR19AlphaOnly", scaling=lambda self, r, alpha: alpha))
mistake(ex.check_lora_layer, r"scale|1|alpha")(lora_with("LoraR19NoScale", scaling=lambda self, r, alpha: 1.0))
mistake(ex.check_lora_layer, r"frozen|freeze|requires_grad|base|train")(lora_with("LoraR19NotFrozen", freeze="none"))
mistake(ex.check_lora_layer, r"bias|frozen|freeze|requires_grad")(lora_with("LoraR19BiasTrainable", freeze="weight"))
mistake(ex.check_lora_layer, r"scale|in_features|rank|r\b")(  # divides by the input width instead of the rank
    lora_with("LoraR19ScaleByIn", scaling=lambda self, r, alpha: alpha / self.lora_A.shape[1]))


class LoraR19MergeUnscaled(LoraR19):
    @torch.no_grad()
    def merge(self):
        self.base.weight += self.lora_B @ self.lora_A
        self.merged = True


class LoraR19MergeNoFlag(LoraR19):  # merges but keeps adding the correction in forward: counted twice
    @torch.no_grad()
    def merge(self):
        self.base.weight.add_(self.delta())


class LoraR19MergeIntoCopy(LoraR19):  # w is a clone: the base never changes
    @torch.no_grad()
    def merge(self):
        w = self.base.weight.clone()
        w += self.delta()
        self.merged = True


class LoraR19MergeSubtracts(LoraR19):
    @torch.no_grad()
    def merge(self):
        self.base.weight -= self.delta()
        self.merged = True


class LoraR19MergeNewParam(LoraR19):  # a fresh nn.Parameter requires grad: the base is trainable again
    def merge(self):
        with torch.no_grad():
            self.base.weight = nn.Parameter(self.base.weight + self.delta())
        self.merged = True


class LoraR19MergeTransposed(LoraR19):  # (A^T B^T) is (in, out): a crash unless square
    @torch.no_grad()
    def merge(self):
        self.base.weight += self.scale * (self.lora_A.T @ self.lora_B.T)
        self.merged = True


class LoraR19NoBias(LoraR19):  # F.linear with base.weight only: the bias is lost
    def forward(self, x):
        out = F.linear(x, self.base.weight)
        if self.merged:
            return out
        return out + self.scale * (x @ self.lora_A.T @ self.lora_B.T)


for _cls, _re in [(LoraR19MergeUnscaled, r"merge.*scale|scale.*merge"),
                  (LoraR19MergeNoFlag, r"twice|double|again|merged|flag"),
                  (LoraR19MergeIntoCopy, r"merge|base.*(unchanged|not)|copy|clone|in.?place"),
                  (LoraR19MergeSubtracts, r"sign|subtract|minus|unmerge|merge"),
                  (LoraR19MergeNewParam, r"frozen|requires_grad|freeze|trainable|Parameter"),
                  (LoraR19MergeTransposed, r"transpose|shape|merge|B ?@ ?A|order"),
                  (LoraR19NoBias, r"bias")]:
    mistake(ex.check_lora_layer, _re)(_cls)


class LoraR19PlainTensors(nn.Module):  # A and B plain tensors: not registered, no optimizer would see them
    def __init__(self, base, r, alpha):
        super().__init__()
        self.base, self.scale, self.merged = base, alpha / r, False
        base.requires_grad_(False)
        self.lora_A = torch.empty(r, base.in_features, requires_grad=True)
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.lora_B = torch.zeros(base.out_features, r, requires_grad=True)

    def forward(self, x):
        y = self.base(x)
        return y if self.merged else y + self.scale * F.linear(F.linear(x, self.lora_A), self.lora_B)

    @torch.no_grad()
    def merge(self):
        self.base.weight.add_(self.scale * self.lora_B @ self.lora_A)
        self.merged = True


class LoraR19PyList(nn.Module):  # the pair kept in a Python list: the Parameters are not registered
    def __init__(self, base, r, alpha):
        super().__init__()
        self.base, self.s, self.merged = base, alpha / r, False
        for p in base.parameters():
            p.requires_grad = False
        A = nn.Parameter(torch.empty(r, base.in_features))
        nn.init.kaiming_uniform_(A, a=math.sqrt(5))
        self.factors = [A, nn.Parameter(torch.zeros(base.out_features, r))]

    @property
    def lora_A(self):
        return self.factors[0]

    @property
    def lora_B(self):
        return self.factors[1]

    def forward(self, x):
        A, B = self.factors
        return self.base(x) + (0 if self.merged else self.s * (x @ A.T) @ B.T)

    def merge(self):
        A, B = self.factors
        with torch.no_grad():
            self.base.weight.add_(self.s * B @ A)
        self.merged = True


class LoraR19NoSuper(nn.Module):  # super().__init__() forgotten
    def __init__(self, base, r, alpha):
        self.base, self.scale, self.merged = base, alpha / r, False
        self.lora_A = nn.Parameter(torch.randn(r, base.in_features) / math.sqrt(base.in_features))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r))
        base.requires_grad_(False)

    def forward(self, x):
        return self.base(x) + (0 if self.merged else self.scale * x @ self.lora_A.T @ self.lora_B.T)

    @torch.no_grad()
    def merge(self):
        self.base.weight += self.scale * self.lora_B @ self.lora_A
        self.merged = True


class LoraR19StoredTransposed(nn.Module):  # A (in, r) and B (r, out): the right outputs, the wrong shapes
    def __init__(self, base, r, alpha):
        super().__init__()
        self.base, self.scale, self.merged = base, alpha / r, False
        base.requires_grad_(False)
        self.lora_A = nn.Parameter(torch.empty(base.in_features, r))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.lora_B = nn.Parameter(torch.zeros(r, base.out_features))

    def forward(self, x):
        return self.base(x) + (0 if self.merged else self.scale * (x @ self.lora_A @ self.lora_B))

    @torch.no_grad()
    def merge(self):
        self.base.weight += self.scale * (self.lora_A @ self.lora_B).T
        self.merged = True


for _cls, _re in [(LoraR19PlainTensors, r"regist|Parameter|plain|parameters\(\)"),
                  (LoraR19PyList, r"regist|Parameter|list|parameters\(\)"),
                  (LoraR19NoSuper, r"super|__init__|init"),
                  # widened: the name "lora_A (r, in) and lora_B (out, r) not found" states the shapes
                  (LoraR19StoredTransposed, r"shape|transpose|\(r, in\)")]:
    mistake(ex.check_lora_layer, _re)(_cls)


class LoraR19ValidLinears(nn.Module):  # PEFT style: A and B as bias-free nn.Linear, exposed as (r, in), (out, r)
    def __init__(self, base, r, alpha):
        super().__init__()
        self.base, self.scale, self.merged = base, alpha / r, False
        self.down = nn.Linear(base.in_features, r, bias=False)
        self.up = nn.Linear(r, base.out_features, bias=False)
        nn.init.zeros_(self.up.weight)
        base.requires_grad_(False)

    @property
    def lora_A(self):
        return self.down.weight

    @property
    def lora_B(self):
        return self.up.weight

    def forward(self, x):
        out = self.base(x)
        return out if self.merged else out + self.up(self.down(x)) * self.scale

    def merge(self):
        self.base.weight.data.add_(self.up.weight.data @ self.down.weight.data, alpha=self.scale)
        self.merged = True


class LoraR19ValidEinsumDelta(LoraR19):  # one F.linear with W + delta; merge via addmm_
    def forward(self, x):
        if self.merged:
            return self.base(x)
        return F.linear(x, self.base.weight + torch.einsum("or,ri->oi", self.lora_B, self.lora_A) * self.scale,
                        self.base.bias)

    @torch.no_grad()
    def merge(self):
        self.base.weight.addmm_(self.lora_B, self.lora_A, alpha=self.scale)
        self.merged = True


class LoraR19ValidNormalA(LoraR19):  # A from a small normal instead of Kaiming uniform: still random, B still zero
    a_init = "normal"

    def __init__(self, base, r, alpha):
        super().__init__(base, r, alpha)
        nn.init.normal_(self.lora_A, std=1 / r)


for _cls in [LoraR19ValidLinears, LoraR19ValidEinsumDelta, LoraR19ValidNormalA]:
    valid(ex.check_lora_layer)(_cls)

import heldout_probe_round19_post2  # noqa: F401,E402
