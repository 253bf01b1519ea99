"""
The parallel block of GPT-NeoX (Pythia) and GPT-J: attention and MLP read the same input and both write to the
residual stream in one step,

    sequential (GPT-2, Llama):  x = x + attn(ln_1(x));  x = x + mlp(ln_2(x))
    parallel   (GPT-NeoX):      x = x + attn(ln_1(x)) + mlp(ln_2(x))

so the MLP no longer sees what attention just wrote. The two branches can run at the same time (one fused matmul
on big hardware, "PaLM", Chowdhery et al. 2022), at little cost in quality at scale. GPT-NeoX keeps a norm per
branch (ln_1, ln_2); GPT-J shares one. The hook points are the sequential block's, without hook_resid_mid, which a
parallel block never forms (TransformerLens does the same).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from mingpt.interp.hook_points import HookPoint, LayerNormHookPoints, has_scale

__all__ = ["ParallelBlock"]


class ParallelBlock(nn.Module):
    """Built as model.py's Block is (the same parts, the same names, so weights map one to one)."""

    def __init__(self, config, layer_idx: int, attention, mlp, layer_norm=None):
        super().__init__()
        layer_norm = layer_norm or nn.LayerNorm
        self.ln_1 = layer_norm(config.n_embd, eps=config.layer_norm_epsilon, bias=config.bias)
        self.attn = attention(config, layer_idx)
        self.ln_2 = layer_norm(config.n_embd, eps=config.layer_norm_epsilon, bias=config.bias)
        self.mlp = mlp(config)
        self.hook_resid_pre, self.hook_attn_out, self.hook_mlp_out = HookPoint(), HookPoint(), HookPoint()
        self.hook_resid_post = HookPoint()
        self.hook_ln1 = LayerNormHookPoints("ln1", with_scale=has_scale(self.ln_1))
        self.hook_ln2 = LayerNormHookPoints("ln2", with_scale=has_scale(self.ln_2))

    def forward(self, x: torch.Tensor, kv_cache=None, attn_mask=None) -> torch.Tensor:
        masked = {} if attn_mask is None else {"attn_mask": attn_mask}
        x = self.hook_resid_pre(x)
        attn_out = self.hook_attn_out(self.attn(self.hook_ln1(self.ln_1, x), kv_cache, **masked))
        mlp_out = self.hook_mlp_out(self.mlp(self.hook_ln2(self.ln_2, x)))  # reads x, not x + attn_out
        return self.hook_resid_post(x + attn_out + mlp_out)
