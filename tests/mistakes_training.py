"""Student components that compute the right function on a checker's inputs but must fail the training run."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from mingpt.model import MLP, CausalSelfAttention


class StudentAttention(CausalSelfAttention):  # the reference, under a student's name
    pass


class NoMaskAttention(CausalSelfAttention):
    """Attention with no causal mask: every position reads the whole sequence, the answer included."""

    def forward(self, x, kv_cache=None):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = [t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v)]
        att = (q @ k.transpose(-2, -1)) / (k.size(-1) ** 0.5)
        y = att.softmax(dim=-1) @ v
        return self.c_proj(y.transpose(1, 2).reshape(B, T, C))


class DetachedHiddenMLP(MLP):
    def forward(self, x):
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x).detach(), approximate="tanh")))


class UnusedParameterMLP(MLP):
    def __init__(self, config):
        super().__init__(config)
        self.scale = nn.Parameter(torch.ones(config.n_embd))  # registered, never used in forward
