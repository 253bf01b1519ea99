"""
The names of a GPT's hook points, TransformerLens' (TL) names, and the checks that turn a user's names into them.

The one idea: every activation a hook may see has one full name, and TL's short names map onto it, so its
tutorials carry over. Names and shapes (B batch, T time, C channels, nh heads, hs head size):

    hook_embed, hook_pos_embed                                  (B, T, C)
    blocks.{i}.hook_resid_pre / hook_resid_mid / hook_resid_post (B, T, C)
    blocks.{i}.ln1.hook_scale (B, T, 1), ln1.hook_normalized    (B, T, C)   and ln2.*, before the MLP
    blocks.{i}.attn.hook_q / hook_k / hook_v / hook_z            (B, T, nh, hs)
    blocks.{i}.attn.hook_attn_scores / hook_pattern              (B, nh, T_q, T_k)  scores masked with -inf
    blocks.{i}.attn.hook_result                                  (B, T, nh, C)  each head's output, on request
    blocks.{i}.hook_attn_out / hook_mlp_out                      (B, T, C)
    blocks.{i}.mlp.hook_pre / hook_post                          (B, T, 4C)  before / after the GELU
    ln_final.hook_scale, ln_final.hook_normalized

    >>> get_act_name("pattern", 1)
    'blocks.1.attn.hook_pattern'

Running hooks is hooks.py's job; reading a recorded cache is activation_cache.py's. Both need these names, so
they live here, below both.
"""

from __future__ import annotations

import difflib
import re
from typing import Callable

import torch

__all__ = ["BLOCK_HOOKS", "SHORT_NAMES", "HookFn", "HookPoint", "hook_names", "get_act_name", "check_hook_name",
           "resolve_names"]

BLOCK_HOOKS = (
    "hook_resid_pre", "ln1.hook_scale", "ln1.hook_normalized", "attn.hook_q", "attn.hook_k", "attn.hook_v",
    "attn.hook_attn_scores", "attn.hook_pattern", "attn.hook_z", "attn.hook_result", "hook_attn_out",
    "hook_resid_mid", "ln2.hook_scale", "ln2.hook_normalized", "mlp.hook_pre", "mlp.hook_post", "hook_mlp_out",
    "hook_resid_post",
)
# TL's short names (its `utils.get_act_name`): where each lives inside block i.
SHORT_NAMES = {
    "resid_pre": "hook_resid_pre", "resid_mid": "hook_resid_mid", "resid_post": "hook_resid_post",
    "attn_out": "hook_attn_out", "mlp_out": "hook_mlp_out",
    "q": "attn.hook_q", "k": "attn.hook_k", "v": "attn.hook_v", "z": "attn.hook_z", "result": "attn.hook_result",
    "attn_scores": "attn.hook_attn_scores", "pattern": "attn.hook_pattern", "attn": "attn.hook_pattern",
    "pre": "mlp.hook_pre", "post": "mlp.hook_post",
}

HookFn = Callable[[torch.Tensor, "HookPoint"], "torch.Tensor | None"]


def hook_names(model) -> list[str]:
    """Every hook point of this model, in the order the forward pass reaches them."""
    names = ["hook_embed", "hook_pos_embed"]
    for i in range(model.config.n_layer):
        names += [f"blocks.{i}.{name}" for name in BLOCK_HOOKS]
    return names + ["ln_final.hook_scale", "ln_final.hook_normalized"]


def get_act_name(name: str, layer: int | None = None, layer_type: str | None = None) -> str:
    """TL's short names to full ones: ("pattern", 1) -> 'blocks.1.attn.hook_pattern'; ("scale",) -> ln_final's."""
    if name in ("embed", "pos_embed"):
        return f"hook_{name}"
    if name in ("scale", "normalized"):
        if layer is None:
            return f"ln_final.hook_{name}"
        if layer_type not in ("ln1", "ln2"):
            raise ValueError(f"{name!r} at layer {layer} needs layer_type 'ln1' or 'ln2', got {layer_type!r}; "
                             f"e.g. cache[{name!r}, {layer}, 'ln1'] (no layer means ln_final)")
        return f"blocks.{layer}.{layer_type}.hook_{name}"
    if name not in SHORT_NAMES:
        raise KeyError(f"unknown activation name {name!r}; short names are embed, pos_embed, scale, normalized, "
                       f"{', '.join(SHORT_NAMES)}")
    if layer is None:
        raise ValueError(f"{name!r} lives in every block: give a layer, e.g. ({name!r}, 0)")
    return f"blocks.{layer}.{SHORT_NAMES[name]}"


class HookPoint:
    """The second argument of a hook function, as in TL: ``hook.name`` and ``hook.layer()``."""

    def __init__(self, name: str):
        self.name = name

    def layer(self) -> int:
        match = re.match(r"blocks\.(\d+)\.", self.name)
        if match is None:
            raise ValueError(f"hook point {self.name!r} is not inside a block, so it has no layer")
        return int(match.group(1))

    def __repr__(self) -> str:
        return f"HookPoint({self.name!r})"


def check_hook_name(model, name: str) -> str:
    """Return name if it is one of model's hook points; else a KeyError suggesting the closest real name."""
    valid = hook_names(model)
    if name not in valid:
        close = difflib.get_close_matches(name, valid, n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else "; mingpt.interp.hooks.hook_names(model) lists them all"
        raise KeyError(f"unknown hook point {name!r}{hint}")
    return name


def resolve_names(model, names_filter, what: str = "names_filter") -> list[str]:
    """A names_filter (None = all, a name, a list of names, or a predicate on names) as a list of hook names."""
    valid = hook_names(model)
    if names_filter is None:
        return valid
    if isinstance(names_filter, str):
        return [check_hook_name(model, names_filter)]
    if callable(names_filter):
        names = [name for name in valid if names_filter(name)]
        if not names:
            raise ValueError(f"{what} {names_filter!r} matches none of the {len(valid)} hook points, e.g. "
                             f"{valid[2]!r}; see mingpt.interp.hooks.hook_names(model)")
        return names
    names = [check_hook_name(model, name) for name in names_filter]
    if not names:
        raise ValueError(f"{what} is an empty list: it would record nothing; pass None to record every hook point")
    return names
