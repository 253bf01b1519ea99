"""
End-to-end smoke tests of projects/: each project runs through its real entry point (a subprocess, as a user
would run it) for a few iterations with tiny settings, and we check what it wrote and printed. The main run of each
project happens in a plain clone (the `plain_clone` fixture: a copy of the repository with no data folder beside
it, whose data comes from a download cache filled as a first online run fills it). Bad input must end with one
clear line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import re
import subprocess
import sys
import types

import pytest

from mingpt.training.callbacks import TimeLimit

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
PROJECTS = REPO_ROOT / "projects"


def run_project(name: str, *args: str, env: dict | None = None, check: bool = True,
                clone=None) -> subprocess.CompletedProcess:
    """Run projects/<name>/<name>.py from the repository root (or a PlainClone's, in its environment), as the
    READMEs do."""
    root, base_env = (REPO_ROOT, os.environ) if clone is None else (clone.root, clone.env)
    full_env = {**base_env, "OMP_NUM_THREADS": "1", **(env or {})}
    result = subprocess.run([sys.executable, str(root / "projects" / name / f"{name}.py"), *args], cwd=root,
                            env=full_env, capture_output=True, text=True, timeout=600)  # a hang, not a speed test
    if check and result.returncode != 0:
        raise AssertionError(f"{name} exited with {result.returncode}:\n{result.stderr[-3000:]}")
    return result


def load_project(name: str):
    """Import a project's entry point as a module (projects are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"project_{name}", PROJECTS / name / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assert_clean_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


# ------------------------------------------------------------------------------------------------ adder
def test_adder_encoding_and_held_out_test_set():
    adder = load_project("adder")
    assert adder.encode_problem(85, 50, 2) == [8, 5, 5, 0, 5, 3, 1]  # 85 + 50 = 135, answer reversed
    x, y = adder.make_example(85, 50, 2)
    assert x.tolist() == [8, 5, 5, 0, 5, 3] and y.tolist() == [-1, -1, -1, 5, 3, 1]  # loss on the answer only
    problems = adder.AdditionProblems(ndigit=1, test_size=20, seed=0)
    train = adder.AdditionTrainSet(problems)
    assert len(train) == 100
    seen = {tuple(train[i][0][:2].tolist()) for i in range(len(train))}
    test = {problems.operands(i) for i in problems.test_indices}
    assert len(test) == 20 and not seen & test  # no test problem is ever a training example
    assert len(seen) == 80  # and every other problem is


def test_adder_runs_and_reports(tmp_path, plain_clone):
    work_dir = tmp_path / "adder"
    result = run_project(
        "adder", f"--system.work_dir={work_dir}", "--data.ndigit=1", "--data.test_size=20",
        "--trainer.max_iters=20", "--system.eval_interval=10", "--model.n_layer=1", "--model.n_head=2",
        "--model.n_embd=32", "--system.eval_train_size=50", clone=plain_clone,
    )
    line = result.stdout.strip().splitlines()[-1]
    assert re.match(r"ndigit=1: test accuracy \d+\.\d\d% \(\d+/20\) after 20 iters, [\d.]+ s", line), line
    config = json.loads((work_dir / "config.json").read_text())
    assert config["data"]["ndigit"] == 1 and config["trainer"]["max_iters"] == 20
    assert (work_dir / "best.pt").is_file() and (work_dir / "last.pt").is_file()


@pytest.mark.parametrize("args, fragments", [
    (["--data.ndigit=10"], ["data.ndigit", "in [1, 9]", "got 10"]),
    (["--trainer.batchsize=3"], ["trainer.batchsize", "trainer.batch_size"]),
    (["--data.ndigit=two"], ["data.ndigit", "int"]),
])
def test_adder_bad_input_is_one_line(tmp_path, args, fragments):
    result = run_project("adder", f"--system.work_dir={tmp_path}", *args, check=False)
    assert_clean_error(result, *fragments)
    assert not (tmp_path / "config.json").exists()  # nothing was started


# ------------------------------------------------------------------------------------------------ chargpt
CHARGPT_TINY = ["--model.n_layer=1", "--model.n_head=2", "--model.n_embd=32", "--model.block_size=16",
                "--trainer.batch_size=8", "--trainer.eval_interval=5", "--trainer.eval_iters=2",
                "--sample.max_new_tokens=20", "--trainer.warmup_iters=0"]


def test_chargpt_trains_samples_and_resumes(tmp_path, data_dir, plain_clone):
    work_dir = tmp_path / "chargpt"
    common = [f"--system.work_dir={work_dir}", *CHARGPT_TINY]
    # A plain clone, no --data.path: Tiny Shakespeare from the download cache.
    result = run_project("chargpt", *common, "--trainer.max_iters=10", clone=plain_clone)
    assert re.search(r"val loss \d+\.\d{4} \(best \d+\.\d{4}\) after 10 iters, [\d.]+ s; the schedule ended the run "
                     r"\(the time cap of 112 s did not fire\)", result.stdout), result.stdout
    for name in ("config.json", "args.txt", "vocab.json", "best.pt", "last.pt", "loss.png", "sample.txt"):
        assert (work_dir / name).is_file(), name
    assert len(json.loads((work_dir / "vocab.json").read_text())) == 65  # Tiny Shakespeare's characters

    sampled = run_project("chargpt", "sample", f"--system.work_dir={work_dir}", "--sample.prompt=ROMEO:",
                          "--sample.max_new_tokens=30", clone=plain_clone)
    assert sampled.stdout.startswith("ROMEO:") and len(sampled.stdout.rstrip("\n")) >= len("ROMEO:") + 20

    # The same text as an explicit local file continues the run.
    text = f"--data.path={data_dir / 'tinyshakespeare' / 'input.txt'}"
    resumed = run_project("chargpt", *common, text, "--trainer.max_iters=15", "--trainer.resume=auto")
    assert "resumed from" in resumed.stderr and "from step 10" in resumed.stderr
    assert "schedule ended at step 10, so it stays at min_lr=1.00e-04" in resumed.stderr  # no jump back up
    assert "after 15 iters" in resumed.stdout


def test_chargpt_downloads_tiny_shakespeare_into_the_cache(tmp_path, data_dir, serve_directory):
    base_url = serve_directory(data_dir)  # a loopback stand-in for raw.githubusercontent.com
    cache = tmp_path / "cache"
    result = run_project("chargpt", f"--system.work_dir={tmp_path / 'run'}", *CHARGPT_TINY,
                         f"--data.url={base_url}/tinyshakespeare/input.txt", "--trainer.max_iters=2",
                         env={"MINGPT_CACHE_DIR": str(cache), "MINGPT_DATA_DIR": ""})  # no local copies
    original = (data_dir / "tinyshakespeare" / "input.txt").read_bytes()
    assert (cache / "tinyshakespeare" / "input.txt").read_bytes() == original
    assert "after 2 iters" in result.stdout


def test_chargpt_final_line_says_whether_the_time_cap_or_the_schedule_ended_the_run():
    chargpt = load_project("chargpt")
    stopped = []
    trainer = types.SimpleNamespace(steps_done=0, config=types.SimpleNamespace(max_iters=3),
                                    stop=lambda: stopped.append(trainer.steps_done))
    limit = TimeLimit(1e-9)  # fires at the first step that ends before max_iters
    limit.on_train_start(trainer)
    trainer.steps_done = 1
    limit.on_batch_end(trainer)
    assert stopped == [1] and chargpt.verdict(limit, trainer).startswith("the time cap ended the run")
    limit = TimeLimit(1e-9)
    limit.on_train_start(trainer)
    trainer.steps_done = 3  # the schedule's last step: the run ends anyway, so the cap did not end it
    limit.on_batch_end(trainer)
    assert stopped == [1] and chargpt.verdict(limit, trainer).startswith("the schedule ended the run")


def test_chargpt_offline_and_uncached_says_what_is_missing_in_one_line(tmp_path, plain_clone, serve_directory):
    (tmp_path / "site").mkdir()
    nowhere = serve_directory(tmp_path / "site")  # answers 404 to everything, as a dead mirror would
    result = run_project("chargpt", f"--system.work_dir={tmp_path / 'run'}", f"--data.url={nowhere}/input.txt",
                         env={"MINGPT_CACHE_DIR": str(tmp_path / "empty-cache")}, clone=plain_clone, check=False)
    assert_clean_error(result, "Tiny Shakespeare", "tinyshakespeare/input.txt", "HTTP 404", "MINGPT_DATA_DIR",
                       "network")
    assert not (tmp_path / "run").exists()  # nothing was started


def test_chargpt_bad_input_is_one_line(tmp_path):
    missing = run_project("chargpt", f"--system.work_dir={tmp_path}", f"--data.path={tmp_path / 'nope.txt'}",
                          check=False)
    assert_clean_error(missing, "no text file", "nope.txt")
    no_checkpoint = run_project("chargpt", "sample", f"--system.work_dir={tmp_path}", check=False)
    assert_clean_error(no_checkpoint, "no checkpoint")
    bad_mode = run_project("chargpt", "--system.mode=dance", check=False)
    assert_clean_error(bad_mode, "system.mode")


# ------------------------------------------------------------------------------------------------ finetune
def test_finetune_from_a_local_hugging_face_model(tmp_path, data_dir, plain_clone):
    import transformers  # a test dependency: missing, this test fails instead of vanishing
    pretrained = tmp_path / "tiny-gpt2"
    config = transformers.GPT2Config(n_layer=2, n_head=2, n_embd=32, vocab_size=50257, n_positions=64)
    transformers.GPT2LMHeadModel(config).save_pretrained(pretrained)
    work_dir = tmp_path / "finetune"
    common = [f"--system.work_dir={work_dir}", "--sample.max_new_tokens=8"]
    # A plain clone: Tiny Shakespeare and GPT-2's vocabulary from the download cache.
    result = run_project("finetune", *common, f"--model.init_from={pretrained}",
                         "--data.block_size=32", "--trainer.max_iters=4", "--trainer.eval_interval=2",
                         "--trainer.eval_iters=2", "--trainer.batch_size=2", "--trainer.warmup_iters=0",
                         clone=plain_clone)
    assert re.search(r"val loss \d+\.\d{4} -> \d+\.\d{4} after 4 iters", result.stdout), result.stdout
    assert result.stdout.startswith("ROMEO:")
    for name in ("config.json", "best.pt", "last.pt", "sample.txt", "model/config.json", "model/model.safetensors"):
        assert (work_dir / name).is_file(), name
    saved = json.loads((work_dir / "model" / "config.json").read_text())
    assert saved["n_layer"] == 2 and saved["vocab_size"] == 50257

    sampled = run_project("finetune", "sample", *common, f"--data.vocab_dir={data_dir / 'gpt2'}",
                          "--sample.prompt=JULIET:")  # the vocabulary from an explicit local folder
    assert sampled.stdout.startswith("JULIET:")


def test_finetune_bad_input_is_one_line(tmp_path, data_dir):
    missing_model = run_project("finetune", f"--system.work_dir={tmp_path}", f"--data.vocab_dir={data_dir / 'gpt2'}",
                                f"--model.init_from={tmp_path / 'no-such-model'}",
                                f"--data.path={data_dir / 'tinyshakespeare' / 'input.txt'}", check=False)
    assert_clean_error(missing_model, "no-such-model")
    missing_vocab = run_project("finetune", f"--system.work_dir={tmp_path}", f"--data.vocab_dir={tmp_path}",
                                check=False)
    assert_clean_error(missing_vocab, "encoder.json")


# ------------------------------------------------------------------------------------------------ induction
def test_induction_heads_form_and_are_scored(tmp_path, plain_clone):
    """A scaled-down run (context 32, segments up to 8, 1500 steps at a learning rate of 3e-3): the circuit must
    really form."""
    work_dir = tmp_path / "induction"
    result = run_project("induction", f"--system.work_dir={work_dir}", "--trainer.max_iters=1500",
                         "--trainer.learning_rate=3e-3",
                         "--model.block_size=32", "--model.vocab_size=32", "--data.max_repeat=8",
                         "--system.eval_sequences=100", clone=plain_clone)
    assert re.search(r"best induction head: layer 1 head \d, prefix-matching score \d\.\d{3}", result.stdout)
    scores = json.loads((work_dir / "scores.json").read_text())
    assert len(scores["prefix_matching"]) == 2 and len(scores["prefix_matching"][0]) == 4  # (n_layer, n_head)
    # Layer 0 grew a previous-token head, layer 1 an induction head on top of it (about 0.88 here; the full-size
    # default run reaches 0.97), and not the shifted variant that attends one position further on.
    assert max(scores["previous_token"][0]) > 0.9
    assert scores["best_head"][0] == 1 and scores["best_score"] > 0.7
    assert max(scores["shifted_prefix_matching"][1]) < 0.1
    assert scores["loss_repeated_half"] < 0.1  # it copies the repeat
    assert scores["loss_first_half"] > 3.0  # and cannot guess the random first copy
    png = (work_dir / "induction.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    assert (work_dir / "config.json").is_file() and (work_dir / "last.pt").is_file()


def copies_in(x, y):
    """(start of the first copy, start of the second, L) of one RepeatedTokens example."""
    kept = (y != -1).nonzero().flatten().tolist()  # the trained targets: the repeat's 2nd..Lth tokens
    assert kept == list(range(kept[0], kept[-1] + 1))  # one contiguous run
    second, L = kept[0], len(kept) + 1
    copy = [x[second].item()] + y[kept].tolist()  # the repeated segment, read off the inputs and targets
    first = max(p for p in range(second - L + 1) if x[p: p + L].tolist() == copy)
    return first, second, L


def test_induction_model_loads_from_a_finished_run(tmp_path):
    """The notebooks' shortcut: the stored scaled-down run (see test_notebooks.notebook_env) loads with its config."""
    induction = load_project("induction")
    stored = REPO_ROOT / "tests" / "data" / "induction-small"
    model, config = induction.load_induction_model(str(stored))
    assert config.model.block_size == 32 and config.data.max_repeat == 8 and model.config.attn_only
    scores = induction.prefix_matching_scores(model, L=config.data.max_repeat, n_sequences=50)
    assert scores[1].max() > 0.7 and scores[0].max() < 0.5  # the induction head is in layer 1
    (tmp_path / "config.json").write_text((stored / "config.json").read_text())
    with pytest.raises(FileNotFoundError, match=r"last\.pt not found.*--system\.work_dir="):
        induction.load_induction_model(str(tmp_path))  # a run that never saved its weights


def test_induction_training_data_repeat_a_segment_after_a_gap():
    induction = load_project("induction")
    data = induction.RepeatedTokens(vocab_size=64, block_size=48, min_repeat=2, max_repeat=16, seed=0)
    gaps = []
    for i in range(200):
        first, second, L = copies_in(*data[i])
        gaps.append(second - (first + L))
    assert min(gaps) == 0 and max(gaps) > 10  # side by side sometimes, far apart sometimes
    adjacent = induction.RepeatedTokens(64, 48, 2, 16, seed=0, max_gap=0)
    for i in range(50):
        first, second, L = copies_in(*adjacent[i])
        assert second == first + L  # max_gap=0: the copies touch
    with pytest.raises(ValueError, match="max_gap"):
        induction.RepeatedTokens(64, 48, 2, 16, seed=0, max_gap=-1)


def test_induction_prefix_matching_score_of_a_hand_built_head():
    """The score is 1 for a head that attends exactly to the token after the previous occurrence."""
    induction = load_project("induction")
    model = induction.build_model(induction.get_config().model)  # a GPT with attn_only=True
    L = 16
    original = induction.attention_patterns

    def perfect(model, idx):
        logits, att = original(model, idx)
        T = idx.size(1)
        fake = att.clone().zero_()
        for t in range(T):
            fake[..., t, t - L + 1 if t >= L else t] = 1.0
        return logits, fake

    induction.attention_patterns = perfect
    try:
        scores = induction.prefix_matching_scores(model, L=L, n_sequences=4)
    finally:
        induction.attention_patterns = original
    assert scores.shape == (2, 4) and bool((scores == 1.0).all())


def test_induction_bad_input_is_one_line(tmp_path):
    result = run_project("induction", f"--system.work_dir={tmp_path}", "--data.min_repeat=100", check=False)
    assert_clean_error(result, "data.min_repeat")


# ------------------------------------------------------------------------------------------------ hardening (issue 12)
def run_main(name: str, *args: str, capsys) -> str:
    """Run a project's main() in this process (no interpreter start-up: fast) and return its one error line."""
    with pytest.raises(SystemExit) as info:
        load_project(name).main(list(args))
    assert info.value.code == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line]
    assert len(lines) == 1, lines
    return lines[0]


def truncated_last_checkpoint(work_dir: pathlib.Path) -> None:
    """work_dir/last.pt cut in half (a save cut short: disk full, a copy interrupted), beside a good best.pt."""
    import torch  # only here: the other project tests run the projects in subprocesses

    from mingpt.training.checkpoint import save_checkpoint

    save_checkpoint(work_dir / "best.pt", model=torch.nn.Linear(64, 64))
    whole = (work_dir / "best.pt").read_bytes()
    (work_dir / "last.pt").write_bytes(whole[: len(whole) // 2])


def test_chargpt_resume_from_a_truncated_checkpoint_is_one_line_that_says_how_to_go_on(tmp_path):
    truncated_last_checkpoint(tmp_path)
    result = run_project("chargpt", f"--system.work_dir={tmp_path}", "--trainer.resume=auto", check=False)
    assert_clean_error(result, "cannot resume", "last.pt", "truncated or corrupt",
                       f"--trainer.resume={tmp_path / 'best.pt'}", "--trainer.resume=None")
    assert not (tmp_path / "config.json").exists()  # nothing was started


@pytest.mark.parametrize("name", ["adder", "finetune", "induction"])
def test_every_project_refuses_a_truncated_checkpoint_in_one_line(tmp_path, name, capsys):
    truncated_last_checkpoint(tmp_path)
    line = run_main(name, f"--system.work_dir={tmp_path}", "--trainer.resume=auto", capsys=capsys)
    assert line.startswith(f"{name}: error: cannot resume") and "truncated or corrupt" in line
    assert f"--trainer.resume={tmp_path / 'best.pt'}" in line and "--trainer.resume=None" in line
    assert not (tmp_path / "config.json").exists()


@pytest.mark.parametrize("args, fragments", [(["samplee"], ["'samplee'", "train, sample"]),
                                             (["--model.n_layer=0"], ["n_layer", "positive int", "got 0"]),
                                             (["--trainer.betas=(0.9,)"], ["trainer.betas", "2 values"])])
def test_chargpt_bad_mode_and_model_values_are_one_line(tmp_path, args, fragments, capsys):
    line = run_main("chargpt", *args, f"--system.work_dir={tmp_path}", capsys=capsys)
    assert all(fragment in line for fragment in fragments), line
    assert not (tmp_path / "config.json").exists()


# ------------------------------------------------------------------------------------------------ README figures
def test_every_readme_figure_is_found_beside_its_command(monkeypatch):
    """bench/readme_figures.py can recheck every figure: its command is written in its README, its value is found."""
    spec = importlib.util.spec_from_file_location("readme_figures", REPO_ROOT / "bench" / "readme_figures.py")
    figures = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "readme_figures", figures)  # dataclasses look their module up there
    spec.loader.exec_module(figures)
    for figure in figures.FIGURES:
        float(figures.stated_value(figure).replace(",", ""))  # raises, naming the README, if it is not there
    checked = {figure.readme for figure in figures.FIGURES}
    assert checked >= {"docs/performance.md", "docs/projects.md", "projects/adder/README.md",
                       "projects/chargpt/README.md", "projects/induction/README.md"}
    # Every project named in docs/projects.md's table states its outcome next to a command the script reruns.
    page = (REPO_ROOT / "docs" / "projects.md").read_text(encoding="utf-8")
    table = page[page.index("| project |"):]
    for project in ("adder", "chargpt", "induction"):
        row = next(line for line in table.splitlines() if line.startswith(f"| [{project}]"))
        commands = [figure.command for figure in figures.FIGURES if figure.readme == "docs/projects.md"]
        assert any(f"`{command}`" in row for command in commands), row


def test_chargpt_readme_quotes_the_message_it_prints(tmp_path):
    """The error line the README quotes for a missing --data.path is the line chargpt prints."""
    readme = (REPO_ROOT / "projects" / "chargpt" / "README.md").read_text(encoding="utf-8")
    quoted = re.search(r"`(chargpt: error: no text file at 'nope.txt'[^`]*)`", readme).group(1)
    result = run_project("chargpt", "--data.path=nope.txt", f"--system.work_dir={tmp_path / 'out'}", check=False)
    assert result.returncode == 2 and result.stderr.strip().splitlines()[-1] == quoted
