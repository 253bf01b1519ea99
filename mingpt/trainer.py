"""
The training loop and its events. The Trainer knows nothing about GPT: it trains any ``nn.Module`` whose
``forward(x, y)`` returns ``(output, loss)``, on any map-style Dataset of (x, y) pairs, or on a data set that
provides its own batches (see `mingpt.training.batching`).

The one idea: one optimizer step is a small, fixed recipe, and everything else hangs off named events.

    for each step:  set the learning rate from the schedule
                    for each of grad_accum_steps micro-batches: forward (under autocast), loss / accum, backward
                    stop on a NaN/inf loss (before the step, so the weights stay good)
                    clip the gradient norm, optimizer step, zero the gradients
                    -> on_batch_end
                    every eval_interval steps (and at the end) evaluate -> on_eval_end; save -> on_checkpoint

The class reads in that order: the recipe (`run`, `_loop`, `_step`, `_after_step`, `evaluate`), where batches come
from, and checkpoints. The parts that keep the loop safe live in `mingpt.training`, called by name: the checks of
the config and the NaN guard (checks.py), the optimizer (AdamW's weight-decay groups, or Muon with AdamW:
optimizer.py), processes under torchrun (distributed.py), resuming (resume.py), precision, batching, checkpoints and
the schedule.

Counting steps, the one rule: ``steps_done`` is the number of optimizer steps completed; it grows the moment a step
ends, and a checkpoint records it. ``iter_num`` is the original minGPT's name for the index of the step being run:
between steps the two are equal, and during ``on_batch_end`` iter_num is still the index of the step that just ran
(0 .. max_iters - 1, as minGPT's callbacks print it), so there it is steps_done - 1.

Evaluation never disturbs training (it runs on its own seeded random generators), and batches are a pure function
of (seed, step), so "N steps, stop, resume, M steps" gives the same bits as N + M steps straight. The global batch
per step is ``batch_size * grad_accum_steps * world_size`` examples. Under ``torchrun --nproc_per_node=K`` the same
code runs DistributedDataParallel (gloo on CPU, nccl on CUDA); only rank 0 saves checkpoints.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Iterator

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import Dataset

from mingpt.cfgnode import CfgNode
from mingpt.training import checks
from mingpt.training.batching import check_dataset, loader_batches, next_checked
from mingpt.training.callbacks import Events
from mingpt.training.checkpoint import isolated_rng, refuse_nonfinite, save_checkpoint, unwrap_model
from mingpt.training.distributed import (average_over_processes, gradient_sync, setup_processes, wait_for_all,
                                         wrap_for_training)
from mingpt.training.evaluation import evaluation_due
from mingpt.training.optimizer import make_optimizer
from mingpt.training.precision import autocast, resolve_precision
from mingpt.training.resume import resume
from mingpt.training.schedule import get_lr
from mingpt.utils import check_int, eval_mode, set_seed

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
        C.weight_decay = 0.1  # only on the weights of Linear layers (mingpt.training.optimizer)
        # 'adamw', or 'muon': torch.optim.Muon for the hidden matrices (attention and MLP weights), AdamW for
        # embeddings, the head, gains and biases (mingpt.training.optimizer.muon_with_adamw)
        C.optimizer = "adamw"
        C.muon_learning_rate = 0.02  # Muon's peak learning rate; the schedule scales it as it scales learning_rate
        C.muon_momentum = 0.95
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

    @classmethod
    def check_config(cls, config: CfgNode, has_val_dataset: bool = True) -> CfgNode:
        """
        The private, checked copy of `config` a Trainer would use (mingpt.training.checks.check_config). A script
        can call it before it starts anything, so that bad settings end it at once with one clear message.
        """
        return checks.check_config(config, cls.get_default_config(), has_val_dataset)

    def __init__(self, config: CfgNode, model: nn.Module, train_dataset: Dataset, val_dataset: Dataset | None = None,
                 callbacks: tuple = ()):
        self.config = C = self.check_config(config, has_val_dataset=val_dataset is not None)
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        check_dataset(train_dataset, "train_dataset")
        if val_dataset is not None:
            check_dataset(val_dataset, "val_dataset")
        self.train_dataset, self.val_dataset = train_dataset, val_dataset
        super().__init__(callbacks)
        self.rank, self.local_rank, self.world_size, self.device = setup_processes(C.device)
        self.precision = resolve_precision(C.precision, self.device)
        self.model = unwrap_model(model).to(self.device)  # what callbacks and checkpoints see
        # The model's own parameter groups if it has configure_optimizers (GPT does), else the same rule.
        configure = getattr(self.model, "configure_optimizers", None)
        self.optimizer = configure(C) if configure is not None else make_optimizer(self.model, C)
        # fp16 gradients underflow without loss scaling; disabled (bf16, fp32) the scaler passes everything through.
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision.use_grad_scaler)
        # _eval_model: compiled if asked (or if the caller compiled it); _train_model: that, DDP-wrapped.
        self._eval_model = model if hasattr(model, "_orig_mod") else self.model
        if C.compile and not hasattr(self._eval_model, "_orig_mod"):
            self._eval_model = torch.compile(self.model)
        self._train_model = wrap_for_training(self._eval_model, self.device, self.world_size)
        # State callbacks read (see the module docstring for steps_done and iter_num).
        self.steps_done = self.iter_num = 0
        self.iter_dt, self.loss, self.lr = 0.0, None, C.learning_rate
        self.iter_time = time.time()  # when the last step ended (wall clock), as the original minGPT has it
        self.tokens_per_sec, self.grad_norm, self.val_loss, self.best_val_loss = 0.0, None, None, None
        self.last_checkpoint_path, self.interrupted = None, False
        self._stop_requested = False  # set by stop(), e.g. from a callback
        # The position of a data set that batches itself (see data_state): the live training iterator, or the
        # state restored from a checkpoint until that iterator exists.
        self._data_batches, self._data_state = None, None
        resumed = resume(C, self.model, self.optimizer, self.scaler, self.rank, self.world_size)
        if resumed is None:
            set_seed(C.seed + self.rank)  # dropout etc. differ per process; resume restores RNGs instead
        else:
            self.steps_done = self.iter_num = resumed.steps_done
            self.val_loss, self.best_val_loss, self._data_state = (resumed.val_loss, resumed.best_val_loss,
                                                                   resumed.data_state)

    @property
    def is_main_process(self) -> bool:
        return self.rank == 0

    # ------------------------------------------------------------------ the recipe
    def run(self) -> None:
        """Train until max_iters (call again after raising max_iters to continue). Ctrl-C saves and returns."""
        C = self.config
        if C.lr_schedule == "cosine" and C.lr_decay_iters is None:
            # Fix the horizon now: raising max_iters later (run() again, or a resume) keeps this schedule.
            C.lr_decay_iters = C.max_iters
        batches = self._batches(self.train_dataset, stream=0, start=self.steps_done, accum=C.grad_accum_steps)
        self._train_model.train()
        if self.is_main_process:
            logger.info("training on %s (%s: %s), %d process(es), from step %d", self.device, self.precision.name,
                        self.precision.reason, self.world_size, self.steps_done)
        self._stop_requested = False
        self.iter_time = time.time()
        try:  # on_train_end fires however this ends: users put cleanup there
            self.trigger_callbacks("on_train_start")
            self._loop(batches)
        finally:
            batches.close()  # shuts down DataLoader workers
            self.trigger_callbacks("on_train_end")

    def _loop(self, batches: Iterator) -> None:
        try:
            first = True
            while not self._finished():
                self._step(batches, check=first)
                first = False
                self._after_step()
        except KeyboardInterrupt:
            # Interrupted between steps, the state is exactly "steps_done steps done". Interrupted mid-step, the
            # unfinished step's gradients are dropped (and its RNG draws are lost, so that resume is not bitwise).
            self.interrupted = True
            self.optimizer.zero_grad(set_to_none=True)
            if self.is_main_process:
                logger.warning("interrupted at step %d%s", self.steps_done,
                               "; saving a checkpoint" if self.config.work_dir else "")
            if self.config.work_dir:
                self.save_checkpoint()
        if not self.interrupted:
            wait_for_all(self.world_size)  # leave together: no rank exits while rank 0 is still saving

    def _finished(self) -> bool:
        return self._stop_requested or (self.config.max_iters is not None and self.steps_done >= self.config.max_iters)

    def stop(self) -> None:
        """Finish after the current step (e.g. from a callback once a target is reached); the end-of-training
        evaluation and checkpoint still happen, as at max_iters."""
        self._stop_requested = True

    def _step(self, batches: Iterator, check: bool = False) -> None:
        """One optimizer step over grad_accum_steps micro-batches."""
        C, accum = self.config, self.config.grad_accum_steps
        t0 = time.perf_counter()
        self.lr = get_lr(self.steps_done, C)
        for group in self.optimizer.param_groups:  # a group with its own peak rate (Muon's) has an lr_scale
            group["lr"] = self.lr * group.get("lr_scale", 1.0)
        loss_sum, tokens = 0.0, 0
        for micro in range(accum):
            x, y = self._next_batch(batches, "train_dataset", check=check and micro == 0)
            if check and micro == 0:
                checks.check_forward_takes_x_y(self._train_model, x, y)
            with gradient_sync(self._train_model, self.world_size, last_micro_step=micro == accum - 1):
                with autocast(self.device.type, self.precision.autocast_dtype):
                    output = self._train_model(x, y)
                if check and micro == 0 and not (isinstance(output, (tuple, list)) and len(output) == 2
                                                 and isinstance(output[1], torch.Tensor)):
                    raise TypeError("model(x, y) must return (output, loss) with loss a tensor")
                loss = output[1]
                # Each micro-batch loss is a mean over its own examples; dividing by accum makes the summed
                # gradients equal to the gradient of the mean over all accum * batch_size examples.
                self.scaler.scale(loss / accum).backward()  # fp16: scaled up so small gradients survive
            loss_sum = loss_sum + loss.detach()
            tokens += x.numel()
        self.scaler.unscale_(self.optimizer)  # clip the true gradients, not the scaled ones
        if C.grad_norm_clip > 0:
            self.grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), C.grad_norm_clip)
        if C.stop_on_nonfinite:  # fp16's scaler skips a step whose gradients overflowed, so only the loss counts
            grad_norm = None if self.scaler.is_enabled() else self.grad_norm
            checks.stop_if_nonfinite(loss_sum / accum, grad_norm, self.optimizer, self.steps_done, self.lr,
                                     self.world_size)
        self.scaler.step(self.optimizer)  # fp16: skipped if any gradient overflowed
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.loss = loss_sum / accum
        self.iter_dt = time.perf_counter() - t0  # before callbacks, so it is the step's own time
        self.iter_time = time.time()
        self.tokens_per_sec = tokens * self.world_size / max(self.iter_dt, 1e-9)

    def _after_step(self) -> None:
        """Count the step, tell the callbacks, then evaluate and save when due."""
        C = self.config
        self.steps_done += 1
        try:  # callbacks see iter_num as the index of the step that just ran (0-based), as in the original minGPT
            self.trigger_callbacks("on_batch_end")
        finally:  # the step is done even if a callback raises (e.g. Ctrl-C): the count stays true
            self.iter_num = self.steps_done
        finished = self._finished()
        if evaluation_due(self.steps_done, C.eval_interval, finished):
            self.val_loss = self.evaluate()
            improved = self.best_val_loss is None or self.val_loss < self.best_val_loss
            self.best_val_loss = self.val_loss if improved else self.best_val_loss
            self.trigger_callbacks("on_eval_end")
            if improved and C.work_dir and C.save_best:
                self.save_checkpoint(os.path.join(C.work_dir, "best.pt"))
        if C.work_dir and (finished or (C.checkpoint_interval and self.steps_done % C.checkpoint_interval == 0)):
            self.save_checkpoint()

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
        return (average_over_processes(total, self.world_size) / iters).item()

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
            refuse_nonfinite(self.model, path, self.steps_done, "trainer.stop_on_nonfinite=False saves regardless.")
        model_config = getattr(self.model, "config", None)
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
