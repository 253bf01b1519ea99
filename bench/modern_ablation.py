"""
What each change to the GPT-2 recipe buys, at Tiny Shakespeare character scale on the CPU (issue 25): every row is
chargpt's CPU preset (4 layers, 4 heads, 96 channels, block 64, batch 32, cosine schedule) with one change, trained
for the same number of steps from several seeds. The rows run interleaved (seed 0 of every row, then seed 1, ...)
so that a busy machine slows them alike.

For each row it prints, as mean ± sd over the seeds:
    final      the validation loss after the last step, and the training time it took
    @base t    the validation loss at the baseline's (mean) training time: the last evaluation at or before it,
               so a row that is slower per step is compared at equal wall-clock time
    to target  the training time at which the row first evaluates at or below the baseline's mean final loss
               ('-' where it never does), and the baseline's time over it (the speed-up)
Training time excludes evaluation. Each evaluation averages the same `--eval-iters` validation batches.

    python bench/modern_ablation.py                      # all rows, 3 seeds, chargpt's 1600 steps
    python bench/modern_ablation.py --steps 400 --rows gpt2 muon

Rows are `ROWS` below: (model config overrides, trainer config overrides) over the baseline. The modern parts
(mingpt/modern: rotary, RMSNorm, ReLU², QK-norm, untied head, ...) are rows by their config switches, stacked.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import platform
import statistics

import torch

from mingpt.data import CharDataset, CharVocab, split_train_val, tiny_shakespeare
from mingpt.model import GPT
from mingpt.trainer import Trainer
from mingpt.utils import set_seed

MODEL = dict(model_type=None, n_layer=4, n_head=4, n_embd=96, block_size=64, embd_pdrop=0.0, resid_pdrop=0.0,
             attn_pdrop=0.0)
TRAINER = dict(device="cpu", precision="fp32", batch_size=32, learning_rate=5e-3, betas=(0.9, 0.99), min_lr=1e-4,
               lr_schedule="cosine", warmup_iters=50, weight_decay=0.1)
MUON = dict(optimizer="muon", muon_learning_rate=0.02)
# The modern parts (mingpt/modern), added one at a time, each row keeping the ones above it (as the speedrun did).
ROTARY = dict(position="rotary")
RMSNORM = dict(ROTARY, norm="rmsnorm")
RELU2_QKNORM = dict(RMSNORM, mlp="relu2", qk_norm=True)
UNTIED = dict(RELU2_QKNORM, tie_weights=False)
MODERN = dict(UNTIED, norm_weight=False, bias=False, logit_softcap=15.0)  # modern-mini's switches at this size
ROWS = {
    "gpt2": ({}, {}),  # chargpt's GPT-2 recipe: learned positions, LayerNorm, GELU, tied head, AdamW
    "muon": ({}, MUON),  # + Muon for the hidden matrices
    "muon-lr0.05": ({}, dict(optimizer="muon", muon_learning_rate=0.05)),
    "+rotary": (ROTARY, {}),
    "+rmsnorm": (RMSNORM, {}),
    "+relu2+qknorm": (RELU2_QKNORM, {}),
    "+untied": (UNTIED, {}),
    "+nobias+cap": (MODERN, {}),  # RMSNorm without gain, no biases, soft-capped logits
    "modern+muon": (MODERN, MUON),  # all of it, with Muon
}


def datasets(block_size: int) -> tuple[CharDataset, CharDataset, int]:
    text = tiny_shakespeare()
    vocab = CharVocab.from_text(text)
    train_text, val_text = split_train_val(text, 0.1, block_size)
    return CharDataset(train_text, block_size, vocab), CharDataset(val_text, block_size, vocab), len(vocab)


def run(row: str, seed: int, steps: int, eval_every: int, eval_iters: int, data) -> list[tuple[float, float]]:
    """[(training seconds, val loss)] at every evaluation of one run."""
    model_overrides, trainer_overrides = ROWS[row]
    train, val, vocab_size = data
    config = GPT.get_default_config()
    config.merge_from_dict({**MODEL, "vocab_size": vocab_size, **model_overrides})
    set_seed(seed)
    model = GPT(config)
    C = Trainer.get_default_config()
    C.merge_from_dict({**TRAINER, "max_iters": steps, "seed": seed, "eval_interval": eval_every,
                       "eval_iters": eval_iters, **trainer_overrides})
    trainer = Trainer(C, model, train, val)
    clock = {"train": 0.0}
    curve = []
    trainer.add_callback("on_batch_end", lambda t: clock.__setitem__("train", clock["train"] + t.iter_dt))
    trainer.add_callback("on_eval_end", lambda t: curve.append((clock["train"], t.val_loss)))
    trainer.run()
    return curve


def loss_at(curve, seconds: float) -> float:
    before = [loss for t, loss in curve if t <= seconds]
    return before[-1] if before else float("nan")


def time_to(curve, target: float) -> float | None:
    return next((t for t, loss in curve if loss <= target), None)


def mean_sd(values, digits: int = 4) -> str:
    values = [v for v in values if not math.isnan(v)]  # drops NaN (no evaluation before the baseline's time)
    if not values:
        return "-"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} ± {sd:.{digits}f}"


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=1600)
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--eval-iters", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if "gpt2" not in args.rows:
        parser.error("--rows must include the baseline 'gpt2': the other rows are measured against it")
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    data = datasets(MODEL["block_size"])
    load_before = os.getloadavg()
    curves = {row: [] for row in args.rows}
    for seed in range(args.seeds):
        for row in args.rows:
            curves[row].append(run(row, seed, args.steps, args.eval_every, args.eval_iters, data))
            print(f"seed {seed} {row:>12}: val {curves[row][-1][-1][1]:.4f} in {curves[row][-1][-1][0]:.1f} s",
                  flush=True)
    base_time = statistics.mean(c[-1][0] for c in curves["gpt2"])
    target = statistics.mean(c[-1][1] for c in curves["gpt2"])
    print(f"\n{cpu_name()} ({os.cpu_count()} cores), torch {torch.__version__}, {args.threads} thread(s), "
          f"load average {load_before[0]:.1f} before / {os.getloadavg()[0]:.1f} after; {args.steps} steps, "
          f"{args.seeds} seeds; baseline: {target:.4f} in {base_time:.1f} s")
    print(f"{'row':>12} | {'final val loss':>17} | {'train s':>13} | {'val @ base t':>17} | "
          f"{'s to target':>13} | speed-up")
    for row, runs in curves.items():
        reach = [time_to(c, target) for c in runs]
        reached = [t for t in reach if t is not None]
        to_target = mean_sd(reached, 1) if len(reached) == len(runs) else f"{len(reached)}/{len(runs)} reach"
        speedup = f"{base_time / statistics.mean(reached):.2f}x" if len(reached) == len(runs) else "-"
        print(f"{row:>12} | {mean_sd([c[-1][1] for c in runs]):>17} | "
              f"{mean_sd([c[-1][0] for c in runs], 1):>13} | {mean_sd([loss_at(c, base_time) for c in runs]):>17} | "
              f"{to_target:>13} | {speedup}")


if __name__ == "__main__":
    main()
