"""
Activation patching speed: a full resid_pre sweep (n_layer x T cells) on a gpt2-size model (random weights),
mingpt.interp.patching's batched sweep side by side with TransformerLens' method (one forward pass per cell), in one
run, on the same inputs; the two grids must agree to float rounding.

Two corruptions: 'one token' (clean and corrupted differ at one position in the middle, as in indirect-object
identification) and 'all tokens' (every position differs: nothing can be skipped, the worst case).

    python bench/patching.py [--positions 20] [--layers 12]
"""

import argparse
import time

import torch

from mingpt.interp.patching import get_act_patch_resid_pre
from mingpt.model import GPT


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--positions", type=int, default=20)
    parser.add_argument("--layers", type=int, default=12)
    args = parser.parse_args()

    config = GPT.get_default_config()
    config.merge_from_dict(dict(model_type=None, n_layer=args.layers, n_head=12, n_embd=768, vocab_size=50257,
                                block_size=1024))
    torch.manual_seed(0)
    model = GPT(config).eval()
    T = args.positions
    clean = torch.randint(0, config.vocab_size, (1, T))
    answer, wrong = 1234, 4321

    def metric(logits):
        return logits[0, -1, answer] - logits[0, -1, wrong]

    corruptions = {"one token": clean.clone(), "all tokens": torch.randint(0, config.vocab_size, (1, T))}
    corruptions["one token"][0, T // 2] = (clean[0, T // 2] + 1) % config.vocab_size
    with torch.no_grad():
        _, clean_cache = model.run_with_cache(clean)
    print(f"resid_pre sweep, {args.layers} layers x {T} positions = {args.layers * T} cells, "
          f"gpt2-size model, {torch.get_num_threads()} thread(s)")
    print(f"{'corruption':<12} {'loop (TL) s':>12} {'batched s':>10} {'speed-up':>9} {'max |diff|':>11}")
    for label, corrupted in corruptions.items():
        t0 = time.perf_counter()
        slow = get_act_patch_resid_pre(model, corrupted, clean_cache, metric, method="loop", progress=False)
        t1 = time.perf_counter()
        fast = get_act_patch_resid_pre(model, corrupted, clean_cache, metric, progress=False)
        t2 = time.perf_counter()
        diff = (fast - slow).abs().max().item()
        print(f"{label:<12} {t1 - t0:>12.2f} {t2 - t1:>10.2f} {(t1 - t0) / (t2 - t1):>8.1f}x {diff:>11.2e}")


if __name__ == "__main__":
    main()
