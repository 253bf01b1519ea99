"""
The course notebooks (notebooks/course/) as a teacher uses them with nbgrader, end to end and for real:
`nbgrader generate_assignment` makes the student version, `nbgrader autograde` executes and grades both the
untouched student version (every check must fail cleanly, with NotImplementedError, ExerciseFailed or
AssertionError only, and score 0) and the teacher's solution version (full marks, each notebook's result printed).

Kernels run with MINGPT_COURSE_FAST=1 (few training steps, small data), local data, and no network.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import time

import pytest

nbformat = pytest.importorskip("nbformat")
if importlib.util.find_spec("nbgrader") is None:  # found, not imported: importing it takes seconds in every worker
    pytest.skip("nbgrader is not installed (pip install -e '.[test]')", allow_module_level=True)

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
COURSE = REPO_ROOT / "notebooks" / "course"
NOTEBOOKS = sorted(p.name for p in COURSE.glob("*.ipynb"))
# What each notebook visibly achieves when solved (printed by its last cells).
RESULTS = {
    "01_bigram.ipynb": "the bigram model learned something",
    "02_self_attention.ipynb": "row sums: [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]",
    "03_multihead_attention.ipynb": "PASSED training run (attention=MultiHeadAttention)",
    "04_block.ipynb": "PASSED training run (block=Block)",
    "05_gpt_shakespeare.ipynb": "your GPT is learning",
    "06_sampling_kv_cache.ipynb": "same tokens: True",
    "07_bpe.ipynb": "your merges equal mingpt.bpe_train's: True",
    "08_gpt2_weights.ipynb": "same greedy continuation: True",
    "09_post_training.ipynb": "merged and unmerged logits agree: True",
    "10_modern_llama.ipynb": "same logits as the loaded Llama: True",
}
# A placeholder raises NotImplementedError, a checker ExerciseFailed, a "does it learn" cell AssertionError.
ALLOWED_STUDENT_ERRORS = {"NotImplementedError", "ExerciseFailed", "AssertionError"}


def nbgrader_cells(nb, kind: str) -> list:
    return [c for c in nb.cells if c.metadata.get("nbgrader", {}).get(kind)]


def test_course_notebooks_are_nbgrader_assignments_stored_without_outputs():
    assert NOTEBOOKS == sorted(RESULTS), "every course notebook needs its expected result in RESULTS"
    for name in NOTEBOOKS:
        nb = nbformat.read(COURSE / name, as_version=4)
        nbformat.validate(nb)
        assert re.match(r"\d\d_", name)
        solutions, tests = nbgrader_cells(nb, "solution"), nbgrader_cells(nb, "grade")
        assert solutions and tests, name
        for cell in solutions:
            assert cell.source.count("### BEGIN SOLUTION") == cell.source.count("### END SOLUTION") >= 1, name
        for cell in tests:
            assert cell.metadata.nbgrader["points"] >= 1 and cell.metadata.nbgrader["locked"], name
        ids = [c.metadata.nbgrader["grade_id"] for c in solutions + tests]
        assert len(ids) == len(set(ids)), f"{name}: duplicate grade_id"
        # A checker call after each exercise: every solution cell is followed (before the next one) by a test cell.
        kinds = ["s" if c in solutions else "t" for c in nb.cells if c in solutions or c in tests]
        assert "ss" not in "".join(kinds) and kinds[-1] == "t", f"{name}: an exercise without its check"
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, f"{name} is stored with outputs"


def run_nbgrader(args: list[str], course_dir: pathlib.Path, env: dict) -> str:
    result = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course_dir, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
    return result.stdout + result.stderr


def printed(nb) -> str:
    return "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []) if o.output_type == "stream")


def documented_nbgrader_config() -> str:
    """The nbgrader_config.py that notebooks/README.md tells a teacher to write (its `cat > ... <<'EOF'` block)."""
    readme = (REPO_ROOT / "notebooks" / "README.md").read_text(encoding="utf-8")
    found = re.search(r"cat > nbgrader_config.py <<'EOF'\n(.*?)\nEOF\n", readme, re.S)
    assert found, "notebooks/README.md no longer writes nbgrader_config.py with a heredoc"
    return found.group(1) + "\n"


def test_documented_nbgrader_config_gives_training_cells_time():
    """nbgrader's default per-cell limit (30 s) interrupts notebook 05's training; the teachers' config raises it."""
    from traitlets.config import Config

    config = Config()
    exec(documented_nbgrader_config(), {"get_config": lambda: config})
    assert config.CourseDirectory.course_id == "mingpt"
    timeout = config.ExecutePreprocessor.timeout
    assert timeout is None or timeout == -1 or timeout >= 1800, f"per-cell timeout {timeout} s: too short to train"


def test_cut_short_training_fails_its_check():
    """A training run interrupted by a cell time limit (the Trainer stops cleanly, the loss has already fallen)
    must not earn the "your GPT is learning" point, and train_and_compare must not compare a cut-short run."""
    nb = nbformat.read(COURSE / "05_gpt_shakespeare.ipynb", as_version=4)
    check = next(c.source for c in nbgrader_cells(nb, "grade") if c.metadata.nbgrader["grade_id"] == "gpt-trains")
    from mingpt.trainer import Trainer

    train_config = Trainer.get_default_config()
    train_config.max_iters = 1000
    with pytest.raises(AssertionError, match=r"training stopped after 58 of 1000 steps"):
        exec(check, {"losses": [4.2] + [2.5] * 57, "train_config": train_config})
    exec(check, {"losses": [4.2] + [2.5] * 999, "train_config": train_config})  # the full run passes

    from mingpt.exercises import train_and_compare
    from mingpt.model import CausalSelfAttention

    class InterruptedAttention(CausalSelfAttention):  # a kernel interrupt arriving during the 5th training step
        calls = 0

        def forward(self, *args, **kwargs):
            InterruptedAttention.calls += 1
            if InterruptedAttention.calls == 2 * 5:  # two layers per forward
                raise KeyboardInterrupt
            return super().forward(*args, **kwargs)

    with pytest.raises(KeyboardInterrupt, match=r"training stopped after 4 of 8 steps"):
        train_and_compare(steps=8, attention=InterruptedAttention)


def test_nbgrader_round_trip(tmp_path, data_dir):
    course_dir = tmp_path / "course"
    shutil.copytree(COURSE, course_dir / "source" / "course", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    (course_dir / "nbgrader_config.py").write_text(documented_nbgrader_config())  # the teachers' own config
    env = {**os.environ, "MINGPT_COURSE_FAST": "1", "MINGPT_DATA_DIR": str(data_dir), "OMP_NUM_THREADS": "1",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "MINGPT_CACHE_DIR": str(tmp_path / "cache"),
           "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
           "MPLBACKEND": "module://matplotlib_inline.backend_inline",
           # nbgrader runs the `alembic` command of its environment, which need not be activated
           "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])}

    # 1. The teacher makes the student version: solutions replaced by placeholders, checks kept and locked.
    run_nbgrader(["generate_assignment", "course", "--force"], course_dir, env)
    release = course_dir / "release" / "course"
    assert sorted(p.name for p in release.glob("*.ipynb")) == NOTEBOOKS
    for name in NOTEBOOKS:
        text = (release / name).read_text(encoding="utf-8")
        assert "BEGIN SOLUTION" not in text and "raise NotImplementedError()" in text, name

    # 2. Two submissions: a student who changed nothing, and the teacher's solutions. Each is graded in its own
    #    copy of the course (same gradebook start), so the two autograde runs use both cores side by side.
    dirs = {"student": course_dir, "teacher": tmp_path / "course-teacher"}
    shutil.copytree(course_dir, dirs["teacher"])
    for student, folder in (("student", release), ("teacher", course_dir / "source" / "course")):
        target = dirs[student] / "submitted" / student / "course"
        target.mkdir(parents=True)
        for name in NOTEBOOKS:
            shutil.copy(folder / name, target / name)
    start = time.perf_counter()
    runs = {student: subprocess.Popen([sys.executable, "-m", "nbgrader", "autograde", "course", "--create"],
                                      cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for student, folder in dirs.items()}
    for student, run in runs.items():
        output = run.communicate(timeout=600)[0]
        assert run.returncode == 0, f"nbgrader autograde ({student}) failed:\n{output[-3000:]}"
    print(f"nbgrader autograde, 2 x {len(NOTEBOOKS)} notebooks side by side: {time.perf_counter() - start:.1f} s")

    # 3. Grades from nbgrader's own gradebooks.
    from nbgrader.api import Gradebook

    for student, folder in dirs.items():
        with Gradebook(f"sqlite:///{folder / 'gradebook.db'}", course_id="mingpt") as gradebook:
            for name in NOTEBOOKS:
                graded = gradebook.find_submission_notebook(name[: -len(".ipynb")], "course", student)
                if student == "teacher":
                    assert graded.max_score >= 2 and graded.score == graded.max_score, f"{name}: {graded.score}"
                else:
                    assert graded.score == 0, f"{name}: the empty student version scored {graded.score}"

    for name in NOTEBOOKS:
        solved = nbformat.read(dirs["teacher"] / "autograded" / "teacher" / "course" / name, as_version=4)
        errors = [o for c in solved.cells for o in c.get("outputs", []) if o.output_type == "error"]
        assert not errors, f"{name} (solutions) raised {errors[0].ename}: {errors[0].evalue}"
        assert RESULTS[name] in printed(solved), f"{name}: expected {RESULTS[name]!r}"
        assert "FAILED" not in printed(solved)

        untouched = nbformat.read(dirs["student"] / "autograded" / "student" / "course" / name, as_version=4)
        names = {o.ename for c in untouched.cells for o in c.get("outputs", []) if o.output_type == "error"}
        assert names and names <= ALLOWED_STUDENT_ERRORS, f"{name}: the student version crashed with {names}"
        failures = [o.evalue for c in nbgrader_cells(untouched, "grade") for o in c.get("outputs", [])
                    if o.output_type == "error"]
        assert any("not implemented yet" in message for message in failures), f"{name}: {failures}"


def test_student_version_reports_the_mistake_not_a_crash(tmp_path):
    """A wrong solution in a course notebook produces the checker's diagnosis as the cell's error."""
    nb = nbformat.read(COURSE / "03_multihead_attention.ipynb", as_version=4)
    solution = next(c for c in nbgrader_cells(nb, "solution") if "class MultiHeadAttention" in c.source)
    code = solution.source.replace("/ math.sqrt(hs)", "/ hs")  # a classic mistake: the scale applied twice
    namespace: dict = {}
    exec("import math, torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n" + code, namespace)
    from mingpt.exercises import ExerciseFailed, check_attention

    with pytest.raises(ExerciseFailed, match=r"scaling applied twice"):
        check_attention(namespace["MultiHeadAttention"]).raise_if_failed()
    assert json.dumps(nb.metadata["kernelspec"]["name"]) == '"python3"'


def test_course_finds_data_like_the_package(tmp_path, monkeypatch, data_dir):
    """
    With MINGPT_DATA_DIR unset, the course reads Tiny Shakespeare and GPT-2's vocabulary from mingpt's cache in the
    user's home (~/.cache/mingpt, sha256-verified) as every other part of mingpt does, without any network.
    """
    home = tmp_path / "home"
    for name in ("tinyshakespeare/input.txt", "gpt2/encoder.json", "gpt2/vocab.bpe"):
        (home / ".cache" / "mingpt" / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(data_dir / name, home / ".cache" / "mingpt" / name)
    monkeypatch.setenv("HOME", str(home))
    for var in ("MINGPT_DATA_DIR", "MINGPT_CACHE_DIR"):
        monkeypatch.delenv(var, raising=False)
    import socket

    def no_network(*args, **kwargs):
        raise AssertionError("the course went to the network although the cache holds its data")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    expected_text = (data_dir / "tinyshakespeare" / "input.txt").read_text(encoding="utf-8")

    # Notebook 1's first two code cells, as a student runs them.
    nb = nbformat.read(COURSE / "01_bigram.ipynb", as_version=4)
    namespace: dict = {}
    for cell in [c for c in nb.cells if c.cell_type == "code"][:2]:
        exec(cell.source, namespace)
    assert namespace["text"] == expected_text

    # Every notebook's data lines: the imports of mingpt's data tools and the lines that read data with them.
    data_line = re.compile(r"^(from mingpt\.(data|bpe) import .*|\w+ = (tiny_shakespeare|BPETokenizer)\(.*\))$")
    for name, variable in (("05_gpt_shakespeare.ipynb", "text"), ("07_bpe.ipynb", "text"),
                           ("08_gpt2_weights.ipynb", "tokenizer")):
        nb = nbformat.read(COURSE / name, as_version=4)
        source = "\n".join(line for c in nb.cells if c.cell_type == "code" for line in c.source.splitlines()
                           if data_line.match(line))
        namespace = {}
        exec(source, namespace)
        assert variable in namespace, f"{name} does not read its data with mingpt's tools:\n{source}"
        if variable == "text":
            assert namespace["text"] == expected_text, name
        else:
            assert namespace["tokenizer"].decode(namespace["tokenizer"]("Hello world")[0]) == "Hello world"
        assert "set MINGPT_DATA_DIR" not in json.dumps(nb.dict()), name


def test_offline_notebook_8_falls_back_at_once(tmp_path):
    """With no DNS for the Hub, notebook 8 builds its tiny offline GPT-2 at once, after one log line, instead of
    waiting through transformers' retries (about 20 seconds of "Retrying in 1s" lines)."""
    nb = nbformat.read(COURSE / "08_gpt2_weights.ipynb", as_version=4)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    load = next(source for source in code if "GPT2LMHeadModel.from_pretrained" in source)
    script = code[0] + "\nimport time\nstart = time.perf_counter()\n" + load + \
        "\nprint(f'loaded in {time.perf_counter() - start:.1f} s')\n"
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env.update(HF_ENDPOINT="http://nonexistent.invalid", MINGPT_HF_ENDPOINT="http://nonexistent.invalid",
               HF_HOME=str(tmp_path / "hf"), PYTHONPATH=os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]))
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "a tiny random GPT-2 (offline)" in result.stdout
    seconds = float(re.search(r"loaded in ([\d.]+) s", result.stdout).group(1))
    assert seconds < 5, f"{seconds} s to fall back offline:\n{result.stderr[-2000:]}"
    assert "Retry" not in result.stderr, result.stderr[-2000:]
    assert result.stderr.count("cannot resolve nonexistent.invalid") == 1, result.stderr[-2000:]
