"""
Reusing a forward pass's keys and values: the batched patching sweep (patching.py) runs each patched copy of the
corrupted prompt from position p on only, because positions before p are the corrupted run's (causality). Those
positions' keys and values come from the corrupted run, in the form the attention caches them: after rotary
embeddings and QK-norm, one per key/value head with grouped-query attention. Reading them from the hook points
instead (hook_k, hook_v) would give GPT-2's right answer but a rotary model's keys un-rotated; so the corrupted run
passes a cache that simply keeps what each layer stores, and each patched pass reads its prefix back from it.
"""

from __future__ import annotations

import torch

__all__ = ["StoredKeysValues", "PrefixCache"]


class StoredKeysValues:
    """
    A KV cache for one whole forward pass that only keeps what each layer's attention stores in it: its keys and
    values as a cache holds them (after rotation or QK-norm, one per key/value head), (B, n_kv, T, hs).
    """

    length = 0  # nothing cached before the pass: it attends exactly as without a cache

    def __init__(self, n_layer: int):
        self.keys: list[torch.Tensor | None] = [None] * n_layer
        self.values: list[torch.Tensor | None] = [None] * n_layer

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor):
        self.keys[layer], self.values[layer] = k, v
        return k, v

    def advance(self, T: int) -> None:
        """Called after the pass: nothing to do."""


class PrefixCache:
    """
    A KV cache that holds positions 0..p-1 as an earlier pass stored them (``stored``, StoredKeysValues of the
    whole run), repeated for ``copies`` stacked copies of that run's rows. A pass through it computes positions
    p.. only. update concatenates instead of writing into a buffer, and the prefix stays p long however many
    passes read it.
    """

    def __init__(self, stored: StoredKeysValues, p: int, copies: int = 1):
        self.stored, self.length, self.copies = stored, p, copies

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor):
        old_k = self.stored.keys[layer][:, :, :self.length].repeat(self.copies, 1, 1, 1)
        old_v = self.stored.values[layer][:, :, :self.length].repeat(self.copies, 1, 1, 1)
        return torch.cat([old_k, k], dim=2), torch.cat([old_v, v], dim=2)

    def advance(self, T: int) -> None:
        """Called after a pass: nothing to keep, the next pass reads the same prefix."""
