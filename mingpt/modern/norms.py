"""
RMSNorm: the normalisation of Llama, Qwen and nanochat, in place of GPT-2's LayerNorm.

The one idea: LayerNorm does two things, it centres each position's vector (subtracts the mean) and scales it to
unit size. RMSNorm drops the centring and divides by the root of the mean square only:

    LayerNorm(x) = (x - mean(x)) / sqrt(var(x) + eps) * weight + bias
    RMSNorm(x)   =  x            / sqrt(mean(x^2) + eps) * weight          (no bias)

It is cheaper, works as well in practice ("Root Mean Square Layer Normalization", Zhang & Sennrich 2019), and the
mean is over the channels of one position (the last axis), never over time or the batch. nanochat goes one step
further and keeps no weight at all: the next matmul can learn any per-channel gain itself.

PyTorch ships the formula as ``nn.RMSNorm``; these classes only give it the signature GPT's Block calls a norm with,
``norm(n_embd, eps=..., bias=...)`` (mingpt/components.py), so the Block needs no change to use it.
"""

from __future__ import annotations

import torch.nn as nn

__all__ = ["RMSNorm", "RMSNormNoWeight", "norm_class"]


class RMSNorm(nn.RMSNorm):
    """nn.RMSNorm with a learned gain, built as GPT builds its LayerNorms. `bias` is accepted and ignored: RMSNorm
    has none, whatever the config says about the Linear layers' biases."""

    def __init__(self, ndim: int, eps: float = 1e-5, bias: bool = False):
        super().__init__(ndim, eps=eps, elementwise_affine=True)


class RMSNormNoWeight(nn.RMSNorm):
    """RMSNorm with no parameters at all (nanochat): x / sqrt(mean(x^2) + eps)."""

    def __init__(self, ndim: int, eps: float = 1e-5, bias: bool = False):
        super().__init__(ndim, eps=eps, elementwise_affine=False)


def norm_class(config) -> type[nn.Module] | None:
    """The norm class the config asks for; None means GPT-2's nn.LayerNorm, which model.py builds itself."""
    if config.norm == "layernorm":
        return None
    return RMSNorm if config.norm_weight else RMSNormNoWeight
