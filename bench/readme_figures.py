"""
The documented figures, measured again: rerun the command written next to each figure in docs/performance.md,
docs/projects.md and the projects' READMEs, and print each figure beside the value the page states, so that drift
is seen. (README.md links to those pages; its one figure, chargpt with one thread against the default threads on
a loaded machine, depends on what else runs, so it is not rerun here.)

    python bench/readme_figures.py                    # everything (about 15 minutes on 2 CPU cores)
    python bench/readme_figures.py adder chargpt      # only these groups (see --list for the names)
    python bench/readme_figures.py --list             # what the pages state, without running anything

Each figure names its page, the exact command (which must appear verbatim on that page, so the command a reader
sees is the command that is rerun), a pattern that finds the stated value on the page and one that finds the
measured value in the command's output. A command shared by several figures runs once. Wall times depend on the
machine and on what else runs on it: the header prints the CPU model (`lscpu`), the core count and the load average.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pathlib
import re
import shlex
import subprocess
import sys
import time

from mingpt.utils import cpu_name

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
NUMBER = r"([\d,]+(?:\.\d+)?)"  # 13,028 or 1.7365: one captured number


@dataclasses.dataclass(frozen=True)
class Figure:
    group: str  # what a user selects on the command line
    label: str
    readme: str  # the page that states it (a README or a docs/ page), relative to the repository root
    command: str  # exactly as written on that page
    stated: str  # regex with one group: the value on the page
    measured: str  # regex with one group: the value in the command's output (stdout + stderr)


ADDER2 = "python projects/adder/adder.py"
ADDER3 = ("python projects/adder/adder.py --data.ndigit=3 --trainer.max_iters=3000 --system.eval_interval=250 "
          "--data.test_size=2000")
CHARGPT = "OMP_NUM_THREADS=1 python projects/chargpt/chargpt.py --system.num_threads=1"
CHARGPT_THREADS = ("python projects/chargpt/chargpt.py --trainer.max_iters=50 --system.max_seconds=0 "
                   "--system.work_dir=./out/chargpt-threads")
INDUCTION = "OMP_NUM_THREADS=1 python projects/induction/induction.py"
TRAIN_STEP = "OMP_NUM_THREADS=2 python bench/train_step.py --configs S --nanogpt DIR"  # DIR: a nanoGPT checkout
GENERATE = "OMP_NUM_THREADS=2 python bench/generate.py"
ADDER_STEP = r"ndigit={}: test accuracy [\d.]+% \(\d+/\d+\) after (\d+) iters"
ADDER_SECONDS = r"ndigit={}: test accuracy [\d.]+% \(\d+/\d+\) after \d+ iters, ([\d.]+) s"

FIGURES = [
    # docs/performance.md
    Figure("train_step", "S, SDPA, dropout 0 (fp32): tokens/s", "docs/performance.md", TRAIN_STEP,
           r"\| \*\*SDPA, dropout 0 \(fp32\)\*\* \| \*\*([\d,]+)\*\*", r"\nS\s+sdpa, dropout 0\.0\s+[\d.]+\s+(\d+)"),
    Figure("train_step", "S, bf16 autocast, attention auto: tokens/s", "docs/performance.md", TRAIN_STEP,
           r"\| \*\*bf16 autocast, attention 'auto' \(math\)\*\* \| \*\*([\d,]+)\*\*",
           r"\nS\s+bf16 autocast: auto \(math\)\s+[\d.]+\s+(\d+)"),
    Figure("train", "bare step loop: tokens/s", "docs/performance.md", "OMP_NUM_THREADS=1 python bench/train.py",
           r"\| bare step loop \| ([\d,]+) \|", r"\nbare loop\s+[\d.]+\s+([\d,]+)"),
    Figure("train", "Trainer: tokens/s", "docs/performance.md", "OMP_NUM_THREADS=1 python bench/train.py",
           r"\| `Trainer` \| ([\d,]+) \|", r"\nTrainer\s+[\d.]+\s+([\d,]+)"),
    Figure("generate", "mingpt bf16, KV cache: tokens/s", "docs/performance.md", GENERATE,
           r"\| \*\*mingpt bf16, KV cache\*\* \| \*\*([\d.]+)\*\*", r"\nmingpt bf16, KV cache\s+[\d.]+\s+([\d.]+)"),
    Figure("generate", "transformers fp32 generate: tokens/s", "docs/performance.md", GENERATE,
           r"\| transformers fp32 `generate` \| ([\d.]+)", r"\ntransformers \S+ fp32\s+[\d.]+\s+([\d.]+)"),
    Figure("bpe", "encode cold: mingpt MB/s", "docs/performance.md", "python bench/bpe.py",
           r"\| cold \(empty chunk cache\) \| ([\d.]+) \|", r"\ncold\s+([\d.]+)"),
    Figure("bpe", "encode warm: mingpt MB/s", "docs/performance.md", "python bench/bpe.py", r"\| warm \| ([\d.]+) \|",
           r"\nwarm\s+([\d.]+)"),
    Figure("bpe", "learning 256 merges: s", "docs/performance.md", "python bench/bpe.py",
           r"Learning 256 merges on Tiny Shakespeare takes ([\d.]+) s", r"train 256 merges: ([\d.]+) s"),
    Figure("bpe", "512-token BPE: bytes/token", "docs/performance.md", "python bench/bpe.py",
           r"A 512-token BPE trained there gives ([\d.]+) bytes/token", r"trained vocab 512: ([\d.]+) bytes/token"),
    # docs/projects.md's table: headline figures beside the commands that produce them
    Figure("adder", "docs table: ndigit=2 stopped at step", "docs/projects.md", ADDER2,
           r"\| \[adder\][^\n]*stopped at (\d+) iters", ADDER_STEP.format(2)),
    Figure("chargpt", "docs table: CPU preset val loss", "docs/projects.md", CHARGPT,
           r"\| \[chargpt\][^\n]*val loss ([\d.]+)", r"\nval loss ([\d.]+) \(best"),
    Figure("induction", "docs table: best prefix-matching score", "docs/projects.md", INDUCTION,
           r"\| \[induction\][^\n]*prefix-matching score ([\d.]+)", r"prefix-matching score ([\d.]+), after"),
    # the projects' READMEs
    Figure("adder", "ndigit=2: stopped at step", "projects/adder/README.md", ADDER2,
           r"\| `" + re.escape(ADDER2) + r"` \| [^|]* stopped at (\d+) iters", ADDER_STEP.format(2)),
    Figure("adder", "ndigit=2: seconds", "projects/adder/README.md", ADDER2,
           r"\| `" + re.escape(ADDER2) + r"` \| [^|]* \| ([\d.]+) s", ADDER_SECONDS.format(2)),
    Figure("adder", "ndigit=3: stopped at step", "projects/adder/README.md", ADDER3,
           r"\| `" + re.escape(ADDER3) + r"` \| [^|]* stopped at (\d+) iters", ADDER_STEP.format(3)),
    Figure("adder", "ndigit=3: seconds", "projects/adder/README.md", ADDER3,
           r"\| `" + re.escape(ADDER3) + r"` \| [^|]* \| ([\d.]+) s", ADDER_SECONDS.format(3)),
    Figure("chargpt", "CPU preset: final val loss", "projects/chargpt/README.md", CHARGPT,
           r"Final line: `val loss ([\d.]+)", r"\nval loss ([\d.]+) \(best"),
    Figure("chargpt", "CPU preset: seconds", "projects/chargpt/README.md", CHARGPT,
           r"Final line: `val loss [^`]* iters, ([\d.]+) s", r"\nval loss [^\n]* iters, ([\d.]+) s"),
    Figure("chargpt", "50 steps, torch's default threads: seconds", "projects/chargpt/README.md", CHARGPT_THREADS,
           r"torch's default threads \(2 here\): ([\d.]+) s", r"\nval loss [^\n]* iters, ([\d.]+) s"),
    Figure("chargpt", "50 steps, one thread: seconds", "projects/chargpt/README.md",
           CHARGPT_THREADS + " --system.num_threads=1", r"one thread: ([\d.]+) s", r"\nval loss [^\n]* iters, ([\d.]+) s"),
    Figure("induction", "best prefix-matching score", "projects/induction/README.md", INDUCTION,
           r"the best, \*\*layer \d head \d, scores ([\d.]+)\*\*", r"prefix-matching score ([\d.]+), after"),
    Figure("induction", "seconds", "projects/induction/README.md", INDUCTION,
           r"\), ([\d.]+) s of training", r"prefix-matching score [\d.]+, after \d+ iters, ([\d.]+) s"),
]



def stated_value(figure: Figure) -> str:
    """The figure as its page states it; an error names the page and what is missing from it."""
    text = (REPO_ROOT / figure.readme).read_text(encoding="utf-8")
    if figure.command not in text:
        raise ValueError(f"{figure.readme} does not show the command `{figure.command}` beside '{figure.label}'")
    match = re.search(figure.stated, text)
    if match is None:
        raise ValueError(f"{figure.readme}: no value for '{figure.label}' (pattern {figure.stated!r})")
    return match.group(1)


def run(command: str) -> tuple[str, float]:
    """Run a documented command from the repository root with this Python; return its output and wall time."""
    words = shlex.split(command)
    env = dict(os.environ)
    while "=" in words[0]:  # leading VAR=value assignments, as a shell would apply them
        key, value = words.pop(0).split("=", 1)
        env[key] = value
    if words[0] == "python":
        words[0] = sys.executable
    start = time.perf_counter()
    result = subprocess.run(words, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    output = result.stdout + "\n" + result.stderr
    if result.returncode != 0:
        output += f"\n(exit status {result.returncode})"
    return "\n" + output, time.perf_counter() - start


def as_number(value: str) -> float | None:
    try:
        return float(value.replace(",", ""))
    except ValueError:
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    groups = sorted({f.group for f in FIGURES})
    parser.add_argument("groups", nargs="*", help=f"groups to rerun (default: all): {', '.join(groups)}")
    parser.add_argument("--list", action="store_true", help="print what the pages state; run nothing")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.groups) - set(groups))
    if unknown:
        parser.error(f"unknown group(s) {', '.join(unknown)}; choose from {', '.join(groups)}")
    chosen = [f for f in FIGURES if not args.groups or f.group in args.groups]
    stated, unreadable = {}, []
    for f in chosen:  # every page is checked before anything runs
        try:
            stated[f] = stated_value(f)
        except ValueError as e:
            unreadable.append(str(e))
    if args.list:
        for f in chosen:
            if f in stated:
                print(f"{f.group:<11} {f.label:<45} {stated[f]:>10}   {f.readme}: {f.command}")
    if unreadable:
        print("\n".join(["documented figures that cannot be checked:", *unreadable]), file=sys.stderr)
        return 1
    if args.list:
        return 0
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores, load average {load} (the documented figures name their CPU)")
    outputs: dict[str, str] = {}
    problems = 0
    for f in chosen:
        if f.command not in outputs:
            print(f"\n$ {f.command}", flush=True)
            outputs[f.command], seconds = run(f.command)
            print(f"  (ran {seconds:.0f} s)")
        match = re.search(f.measured, outputs[f.command])
        now = match.group(1) if match else "not found"
        problems += match is None
        old, new = as_number(stated[f]), as_number(now)
        drift = f"{100 * (new - old) / old:+.0f}%" if old and new is not None else ""
        print(f"  {f.label:<45} stated {stated[f]:>10}   now {now:>10}   {drift}", flush=True)
        if match is None:
            print("  output tail:\n" + outputs[f.command][-1500:])
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
