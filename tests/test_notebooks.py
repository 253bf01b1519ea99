"""
Every notebook in notebooks/, executed top to bottom by a real Jupyter kernel (nbclient + ipykernel), on CPU.

They run as a user runs them after a plain `git clone`: from a copy of the repository with no data folder beside it
and no MINGPT_DATA_DIR, finding GPT-2's vocabulary and Tiny Shakespeare in a download cache filled as a first online
run fills it (the `plain_clone` fixture). Small settings reach the notebooks through environment variables, which
the kernel inherits from this process: a tiny randomly initialised GPT-2 saved in Hugging Face layout stands in for
the real one (same 50,257-token vocabulary, so GPT-2's tokenizer fits it), training runs are shortened, and nothing
may touch the network. Each test checks a few printed results and that the figures were drawn, not only that no
cell raised.
"""

from __future__ import annotations

import pathlib
import re
import sys
import time

import ipykernel  # noqa: F401  (the kernel nbclient starts; like the rest, from the 'notebooks' extra)
import matplotlib  # noqa: F401
import nbclient
import nbformat
import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO_ROOT / "notebooks"
TIME_LIMIT_S = 120  # per notebook, start of the kernel included


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> pathlib.Path:
    """A randomly initialised 2-layer GPT-2 in Hugging Face layout, built by transformers itself."""
    import torch
    import transformers

    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=2, n_head=2, n_embd=32, vocab_size=50257, n_positions=128)
    path = tmp_path_factory.mktemp("tiny-gpt2")
    transformers.GPT2LMHeadModel(config).save_pretrained(path)
    return path


@pytest.fixture()
def notebook_env(monkeypatch, plain_clone, tiny_model_dir):
    """Environment for the kernel: the plain clone's code and cache, a local model, short runs, no network."""
    monkeypatch.delenv("MINGPT_DATA_DIR", raising=False)
    settings = {
        "PYTHONPATH": plain_clone.env["PYTHONPATH"],  # the copy's mingpt, not this checkout's
        "MINGPT_CACHE_DIR": plain_clone.env["MINGPT_CACHE_DIR"],
        "MINGPT_GPT2_VOCAB_URL": plain_clone.env["MINGPT_GPT2_VOCAB_URL"],  # nothing listens there
        "MINGPT_NOTEBOOK_MODEL": str(tiny_model_dir),
        "MINGPT_NOTEBOOK_NEW_TOKENS": "12",
        "MINGPT_DEMO_ITERS": "300",
        "MINGPT_TOKENIZER_TRAIN_CHARS": "200000",
        "MINGPT_TOKENIZER_MAX_VOCAB": "1024",
        # The induction project scaled down (context 32, segments up to 8), trained once by the project and stored
        # with its config, so that the notebooks spend their time looking inside, not training (the project's own
        # test trains this model and checks that the circuit forms):
        # python projects/induction/induction.py --trainer.max_iters=2000 --model.block_size=32
        #     --model.vocab_size=32 --data.max_repeat=8 --system.work_dir=tests/data/induction-small
        "MINGPT_INDUCTION_CHECKPOINT": str(REPO_ROOT / "tests" / "data" / "induction-small"),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "MINGPT_HF_ENDPOINT": "http://127.0.0.1:9",  # nothing listens there: any download attempt fails fast
        # One thread per kernel: on 2 shared cores, torch's default of one thread per core made the training
        # steps of these tiny models 20x slower whenever another process was busy.
        "OMP_NUM_THREADS": "1",
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
    }
    for key, value in settings.items():
        monkeypatch.setenv(key, value)
    settings["notebooks"] = plain_clone.root / "notebooks"
    return settings


def execute(name: str, env: dict) -> tuple[nbformat.NotebookNode, float]:
    """Run <name> from the plain clone's notebooks folder in a fresh python3 kernel; return it with its outputs."""
    folder = env["notebooks"]
    nb = nbformat.read(folder / name, as_version=4)
    # One extra cell at the end tells us which python the kernel ran (this environment's) and where its mingpt
    # came from (the clone's copy, not this checkout).
    nb.cells.append(nbformat.v4.new_code_cell(
        "import sys, mingpt; print('mingpt from:', mingpt.__file__); print('kernel python:', sys.executable)"))
    client = nbclient.NotebookClient(
        nb, timeout=TIME_LIMIT_S, kernel_name="python3", resources={"metadata": {"path": str(folder)}}
    )
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError, with the cell and traceback, if any cell fails
    elapsed = time.perf_counter() - start
    print(f"{name}: executed in {elapsed:.1f} s")
    kernel_python = pathlib.Path(printed(nb).split("kernel python: ")[-1].strip())
    assert kernel_python.resolve() == pathlib.Path(sys.executable).resolve(), "the kernel ran another python"
    mingpt_file = pathlib.Path(printed(nb).split("mingpt from: ")[-1].splitlines()[0])
    assert folder.parent in mingpt_file.resolve().parents, f"the kernel imported {mingpt_file}, not the clone's"
    assert elapsed < TIME_LIMIT_S, f"{name} took {elapsed:.0f} s; the limit is {TIME_LIMIT_S} s"
    return nb, elapsed


def printed(nb) -> str:
    """Everything the notebook printed (stdout streams and plain-text results), in order."""
    parts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.output_type == "stream" and output.name == "stdout":
                parts.append(output.text)
            elif "data" in output and "text/plain" in output.data:
                parts.append(output.data["text/plain"] + "\n")
    return "".join(parts)


def count_outputs(nb, mime: str) -> int:
    return sum(mime in output.get("data", {}) for cell in nb.cells for output in cell.get("outputs", []))


def test_notebooks_are_stored_light():
    """The repository keeps notebooks without outputs: small files and diffs that show only code changes."""
    names = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
    assert names == ["circuits.ipynb", "demo.ipynb", "generate.ipynb", "inspect.ipynb", "tokenizer.ipynb"]
    for name in names:
        nb = nbformat.read(NOTEBOOKS / name, as_version=4)
        nbformat.validate(nb)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, f"{name} is stored with outputs"
    total = sum(p.stat().st_size for p in NOTEBOOKS.rglob("*") if p.is_file())
    assert total < 1_000_000, f"notebooks/ holds {total:,} bytes; keep it under 1 MB"


def test_demo_learns_to_sort(notebook_env):
    nb, _ = execute("demo.ipynb", notebook_env)
    text = printed(nb)
    accuracy = float(re.search(r"test accuracy: ([\d.]+)%", text).group(1))
    assert accuracy >= 90.0, f"after {notebook_env['MINGPT_DEMO_ITERS']} steps the demo sorted only {accuracy}%"
    assert re.search(r"\[[\d, ]+\] -> \[[\d, ]+\]  (ok|WRONG)", text)  # the worked examples
    assert count_outputs(nb, "image/png") == 1  # the loss curve


def test_generate_matches_transformers(notebook_env):
    nb, _ = execute("generate.ipynb", notebook_env)
    text = printed(nb)
    assert "same seed, same text: True" in text
    assert "another seed, another text: True" in text
    assert "stream equals generate: True" in text
    assert "greedy continuations identical: True" in text
    assert float(re.search(r"max \|logit difference\|: (\S+)", text).group(1)) < 1e-4
    assert count_outputs(nb, "image/png") == 1  # the sampling-settings figure


def test_tokenizer_trains_and_compresses(notebook_env):
    nb, _ = execute("tokenizer.ipynb", notebook_env)
    text = printed(nb)
    assert "Hello| world|!|" in text  # GPT-2's token boundaries
    assert count_outputs(nb, "text/html") == 1  # the coloured token boxes
    assert "merges from 180,000 characters" in text  # 90% of MINGPT_TOKENIZER_TRAIN_CHARS
    ratios = [float(r) for r in re.findall(r"vocab +\d+: ([\d.]+) bytes per token", text)]
    assert ratios[0] == 1.0 and ratios == sorted(ratios) and ratios[-1] > 2.0  # more merges, more compression
    assert "round trip: True" in text
    assert count_outputs(nb, "image/png") == 1  # compression vs. vocabulary size


def test_inspect_probes_the_model_and_scores_induction_heads(notebook_env):
    nb, _ = execute("inspect.ipynb", notebook_env)
    text = printed(nb)
    assert "transformer.h.0.attn.c_attn" in text  # the model summary
    assert "final-layer lens equals the logits: True" in text
    assert re.search(r"^ +1 +\d+ +[\d.]+% ", text, re.MULTILINE)  # the top next-token table
    # The stored scaled-down induction model (notebook_env) is loaded, and its circuit read (score ~0.85 in layer 1).
    assert "loaded the induction model from" in text
    best = re.search(r"best prefix-matching head: layer (\d+) head \d+, score ([\d.]+)", text)
    assert best and best.group(1) == "1" and float(best.group(2)) > 0.7, text[-2000:]
    assert "an induction head formed" in text
    assert len(re.findall(r"layer \d+ head \d+: prefix-matching score [\d.]+", text)) == 3  # GPT-2's top heads
    # attention of the first and last layer, entropy, residual norms, logit lens, induction patterns
    assert count_outputs(nb, "image/png") == 6


def test_circuits_finds_the_induction_circuit(notebook_env):
    nb, _ = execute("circuits.ipynb", notebook_env)  # on the stored scaled-down induction model (notebook_env)
    text = printed(nb)

    def number(pattern: str) -> float:
        return float(re.search(pattern, text).group(1))

    assert "a GPT (attn_only=True): 2 layers x 4 heads" in text  # the project's model is a plain GPT
    heads = re.search(r"previous-token heads in layer 0: \[(.+)\]; induction heads: \[(.+)\]", text)
    assert heads and "(1, " in heads.group(2), text[:3000]
    # Ablation: the repeat is predicted, and zeroing either group of heads breaks it.
    assert number(r"repeat loss intact: ([\d.]+)") < 0.1
    assert number(r"all previous-token heads .* zeroed together: ([\d.]+)") > 2.0
    assert number(r"all induction heads .* zeroed together: ([\d.]+)") > 2.0
    # Patching: the library's cell equals one done by hand, and the information moves from A (layer 0) to B.
    assert re.search(r"by hand: \S+, get_act_patch_resid_pre: \S+, same: True", text)
    assert number(r"layer 0 at A: (-?[\d.]+)") > 0.9 and number(r"layer 1 at B: (-?[\d.]+)") > 0.9
    assert abs(number(r"layer 1 at A: (-?[\d.]+)")) < 0.1 and abs(number(r"layer 0 at B: (-?[\d.]+)")) < 0.1
    # Attribution patching: the residual-stream map close to the exact one (one backward pass instead of a sweep).
    assert number(r"attribution vs exact patching, residual stream: correlation (-?[\d.]+)") > 0.95
    assert number(r"attribution vs exact patching, heads: correlation (-?[\d.]+)") > 0.5
    # Direct logit attribution: an induction head writes the answer, and the parts add up to the logit.
    assert re.search(r"^largest: L1H\d$", text, re.MULTILINE)
    assert re.search(r"add up to the logit of B: True", text)
    # Weights: the induction head copies, the previous-token head looks one back, and they K-compose.
    assert number(r"eigenvalue copying score ([\d.]+)") > 0.8
    assert number(r"position right before for (\d+)% of query positions") >= 90
    # Path patching: the previous-token heads' clean output brings the answer back through the keys alone.
    assert number(r"into layer 1: keys (-?[\d.]+)") > 0.8
    assert abs(number(r"queries (-?[\d.]+)")) < 0.2 and abs(number(r"values (-?[\d.]+)")) < 0.2
    k_prev = number(r"K-composition, previous-token heads into induction heads: ([\d.]+)")
    assert k_prev > 2 * number(r"other layer-0 heads into induction heads: ([\d.]+)")
    assert k_prev > 2 * number(r"K-composition, untrained baseline ([\d.]+)")
    # IOI ran on the tiny model; causality's check holds for any model.
    assert "positions where the prompts agree, leave the corrupted metric as it was: True" in text
    html = [o.data["text/html"] for c in nb.cells for o in c.get("outputs", []) if "text/html" in o.get("data", {})]
    assert len(html) == 1 and 'class="mingpt-attn"' in html[0]  # the interactive attention view
    # attention (2 layers), ablation, patching, attribution patching, attribution, QK/OV, composition, IOI patching
    assert count_outputs(nb, "image/png") == 9
