"""
Attention as models after GPT-2 build it: rotary positions, grouped-query attention (GQA), QK-norm and a
separate switch for the q/k/v biases. The attention arithmetic itself (scores, causal mask, softmax, weighted sum,
the fused kernel, the hook points on scores and pattern, the output projection) is GPT-2's, unchanged: this class
only changes how queries, keys and values are made, and model.py mixes it into its CausalSelfAttention:

    class ModernAttention(ModernQKV, CausalSelfAttention)      # model.py

- **Grouped-query attention** (Ainslie et al. 2023): n_head query heads but only n_kv_head key/value heads, each
  shared by n_head // n_kv_head queries. The KV cache stores only the n_kv_head heads (that is the point: a smaller
  cache); before attention each is repeated for its group, so GQA with repeated K/V heads *is* multi-head attention.
  n_kv_head = 1 is multi-query attention; n_kv_head = n_head is GPT-2's.
- **QK-norm** (Qwen3, nanochat; Dehghani et al. 2023): an RMSNorm over each head's channels of q and of k before
  the rotation, which bounds the attention logits and keeps training stable at high learning rates.
- **Rotary**: q and k are rotated by position (rotary.py) after the norm and before the cache; TransformerLens
  shows them at hook_rot_q / hook_rot_k (hook_q / hook_k stay the un-rotated projections).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from mingpt.interp.hook_points import HookPoint
from mingpt.modern.norms import RMSNorm, RMSNormNoWeight
from mingpt.modern.rotary import Rotary

__all__ = ["ModernQKV", "identity", "no_rotation"]


def identity(x: torch.Tensor) -> torch.Tensor:
    """The no-op that stands where a switched-off part would be (a module-level function: picklable)."""
    return x


def no_rotation(q: torch.Tensor, k: torch.Tensor, start: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Learned positions (GPT-2's wpe) were added to the input already: q and k pass unrotated."""
    return q, k


class ModernQKV:
    """
    Mixed in before model.py's CausalSelfAttention: its __init__ resizes c_attn/c_proj for GQA and an explicit
    head_dim and adds the optional parts; its `queries_keys_values` replaces GPT-2's. Everything else is inherited.
    """

    def __init__(self, config, layer_idx: int):
        super().__init__(config, layer_idx)
        self.n_kv_head = config.n_kv_head or config.n_head
        self.head_dim = config.head_dim or config.n_embd // config.n_head
        nh, nkv, hs = self.n_head, self.n_kv_head, self.head_dim
        qkv_bias = config.bias if config.qkv_bias is None else config.qkv_bias
        self.c_attn = nn.Linear(config.n_embd, (nh + 2 * nkv) * hs, bias=qkv_bias)  # q, then k, then v
        self.c_proj = nn.Linear(nh * hs, config.n_embd, bias=config.bias)
        norm = RMSNorm if config.norm_weight else RMSNormNoWeight
        self.q_norm = norm(hs, eps=config.layer_norm_epsilon) if config.qk_norm else identity
        self.k_norm = norm(hs, eps=config.layer_norm_epsilon) if config.qk_norm else identity
        rotary = config.position == "rotary"
        self.rotary = Rotary(config) if rotary else no_rotation
        self.hook_rot_q, self.hook_rot_k = (HookPoint(), HookPoint()) if rotary else (identity, identity)

    def queries_keys_values(self, x: torch.Tensor, kv_cache=None):
        """(B, T, C) -> q (B, nh, T, hs) and k, v (B, nh, T_kv, hs): K/V heads repeated for their query groups."""
        B, T = x.size(0), x.size(1)  # x (B, T, C), or one per head (B, T, heads, C): interp/head_inputs.py
        nh, nkv, hs = self.n_head, self.n_kv_head, self.head_dim
        q, k, v = self.c_attn(x).split([nh * hs, nkv * hs, nkv * hs], dim=2)
        q = self.q_norm(self.hook_q(q.view(B, T, nh, hs)))  # (B, T, nh, hs)
        k = self.k_norm(self.hook_k(k.view(B, T, nkv, hs)))  # (B, T, nkv, hs)
        v = self.hook_v(v.view(B, T, nkv, hs))
        # Rotate by the true positions: after a cache of length L the new tokens sit at L, L+1, ...
        start = kv_cache.length if kv_cache is not None else 0
        q, k = self.rotary(q, k, start)
        q, k, v = self.hook_rot_q(q).transpose(1, 2), self.hook_rot_k(k).transpose(1, 2), v.transpose(1, 2)
        if kv_cache is not None:  # the cache holds the nkv rotated key heads, never rotated again
            k, v = kv_cache.update(self.layer_idx, k, v)
        group = nh // nkv  # query heads per K/V head: head j of the queries reads K/V head j // group
        return q, k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
