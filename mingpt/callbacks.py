"""
Built-in callbacks for the Trainer: progress logging (with MFU), a loss-curve PNG, and a stop on NaN/inf loss.

The one idea: a callback is a small object whose methods are named after the Trainer's events
(``on_train_start``, ``on_batch_end``, ``on_eval_end``, ``on_checkpoint``, ``on_train_end``) and read the
trainer's plain attributes. Nothing here is needed for training; each one is a few lines you could write yourself.

    trainer = Trainer(config, model, train_set, val_set)
    trainer.add_callback(ProgressLogger(interval=100))
    trainer.add_callback(LossCurvePlot("out/loss.png"))
    trainer.add_callback(StopOnNaN())

Evaluation and checkpointing live in the Trainer itself (``eval_interval``, ``work_dir``), because resuming and
Ctrl-C need them; their events (on_eval_end, on_checkpoint) are what these callbacks listen to.

At ``on_batch_end`` the trainer's ``iter_num`` is the index of the step that just ran (0-based, as in the
original minGPT), so these callbacks count ``iter_num + 1`` steps done there, the number every other event sees.

Model FLOPs utilisation (MFU) is the fraction of the GPU's peak matmul throughput that the training step turns
into model FLOPs: ``flops_per_token * tokens_per_sec / peak``. The peak comes from the actual device's name.
"""

from __future__ import annotations

import logging
import math
import os
import time

import torch

from mingpt.atomic import atomic_path

__all__ = ["ProgressLogger", "LossCurvePlot", "StopOnNaN", "PEAK_BF16_FLOPS", "peak_flops_for", "device_peak_flops",
           "estimate_mfu"]

logger = logging.getLogger(__name__)

# Dense (no sparsity) bf16 tensor-core peaks from the vendor data sheets, in FLOP/s. Checked in order, so the
# more specific names come first ('H100 PCIe' before 'H100', whose remaining variants are the SXM/HBM3 part).
PEAK_BF16_FLOPS = (
    ("H200", 989e12),
    ("H100 PCIE", 756e12),
    ("H100 NVL", 835e12),
    ("H100", 989e12),
    ("A100", 312e12),
    ("L40S", 362e12),
    ("L4", 121e12),
    ("RTX 4090", 165e12),
    ("RTX 3090", 71e12),
)


def peak_flops_for(device_name: str) -> float | None:
    """Peak bf16 FLOP/s for a GPU name such as 'NVIDIA H100 80GB HBM3'; None if the name is not in the table."""
    name = device_name.upper()
    for key, flops in PEAK_BF16_FLOPS:
        if key in name:
            return flops
    return None


def device_peak_flops(device: str | torch.device) -> float | None:
    """Peak bf16 FLOP/s of this device (asks CUDA for its name); None for CPU, MPS and unknown GPUs."""
    device = torch.device(device)
    if device.type != "cuda":
        return None
    return peak_flops_for(torch.cuda.get_device_name(device))


def estimate_mfu(flops_per_token: float, tokens_per_sec: float, peak_flops: float | None, n_devices: int = 1):
    """Model FLOPs utilisation in [0, 1]: achieved model FLOP/s over the peak of all devices; None if unknown."""
    if not peak_flops:
        return None
    return flops_per_token * tokens_per_sec / (peak_flops * n_devices)


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    h, m, s = seconds // 3600, seconds // 60 % 60, seconds % 60
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


class ProgressLogger:
    """
    Every `interval` steps, log step, loss, learning rate, tokens/s, MFU (when the model has
    ``estimate_flops_per_token`` and the device's peak is known, or `peak_flops` is given) and the time left.
    With use_tqdm=True a progress bar shows the same line. Only rank 0 reports.
    """

    def __init__(self, interval: int = 10, use_tqdm: bool = False, peak_flops: float | None = None):
        if not isinstance(interval, int) or interval < 1:
            raise ValueError(f"interval must be a positive int, got {interval!r}")
        self.interval, self.use_tqdm, self.peak_flops = interval, use_tqdm, peak_flops
        self.bar = None

    def on_train_start(self, trainer) -> None:
        self._start_time, self._start_iter = time.perf_counter(), trainer.iter_num
        estimate = getattr(trainer.model, "estimate_flops_per_token", None)
        self._flops_per_token = estimate() if callable(estimate) else None
        self._peak = self.peak_flops or device_peak_flops(trainer.device)
        if self.use_tqdm and trainer.is_main_process:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=trainer.config.max_iters, initial=trainer.iter_num, unit="step")

    def format(self, trainer, steps_done: int | None = None) -> str:
        """The report line, e.g. 'step 100/1000 | loss 2.3412 | lr 3.00e-04 | 51,200 tok/s | MFU 41.2% | ETA 2m10s'.
        steps_done defaults to trainer.iter_num (at on_batch_end, pass trainer.iter_num + 1)."""
        max_iters = trainer.config.max_iters
        steps_done = trainer.iter_num if steps_done is None else steps_done
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
        done = trainer.iter_num + 1  # iter_num is the index of the step that just ran
        if done % self.interval == 0 or done == trainer.config.max_iters:
            line = self.format(trainer, steps_done=done)
            if self.bar is not None:
                self.bar.set_postfix_str(line.split(" | ", 1)[1])
            else:
                logger.info(line)

    def on_eval_end(self, trainer) -> None:
        if trainer.is_main_process:
            logger.info("step %d | val loss %.4f | best %.4f", trainer.iter_num, trainer.val_loss,
                        trainer.best_val_loss)

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
        done = trainer.iter_num + 1  # plotted against steps done, like the validation points
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
        from matplotlib.figure import Figure  # no pyplot: no GUI backend, safe in scripts and threads

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


class StopOnNaN:
    """
    Stop training with FloatingPointError as soon as the loss is NaN or infinite (checks every `every` steps).
    The Trainer already does this before every step (``trainer.stop_on_nonfinite``, on by default); this callback
    is for runs that turned that off and still want a stop, checked less often (each check waits for the GPU).
    """

    def __init__(self, every: int = 1):
        self.every = every

    def on_batch_end(self, trainer) -> None:
        if (trainer.iter_num + 1) % self.every:
            return
        loss = float(trainer.loss)
        if not math.isfinite(loss):
            raise FloatingPointError(
                f"loss is {loss} at step {trainer.iter_num} (lr {trainer.lr:.2e}); training has diverged. "
                "Try a lower trainer.learning_rate, warmup_iters > 0, grad_norm_clip > 0, precision='fp32', "
                "or check the data for bad values; resume from the last good checkpoint."
            )
