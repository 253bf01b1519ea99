"""
The switchboard: which parts a GPT is built from, read off its config. GPT-2's config gets GPT-2's parts (model.py's
own classes), so the teaching model is what it always was; every modern switch swaps in one named part from this
room. GPT's constructor asks `choose_parts` once and builds the same stack of blocks from whatever it gets.

    switch                          part                                   file
    position="rotary"               no wpe; q and k rotated (RoPE)         rotary.py, attention.py
    norm="rmsnorm", norm_weight     RMSNorm (with or without gain)         norms.py
    mlp="swiglu"|"relu2"|...        the MLP                                mlps.py
    n_kv_head, head_dim, qk_norm,   grouped-query attention, QK-norm,      attention.py
      qkv_bias                        q/k/v biases
    parallel_residual               x + attn(ln_1 x) + mlp(ln_2 x)         blocks.py
    logit_softcap                   cap * tanh(logits / cap)               here
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn as nn

from mingpt.modern.attention import ModernQKV
from mingpt.modern.blocks import ParallelBlock
from mingpt.modern.mlps import mlp_class
from mingpt.modern.norms import norm_class

__all__ = ["ModernQKV", "Parts", "choose_parts", "NoPositionEmbedding", "SoftCappedHead", "uses_modern_attention"]


class NoPositionEmbedding(nn.Module):
    """
    Stands where GPT-2's wpe table is when positions enter elsewhere (rotary): it adds nothing, so the model's
    ``tok_emb + pos_emb`` stays one line. Built like nn.Embedding(block_size, n_embd); holds no weight (an empty
    buffer named weight keeps the dtype and device, and counts 0 parameters).
    """

    def __init__(self, block_size: int, n_embd: int):
        super().__init__()
        self.n_embd = n_embd
        self.register_buffer("weight", torch.zeros(0, n_embd), persistent=False)

    def forward(self, pos: torch.Tensor) -> torch.Tensor:
        return self.weight.new_zeros(*pos.shape, self.n_embd)  # (T, C) or (B, T, C) of zeros


class SoftCappedHead(nn.Linear):
    """
    lm_head with logits squashed smoothly into (-cap, cap): cap * tanh(logits / cap) (Gemma 2, nanochat). Near 0
    it is the identity; it stops a few logits from growing without bound, which steadies training.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = False, cap: float = 15.0):
        super().__init__(in_features, out_features, bias=bias)
        self.cap = cap

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cap * torch.tanh(super().forward(x) / self.cap)


@dataclass
class Parts:
    """The classes GPT builds from; None: GPT-2's own there (model.py's class, nn.Embedding, nn.Linear)."""

    block: type  # model.py's Block, or the parallel one
    attention: type | None = None
    mlp: type | None = None
    layer_norm: type = nn.LayerNorm  # or an RMSNorm (norms.py)
    position: type | None = None  # for wpe; None: nn.Embedding
    head: type | functools.partial | None = None  # for lm_head; None: nn.Linear

    def make_block(self, config, layer_idx: int) -> nn.Module:
        return self.block(config, layer_idx, self.attention, self.mlp, self.layer_norm)


def uses_modern_attention(config) -> bool:
    """Whether GPT-2's attention cannot express this config (rotary, GQA, QK-norm, head_dim, q/k/v biases)."""
    gpt2_qkv = config.qkv_bias is None or config.qkv_bias == config.bias
    head_dim = config.head_dim is None or config.head_dim * config.n_head == config.n_embd
    gqa = config.n_kv_head is not None and config.n_kv_head != config.n_head
    return config.position == "rotary" or gqa or config.qk_norm or not gpt2_qkv or not head_dim


def choose_parts(config, modern_attention: type, block: type, attention=None, mlp=None, layer_norm=None) -> Parts:
    """
    The parts for `config`. modern_attention: model.py's attention with this room's ModernQKV mixed in, and block
    its Block (model.py owns both, and this room sits below it). attention / mlp / layer_norm: a student's own classes
    (GPT(config, attention=...)); they win, but cannot stand in for a switch they know nothing of.
    """
    if attention is not None and uses_modern_attention(config):
        raise ValueError("a custom attention= class cannot be combined with the modern attention switches (position="
                         f"{config.position!r}, n_kv_head={config.n_kv_head}, qk_norm={config.qk_norm}, head_dim="
                         f"{config.head_dim}, qkv_bias={config.qkv_bias}); use GPT-2's settings for those")
    parallel = config.parallel_residual
    if parallel or uses_modern_attention(config):
        attention = attention or modern_attention
    return Parts(
        attention=attention,
        mlp=mlp or mlp_class(config, needed=parallel),
        layer_norm=layer_norm or norm_class(config) or nn.LayerNorm,
        block=ParallelBlock if parallel else block,
        position=NoPositionEmbedding if config.position == "rotary" else None,
        head=functools.partial(SoftCappedHead, cap=config.logit_softcap) if config.logit_softcap else None,
    )
