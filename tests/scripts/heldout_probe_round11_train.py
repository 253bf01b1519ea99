"""The held-out probe, round 11, third part (a training run with train_and_compare): written with
heldout_probe_round11_tokens.py, which imports it last, before reading the checkers."""

from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F

from mingpt.exercises.training import train_and_compare

from heldout_probe_models import mistake, valid


# ------------------------------------------------------------------------------------------ a training run
class MLP(nn.Module):
    detach_in, unused = False, False

    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd)
        if self.unused:
            self.gate = nn.Linear(config.n_embd, 4 * config.n_embd)  # registered, never used
        self.dropout = nn.Dropout(config.resid_pdrop)

    def forward(self, x):
        h = F.gelu(self.c_fc(x.detach() if self.detach_in else x))
        return self.dropout(self.c_proj(h.detach() if self.detach_in else h))


def train_mlp(cls):
    return train_and_compare(steps=150, mlp=cls)


train_mlp.__name__ = "train_and_compare"
mistake(train_mlp, r"gradient|detach|gate|c_fc|do not learn")(type("DetachedMLP", (MLP,), {"detach_in": True}))
mistake(train_mlp, r"gradient|gate|unused|never|do not learn")(type("UnusedGateMLP", (MLP,), {"unused": True}))


class DataMLP(MLP):
    def forward(self, x):  # .data: the weight enters as a constant, no gradient reaches it
        return self.c_proj(F.gelu(F.linear(x, self.c_fc.weight.data, self.c_fc.bias)))


class ZeroedProjMLP(MLP):
    def forward(self, x):  # the branch multiplied by 0 (a residual "initialised off" and left off)
        return 0.0 * self.c_proj(F.gelu(self.c_fc(x)))


mistake(train_mlp, r"gradient|\.data|c_fc|do not learn")(DataMLP)
mistake(train_mlp, r"gradient|multiplied by 0|do not learn|zero")(ZeroedProjMLP)
valid(train_mlp)(MLP)
