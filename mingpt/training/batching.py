"""
Batching: which examples each optimizer step trains on, and how a map-style data set is turned into batches.

The one idea: the batch of optimizer step s is a pure function of (seed, s). `StepSampler` draws step s's *global*
batch from a generator seeded with (seed, stream, s) and hands each process its slice, so

- resuming at step k needs no sampler state: step k draws the same indices whether or not the run was stopped;
- 2 processes x 8 examples see exactly the examples 1 process x 16 sees (each takes its own slice).

A data set reaches the Trainer in one of two ways:

- it **batches itself**: it has ``batch_iterator(batch_size, grad_accum_steps, world_size, rank, seed, stream,
  start_step, state=None)`` returning an endless iterator of (x, y) micro-batches (`mingpt.data.TokenStream` gathers
  its windows in one vectorised read; `mingpt.data.token_shards.TokenShards` walks its shards). If that iterator has a
  ``state_dict()``, the Trainer saves it in checkpoints and passes it back as `state` on resume;
- otherwise it is an ordinary map-style Dataset (``len``, ``ds[i]``), read by a DataLoader (`loader_batches`),
  optionally with worker processes for expensive ``__getitem__`` work (decoding, augmentation).

Either way the Trainer checks the first batch once (`check_batch`), so a data set of the wrong shape fails with a
message about the data set, not with a stack trace from deep inside the model.
"""

from __future__ import annotations

import functools
import random
from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from mingpt.utils import check_int

__all__ = ["StepSampler", "seed_worker", "loader_batches", "check_dataset", "check_batch", "next_checked"]


class StepSampler:
    """
    The example indices (int64 arrays) of each micro-batch this process trains on, step after step, from `start`.

    Step s draws its *global* batch, ``grad_accum_steps * world_size * batch_size`` indices uniformly with
    replacement from [0, n) (as the original minGPT's RandomSampler did), from a generator seeded with
    (seed, stream, s). Micro-step m of process r takes slice ``m * world_size + r`` of it, so 2 processes x 4
    examples see exactly what 1 process x 8 sees, and step s is the same whether or not the run was resumed.
    stream separates independent sequences (the Trainer uses 0 for training batches, 1 for evaluation).
    """

    def __init__(self, n: int, batch_size: int, grad_accum_steps: int = 1, world_size: int = 1, rank: int = 0,
                 seed: int = 0, stream: int = 0, start: int = 0):
        self.n = check_int(n, "n (the number of examples)", 1)
        self.batch_size = check_int(batch_size, "batch_size", 1)
        self.accum = check_int(grad_accum_steps, "grad_accum_steps", 1)
        self.world_size = check_int(world_size, "world_size", 1)
        self.rank = check_int(rank, "rank", 0, world_size - 1, hint=" (one of the world_size processes)")
        self.seed, self.stream, self.start = seed, stream, start

    def __iter__(self) -> Iterator[np.ndarray]:
        step, B = self.start, self.batch_size
        while True:
            rng = np.random.default_rng([self.seed, self.stream, step])  # a fresh, well-mixed generator per step
            global_batch = rng.integers(0, self.n, size=self.accum * self.world_size * B)
            for micro in range(self.accum):
                lo = (micro * self.world_size + self.rank) * B  # micro-step major, then rank: disjoint slices
                yield global_batch[lo : lo + B]
            step += 1


def seed_worker(worker_id: int, seed: int, rank: int, start: int) -> None:
    """
    A DataLoader worker's start: seed torch, numpy and python's `random` from (seed, rank, start step, worker id),
    so random augmentation in ``__getitem__`` differs between workers, processes and resumed runs, and is the same
    when the run is repeated. (Each generator gets its own stream, all derived from one SeedSequence.)
    """
    torch_seed, numpy_seed, python_seed = np.random.SeedSequence([seed, 2, rank, start, worker_id]).generate_state(3)
    torch.manual_seed(int(torch_seed))
    np.random.seed(int(numpy_seed))
    random.seed(int(python_seed))


def loader_batches(dataset: Dataset, batch_size: int, grad_accum_steps: int, world_size: int, rank: int, seed: int,
                   stream: int, start_step: int, num_workers: int = 0, pin_memory: bool = False) -> Iterator:
    """
    The (x, y) micro-batches of a map-style data set, read by a DataLoader in the order `StepSampler` decides.
    Each worker seeds torch, numpy and python from (seed, rank, start step, worker id): see `seed_worker`.
    """
    sampler = StepSampler(len(dataset), batch_size, grad_accum_steps, world_size, rank, seed, stream, start_step)
    # The DataLoader draws a base seed for its workers; from its own generator, not from training's RNG.
    loader_seed = int(np.random.default_rng([seed, 2, rank, start_step]).integers(2**62))
    generator = torch.Generator().manual_seed(loader_seed)
    init = functools.partial(seed_worker, seed=seed, rank=rank, start=start_step)
    # A batch_sampler yields lists of Python ints: `dataset[i]` then gets the plain int a user's __getitem__ expects.
    return iter(DataLoader(dataset, batch_sampler=map(np.ndarray.tolist, sampler), num_workers=num_workers,
                           pin_memory=pin_memory, generator=generator,
                           worker_init_fn=init if num_workers else None))


def check_dataset(dataset: Any, name: str) -> None:
    """Raise TypeError unless `dataset` is map-style (``len``, ``ds[i]``), ValueError if it is empty."""
    if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
        raise TypeError(f"{name} must be a map-style Dataset (with __len__ and __getitem__)")
    if len(dataset) == 0:
        raise ValueError(f"{name} is empty: it has no examples to train or evaluate on")


def check_batch(batch: Any, name: str) -> None:
    """Raise TypeError / ValueError, naming the data set, unless `batch` is an (x, y) pair of (B, ...) tensors."""
    if not (isinstance(batch, (tuple, list)) and len(batch) == 2 and all(isinstance(t, torch.Tensor) for t in batch)):
        got = type(batch).__name__ + (f" of {len(batch)}" if isinstance(batch, (tuple, list)) else "")
        raise TypeError(f"{name} items must be (x, y) pairs of tensors, but a batch came out as a {got}")
    x, y = batch
    if x.dim() < 2 or x.shape != y.shape:
        raise ValueError(
            f"{name} items must be x and y tensors of one shape, e.g. (T,) each, batched to (B, T); "
            f"got a batch with x {tuple(x.shape)} and y {tuple(y.shape)}"
        )


def next_checked(batches: Iterator, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The next batch of data set `name`, checked (the Trainer checks the first one): items of different shapes,
    which the DataLoader fails to stack, and batches that are not (x, y) pairs become messages about the data set."""
    try:
        batch = next(batches)
    except RuntimeError as e:
        raise ValueError(f"could not batch {name}: {e}; every item must have the same shape") from e
    check_batch(batch, name)
    return batch
