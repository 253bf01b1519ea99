"""
The training loop and its events. The Trainer knows nothing about GPT: it trains any ``nn.Module`` whose
``forward(x, y)`` returns ``(output, loss)``, on any map-style Dataset of (x, y) pairs (or a fast `TokenStream`).

The one idea: one optimizer step is a small, fixed recipe, and everything else hangs off named events.

    for each step:  set the learning rate from the schedule
                    for each of grad_accum_steps micro-batches: forward (under autocast), loss / accum, backward
                    stop on a NaN/inf loss (before the step, so the weights stay good)
                    clip the gradient norm, optimizer step, zero the gradients
                    -> on_batch_end; iter_num += 1
                    every eval_interval steps evaluate -> on_eval_end; save -> on_checkpoint

``iter_num`` counts steps as the original minGPT does: at ``on_batch_end`` it is the index of the step that just
ran (0, 1, ..., max_iters - 1), and it is incremented after those callbacks, so ``if trainer.iter_num % 500 == 0``
fires at the same steps as in the original. Everywhere else (``on_eval_end``, ``on_checkpoint``,
``on_train_end``, a checkpoint's ``iter_num``, ``eval_interval``) it is the number of steps done, which is also
the index of the next step: a checkpoint at iter_num=k resumes with step k.

Callbacks read plain attributes: ``iter_num``, ``iter_dt`` (seconds for the last step, measured before any
callback runs), ``iter_time`` (``time.time()`` when the last step ended, as in the original), ``loss`` (a
detached tensor: ``trainer.loss.item()``), ``lr``, ``tokens_per_sec``, ``val_loss``, ``model``, ``optimizer``,
``config``, ``device``, ``rank``, ``world_size``. A callback may call ``trainer.stop()`` to end training after the
current step. ``on_train_end`` fires however training ends (also when a callback or the loss raises), so it is
the place for cleanup.

Evaluation never disturbs training: it saves the random-number generators, seeds its own, and puts them back, so
"N steps, stop, resume, M steps" gives the same bits as N + M steps straight, whether or not an evaluation
happened at the stop. (With num_workers > 0, random draws in ``__getitem__`` come from workers seeded per start
step, see `seed_worker`: a resumed run draws fresh ones instead of repeating the first run's.)

Batches are a pure function of (seed, step) (see `mingpt.data.StepSampler`): resuming at step k needs no sampler
state, and 2 processes x 8 examples see exactly the examples 1 process x 16 sees. The global batch per step is
``batch_size * grad_accum_steps * world_size`` examples. A data set may instead batch itself: one with
``batch_iterator(...)`` (e.g. `mingpt.token_shards.TokenShards`) hands out whole micro-batches, and its iterator's
``state_dict()`` (the data position) is saved in checkpoints and restored on resume.

Under ``torchrun --nproc_per_node=K`` (env RANK/WORLD_SIZE/LOCAL_RANK) the same code runs DistributedDataParallel:
gloo on CPU, nccl on CUDA; only rank 0 saves checkpoints.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import math
import os
import random
import time
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset

from mingpt.checkpoint import (capture_rng_state, load_checkpoint, restore_checkpoint, restore_rng_state,
                               save_checkpoint, unwrap_model)
from mingpt.config import CfgNode
from mingpt.data import StepSampler, TokenStream
from mingpt.precision import PRECISIONS, Precision, resolve_precision
from mingpt.schedule import SCHEDULES, get_lr, keep_schedule_on_resume
from mingpt.utils import choose_device, set_seed

__all__ = ["Trainer", "EVENTS", "Precision", "resolve_precision", "get_lr", "check_resume"]

logger = logging.getLogger(__name__)

EVENTS = ("on_train_start", "on_batch_end", "on_eval_end", "on_checkpoint", "on_train_end")


# ---------------------------------------------------------------------------------------------- batches
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


def _check_batch(batch: Any, name: str) -> None:
    if not (isinstance(batch, (tuple, list)) and len(batch) == 2 and all(isinstance(t, torch.Tensor) for t in batch)):
        got = type(batch).__name__ + (f" of {len(batch)}" if isinstance(batch, (tuple, list)) else "")
        raise TypeError(f"{name} items must be (x, y) pairs of tensors, but a batch came out as a {got}")
    x, y = batch
    if x.dim() < 2 or x.shape != y.shape:
        raise ValueError(
            f"{name} items must be x and y tensors of one shape, e.g. (T,) each, batched to (B, T); "
            f"got a batch with x {tuple(x.shape)} and y {tuple(y.shape)}"
        )


# ---------------------------------------------------------------------------------------------- trainer
class Trainer:
    """Train `model` on `train_dataset`; ``Trainer(config, model, train_dataset, val_dataset).run()``."""

    EVENTS = EVENTS
    # The position of a data set that batches itself (see data_state): the live training iterator, or the state
    # restored from a checkpoint until that iterator exists. Class-level defaults; instances assign their own.
    _data_batches = None
    _data_state: dict | None = None

    @staticmethod
    def get_default_config() -> CfgNode:
        C = CfgNode()
        C.device = "auto"  # 'auto' (cuda > mps > cpu), 'cpu', 'cuda', 'cuda:1', 'mps'
        # 0 suits small machines: worker processes compete with the math for the cores. Measured with
        # `bench/train.py --workers` (config S, map-style char data, 2 cores): 0 workers 2,695 tokens/s,
        # 2 workers 2,373 tokens/s. Raise it when __getitem__ does real work (decoding, augmentation).
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
        C.precision = "auto"  # 'auto', 'fp32', 'bf16', 'fp16' (see resolve_precision)
        C.compile = False  # torch.compile the model for training
        C.seed = 1337  # seeds batches, and python/numpy/torch at the start (plus the rank under DDP)
        # A NaN/inf loss stops training with FloatingPointError naming the step, before that step touches the
        # weights, and a checkpoint with non-finite weights is never written. False trains on regardless.
        C.stop_on_nonfinite = True
        return C

    def __init__(self, config: CfgNode, model: nn.Module, train_dataset: Dataset, val_dataset: Dataset | None = None,
                 callbacks: tuple = ()):
        self.config = C = self.check_config(config, has_val_dataset=val_dataset is not None)
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        for name, ds in (("train_dataset", train_dataset), ("val_dataset", val_dataset)):
            if ds is None and name == "val_dataset":
                continue
            if not hasattr(ds, "__len__") or not hasattr(ds, "__getitem__"):
                raise TypeError(f"{name} must be a map-style Dataset (with __len__ and __getitem__)")
            if len(ds) == 0:
                raise ValueError(f"{name} is empty: it has no examples to train or evaluate on")
        self.train_dataset, self.val_dataset = train_dataset, val_dataset
        self.callbacks: dict[str, list[Callable]] = {event: [] for event in EVENTS}
        for callback in callbacks:
            self.add_callback(callback)

        # Processes: torchrun sets RANK / WORLD_SIZE / LOCAL_RANK; without them this is one process.
        self.rank, self.local_rank = int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0))
        self.world_size = int(os.environ.get("WORLD_SIZE", 1))
        self.device = choose_device(C.device)
        if self.device.type == "cuda" and self.world_size > 1:
            self.device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(self.device)
        if self.world_size > 1 and not dist.is_initialized():
            dist.init_process_group(backend="nccl" if self.device.type == "cuda" else "gloo")
            atexit.register(lambda: dist.is_initialized() and dist.destroy_process_group())
        self.precision = resolve_precision(C.precision, self.device)

        # The model, its optimizer, and the (possibly compiled, possibly DDP-wrapped) module that trains.
        self.model = unwrap_model(model).to(self.device)  # what callbacks and checkpoints see
        if hasattr(self.model, "configure_optimizers"):
            self.optimizer = self.model.configure_optimizers(C)
        else:  # generic fallback: decay matrices (>= 2-D), not biases or norm gains
            params = [p for p in self.model.parameters() if p.requires_grad]
            groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": C.weight_decay},
                      {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
            self.optimizer = torch.optim.AdamW(groups, lr=C.learning_rate, betas=tuple(C.betas))
        self.scaler = torch.amp.GradScaler("cuda") if self.precision.use_grad_scaler else None
        eval_model = model if hasattr(model, "_orig_mod") else self.model  # keep a model the caller compiled
        if C.compile and not hasattr(eval_model, "_orig_mod"):
            eval_model = torch.compile(self.model)
        self._eval_model = eval_model
        self._train_model = eval_model
        if self.world_size > 1:  # gradients are averaged across processes during backward
            ids = [self.device.index] if self.device.type == "cuda" else None
            self._train_model = nn.parallel.DistributedDataParallel(eval_model, device_ids=ids)

        # State callbacks read.
        self.iter_num, self.iter_dt, self.loss, self.lr = 0, 0.0, None, C.learning_rate
        self.iter_time = time.time()  # when the last step ended (wall clock), as the original minGPT has it
        self.tokens_per_sec, self.grad_norm, self.val_loss, self.best_val_loss = 0.0, None, None, None
        self.last_checkpoint_path, self.interrupted = None, False
        self._stop_requested = False  # set by stop(), e.g. from a callback
        self._in_batch_end = False  # during on_batch_end, iter_num is one behind the steps done
        if not self._resume():
            set_seed(C.seed + self.rank)  # dropout etc. differ per process; resume restores RNGs instead

    @property
    def is_main_process(self) -> bool:
        return self.rank == 0

    @property
    def steps_done(self) -> int:
        """Optimizer steps completed: iter_num, except inside on_batch_end, where iter_num is the index of the step
        that just ran (minGPT's numbering) and one step more is done."""
        return self.iter_num + 1 if self._in_batch_end else self.iter_num

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

        def positive_int(key, allow_zero=False, allow_none=False):
            v = getattr(C, key)
            if v is None and allow_none:
                return
            if not isinstance(v, int) or isinstance(v, bool) or v < (0 if allow_zero else 1):
                kind = "non-negative" if allow_zero else "positive"
                raise ValueError(f"trainer.{key} must be a {kind} int, got {v!r}")

        positive_int("max_iters", allow_none=True)
        for key in ("batch_size", "grad_accum_steps", "eval_iters"):
            positive_int(key)
        for key in ("num_workers", "warmup_iters", "eval_interval", "checkpoint_interval", "seed"):
            positive_int(key, allow_zero=True)
        positive_int("lr_decay_iters", allow_none=True)
        if not 0 < C.learning_rate < math.inf:
            raise ValueError(f"trainer.learning_rate must be a positive number such as 3e-4, got {C.learning_rate!r}")
        if not 0 <= C.weight_decay < math.inf:
            raise ValueError(f"trainer.weight_decay must be >= 0 (0 turns it off), got {C.weight_decay!r}")
        if not C.grad_norm_clip >= 0:
            raise ValueError(f"trainer.grad_norm_clip must be >= 0 (0 turns clipping off), got {C.grad_norm_clip!r}")
        if not all(0 <= b < 1 for b in C.betas):
            raise ValueError(f"trainer.betas must be two numbers in [0, 1) such as (0.9, 0.95), got {C.betas!r}")
        if C.min_lr is not None and not 0 <= C.min_lr <= C.learning_rate:
            raise ValueError(f"trainer.min_lr must be in [0, learning_rate={C.learning_rate}], got {C.min_lr!r}")
        if C.lr_schedule not in SCHEDULES:
            raise ValueError(f"trainer.lr_schedule must be one of {SCHEDULES}, got {C.lr_schedule!r}")
        if C.lr_schedule == "cosine" and C.max_iters is None and C.lr_decay_iters is None:
            raise ValueError("the cosine schedule needs a horizon: set trainer.max_iters or trainer.lr_decay_iters")
        if C.eval_interval and not has_val_dataset:
            raise ValueError("trainer.eval_interval is set but no val_dataset was given; pass one or set it to 0")
        if C.precision not in PRECISIONS:
            raise ValueError(f"trainer.precision must be one of {PRECISIONS}, got {C.precision!r}")
        return C

    # ------------------------------------------------------------------ events
    def _check_event(self, event: str) -> None:
        if event not in EVENTS:
            raise ValueError(f"unknown event {event!r}; valid events are {', '.join(EVENTS)}")

    def add_callback(self, event: str | object, callback: Callable[["Trainer"], None] | None = None) -> None:
        """``add_callback('on_batch_end', fn)`` with fn(trainer), or ``add_callback(obj)`` for an object whose
        methods are named after events (``obj.on_batch_end(trainer)``)."""
        if isinstance(event, str):
            self._check_event(event)
            if not callable(callback):
                raise TypeError(f"callback for {event!r} must be callable, got {callback!r}")
            self.callbacks[event].append(callback)
            return
        if callback is not None:
            raise TypeError("pass either (event_name, function) or a single callback object")
        names = [n for n in dir(event) if n.startswith("on_") and callable(getattr(event, n))]
        for name in names:
            self._check_event(name)  # a misspelt method would otherwise never fire
        if not names:
            raise TypeError(f"{type(event).__name__} has no event methods; define some of: {', '.join(EVENTS)}")
        for name in names:
            self.callbacks[name].append(getattr(event, name))

    def set_callback(self, event: str, callback: Callable[["Trainer"], None]) -> None:
        """Replace all callbacks of `event` with this one."""
        self._check_event(event)
        self.callbacks[event] = []
        self.add_callback(event, callback)

    def trigger_callbacks(self, event: str) -> None:
        self._check_event(event)
        for callback in self.callbacks[event]:
            callback(self)

    # ------------------------------------------------------------------ data
    def _batches(self, dataset, stream: int, start: int, accum: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        C = self.config
        indices = StepSampler(len(dataset), C.batch_size, accum, self.world_size, self.rank, C.seed, stream, start,
                              as_list=not isinstance(dataset, TokenStream))
        pin = self.device.type == "cuda"
        if hasattr(dataset, "batch_iterator"):  # a data set that batches itself and has a position to save
            batches = dataset.batch_iterator(C.batch_size, accum, self.world_size, self.rank, C.seed, stream, start,
                                             state=self.data_state() if stream == 0 else None)
            if stream == 0:
                self._data_batches = batches
            for x, y in batches:
                yield (x.pin_memory(), y.pin_memory()) if pin else (x, y)
            return
        if isinstance(dataset, TokenStream):  # the fast path: one vectorised gather per batch, no DataLoader
            for idx in indices:
                x, y = dataset.get_batch(idx)
                yield (x.pin_memory(), y.pin_memory()) if pin else (x, y)
            return
        # Each worker seeds torch, numpy and python from (seed, rank, start step, worker id): see seed_worker.
        # The DataLoader draws a base seed for its workers; from its own generator, not from training's RNG.
        loader_seed = int(np.random.default_rng([C.seed, 2, self.rank, start]).integers(2**62))
        generator = torch.Generator().manual_seed(loader_seed)
        init = functools.partial(seed_worker, seed=C.seed, rank=self.rank, start=start)
        yield from DataLoader(dataset, batch_sampler=indices, num_workers=C.num_workers, pin_memory=pin,
                              generator=generator, worker_init_fn=init if C.num_workers else None)

    def data_state(self) -> dict | None:
        """The training data's position, for data sets with a ``batch_iterator(...)`` whose iterator has
        ``state_dict()`` (e.g. `mingpt.token_shards.TokenShards`); saved in checkpoints, restored on resume."""
        return self._data_batches.state_dict() if self._data_batches is not None else self._data_state

    def _next_batch(self, batches: Iterator, name: str, check: bool) -> tuple[torch.Tensor, torch.Tensor]:
        if not check:
            x, y = next(batches)
        else:  # the first batch: turn shape problems into messages about the data set, not deep stack traces
            try:
                batch = next(batches)
            except RuntimeError as e:
                raise ValueError(f"could not batch {name}: {e}; every item must have the same shape") from e
            _check_batch(batch, name)
            x, y = batch
        return x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    def _autocast(self):
        if self.precision.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.precision.autocast_dtype)

    # ------------------------------------------------------------------ the loop
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
                with self._autocast():
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
        iters = iters or self.config.eval_iters
        model, was_training = self._eval_model, self._eval_model.training
        model.eval()  # dropout off
        # A data set may draw random numbers (random crops, random problems): give evaluation its own seeded
        # generators and put training's back afterwards, so training continues as if nothing had happened.
        training_rng = capture_rng_state()
        set_seed(int(np.random.default_rng([self.config.seed, 1, self.rank]).integers(2**31)))
        batches = self._batches(dataset, stream=1, start=0, accum=1)
        total = torch.zeros((), device=self.device)
        try:
            for i in range(iters):
                x, y = self._next_batch(batches, "val_dataset", check=i == 0)
                with self._autocast():
                    total += model(x, y)[1].float()
        finally:
            batches.close()
            model.train(was_training)
            restore_rng_state(training_rng)
        if self.world_size > 1:
            dist.all_reduce(total)
            total /= self.world_size
        return (total / iters).item()

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, path: str | None = None) -> str | None:
        """Save everything needed to resume (rank 0 only; returns the path, or None on other ranks)."""
        if not self.is_main_process:
            return None
        if path is None:
            if not self.config.work_dir:
                raise ValueError("no checkpoint path given and trainer.work_dir is not set")
            path = os.path.join(self.config.work_dir, "last.pt")
        if self.config.stop_on_nonfinite:
            bad = [name for name, p in self.model.state_dict().items()
                   if p.is_floating_point() and not torch.isfinite(p).all()]
            if bad:  # a checkpoint is something to go back to: never replace a good one with NaN
                raise FloatingPointError(
                    f"refusing to save {path!r} at step {self.iter_num}: {len(bad)} tensors hold NaN/inf "
                    f"(first: {bad[0]}); the previous checkpoint there is kept. "
                    "trainer.stop_on_nonfinite=False saves regardless.")
        model_config = getattr(self.model, "config", None)
        # Saved from on_batch_end (e.g. a best.pt), iter_num is that step's index: the checkpoint records the
        # steps done, so that resuming from it continues with the right step.
        steps_done = self.steps_done
        save_checkpoint(
            path, model=self.model, optimizer=self.optimizer, scaler=self.scaler, iter_num=steps_done,
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
        checkpoint = _load_for_resume(path)
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


# ---------------------------------------------------------------------------------------------- resuming
def resume_path(config: CfgNode) -> str | None:
    """The checkpoint `config.resume` points at (for 'auto': work_dir/last.pt if it exists), or None."""
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


def _load_for_resume(path: str, mmap: bool = False) -> dict:
    """load_checkpoint, with an error that says how to go on when the file cannot be used."""
    try:
        return load_checkpoint(path, mmap=mmap)
    except (FileNotFoundError, ValueError) as e:
        best = os.path.join(os.path.dirname(path), "best.pt")
        other = best if os.path.isfile(best) and os.path.abspath(best) != os.path.abspath(path) else "<checkpoint>"
        reason = str(e.args[0] if e.args else e).rstrip(".")
        raise type(e)(f"cannot resume: {reason}. Resume from another checkpoint "
                      f"(--trainer.resume={other}) or start fresh (--trainer.resume=None)") from None


def check_resume(config: CfgNode) -> None:
    """
    Fail fast if a trainer config's `resume` names a checkpoint that cannot be read: a project calls this
    before it sets up its run directory, so a truncated last.pt gives one clear line, not a run that starts and
    crashes. Cheap: the tensors are memory-mapped, not read (the Trainer's full load still checks them).
    """
    path = resume_path(config)
    if path is not None:
        _load_for_resume(path, mmap=True)
