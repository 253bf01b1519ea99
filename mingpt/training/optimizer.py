"""
The optimizer: AdamW, with weight decay only where it regularises. One rule, used by `GPT.configure_optimizers` and
by the Trainer for any model that has no configure_optimizers of its own.

The one idea (the original minGPT's): weight decay pulls a parameter towards zero. That is useful for the weights of
the matmuls (``nn.Linear``), which can otherwise grow to memorise; it is harmful for everything else. A bias or a
LayerNorm gain (which should stay near 1) has no reason to be small, and an embedding row is a learned point, not a
map. So every parameter falls in exactly one of two groups:

    decayed       the weights of nn.Linear layers (a matrix shared with an embedding by weight tying is still a
                  matmul weight: decayed, as in the fast successor)
    not decayed   biases; the weights of nn.LayerNorm and nn.Embedding; any 1-D parameter (a gain or a scale in a
                  home-made module, such as a student's LayerNorm)

A parameter in neither (a raw 2-D ``nn.Parameter`` used as a matmul, a convolution kernel) is an error that names
it: silently guessing would decay, or not decay, something the author never decided about.
"""

from __future__ import annotations

import torch
import torch.nn as nn

__all__ = ["param_groups", "adamw"]

DECAYED_MODULES = (nn.Linear,)
NOT_DECAYED_MODULES = (nn.LayerNorm, nn.Embedding)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """
    Two AdamW parameter groups of `model`'s trainable parameters: ``[{"params": decayed, "weight_decay":
    weight_decay}, {"params": not_decayed, "weight_decay": 0.0}]``. Each parameter appears once (a tied matrix
    too); frozen ones (requires_grad=False) are left out. Raises ValueError for a parameter the rule cannot place.
    """
    decayed = {id(m.weight) for m in model.modules() if isinstance(m, DECAYED_MODULES)}
    not_decayed = {id(p) for m in model.modules() if isinstance(m, NOT_DECAYED_MODULES)
                   for p in m.parameters(recurse=False)}
    groups: tuple[list, list] = ([], [])
    for name, p in model.named_parameters():  # lists a tied matrix once, under its first name
        if not p.requires_grad:
            continue
        if id(p) in decayed:
            groups[0].append(p)
        elif id(p) in not_decayed or name.rsplit(".", 1)[-1] == "bias" or p.dim() < 2:
            groups[1].append(p)
        else:
            raise ValueError(
                f"cannot tell whether to weight-decay parameter {name!r} (shape {tuple(p.shape)}): it is neither the "
                "weight of an nn.Linear (decayed) nor a bias, a 1-D gain or a LayerNorm/Embedding weight (not "
                "decayed). Hold a matmul weight in an nn.Linear, or give the model a configure_optimizers("
                "train_config) method that builds its own AdamW groups."
            )
    return [{"params": groups[0], "weight_decay": weight_decay}, {"params": groups[1], "weight_decay": 0.0}]


def adamw(model: nn.Module, train_config, fused: bool | None = None) -> torch.optim.AdamW:
    """
    AdamW over `param_groups(model, train_config.weight_decay)`, with train_config's learning_rate and betas.
    fused=None uses the fused kernel (the whole update in one pass over memory) when every parameter is on CUDA or
    the CPU.
    """
    for key in ("learning_rate", "betas", "weight_decay"):
        if not hasattr(train_config, key):
            raise ValueError(f"the optimizer needs train_config.{key} (see Trainer.get_default_config())")
    groups = param_groups(model, train_config.weight_decay)
    if fused is None:
        fused = all(p.device.type in ("cuda", "cpu") for g in groups for p in g["params"])
    return torch.optim.AdamW(groups, lr=train_config.learning_rate, betas=tuple(train_config.betas), fused=fused)
