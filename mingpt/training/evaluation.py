"""
Validation loss of any model on a token shard: the number to compare a training run with OpenAI's GPT-2.

The one idea: "val loss" is only comparable between runs if it is the mean next-token loss over the *same* tokens.
`eval_loss` therefore sweeps the shard's non-overlapping windows in file order (no sampling), from the first
window, and averages over every target token; several processes split the windows and add up their sums. It
works for a checkpoint being trained (`EvalLoss` callback) and for a pretrained model (the command line in
projects/gpt2/evaluate.py), as the reference repository's eval_gpt2 configurations do.

    >>> loss = eval_loss(GPT.from_pretrained("gpt2"), TokenShards.from_directory("data/owt", "val", 1024))
"""

from __future__ import annotations

import logging

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from mingpt.training.precision import autocast
from mingpt.utils import check_int, eval_mode

__all__ = ["eval_loss", "evaluation_due", "EvalLoss", "PeriodicEvaluation"]

logger = logging.getLogger(__name__)


def _all_reduce_sum(values: torch.Tensor, world_size: int) -> torch.Tensor:
    if world_size > 1 and dist.is_available() and dist.is_initialized():
        dist.all_reduce(values)
    return values


@torch.no_grad()
def eval_loss(model: torch.nn.Module, dataset, batch_size: int = 8, max_batches: int | None = None,
              device: str | torch.device | None = None, autocast_dtype: torch.dtype | None = None,
              rank: int = 0, world_size: int = 1) -> float:
    """
    Mean next-token cross-entropy of `model` over the windows of `dataset` (a TokenShards or TokenStream-like
    map-style set of (x, y) windows), in order: all of them, or the first ``max_batches * batch_size``.
    model(x) must return logits (B, T, V) or a (logits, loss) pair. Under DDP pass rank / world_size: each
    process scores windows rank, rank + world_size, ... and the sums are all-reduced.
    """
    check_int(batch_size, "batch_size", 1)
    if max_batches is not None:
        check_int(max_batches, "max_batches", 1, hint=" (or None for every window)")
    n = len(dataset)
    if n == 0:
        raise ValueError("the evaluation data set has no windows")
    if max_batches is not None:
        n = min(n, max_batches * batch_size)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    mine = np.arange(rank, n, world_size)
    totals = torch.zeros(2, dtype=torch.float64, device=device)  # (sum of token losses, number of tokens)
    with eval_mode(model):  # dropout off; the caller's training mode comes back afterwards, even on errors
        for lo in range(0, len(mine), batch_size):
            pairs = [dataset[int(i)] for i in mine[lo : lo + batch_size]]
            x = torch.stack([p[0] for p in pairs]).to(device)  # (B, T)
            y = torch.stack([p[1] for p in pairs]).to(device)  # (B, T)
            with autocast(device.type, autocast_dtype):
                out = model(x)
            logits = out[0] if isinstance(out, (tuple, list)) else out  # (B, T, V)
            losses = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1), reduction="sum")
            totals += torch.stack([losses.double(), torch.tensor(float(y.numel()), dtype=torch.float64,
                                                                 device=device)])
    totals = _all_reduce_sum(totals, world_size)
    return (totals[0] / totals[1]).item()


def evaluation_due(steps_done: int, interval: int, finished: bool) -> bool:
    """
    The one schedule of periodic evaluation, for the Trainer's own val loss (``trainer.eval_interval``) and for every
    `PeriodicEvaluation`: after each `interval`-th step, and once more when training finishes (so the last weights
    are always measured); interval 0 means never.
    """
    return interval > 0 and (steps_done % interval == 0 or finished)


class PeriodicEvaluation:
    """
    What the evaluation callbacks share: `measure(trainer)` when `evaluation_due` says so (every `interval` steps,
    and when training ends, however it ends: on_train_end), at most once per step, each result kept in ``history``
    as (step, result) and logged as `describe(result)`. Subclasses say what to measure and how to describe it.
    """

    def __init__(self, interval: int):
        self.interval = check_int(interval, "interval", 1)
        self.history: list[tuple[int, object]] = []

    def _run(self, trainer) -> None:
        step = trainer.steps_done
        if self.history and self.history[-1][0] == step:
            return  # already evaluated at this step (the last periodic one can fall on the final step)
        result = self.measure(trainer)
        self.history.append((step, result))
        if trainer.is_main_process:
            logger.info("step %d | %s", step, self.describe(result))

    def on_batch_end(self, trainer) -> None:
        if evaluation_due(trainer.steps_done, self.interval, finished=False):
            self._run(trainer)

    def on_train_end(self, trainer) -> None:
        if evaluation_due(trainer.steps_done, self.interval, finished=True):
            self._run(trainer)


class EvalLoss(PeriodicEvaluation):
    """
    A Trainer callback: every `interval` steps (and when training ends), `eval_loss` over the first
    ``max_batches * batch_size`` windows of `dataset`, logged and kept in ``history`` as (step, loss). Unlike the
    Trainer's own sampled val loss, this is the same fixed sweep every time, comparable with published numbers.
    """

    def __init__(self, dataset, interval: int, batch_size: int = 8, max_batches: int | None = None):
        super().__init__(interval)
        self.dataset, self.batch_size, self.max_batches = dataset, batch_size, max_batches

    def measure(self, trainer) -> float:
        return eval_loss(trainer.model, self.dataset, self.batch_size, self.max_batches, trainer.device,
                         trainer.precision.autocast_dtype, trainer.rank, trainer.world_size)

    def describe(self, loss: float) -> str:
        windows = "all" if self.max_batches is None else self.max_batches * self.batch_size
        return f"eval_loss {loss:.4f} over {windows} windows"
