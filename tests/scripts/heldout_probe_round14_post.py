"""The held-out probe, round 14, post part (the SFT targets, the LoRA layer, the DPO loss and GRPO's group advantages):
written fresh by w24t before reading these checkers' tables, tests/mistakes_*.py or any earlier round's rows, from
the checkers' docstrings, notebook 09 and mingpt.posttrain only, and counted untuned first. The angle: the student's
second attempt and the assistant's answer -- code an LLM would confidently produce (HF's -100, F.softmax without dim,
cross_entropy's defaults, F.dropout's training=True, masked_fill not in place, rsLoRA's sqrt, RLOO's baseline),
a first slip "fixed" the wrong way (a mask shifted twice, a scale on both factors, eps inside and outside the sqrt,
an extra shift of targets that are already shifted), state kept across calls (a cache filled on the first call,
a running baseline, inputs mutated in place) and edge sizes (B = 1, P = 1, T = 2, ids > 255, huge margins).
See heldout_probe.py."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import mingpt.exercises as ex

from heldout_probe_models import ROUND, mistake, valid
import heldout_probe_round13_post  # noqa: F401  (earlier rounds registered first)

ROUND[0] = 14
IGNORE = -1  # mingpt's IGNORE_INDEX


def both(a: str, b: str) -> str:
    return rf"(?=.*(?:{a}))(?=.*(?:{b}))"


def named(name, fn):
    fn.__name__ = fn.__qualname__ = name
    return fn


# ------------------------------------------------------------------------------------------ SFT targets
def sft(name, fill=IGNORE, keep=lambda a: a[1:], dtype=None, x_of=lambda ids: ids[:-1]):
    """The solution with knobs: the value filled, which mask keeps a target, y's dtype, what x is."""
    def f(ids, is_assistant):
        y = torch.where(keep(is_assistant), ids[1:], torch.full_like(ids[1:], fill))
        return x_of(ids), (y if dtype is None else y.to(dtype))
    return named(name, f)


mistake(ex.check_sft_targets, r"-100|ignore.?index|fill|-1\b")(sft("hf_minus_100", fill=-100))
mistake(ex.check_sft_targets, r"shift|off.by.one|\[:-1\]|same position|input token|unshifted")(
    sft("mask_not_shifted", keep=lambda a: a[:-1]))
mistake(ex.check_sft_targets, r"shift|twice|two|off.by")(  # "fixed" the shift by shifting the mask once more
    sft("mask_shifted_twice", keep=lambda a: torch.cat([a[2:], a[-1:]])))
mistake(ex.check_sft_targets, r"invert|opposite|revers|user|not the assistant|~")(
    sft("mask_inverted", keep=lambda a: ~a[1:]))
mistake(ex.check_sft_targets, r"first (answer )?token|marker|both|<assistant>|previous|input")(  # needs both ends
    sft("mask_and_of_both", keep=lambda a: a[1:] & a[:-1]))
mistake(ex.check_sft_targets, r"float|dtype|long|int64")(sft("y_float", dtype=torch.float32))
mistake(ex.check_sft_targets, r"int32|dtype|long|int64")(sft("y_int32", dtype=torch.int32))
mistake(ex.check_sft_targets, r"uint8|255|dtype|overflow|wrap|long")(
    sft("x_uint8", x_of=lambda ids: ids[:-1].to(torch.uint8)))
mistake(ex.check_sft_targets, r"x\b|input|length|shape|ids\[:-1\]")(sft("x_whole_ids", x_of=lambda ids: ids))


@mistake(ex.check_sft_targets, r"in.place|clone|modif|mutat|input|view")
def y_view_masked_in_place(ids, is_assistant):  # the solution without .clone(): ids itself gets -1s
    y = ids[1:]
    y[~is_assistant[1:]] = IGNORE
    return ids[:-1], y


# regex widened after the untuned count for a fair name the first one missed: "nothing is masked"
@mistake(ex.check_sft_targets, r"masked_fill|not in.place|no mask|never mask|unmask|every target|all targets|discard|"
                               r"nothing is masked")
def masked_fill_result_dropped(ids, is_assistant):
    y = ids[1:].clone()
    y.masked_fill(~is_assistant[1:], IGNORE)  # returns a new tensor; y is unchanged
    return ids[:-1], y


@mistake(ex.check_sft_targets, r"bool|float mask|mask.*(float|dtype)|masked_fill")
def masked_fill_float_mask(ids, is_assistant):
    return ids[:-1], ids[1:].masked_fill(1.0 - is_assistant[1:].float(), IGNORE)


@mistake(ex.check_sft_targets, r"bool|subtract|~|logical_not|invert|-")
def one_minus_bool(ids, is_assistant):
    y = ids[1:].clone()
    y[(1 - is_assistant[1:]).bool()] = IGNORE
    return ids[:-1], y


@mistake(ex.check_sft_targets, r"shift|target|ids\[1:\]|same as|copy|input|next token")
def targets_not_shifted(ids, is_assistant):  # "fixed" the mask's shift by not shifting the targets either
    y = ids[:-1].clone()
    y[~is_assistant[:-1]] = IGNORE
    return ids[:-1], y


@mistake(ex.check_sft_targets, r"shift|hugging|HF|length|labels|inside the model|shape")
def hf_labels_unshifted(ids, is_assistant):  # HF style: labels = input_ids, the model shifts (mingpt's does not)
    return ids, ids.masked_fill(~is_assistant, IGNORE)


def sft_loop(name, start=0, stop_less=1):
    def f(ids, is_assistant):
        y = torch.full((len(ids) - 1,), IGNORE, dtype=torch.long)
        for t in range(start, len(ids) - stop_less):
            if is_assistant[t + 1]:
                y[t] = ids[t + 1]
        return ids[:-1], y
    return named(name, f)


mistake(ex.check_sft_targets, r"first|position 0|y\[0\]|range|loop|off.by")(sft_loop("loop_from_1", start=1))
mistake(ex.check_sft_targets, r"last|final|end|range|loop|off.by")(sft_loop("loop_stops_early", stop_less=2))


@mistake(ex.check_sft_targets, r"shape|squeeze|0-d|dim|scalar|length|T ?= ?2")
def squeezed(ids, is_assistant):  # at T = 2 the targets become 0-dim
    y = ids[1:].clone()
    y[~is_assistant[1:]] = IGNORE
    return ids[:-1].squeeze(), y.squeeze()


@mistake(ex.check_sft_targets, r"shape|dim|batch|unsqueeze|extra")
def batch_dim_added(ids, is_assistant):
    y = torch.where(is_assistant[1:], ids[1:], IGNORE)
    return ids[:-1].unsqueeze(0), y.unsqueeze(0)


@mistake(ex.check_sft_targets, r"numpy|ndarray|tensor|type")
def returns_numpy(ids, is_assistant):
    y = torch.where(is_assistant[1:], ids[1:], IGNORE)
    return ids[:-1].numpy(), y.numpy()


_SFT_CACHE = {}


@mistake(ex.check_sft_targets, r"cache|stale|first call|state|previous|another call|every call|same mask")
def mask_cached_by_length(ids, is_assistant):  # a mask computed once per length and reused
    keep = _SFT_CACHE.setdefault(len(ids), is_assistant[1:].clone())
    return ids[:-1], torch.where(keep, ids[1:], IGNORE)


valid(ex.check_sft_targets)(named("arith", lambda ids, a: (ids[:-1], ids[1:] * a[1:] - (~a[1:]).long())))
valid(ex.check_sft_targets)(named("masked_fill_eq0", lambda ids, a: (
    ids.narrow(0, 0, len(ids) - 1), ids[1:].masked_fill(a[1:] == 0, -1))))


@valid(ex.check_sft_targets)
def python_lists(ids, is_assistant):
    toks, keep = ids.tolist(), is_assistant.tolist()
    y = [tok if k else -1 for tok, k in zip(toks[1:], keep[1:])]
    return torch.tensor(toks[:-1], dtype=torch.long), torch.tensor(y, dtype=torch.long)


# ------------------------------------------------------------------------------------------ LoRA
class LoRA(nn.Module):
    """The notebook's solution with knobs; subclasses change one thing."""
    init_b_zero, freeze, set_flag, check_flag = True, True, True, True

    def __init__(self, base, r, alpha):
        super().__init__()
        self.base, self.merged, self.r, self.alpha = base, False, r, alpha
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features))
        self.lora_B = nn.Parameter(torch.empty(base.out_features, r))
        self.scale = self.scaling(alpha, r)
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        if self.init_b_zero:
            nn.init.zeros_(self.lora_B)
        else:
            nn.init.kaiming_uniform_(self.lora_B, a=math.sqrt(5))
        if self.freeze:
            base.requires_grad_(False)

    def scaling(self, alpha, r):
        return alpha / r

    def delta(self):
        return self.scale * (self.lora_B @ self.lora_A)

    def correction(self, x):
        return (x @ self.lora_A.T @ self.lora_B.T) * self.scale

    def forward(self, x):
        out = self.base(x)
        if self.merged and self.check_flag:
            return out
        return out + self.correction(x)

    @torch.no_grad()
    def merge(self):
        self.base.weight += self.delta()
        self.merged = self.set_flag


def lora(name, **attrs):
    return type(name, (LoRA,), attrs)


mistake(ex.check_lora_layer, r"alpha ?/ ?r|scal|alpha")(lora("ScaleAlpha", scaling=lambda s, a, r: a))
mistake(ex.check_lora_layer, r"r ?/ ?alpha|invert|scal")(lora("ScaleInverted", scaling=lambda s, a, r: r / a))
mistake(ex.check_lora_layer, r"integer|//|floor|divis|round|scal")(
    lora("ScaleFloorDiv", scaling=lambda s, a, r: a // r))
mistake(ex.check_lora_layer, r"sqrt|rs.?lora|scal")(lora("ScaleRsLoRA", scaling=lambda s, a, r: a / math.sqrt(r)))
mistake(ex.check_lora_layer, r"B.*zero|zero.*B|init|start|base")(lora("BRandom", init_b_zero=False))
mistake(ex.check_lora_layer, r"frozen|freez|requires_grad|trainable|train")(lora("BaseNotFrozen", freeze=False))
mistake(ex.check_lora_layer, r"merged|twice|flag|again|double")(lora("MergeNoFlag", set_flag=False))
mistake(ex.check_lora_layer, r"merged|twice|flag|again|double")(lora("ForwardIgnoresFlag", check_flag=False))
mistake(ex.check_lora_layer, both(r"scal|alpha", r"merge"))(
    lora("MergeUnscaled", delta=lambda s: s.lora_B @ s.lora_A))
mistake(ex.check_lora_layer, r"transpos|orient|\.T|merge|\(in, out\)|shape")(
    lora("MergeTransposed", delta=lambda s: s.scale * (s.lora_B @ s.lora_A).T))
mistake(ex.check_lora_layer, r"scal|twice|square|both")(  # the scale put on both factors
    lora("ScaleOnBothFactors", correction=lambda s, x: (x @ (s.scale * s.lora_A).T) @ (s.scale * s.lora_B).T))
mistake(ex.check_lora_layer, r"transpos|orient|\.T|B ?A|shape|\(out, in\)")(
    lora("ForwardBATransposed", correction=lambda s, x: s.scale * x @ (s.lora_B @ s.lora_A)))
mistake(ex.check_lora_layer, r"dropout|random|noise|eval|determin|training")(  # F.dropout's training=True
    lora("FunctionalDropout", correction=lambda s, x: (F.dropout(x, 0.1) @ s.lora_A.T @ s.lora_B.T) * s.scale))
mistake(ex.check_lora_layer, r"2-D|3-D|dim|shape|batch|\.\.\.|einsum|leading")(  # works on (B, T, in) only
    lora("Einsum3D", correction=lambda s, x: s.scale * torch.einsum("bti,ri,or->bto", x, s.lora_A, s.lora_B)))


class MergeIntoLocal(LoRA):
    @torch.no_grad()
    def merge(self):
        w = self.base.weight + self.delta()  # noqa: F841  (never written back)
        self.merged = True


class CachedDelta(LoRA):  # B A computed on the first call (when B is still zero) and reused
    def correction(self, x):
        if not hasattr(self, "_delta"):
            self._delta = self.delta()
        return x @ self._delta.T


class UnregisteredAB(LoRA):  # plain tensors: not in parameters(), never trained
    def __init__(self, base, r, alpha):
        super().__init__(base, r, alpha)
        A, B = self.lora_A.detach().clone().requires_grad_(), self.lora_B.detach().clone().requires_grad_()
        del self.lora_A, self.lora_B
        self.lora_A, self.lora_B = A, B


class ShapesTransposed(LoRA):  # A (in, r) and B (r, out): the maths is right, the layout is not PEFT's
    def __init__(self, base, r, alpha):
        super().__init__(base, r, alpha)
        self.lora_A = nn.Parameter(self.lora_A.detach().T.contiguous())
        self.lora_B = nn.Parameter(self.lora_B.detach().T.contiguous())

    def delta(self):
        return self.scale * (self.lora_A @ self.lora_B).T

    def correction(self, x):
        return x @ self.lora_A @ self.lora_B * self.scale


class BothZero(LoRA):  # "B starts at zero" applied to A too: neither ever gets a gradient
    def __init__(self, base, r, alpha):
        super().__init__(base, r, alpha)
        nn.init.zeros_(self.lora_A)


class BiasAssumed(LoRA):  # crashes on a base built with bias=False
    def forward(self, x):
        out = x @ self.base.weight.T + self.base.bias
        return out if self.merged else out + self.correction(x)


mistake(ex.check_lora_layer, r"merge|not.*(change|modif|updat|written)|base.weight|in place")(MergeIntoLocal)
mistake(ex.check_lora_layer, r"cache|stale|first call|state|B ?A|zero|correction")(CachedDelta)
mistake(ex.check_lora_layer, r"regist|Parameter|parameters\(\)|buffer|trainable")(UnregisteredAB)
mistake(ex.check_lora_layer, r"shape|\(r, in\)|\(out, r\)|transpos|orient|\(in, r\)")(ShapesTransposed)
mistake(ex.check_lora_layer, r"A.*(zero|random)|both.*zero|zero.*both|gradient|init")(BothZero)
mistake(ex.check_lora_layer, r"bias|None")(BiasAssumed)


class LinearModules(LoRA):  # PEFT's layout: lora_A, lora_B as bias-free nn.Linear modules
    def __init__(self, base, r, alpha):
        nn.Module.__init__(self)
        self.base, self.merged, self.scale = base, False, alpha / r
        self.lora_A = nn.Linear(base.in_features, r, bias=False)
        self.lora_B = nn.Linear(r, base.out_features, bias=False)
        nn.init.zeros_(self.lora_B.weight)
        base.requires_grad_(False)

    def forward(self, x):
        out = self.base(x)
        return out if self.merged else out + self.lora_B(self.lora_A(x)) * self.scale

    @torch.no_grad()
    def merge(self):
        self.base.weight.add_(self.lora_B.weight @ self.lora_A.weight, alpha=self.scale)
        self.merged = True


class FLinearDataMerge(LoRA):  # F.linear twice, the scale read in forward, merge through .data
    def correction(self, x):
        return F.linear(F.linear(x, self.lora_A), self.lora_B) * (self.alpha / self.r)

    def merge(self):
        self.base.weight.data = self.base.weight.data + (self.alpha / self.r) * self.lora_B.data @ self.lora_A.data
        self.merged = True


valid(ex.check_lora_layer)(LinearModules)
valid(ex.check_lora_layer)(FLinearDataMerge)
valid(ex.check_lora_layer)(lora("EinsumAnyDims", correction=lambda s, x: s.scale * torch.einsum(
    "...i,ri,or->...o", x, s.lora_A, s.lora_B)))

import heldout_probe_round14_post2  # noqa: E402,F401  (DPO and group advantages, registered after these rows)
