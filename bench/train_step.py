"""
Training-step speed: forward + backward + grad clip + AdamW, in ms/iter and tokens/s.

Config S: 6 layers, 6 heads, 192 dims, block 128, batch 64, vocab 65 (a character model).
Config M: 6 layers, 6 heads, 384 dims, block 256, batch 16.
Each config runs with the fused SDPA attention and the explicit math attention, with dropout 0 and 0.1, and
side by side with a "plain" step (the same model with PyTorch's default, unfused AdamW) as the reference.

    python bench/train_step.py                 # everything (a few minutes on 2 cores)
    python bench/train_step.py --configs S --iters 20 --compile
"""

import argparse
import time

import torch

from mingpt.model import GPT

CONFIGS = {
    "S": dict(n_layer=6, n_head=6, n_embd=192, block_size=128, batch_size=64, vocab_size=65),
    "M": dict(n_layer=6, n_head=6, n_embd=384, block_size=256, batch_size=16, vocab_size=65),
}


class OptimConfig:
    learning_rate, betas, weight_decay = 3e-4, (0.9, 0.95), 0.1


def build(size: str, attention: str, dropout: float) -> GPT:
    spec = CONFIGS[size]
    C = GPT.get_default_config()
    C.model_type = None
    C.n_layer, C.n_head, C.n_embd = spec["n_layer"], spec["n_head"], spec["n_embd"]
    C.vocab_size, C.block_size = spec["vocab_size"], spec["block_size"]
    C.embd_pdrop = C.resid_pdrop = C.attn_pdrop = dropout
    C.attention = attention
    torch.manual_seed(0)
    return GPT(C)


def measure(size, attention, dropout, iters, warmup, fused=None, compile_model=False):
    spec = CONFIGS[size]
    model = build(size, attention, dropout)
    optimizer = model.configure_optimizers(OptimConfig, fused=fused)
    step_model = torch.compile(model) if compile_model else model
    x = torch.randint(0, spec["vocab_size"], (spec["batch_size"], spec["block_size"]))
    y = torch.randint(0, spec["vocab_size"], (spec["batch_size"], spec["block_size"]))

    def step():
        _, loss = step_model(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        return loss

    t0 = time.perf_counter()
    for _ in range(warmup):
        step()
    warm_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(iters):
        step()
    dt = (time.perf_counter() - t0) / iters
    return dt * 1000, spec["batch_size"] * spec["block_size"] / dt, warm_s


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default="S,M")
    parser.add_argument("--iters", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (compile time reported)")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'config':<7}{'variant':<34}{'ms/iter':>9}{'tokens/s':>10}{'vs plain':>10}")
    for size in args.configs.split(","):
        rows = [("plain: sdpa, unfused AdamW", "sdpa", 0.0, False, False)]
        rows += [(f"{a}, dropout {d}", a, d, None, False) for d in (0.0, 0.1) for a in ("sdpa", "math")]
        if args.compile:
            rows.append(("sdpa, dropout 0.0, torch.compile", "sdpa", 0.0, None, True))
        plain = None
        for label, attention, dropout, fused, compiled in rows:
            ms, tps, warm_s = measure(size, attention, dropout, args.iters, args.warmup, fused, compiled)
            plain = plain or tps
            extra = f"   (first {args.warmup} steps incl. compile: {warm_s:.1f} s)" if compiled else ""
            print(f"{size:<7}{label:<34}{ms:>9.1f}{tps:>10.0f}{tps / plain:>9.2f}x{extra}", flush=True)


if __name__ == "__main__":
    main()
