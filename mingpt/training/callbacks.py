"""
Callbacks: the Trainer's five events, how callbacks are registered and fired (`Events`, which the Trainer is), and
the built-in ones: progress logging (with MFU), a loss-curve PNG, and a wall-clock time limit.

The one idea: a callback is a function of the trainer, or a small object whose methods are named after the
Trainer's events (``on_train_start``, ``on_batch_end``, ``on_eval_end``, ``on_checkpoint``, ``on_train_end``), and
it reads the trainer's plain attributes. Apart from `Events`, nothing here is needed for training: each built-in
callback is a few lines you could write yourself.

    trainer = Trainer(config, model, train_set, val_set)
    trainer.add_callback(ProgressLogger(interval=100))
    trainer.add_callback(LossCurvePlot("out/loss.png"))
    trainer.add_callback(TimeLimit(seconds=120))

What a callback may read on the trainer: ``iter_num``, ``iter_dt`` (seconds for the last step, measured before any
callback runs), ``iter_time`` (``time.time()`` when the last step ended, as in the original minGPT), ``loss`` (a
detached tensor: ``trainer.loss.item()``), ``lr``, ``tokens_per_sec``, ``val_loss``, ``best_val_loss``, ``model``,
``optimizer``, ``config``, ``device``, ``rank``, ``world_size``, ``steps_done``. A callback may call
``trainer.stop()`` to end training after the current step. ``on_train_end`` fires however training ends (also when
a callback or the loss raises), so it is the place for cleanup.

Evaluation and checkpointing live in the Trainer itself (``eval_interval``, ``work_dir``), because resuming and
Ctrl-C need them; their events (on_eval_end, on_checkpoint) are what these callbacks listen to.

At ``on_batch_end`` the trainer's ``iter_num`` is the index of the step that just ran (0-based, as in the
original minGPT), so these callbacks count ``trainer.steps_done`` (one more there), the number every other event
sees.

ProgressLogger reports model FLOPs utilisation (MFU) when it is known: see `mingpt.training.mfu` for the GPUs' peaks.
"""

from __future__ import annotations

import logging
import math
import os
import time
from typing import Callable

import torch

from mingpt.atomic import atomic_path
from mingpt.training.mfu import device_peak_flops, estimate_mfu
from mingpt.utils import check_int

__all__ = ["EVENTS", "Events", "ProgressLogger", "LossCurvePlot", "TimeLimit"]

logger = logging.getLogger(__name__)

EVENTS = ("on_train_start", "on_batch_end", "on_eval_end", "on_checkpoint", "on_train_end")


class Events:
    """
    The callbacks of each event, and firing them: ``trigger_callbacks('on_batch_end')`` calls each one with the
    object that owns them (the Trainer). Event names are checked, so a misspelt one raises instead of never firing.
    """

    EVENTS = EVENTS

    def __init__(self, callbacks: tuple = ()):
        self.callbacks: dict[str, list[Callable]] = {event: [] for event in EVENTS}
        for callback in callbacks:
            self.add_callback(callback)

    def add_callback(self, event: str | object, callback: Callable | None = None) -> None:
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

    def set_callback(self, event: str, callback: Callable) -> None:
        """Replace all callbacks of `event` with this one."""
        self._check_event(event)
        self.callbacks[event] = []
        self.add_callback(event, callback)

    def trigger_callbacks(self, event: str) -> None:
        self._check_event(event)
        for callback in self.callbacks[event]:
            callback(self)

    def _check_event(self, event: str) -> None:
        if event not in EVENTS:
            raise ValueError(f"unknown event {event!r}; valid events are {', '.join(EVENTS)}")


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    h, m, s = seconds // 3600, seconds // 60 % 60, seconds % 60
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


class ProgressLogger:
    """
    Every `interval` steps, log step, loss, learning rate, tokens/s, MFU (when the model has
    ``estimate_flops_per_token`` and the device's peak is known, or `peak_flops` is given) and the time left;
    after each evaluation, the validation loss, the best so far and the seconds since training started.
    With use_tqdm=True a progress bar shows the step line. Only rank 0 reports.
    """

    def __init__(self, interval: int = 10, use_tqdm: bool = False, peak_flops: float | None = None):
        self.interval = check_int(interval, "interval", 1)
        self.use_tqdm, self.peak_flops = use_tqdm, peak_flops
        self.bar = None

    def on_train_start(self, trainer) -> None:
        self._start_time, self._start_iter = time.perf_counter(), trainer.iter_num
        estimate = getattr(trainer.model, "estimate_flops_per_token", None)
        self._flops_per_token = estimate() if callable(estimate) else None
        precision = getattr(getattr(trainer, "precision", None), "name", "fp32")  # the Trainer's resolved precision
        self._peak = self.peak_flops or device_peak_flops(trainer.device, precision)
        if self.use_tqdm and trainer.is_main_process:
            # tqdm.auto looks for a notebook when imported (~70 ms): paid only when a progress bar is asked for
            from tqdm.auto import tqdm

            self.bar = tqdm(total=trainer.config.max_iters, initial=trainer.iter_num, unit="step")

    def format(self, trainer, steps_done: int | None = None) -> str:
        """The report line, e.g. 'step 100/1000 | loss 2.3412 | lr 3.00e-04 | 51,200 tok/s | MFU 41.2% | ETA 2m10s'.
        steps_done defaults to trainer.steps_done."""
        max_iters = trainer.config.max_iters
        steps_done = trainer.steps_done if steps_done is None else steps_done
        parts = [f"step {steps_done}" + (f"/{max_iters}" if max_iters else ""),
                 f"loss {trainer.loss.item():.4f}", f"lr {trainer.lr:.2e}", f"{trainer.tokens_per_sec:,.0f} tok/s"]
        mfu = None
        if self._flops_per_token:
            mfu = estimate_mfu(self._flops_per_token, trainer.tokens_per_sec, self._peak, trainer.world_size)
        if mfu is not None:
            parts.append(f"MFU {100 * mfu:.1f}%")
        done = steps_done - self._start_iter
        if max_iters and done > 0:
            per_step = (time.perf_counter() - self._start_time) / done  # wall time, evaluation included
            parts.append(f"ETA {_duration(per_step * (max_iters - steps_done))}")
        return " | ".join(parts)

    def on_batch_end(self, trainer) -> None:
        if not trainer.is_main_process:
            return
        if self.bar is not None:
            self.bar.update(1)
        done = trainer.steps_done  # iter_num is the index of the step that just ran: one less
        if done % self.interval == 0 or done == trainer.config.max_iters:
            line = self.format(trainer, steps_done=done)
            if self.bar is not None:
                self.bar.set_postfix_str(line.split(" | ", 1)[1])
            else:
                logger.info(line)

    def on_eval_end(self, trainer) -> None:
        if trainer.is_main_process:
            logger.info("step %d | val loss %.4f | best %.4f | %.0f s", trainer.iter_num, trainer.val_loss,
                        trainer.best_val_loss, time.perf_counter() - self._start_time)

    def on_train_end(self, trainer) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class LossCurvePlot:
    """
    Draw training (and validation) loss against step into a PNG at `path`: after each evaluation, every `every`
    steps if given, and at the end. Needs matplotlib (an optional dependency), checked when created.
    """

    def __init__(self, path: str | os.PathLike, every: int = 0):
        try:
            import matplotlib  # noqa: F401  (only checking it is there)
        except ImportError:
            raise ImportError("LossCurvePlot draws with matplotlib, which is not installed: "
                              "pip install matplotlib") from None
        self.path, self.every = os.fspath(path), every
        self.train: list[tuple[int, torch.Tensor]] = []  # detached loss tensors: no GPU sync per step
        self.val: list[tuple[int, float]] = []

    def on_batch_end(self, trainer) -> None:
        done = trainer.steps_done  # plotted against steps done, like the validation points
        self.train.append((done, trainer.loss.detach()))
        if self.every and done % self.every == 0 and trainer.is_main_process:
            self.save()

    def on_eval_end(self, trainer) -> None:
        self.val.append((trainer.iter_num, trainer.val_loss))
        if trainer.is_main_process:
            self.save()

    def on_train_end(self, trainer) -> None:
        if trainer.is_main_process and self.train:
            self.save()

    def save(self) -> None:
        """Write the PNG atomically (temp file, then rename)."""
        from matplotlib.figure import (
            Figure,  # no pyplot: no GUI backend, safe in scripts and threads
        )

        fig = Figure(figsize=(7, 4))
        ax = fig.subplots()
        if self.train:
            steps, losses = zip(*self.train)
            ax.plot(steps, [float(v) for v in losses], label="train", linewidth=1)
        if self.val:
            ax.plot(*zip(*self.val), "o-", label="val")
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.grid(alpha=0.3)
        ax.legend()
        with atomic_path(self.path) as tmp:
            fig.savefig(tmp, format="png", dpi=100)


class TimeLimit:
    """
    End training once `seconds` of wall time have passed since it started (0 = no limit): `trainer.stop()` makes
    the current step the last one, so the Trainer still evaluates and saves as at any normal end. `fired` says
    whether the limit ended the run (a step that reaches max_iters ends it anyway, so the limit does not fire there).
    """

    def __init__(self, seconds: float):
        if not (isinstance(seconds, (int, float)) and 0 <= seconds < math.inf):
            raise ValueError(f"seconds must be a number >= 0 (0 = no limit), got {seconds!r}")
        self.seconds = seconds
        self.fired = False

    def on_train_start(self, trainer) -> None:
        self.start = time.perf_counter()

    def on_batch_end(self, trainer) -> None:
        steps_done = trainer.steps_done  # at on_batch_end, iter_num is the index of the step just run
        done = trainer.config.max_iters is not None and steps_done >= trainer.config.max_iters
        if self.seconds and not done and time.perf_counter() - self.start > self.seconds:
            logger.info("time limit of %.0f s reached after %d steps", self.seconds, steps_done)
            self.fired = True
            trainer.stop()
