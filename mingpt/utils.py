"""
Small helpers every script needs: seeding, choosing a device, setting up a run's log directory, checking an integer
argument, and switching a model to evaluation mode for a while.

`CfgNode` is re-exported here because code written for the original minGPT imports it from `mingpt.utils`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import random
import sys
from typing import Iterator

import numpy as np
import torch

from mingpt.cfgnode import CfgNode

__all__ = ["CfgNode", "set_seed", "choose_device", "setup_logging", "check_int", "eval_mode", "cpu_name"]

logger = logging.getLogger(__name__)


def set_seed(seed: int) -> None:
    """Seed python, numpy and torch (all devices) so a run can be repeated exactly."""
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)  # numpy accepts only 32-bit seeds
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def choose_device(device: str | torch.device = "auto") -> torch.device:
    """Resolve 'auto' to the best available device (cuda > mps > cpu); check an explicit choice exists."""
    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str):
        raise TypeError(f"device must be a string such as 'auto', 'cpu' or 'cuda', got {device!r}")
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as e:
        raise ValueError(f"unknown device {device!r}; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'") from e
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for, but CUDA is not available here; use 'auto' or 'cpu'")
    if resolved.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"device {device!r} was asked for, but MPS is not available here; use 'auto' or 'cpu'")
    return resolved


def setup_logging(config: CfgNode, level: int = logging.INFO) -> str:
    """
    Prepare a run directory: create ``config.system.work_dir``, record the command line (args.txt) and the
    resolved config (config.json), and send mingpt's log messages to stderr if nothing else handles them.
    Returns the work directory.
    """
    system = getattr(config, "system", None)
    work_dir = getattr(system, "work_dir", None)
    if not work_dir:
        raise ValueError("setup_logging needs config.system.work_dir (a directory for this run's outputs)")
    os.makedirs(work_dir, exist_ok=True)
    with open(os.path.join(work_dir, "args.txt"), "w", encoding="utf-8") as f:
        f.write(" ".join(sys.argv) + "\n")
    config.save_json(os.path.join(work_dir, "config.json"))

    root = logging.getLogger()
    if not root.handlers:  # respect a caller who configured logging already (e.g. a notebook)
        logging.basicConfig(level=level, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("mingpt").setLevel(level)
    logger.info("run directory %s; config:\n%s", work_dir, json.dumps(config.to_dict(), indent=2, default=list))
    return work_dir


def cpu_name() -> str:
    """The CPU's model name as `lscpu | grep 'Model name'` shows it (Linux): every benchmark figure names its CPU."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):  # elsewhere: the little the standard library knows
        return platform.processor() or platform.machine() or "unknown CPU"


def check_int(value, name: str, low: int = 0, high: int | None = None, hint: str = "") -> int:
    """
    Return `value` if it is an int in [low, high] (high=None: no upper bound), else raise a ValueError that names
    the argument, the range and the value, e.g. "max_new_tokens must be an int >= 0, got -1". `hint` is appended
    to the expectation ("top_k must be an int >= 1 (or None), ..."). A bool is refused although Python counts it
    as an int: ``block_size=True`` is a mistake, not a 1.
    """
    if not isinstance(value, int) or isinstance(value, bool) or value < low or (high is not None and value > high):
        expected = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be an int {expected}{hint}, got {value!r}")
    return value


@contextlib.contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """
    ``with eval_mode(model):`` runs the block with dropout off (``model.eval()``) and afterwards puts the model back
    in the mode it was in, even if the block raises: evaluating or sampling in the middle of training must not
    leave the model in eval mode, nor switch a model the caller had in eval mode to training.
    """
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)
