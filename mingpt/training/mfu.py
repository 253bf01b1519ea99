"""
Model FLOPs utilisation (MFU): how much of a GPU's peak matmul throughput a training step turns into model FLOPs.

The one idea: ``MFU = flops_per_token * tokens_per_sec / peak``. The model knows its FLOPs per token
(`GPT.estimate_flops_per_token`: 6 per parameter plus attention), the Trainer measures tokens per second, and the
peak is a property of the hardware: the vendor's data-sheet figure for the actual device's exact name and the
precision the step runs its matmuls in (a bf16 step is measured against the bf16 peak, an fp32 step against fp32's).
A CPU, an MPS device or a GPU missing from the table has no known peak, so its MFU is unknown (None), not made up.

    >>> estimate_mfu(flops_per_token=6e9, tokens_per_sec=50_000, peak_flops=1e15)
    0.3
"""

from __future__ import annotations

import torch

__all__ = ["PEAK_FLOPS", "MATMUL_PRECISIONS", "peak_flops_for", "device_peak_flops", "estimate_mfu"]

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
