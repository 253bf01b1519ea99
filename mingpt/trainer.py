"""
The training loop and its events. The Trainer knows nothing about GPT: it trains any ``nn.Module`` whose
``forward(x, y)`` returns ``(output, loss)``, on any map-style Dataset of (x, y) pairs, or on a data set that
provides its own batches (see `mingpt.training.batching`).

The one idea: one optimizer step is a small, fixed recipe, and everything else hangs off named events.

    for each step:  set the learning rate from the schedule
                    for each of grad_accum_steps micro-batches: forward (under autocast), loss / accum, backward
                    stop on a NaN/inf loss (before the step, so the weights stay good)
                    clip the gradient norm, optimizer step, zero the gradients
                    -> on_batch_end; iter_num += 1
                    every eval_interval steps evaluate -> on_eval_end; save -> on_checkpoint

The class reads in that order: the recipe (`run`, `_loop`, `_step`, `evaluate`), then where batches come from,
the set-up steps, checkpoints, and last the checks of the config. Callbacks (`mingpt.training.callbacks`) read plain
attributes (``iter_num``, ``steps_done``, ``loss``, ``lr``, ``tokens_per_sec``, ``val_loss``, ``model``, ...).
``iter_num`` counts as in the original minGPT: at ``on_batch_end`` it is the index of the step that just ran
(0 .. max_iters - 1) and it grows after those callbacks; everywhere else it is the number of steps done, which a
checkpoint records and a resume continues from.

Evaluation never disturbs training (it runs on its own seeded random generators), and batches are a pure function
of (seed, step), so "N steps, stop, resume, M steps" gives the same bits as N + M steps straight. The global batch
per step is ``batch_size * grad_accum_steps * world_size`` examples. Under ``torchrun --nproc_per_node=K`` the same
code runs DistributedDataParallel (gloo on CPU, nccl on CUDA); only rank 0 saves checkpoints.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import math
import os
import time
from typing import Iterator

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
from torch.utils.data import Dataset

from mingpt.cfgnode import CfgNode
from mingpt.training.batching import check_dataset, loader_batches, next_checked
from mingpt.training.callbacks import Events
from mingpt.training.checkpoint import (isolated_rng, load_for_resume, refuse_nonfinite, restore_checkpoint,
                                        resume_path, save_checkpoint, unwrap_model)
from mingpt.training.precision import PRECISIONS, autocast, resolve_precision
from mingpt.training.schedule import check_schedule, get_lr, keep_schedule_on_resume
from mingpt.utils import check_int, choose_device, eval_mode, set_seed

__all__ = ["Trainer"]

logger = logging.getLogger(__name__)


class Trainer(Events):
    """
    Train `model` on `train_dataset`; ``Trainer(config, model, train_dataset, val_dataset).run()``.
    Callbacks are registered and fired by `Events` (``add_callback``, ``set_callback``, ``trigger_callbacks``).
    """

    @staticmethod
    def get_default_config() -> CfgNode:
        C = CfgNode()
        C.device = "auto"  # 'auto' (cuda > mps > cpu), 'cpu', 'cuda', 'cuda:1', 'mps'
        # 0 suits small machines: worker processes compete with the math for the cores (`bench/train.py
        # --workers` compares). Raise it when __getitem__ does real work (decoding, augmentation).
        C.num_workers = 0
        C.max_iters = None  # None trains until interrupted
        C.batch_size = 64  # examples per process per micro-step
        C.learning_rate = 3e-4
        C.betas = (0.9, 0.95)
        C.weight_decay = 0.1  # only applied to matmul weights by GPT.configure_optimizers
        C.grad_norm_clip = 1.0  # 0 turns clipping off
        C.lr_schedule = "constant"  # or 'cosine'
        C.warmup_iters = 0
        C.lr_decay_iters = None  # cosine horizon; None: max_iters when training starts (resume keeps it)
        C.min_lr = None  # cosine floor; None means learning_rate / 10
        C.grad_accum_steps = 1  # micro-batches per optimizer step
        C.eval_interval = 0  # evaluate every this many steps (and at the end); 0 = never
        C.eval_iters = 20  # batches averaged per evaluation
        C.work_dir = None  # where last.pt / best.pt go; None = no checkpoints
        C.checkpoint_interval = 0  # also save last.pt every this many steps; it is always saved at the end
        C.save_best = True  # save best.pt whenever the validation loss improves
        C.resume = None  # a checkpoint path, or 'auto' for work_dir/last.pt if it exists
        C.precision = "auto"  # 'auto', 'fp32', 'bf16', 'fp16' (see mingpt.training.precision.resolve_precision)
        C.compile = False  # torch.compile the model for training
        C.seed = 1337  # seeds batches, and python/numpy/torch at the start (plus the rank under DDP)
        # A NaN/inf loss stops training with FloatingPointError naming the step, before that step touches the
        # weights, and a checkpoint with non-finite weights is never written. False trains on regardless.
        C.stop_on_nonfinite = True
        return C

    def __init__(self, config: CfgNode, model: nn.Module, train_dataset: Dataset, val_dataset: Dataset | None = None,
                 callbacks: tuple = ()):
        self.config = self.check_config(config, has_val_dataset=val_dataset is not None)
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        check_dataset(train_dataset, "train_dataset")
        if val_dataset is not None:
            check_dataset(val_dataset, "val_dataset")
        self.train_dataset, self.val_dataset = train_dataset, val_dataset
        super().__init__(callbacks)
        self._setup_processes()  # rank, world size, device, process group
        self.precision = resolve_precision(self.config.precision, self.device)
        self.model = unwrap_model(model).to(self.device)  # what callbacks and checkpoints see
        self._setup_optimizer()
        self._wrap_model(model)  # the (possibly compiled, possibly DDP-wrapped) module that trains
        # State callbacks read.
        self.iter_num, self.iter_dt, self.loss, self.lr = 0, 0.0, None, self.config.learning_rate
        self.iter_time = time.time()  # when the last step ended (wall clock), as the original minGPT has it
        self.tokens_per_sec, self.grad_norm, self.val_loss, self.best_val_loss = 0.0, None, None, None
        self.last_checkpoint_path, self.interrupted = None, False
        self._stop_requested = False  # set by stop(), e.g. from a callback
        self._in_batch_end = False  # during on_batch_end, iter_num is one behind the steps done
        # The position of a data set that batches itself (see data_state): the live training iterator, or the
        # state restored from a checkpoint until that iterator exists.
        self._data_batches, self._data_state = None, None
        if not self._resume():
            set_seed(self.config.seed + self.rank)  # dropout etc. differ per process; resume restores RNGs instead

    @property
    def is_main_process(self) -> bool:
        return self.rank == 0

    @property
    def steps_done(self) -> int:
        """Optimizer steps completed: iter_num, except inside on_batch_end, where iter_num is the index of the step
        that just ran (minGPT's numbering) and one step more is done."""
        return self.iter_num + 1 if self._in_batch_end else self.iter_num

    # ------------------------------------------------------------------ the recipe
    def run(self) -> None:
        """Train until max_iters (call again after raising max_iters to continue). Ctrl-C saves and returns."""
        C = self.config
        if C.lr_schedule == "cosine" and C.lr_decay_iters is None:
            # Fix the horizon now: raising max_iters later (run() again, or a resume) keeps this schedule.
            C.lr_decay_iters = C.max_iters
        batches = self._batches(self.train_dataset, stream=0, start=self.iter_num, accum=C.grad_accum_steps)
        self._train_model.train()
        if self.is_main_process:
            logger.info("training on %s (%s: %s), %d process(es), from step %d", self.device, self.precision.name,
                        self.precision.reason, self.world_size, self.iter_num)
        self._stop_requested = False
        self.iter_time = time.time()
        try:  # on_train_end fires however this ends: users put cleanup there
            self.trigger_callbacks("on_train_start")
            self._loop(batches)
        finally:
            batches.close()  # shuts down DataLoader workers
            self.trigger_callbacks("on_train_end")

    def _loop(self, batches: Iterator) -> None:
        C = self.config
        try:
            first = True
            while (C.max_iters is None or self.iter_num < C.max_iters) and not self._stop_requested:
                self._step(batches, check=first)
                first = False
                self._in_batch_end = True
                try:  # callbacks see the index of the step that just ran (0-based), as in the original minGPT
                    self.trigger_callbacks("on_batch_end")
                finally:  # the step is done even if a callback raises (e.g. Ctrl-C): the count stays true
                    self.iter_num += 1
                    self._in_batch_end = False
                last = self.iter_num == C.max_iters or self._stop_requested
                if C.eval_interval and (self.iter_num % C.eval_interval == 0 or last):
                    self.val_loss = self.evaluate()
                    improved = self.best_val_loss is None or self.val_loss < self.best_val_loss
                    self.best_val_loss = self.val_loss if improved else self.best_val_loss
                    self.trigger_callbacks("on_eval_end")
                    if improved and C.work_dir and C.save_best:
                        self.save_checkpoint(os.path.join(C.work_dir, "best.pt"))
                if C.work_dir and (last or (C.checkpoint_interval and self.iter_num % C.checkpoint_interval == 0)):
                    self.save_checkpoint()
        except KeyboardInterrupt:
            # Interrupted between steps, the state is exactly "iter_num steps done". Interrupted mid-step, the
            # unfinished step's gradients are dropped (and its RNG draws are lost, so that resume is not bitwise).
            self.interrupted = True
            self.optimizer.zero_grad(set_to_none=True)
            if self.is_main_process:
                logger.warning("interrupted at step %d%s", self.iter_num, "; saving a checkpoint" if C.work_dir else "")
            if C.work_dir:
                self.save_checkpoint()
        if self.world_size > 1 and not self.interrupted:
            dist.barrier()  # leave together: no rank runs ahead (or exits) while rank 0 is still saving

    def stop(self) -> None:
        """Finish after the current step (e.g. from a callback once a target is reached); the end-of-training
        evaluation and checkpoint still happen, as at max_iters."""
        self._stop_requested = True

    def _step(self, batches: Iterator, check: bool = False) -> None:
        """One optimizer step over grad_accum_steps micro-batches."""
        C, accum = self.config, self.config.grad_accum_steps
        t0 = time.perf_counter()
        self.lr = get_lr(self.iter_num, C)
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr
        loss_sum, tokens = 0.0, 0
        for micro in range(accum):
            x, y = self._next_batch(batches, "train_dataset", check=check and micro == 0)
            # Under DDP, every backward all-reduces gradients; on all but the last micro-step that is wasted
            # work, so no_sync() lets gradients accumulate locally and the last backward syncs the sum.
            syncless = self.world_size > 1 and micro < accum - 1
            sync = self._train_model.no_sync() if syncless else contextlib.nullcontext()
            with sync:
                with autocast(self.device.type, self.precision.autocast_dtype):
                    output = self._train_model(x, y)
                if check and micro == 0 and not (isinstance(output, (tuple, list)) and len(output) == 2
                                                 and isinstance(output[1], torch.Tensor)):
                    raise TypeError("model(x, y) must return (output, loss) with loss a tensor")
                loss = output[1]
                # Each micro-batch loss is a mean over its own examples; dividing by accum makes the summed
                # gradients equal to the gradient of the mean over all accum * batch_size examples.
                scaled = loss / accum
                (self.scaler.scale(scaled) if self.scaler else scaled).backward()
            loss_sum = loss_sum + loss.detach()
            tokens += x.numel()
        if self.scaler:
            self.scaler.unscale_(self.optimizer)  # clip the true gradients, not the scaled ones
        if C.grad_norm_clip > 0:
            self.grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), C.grad_norm_clip)
        if C.stop_on_nonfinite:
            self._check_finite(loss_sum / accum)
        if self.scaler:
            self.scaler.step(self.optimizer)  # skips the step if any gradient overflowed
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.loss = loss_sum / accum
        self.iter_dt = time.perf_counter() - t0  # before callbacks, so it is the step's own time
        self.iter_time = time.time()
        self.tokens_per_sec = tokens * self.world_size / max(self.iter_dt, 1e-9)

    def _check_finite(self, loss: torch.Tensor) -> None:
        """Raise FloatingPointError, before the optimizer step, if the loss (or the gradient norm) is NaN/inf."""
        bad = ~torch.isfinite(loss.detach().float())
        if self.grad_norm is not None and self.scaler is None:  # fp16's scaler skips overflowing steps itself
            bad = bad | ~torch.isfinite(self.grad_norm.float())
        if self.world_size > 1:  # one rank's NaN stops every rank: none may wait forever in an all-reduce
            bad = bad.float()
            dist.all_reduce(bad, op=dist.ReduceOp.MAX)
        if not bad.item():  # one host sync per step: the price of never stepping into NaN
            return
        self.optimizer.zero_grad(set_to_none=True)
        raise FloatingPointError(
            f"loss is {loss.item()} at step {self.iter_num} (lr {self.lr:.2e}, gradient norm "
            f"{'n/a' if self.grad_norm is None else f'{self.grad_norm.item():.3g}'}): training has diverged. The step "
            f"was not applied: the model holds the weights after {self.iter_num} steps. Try a lower "
            "trainer.learning_rate, warmup_iters > 0, grad_norm_clip > 0, precision='fp32', or check the data; "
            "resume from the last good checkpoint (trainer.stop_on_nonfinite=False trains on regardless)."
        )

    @torch.no_grad()
    def evaluate(self, dataset: Dataset | None = None, iters: int | None = None) -> float:
        """Mean loss over `iters` batches (default eval_iters) of `dataset` (default val_dataset); the same
        batches (and random draws) every time, so successive evaluations are comparable, and the training RNG
        streams are left exactly as they were. Averaged over processes under DDP."""
        dataset = self.val_dataset if dataset is None else dataset
        if dataset is None:
            raise ValueError("evaluate() needs a dataset: pass one or give the Trainer a val_dataset")
        iters = self.config.eval_iters if iters is None else check_int(iters, "iters", 1, hint=" (or None)")
        total = torch.zeros((), device=self.device)
        # A data set may draw random numbers (random crops, random problems): evaluation gets its own seeded
        # generators and training's come back afterwards, so training continues as if nothing had happened.
        seed = int(np.random.default_rng([self.config.seed, 1, self.rank]).integers(2**31))
        with isolated_rng(seed), eval_mode(self._eval_model) as model:  # and dropout off for the while
            batches = self._batches(dataset, stream=1, start=0, accum=1)
            try:
                for i in range(iters):
                    x, y = self._next_batch(batches, "val_dataset", check=i == 0)
                    with autocast(self.device.type, self.precision.autocast_dtype):
                        total += model(x, y)[1].float()
            finally:
                batches.close()
        if self.world_size > 1:
            dist.all_reduce(total)
            total /= self.world_size
        return (total / iters).item()

    # ------------------------------------------------------------------ batches
    def _batches(self, dataset, stream: int, start: int, accum: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Endless (x, y) micro-batches of `dataset` from step `start`; stream 0 is training, 1 evaluation."""
        C, pin = self.config, self.device.type == "cuda"
        if not hasattr(dataset, "batch_iterator"):  # a map-style data set: a DataLoader reads it
            yield from loader_batches(dataset, C.batch_size, accum, self.world_size, self.rank, C.seed, stream, start,
                                      num_workers=C.num_workers, pin_memory=pin)
            return
        # A data set that batches itself (TokenStream, TokenShards): the protocol of mingpt.training.batching.
        batches = dataset.batch_iterator(C.batch_size, accum, self.world_size, self.rank, C.seed, stream, start,
                                         state=self.data_state() if stream == 0 else None)
        if stream == 0:
            self._data_batches = batches
        for x, y in batches:
            yield (x.pin_memory(), y.pin_memory()) if pin else (x, y)

    def data_state(self) -> dict | None:
        """The training data's position, for data sets whose ``batch_iterator(...)`` returns an iterator with
        ``state_dict()`` (e.g. `mingpt.data.token_shards.TokenShards`); saved in checkpoints, restored on resume."""
        state_dict = getattr(self._data_batches, "state_dict", None)
        return state_dict() if state_dict is not None else self._data_state

    def _next_batch(self, batches: Iterator, name: str, check: bool) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = next_checked(batches, name) if check else next(batches)  # check: the first batch, named `name`
        return x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    # ------------------------------------------------------------------ set-up, step by step
    def _setup_processes(self) -> None:
        """torchrun sets RANK / WORLD_SIZE / LOCAL_RANK; without them this is one process."""
        self.rank, self.local_rank = int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0))
        self.world_size = int(os.environ.get("WORLD_SIZE", 1))
        self.device = choose_device(self.config.device)
        if self.device.type == "cuda" and self.world_size > 1:
            self.device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(self.device)
        if self.world_size > 1 and not dist.is_initialized():
            dist.init_process_group(backend="nccl" if self.device.type == "cuda" else "gloo")
            atexit.register(lambda: dist.is_initialized() and dist.destroy_process_group())

    def _setup_optimizer(self) -> None:
        """The model's own parameter groups if it has configure_optimizers (GPT does), else a generic AdamW."""
        C = self.config
        if hasattr(self.model, "configure_optimizers"):
            self.optimizer = self.model.configure_optimizers(C)
        else:  # generic fallback: decay matrices (>= 2-D), not biases or norm gains
            params = [p for p in self.model.parameters() if p.requires_grad]
            groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": C.weight_decay},
                      {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
            self.optimizer = torch.optim.AdamW(groups, lr=C.learning_rate, betas=tuple(C.betas))
        self.scaler = torch.amp.GradScaler("cuda") if self.precision.use_grad_scaler else None

    def _wrap_model(self, model: nn.Module) -> None:
        """_eval_model: compiled if asked (or if the caller compiled it); _train_model: that, DDP-wrapped."""
        eval_model = model if hasattr(model, "_orig_mod") else self.model  # keep a model the caller compiled
        if self.config.compile and not hasattr(eval_model, "_orig_mod"):
            eval_model = torch.compile(self.model)
        self._eval_model = self._train_model = eval_model
        if self.world_size > 1:  # gradients are averaged across processes during backward
            ids = [self.device.index] if self.device.type == "cuda" else None
            self._train_model = nn.parallel.DistributedDataParallel(eval_model, device_ids=ids)

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, path: str | None = None) -> str | None:
        """Save everything needed to resume (rank 0 only; returns the path, or None on other ranks)."""
        if not self.is_main_process:
            return None
        if path is None:
            if not self.config.work_dir:
                raise ValueError("no checkpoint path given and trainer.work_dir is not set")
            path = os.path.join(self.config.work_dir, "last.pt")
        if self.config.stop_on_nonfinite:  # a checkpoint is something to go back to: never one with NaN weights
            refuse_nonfinite(self.model, path, self.iter_num, "trainer.stop_on_nonfinite=False saves regardless.")
        model_config = getattr(self.model, "config", None)
        # Saved from on_batch_end (e.g. a best.pt), iter_num is that step's index: the checkpoint records the
        # steps done, so that resuming from it continues with the right step.
        save_checkpoint(
            path, model=self.model, optimizer=self.optimizer, scaler=self.scaler, iter_num=self.steps_done,
            config={"trainer": self.config.to_dict(),
                    "model": model_config.to_dict() if hasattr(model_config, "to_dict") else None},
            metadata={"val_loss": self.val_loss, "best_val_loss": self.best_val_loss, "world_size": self.world_size,
                      "data_state": self.data_state()},
        )
        self.last_checkpoint_path = path
        self.trigger_callbacks("on_checkpoint")
        return path

    def _resume(self) -> bool:
        """Restore from config.resume; True if a checkpoint was loaded."""
        C = self.config
        path = resume_path(C)
        if path is None:
            return False
        checkpoint = load_for_resume(path)
        # One process restores its RNG states exactly; under DDP each rank re-seeds from (seed, rank, step).
        self.iter_num = restore_checkpoint(checkpoint, self.model, self.optimizer, self.scaler,
                                           rng=self.world_size == 1)
        if self.world_size > 1:
            set_seed(int(np.random.default_rng([C.seed, 3, self.rank, self.iter_num]).integers(2**31)))
        self.best_val_loss = checkpoint["metadata"].get("best_val_loss")
        self.val_loss = checkpoint["metadata"].get("val_loss")
        self._data_state = checkpoint["metadata"].get("data_state")
        saved = checkpoint["config"].get("trainer") or {}
        schedule = keep_schedule_on_resume(C, saved, self.iter_num)  # no LR jump when max_iters grows
        changed = [k for k, v in C.to_dict().items()
                   if k not in ("max_iters", "resume", "work_dir", "device") and k in saved and saved[k] != v]
        if self.is_main_process:
            if changed:
                logger.warning("resuming with changed trainer settings %s: the run will differ from an unbroken one",
                               changed)
            logger.info("resumed from %s at step %d", path, self.iter_num)
            if schedule:
                logger.info("%s", schedule)
        return True

    # ------------------------------------------------------------------ config
    @classmethod
    def check_config(cls, config: CfgNode, has_val_dataset: bool = True) -> CfgNode:
        """
        The private, checked copy of `config` a Trainer would use: unknown keys raise KeyError, wrong types
        TypeError, bad values ValueError. A script can call it before it starts anything (creates a run folder,
        reads data), so that bad settings end it at once with one clear message.
        """
        if not isinstance(config, CfgNode):
            raise TypeError(f"config must be a CfgNode (Trainer.get_default_config()), got {type(config).__name__}")
        C = cls.get_default_config()
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
        check_schedule(C)  # lr_schedule, min_lr, the cosine's horizon
        if C.eval_interval and not has_val_dataset:
            raise ValueError("trainer.eval_interval is set but no val_dataset was given; pass one or set it to 0")
        if C.precision not in PRECISIONS:
            raise ValueError(f"trainer.precision must be one of {PRECISIONS}, got {C.precision!r}")
        return C
