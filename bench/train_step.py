"""
Training-step speed: forward + backward + grad clip + AdamW, in ms/iter and tokens/s, side by side in one run.

Config S: 6 layers, 6 heads, 192 dims, block 128, batch 64, vocab 65 (a character model).
Config M: 6 layers, 6 heads, 384 dims, block 256, batch 16.
Rows: a "plain" step (mingpt with PyTorch's default, unfused AdamW: the reference of the "vs plain" column); mingpt
with the fused SDPA and the explicit math attention, dropout 0 and 0.1; the same under bf16 autocast (what
precision='bf16', or 'auto' on a CPU with native bf16, runs: attention='auto' picks the math path there); and
nanoGPT's model.py as its author ships it (its own configure_optimizers: unfused AdamW on CPU) and with fused AdamW,
in fp32 and bf16, when --nanogpt names a folder holding it (the "vs nanoGPT" column divides by nanoGPT fp32).

    python bench/train_step.py --nanogpt /tmp/nanogpt        # folder with nanoGPT's model.py (nothing is vendored)
    python bench/train_step.py --configs S --iters 20 --compile
    git clone https://github.com/karpathy/nanoGPT /tmp/nanogpt   # one way to get it

Reduced precision is only fast where the CPU multiplies bf16 in hardware (AMX or AVX-512-BF16); the header says
whether this one does.
"""

import argparse
import contextlib
import importlib.util
import pathlib
import time

import torch

from mingpt.model import GPT
from mingpt.training.precision import cpu_has_native_bf16
from mingpt.utils import cpu_name

CONFIGS = {
    "S": dict(n_layer=6, n_head=6, n_embd=192, block_size=128, batch_size=64, vocab_size=65),
    "M": dict(n_layer=6, n_head=6, n_embd=384, block_size=256, batch_size=16, vocab_size=65),
    "tiny": dict(n_layer=2, n_head=2, n_embd=32, block_size=16, batch_size=4, vocab_size=65),  # a smoke test
}


class OptimConfig:
    learning_rate, betas, weight_decay = 3e-4, (0.9, 0.95), 0.1


def build_mingpt(spec: dict, attention: str, dropout: float) -> GPT:
    C = GPT.get_default_config()
    C.model_type = None
    C.n_layer, C.n_head, C.n_embd = spec["n_layer"], spec["n_head"], spec["n_embd"]
    C.vocab_size, C.block_size = spec["vocab_size"], spec["block_size"]
    C.embd_pdrop = C.resid_pdrop = C.attn_pdrop = dropout
    C.attention = attention
    torch.manual_seed(0)
    return GPT(C)


def load_nanogpt(folder: str | None):
    """nanoGPT's model module from folder/model.py, or None with the reason."""
    if folder is None:
        return None, "nanoGPT skipped: pass --nanogpt FOLDER (a clone of github.com/karpathy/nanoGPT)"
    path = pathlib.Path(folder) / "model.py"
    if not path.is_file():
        return None, f"nanoGPT skipped: {path} does not exist"
    spec = importlib.util.spec_from_file_location("nanogpt_model", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, ""


def build_nanogpt(nanogpt, spec: dict, dropout: float, fused: bool):
    config = nanogpt.GPTConfig(block_size=spec["block_size"], vocab_size=spec["vocab_size"], n_layer=spec["n_layer"],
                               n_head=spec["n_head"], n_embd=spec["n_embd"], dropout=dropout, bias=True)
    torch.manual_seed(0)
    with contextlib.redirect_stdout(None):  # it prints its parameter counts
        model = nanogpt.GPT(config)
        optimizer = model.configure_optimizers(OptimConfig.weight_decay, OptimConfig.learning_rate, OptimConfig.betas,
                                               "cpu")
    if fused:  # the same parameter groups, fused update (nanoGPT fuses only on CUDA)
        optimizer = torch.optim.AdamW(optimizer.param_groups, fused=True)
    return model, optimizer


def measure(model, optimizer, spec, iters, warmup, bf16=False, compile_model=False):
    step_model = torch.compile(model) if compile_model else model
    x = torch.randint(0, spec["vocab_size"], (spec["batch_size"], spec["block_size"]))
    y = torch.randint(0, spec["vocab_size"], (spec["batch_size"], spec["block_size"]))

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
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


def rows_for(args, nanogpt):
    """(label, builder, bf16, compile) for each row; a builder returns (model, optimizer) for a config spec."""
    def ours(attention, dropout, fused=None):
        def build(spec):
            model = build_mingpt(spec, attention, dropout)
            return model, model.configure_optimizers(OptimConfig, fused=fused)
        return build

    def theirs(dropout, fused):
        return lambda spec: build_nanogpt(nanogpt, spec, dropout, fused)

    rows = [("plain: sdpa, unfused AdamW", ours("sdpa", 0.0, fused=False), False, False)]
    rows += [(f"{a}, dropout {d}", ours(a, d), False, False) for d in (0.0, 0.1) for a in ("sdpa", "math")]
    if nanogpt is not None:
        rows += [("nanoGPT as shipped (unfused AdamW)", theirs(0.0, False), False, False),
                 ("nanoGPT, fused AdamW", theirs(0.0, True), False, False)]
    rows += [("bf16 autocast: auto (math)", ours("auto", 0.0), True, False),
             ("bf16 autocast: sdpa", ours("sdpa", 0.0), True, False)]
    if nanogpt is not None:
        rows += [("bf16 autocast: nanoGPT as shipped", theirs(0.0, False), True, False)]
    if args.compile:
        rows.append(("sdpa, dropout 0.0, torch.compile", ours("sdpa", 0.0), False, True))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default="S,M", help=f"comma-separated, from {', '.join(CONFIGS)}")
    parser.add_argument("--iters", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (compile time reported)")
    parser.add_argument("--nanogpt", default=None, help="folder holding nanoGPT's model.py, timed side by side")
    args = parser.parse_args()
    nanogpt, note = load_nanogpt(args.nanogpt)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {cpu_name()}, "
          f"native bf16 (AMX or AVX-512-BF16): {cpu_has_native_bf16()}")
    if note:
        print(note)
    print(f"{'config':<7}{'variant':<37}{'ms/iter':>9}{'tokens/s':>10}{'vs plain':>10}{'vs nanoGPT':>12}")
    for size in args.configs.split(","):
        spec = CONFIGS[size]
        results = []  # (label, ms, tokens/s, warm-up seconds, compiled)
        for label, build, bf16, compiled in rows_for(args, nanogpt):
            model, optimizer = build(spec)
            timing = measure(model, optimizer, spec, args.iters, args.warmup, bf16, compiled)
            results.append((label, *timing, compiled))
        plain = results[0][2]
        reference = next((tps for label, _, tps, _, _ in results if label.startswith("nanoGPT as shipped")), None)
        for label, ms, tps, warm_s, compiled in results:
            versus = f"{tps / reference:>11.2f}x" if reference else f"{'':>12}"
            extra = f"   (first {args.warmup} steps incl. compile: {warm_s:.1f} s)" if compiled else ""
            print(f"{size:<7}{label:<37}{ms:>9.1f}{tps:>10.0f}{tps / plain:>9.2f}x{versus}{extra}", flush=True)
    if nanogpt is not None:
        print("vs nanoGPT: tokens/s over nanoGPT's model as shipped (unfused AdamW on CPU), fp32, same run")

if __name__ == "__main__":
    main()
