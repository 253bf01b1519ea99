"""
Mixed precision: what 'auto', 'fp32', 'bf16' and 'fp16' mean on a given device.

The one idea: lower-precision arithmetic is faster, but not every device can run every dtype, and float16's narrow
range makes small gradients underflow to zero unless the loss is scaled up first (a GradScaler, CUDA-only here).
bfloat16 keeps float32's range, so it needs no scaling. This module turns a setting into a concrete plan, and
refuses plans a device cannot carry out instead of failing deep inside torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass(frozen=True)
class Precision:
    name: str  # 'fp32', 'bf16' or 'fp16'
    autocast_dtype: torch.dtype | None  # None: no autocast, everything in float32
    use_grad_scaler: bool  # fp16 gradients underflow without loss scaling; bf16 has float32's range


def resolve_precision(precision: str, device: str | torch.device, cuda_bf16: bool | None = None) -> Precision:
    """
    What 'auto'/'fp32'/'bf16'/'fp16' means on this device. 'auto' is bf16 on CUDA GPUs that support it, fp16 with
    a GradScaler on older GPUs, and plain fp32 on CPU and MPS. CPU and MPS never get a GradScaler (it is CUDA-only
    here) or a dtype they cannot run. cuda_bf16 overrides the GPU capability check (for tests).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    kind = torch.device(device).type
    if kind == "cuda" and precision in ("auto", "bf16"):
        cuda_bf16 = torch.cuda.is_bf16_supported() if cuda_bf16 is None else cuda_bf16
        if cuda_bf16:
            return Precision("bf16", torch.bfloat16, False)
        if precision == "bf16":
            raise ValueError("this GPU does not support bfloat16; use precision='fp16' (with loss scaling) or 'fp32'")
        precision = "fp16"
    if precision == "fp16":
        if kind != "cuda":
            raise ValueError(f"precision='fp16' needs a CUDA GPU (loss scaling is CUDA-only), not {kind!r}; use 'fp32'")
        return Precision("fp16", torch.float16, True)
    if precision == "bf16":
        if kind != "cpu":  # CPU autocast runs bf16 matmuls; MPS mixed precision is not supported here
            raise ValueError(f"precision='bf16' is supported on CUDA and CPU, not {kind!r}; use 'fp32'")
        return Precision("bf16", torch.bfloat16, False)
    return Precision("fp32", None, False)  # 'fp32', or 'auto' on CPU/MPS
