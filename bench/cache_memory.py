"""
What a full ``run_with_cache`` holds: the bytes of every recorded activation, on a GPT-2-small-shaped model
(12 layers, 12 heads, 768 dims, random weights), batch 8 x 128 tokens, with and without the per-head
``hook_result`` (TransformerLens' ``use_attn_result``; off by default in both libraries). Also the wall time of
the cached forward pass, median of --rounds.

    python bench/cache_memory.py [--batch 8] [--tokens 128] [--rounds 3]
"""

import argparse
import statistics
import time

import torch

from mingpt.model import GPT


def cache_bytes(cache) -> int:
    return sum(value.numel() * value.element_size() for value in cache.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    config = GPT.get_default_config()
    config.merge_from_dict(dict(model_type="gpt2", vocab_size=50257, block_size=1024))
    torch.manual_seed(0)
    model = GPT(config).eval()
    idx = torch.randint(0, config.vocab_size, (args.batch, args.tokens))
    print(f"GPT-2 small shape, B={args.batch}, T={args.tokens}, float32, CPU threads={torch.get_num_threads()}")
    print(f"{'full run_with_cache':<34} {'activations':>11} {'cache GB':>9} {'seconds':>8}")
    for use_attn_result in (True, False):
        model.set_use_attn_result(use_attn_result)
        times = []
        for _ in range(args.rounds):
            start = time.perf_counter()
            with torch.no_grad():
                _, cache = model.run_with_cache(idx)
            times.append(time.perf_counter() - start)
        label = f"use_attn_result={use_attn_result}" + (" (default)" if not use_attn_result else "")
        print(f"{label:<34} {len(cache):>11} {cache_bytes(cache) / 1e9:>9.2f} {statistics.median(times):>8.2f}")
        del cache


if __name__ == "__main__":
    main()
