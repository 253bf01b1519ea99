"""
The Trainer's checks: of its settings before anything starts, and of every step's loss before it touches the weights.

The one idea: fail early, once, with a message that names the setting or the step and says what to try. A bad
setting found at step 10,000 (or a NaN carried silently into every later step) costs a run; found here it costs a
line. `check_config` is what `Trainer.check_config` does (a script may call it before it creates anything), and
`stop_if_nonfinite` is the guard the Trainer runs between the backward pass and the optimizer step.
"""

from __future__ import annotations

import inspect
import math

import torch

from mingpt.cfgnode import CfgNode
from mingpt.training.distributed import any_process
from mingpt.training.optimizer import OPTIMIZERS
from mingpt.training.precision import PRECISIONS
from mingpt.training.schedule import check_schedule
from mingpt.utils import check_int

__all__ = ["check_config", "check_forward_takes_x_y", "stop_if_nonfinite"]


def check_config(config: CfgNode, defaults: CfgNode, has_val_dataset: bool = True) -> CfgNode:
    """
    `defaults` merged with `config` and checked: a private copy. Unknown keys raise KeyError, wrong types
    TypeError, bad values ValueError, each naming the ``trainer.`` setting.
    """
    if not isinstance(config, CfgNode):
        raise TypeError(f"config must be a CfgNode (Trainer.get_default_config()), got {type(config).__name__}")
    C = defaults
    C.merge_from_dict(config.to_dict())
    for key, low in (("batch_size", 1), ("grad_accum_steps", 1), ("eval_iters", 1), ("num_workers", 0),
                     ("warmup_iters", 0), ("eval_interval", 0), ("checkpoint_interval", 0), ("seed", 0)):
        check_int(getattr(C, key), f"trainer.{key}", low)
    for key in ("max_iters", "lr_decay_iters"):
        if getattr(C, key) is not None:
            check_int(getattr(C, key), f"trainer.{key}", 1, hint=" (or None)")
    if not 0 < C.learning_rate < math.inf:
        raise ValueError(f"trainer.learning_rate must be a positive number such as 3e-4, got {C.learning_rate!r}")
    if not 0 <= C.weight_decay < math.inf:
        raise ValueError(f"trainer.weight_decay must be >= 0 (0 turns it off), got {C.weight_decay!r}")
    if not C.grad_norm_clip >= 0:
        raise ValueError(f"trainer.grad_norm_clip must be >= 0 (0 turns clipping off), got {C.grad_norm_clip!r}")
    if not all(0 <= b < 1 for b in C.betas):
        raise ValueError(f"trainer.betas must be two numbers in [0, 1) such as (0.9, 0.95), got {C.betas!r}")
    if C.optimizer not in OPTIMIZERS:
        raise ValueError(f"trainer.optimizer must be one of {sorted(OPTIMIZERS)}, got {C.optimizer!r}")
    if not 0 < C.muon_learning_rate < math.inf:
        raise ValueError(f"trainer.muon_learning_rate must be a positive number such as 0.02, got "
                         f"{C.muon_learning_rate!r}")
    if not 0 <= C.muon_momentum < 1:
        raise ValueError(f"trainer.muon_momentum must be in [0, 1) such as 0.95, got {C.muon_momentum!r}")
    check_schedule(C)  # lr_schedule, min_lr, the cosine's horizon
    if C.eval_interval and not has_val_dataset:
        raise ValueError("trainer.eval_interval is set but no val_dataset was given; pass one or set it to 0")
    if C.precision not in PRECISIONS:
        raise ValueError(f"trainer.precision must be one of {PRECISIONS}, got {C.precision!r}")
    return C


def check_forward_takes_x_y(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    """The Trainer's one demand of a model, checked before the first step: forward(x, y) returns (output, loss).
    A forward that takes only x would otherwise fail with a bare "takes 2 positional arguments but 3 were given"."""
    try:
        signature = inspect.signature(model.forward)
    except (TypeError, ValueError):  # no Python signature to read: the call itself will speak
        return
    try:
        signature.bind(x, y)
    except TypeError as e:
        raise TypeError(
            f"the Trainer calls model(x, y) and needs (output, loss) back, but {type(model).__name__}.forward"
            f"{signature} cannot take (x, y) ({e}); give forward a targets argument and return the loss with the "
            f"output, e.g. def forward(self, idx, targets=None): ... return logits, loss"
        ) from None


def stop_if_nonfinite(loss: torch.Tensor, grad_norm: torch.Tensor | None, optimizer: torch.optim.Optimizer,
                      step: int, lr: float, world_size: int = 1) -> None:
    """
    Raise FloatingPointError naming the step if `loss` (or `grad_norm`, when given) is NaN/inf on any process,
    after dropping the step's gradients: called before ``optimizer.step()``, it leaves the weights as they were
    after `step` steps. Pass grad_norm=None where a loss scaler skips overflowing steps itself (fp16).
    """
    bad = ~torch.isfinite(loss.detach().float())
    if grad_norm is not None:
        bad = bad | ~torch.isfinite(grad_norm.float())
    if not any_process(bad, world_size):  # one host sync per step: the price of never stepping into NaN
        return
    optimizer.zero_grad(set_to_none=True)
    raise FloatingPointError(
        f"loss is {loss.item()} at step {step} (lr {lr:.2e}, gradient norm "
        f"{'n/a' if grad_norm is None else f'{grad_norm.item():.3g}'}): training has diverged. The step "
        f"was not applied: the model holds the weights after {step} steps. Try a lower "
        "trainer.learning_rate, warmup_iters > 0, grad_norm_clip > 0, precision='fp32', or check the data; "
        "resume from the last good checkpoint (trainer.stop_on_nonfinite=False trains on regardless)."
    )
