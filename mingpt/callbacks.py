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
into model FLOPs: ``flops_per_token * tokens_per_sec / peak``. The peak comes from the actual device's exact name
and the precision the trainer runs in (a bf16 step is measured against the bf16 peak, an fp32 step against fp32's).
"""

from __future__ import annotations

import logging
import math
import os
import time

import torch

from mingpt.atomic import atomic_path

__all__ = ["ProgressLogger", "LossCurvePlot", "StopOnNaN", "PEAK_FLOPS", "peak_flops_for", "device_peak_flops",
           "estimate_mfu"]

logger = logging.getLogger(__name__)

# Dense (no sparsity) tensor-core peaks from the vendor data sheets, in FLOP/s, for each precision a training step
# can run its matmuls in. Keys are the exact names CUDA reports (torch.cuda.get_device_name), upper-cased: a
# substring match would give an 'NVIDIA L40' the 'NVIDIA L4' figure. 'tf32' is what fp32 matmuls run in when
# torch.backends allows it (torch.set_float32_matmul_precision('high')); 'fp32' is the plain CUDA-core figure.
PEAK_FLOPS = {
    "NVIDIA H200": dict(bf16=989e12, fp16=989e12, tf32=494e12, fp32=67e12),
    "NVIDIA H200 NVL": dict(bf16=835e12, fp16=835e12, tf32=418e12, fp32=60e12),
    "NVIDIA H100 80GB HBM3": dict(bf16=989e12, fp16=989e12, tf32=494e12, fp32=67e12),
    "NVIDIA H100 PCIE": dict(bf16=756e12, fp16=756e12, tf32=378e12, fp32=51e12),
    "NVIDIA H100 NVL": dict(bf16=835e12, fp16=835e12, tf32=418e12, fp32=60e12),
    "NVIDIA A100-SXM4-40GB": dict(bf16=312e12, fp16=312e12, tf32=156e12, fp32=19.5e12),
    "NVIDIA A100-SXM4-80GB": dict(bf16=312e12, fp16=312e12, tf32=156e12, fp32=19.5e12),
    "NVIDIA A100-PCIE-40GB": dict(bf16=312e12, fp16=312e12, tf32=156e12, fp32=19.5e12),
    "NVIDIA A100 80GB PCIE": dict(bf16=312e12, fp16=312e12, tf32=156e12, fp32=19.5e12),
    "NVIDIA L40S": dict(bf16=362e12, fp16=362e12, tf32=183e12, fp32=91.6e12),
    "NVIDIA L40": dict(bf16=181e12, fp16=181e12, tf32=90.5e12, fp32=90.5e12),
    "NVIDIA L4": dict(bf16=121e12, fp16=121e12, tf32=60e12, fp32=30.3e12),
    "NVIDIA GEFORCE RTX 4090": dict(bf16=165e12, fp16=165e12, tf32=82.6e12, fp32=82.6e12),
    "NVIDIA GEFORCE RTX 3090": dict(bf16=71e12, fp16=71e12, tf32=35.6e12, fp32=35.6e12),
}
MATMUL_PRECISIONS = ("bf16", "fp16", "tf32", "fp32")


def peak_flops_for(device_name: str, precision: str = "bf16") -> float | None:
    """
    Peak FLOP/s of the GPU named exactly `device_name` (as CUDA reports it, e.g. 'NVIDIA H100 80GB HBM3'; case
    and surrounding spaces are ignored) for matmuls in `precision` ('bf16', 'fp16', 'tf32' or 'fp32');
    None if the name is not in PEAK_FLOPS.
    """
    if precision not in MATMUL_PRECISIONS:
        raise ValueError(f"precision must be one of {MATMUL_PRECISIONS}, got {precision!r}")
    peaks = PEAK_FLOPS.get(" ".join(device_name.upper().split()))
    return None if peaks is None else peaks[precision]


def device_peak_flops(device: str | torch.device, precision: str = "bf16") -> float | None:
    """
    Peak FLOP/s of this device for a training step in `precision` (a Trainer's precision name: 'bf16', 'fp16' or
    'fp32'; an fp32 step counts as tf32 when PyTorch lets fp32 matmuls use TF32 tensor cores). Asks CUDA for the
    device's name; None for CPU, MPS and GPUs not in PEAK_FLOPS.
    """
    device = torch.device(device)
    if precision == "fp32" and torch.get_float32_matmul_precision() != "highest":
        precision = "tf32"  # 'high' / 'medium' let cuBLAS run fp32 matmuls on TF32 tensor cores
    if precision not in MATMUL_PRECISIONS:
        raise ValueError(f"precision must be one of {MATMUL_PRECISIONS}, got {precision!r}")
    if device.type != "cuda":
        return None
    return peak_flops_for(torch.cuda.get_device_name(device), precision)


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
        precision = getattr(getattr(trainer, "precision", None), "name", "fp32")  # the Trainer's resolved precision
        self._peak = self.peak_flops or device_peak_flops(trainer.device, precision)
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
