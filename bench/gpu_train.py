"""
GPU training throughput: GPT-2 124M on random tokens through the Trainer, reporting tokens/s and MFU.

On a CUDA machine this uses everything the Trainer offers for speed: bf16 autocast, fused AdamW (from
GPT.configure_optimizers), flash attention (scaled_dot_product_attention inside the model) and torch.compile.
MFU is measured against the peak of the GPU actually present, for the precision in use
(mingpt.training.mfu.device_peak_flops); on an unknown GPU or the CPU it is reported as unknown unless you pass
--peak-flops.

    python bench/gpu_train.py                       # gpt2 124M on the GPU
    python bench/gpu_train.py --tiny --iters=3      # a toy model on the CPU (the test suite runs this)
    python bench/gpu_train.py --trainer.batch_size=32 --trainer.compile=False
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np
import torch

from mingpt.data import TokenStream
from mingpt.model import GPT
from mingpt.trainer import Trainer
from mingpt.training.mfu import device_peak_flops, estimate_mfu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="a 2-layer toy model that runs on the CPU in seconds")
    parser.add_argument("--iters", type=int, default=30, help="timed steps (after the warm-up steps)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (compilation happens here)")
    parser.add_argument("--peak-flops", type=float, default=None, help="device peak FLOP/s, if not in the table")
    args, overrides = parser.parse_known_args()
    logging.basicConfig(level=logging.WARNING)

    on_cuda = torch.cuda.is_available()
    model_config = GPT.get_default_config()
    model_config.merge_from_dict(dict(embd_pdrop=0.0, resid_pdrop=0.0, attn_pdrop=0.0))
    config = Trainer.get_default_config()
    if args.tiny:
        tiny = dict(model_type=None, n_layer=2, n_head=2, n_embd=32, vocab_size=64, block_size=32)
        model_config.merge_from_dict(tiny)
        config.merge_from_dict(dict(batch_size=4, compile=False, device="cpu"))  # on the CPU even beside a GPU
    else:
        model_config.merge_from_dict(dict(model_type="gpt2"))  # 124M parameters, vocab 50257, block 1024
        config.merge_from_dict(dict(batch_size=16, compile=on_cuda))
    warmup = args.warmup if args.warmup is not None else (2 if args.tiny else 10)
    config.merge_from_dict(dict(max_iters=warmup + args.iters, learning_rate=6e-4, precision="auto"))
    # --trainer.key=value / --model.key=value overrides
    config.merge_from_args([a.replace("--trainer.", "--", 1) for a in overrides if a.startswith("--trainer.")])
    model_config.merge_from_args([a.replace("--model.", "--", 1) for a in overrides if a.startswith("--model.")])
    unknown = [a for a in overrides if not a.startswith(("--trainer.", "--model."))]
    if unknown:
        parser.error(f"unrecognised arguments: {' '.join(unknown)}")

    model = GPT(model_config)
    V, T = model.config.vocab_size, model.config.block_size
    tokens = np.random.default_rng(0).integers(0, V, size=max(1_000_000, 4 * T * config.batch_size), dtype=np.int64)
    trainer = Trainer(config, model, TokenStream(tokens.astype(np.uint16 if V < 2**16 else np.int64), T))

    marks: list[float] = []

    def mark(tr: Trainer) -> None:
        if tr.device.type == "cuda":
            torch.cuda.synchronize()  # the bench, not the Trainer, pays for exact per-step timing
        if tr.iter_num >= warmup:
            marks.append(time.perf_counter())

    trainer.add_callback("on_batch_end", mark)
    trainer.run()

    steps = len(marks) - 1
    tokens_per_step = config.batch_size * config.grad_accum_steps * T * trainer.world_size
    tokens_per_sec = steps * tokens_per_step / (marks[-1] - marks[0]) if steps > 0 else float("nan")
    peak = args.peak_flops or device_peak_flops(trainer.device, trainer.precision.name)
    mfu = estimate_mfu(model.estimate_flops_per_token(), tokens_per_sec, peak, trainer.world_size)
    name = torch.cuda.get_device_name(trainer.device) if trainer.device.type == "cuda" else str(trainer.device)
    if trainer.is_main_process:
        rows = [
            ("device", f"{name} x {trainer.world_size}"),
            ("model", f"{model.num_parameters():,} params, n_layer={model.config.n_layer}, T={T}"),
            ("precision / compile", f"{trainer.precision.name} / {config.compile}"),
            ("fused AdamW", str(trainer.optimizer.defaults.get("fused"))),
            ("attention", model.config.attention),
            ("tokens per step", f"{tokens_per_step:,}"),
            ("timed steps", str(steps)),
            ("tokens/s", f"{tokens_per_sec:,.0f}"),
            ("peak FLOP/s", f"{peak:.3g}" if peak else "unknown"),
            ("MFU", f"{100 * mfu:.1f}%" if mfu is not None else "unknown (pass --peak-flops)"),
        ]
        width = max(len(k) for k, _ in rows)
        for key, value in rows:
            print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    main()
