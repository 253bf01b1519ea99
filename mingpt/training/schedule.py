"""
The learning-rate schedule, and keeping it when a run is resumed.

The one idea: the learning rate is a pure function of the step and the config, ``get_lr(step, config)``, so a
resumed run needs no scheduler state, only the same config. The one number that is easy to lose is the cosine's
horizon: left unset (``lr_decay_iters=None``) it means "max_iters", and a resume with a larger max_iters would
quietly restart the decay (the learning rate would jump from min_lr back towards its peak). So the Trainer fixes
the horizon when training starts, checkpoints record it, and `keep_schedule_on_resume` puts it back unless the
user chose a new one, and says in words what the schedule does from there.
"""

from __future__ import annotations

import math

from mingpt.cfgnode import CfgNode

__all__ = ["SCHEDULES", "get_lr", "check_schedule", "keep_schedule_on_resume"]

SCHEDULES = ("constant", "cosine")


def get_lr(it: int, config: CfgNode) -> float:
    """
    The learning rate for step `it` (0-based). Both schedules warm up linearly over warmup_iters steps (large
    early updates on random weights are unstable); 'cosine' then decays along half a cosine to min_lr by
    lr_decay_iters (default max_iters) and stays there.
    """
    lr, warmup = config.learning_rate, config.warmup_iters
    if it < warmup:
        return lr * (it + 1) / (warmup + 1)
    if config.lr_schedule == "constant":
        return lr
    min_lr = lr / 10 if config.min_lr is None else config.min_lr
    decay_iters = config.lr_decay_iters or config.max_iters
    if it >= decay_iters:
        return min_lr
    progress = (it - warmup) / max(1, decay_iters - warmup)  # 0 -> 1
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (lr - min_lr)


def check_schedule(config: CfgNode) -> None:
    """Raise ValueError, naming the trainer setting, if the schedule settings of a trainer config do not make one."""
    if config.lr_schedule not in SCHEDULES:
        raise ValueError(f"trainer.lr_schedule must be one of {SCHEDULES}, got {config.lr_schedule!r}")
    if config.min_lr is not None and not 0 <= config.min_lr <= config.learning_rate:
        raise ValueError(f"trainer.min_lr must be in [0, learning_rate={config.learning_rate}], got {config.min_lr!r}")
    if config.lr_schedule == "cosine" and config.max_iters is None and config.lr_decay_iters is None:
        raise ValueError("the cosine schedule needs a horizon: set trainer.max_iters or trainer.lr_decay_iters")


def keep_schedule_on_resume(config: CfgNode, saved: dict, step: int) -> str | None:
    """
    Resuming at `step` from a checkpoint whose trainer config was `saved` (a dict): give `config` the run's cosine
    horizon (its lr_decay_iters, or its max_iters when that was unset) unless `config` sets lr_decay_iters itself.
    Returns a sentence for the log saying what the schedule does from here, or None if there is nothing to say.
    """
    if config.lr_schedule != "cosine" or saved.get("lr_schedule", "cosine") != "cosine":
        return None
    old_horizon = saved.get("lr_decay_iters") or saved.get("max_iters")
    if not old_horizon:
        return None
    if config.lr_decay_iters is None:
        config.lr_decay_iters = old_horizon
        if step >= old_horizon:
            return (f"learning rate: the run's cosine schedule ended at step {old_horizon}, so it stays at "
                    f"min_lr={get_lr(step, config):.2e} from step {step} on; set trainer.lr_decay_iters for a new "
                    "schedule")
        return (f"learning rate: continuing the run's cosine schedule ({get_lr(step, config):.2e} at step {step}, "
                f"reaching min_lr at step {old_horizon}); set trainer.lr_decay_iters for a new schedule")
    if config.lr_decay_iters == old_horizon:
        return None
    before = get_lr(step, CfgNode.from_dict({**config.to_dict(), "lr_decay_iters": old_horizon}))
    return (f"learning rate: trainer.lr_decay_iters={config.lr_decay_iters} replaces the run's horizon of "
            f"{old_horizon}: {before:.2e} -> {get_lr(step, config):.2e} at step {step}")
