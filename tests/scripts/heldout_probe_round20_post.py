"""The held-out probe, round 20, post part: convention transplants (TRL, PEFT, Hugging Face, PyTorch docs, numpy)
carried into the SFT-target, LoRA, DPO and group-advantage exercises, and correct code in those styles. This file:
SFT targets and LoRA; heldout_probe_round20_post2.py (imported at the end): DPO and group advantages. Written
before reading the checkers (black-box runs only) and counted untuned, judged:

    checker                 mistakes caught named misnamed  valid passed  crashes
    check_sft_targets             14     14    12        0      4      4        0
    check_lora_layer              15     15    13        1      4      4        0
    check_dpo_loss                16     16    15        0      3      3        0
    check_group_advantages        15     15    15        0      4      4        0
    total                         60     60    55        1     15     15        0   (92 % named)

Not named untuned: SFT without the <end> token, SFT with the <assistant> marker trained, LoRA forward through a weight
copied at init (merge changes nothing), DPO with TRL's label smoothing (cDPO). Misnamed: LoRA's merge scaling twice
(alpha/r = 2 on an identity base read as "2 * reference - input").

Tuned: 60 of 60 named (0 misnamed), 15 of 15 valid, 0 crashes. Mechanisms: sft_mistakes.py names the END dropped and
the marker trained by position too (a reply's last token, the token before a reply), not only by id; lora_merge.py
reads a merge's wrong scale off every (r, alpha) of SETTINGS as a formula (or a fixed number) before any affine
relation is tried; lora.py names a forward that after merge() reads the weight from before the merge (a copy);
dpo_mistakes.py names TRL's label_smoothing (cDPO) and loss_type='robust' at eps 0.1, 0.05 and 0.2."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import mingpt.exercises as ex
from heldout_probe_models import ROUND, mistake, valid
import heldout_probe_round20_tokens  # noqa: F401  (earlier rounds registered first)

ROUND[0] = 20

# ------------------------------------------------------------------------------------------ SFT targets
# The contract: fn(ids (T,), is_assistant (T,) bool) -> (x, y), x = ids[:-1], y = ids[1:] with -1 (IGNORE_INDEX)
# wherever the predicted token (ids[t+1]) is not the assistant's.


@mistake(ex.check_sft_targets, r"-100")
def sft_r20_hf_ignore(ids, is_assistant):  # Hugging Face / PyTorch's CrossEntropyLoss default
    x, y = ids[:-1], ids[1:].clone()
    y[~is_assistant[1:]] = -100
    return x, y


@mistake(ex.check_sft_targets, r"shift|length|shape|T-1|T - 1")
def sft_r20_hf_labels_unshifted(ids, is_assistant):  # HF: labels = input_ids, the model shifts inside
    labels = ids.clone()
    labels[~is_assistant] = -1
    return ids, labels


@mistake(ex.check_sft_targets, r"mask.*(shift|align|input|one)|is_assistant\[:-1\]|off by one|early|late")
def sft_r20_mask_not_shifted(ids, is_assistant):  # mask built on the inputs (HF's labels mask) then the ids shifted
    x, y = ids[:-1], ids[1:].clone()
    y[~is_assistant[:-1]] = -1
    return x, y


# widened: "loss on everything after the assistant's first token ... every later user turn" is this cause
@mistake(ex.check_sft_targets, r"user|after the first|first (assistant|reply|answer|turn)|later|every(thing| token) after")  # noqa: E501
def sft_r20_trl_completion_only(ids, is_assistant):  # TRL's completion-only collator: train on all after the 1st reply
    start = int(is_assistant.nonzero()[0])
    x, y = ids[:-1], ids[1:].clone()
    y[: start - 1] = -1
    return x, y


@mistake(ex.check_sft_targets, r"end|stop|eos")
def sft_r20_no_end_token(ids, is_assistant):  # the answer's tokens only, not the <end> after it
    a = is_assistant.clone()
    last = a & ~torch.cat([a[1:], torch.tensor([False])])  # the last token of each assistant span is its <end>
    a = a & ~last
    x, y = ids[:-1], ids[1:].clone()
    y[~a[1:]] = -1
    return x, y


@mistake(ex.check_sft_targets, r"marker|<assistant>|assistant token|header|template")
def sft_r20_marker_trained(ids, is_assistant):  # the <assistant> marker too (TRL's response template kept)
    a = is_assistant | torch.cat([is_assistant[1:], torch.tensor([False])])
    x, y = ids[:-1], ids[1:].clone()
    y[~a[1:]] = -1
    return x, y


@mistake(ex.check_sft_targets, r"invert|opposite|negat|user|swap")
def sft_r20_inverted(ids, is_assistant):
    x, y = ids[:-1], ids[1:].clone()
    y[is_assistant[1:]] = -1
    return x, y


@mistake(ex.check_sft_targets, r"\b0\b|zero|multipl")
def sft_r20_multiply_mask(ids, is_assistant):  # a loss-mask-as-weights habit: ids * mask
    return ids[:-1], ids[1:] * is_assistant[1:]


@mistake(ex.check_sft_targets, r"\bx\b|input")
def sft_r20_x_shifted(ids, is_assistant):
    y = torch.where(is_assistant[1:], ids[1:], torch.full_like(ids[1:], -1))
    return ids[1:], y


@mistake(ex.check_sft_targets, r"in.place|clone|modif|mutat|caller|copy")
def sft_r20_inplace(ids, is_assistant):  # y is a view of ids: the caller's ids are overwritten
    x, y = ids[:-1], ids[1:]
    y[~is_assistant[1:]] = -1
    return x, y


@mistake(ex.check_sft_targets, r"dtype|float|long|int")
def sft_r20_float_targets(ids, is_assistant):  # torch.where with a Python float
    y = torch.where(is_assistant[1:], ids[1:].float(), torch.tensor(-1.0))
    return ids[:-1], y


@mistake(ex.check_sft_targets, r"shape|length|roll|wrap|T-1|T - 1")
def sft_r20_roll_full_length(ids, is_assistant):  # torch.roll as the shift, keeping all T positions
    y = torch.roll(ids, -1).clone()
    y[~torch.roll(is_assistant, -1)] = -1
    return ids, y


@mistake(ex.check_sft_targets, r"first|both|input")
def sft_r20_both_assistant(ids, is_assistant):  # input and target both the assistant's: drops each reply's 1st token
    x, y = ids[:-1], ids[1:].clone()
    y[~(is_assistant[:-1] & is_assistant[1:])] = -1
    return x, y


@mistake(ex.check_sft_targets, r"-100|mask.*(shift|align)|off by one")
def sft_r20_hf_double(ids, is_assistant):  # double slip: HF's -100 and the mask on the inputs
    x, y = ids[:-1], ids[1:].clone()
    y[~is_assistant[:-1]] = -100
    return x, y


@valid(ex.check_sft_targets)
def sft_r20_valid_where(ids, is_assistant):
    return ids[:-1], torch.where(is_assistant[1:], ids[1:], torch.full_like(ids[1:], -1))


@valid(ex.check_sft_targets)
def sft_r20_valid_masked_fill(ids, is_assistant):
    return ids[:-1], ids[1:].masked_fill(~is_assistant[1:], -1)


@valid(ex.check_sft_targets)
def sft_r20_valid_hf_labels(ids, is_assistant):  # HF style: mask the labels first, shift after (correct order)
    labels = ids.clone()
    labels[~is_assistant] = -1
    return ids[:-1], labels[1:]


@valid(ex.check_sft_targets)
def sft_r20_valid_roll(ids, is_assistant):  # roll then drop the wrapped last position
    y = torch.roll(ids, -1)[:-1].clone()
    y[~torch.roll(is_assistant, -1)[:-1]] = -1
    return ids[:-1].clone(), y


# ------------------------------------------------------------------------------------------ LoRA
# The contract: cls(base: nn.Linear, r, alpha): lora_A (r, in), lora_B (out, r), forward = base(x) + alpha/r B A x,
# B zero-initialised, base frozen, merge() folds the correction into base.weight and then is not added again.


class LoRA(nn.Module):
    """The notebook's solution, with hooks to change one piece at a time."""

    def __init__(self, base, r, alpha):
        super().__init__()
        self.base, self.merged = base, False
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features))
        self.lora_B = nn.Parameter(torch.empty(base.out_features, r))
        self.scale = self.scaling(r, alpha)
        self.init()
        base.requires_grad_(False)

    def scaling(self, r, alpha):
        return alpha / r

    def init(self):
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B)

    def forward(self, x):
        out = self.base(x)
        if self.merged:
            return out
        return out + (x @ self.lora_A.T @ self.lora_B.T) * self.scale

    def delta(self):
        return self.scale * (self.lora_B @ self.lora_A)

    @torch.no_grad()
    def merge(self):
        self.base.weight += self.delta()
        self.merged = True


@mistake(ex.check_lora_layer, r"sqrt|rsLoRA")
class LoraR20RsLora(LoRA):  # PEFT's use_rslora=True
    def scaling(self, r, alpha):
        return alpha / math.sqrt(r)


@mistake(ex.check_lora_layer, r"scal|alpha")
class LoraR20AlphaOnly(LoRA):
    def scaling(self, r, alpha):
        return alpha


@mistake(ex.check_lora_layer, r"scal|invert|r ?/ ?alpha|upside")
class LoraR20RankOverAlpha(LoRA):
    def scaling(self, r, alpha):
        return r / alpha


@mistake(ex.check_lora_layer, r"integer|floor|//|int")
class LoraR20FloorDiv(LoRA):  # Python-2 habit: alpha // r
    def scaling(self, r, alpha):
        return alpha // r


@mistake(ex.check_lora_layer, r"zero|init")
class LoraR20AZeroBRandom(LoRA):  # the initialisations swapped: A zero, B random
    def init(self):
        nn.init.zeros_(self.lora_A)
        nn.init.kaiming_uniform_(self.lora_B, a=math.sqrt(5))


@mistake(ex.check_lora_layer, r"zero|init|B")
class LoraR20BothRandom(LoRA):  # PEFT's init_lora_weights=False (a debugging option) left on
    def init(self):
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        nn.init.kaiming_uniform_(self.lora_B, a=math.sqrt(5))


@mistake(ex.check_lora_layer, r"dropout|random|determin")
class LoraR20DropoutAlways(LoRA):  # PEFT's lora_dropout=0.1 on the input, copied into the exercise
    def forward(self, x):
        out = self.base(x)
        if self.merged:
            return out
        return out + (F.dropout(x, 0.1, training=True) @ self.lora_A.T @ self.lora_B.T) * self.scale


@mistake(ex.check_lora_layer, r"transpos|orient|B ?A|A\^?T|\(in, ?out\)|fan_in_fan_out")
class LoraR20Conv1DMerge(LoRA):  # Conv1D / fan_in_fan_out habit: the merged delta transposed
    @torch.no_grad()
    def merge(self):
        self.base.weight += (self.scale * (self.lora_B @ self.lora_A)).T.reshape(self.base.weight.shape)
        self.merged = True


@mistake(ex.check_lora_layer, r"merged|twice|double|again")
class LoraR20NoMergedFlag(LoRA):
    @torch.no_grad()
    def merge(self):
        self.base.weight += self.delta()


@mistake(ex.check_lora_layer, r"scal|merge")
class LoraR20MergeUnscaled(LoRA):
    @torch.no_grad()
    def merge(self):
        self.base.weight += self.lora_B @ self.lora_A
        self.merged = True


@mistake(ex.check_lora_layer, r"froz|freez|requires_grad|trainable")
class LoraR20BaseTrainable(LoRA):
    def __init__(self, base, r, alpha):
        super().__init__(base, r, alpha)
        base.requires_grad_(True)


@mistake(ex.check_lora_layer, r"bias")
class LoraR20NoBias(LoRA):  # F.linear(x, W) from a bias-free LLaMA habit
    def forward(self, x):
        out = F.linear(x, self.base.weight)
        if self.merged:
            return out
        return out + (x @ self.lora_A.T @ self.lora_B.T) * self.scale


@mistake(ex.check_lora_layer, r"cop|clone|merge|stale|base\.weight")
class LoraR20CachedWeight(LoRA):  # the base weight copied at init: merge then changes nothing the forward uses
    def __init__(self, base, r, alpha):
        super().__init__(base, r, alpha)
        self.W = base.weight.detach().clone()

    def forward(self, x):
        out = F.linear(x, self.W, self.base.bias)
        if self.merged:
            return out
        return out + (x @ self.lora_A.T @ self.lora_B.T) * self.scale


@mistake(ex.check_lora_layer, r"scal|merge")
class LoraR20ScaleTwiceInMerge(LoRA):  # merge multiplies a delta that already holds the scale by the scale again
    @torch.no_grad()
    def merge(self):
        self.base.weight += self.scale * self.delta()
        self.merged = True


@mistake(ex.check_lora_layer, r"sqrt|rsLoRA|scal|merge")
class LoraR20RsLoraForwardOnly(LoRA):  # double slip: rsLoRA in forward, alpha / r in merge
    def forward(self, x):
        out = self.base(x)
        if self.merged:
            return out
        r = self.lora_A.shape[0]
        return out + (x @ self.lora_A.T @ self.lora_B.T) * (self.scale * r / math.sqrt(r))


@valid(ex.check_lora_layer)
class LoraR20ValidPeftNames(nn.Module):  # PEFT's attribute names (base_layer, scaling), einsum forward
    def __init__(self, base, r, alpha):
        super().__init__()
        self.base_layer, self.merged, self.scaling = base, False, alpha / r
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        for p in base.parameters():
            p.requires_grad = False

    def forward(self, x):
        out = self.base_layer(x)
        if not self.merged:
            out = out + self.scaling * torch.einsum("...i,ri,or->...o", x, self.lora_A, self.lora_B)
        return out

    def merge(self):
        with torch.no_grad():
            self.base_layer.weight.add_(self.scaling * torch.einsum("or,ri->oi", self.lora_B, self.lora_A))
        self.merged = True


@valid(ex.check_lora_layer)
class LoraR20ValidGaussianA(LoRA):  # PEFT's init_lora_weights="gaussian": A ~ N(0, 1/r), B zero
    def init(self):
        nn.init.normal_(self.lora_A, std=1 / self.lora_A.shape[0])
        nn.init.zeros_(self.lora_B)


@valid(ex.check_lora_layer)
class LoraR20ValidDeltaForward(LoRA):  # forward through the delta weight: F.linear(x, W + (alpha/r) B A, b)
    def forward(self, x):
        if self.merged:
            return self.base(x)
        return F.linear(x, self.base.weight + self.delta(), self.base.bias)


@valid(ex.check_lora_layer)
class LoraR20ValidDataMerge(LoRA):  # merge through .data (no no_grad): the same numbers, no graph
    def merge(self):
        self.base.weight.data += (self.lora_B.data @ self.lora_A.data) * self.scale
        self.merged = True


import heldout_probe_round20_post2  # noqa: E402,F401  (this part's second file, registered after)
