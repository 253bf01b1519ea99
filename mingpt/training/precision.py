"""
Mixed precision: what 'auto', 'fp32', 'bf16' and 'fp16' mean on a given device.

The one idea: lower-precision arithmetic is faster, but not every device can run every dtype, and float16's narrow
range makes small gradients underflow to zero unless the loss is scaled up first (a GradScaler, CUDA-only here).
bfloat16 keeps float32's range, so it needs no scaling. This module turns a setting into a concrete plan, and
refuses plans a device cannot carry out instead of failing deep inside torch.

Native bf16 on CPU: recent x86 CPUs multiply bfloat16 in hardware (Intel AMX tiles, or the AVX-512-BF16
instructions of recent Xeons and AMD Zen 4/5). There bf16 autocast trains faster than fp32
(bench/train_step.py prints both; docs/performance.md has the figures), so 'auto' picks it; elsewhere bf16 is
emulated and slower, so 'auto' stays fp32. The check asks PyTorch what it will run
(`torch.cpu._is_amx_tile_supported()`, `torch.cpu._is_avx512_bf16_supported()`), never the CPU's name. Set the
environment variable ``MINGPT_NATIVE_BF16=0`` to behave as if the CPU had no native bf16 (``=1`` as if it had):
e.g. to reproduce fp32 numerics on an AMX machine, or to run the tests as they run on a CPU without it.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field

import torch

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}  # names used by --dtype
NATIVE_BF16_ENV = "MINGPT_NATIVE_BF16"  # '0' or '1' overrides the CPU check below


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (AMX or AVX-512-BF16), as PyTorch sees it."""
    forced = os.environ.get(NATIVE_BF16_ENV)
    if forced is not None:
        if forced not in ("0", "1"):
            raise ValueError(f"{NATIVE_BF16_ENV} must be '0' or '1' (or unset to detect), got {forced!r}")
        return forced == "1"
    cpu = getattr(torch, "cpu", None)  # private helpers: treat their absence (older or other builds) as "no"
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(getattr(cpu, name, lambda: False)() for name in checks)


@dataclass(frozen=True)
class Precision:
    name: str  # 'fp32', 'bf16' or 'fp16'
    autocast_dtype: torch.dtype | None  # None: no autocast, everything in float32
    use_grad_scaler: bool  # fp16 gradients underflow without loss scaling; bf16 has float32's range
    reason: str = field(default="", compare=False)  # why this plan, for the log line at the start of training


def resolve_precision(precision: str, device: str | torch.device, cuda_bf16: bool | None = None) -> Precision:
    """
    What 'auto'/'fp32'/'bf16'/'fp16' means on this device. 'auto' is bf16 on CUDA GPUs that support it, fp16 with
    a GradScaler on older GPUs, bf16 autocast on CPUs with native bf16 (see cpu_has_native_bf16), and plain fp32 on
    other CPUs and on MPS. CPU and MPS never get a GradScaler (it is CUDA-only here) or a dtype they cannot run.
    cuda_bf16 overrides the GPU capability check (for tests).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    kind = torch.device(device).type
    if kind == "cuda" and precision in ("auto", "bf16"):
        cuda_bf16 = torch.cuda.is_bf16_supported() if cuda_bf16 is None else cuda_bf16
        if cuda_bf16:
            return Precision("bf16", torch.bfloat16, False, f"{precision!r} on a GPU with bf16")
        if precision == "bf16":
            raise ValueError("this GPU does not support bfloat16; use precision='fp16' (with loss scaling) or 'fp32'")
        return Precision("fp16", torch.float16, True, "'auto' on a GPU without bf16: fp16 with loss scaling")
    if precision == "fp16":
        if kind != "cuda":
            raise ValueError(f"precision='fp16' needs a CUDA GPU (loss scaling is CUDA-only), not {kind!r}; use 'fp32'")
        return Precision("fp16", torch.float16, True, "asked for fp16")
    if precision == "bf16":
        if kind != "cpu":  # CPU autocast runs bf16 matmuls; MPS mixed precision is not supported here
            raise ValueError(f"precision='bf16' is supported on CUDA and CPU, not {kind!r}; use 'fp32'")
        native = "native" if cpu_has_native_bf16() else "emulated (slower than fp32 on this CPU)"
        return Precision("bf16", torch.bfloat16, False, f"asked for bf16; CPU bf16 is {native}")
    if precision == "auto" and kind == "cpu":
        if cpu_has_native_bf16():
            return Precision("bf16", torch.bfloat16, False, "'auto' on a CPU with native bf16 (AMX or AVX-512-BF16)")
        return Precision("fp32", None, False, "'auto' on a CPU without native bf16")
    return Precision("fp32", None, False, "asked for fp32" if precision == "fp32" else f"'auto' on {kind}")


def autocast(device_type: str, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """``with autocast('cpu', torch.bfloat16):`` runs the block under torch.autocast in `dtype`; dtype None (plain
    fp32) gives a context that does nothing, so callers need no branch of their own."""
    return contextlib.nullcontext() if dtype is None else torch.autocast(device_type, dtype=dtype)


def inference_dtype(name: str, device: str | torch.device) -> torch.dtype:
    """
    The weight dtype for generation: 'fp32', 'bf16', 'fp16', or 'auto' = bf16 on GPUs with bf16 and on CPUs with
    native bf16 (decoding reads every weight once per token, so half the bytes is nearly twice the speed), else fp32.
    """
    if name not in ("auto", *DTYPES):
        raise ValueError(f"dtype must be one of {('auto', *DTYPES)}, got {name!r}")
    if name != "auto":
        return DTYPES[name]
    kind = torch.device(device).type
    if kind == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    if kind == "cpu" and cpu_has_native_bf16():
        return torch.bfloat16
    return torch.float32
