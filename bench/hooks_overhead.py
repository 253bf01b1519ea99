"""
What the hook points cost when no hook is attached: this tree's model side by side with the model of another
revision, same weights, same inputs, timed in alternation (A B B A ...) so that a busy machine slows both alike.
Reports the median time of each and the ratio (1.00 = no cost).

  - train step, config S of bench/train_step.py (6 layers, 192 dims, block 128, batch 64; forward, backward, AdamW)
  - the worst case for fixed per-call costs: 1000 forward passes of a 2-layer, 16-dim model on one token, where
    Python's overhead is nearly all the time (every idle hook point is one call and one attribute test)
  - cached greedy generation on a gpt2-size model (124M, random weights), 16-token prompt, --new-tokens new
  - for reference, the same generation with a steering hook on one layer's resid_pre (hooks on)

    python bench/hooks_overhead.py [--rounds 7] [--new-tokens 32] [--baseline-rev REV] [--skip-gpt2]

--baseline-rev defaults to 751394c, the last commit before issue 22's redesign, whose model had a second,
hooked body for every sublayer (``if hooks is None`` at each call) instead of identity hook points. Its
model.py imports module paths that no longer exist, so the revision is extracted whole (``git archive``) into a
temporary directory and each side runs in its own worker process with PYTHONPATH pointing at its tree.
"""

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_BASELINE = "751394c"
CASES = ("train_S", "tiny_forwards", "gpt2_generate", "gpt2_steered")


# ------------------------------------------------------------------------------------------------ worker side
def build(GPT, weights: str, **sizes):
    config = GPT.get_default_config()
    config.merge_from_dict(dict(model_type=None, **sizes))
    model = GPT(config)
    model.load_state_dict(torch.load(weights))
    return model


class OptimConfig:
    learning_rate, betas, weight_decay = 3e-4, (0.9, 0.95), 0.1


def make_case(GPT, case: str, weights: str, new_tokens: int):
    """The function to time for one case, built from the shared weights file."""
    g = torch.Generator().manual_seed(0)
    if case == "train_S":
        model = build(GPT, weights, n_layer=6, n_head=6, n_embd=192, vocab_size=65, block_size=128)
        x, y = torch.randint(0, 65, (64, 128), generator=g), torch.randint(0, 65, (64, 128), generator=g)
        optimizer = model.configure_optimizers(OptimConfig)

        def step():
            _, loss = model(x, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
        return step
    if case == "tiny_forwards":
        model = build(GPT, weights, n_layer=2, n_head=2, n_embd=16, vocab_size=10, block_size=8).eval()
        one = torch.zeros(1, 1, dtype=torch.long)

        def thousand():
            with torch.no_grad():
                for _ in range(1000):
                    model(one)
        return thousand
    model = build(GPT, weights, n_layer=12, n_head=12, n_embd=768, vocab_size=50257, block_size=1024).eval()
    prompt = torch.randint(0, 50257, (1, 16), generator=g)
    steer = torch.randn(768, generator=g)
    if case == "gpt2_generate":
        return lambda: model.generate(prompt, new_tokens)

    def steered():
        with model.hooks(fwd_hooks=[("blocks.6.hook_resid_pre", lambda act, hook: act + steer)]):
            return model.generate(prompt, new_tokens)
    return steered


def worker(new_tokens: int) -> None:
    """Serve 'setup CASE WEIGHTS' / 'run CASE' / 'tokens CASE' lines on stdin, one JSON reply per line."""
    from mingpt.model import GPT  # whichever tree PYTHONPATH points at

    fns = {}
    for line in sys.stdin:
        command, case, *rest = line.split()
        if command == "setup":
            fns[case] = make_case(GPT, case, rest[0], new_tokens)
            fns[case]()  # warm-up
            reply = {"ok": True}
        elif command == "run":
            t0 = time.perf_counter()
            fns[case]()
            reply = {"seconds": time.perf_counter() - t0}
        else:  # the generated tokens, to check that hooks off change nothing
            reply = {"tokens": fns[case]().tolist()}
        print(json.dumps(reply), flush=True)


# ------------------------------------------------------------------------------------------------ coordinator
class Side:
    def __init__(self, tree: pathlib.Path, new_tokens: int, threads: int | None):
        env = dict(os.environ, PYTHONPATH=str(tree))
        command = [sys.executable, __file__, "--worker", "--new-tokens", str(new_tokens)]
        self.process = subprocess.Popen(command + (["--threads", str(threads)] if threads else []),
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=tree)

    def ask(self, line: str) -> dict:
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        reply = self.process.stdout.readline()
        if not reply:
            raise RuntimeError(f"worker died on {line!r}")
        return json.loads(reply)

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait()


def baseline_tree(rev: str) -> pathlib.Path:
    """The whole tree at rev, extracted once into the temp directory."""
    full = subprocess.run(["git", "-C", str(ROOT), "rev-parse", rev], capture_output=True, text=True,
                          check=True).stdout.strip()
    tree = pathlib.Path(tempfile.gettempdir()) / f"mingpt-baseline-{full[:12]}"
    if not (tree / "mingpt" / "model.py").exists():
        tree.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", full], capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def shared_weights(case: str, directory: str) -> str:
    """This tree's GPT, seeded, saved: both sides load the same state dict."""
    from mingpt.model import GPT

    sizes = {"train_S": dict(n_layer=6, n_head=6, n_embd=192, vocab_size=65, block_size=128),
             "tiny_forwards": dict(n_layer=2, n_head=2, n_embd=16, vocab_size=10, block_size=8)}.get(
        case, dict(n_layer=12, n_head=12, n_embd=768, vocab_size=50257, block_size=1024))
    config = GPT.get_default_config()
    config.merge_from_dict(dict(model_type=None, **sizes))
    torch.manual_seed(0)
    path = os.path.join(directory, f"{case}.pt")
    torch.save(GPT(config).state_dict(), path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--baseline-rev", default=DEFAULT_BASELINE)
    parser.add_argument("--skip-gpt2", action="store_true", help="only the train step and the tiny model")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per side (default: torch's)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.worker:
        return worker(args.new_tokens)

    cases = [c for c in CASES if not (args.skip_gpt2 and c.startswith("gpt2"))]
    print(f"baseline: {args.baseline_rev}; {torch.get_num_threads()} thread(s) per side; median of {args.rounds}; "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"{'measurement':<40} {'before s':>9} {'after s':>9} {'ratio':>6}")
    sides = {"before": Side(baseline_tree(args.baseline_rev), args.new_tokens, args.threads),
             "after": Side(ROOT, args.new_tokens, args.threads)}
    try:
        with tempfile.TemporaryDirectory() as directory:
            for case in cases:
                weights = shared_weights(case, directory)
                for side in sides.values():
                    side.ask(f"setup {case} {weights}")
                times = {name: [] for name in sides}
                order = list(sides)
                for r in range(args.rounds):
                    for name in (order if r % 2 == 0 else order[::-1]):
                        times[name].append(sides[name].ask(f"run {case}")["seconds"])
                before, after = (statistics.median(times[name]) for name in order)
                print(f"{case:<40} {before:>9.4f} {after:>9.4f} {after / before:>6.3f}", flush=True)
                if case == "gpt2_generate":
                    same = sides["before"].ask(f"tokens {case}") == sides["after"].ask(f"tokens {case}")
                    print(f"  same tokens before and after: {same}")
    finally:
        for side in sides.values():
            side.close()
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
