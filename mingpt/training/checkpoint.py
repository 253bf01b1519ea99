"""
Checkpoints: everything needed to continue a training run exactly, saved atomically and loaded safely.

The one idea: a checkpoint is a plain dict of tensors, numbers, strings, lists and dicts, nothing else. That
restriction buys two things.

* **Safety.** Such a file loads with ``torch.load(weights_only=True)``, which refuses to run code. A general
  pickle can carry an object whose ``__reduce__`` calls any function on load; we never unpickle those.
  So even the random-number-generator states, which Python and numpy hand out as tuples and arrays, are stored
  here as lists, ints and tensors.
* **Exact resume.** Model, optimizer (Adam's moment estimates), loss-scaler, iteration and the RNG states of
  python, numpy, torch and CUDA together determine the rest of the run: restoring all of them makes "train N
  steps" and "train k, stop, resume, train to N" produce the same bits on CPU.

Writing is atomic: the dict goes to a temporary file in the same directory, is flushed to disk, and only then
``os.replace``-d over the old checkpoint. A crash (or SIGKILL) mid-save leaves the previous checkpoint intact.

    >>> save_checkpoint("out/last.pt", model=model, optimizer=optimizer, iter_num=100)
    >>> ckpt = load_checkpoint("out/last.pt")
    >>> restore_checkpoint(ckpt, model, optimizer)

A trainer config's ``resume`` setting (a path, or 'auto' for work_dir/last.pt) is read here too (`resume_path`,
`load_for_resume`), and `check_resume` lets a script fail fast on an unusable checkpoint before it starts anything.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import time
from typing import Any, Iterator

import numpy as np
import torch
import torch.nn as nn

from mingpt.atomic import atomic_path
from mingpt.cfgnode import CfgNode
from mingpt.io.safe_load import load_plain_data
from mingpt.utils import check_int, set_seed

__all__ = [
    "save_checkpoint",
    "load_checkpoint",
    "restore_checkpoint",
    "capture_rng_state",
    "restore_rng_state",
    "isolated_rng",
    "unwrap_model",
    "resume_path",
    "load_for_resume",
    "check_resume",
    "refuse_nonfinite",
]

logger = logging.getLogger(__name__)

FORMAT = "mingpt-checkpoint"
VERSION = 1


def unwrap_model(model: nn.Module) -> nn.Module:
    """
    The user's module inside any wrappers: DistributedDataParallel keeps it as ``.module`` and torch.compile as
    ``._orig_mod``. Saving the wrapper's state dict would prefix every key with ``module.`` or ``_orig_mod.``, and
    the checkpoint would not load into a plain model, so we always save the unwrapped one.
    """
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):
            model = model._orig_mod
        else:
            return model


# ---------------------------------------------------------------------------------------------- RNG state
def capture_rng_state() -> dict:
    """The state of every random number generator a training step may draw from, in weights_only-safe types."""
    version, mt_state, gauss = random.getstate()  # (3, tuple of 625 ints, None or float)
    np_state = np.random.get_state(legacy=False)  # {'bit_generator', 'state': {'key': uint32 array, 'pos'}, ...}
    state = {
        "python": {"version": version, "state": list(mt_state), "gauss": gauss},
        "numpy": {
            "bit_generator": np_state["bit_generator"],
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),  # a uint8 tensor
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()  # one uint8 tensor per GPU
    return state


def restore_rng_state(state: dict) -> None:
    """Put back the generators captured by `capture_rng_state`."""
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    nps = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": nps["bit_generator"],
            "state": {"key": nps["key"].numpy().astype(np.uint32), "pos": nps["pos"]},
            "has_gauss": nps["has_gauss"],
            "gauss": nps["gauss"],
        }
    )
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]][: torch.cuda.device_count()])


@contextlib.contextmanager
def isolated_rng(seed: int) -> Iterator[None]:
    """
    ``with isolated_rng(seed):`` runs the block with python, numpy and torch seeded to `seed`, then puts back the
    generators' previous states, even if the block raises: a side computation (an evaluation drawing random
    crops) repeats its own draws every time and leaves the main computation's random stream exactly as it was.
    """
    before = capture_rng_state()
    set_seed(seed)
    try:
        yield
    finally:
        restore_rng_state(before)


# ---------------------------------------------------------------------------------------------- save
def save_checkpoint(
    path: str | os.PathLike,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scaler: Any = None,
    iter_num: int = 0,
    config: dict | None = None,
    metadata: dict | None = None,
    rng: bool = True,
) -> None:
    """
    Write a checkpoint atomically.

    iter_num: the number of optimizer steps taken so far (the next step to run on resume); the learning-rate
    schedule is a function of it, so it is also the schedule's position.
    config: plain dicts, e.g. ``{"trainer": trainer_config.to_dict(), "model": model.config.to_dict()}``.
    metadata: anything else worth recording (plain data only).
    """
    check_int(iter_num, "iter_num", 0)
    raw = unwrap_model(model)
    checkpoint = {
        "format": FORMAT,
        "version": VERSION,
        "model": raw.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,  # a disabled one: None
        "iter_num": iter_num,
        "rng": capture_rng_state() if rng else None,
        "config": config or {},
        "metadata": {"torch_version": str(torch.__version__),  # a str subclass that weights_only refuses
                     "saved_at": time.time(), **(metadata or {})},
    }
    with atomic_path(path) as tmp:  # a temp file beside `path`, fsynced, then os.replace-d over it
        torch.save(checkpoint, tmp)


def refuse_nonfinite(model: nn.Module, path: str | os.PathLike, step: int, fix: str = "") -> None:
    """Raise FloatingPointError, before anything is written to `path`, if a weight of `model` holds NaN/inf: a
    checkpoint is something to go back to, so a good one is never replaced by a diverged one. `fix` ends the
    message (how to save regardless)."""
    bad = [name for name, p in unwrap_model(model).state_dict().items()
           if p.is_floating_point() and not torch.isfinite(p).all()]
    if bad:
        raise FloatingPointError(f"refusing to save {os.fspath(path)!r} at step {step}: {len(bad)} tensors hold "
                                 f"NaN/inf (first: {bad[0]}); the previous checkpoint there is kept. {fix}".rstrip())


# ---------------------------------------------------------------------------------------------- load
def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu", mmap: bool = False) -> dict:
    """
    Read a checkpoint written by `save_checkpoint`, refusing anything that is not plain data.

    mmap=True maps the tensors' bytes instead of reading them: a quick check that the file is whole and a
    checkpoint (a truncated file has lost the index at its end), without the cost of a full load.

    Raises FileNotFoundError if there is no file, ValueError if it is truncated, corrupt, not a mingpt checkpoint,
    or carries pickled objects (which are never executed).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no checkpoint at {path!r}")
    fix = ("mingpt checkpoints never contain such objects; "
           "re-save the weights with mingpt.training.checkpoint.save_checkpoint.")
    checkpoint = load_plain_data(path, map_location, fix, what="checkpoint", mmap=mmap)
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise ValueError(f"{path!r} is not a mingpt checkpoint (no format={FORMAT!r} marker)")
    if checkpoint.get("version") != VERSION:
        raise ValueError(f"{path!r} has checkpoint version {checkpoint.get('version')!r}; this mingpt reads {VERSION}")
    return checkpoint


def restore_checkpoint(
    checkpoint: dict,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scaler: Any = None,
    rng: bool = True,
) -> int:
    """
    Load a checkpoint's state into `model` (and optimizer, scaler, RNGs); returns its iter_num.
    A checkpoint from a differently shaped model raises ValueError naming the mismatched config keys and tensors.
    """
    raw = unwrap_model(model)
    _check_same_model(checkpoint, raw)
    raw.load_state_dict(checkpoint["model"])
    if optimizer is not None and checkpoint.get("optimizer") is not None:
        optimizer.load_state_dict(checkpoint["optimizer"])
    if scaler is not None and checkpoint.get("scaler") is not None:
        scaler.load_state_dict(checkpoint["scaler"])
    if rng and checkpoint.get("rng") is not None:
        restore_rng_state(checkpoint["rng"])
    return int(checkpoint["iter_num"])


def _check_same_model(checkpoint: dict, model: nn.Module) -> None:
    saved, current = checkpoint["model"], model.state_dict()
    problems = [f"missing from checkpoint: {k}" for k in current if k not in saved]
    problems += [f"unexpected in checkpoint: {k}" for k in saved if k not in current]
    problems += [
        f"{k}: checkpoint {tuple(saved[k].shape)} vs model {tuple(v.shape)}"
        for k, v in current.items()
        if k in saved and tuple(saved[k].shape) != tuple(v.shape)
    ]
    if not problems:
        return
    hint = ""
    saved_cfg = (checkpoint.get("config") or {}).get("model")
    model_cfg = getattr(model, "config", None)
    if isinstance(saved_cfg, dict) and hasattr(model_cfg, "to_dict"):
        model_cfg = model_cfg.to_dict()
        diff = [
            f"{k}={saved_cfg.get(k)!r} (model has {model_cfg.get(k)!r})"
            for k in model_cfg
            if saved_cfg.get(k) != model_cfg.get(k)
        ]
        if diff:
            hint = "; the checkpoint was saved from a different model config: " + ", ".join(diff)
    shown = "; ".join(problems[:5]) + (f"; ... ({len(problems) - 5} more)" if len(problems) > 5 else "")
    raise ValueError(f"checkpoint does not fit this model ({shown}){hint}")


# ---------------------------------------------------------------------------------------------- resuming
def resume_path(config: CfgNode) -> str | None:
    """The checkpoint a trainer config's `resume` points at (for 'auto': work_dir/last.pt if it exists), or None."""
    path = config.resume
    if not path:
        return None
    if path == "auto":
        if not config.work_dir:
            raise ValueError("trainer.resume='auto' looks for work_dir/last.pt, but trainer.work_dir is not set")
        path = os.path.join(config.work_dir, "last.pt")
        if not os.path.isfile(path):
            logger.info("no checkpoint at %s; starting from scratch", path)
            return None
    return path


def load_for_resume(path: str, mmap: bool = False) -> dict:
    """load_checkpoint, with an error that says how to go on when the file cannot be used."""
    try:
        return load_checkpoint(path, mmap=mmap)
    except (FileNotFoundError, ValueError) as e:
        best = os.path.join(os.path.dirname(path), "best.pt")
        other = best if os.path.isfile(best) and os.path.abspath(best) != os.path.abspath(path) else "<checkpoint>"
        reason = str(e.args[0] if e.args else e).rstrip(".")
        raise type(e)(f"cannot resume: {reason}. Resume from another checkpoint (trainer.resume = {other!r}; on a "
                      f"project's command line --trainer.resume={other}) or start fresh (trainer.resume = None; "
                      f"--trainer.resume=None)") from None


def check_resume(config: CfgNode) -> None:
    """
    Fail fast if a trainer config's `resume` names a checkpoint that cannot be read: a project calls this
    before it sets up its run directory, so a truncated last.pt gives one clear line, not a run that starts and
    crashes. Cheap: the tensors are memory-mapped, not read (the Trainer's full load still checks them).
    """
    path = resume_path(config)
    if path is not None:
        load_for_resume(path, mmap=True)
