"""The held-out probe, round 16, post part 2: check_lora_layer (see heldout_probe_round16_post.py)."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import mingpt.exercises as ex
from heldout_probe_models import mistake, valid


class Lora(nn.Module):
    """The notebook's LoRALinear: the base class every row below changes in one place."""

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


# ============================================================================== check_lora_layer
@mistake(ex.check_lora_layer, r"shape|transpos|layout|\(in, ?r\)|\(r, ?in\)|\(r, ?out\)")
class LoraKerasLayout(Lora):  # Keras' x @ W: A stored (in, r), B (r, out)
    def __init__(self, base, r, alpha):
        super().__init__(base, r, alpha)
        self.lora_A = nn.Parameter(torch.empty(base.in_features, r))
        self.lora_B = nn.Parameter(torch.zeros(r, base.out_features))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))

    def forward(self, x):
        out = self.base(x)
        return out if self.merged else out + (x @ self.lora_A @ self.lora_B) * self.scale

    @torch.no_grad()
    def merge(self):
        self.base.weight += self.scale * (self.lora_A @ self.lora_B).T
        self.merged = True


@mistake(ex.check_lora_layer, r"merge.*(transpos|reshap|layout|scrambl)|transpos|reshap|fan.in.fan.out|conv1d")
class LoraMergeConv1D(Lora):  # HF GPT-2's Conv1D habit (in, out): the delta transposed, then reshaped to fit W
    @torch.no_grad()
    def merge(self):
        self.base.weight += self.scale * (self.lora_B @ self.lora_A).T.reshape(self.base.weight.shape)
        self.merged = True


@mistake(ex.check_lora_layer, r"scal|alpha|r ?/ ?alpha|invert")
class LoraScaleInverted(Lora):
    def __init__(self, base, r, alpha):
        super().__init__(base, r, alpha)
        self.scale = r / alpha


@mistake(ex.check_lora_layer, r"scal|alpha|/ ?r\b|rank")
class LoraScaleAlphaOnly(Lora):
    def __init__(self, base, r, alpha):
        super().__init__(base, r, alpha)
        self.scale = alpha


@mistake(ex.check_lora_layer, r"integer|floor|//|round|scal")
class LoraScaleFloorDiv(Lora):  # alpha // r: right whenever r divides alpha
    def __init__(self, base, r, alpha):
        super().__init__(base, r, alpha)
        self.scale = alpha // r


@mistake(ex.check_lora_layer, r"sqrt|rslora|scal|alpha")
class LoraRsScale(Lora):  # PEFT's use_rslora habit: alpha / sqrt(r)
    def __init__(self, base, r, alpha):
        super().__init__(base, r, alpha)
        self.scale = alpha / math.sqrt(r)


@mistake(ex.check_lora_layer, r"B.*(zero|init)|init|fresh|start|base")
class LoraBRandom(Lora):  # both matrices initialised like nn.Linear: the fresh layer is not the base
    def __init__(self, base, r, alpha):
        super().__init__(base, r, alpha)
        nn.init.kaiming_uniform_(self.lora_B, a=math.sqrt(5))


@mistake(ex.check_lora_layer, r"(A|B).*(zero|init|swap)|init|swap")
class LoraInitSwapped(Lora):  # A zero and B random: starts as the base, but not as the notebook says
    def __init__(self, base, r, alpha):
        super().__init__(base, r, alpha)
        nn.init.zeros_(self.lora_A)
        nn.init.kaiming_uniform_(self.lora_B, a=math.sqrt(5))


@mistake(ex.check_lora_layer, r"frozen|freez|requires_grad|trainable")
class LoraBaseNotFrozen(Lora):
    def __init__(self, base, r, alpha):
        super().__init__(base, r, alpha)
        base.requires_grad_(True)


@mistake(ex.check_lora_layer, r"bias|frozen|freez|requires_grad|trainable")
class LoraBiasNotFrozen(Lora):  # only the weight frozen: the bias still trains
    def __init__(self, base, r, alpha):
        super().__init__(base, r, alpha)
        base.bias.requires_grad = True


@mistake(ex.check_lora_layer, r"adapter|lora_[AB]|frozen|freez|requires_grad|trainable|no gradient")
class LoraEverythingFrozen(Lora):  # self.requires_grad_(False) where base.requires_grad_ was meant
    def __init__(self, base, r, alpha):
        super().__init__(base, r, alpha)
        self.requires_grad_(False)


@mistake(ex.check_lora_layer, r"gradient|grad|detach|no_grad|\.data")
class LoraDataInForward(Lora):  # .data in the forward: the adapters never get a gradient
    def forward(self, x):
        out = self.base(x)
        if self.merged:
            return out
        return out + (x @ self.lora_A.data.T @ self.lora_B.data.T) * self.scale


@mistake(ex.check_lora_layer, r"twice|double|again|merged|flag")
class LoraFlagNeverSet(Lora):  # merge folds the delta in but forward still adds it
    @torch.no_grad()
    def merge(self):
        self.base.weight += self.scale * (self.lora_B @ self.lora_A)


@mistake(ex.check_lora_layer, r"merge.*(no effect|not|discard|unchanged|lost|nothing)|out.of.place|"
                              r"weight (is )?(unchanged|not changed)")
class LoraMergeOutOfPlace(Lora):  # Tensor.add returns a new tensor: the base weight never changes
    @torch.no_grad()
    def merge(self):
        self.base.weight.add(self.scale * (self.lora_B @ self.lora_A))
        self.merged = True


@mistake(ex.check_lora_layer, r"replac|overw|instead of add|copy")
class LoraMergeOverwrites(Lora):
    @torch.no_grad()
    def merge(self):
        self.base.weight.copy_(self.scale * (self.lora_B @ self.lora_A))
        self.merged = True


@mistake(ex.check_lora_layer, r"merge.*scal|scal")
class LoraMergeUnscaled(Lora):
    @torch.no_grad()
    def merge(self):
        self.base.weight += self.lora_B @ self.lora_A
        self.merged = True


@mistake(ex.check_lora_layer, r"frozen|freez|requires_grad|trainable|new parameter|in.place")
class LoraMergeNewParameter(Lora):  # a new nn.Parameter after merging: requires_grad is True again
    @torch.no_grad()
    def merge(self):
        self.base.weight = nn.Parameter(self.base.weight + self.scale * (self.lora_B @ self.lora_A))
        self.merged = True


@mistake(ex.check_lora_layer, r"regist|parameter|optimi|module")
class LoraPlainTensors(Lora):  # tensors with requires_grad, not nn.Parameter: invisible to parameters()
    def __init__(self, base, r, alpha):
        nn.Module.__init__(self)
        self.base, self.merged, self.scale = base, False, alpha / r
        A = torch.empty(r, base.in_features)
        nn.init.kaiming_uniform_(A, a=math.sqrt(5))
        self.lora_A = A.requires_grad_()
        self.lora_B = torch.zeros(base.out_features, r, requires_grad=True)
        base.requires_grad_(False)


@mistake(ex.check_lora_layer, r"dropout|random|determin|eval|train")
class LoraFunctionalDropout(Lora):  # F.dropout's training=True default: noisy even in eval mode
    def forward(self, x):
        out = self.base(x)
        if self.merged:
            return out
        return out + (F.dropout(x, 0.1) @ self.lora_A.T @ self.lora_B.T) * self.scale


@mistake(ex.check_lora_layer, r"3.?d|batch|\.T|transpos|leading|shape|dim")
class LoraDotTOn3D(Lora):  # .T reverses every dim: right for (N, in), not for (B, T, in)
    def forward(self, x):
        out = self.base(x)
        if self.merged:
            return out
        return out + (self.lora_B @ self.lora_A @ x.T).T * self.scale


@mistake(ex.check_lora_layer, r"bias")
class LoraBiasTwice(Lora):  # the corrected weight through F.linear with the bias, plus base(x): bias counted twice
    def forward(self, x):
        out = self.base(x)
        if self.merged:
            return out
        return out + F.linear(x, self.scale * (self.lora_B @ self.lora_A), self.base.bias)


@valid(ex.check_lora_layer)
class LoraFLinear(Lora):
    def forward(self, x):
        out = self.base(x)
        if self.merged:
            return out
        return out + F.linear(F.linear(x, self.lora_A), self.lora_B) * self.scale


@valid(ex.check_lora_layer)
class LoraEinsumDataMerge(Lora):  # einsum forward; merge through .data (no autograd either way)
    def forward(self, x):
        out = self.base(x)
        if not self.merged:
            out = out + self.scale * torch.einsum("...i,ri,or->...o", x, self.lora_A, self.lora_B)
        return out

    def merge(self):
        self.base.weight.data += self.scale * (self.lora_B.data @ self.lora_A.data)
        self.merged = True


@valid(ex.check_lora_layer)
class LoraDeltaWeight(Lora):  # the forward through the delta weight, merge by copy_(W + delta)
    def delta(self):
        return self.scale * (self.lora_B @ self.lora_A)

    def forward(self, x):
        out = self.base(x)
        return out if self.merged else out + F.linear(x, self.delta())

    @torch.no_grad()
    def merge(self):
        self.base.weight.copy_(self.base.weight + self.delta())
        self.merged = True


import heldout_probe_round16_post3  # noqa: E402,F401
