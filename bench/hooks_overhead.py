"""
What the hook points cost when no hook is active: today's model.py side by side with the one before hook points
(read from git), same weights, same inputs, timed in alternation (A B B A ...) so that a busy machine slows both
alike. Reports the median time of each and the ratio (1.00 = no cost).

  - train step, config S of bench/train_step.py (6 layers, 192 dims, block 128, batch 64; forward, backward, AdamW)
  - cached greedy generation on a gpt2-size model (124M, random weights), 16-token prompt, --new-tokens new
  - for reference, the same generation with a steering hook active on one layer's resid_pre (hooks on)
  - the worst case for fixed per-call costs: 1000 forward passes of a 2-layer, 16-dim model on one token, where
    Python's overhead is nearly all the time (the hooks-off path adds one `is None` test per module call)

    python bench/hooks_overhead.py [--rounds 7] [--new-tokens 32] [--baseline-rev REV]

--baseline-rev defaults to the newest commit whose mingpt/model.py has no hook points.
"""

import argparse
import statistics
import subprocess
import sys
import time
import types

import torch

from mingpt.model import GPT


def baseline_model_class(rev: str | None):
    """The GPT class of mingpt/model.py at git revision rev, loaded as a module of its own."""
    if rev is None:
        revs = subprocess.run(["git", "log", "--format=%H", "--", "mingpt/model.py"], capture_output=True,
                              text=True, check=True).stdout.split()
        rev = next(r for r in revs if "active_hooks" not in _source(r))
    module = types.ModuleType("baseline_model")
    module.__file__ = f"<mingpt/model.py at {rev[:10]}>"
    sys.modules[module.__name__] = module
    exec(compile(_source(rev), module.__file__, "exec"), module.__dict__)
    return module.GPT, rev


def _source(rev: str) -> str:
    return subprocess.run(["git", "show", f"{rev}:mingpt/model.py"], capture_output=True, text=True,
                          check=True).stdout


def twin_models(Baseline, **sizes):
    config = GPT.get_default_config()
    config.merge_from_dict(dict(model_type=None, **sizes))
    torch.manual_seed(0)
    ours = GPT(config)
    theirs = Baseline(config)
    theirs.load_state_dict(ours.state_dict())
    return theirs, ours


def alternate(fns: dict, rounds: int) -> dict:
    """Median seconds of each function, run in alternating order after one warm-up each."""
    for fn in fns.values():
        fn()
    times = {name: [] for name in fns}
    names = list(fns)
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            t0 = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


class OptimConfig:
    learning_rate, betas, weight_decay = 3e-4, (0.9, 0.95), 0.1


def train_step_fn(model, x, y):
    optimizer = model.configure_optimizers(OptimConfig)

    def step():
        _, loss = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    return step


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--baseline-rev", default=None)
    args = parser.parse_args()
    Baseline, rev = baseline_model_class(args.baseline_rev)
    print(f"baseline: mingpt/model.py at {rev[:10]}; {torch.get_num_threads()} thread(s); median of {args.rounds}")
    print(f"{'measurement':<40} {'before s':>9} {'hooks s':>9} {'ratio':>6}")

    before, after = twin_models(Baseline, n_layer=6, n_head=6, n_embd=192, vocab_size=65, block_size=128)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randint(0, 65, (64, 128), generator=g), torch.randint(0, 65, (64, 128), generator=g)
    t = alternate({"before": train_step_fn(before, x, y), "after": train_step_fn(after, x, y)}, args.rounds)
    print(f"{'train step, config S':<40} {t['before']:>9.3f} {t['after']:>9.3f} {t['after'] / t['before']:>6.3f}")

    before, after = twin_models(Baseline, n_layer=2, n_head=2, n_embd=16, vocab_size=10, block_size=8)
    one = torch.zeros(1, 1, dtype=torch.long)

    def thousand(model):
        def run():
            with torch.no_grad():
                for _ in range(1000):
                    model(one)
        return run

    t = alternate({"before": thousand(before.eval()), "after": thousand(after.eval())}, args.rounds)
    label = "tiny model, 1000 one-token forwards"
    print(f"{label:<40} {t['before']:>9.3f} {t['after']:>9.3f} {t['after'] / t['before']:>6.3f}")

    before, after = twin_models(Baseline, n_layer=12, n_head=12, n_embd=768, vocab_size=50257, block_size=1024)
    prompt = torch.randint(0, 50257, (1, 16), generator=g)
    steer = torch.randn(768, generator=g)

    def steered():
        with after.hooks(fwd_hooks=[("blocks.6.hook_resid_pre", lambda act, hook: act + steer)]):
            after.generate(prompt, args.new_tokens)

    t = alternate({"before": lambda: before.generate(prompt, args.new_tokens),
                   "after": lambda: after.generate(prompt, args.new_tokens), "steered": steered}, args.rounds)
    label = f"gpt2-size cached generation, {args.new_tokens} tok"
    print(f"{label:<40} {t['before']:>9.3f} {t['after']:>9.3f} {t['after'] / t['before']:>6.3f}")
    print(f"{'  same, steering hook active (hooks on)':<40} {t['before']:>9.3f} {t['steered']:>9.3f} "
          f"{t['steered'] / t['before']:>6.3f}")
    assert torch.equal(before.generate(prompt, 8), after.generate(prompt, 8)), "hooks off must change nothing"


if __name__ == "__main__":
    main()
