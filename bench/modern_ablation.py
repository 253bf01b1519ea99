"""
What each change to the GPT-2 recipe buys, at Tiny Shakespeare scale on the CPU (issue 25): every row is a CPU preset
with one change, trained for the same number of steps from several seeds. `--data char` (the default) is chargpt's
CPU preset (4 layers, 4 heads, 96 channels, block 64, batch 32, cosine schedule) on characters; `--data bpe` is
projects/gpt2's cpu-tiny preset (2 layers, 2 heads, 64 channels, block 64, 1,024 tokens a step as 2 micro-batches
of 8, cosine schedule) on Tiny Shakespeare in GPT-2's BPE tokens (mingpt's tokenizer; its 50,257 ids padded to
50,304), the tail 10 % held out for validation. The rows run interleaved (seed 0 of every row, then seed 1, ...)
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
    python bench/modern_ablation.py --data bpe           # the cpu-tiny preset, its 100 steps

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

import numpy as np
import torch

from mingpt.bpe import BPETokenizer
from mingpt.data import (
    CharDataset,
    CharVocab,
    TokenStream,
    split_train_val,
    tiny_shakespeare,
)
from mingpt.model import GPT
from mingpt.trainer import Trainer
from mingpt.utils import set_seed

MODEL = {"model_type": None, "n_layer": 4, "n_head": 4, "n_embd": 96, "block_size": 64, "embd_pdrop": 0.0,
         "resid_pdrop": 0.0, "attn_pdrop": 0.0}
TRAINER = {"device": "cpu", "precision": "fp32", "batch_size": 32, "learning_rate": 5e-3, "betas": (0.9, 0.99),
           "min_lr": 1e-4, "lr_schedule": "cosine", "warmup_iters": 50, "weight_decay": 0.1}
# projects/gpt2/train.py's PRESETS["cpu-tiny"], less its plumbing (data directory, checkpoints, logging); its
# 1,024 tokens a step are 2 micro-batches of 8 windows of 64. tests/test_modern_ablation.py checks they agree.
BPE_MODEL = {"model_type": None, "n_layer": 2, "n_head": 2, "n_embd": 64, "vocab_size": 50304, "block_size": 64,
             "embd_pdrop": 0.0, "resid_pdrop": 0.0, "attn_pdrop": 0.0, "attention": "sdpa"}
BPE_TRAINER = {"device": "cpu", "precision": "fp32", "batch_size": 8, "grad_accum_steps": 2, "learning_rate": 3e-3,
               "min_lr": 3e-4, "lr_schedule": "cosine", "warmup_iters": 10, "weight_decay": 0.1,
               "betas": (0.9, 0.95), "grad_norm_clip": 1.0, "compile": False}
MUON = {"optimizer": "muon", "muon_learning_rate": 0.02}
# The modern parts (mingpt/modern), added one at a time, each row keeping the ones above it (as the speedrun did).
ROTARY = {"position": "rotary"}
RMSNORM = {**ROTARY, "norm": "rmsnorm"}
RELU2_QKNORM = {**RMSNORM, "mlp": "relu2", "qk_norm": True}
UNTIED = {**RELU2_QKNORM, "tie_weights": False}
MODERN = {**UNTIED, "norm_weight": False, "bias": False, "logit_softcap": 15.0}  # modern-mini's switches at this size
ROWS = {
    "gpt2": ({}, {}),  # chargpt's GPT-2 recipe: learned positions, LayerNorm, GELU, tied head, AdamW
    "muon": ({}, MUON),  # + Muon for the hidden matrices
    "muon-lr0.05": ({}, {"optimizer": "muon", "muon_learning_rate": 0.05}),
    "+rotary": (ROTARY, {}),
    "+rmsnorm": (RMSNORM, {}),
    "+relu2+qknorm": (RELU2_QKNORM, {}),
    "+relu2+qknorm+muon": (RELU2_QKNORM, MUON),  # the modern blocks with Muon, head still tied (BPE: the head is 97 %)
    "+untied": (UNTIED, {}),
    "+nobias+cap": (MODERN, {}),  # RMSNorm without gain, no biases, soft-capped logits
    "modern+muon": (MODERN, MUON),  # all of it, with Muon
}


def char_datasets(block_size: int, text: str) -> tuple[CharDataset, CharDataset, int]:
    vocab = CharVocab.from_text(text)
    train_text, val_text = split_train_val(text, 0.1, block_size)
    return CharDataset(train_text, block_size, vocab), CharDataset(val_text, block_size, vocab), len(vocab)


def bpe_datasets(block_size: int, text: str) -> tuple[TokenStream, TokenStream, int]:
    # GPT-2's vocabulary files come from $MINGPT_DATA_DIR, else mingpt's cache (downloaded once), as prepare.py's.
    tokens = np.array(BPETokenizer().encode(text), dtype=np.uint16)
    train, val = split_train_val(tokens, 0.1, block_size)
    return TokenStream(train, block_size), TokenStream(val, block_size), BPE_MODEL["vocab_size"]


# --data: (model config, trainer config, data sets, default steps, default evaluation interval)
DATA = {"char": (MODEL, TRAINER, char_datasets, 1600, 50), "bpe": (BPE_MODEL, BPE_TRAINER, bpe_datasets, 100, 10)}


def run(row: str, seed: int, steps: int, eval_every: int, eval_iters: int, data, kind: str = "char"
        ) -> list[tuple[float, float]]:
    """[(training seconds, val loss)] at every evaluation of one run."""
    model_overrides, trainer_overrides = ROWS[row]
    base_model, base_trainer = DATA[kind][:2]
    train, val, vocab_size = data
    config = GPT.get_default_config()
    config.merge_from_dict({**base_model, "vocab_size": vocab_size, **model_overrides})
    set_seed(seed)
    model = GPT(config)
    C = Trainer.get_default_config()
    C.merge_from_dict({**base_trainer, "max_iters": steps, "seed": seed, "eval_interval": eval_every,
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
    parser.add_argument("--data", choices=list(DATA), default="char",
                        help="char: chargpt's CPU preset on characters; bpe: projects/gpt2's cpu-tiny on GPT-2 tokens")
    parser.add_argument("--steps", type=int, help="default: the preset's (char 1600, bpe 100)")
    parser.add_argument("--eval-every", type=int, help="default: char 50, bpe 10")
    parser.add_argument("--eval-iters", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--text-chars", type=int, default=0,
                        help="only the first this many characters of Tiny Shakespeare (0 = all; for smoke tests)")
    args = parser.parse_args()
    if "gpt2" not in args.rows:
        parser.error("--rows must include the baseline 'gpt2': the other rows are measured against it")
    base_model, _, datasets, default_steps, default_eval = DATA[args.data]
    args.steps = args.steps or default_steps
    args.eval_every = args.eval_every or default_eval
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    text = tiny_shakespeare()
    data = datasets(base_model["block_size"], text[:args.text_chars] if args.text_chars > 0 else text)
    load_before = os.getloadavg()
    curves = {row: [] for row in args.rows}
    for seed in range(args.seeds):
        for row in args.rows:
            curves[row].append(run(row, seed, args.steps, args.eval_every, args.eval_iters, data, args.data))
            print(f"seed {seed} {row:>12}: val {curves[row][-1][-1][1]:.4f} in {curves[row][-1][-1][0]:.1f} s",
                  flush=True)
    base_time = statistics.mean(c[-1][0] for c in curves["gpt2"])
    target = statistics.mean(c[-1][1] for c in curves["gpt2"])
    print(f"\n{cpu_name()} ({os.cpu_count()} cores), torch {torch.__version__}, {args.threads} thread(s), "
          f"load average {load_before[0]:.1f} before / {os.getloadavg()[0]:.1f} after; --data {args.data}, "
          f"{args.steps} steps, "
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
