"""
ActivationCache: the activations of one forward pass by hook name, and the standard ways to read the residual
stream out of them (accumulated residual, its decomposition into what each sublayer wrote, per-head results,
direct logit attribution).

The one idea: the residual stream is a *sum*. After the last block it is

    resid_post[-1] = embed + pos_embed + sum_i (attn_out_i + mlp_out_i) = embed + pos_embed + sum_(i,h) result_ih + ...

and the final LayerNorm is, for a fixed input, a linear map plus a bias: ``ln(x) = (x - mean(x)) / scale * w + b``,
where ``scale`` depends on x. Freeze ``scale`` at the value the model computed (``ln_final.hook_scale``) and
the map is linear, so it distributes over the sum: each component's direct contribution to the logits is
``(c - mean(c)) / scale * w @ W_U``, and ``b @ W_U`` is one more component, counted once. Here the LayerNorm is
applied exactly as the model applies it, so the pieces add up to the real logits (TL folds w into W_U and b into
b_U instead; with its default weight processing its activations are not the model's).

Stacks have the component first: (n_components, B, T, C), or (n_components, B, C) after a pos_slice of one int.
"""

from __future__ import annotations

from typing import Iterator

import torch

from mingpt.hooks import get_act_name

__all__ = ["ActivationCache"]


def _slice_pos(tensor: torch.Tensor, pos_slice, dim: int) -> torch.Tensor:
    """pos_slice: None (all), an int (drops the dim), a slice, or a list/tensor of positions."""
    if pos_slice is None:
        return tensor
    index = [slice(None)] * tensor.dim()
    index[dim] = pos_slice if isinstance(pos_slice, (int, slice)) else torch.as_tensor(pos_slice)
    return tensor[tuple(index)]


class ActivationCache:
    """
    ``cache[name]`` or TL's shorthand ``cache["pattern", 1]``, ``cache["scale", 0, "ln1"]`` (negative layers count
    from the end). Also dict-like: ``keys()``, ``items()``, ``in``, ``len``.
    """

    def __init__(self, cache_dict: dict[str, torch.Tensor], model):
        self.cache_dict = cache_dict
        self.model = model

    # ------------------------------------------------------------------ dict-like access
    def _full_name(self, key) -> str:
        if isinstance(key, str):
            return key if key in self.cache_dict or "." in key or key.startswith("hook_") else get_act_name(key)
        if isinstance(key, tuple) and 1 <= len(key) <= 3 and isinstance(key[0], str):
            name, layer, layer_type = (*key, None, None)[:3]
            if isinstance(layer, int) and layer < 0:
                layer += self.model.config.n_layer
            return get_act_name(name, layer, layer_type)
        raise KeyError(f"cache keys are hook names or (short_name, layer[, 'ln1'|'ln2']) tuples, got {key!r}")

    def __getitem__(self, key) -> torch.Tensor:
        name = self._full_name(key)
        if name not in self.cache_dict:
            from mingpt.hooks import _check_name

            _check_name(self.model, name)  # a typo gets a suggestion; a real name was filtered out
            raise KeyError(f"{name!r} was not recorded: run_with_cache's names_filter left it out")
        return self.cache_dict[name]

    def __contains__(self, key) -> bool:
        try:
            return self._full_name(key) in self.cache_dict
        except (KeyError, ValueError):
            return False

    def __len__(self) -> int:
        return len(self.cache_dict)

    def __iter__(self) -> Iterator[str]:
        return iter(self.cache_dict)

    def keys(self):
        return self.cache_dict.keys()

    def values(self):
        return self.cache_dict.values()

    def items(self):
        return self.cache_dict.items()

    def __repr__(self) -> str:
        return f"ActivationCache with {len(self)} activations: {list(self.cache_dict)[:4]}..."
