"""
Tests for projects/gpt2/train.py: gradient accumulation is equivalent to a bigger batch (1 x 4 micro-steps,
2 processes x 2, 1 x 1 batch of 4x the size), two "nodes" through torchrun's c10d rendezvous on 127.0.0.1, the
cpu-tiny preset end to end, and clear errors for a world size that does not divide the batch or a vocabulary
that does not fit the model.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import socket
import subprocess
import sys

import pytest
import torch

from mingpt.data.corpus import prepare_shards
from mingpt.data.token_shards import read_manifest

REPO = pathlib.Path(__file__).resolve().parents[1]
RANKS = REPO / "tests" / "scripts" / "gpt2_ranks.py"
TRAIN = REPO / "projects" / "gpt2" / "train.py"
_spec = importlib.util.spec_from_file_location("gpt2_ranks", RANKS)
gpt2_ranks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gpt2_ranks)


@pytest.fixture(scope="module")
def shards(data_dir, tmp_path_factory) -> pathlib.Path:
    """The first 30,000 characters of Tiny Shakespeare as GPT-2 tokens, in shards of 2,000 (shard 0 = val)."""
    out = tmp_path_factory.mktemp("shards")
    (out / "in.txt").write_text((data_dir / "tinyshakespeare" / "input.txt").read_text()[:30000])
    gpt2 = data_dir / "gpt2"
    prepare_shards([out / "in.txt"], out / "data", gpt2 / "encoder.json", gpt2 / "vocab.bpe", shard_size=2000)
    return out / "data"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_accumulation_and_two_torchrun_nodes_match_one_big_batch(shards, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    port = free_port()
    nodes = [subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", f"--node_rank={rank}", "--nproc_per_node=1",
         "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}", "--local-addr=127.0.0.1", str(RANKS),
         str(shards), str(tmp_path), "2"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for rank in (0, 1)]
    # Meanwhile, the single-process references: 4 micro-steps of 2 windows, and 1 step of 8 windows.
    references = []
    for batch_size in (2, 8):
        trainer, losses = gpt2_ranks.build(str(shards), batch_size)
        trainer.run()
        references.append((trainer.config.grad_accum_steps, trainer.model.state_dict(), losses))
    for node in nodes:
        output = node.communicate(timeout=180)[0]
        assert node.returncode == 0, output[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2] and [r["grad_accum_steps"] for r in ranks] == [2, 2]
    assert [accum for accum, _, _ in references] == [4, 1]
    for name, value in ranks[0]["model"].items():
        assert torch.equal(value, ranks[1]["model"][name]), name  # the two nodes end identical
    two_node_losses = [(a + b) / 2 for a, b in zip(ranks[0]["losses"], ranks[1]["losses"])]  # equal-size halves
    for _, state, losses in references:
        assert losses == pytest.approx(two_node_losses, rel=1e-5)
        for name, value in state.items():
            # Summation order differs, so the last bits differ; Adam turns the key bias's pure-noise gradient
            # (softmax ignores it) into lr-sized steps, hence its looser tolerance (see test_distributed.py).
            atol = 1e-4 if name.endswith("attn.c_attn.bias") else 1e-5
            torch.testing.assert_close(value, ranks[0]["model"][name], rtol=1e-4, atol=atol, msg=name)
    assert ranks[0]["losses"] != ranks[1]["losses"]  # the ranks read different windows


def test_a_world_size_that_does_not_divide_the_batch_is_refused():
    train = gpt2_ranks.load_train_module()
    assert train.grad_accum_steps(524_288, 64, 1024, 8) == 1
    assert train.grad_accum_steps(524_288, 16, 1024, 1) == 32
    with pytest.raises(ValueError, match=r"total_batch_tokens=524288 is not a positive multiple of .* 64 x 1024 x "
                                         r"3 = 196608"):
        train.grad_accum_steps(524_288, 64, 1024, 3)


def test_a_vocabulary_larger_than_the_model_is_refused(shards):
    train = gpt2_ranks.load_train_module()
    config = train.get_config()
    config.merge_from_args([f"--data.dir={shards}", "--model.vocab_size=50000"])
    train.apply_preset(config, [f"--data.dir={shards}", "--model.vocab_size=50000"])
    with pytest.raises(ValueError, match="ids up to 50256.*raise model.vocab_size to at least 50257"):
        train.build(config)


def test_cpu_tiny_preset_end_to_end(shards, tmp_path, data_dir):
    hellaswag = tmp_path / "hellaswag.jsonl"  # two examples in the official format
    hellaswag.write_text("".join(json.dumps({"ctx": f"A man is sitting on a roof. he{i}", "label": i, "endings": [
        "is using wrap.", "is ripping tiles off.", "is holding a cube.", "starts pulling up roofing."]}) + "\n"
        for i in range(2)))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, str(TRAIN), "--system.preset=cpu-tiny", f"--data.dir={shards}",
           f"--system.work_dir={tmp_path}", "--trainer.max_iters=6", "--trainer.eval_interval=3",
           "--trainer.eval_iters=2", "--trainer.warmup_iters=2", "--trainer.batch_size=2",
           "--data.total_batch_tokens=256", "--eval.hellaswag_interval=3", f"--eval.vocab_dir={data_dir / 'gpt2'}",
           f"--eval.hellaswag_jsonl={hellaswag}"]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    assert [line.split("| ")[-1].split(" acc")[0] for line in out.stderr.splitlines() if "hellaswag acc" in line] \
        == ["hellaswag", "hellaswag"]  # steps 3 and 6
    evals = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    val = [e["val_loss"] for e in evals if "val_loss" in e]
    assert len(val) == 2 and val[1] < val[0] < 10.9  # ln(50304) = 10.83 at the start
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["steps"] == 6 and summary["preset"] == "cpu-tiny"
    checkpoint = torch.load(tmp_path / "last.pt", weights_only=True)
    assert checkpoint["metadata"]["data_state"]["position"] == 6 * 2 * 2  # 6 steps x 2 micro-steps x 2 windows
    assert read_manifest(shards)["vocab_size"] == 50257


def test_the_command_line_reports_bad_settings_in_one_line(shards, tmp_path, capsys):
    train = gpt2_ranks.load_train_module()
    with pytest.raises(SystemExit) as exit_info:
        train.main([f"--data.dir={shards}", f"--system.work_dir={tmp_path}", "--trainer.batch_size=3"])
    assert exit_info.value.code == 2 and "not a positive multiple" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train.main(["--system.preset=gpt3"])
    assert "system.preset must be one of gpt2-124m, cpu-tiny" in capsys.readouterr().err


def test_prepare_finds_tiny_shakespeare_as_mingpt_does(data_dir, tmp_path):
    """`prepare.py --tiny-shakespeare` (the README's command) reads the user's data ($MINGPT_DATA_DIR or the cache),
    with no path that exists only beside this repository."""
    local = tmp_path / "data"
    (local / "tinyshakespeare").mkdir(parents=True)
    text = (data_dir / "tinyshakespeare" / "input.txt").read_text(encoding="utf-8")[:3000]
    (local / "tinyshakespeare" / "input.txt").write_text(text, encoding="utf-8")
    (local / "gpt2").symlink_to(data_dir / "gpt2")
    env = {**os.environ, "MINGPT_DATA_DIR": str(local), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, str(REPO / "projects" / "gpt2" / "prepare.py"), "--tiny-shakespeare",
                             f"--out={tmp_path / 'out'}", "--shard-size=300", "--num-proc=1", "--no-progress"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    manifest = read_manifest(tmp_path / "out")
    assert str(local / "tinyshakespeare" / "input.txt") in json.dumps(manifest)
    assert sum(s["tokens"] for s in manifest["shards"]) > 500
