"""
Replacement components for GPT: what a class must look like to stand in for mingpt's attention, MLP, LayerNorm
or Block (``GPT(config, attention=MyAttention)``), checked before anything is built.

The one idea: a plug-in point is a *contract*. GPT calls each class in exactly one way, written down here, so a
student's class that does not fit fails at construction with a message naming the signature it needs, instead
of deep inside the first forward pass.
"""

from __future__ import annotations

import inspect

import torch
import torch.nn as nn

__all__ = ["COMPONENT_CONTRACTS", "check_components", "NoMLP"]

# What a replacement component is called with. Block passes kv_cache to attention positionally, so a student's
# attention must accept it (and may raise NotImplementedError for a cache it does not support).
COMPONENT_CONTRACTS = {
    "attention": ("__init__(self, config, layer_idx)", "forward(self, x, kv_cache=None)", ("config", "layer_idx"), 2),
    "mlp": ("__init__(self, config)", "forward(self, x)", ("config",), 1),
    "layer_norm": ("__init__(self, ndim, eps=1e-5, bias=True)", "forward(self, x)", ("ndim", "eps", "bias"), 1),
    "block": ("__init__(self, config, layer_idx)", "forward(self, x, kv_cache=None)", ("config", "layer_idx"), 2),
}


def check_components(**components) -> None:
    """Raise a clear TypeError unless each given component is an nn.Module class with the signatures GPT uses."""
    parts = ("attention", "mlp", "layer_norm")
    if components.get("block") is not None and any(components.get(k) is not None for k in parts):
        raise ValueError("give either block= (a Block class that builds its own parts) or attention=/mlp=/layer_norm=")
    for name, cls in components.items():
        if cls is None:
            continue
        init, forward, init_args, forward_args = COMPONENT_CONTRACTS[name]
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise TypeError(f"{name}= must be an nn.Module class with {init}, got {cls!r} (pass the class itself)")
        for method, wanted, signature in ((cls.__init__, len(init_args), init), (cls.forward, forward_args, forward)):
            params = list(inspect.signature(method).parameters.values())[1:]  # without self
            if any(p.kind == p.VAR_POSITIONAL for p in params):
                continue
            positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
            takes_kwargs = any(p.kind == p.VAR_KEYWORD for p in params)
            if name == "layer_norm" and method is cls.__init__:  # called as layer_norm(C, eps=..., bias=...)
                ok = len(positional) >= 1 and (takes_kwargs or {"eps", "bias"} <= {p.name for p in params})
            else:
                ok = len(positional) >= wanted
            if not ok:
                raise TypeError(f"{name}={cls.__name__} must define {signature}; its {method.__name__} takes "
                                f"({', '.join(p.name for p in params)})")


class NoMLP(nn.Module):
    """
    The MLP of an attention-only model (``config.attn_only = True``, TransformerLens' ``attn_only``): it has no
    weights and writes nothing, so the block computes ``x + attention(ln_1(x))`` and nothing else. A no-op object
    in the MLP's place keeps Block.forward one code path for both kinds of model; adding its zero is exact.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.new_zeros(())  # a 0-dim zero: broadcasts onto the (B, T, C) stream without a (B, T, C) buffer
