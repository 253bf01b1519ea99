"""Students for the post-training tables' rows added with held-out round 21 (partial slips: one position, one
answer of each pair, one tensor of the base layer), in test_posttrain_exercises.py's table style."""

from __future__ import annotations

import torch
import torch.nn.functional as F


# ------------------------------------------------------------------------------------------ SFT: loops that miss an end
def _sft_loop(first, stop):  # y starts as the targets; the loop writes the -1s over range(first, T - 1 - stop) only
    def sft(ids, a):
        y = ids[1:].clone()
        for t in range(first, len(ids) - 1 - stop):
            if not a[t + 1]:
                y[t] = -1
        return ids[:-1], y
    return sft


SFT = {
    "the first target is never masked (a loop over range(1, T - 1) leaves y[0] = ids[1])": _sft_loop(1, 0),
    "the last target is never masked (a loop over range(T - 2) stops one short)": _sft_loop(0, 1),
}


# ------------------------------------------------------------------------------------------ LoRA: half the base frozen
def _lora_freezing(frozen):  # only one of the base layer's tensors has requires_grad_(False)
    class LoRA(torch.nn.Module):
        def __init__(self, base, r, alpha):
            super().__init__()
            self.base, self.scale, self.merged = base, alpha / r, False
            self.lora_A = torch.nn.Parameter(torch.randn(r, base.in_features) / base.in_features ** 0.5)
            self.lora_B = torch.nn.Parameter(torch.zeros(base.out_features, r))
            if getattr(base, frozen) is not None:  # a base built with bias=False has no bias to freeze
                getattr(base, frozen).requires_grad_(False)

        def forward(self, x):
            out = self.base(x)
            return out if self.merged else out + self.scale * (x @ self.lora_A.T @ self.lora_B.T)

        @torch.no_grad()
        def merge(self):
            self.base.weight += self.scale * (self.lora_B @ self.lora_A)
            self.merged = True
    return LoRA


LORA = {
    "the base layer's bias is not frozen (its weight is)": _lora_freezing("weight"),
    "the base layer's weight is not frozen (its bias is)": _lora_freezing("bias"),
}


# ------------------------------------------------------------------------------------------ DPO: one part of each pair
def _dpo(ref_only=None, one_row_masked=None, drop_last=False, per_T=False):
    def dpo(policy, reference, x, y, beta):
        B, _, T = x.shape
        idx, t = x.reshape(2 * B, T), y.reshape(2 * B, T)

        def logps(model):
            lp = F.log_softmax(model(idx)[0], dim=-1).gather(-1, t.clamp(min=0)[..., None]).squeeze(-1)
            mask = t != -1
            if one_row_masked is not None:  # rows alternate chosen, rejected: only one kind gets its mask
                mask = mask | (torch.arange(2 * B) % 2 != one_row_masked)[:, None]
            if drop_last:
                lp, mask = lp[:, :-1], mask[:, :-1]
            total = (lp * mask).sum(-1)
            return (total / T if per_T else total).view(B, 2)

        pi = logps(policy)
        with torch.no_grad():
            ref = logps(reference)
        if ref_only is not None:  # the reference kept for one answer only
            ref = ref * (torch.arange(2) == ref_only)
        return -F.logsigmoid(beta * ((pi[:, 0] - ref[:, 0]) - (pi[:, 1] - ref[:, 1]))).mean()
    return dpo


DPO = {
    "the reference's log-prob subtracted for the chosen answer only": _dpo(ref_only=0),
    "the reference's log-prob subtracted for the rejected answer only": _dpo(ref_only=1),
    "the mask applied to the chosen answers only (the rejected rows summed over the prompt and padding too)":
        _dpo(one_row_masked=0),
    "the mask applied to the rejected answers only (the chosen rows summed over the prompt and padding too)":
        _dpo(one_row_masked=1),
    "the last position left out of every answer's sum (a [:-1] slice, or range(T - 1))": _dpo(drop_last=True),
    "log-probs summed over the answer, then divided by T (the row's length, not the answer's)": _dpo(per_T=True),
}
