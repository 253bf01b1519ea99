"""
Rotary position embeddings (RoPE, Su et al. 2021, "RoFormer"): positions as rotations of queries and keys.

The one idea: GPT-2 adds a learned vector per position to the input (wpe). RoPE instead *rotates* each head's
query and key by an angle proportional to the position, in pairs of channels, each pair at its own speed:

    angle(position p, pair i) = p * theta^(-2i / d)          d = channels that rotate, i = 0 .. d/2 - 1

A dot product of two rotated vectors depends only on the *difference* of their angles, so q_t . k_s sees the
relative distance t - s and nothing of the absolute position. Three consequences a student should know:

- Generation with a KV cache must rotate the new token by its true position (cache length + t), not from 0:
  `Rotary.forward` takes that offset (`start`). Keys are stored rotated, so they are never rotated twice.
- Left-padded batches need no per-row positions: shifting every position of a row by the same amount shifts all
  its angles equally and leaves every q . k unchanged.
- Pairing: this file (like Hugging Face's Llama, GPT-NeoX and nanochat) pairs channel j with channel j + d/2
  ("rotate_half"). Meta's original Llama code pairs neighbours (2j, 2j+1); Hugging Face's conversion permutes
  the q/k weights so both give the same model. Pairing neighbours on weights made for halves is a classic bug.

Partial rotary (GPT-NeoX/Pythia, ``rotary_fraction``=0.25): only the first d = fraction * head_dim channels rotate,
the rest pass through unchanged. Llama 3's "llama3" scaling slows the low frequencies down by `factor` (with a
smooth ramp between two wavelengths), so a model trained on 8k positions reads 128k.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

__all__ = ["Rotary", "inverse_frequencies", "llama3_scaled", "rotate_half"]


def inverse_frequencies(dim: int, theta: float) -> torch.Tensor:
    """theta^(-2i/dim) for i = 0 .. dim/2 - 1: how many radians pair i turns per position. (dim/2,), float32."""
    # Computed as Hugging Face does (int64 arange, then float), so the angles match its models bit for bit.
    return 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))


def llama3_scaled(inv_freq: torch.Tensor, factor: float, low_freq_factor: float, high_freq_factor: float,
                  original_length: int) -> torch.Tensor:
    """
    Llama 3.1's RoPE scaling: pairs that turn fast (wavelength < original_length / high_freq_factor) are kept,
    slow ones (wavelength > original_length / low_freq_factor) are slowed down `factor` times, and those between
    are blended smoothly. The same formula as Hugging Face's rope_type="llama3".
    """
    wavelength = 2 * math.pi / inv_freq
    slowed = torch.where(wavelength > original_length / low_freq_factor, inv_freq / factor, inv_freq)
    smooth = (original_length / wavelength - low_freq_factor) / (high_freq_factor - low_freq_factor)
    blended = (1 - smooth) * slowed / factor + smooth * slowed
    medium = (wavelength >= original_length / high_freq_factor) & (wavelength <= original_length / low_freq_factor)
    return torch.where(medium, blended, slowed)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """(x1, x2) -> (-x2, x1) on the two halves of the last axis: the 90-degree turn of every pair (j, j + d/2)."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class Rotary(nn.Module):
    """Rotates (B, T, nh, hs) queries and keys by their positions start .. start + T - 1 (the module docstring)."""

    def __init__(self, config):
        super().__init__()
        head_dim = config.head_dim or config.n_embd // config.n_head
        self.dim = int(head_dim * config.rotary_fraction)  # channels that rotate; the rest pass through
        inv_freq = inverse_frequencies(self.dim, config.rotary_theta)
        if config.rotary_scaling is not None:
            inv_freq = llama3_scaled(inv_freq, *config.rotary_scaling[1:])
        # A buffer, not a weight: it follows the model to its device but is not in the state dict.
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, q: torch.Tensor, k: torch.Tensor, start: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        T = q.size(1)
        # The angle of every (position, pair): (T, dim/2), each pair's angle serving both of its channels, hence
        # the cat. Recomputed per call (cheap) rather than stored for the whole context in every layer.
        positions = torch.arange(start, start + T, device=q.device).float()
        angles = torch.outer(positions, self.inv_freq.float())
        angles = torch.cat((angles, angles), dim=-1)[:, None, :]  # (T, 1, dim): broadcasts over the heads
        cos, sin = angles.cos().to(q.dtype), angles.sin().to(q.dtype)
        return self.rotate(q, cos, sin), self.rotate(k, cos, sin)

    def rotate(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        rotating, passing = x[..., : self.dim], x[..., self.dim :]
        # Each pair (a, b) becomes (a cos - b sin, b cos + a sin): a rotation by the pair's angle.
        return torch.cat((rotating * cos + rotate_half(rotating) * sin, passing), dim=-1)
