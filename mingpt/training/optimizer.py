"""
The optimizer: AdamW, with weight decay only where it regularises; or Muon for the hidden matrices with that AdamW for
the rest (``trainer.optimizer = 'muon'``, at the end of this file). `make_optimizer` picks one by that name; it is
used by `GPT.configure_optimizers` and by the Trainer for any model that has no configure_optimizers of its own.

The one idea (the original minGPT's): weight decay pulls a parameter towards zero. That is useful for the weights of
the matmuls (``nn.Linear``), which can otherwise grow to memorise; it is harmful for everything else. A bias or a
LayerNorm gain (which should stay near 1) has no reason to be small, and an embedding row is a learned point, not a
map. So every parameter falls in exactly one of two groups:

    decayed       the weights of nn.Linear layers (a matrix shared with an embedding by weight tying is still a
                  matmul weight: decayed, as in the fast successor), and nn.MultiheadAttention's input projections
                  (in_proj_weight, or q/k/v_proj_weight: nn.Linear weights that PyTorch keeps as raw parameters)
    not decayed   biases; the weights of nn.LayerNorm and nn.Embedding; any 1-D parameter (a gain or a scale in a
                  home-made module, such as a student's LayerNorm)

A parameter in neither (a raw 2-D ``nn.Parameter`` used as a matmul, a convolution kernel) is an error that names
it: silently guessing would decay, or not decay, something the author never decided about.
"""

from __future__ import annotations

import torch
import torch.nn as nn

__all__ = ["param_groups", "adamw", "muon_split", "MuonWithAdamW", "muon_with_adamw", "OPTIMIZERS", "make_optimizer"]

DECAYED_MODULES = (nn.Linear,)
MHA_PROJECTIONS = ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight")  # its out_proj is a Linear
NOT_DECAYED_MODULES = (nn.LayerNorm, nn.Embedding)


def param_groups(model: nn.Module, weight_decay: float, matmuls=()) -> list[dict]:
    """
    Two AdamW parameter groups of `model`'s trainable parameters: ``[{"params": decayed, "weight_decay":
    weight_decay}, {"params": not_decayed, "weight_decay": 0.0}]``. Each parameter appears once (a tied matrix
    too); frozen ones (requires_grad=False) are left out. Raises ValueError for a parameter the rule cannot place.
    matmuls: raw parameters their caller declares to be matmul weights, decayed as an nn.Linear's would be.
    """
    decayed = {id(m.weight) for m in model.modules() if isinstance(m, DECAYED_MODULES)} | {id(p) for p in matmuls}
    decayed |= {id(getattr(m, n)) for m in model.modules() if isinstance(m, nn.MultiheadAttention)
                for n in MHA_PROJECTIONS if getattr(m, n, None) is not None}
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


def adamw(model: nn.Module, train_config, fused: bool | None = None, matmuls=()) -> torch.optim.AdamW:
    """
    AdamW over `param_groups(model, train_config.weight_decay, matmuls)`, with train_config's learning_rate and
    betas. fused=None uses the fused kernel (the whole update in one pass over memory) when every parameter is on
    CUDA or the CPU.
    """
    _require(train_config, ("learning_rate", "betas", "weight_decay"))
    groups = param_groups(model, train_config.weight_decay, matmuls)
    if fused is None:
        fused = all(p.device.type in ("cuda", "cpu") for g in groups for p in g["params"])
    return torch.optim.AdamW(groups, lr=train_config.learning_rate, betas=tuple(train_config.betas), fused=fused)


def _require(train_config, keys: tuple[str, ...]) -> None:
    for key in keys:
        if not hasattr(train_config, key):
            raise ValueError(f"the optimizer needs train_config.{key} (see Trainer.get_default_config())")


# ---------------------------------------------------------------------------------------------------------------
# Muon for the hidden matrices, AdamW for the rest (the split of the GPT-2 speedrun and of nanochat).
#
# Why two optimizers: Muon (torch.optim.Muon) replaces a matrix's update by the nearest orthogonal matrix (a few
# Newton-Schulz iterations on the momentum), so every direction of the matrix moves by the same amount instead of
# the few directions that dominate the gradient. That only means something for a matrix that maps one hidden space
# to another: the attention and MLP weights inside the blocks. An embedding is a table of rows looked up one at a
# time, the head maps to the vocabulary, and gains and biases are vectors: those keep AdamW and its groups above.

def muon_split(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """
    ``(hidden, rest)``: the trainable parameters Muon takes (the weights of nn.Linear layers, except the output
    layer ``model.lm_head``, tied to the token embedding or not) and those AdamW keeps
    (everything else). Each parameter appears once. Raises ValueError if the model has no ``lm_head`` (the split
    must know which Linear is the head) or no hidden matrix at all.
    """
    head = getattr(model, "lm_head", None)
    if not isinstance(head, nn.Linear):
        raise ValueError(
            f"Muon needs to know the model's output layer, which AdamW keeps: expected an nn.Linear at "
            f"model.lm_head (GPT's and transformers' name), got {type(head).__name__}. Name the head lm_head, or "
            "use trainer.optimizer='adamw'."
        )
    # The head's matrix stays AdamW's whether it is its own or tied to the token embedding (then it is both).
    matrices = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)} - {id(head.weight)}
    hidden, rest = [], []
    for _, p in model.named_parameters():  # a tied matrix once, under its first name
        if p.requires_grad:
            (hidden if id(p) in matrices else rest).append(p)
    if not hidden:
        raise ValueError("Muon found no hidden matrix (an nn.Linear weight other than the head) to optimize; "
                         "use trainer.optimizer='adamw'")
    return hidden, rest


class MuonWithAdamW:
    """
    Two optimizers that step as one: ``muon`` over the hidden matrices, ``adamw`` over the rest. It has what the
    Trainer, the GradScaler and checkpoints use of an optimizer: ``param_groups`` (AdamW's, then Muon's: the same
    dicts, so setting a group's "lr" reaches the optimizer that owns it), ``step``, ``zero_grad``, ``state_dict``
    and ``load_state_dict``. A group's ``lr_scale`` is its peak learning rate over trainer.learning_rate: the
    Trainer sets ``lr = schedule(step) * lr_scale``, so one schedule drives both.
    """

    def __init__(self, muon: torch.optim.Muon, adamw: torch.optim.AdamW):
        self.muon, self.adamw = muon, adamw

    @property
    def param_groups(self) -> list[dict]:
        # A property, not a list made once: load_state_dict gives each optimizer new group dicts.
        return self.adamw.param_groups + self.muon.param_groups

    def step(self, closure=None) -> None:
        if closure is not None:
            raise ValueError("MuonWithAdamW.step takes no closure: compute the loss and backward() before step()")
        self.adamw.step()
        self.muon.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.adamw.zero_grad(set_to_none=set_to_none)
        self.muon.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict:
        return {"adamw": self.adamw.state_dict(), "muon": self.muon.state_dict()}

    def load_state_dict(self, state_dict: dict) -> None:
        if not isinstance(state_dict, dict) or set(state_dict) != {"adamw", "muon"}:
            keys = sorted(state_dict) if isinstance(state_dict, dict) else type(state_dict).__name__
            raise ValueError(
                f"expected the state of a Muon + AdamW optimizer (keys ['adamw', 'muon']), got {keys}: the "
                "checkpoint was probably saved by another optimizer; resume with the trainer.optimizer it used"
            )
        self.adamw.load_state_dict(state_dict["adamw"])
        self.muon.load_state_dict(state_dict["muon"])

    def __repr__(self) -> str:
        return f"MuonWithAdamW(\n  muon={self.muon!r},\n  adamw={self.adamw!r}\n)"


def muon_with_adamw(model: nn.Module, train_config, fused: bool | None = None) -> MuonWithAdamW:
    """
    Muon (train_config.muon_learning_rate, muon_momentum, weight_decay) over `muon_split`'s hidden matrices, and
    AdamW over the rest with the weight-decay rule above (so an untied head is decayed, embeddings are not).
    Muon's learning rate uses Keller Jordan's shape adjustment (torch's default, "original"), as the speedrun and
    nanochat tune it; their values differ from AdamW's by orders of magnitude, hence a learning rate of its own.
    """
    _require(train_config, ("learning_rate", "betas", "weight_decay", "muon_learning_rate", "muon_momentum"))
    hidden, _ = muon_split(model)
    hidden_ids = {id(p) for p in hidden}
    groups = [{**g, "params": [p for p in g["params"] if id(p) not in hidden_ids]}
              for g in param_groups(model, train_config.weight_decay)]
    if fused is None:
        fused = all(p.device.type in ("cuda", "cpu") for g in groups for p in g["params"])
    adamw_part = torch.optim.AdamW(groups, lr=train_config.learning_rate, betas=tuple(train_config.betas),
                                   fused=fused)
    muon = torch.optim.Muon(hidden, lr=train_config.muon_learning_rate, weight_decay=train_config.weight_decay,
                            momentum=train_config.muon_momentum)
    muon.param_groups[0]["lr_scale"] = train_config.muon_learning_rate / train_config.learning_rate
    return MuonWithAdamW(muon, adamw_part)


OPTIMIZERS = {"adamw": adamw, "muon": muon_with_adamw}


def make_optimizer(model: nn.Module, train_config, fused: bool | None = None):
    """The optimizer train_config.optimizer names (see OPTIMIZERS; 'adamw' if the config has no such key)."""
    name = getattr(train_config, "optimizer", "adamw")
    if name not in OPTIMIZERS:
        raise ValueError(f"trainer.optimizer must be one of {sorted(OPTIMIZERS)}, got {name!r}")
    return OPTIMIZERS[name](model, train_config, fused)
