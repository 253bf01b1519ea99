"""
Tests for mingpt.training.evaluation (eval_loss) and mingpt.data.hellaswag: the loss equals a direct computation over every
window; HellaSwag picks the ending a model was constructed to prefer, with acc (summed loss) and acc_norm (mean
loss) differing exactly where they should; the pinned download from a loopback server; both as Trainer callbacks
and through projects/gpt2/evaluate.py.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import pathlib

import numpy as np
import pytest
import torch
import torch.nn as nn

from mingpt.bpe import BPETokenizer
from mingpt.data.hellaswag import (HellaSwag, evaluate_hellaswag, fetch_hellaswag, git_blob_sha1, load_examples,
                                   render_example, score_endings)
from mingpt.data.token_shards import TokenShards, write_manifest, write_shard
from mingpt.io.download import ChecksumError
from mingpt.model import GPT
from mingpt.trainer import Trainer
from mingpt.training.evaluation import EvalLoss, eval_loss

EVALUATE = pathlib.Path(__file__).resolve().parents[1] / "projects" / "gpt2" / "evaluate.py"

# Four examples in the official format. Example 3 is built so that the two scorings disagree (see `unigram`).
EXAMPLES = [
    {"ind": 24, "activity_label": "Roof shingle removal", "ctx_a": "A man is sitting on a roof.", "ctx_b": "he",
     "ctx": "A man is sitting on a roof. he", "split": "val", "split_type": "indomain", "label": 3,
     "endings": ["is using wrap to wrap a pair of skis.", "is ripping level tiles off.",
                 "is holding a rubik's cube.", "starts pulling up roofing on a roof."],
     "source_id": "activitynet~v_-JhWjGDPHMY"},
    {"ind": 92, "activity_label": "Clean and jerk", "ctx_a": "A lady walks to a barbell.", "ctx_b": "she",
     "ctx": "A lady walks to a barbell. she", "split": "val", "split_type": "zeroshot", "label": 0,
     "endings": ["bends down and grabs the pole.", "swings and lands in her arms.", "pulls a rope attached to it.",
                 "stands and lifts the weight over her head."], "source_id": "activitynet~v_-lJS58hyo1c"},
    {"ind": 106, "activity_label": "Baking cookies", "ctx_a": "A kitchen is shown.", "ctx_b": "a woman",
     "ctx": "A kitchen is shown. a woman", "split": "val", "split_type": "indomain", "label": 1,
     "endings": ["jumps into a pool.", "mixes flour and sugar in a bowl.", "drives a red truck.",
                 "paints the fence."], "source_id": "activitynet~v_test"},
    {"ind": 7, "activity_label": "Pets", "ctx_a": "The yard is quiet.", "ctx_b": "the",
     "ctx": "The yard is quiet. the", "split": "val", "split_type": "indomain", "label": 2,
     "endings": ["cat", "bird sings loudly today", "dog runs away", "fish swims slowly there"],
     "source_id": "wikihow~test"},
]


@pytest.fixture(scope="module")
def tokenizer(data_dir) -> BPETokenizer:
    return BPETokenizer.from_files(data_dir / "gpt2" / "encoder.json", data_dir / "gpt2" / "vocab.bpe")


class Unigram(nn.Module):
    """A language model that ignores the context: the same logits (one score per token) at every position."""

    def __init__(self, scores: dict[int, float], vocab_size: int = 50257):
        super().__init__()
        self.scores = nn.Parameter(torch.zeros(vocab_size))
        with torch.no_grad():
            for token, score in scores.items():
                self.scores[token] = score

    def forward(self, idx, targets=None):
        return self.scores.expand(*idx.shape, -1), None


def unigram(tokenizer) -> Unigram:
    """Boost every token of each right ending (+8). In the last example, also give the wrong one-token ending
    ' cat' a score of 7: its *sum* of losses (one token) beats the right three-token ending, its mean does not."""
    scores = {}
    for example in EXAMPLES:
        for token in tokenizer.encode_ordinary(" " + example["endings"][example["label"]]):
            scores[token] = 8.0
    (cat,) = tokenizer.encode_ordinary(" cat")
    scores[cat] = 7.0
    assert len(tokenizer.encode_ordinary(" dog runs away")) == 3
    return Unigram(scores)


def write_jsonl(path, examples=EXAMPLES):
    path.write_text("".join(json.dumps(e) + "\n" for e in examples), encoding="utf-8")
    return path


# ---- HellaSwag ----------------------------------------------------------------------------------------------------
def test_scoring_picks_the_preferred_ending_and_acc_norm_differs_from_acc(tokenizer):
    model = unigram(tokenizer)
    result = evaluate_hellaswag(model, EXAMPLES, tokenizer.encode_ordinary)
    assert result == {"acc": 0.75, "acc_norm": 1.0, "correct": 3, "correct_norm": 4, "n": 4}
    tokens, mask, label = render_example(EXAMPLES[3], tokenizer.encode_ordinary)
    total, mean = score_endings(model, tokens, mask)
    assert label == 2 and int(total.argmin()) == 0 and int(mean.argmin()) == 2  # ' cat' wins only by sum
    # Two "processes" scoring alternate examples add up to the whole (counts are summed by all_reduce).
    halves = [evaluate_hellaswag(model, EXAMPLES, tokenizer.encode_ordinary, rank=r, world_size=2) for r in (0, 1)]
    assert sum(h["correct"] for h in halves) == 3 and sum(h["n"] for h in halves) == 4


def test_ending_scores_equal_a_direct_computation_without_padding(tokenizer):
    torch.manual_seed(0)
    config = GPT.get_default_config()
    config.merge_from_dict(dict(model_type=None, n_layer=1, n_head=2, n_embd=16, vocab_size=50257, block_size=64))
    model = GPT(config).eval()
    tokens, mask, _ = render_example(EXAMPLES[0], tokenizer.encode_ordinary)
    total, mean = score_endings(model, tokens, mask)
    context = tokenizer.encode_ordinary(EXAMPLES[0]["ctx"])
    for i, ending in enumerate(EXAMPLES[0]["endings"]):
        ending_ids = tokenizer.encode_ordinary(" " + ending)
        ids = torch.tensor([context + ending_ids])
        logp = torch.log_softmax(model(ids)[0][0], dim=-1)  # (T, V)
        expected = -sum(logp[len(context) - 1 + j, t] for j, t in enumerate(ending_ids))
        assert total[i].item() == pytest.approx(expected.item(), rel=1e-5)
        assert mean[i].item() == pytest.approx(expected.item() / len(ending_ids), rel=1e-5)


def test_the_pinned_download_from_a_loopback_server(tmp_path, serve_directory, cache_dir, tokenizer):
    site = tmp_path / "site" / "rowanz" / "hellaswag" / "master" / "data"
    site.mkdir(parents=True)
    path = write_jsonl(site / "hellaswag_val.jsonl")
    url = serve_directory(tmp_path / "site") + "/rowanz/hellaswag/master/data/hellaswag_val.jsonl"
    blob = git_blob_sha1(path)
    cached = fetch_hellaswag(url, blob)
    assert cached.read_bytes() == path.read_bytes() and str(cached).startswith(str(cache_dir))
    assert fetch_hellaswag(url, blob) == cached  # from the cache
    assert load_examples(cached)[3]["endings"][0] == "cat" and len(load_examples(cached, limit=2)) == 2
    cached.unlink()
    with pytest.raises(ChecksumError, match="expected 0{40}"):
        fetch_hellaswag(url, "0" * 40)
    assert not cached.exists()  # a file that does not match the pin is not kept


def test_git_blob_id_is_what_git_computes(tmp_path):
    (tmp_path / "f").write_bytes(b"hello\n")
    assert git_blob_sha1(tmp_path / "f") == "ce013625030ba8dba906f756967f9e9ca394464a"  # git hash-object


def test_bad_hellaswag_files_are_refused(tmp_path):
    bad = dict(EXAMPLES[0], endings=["only", "three", "endings"])
    with pytest.raises(ValueError, match=r"bad.jsonl:2 is not a HellaSwag example"):
        load_examples(write_jsonl(tmp_path / "bad.jsonl", [EXAMPLES[0], bad]))
    with pytest.raises(ValueError, match="holds no HellaSwag examples"):
        load_examples(write_jsonl(tmp_path / "empty.jsonl", []))
    with pytest.raises(ValueError, match="at least one example"):
        evaluate_hellaswag(Unigram({}), [], str.split)


# ---- eval_loss ----------------------------------------------------------------------------------------------------
@pytest.fixture
def tiny_gpt(tiny_gpt):
    """conftest's factory with this file's sizes: 1 layer, 2 heads, 16 wide, GPT-2's vocabulary, no dropout."""
    return functools.partial(tiny_gpt, dropout=0.0, n_layer=1, n_head=2, n_embd=16, vocab_size=50257, block_size=8)


def shards(directory, n_val=83, n_train=200):
    rng = np.random.default_rng(0)
    write_shard(directory / "shard_000000.bin", rng.integers(0, 50257, n_val))
    write_shard(directory / "shard_000001.bin", rng.integers(0, 50257, n_train))
    write_manifest(directory, {"vocab_size": 50257, "shards": [
        {"file": "shard_000000.bin", "split": "val", "tokens": n_val, "sha256": "-"},
        {"file": "shard_000001.bin", "split": "train", "tokens": n_train, "sha256": "-"}]})
    return directory


def test_eval_loss_is_the_mean_over_every_window(tiny_gpt, tmp_path):
    val = TokenShards.from_directory(shards(tmp_path), "val", block_size=8, order="random")  # order is not used
    model = tiny_gpt()
    direct = torch.stack([model(x[None], y[None])[1] for x, y in (val[i] for i in range(len(val)))]).mean()
    assert len(val) == 10
    assert eval_loss(model, val, batch_size=3) == pytest.approx(direct.item(), rel=1e-6)
    first_six = torch.stack([model(val[i][0][None], val[i][1][None])[1] for i in range(6)]).mean()
    assert eval_loss(model, val, batch_size=3, max_batches=2) == pytest.approx(first_six.item(), rel=1e-6)
    halves = [eval_loss(model, val, batch_size=2, rank=r, world_size=2) for r in (0, 1)]
    assert sum(halves) / 2 == pytest.approx(direct.item(), rel=1e-6)  # 5 windows each
    with pytest.raises(ValueError, match=r"batch_size must be an int >= 1, got 0"):
        eval_loss(model, val, batch_size=0)


def test_evaluations_run_without_dropout_and_give_back_the_callers_mode_even_on_errors(tiny_gpt, tmp_path, tokenizer):
    val = TokenShards.from_directory(shards(tmp_path), "val", block_size=8)
    model, modes = tiny_gpt(block_size=32), []
    model.register_forward_pre_hook(lambda module, args: modes.append(module.training))
    for evaluate in (lambda: eval_loss(model, val, batch_size=5),
                     lambda: evaluate_hellaswag(model, EXAMPLES[:1], tokenizer.encode_ordinary)):
        for training in (True, False):
            model.train(training)
            modes.clear()
            evaluate()
            assert modes and not any(modes) and model.training is training
    broken = tiny_gpt(block_size=32).train()
    broken.register_forward_pre_hook(lambda module, args: 1 / 0)
    for evaluate in (lambda: eval_loss(broken, val),
                     lambda: evaluate_hellaswag(broken, EXAMPLES, tokenizer.encode_ordinary)):
        with pytest.raises(ZeroDivisionError):
            evaluate()
        assert broken.training


def test_both_evaluations_run_as_trainer_callbacks(tiny_gpt, tmp_path, tokenizer):
    directory = shards(tmp_path)
    config = Trainer.get_default_config()
    config.merge_from_dict(dict(max_iters=4, batch_size=2, device="cpu", learning_rate=1e-3, precision="fp32"))
    model = tiny_gpt(block_size=32)
    val = TokenShards.from_directory(directory, "val", block_size=32, order="sequential")
    loss_cb, hella_cb = EvalLoss(val, interval=2, batch_size=2), HellaSwag(EXAMPLES, tokenizer.encode_ordinary, 3)
    trainer = Trainer(config, model, TokenShards.from_directory(directory, "train", 32), callbacks=(loss_cb, hella_cb))
    trainer.run()
    assert [step for step, _ in loss_cb.history] == [2, 4]
    assert loss_cb.history[-1][1] == pytest.approx(eval_loss(model, val, batch_size=2), rel=1e-6)
    assert [step for step, _ in hella_cb.history] == [3, 4]  # every 3 steps, and at the end
    assert hella_cb.history[-1][1] == evaluate_hellaswag(model, EXAMPLES, tokenizer.encode_ordinary)


def test_evaluate_command_line_on_a_checkpoint(tiny_gpt, tmp_path, serve_directory, cache_dir, data_dir, capsys):
    directory = shards(tmp_path)
    config = Trainer.get_default_config()
    config.merge_from_dict(dict(max_iters=1, batch_size=2, device="cpu", work_dir=str(tmp_path / "run")))
    Trainer(config, tiny_gpt(block_size=32), TokenShards.from_directory(directory, "train", 32)).run()
    spec = importlib.util.spec_from_file_location("gpt2_evaluate", EVALUATE)
    evaluate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(evaluate)
    checkpoint = str(tmp_path / "run" / "last.pt")

    evaluate.main(["loss", f"--checkpoint={checkpoint}", f"--data-dir={directory}", "--device=cpu"])
    result = json.loads(capsys.readouterr().out)
    assert result["windows"] == (83 - 1) // 32 and result["val_loss"] > 0
    evaluate.main(["loss", f"--checkpoint={checkpoint}", f"--shard={directory / 'shard_000001.bin'}", "--device=cpu",
                   "--block-size=16"])
    assert json.loads(capsys.readouterr().out)["windows"] == (200 - 1) // 16

    site = tmp_path / "site"
    site.mkdir()
    path = write_jsonl(site / "hellaswag_val.jsonl")
    url = serve_directory(site) + "/hellaswag_val.jsonl"
    evaluate.main(["hellaswag", f"--checkpoint={checkpoint}", f"--url={url}", f"--git-blob={git_blob_sha1(path)}",
                   f"--vocab-dir={data_dir / 'gpt2'}", "--device=cpu"])
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == 4 and result["task"] == "hellaswag" and 0 <= result["acc_norm"] <= 1
    with pytest.raises(SystemExit):
        evaluate.main(["hellaswag", f"--checkpoint={checkpoint}", f"--url={url}", "--git-blob=" + "1" * 40,
                       f"--vocab-dir={data_dir / 'gpt2'}"])
    assert "expected 1111" in capsys.readouterr().err
