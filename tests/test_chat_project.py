"""
projects/chat end to end, as a user runs them (subprocesses, offline, a few seconds each): chat.py fine-tunes a
fresh model on conversations it makes, answers on stdin, saves, and chats again from what it saved; rl_adder.py
pretrains the adder briefly and runs RL steps. Bad input ends with one clear line.
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
CHAT = REPO_ROOT / "projects" / "chat"
TINY = ["--model.n_layer=1", "--model.n_embd=32", "--model.n_head=2", "--trainer.batch_size=16",
        "--trainer.warmup_iters=0", "--trainer.precision=fp32"]


def run(script: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(CHAT / script), *args], cwd=REPO_ROOT, env=env, input=stdin,
                          capture_output=True, text=True, timeout=180)


def test_chat_fine_tunes_answers_on_stdin_and_chats_again_from_what_it_saved(tmp_path):
    work = tmp_path / "chat"
    args = [f"--system.work_dir={work}", "--data.ndigit=1", "--data.test_pairs=5", "--trainer.max_iters=20",
            "--data.merges=8", "--system.interactive=True", *TINY]
    result = run("chat.py", *args, stdin="What is 2+3?\n\nAdd 4 and 4.\n")
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert re.fullmatch(r"chat: held-out accuracy \d+\.\d\d% \(\d+/15\) after 20 iters, .*", lines[0]), lines[0]
    replies = [line for line in lines[1:] if line.startswith("assistant: ")]
    assert len(replies) == 2  # one per non-empty question
    assert (work / "tokenizer.txt").is_file() and (work / "model.safetensors").is_file()
    # the saved model and tokenizer, without training: the same replies to the same questions (greedy)
    again = run("chat.py", f"--system.load={work}", stdin="What is 2+3?\nAdd 4 and 4.\n")
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.strip().splitlines() == replies


def test_chat_bad_input_is_one_clear_line(tmp_path):
    for args, fragment in [(["--data.ndigit=7"], "data.ndigit"),
                           ([f"--system.load={tmp_path}"], "holds no tokenizer.txt")]:
        result = run("chat.py", f"--system.work_dir={tmp_path / 'x'}", *args)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert fragment in result.stderr.strip().splitlines()[-1]


def test_rl_adder_runs_pretraining_then_rl_steps(tmp_path):
    result = run("rl_adder.py", f"--system.work_dir={tmp_path}", "--trainer.max_iters=5", "--rl.steps=2",
                 "--rl.eval_interval=1", "--data.test_size=50", "--rl.prompts_per_step=4", "--rl.kl_coef=0.1", *TINY)
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.fullmatch(r"rl_adder: ndigit=2 seed=3407: test accuracy \d+\.\d\d% after 5 pretraining iters -> "
                        r"\d+\.\d\d% after 2 RL steps .*", result.stdout.strip()), result.stdout
    assert "rl step 2 | sampled reward" in result.stderr
    bad = run("rl_adder.py", "--rl.group_size=1")
    assert bad.returncode == 2 and "rl.group_size" in bad.stderr and "Traceback" not in bad.stderr
