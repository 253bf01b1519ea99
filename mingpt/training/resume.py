"""
Resuming a run: "N steps, stop, resume, M steps" continues the same run, not a new one.

The one idea: a run is its weights *and* everything else that decides the next step: Adam's moment estimates, the
loss scaler, the step count (the learning-rate schedule is a function of it), the random-number generators, the data
position and the best validation loss so far. `resume` puts all of them back from the checkpoint the trainer config
names (``trainer.resume``: a path, or 'auto' for work_dir/last.pt), keeps the cosine schedule's horizon when
max_iters grows, and warns when other settings changed, because the run will then differ from an unbroken one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from mingpt.cfgnode import CfgNode
from mingpt.training.checkpoint import load_for_resume, restore_checkpoint, resume_path
from mingpt.training.schedule import keep_schedule_on_resume
from mingpt.utils import set_seed

__all__ = ["Resumed", "resume"]

logger = logging.getLogger(__name__)

# Settings that may change between the two halves of a run without making it a different run.
FREE_TO_CHANGE = ("max_iters", "resume", "work_dir", "device")


@dataclass
class Resumed:
    """What a checkpoint tells the Trainer beyond the model, optimizer, scaler and RNG states it restores."""

    steps_done: int
    val_loss: float | None
    best_val_loss: float | None
    data_state: dict | None  # the position of a data set that batches itself (see mingpt.training.batching)


def resume(config: CfgNode, model: nn.Module, optimizer: torch.optim.Optimizer, scaler: Any,
           rank: int = 0, world_size: int = 1) -> Resumed | None:
    """
    Restore model, optimizer, scaler and RNG states from the checkpoint `config.resume` names; None if there is
    none to resume from. One process restores its RNG states exactly; under DDP each rank re-seeds from
    (seed, rank, step) instead. May set config.lr_decay_iters (the run's cosine horizon).
    """
    path = resume_path(config)
    if path is None:
        return None
    checkpoint = load_for_resume(path)
    step = restore_checkpoint(checkpoint, model, optimizer, scaler, rng=world_size == 1)
    if world_size > 1:
        set_seed(int(np.random.default_rng([config.seed, 3, rank, step]).integers(2**31)))
    metadata = checkpoint["metadata"]
    saved = checkpoint["config"].get("trainer") or {}
    schedule = keep_schedule_on_resume(config, saved, step)  # no LR jump when max_iters grows
    changed = [k for k, v in config.to_dict().items() if k not in FREE_TO_CHANGE and k in saved and saved[k] != v]
    if rank == 0:
        if changed:
            logger.warning("resuming with changed trainer settings %s: the run will differ from an unbroken one",
                           changed)
        logger.info("resumed from %s at step %d", path, step)
        if schedule:
            logger.info("%s", schedule)
    return Resumed(step, metadata.get("val_loss"), metadata.get("best_val_loss"), metadata.get("data_state"))
