"""
Attribution patching against exact activation patching, side by side, in one run.

1. Accuracy, on the trained induction model stored for the tests (tests/data/induction-small: a 2-layer
   attention-only GPT from projects/induction) and the circuits notebook's task: clean "... A B ... A" and a
   corrupted copy whose first A is another token; metric: log p(B) at the last position, normalised so that
   corrupted = 0 and clean = 1. For each grid (residual stream by layer and position, attention output, each
   head, each head by position): the Pearson correlation of the attribution grid with the exact one
   (mingpt.interp.patching's batched sweep), and the largest absolute difference.
2. Speed, on a gpt2-size model with random weights (12 layers, 12 heads, 768 wide, T positions): the full
   resid_pre grid and the per-head grid (--by-pos: also per head and position), exact batched sweep against
   attribution (one forward + backward), for a corruption of one token in the middle and of every token.

    python bench/attribution.py [--positions 64] [--batch 1] [--by-pos] [--grids attn_head_out_all_pos ...]
"""

import argparse
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import time

import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # the repository root: projects/ imports
from mingpt.cfgnode import CfgNode  # noqa: E402
from mingpt.interp import attribution, patching  # noqa: E402
from mingpt.model import GPT  # noqa: E402
from mingpt.training.checkpoint import load_checkpoint  # noqa: E402
from projects.induction.induction import build_model  # noqa: E402

GRIDS = ("resid_pre", "attn_out", "attn_head_out_all_pos", "attn_head_out_by_pos")


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        return platform.processor() or "unknown CPU"


def induction_task(model, L: int, n: int = 50, seed: int = 2):
    """The circuits notebook's patching task, segments of L tokens: (clean, corrupted, answers)."""
    V = model.config.vocab_size
    P, G, k = 2, 3, L // 2
    generator = torch.Generator().manual_seed(seed)
    rows, spares = [], []
    for _ in range(n):
        perm = torch.randperm(V, generator=generator)
        segment = perm[P: P + L]
        rows.append(torch.cat([perm[:P], segment, perm[P + L: P + L + G], segment[: k + 1]]))
        spares.append(perm[P + L + G])
    clean = torch.stack(rows)
    corrupted = clean.clone()
    corrupted[:, P + k] = torch.stack(spares)
    return clean, corrupted, clean[:, P + k + 1]


def accuracy(checkpoint: pathlib.Path) -> None:
    saved = CfgNode.load_json(checkpoint / "config.json")
    model = build_model(saved.model)
    model.load_state_dict(load_checkpoint(checkpoint / "last.pt")["model"])
    model.eval()
    clean, corrupted, answers = induction_task(model, saved.data.max_repeat)

    def logprob(logits):
        return logits[:, -1].log_softmax(-1).gather(1, answers[:, None]).mean()

    with torch.no_grad():
        clean_logits, clean_cache = model.run_with_cache(clean)
        low, high = logprob(model(corrupted)[0]).item(), logprob(clean_logits).item()

    def metric(logits):
        return (logprob(logits) - low) / (high - low)

    print(f"induction model {checkpoint} ({model.config.n_layer} layers x {model.config.n_head} heads, "
          f"attn_only={model.config.attn_only}), {len(clean)} prompts of T={clean.size(1)}; "
          f"log p(B) clean {high:.2f}, corrupted {low:.2f}; metric 0 = corrupted, 1 = clean")
    print(f"{'grid':<24} {'shape':>12} {'correlation':>12} {'max |diff|':>11}   cells: exact -> attribution")
    for grid in GRIDS:
        exact = getattr(patching, f"get_act_patch_{grid}")(model, corrupted, clean_cache, metric)
        approx = getattr(attribution, f"get_attr_patch_{grid}")(model, corrupted, clean_cache, metric)
        r = torch.corrcoef(torch.stack([exact.flatten(), approx.flatten()]))[0, 1].item()
        top = exact.flatten().abs().topk(3).indices
        cells = ", ".join(f"{exact.flatten()[i]:.2f}->{approx.flatten()[i]:.2f}" for i in top)
        print(f"{grid:<24} {str(tuple(exact.shape)):>12} {r:>12.3f} {(exact - approx).abs().max().item():>11.3f}   "
              f"{cells}")


def speed(T: int, B: int, by_pos: bool, grids=None) -> None:
    config = GPT.get_default_config()
    config.merge_from_dict(dict(n_layer=12, n_head=12, n_embd=768, vocab_size=50257, block_size=1024))
    torch.manual_seed(0)
    model = GPT(config).eval()
    clean = torch.randint(0, config.vocab_size, (B, T))

    def metric(logits):
        return (logits[:, -1, 1234] - logits[:, -1, 4321]).mean()

    one = clean.clone()
    one[:, T // 2] = (clean[:, T // 2] + 1) % config.vocab_size
    corruptions = {"one token": one, "all tokens": torch.randint(0, config.vocab_size, (B, T))}
    with torch.no_grad():
        _, clean_cache = model.run_with_cache(clean)
    print(f"\ngpt2-size model (12 x 12 heads x 768, random weights), B={B}, T={T}, "
          f"{torch.get_num_threads()} thread(s)")
    print("seconds: wall clock / this process's CPU time (on a machine shared with other work the CPU time is the "
          "steadier; the speed-up is of CPU time). The exact sweep runs once; attribution, the median of 5 calls, "
          "after one call of the same grid to warm up (as the sweep's first passes warm up inside its own time)")
    print(f"{'grid':<22} {'corruption':<11} {'exact batched s':>16} {'attribution s':>16} {'speed-up':>9} "
          f"{'correlation':>12}")
    for grid in grids or ("resid_pre", "attn_head_out_all_pos") + (("attn_head_out_by_pos",) if by_pos else ()):
        for label, corrupted in corruptions.items():
            w0, c0 = time.perf_counter(), time.process_time()
            exact = getattr(patching, f"get_act_patch_{grid}")(model, corrupted, clean_cache, metric, progress=False)
            exact_wall, exact_cpu = time.perf_counter() - w0, time.process_time() - c0
            estimate = getattr(attribution, f"get_attr_patch_{grid}")
            approx = estimate(model, corrupted, clean_cache, metric)  # the warm-up call
            walls, cpus = [], []
            for _ in range(5):
                w1, c1 = time.perf_counter(), time.process_time()
                estimate(model, corrupted, clean_cache, metric)
                walls.append(time.perf_counter() - w1)
                cpus.append(time.process_time() - c1)
            wall, cpu = statistics.median(walls), statistics.median(cpus)
            r = torch.corrcoef(torch.stack([exact.flatten(), approx.flatten()]))[0, 1].item()
            print(f"{grid:<22} {label:<11} {f'{exact_wall:.2f} / {exact_cpu:.2f}':>16} "
                  f"{f'{wall:.3f} / {cpu:.3f}':>16} {exact_cpu / cpu:>8.0f}x {r:>12.3f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--positions", type=int, default=64)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--checkpoint", default=os.path.join("tests", "data", "induction-small"))
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--by-pos", action="store_true", help="also time the (layer, position, head) grid (slow)")
    parser.add_argument("--grids", nargs="+", choices=GRIDS, help="time only these grids")
    parser.add_argument("--skip-accuracy", action="store_true")
    args = parser.parse_args()
    print(f"CPU: {cpu_name()}; torch {torch.__version__}")
    if not args.skip_accuracy:
        accuracy(pathlib.Path(args.checkpoint))
    if not args.skip_speed:
        speed(args.positions, args.batch, args.by_pos, args.grids)


if __name__ == "__main__":
    main()
