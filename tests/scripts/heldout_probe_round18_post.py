"""The held-out probe, round 18, post part (SFT targets, LoRA, DPO, group advantages; _post2 holds DPO and the
advantages). Angle: look-alikes and hidden bugs (a scale equal to another on the default sizes, a mask off by one
that looks like a shift, cross_entropy's -log p that looks like chosen/rejected swapped, bugs only for B > 1, square
layers, token id 0, large rewards), double slips, and valid code that looks wrong.

Untuned (written before reading the checkers; judged): mistakes / caught / named / misnamed, valid passed / valid,
crashes:
  check_sft_targets        15 / 15 / 14 / 0,  3 / 3, 0   (not named: the mask rolled the wrong way, roll(1))
  check_lora_layer         20 / 20 / 20 / 0,  3 / 3, 0
  check_dpo_loss           18 / 18 / 18 / 0,  3 / 3, 0   (cross_entropy's sign named as "chosen and rejected
                                                          exchanged": the same output, a fair name for the sign)
  check_group_advantages   17 / 16 / 14 / 0,  3 / 3, 0   (not caught: the one-pass variance E[r^2] - E[r]^2, wrong
                                                          for large rewards; not named: no centring when
                                                          normalising, the std of |centred|)
  total                    70 / 69 / 66 / 0, 12 / 12, 0   (94 % named)

Tuned: check_sft_targets 15 / 15 / 15 / 0, 3 / 3; check_lora_layer 20 / 20 / 20 / 0, 3 / 3; check_dpo_loss 18 / 18 /
18 / 0, 3 / 3; check_group_advantages 17 / 17 / 16 / 0, 3 / 3 (the std of |centred| rightly not named); in all 70 /
70 / 69 / 0, 12 / 12, 0 crashes. Mechanisms: sft_mistakes.py names the mask shifted the wrong way (is_assistant[t-1],
rolled or padded); advantages.py tests a reward batch shifted by 10^4 (advantages are shift-invariant), names the
one-pass variance E[r^2] - E[r]^2 (four forms) and, as a fact, "right for small rewards, wrong for large ones", and
names any slip of its table confined to one branch of normalize_std.
"""

from __future__ import annotations

from heldout_probe_models import ROUND
import heldout_probe_round18_tokens  # noqa: F401  (earlier rounds registered first)

ROUND[0] = 18

import math  # noqa: E402

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import mingpt.exercises as ex  # noqa: E402
from heldout_probe_models import mistake, valid  # noqa: E402


# ------------------------------------------------------------------------------------------ SFT targets
@mistake(ex.check_sft_targets, r"shift|align|off.by.one|mask")
def sft18_mask_unshifted(ids, is_assistant):  # the mask of the input position, not of the predicted token
    x, y = ids[:-1], ids[1:].clone()
    y[~is_assistant[:-1]] = -1
    return x, y


@mistake(ex.check_sft_targets, r"roll|wrap|shift|direction|align")
def sft18_roll_wrong_way(ids, is_assistant):  # roll(1) instead of roll(-1): shifted the wrong way and wraps around
    x, y = ids[:-1], ids[1:].clone()
    y[~is_assistant.roll(1)[:-1]] = -1
    return x, y


@mistake(ex.check_sft_targets, r"in.place|mutat|clone|input|alias|view")
def sft18_no_clone(ids, is_assistant):  # y is a view of ids: writing -1 also changes ids and x
    x, y = ids[:-1], ids[1:]
    y[~is_assistant[1:]] = -1
    return x, y


@mistake(ex.check_sft_targets, r"invert|negat|opposite|user|prompt")
def sft18_inverted(ids, is_assistant):
    x, y = ids[:-1], ids[1:].clone()
    y[is_assistant[1:]] = -1
    return x, y


@mistake(ex.check_sft_targets, r"first|marker|both|boundary|and|previous")
def sft18_both_positions(ids, is_assistant):  # only assistant-to-assistant: misses the first answer token
    x, y = ids[:-1], ids[1:].clone()
    y[~(is_assistant[1:] & is_assistant[:-1])] = -1
    return x, y


@mistake(ex.check_sft_targets, r"or|after|end|extra|user|boundary|previous")
def sft18_either_position(ids, is_assistant):  # also trains on the token after the assistant's end
    x, y = ids[:-1], ids[1:].clone()
    y[~(is_assistant[1:] | is_assistant[:-1])] = -1
    return x, y


@mistake(ex.check_sft_targets, r"turn|multi|first|span|contiguous|after")
def sft18_single_turn(ids, is_assistant):  # assumes one answer: everything after the first assistant token
    x, y = ids[:-1], ids[1:].clone()
    start = int(is_assistant.nonzero()[0])
    y[: start - 1] = -1
    return x, y


@mistake(ex.check_sft_targets, r"-100|ignore|value|fill|-1")
def sft18_hf_ignore(ids, is_assistant):  # Hugging Face's -100, not this course's -1
    x, y = ids[:-1], ids[1:].clone()
    y[~is_assistant[1:]] = -100
    return x, y


@mistake(ex.check_sft_targets, r"last|end|final")
def sft18_last_dropped(ids, is_assistant):  # thinks the last target has nothing to predict
    x, y = ids[:-1], ids[1:].clone()
    y[~is_assistant[1:]] = -1
    y[-1] = -1
    return x, y


@mistake(ex.check_sft_targets, r"dtype|float|type|long|integer")
def sft18_float_targets(ids, is_assistant):  # torch.where with a float -1.0 promotes y to float
    return ids[:-1], torch.where(is_assistant[1:], ids[1:], -1.0)


@mistake(ex.check_sft_targets, r"swap|order|x and y|revers")
def sft18_swapped(ids, is_assistant):
    x, y = ids[:-1], ids[1:].clone()
    y[~is_assistant[1:]] = -1
    return y, x


@mistake(ex.check_sft_targets, r"mask|no.mask|everything|all|prompt|user")
def sft18_no_mask(ids, is_assistant):
    return ids[:-1], ids[1:].clone()


@mistake(ex.check_sft_targets, r"x|input|mask|both|ids\[:-1\]")
def sft18_x_masked_too(ids, is_assistant):  # also blanks the inputs (x) where the target is masked
    x, y = ids[:-1].clone(), ids[1:].clone()
    y[~is_assistant[1:]] = -1
    x[~is_assistant[1:]] = -1
    return x, y


@mistake(ex.check_sft_targets, r"0|zero|pad|value|fill|-1")
def sft18_zero_fill(ids, is_assistant):  # multiplies by the mask: 0 where it should be -1
    return ids[:-1], ids[1:] * is_assistant[1:]


@mistake(ex.check_sft_targets, r"two|shift|align|off.by.one|-100")
def sft18_unshifted_and_hf(ids, is_assistant):  # a double slip: the unshifted mask, filled with -100
    x, y = ids[:-1], ids[1:].clone()
    y[~is_assistant[:-1]] = -100
    return x, y


@valid(ex.check_sft_targets)
def sft18_valid_arith(ids, is_assistant):  # ids where assistant, -1 elsewhere, by arithmetic
    m = is_assistant[1:].long()
    return ids[:-1], ids[1:] * m - (1 - m)


@valid(ex.check_sft_targets)
def sft18_valid_loop(ids, is_assistant):
    ys = [int(ids[t + 1]) if bool(is_assistant[t + 1]) else -1 for t in range(len(ids) - 1)]
    return ids[:-1].clone(), torch.tensor(ys, dtype=ids.dtype)


@valid(ex.check_sft_targets)
def sft18_valid_roll(ids, is_assistant):  # roll(-1) then drop the wrapped last element: the same as [1:]
    y = ids.roll(-1).masked_fill(~is_assistant.roll(-1), -1)
    return ids[:-1], y[:-1]


# ------------------------------------------------------------------------------------------ LoRA
class Lora18(nn.Module):
    """The reference layer, with hooks a mistake overrides."""

    def __init__(self, base, r, alpha):
        super().__init__()
        self.base, self.merged = base, False
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features))
        self.lora_B = nn.Parameter(torch.empty(base.out_features, r))
        self.scale = self.get_scale(r, alpha)
        self.init_ab()
        self.freeze()

    def get_scale(self, r, alpha):
        return alpha / r

    def init_ab(self):
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B)

    def freeze(self):
        self.base.requires_grad_(False)

    def delta(self):
        return self.lora_B @ self.lora_A

    def forward(self, x):
        out = self.base(x)
        if self.merged:
            return out
        return out + (x @ self.lora_A.T @ self.lora_B.T) * self.scale

    @torch.no_grad()
    def merge(self):
        self.base.weight += self.scale * self.delta()
        self.merged = True


def lora_with(**methods):
    return type("LoRALinear", (Lora18,), methods)


mistake(ex.check_lora_layer, r"floor|integer|//|division|scale")(
    lora_with(get_scale=lambda self, r, alpha: alpha // r))  # equals alpha / r when r divides alpha
mistake(ex.check_lora_layer, r"invert|r.?/.?alpha|scale")(
    lora_with(get_scale=lambda self, r, alpha: r / alpha))  # equals alpha / r when r == alpha
mistake(ex.check_lora_layer, r"alpha|scale|1.?/.?r")(lora_with(get_scale=lambda self, r, alpha: 1 / r))
mistake(ex.check_lora_layer, r"sqrt|rs|scale")(
    lora_with(get_scale=lambda self, r, alpha: alpha / math.sqrt(r)))  # rsLoRA's scale, not this exercise's


def _init_swapped(self):  # A zero, B random: still a no-op at start, but not the contract
    nn.init.zeros_(self.lora_A)
    nn.init.kaiming_uniform_(self.lora_B, a=math.sqrt(5))


def _init_both_zero(self):  # nothing ever trains: both gradients are zero
    nn.init.zeros_(self.lora_A)
    nn.init.zeros_(self.lora_B)


def _init_both_random(self):  # the fresh layer no longer equals base
    nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
    nn.init.kaiming_uniform_(self.lora_B, a=math.sqrt(5))


mistake(ex.check_lora_layer, r"init|zero|swap|lora_A|\bA\b")(lora_with(init_ab=_init_swapped))
mistake(ex.check_lora_layer, r"init|zero|both|random|\bA\b")(lora_with(init_ab=_init_both_zero))
mistake(ex.check_lora_layer, r"init|zero|random|\bB\b")(lora_with(init_ab=_init_both_random))
mistake(ex.check_lora_layer, r"freez|frozen|requires_grad|base|trainable")(lora_with(freeze=lambda self: None))
mistake(ex.check_lora_layer, r"bias|freez|frozen|requires_grad|trainable")(
    lora_with(freeze=lambda self: self.base.weight.requires_grad_(False)))  # the bias stays trainable


@torch.no_grad()
def _merge_unscaled(self):
    self.base.weight += self.delta()
    self.merged = True


@torch.no_grad()
def _merge_no_flag(self):  # the correction is then added twice
    self.base.weight += self.scale * self.delta()


@torch.no_grad()
def _merge_transposed(self):  # A^T B^T is (in, out): runs only for a square base, and adds the transpose
    self.base.weight += self.scale * (self.lora_A.T @ self.lora_B.T)
    self.merged = True


def _merge_new_param(self):  # a new Parameter: the merged weight is trainable again
    self.base.weight = nn.Parameter(self.base.weight + self.scale * self.delta())
    self.merged = True


mistake(ex.check_lora_layer, r"merge.*scal|scal.*merge|alpha")(lora_with(merge=_merge_unscaled))
mistake(ex.check_lora_layer, r"twice|double|flag|merged|again")(lora_with(merge=_merge_no_flag))
mistake(ex.check_lora_layer, r"transpos|square|merge")(lora_with(merge=_merge_transposed))
mistake(ex.check_lora_layer, r"freez|frozen|requires_grad|trainable|parameter|merge")(lora_with(merge=_merge_new_param))


class _LoraInconsistent(Lora18):  # forward scales by r / alpha, merge by alpha / r: the same when r == alpha
    def forward(self, x):
        out = self.base(x)
        if self.merged:
            return out
        r, in_ = self.lora_A.shape
        return out + (x @ self.lora_A.T @ self.lora_B.T) * (r / (self.scale * r))


mistake(ex.check_lora_layer, r"invert|r.?/.?alpha|scale|forward")(_LoraInconsistent)


class _LoraCached(Lora18):  # caches B A on the first call: stale once A or B change
    def forward(self, x):
        if not hasattr(self, "_dw"):
            self._dw = self.delta().detach()
        out = self.base(x)
        return out if self.merged else out + self.scale * x @ self._dw.T


class _LoraBiasTwice(Lora18):  # folds the update into a second F.linear with the bias: bias added twice
    def forward(self, x):
        out = self.base(x)
        if self.merged:
            return out
        return out + F.linear(x, self.scale * self.delta(), self.base.bias)


class _LoraDropout(Lora18):  # PEFT's lora_dropout, 0.1, left in: random outputs in training mode
    def __init__(self, base, r, alpha):
        super().__init__(base, r, alpha)
        self.drop = nn.Dropout(0.1)

    def forward(self, x):
        out = self.base(x)
        if self.merged:
            return out
        return out + (self.drop(x) @ self.lora_A.T @ self.lora_B.T) * self.scale


class _LoraMergedIgnored(Lora18):  # forward never looks at the flag
    def forward(self, x):
        return self.base(x) + (x @ self.lora_A.T @ self.lora_B.T) * self.scale


class _LoraDetached(Lora18):  # a "no copy" optimisation that cuts the graph: A and B get no gradient
    def forward(self, x):
        out = self.base(x)
        if self.merged:
            return out
        return out + (x @ self.delta().detach().T) * self.scale


mistake(ex.check_lora_layer, r"cache|stale|second|chang|update")(_LoraCached)
mistake(ex.check_lora_layer, r"bias")(_LoraBiasTwice)
mistake(ex.check_lora_layer, r"dropout|random|determin|train")(_LoraDropout)
mistake(ex.check_lora_layer, r"twice|double|flag|merged|again")(_LoraMergedIgnored)
mistake(ex.check_lora_layer, r"grad|detach|graph")(_LoraDetached)


class _LoraShapes(nn.Module):  # A (in, r) and B (r, out): the math is right, the shapes are not the contract
    def __init__(self, base, r, alpha):
        super().__init__()
        self.base, self.merged, self.scale = base, False, alpha / r
        self.lora_A = nn.Parameter(torch.empty(base.in_features, r))
        self.lora_B = nn.Parameter(torch.zeros(r, base.out_features))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        base.requires_grad_(False)

    def forward(self, x):
        out = self.base(x)
        return out if self.merged else out + x @ self.lora_A @ self.lora_B * self.scale

    @torch.no_grad()
    def merge(self):
        self.base.weight += self.scale * (self.lora_A @ self.lora_B).T
        self.merged = True


mistake(ex.check_lora_layer, r"shape|transpos|lora_A|lora_B")(_LoraShapes)


class _LoraValidFused(Lora18):  # one F.linear with the summed weight each call
    def forward(self, x):
        w = self.base.weight if self.merged else self.base.weight + self.scale * self.delta()
        return F.linear(x, w, self.base.bias)


class _LoraValidEinsum(Lora18):  # einsum, the scale as a float buffer
    def __init__(self, base, r, alpha):
        super().__init__(base, r, alpha)
        self.register_buffer("scaling", torch.tensor(float(alpha) / r))

    def forward(self, x):
        out = self.base(x)
        if self.merged:
            return out
        return out + self.scaling * torch.einsum("...i,ri,or->...o", x, self.lora_A, self.lora_B)


class _LoraValidZeroB(Lora18):  # merge, then zero B instead of keeping a flag: forward adds 0 afterwards
    @torch.no_grad()
    def merge(self):
        self.base.weight.data += self.scale * self.delta()
        self.lora_B.zero_()


valid(ex.check_lora_layer)(_LoraValidFused)
valid(ex.check_lora_layer)(_LoraValidEinsum)
valid(ex.check_lora_layer)(_LoraValidZeroB)

import heldout_probe_round18_post2  # noqa: E402,F401
