"""
Several processes, one model: what the Trainer needs to run the same code under ``torchrun --nproc_per_node=K``.

The one idea: data parallelism. Every process holds the whole model, trains on its own share of each batch, and
DistributedDataParallel averages the gradients during backward, so every copy takes the same step. Nothing else
changes, which is why these few functions are all the Trainer knows about it. One process (no torchrun) is the
case K = 1: each function then does nothing.
"""

from __future__ import annotations

import atexit
import contextlib
import os

import torch
import torch.distributed as dist
import torch.nn as nn

from mingpt.utils import choose_device

__all__ = ["setup_processes", "wrap_for_training", "gradient_sync", "average_over_processes", "any_process",
           "wait_for_all"]


def setup_processes(device: str) -> tuple[int, int, int, torch.device]:
    """
    (rank, local_rank, world_size, device) from the RANK / LOCAL_RANK / WORLD_SIZE variables torchrun sets
    (without them: one process), joining the process group (nccl on CUDA, gloo on CPU) when there are several.
    `device` is the trainer's setting ('auto', 'cpu', 'cuda', ...); each process on a GPU machine takes its own GPU.
    """
    rank, local_rank = int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0))
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    chosen = choose_device(device)
    if chosen.type == "cuda" and world_size > 1:
        chosen = torch.device("cuda", local_rank)
        torch.cuda.set_device(chosen)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if chosen.type == "cuda" else "gloo")
        atexit.register(lambda: dist.is_initialized() and dist.destroy_process_group())
    return rank, local_rank, world_size, chosen


def wrap_for_training(model: nn.Module, device: torch.device, world_size: int) -> nn.Module:
    """`model` wrapped in DistributedDataParallel (gradients averaged across processes in backward), or as is."""
    if world_size == 1:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def gradient_sync(model: nn.Module, world_size: int, last_micro_step: bool) -> contextlib.AbstractContextManager:
    """
    The context for one micro-step's backward. Under DDP every backward all-reduces gradients; on all but the last
    micro-step of a step that is wasted work, so no_sync() lets gradients accumulate locally and the last backward
    syncs the sum.
    """
    return model.no_sync() if world_size > 1 and not last_micro_step else contextlib.nullcontext()


def average_over_processes(value: torch.Tensor, world_size: int) -> torch.Tensor:
    """The mean of `value` over all processes (in place), e.g. a validation loss each process measured."""
    if world_size > 1:
        dist.all_reduce(value)
        value /= world_size
    return value


def any_process(flag: torch.Tensor, world_size: int) -> bool:
    """Whether `flag` is true on any process: one rank's NaN must stop every rank, or the others would wait forever
    in their next all-reduce."""
    if world_size > 1:
        flag = flag.float()
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


def wait_for_all(world_size: int) -> None:
    """A barrier: no process runs ahead (or exits) while another, e.g. rank 0 saving a checkpoint, is still busy."""
    if world_size > 1:
        dist.barrier()
