"""
Trainer overhead: tokens/s through the Trainer vs. a bare step loop (forward, backward, clip, AdamW step), same
model, same data, same process. The two alternate in short chunks so that a busy machine slows both alike.

Config S: 6 layers, 6 heads, 192 dims, block 128, batch 64, vocab 65, dropout 0 (chargpt-sized).

    python bench/train.py                 # overhead table
    python bench/train.py --workers       # also: DataLoader num_workers 0 vs 2 for a map-style data set
"""

from __future__ import annotations

import argparse
import copy
import logging
import statistics
import time

import numpy as np
import torch
from torch.utils.data import Dataset

from mingpt.data import CharDataset, TokenStream, tiny_shakespeare
from mingpt.model import GPT
from mingpt.trainer import Trainer
from mingpt.utils import set_seed

S = dict(model_type=None, n_layer=6, n_head=6, n_embd=192, block_size=128, vocab_size=65,
         embd_pdrop=0.0, resid_pdrop=0.0, attn_pdrop=0.0)
BATCH = 64


def load_data() -> TokenStream:
    """Tiny Shakespeare as characters ($MINGPT_DATA_DIR, else mingpt's cache, downloaded once)."""
    return CharDataset(tiny_shakespeare(), S["block_size"])


def trainer_config(**overrides):
    C = Trainer.get_default_config()
    # fp32 like the bare loop below (precision "auto" would be bf16 on CPUs with native bf16)
    C.merge_from_dict(dict(device="cpu", batch_size=BATCH, learning_rate=1e-3, max_iters=1, precision="fp32",
                           **overrides))
    return C


def trainer_chunk(trainer: Trainer, n: int) -> float:
    """Seconds per step for n more Trainer steps."""
    trainer.config.max_iters = trainer.iter_num + n
    t0 = time.perf_counter()
    trainer.run()
    return (time.perf_counter() - t0) / n


def make_bare_loop(model: GPT, data: TokenStream, config):
    """The least anyone would write: sample, forward, backward, clip, step."""
    optimizer = model.configure_optimizers(config)
    rng = np.random.default_rng(1)

    def chunk(n: int) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            x, y = data.get_batch(rng.integers(0, len(data), BATCH))
            _, loss = model(x, y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_norm_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return (time.perf_counter() - t0) / n

    return chunk


def overhead(iters: int, warmup: int, chunk: int) -> None:
    data = load_data()
    set_seed(0)
    C = GPT.get_default_config()
    C.merge_from_dict(S)
    model = GPT(C)
    bare = make_bare_loop(copy.deepcopy(model), data, trainer_config())
    trainer = Trainer(trainer_config(), model, data)
    bare(warmup), trainer_chunk(trainer, warmup)
    times = {"bare loop": [], "Trainer": []}
    for _ in range(max(1, iters // chunk)):  # alternate: A B A B ...
        times["bare loop"].append(bare(chunk))
        times["Trainer"].append(trainer_chunk(trainer, chunk))
    tokens = BATCH * S["block_size"]
    print(f"config S, {torch.get_num_threads()} threads, {iters} timed steps each (chunks of {chunk}), median:")
    print(f"{'loop':<10} {'s/step':>8} {'tokens/s':>10}")
    for name, ts in times.items():
        print(f"{name:<10} {statistics.median(ts):>8.3f} {tokens / statistics.median(ts):>10,.0f}")
    ratio = statistics.median(times["Trainer"]) / statistics.median(times["bare loop"]) - 1
    print(f"Trainer overhead: {100 * ratio:+.1f}% (target <= 5%)")


class Windows(Dataset):
    """The same windows as a plain map-style data set, so the Trainer takes its DataLoader path."""

    def __init__(self, stream: TokenStream):
        self.stream = stream

    def __len__(self):
        return len(self.stream)

    def __getitem__(self, i):
        return self.stream[i]


def workers(iters: int) -> None:
    data = Windows(load_data())
    print(f"\nDataLoader num_workers, config S through the Trainer, {iters} steps after 2 warm-up steps:")
    print(f"{'num_workers':<12} {'s/step':>8} {'tokens/s':>10}")
    for num_workers in (0, 2):
        set_seed(0)
        C = GPT.get_default_config()
        C.merge_from_dict(S)
        trainer = Trainer(trainer_config(num_workers=num_workers), GPT(C), data)
        trainer_chunk(trainer, 2)
        # Each run() starts fresh workers, so time one long run: the start-up cost is paid once, as in training.
        per_step = trainer_chunk(trainer, iters)
        print(f"{num_workers:<12} {per_step:>8.3f} {BATCH * S['block_size'] / per_step:>10,.0f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iters", type=int, default=20, help="timed steps for each loop")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--chunk", type=int, default=2, help="steps per alternation")
    parser.add_argument("--workers", action="store_true", help="also compare num_workers 0 and 2")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    overhead(args.iters, args.warmup, args.chunk)
    if args.workers:
        workers(args.iters)
