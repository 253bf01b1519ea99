"""
bench/modern_ablation.py's `--data bpe` mode: its model and trainer settings are projects/gpt2's cpu-tiny preset,
and the bench runs end to end (two rows, a couple of steps, a slice of Tiny Shakespeare) in a subprocess, as a user
runs it.
"""

from __future__ import annotations

import importlib.util
import math
import os
import pathlib
import re
import subprocess
import sys

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent


def load(path: pathlib.Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bpe_settings_are_the_cpu_tiny_preset():
    bench = load(REPO_ROOT / "bench" / "modern_ablation.py", "modern_ablation")
    preset = load(REPO_ROOT / "projects" / "gpt2" / "train.py", "gpt2_train").PRESETS["cpu-tiny"]
    assert bench.BPE_MODEL == preset["model"]
    trainer = {k: v for k, v in bench.BPE_TRAINER.items() if k != "grad_accum_steps"}
    assert trainer == {k: v for k, v in preset["trainer"].items() if k in trainer}
    # Everything of the preset's trainer but its step count and evaluation/checkpoint plumbing is carried over.
    assert set(preset["trainer"]) - set(trainer) == {"max_iters", "eval_interval", "eval_iters", "checkpoint_interval"}
    # The preset's tokens per step, made of micro-batches as projects/gpt2/train.py makes them.
    tokens = bench.BPE_TRAINER["batch_size"] * bench.BPE_TRAINER["grad_accum_steps"] * bench.BPE_MODEL["block_size"]
    assert tokens == preset["data"]["total_batch_tokens"]


def test_bpe_mode_runs_end_to_end(data_dir):
    env = {**os.environ, "MINGPT_DATA_DIR": str(data_dir), "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(REPO_ROOT / "bench" / "modern_ablation.py"), "--data", "bpe", "--steps", "2",
           "--eval-every", "1", "--eval-iters", "1", "--seeds", "1", "--rows", "gpt2", "modern+muon",
           "--text-chars", "20000"]
    result = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "--data bpe, 2 steps, 1 seeds" in result.stdout
    for row in ("gpt2", "modern+muon"):
        line = next(line for line in result.stdout.splitlines() if line.strip().startswith(f"{row} |"))
        final = float(re.search(r"\|\s+([0-9.]+) ±", line).group(1))
        # Two steps from random weights: still near the uniform guess over GPT-2's ids, ln(50,304) = 10.83.
        assert math.isfinite(final) and 9.0 < final < 11.5, line
    assert "1.00x" in result.stdout  # the baseline reaches its own final loss
