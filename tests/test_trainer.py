"""Tests for mingpt/trainer.py: config checks, events, schedule, precision, accumulation, exact resume, traps."""

from __future__ import annotations

import functools
import os
import random
import re
import runpy
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import torch.nn as nn
from torch.utils.data import Dataset

import mingpt.trainer as trainer_module
import mingpt.training.batching as batching
from mingpt.cfgnode import CfgNode
from mingpt.data import TokenStream
from mingpt.model import GPT
from mingpt.trainer import Trainer
from mingpt.training.callbacks import EVENTS
from mingpt.training.checkpoint import check_resume, load_checkpoint
from mingpt.training.precision import Precision, resolve_precision
from mingpt.training.schedule import get_lr
from mingpt.utils import set_seed

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VOCAB, BLOCK = 11, 8


@pytest.fixture
def tiny_gpt(tiny_gpt):
    """conftest's factory with this file's sizes: 2 layers, 2 heads, over VOCAB tokens with blocks of BLOCK."""
    return functools.partial(tiny_gpt, n_head=2, vocab_size=VOCAB, block_size=BLOCK)


def stream(n: int = 400, seed: int = 0) -> TokenStream:
    return TokenStream(np.random.default_rng(seed).integers(0, VOCAB, n), BLOCK)


class Windows(Dataset):
    """A map-style data set (goes through the DataLoader path)."""

    def __init__(self, n=200, seed=0):
        self.data = torch.from_numpy(np.random.default_rng(seed).integers(0, VOCAB, n + BLOCK))

    def __len__(self):
        return len(self.data) - BLOCK

    def __getitem__(self, i):
        return self.data[i : i + BLOCK], self.data[i + 1 : i + BLOCK + 1]


def cfg(**overrides) -> CfgNode:
    C = Trainer.get_default_config()
    # fp32 unless a test says otherwise: 'auto' is bf16 on CPUs with native bf16, and these tests compare exactly
    C.merge_from_dict(dict(device="cpu", max_iters=3, batch_size=4, learning_rate=1e-3, precision="fp32"))
    C.merge_from_dict(overrides)
    return C


# ---------------------------------------------------------------------------------------------- config
def test_default_config_has_the_original_keys_and_values_except_num_workers():
    """The original minGPT's trainer keys all exist with its values, except num_workers: 0 here (4 there), which
    was measured faster on small machines (worker start-up costs more than the tiny datasets' indexing)."""
    C = Trainer.get_default_config()
    assert (C.device, C.num_workers, C.max_iters, C.batch_size) == ("auto", 0, None, 64)
    assert (C.learning_rate, C.betas, C.weight_decay, C.grad_norm_clip) == (3e-4, (0.9, 0.95), 0.1, 1.0)


def test_unknown_key_is_rejected_with_suggestion_and_caller_config_untouched(tiny_gpt):
    C = cfg()
    C.batch_sise = 8  # a typo set as an attribute bypasses merge checks; the Trainer still catches it
    with pytest.raises(KeyError, match="batch_size"):
        Trainer(C, tiny_gpt(), stream())
    C = cfg()
    before = C.to_dict()
    t = Trainer(C, tiny_gpt(), stream())
    t.config.batch_size = 99
    assert C.to_dict() == before


@pytest.mark.parametrize("key,value", [("max_iters", 0), ("max_iters", -5), ("batch_size", 0), ("batch_size", -1),
                                       ("grad_accum_steps", 0), ("lr_schedule", "linear"), ("min_lr", 1.0),
                                       ("precision", "fp8")])
def test_bad_config_values_raise_value_error_naming_the_key(tiny_gpt, key, value):
    with pytest.raises(ValueError, match=key):
        Trainer(cfg(**{key: value}), tiny_gpt(), stream())


def test_cosine_needs_a_horizon_and_eval_needs_a_val_set(tiny_gpt):
    with pytest.raises(ValueError, match="horizon"):
        Trainer(cfg(max_iters=None, lr_schedule="cosine"), tiny_gpt(), stream())
    with pytest.raises(ValueError, match="val_dataset"):
        Trainer(cfg(eval_interval=2), tiny_gpt(), stream())


def test_empty_and_badly_shaped_datasets_raise_clear_errors(tiny_gpt):
    class Empty(Windows):
        def __len__(self):
            return 0

    class Ragged(Windows):
        def __getitem__(self, i):
            return self.data[i : i + BLOCK], self.data[i + 1 : i + BLOCK]  # y one shorter than x

    class Triples(Windows):
        def __getitem__(self, i):
            x, y = super().__getitem__(i)
            return x, y, y

    with pytest.raises(ValueError, match="empty"):
        Trainer(cfg(), tiny_gpt(), Empty())
    with pytest.raises(ValueError, match=r"x \(4, 8\) and y \(4, 7\)"):
        Trainer(cfg(), tiny_gpt(), Ragged()).run()
    with pytest.raises(TypeError, match=r"\(x, y\) pairs"):
        Trainer(cfg(), tiny_gpt(), Triples()).run()
    with pytest.raises(TypeError, match="nn.Module"):
        Trainer(cfg(), "not a model", stream())


# ---------------------------------------------------------------------------------------------- events
def test_events_fire_in_order_with_plain_functions_and_objects(tiny_gpt):
    seen = []

    class Recorder:
        def on_train_start(self, trainer):
            seen.append(("start", trainer.iter_num))

        def on_batch_end(self, trainer):
            seen.append(("batch", trainer.iter_num))
            assert isinstance(trainer.loss, torch.Tensor) and trainer.loss.item() > 0
            assert trainer.lr > 0 and trainer.tokens_per_sec > 0 and trainer.optimizer is not None

        def on_eval_end(self, trainer):
            seen.append(("eval", trainer.iter_num, round(trainer.val_loss, 3)))

        def on_train_end(self, trainer):
            seen.append(("end", trainer.iter_num))

    t = Trainer(cfg(max_iters=4, eval_interval=2, eval_iters=2), tiny_gpt(), stream(), stream(seed=1))
    t.add_callback(Recorder())
    t.add_callback("on_batch_end", lambda tr: seen.append(("fn", tr.iter_num)))
    t.run()
    kinds = [s[0] for s in seen]
    assert kinds == ["start", "batch", "fn", "batch", "fn", "eval", "batch", "fn", "batch", "fn", "eval", "end"]
    assert [s[1] for s in seen if s[0] == "batch"] == [0, 1, 2, 3]  # the step just run, 0-based, as in minGPT
    assert [s[1] for s in seen if s[0] in ("eval", "end")] == [2, 4, 4]  # elsewhere: the steps done


def test_unknown_events_are_rejected_listing_valid_ones(tiny_gpt):
    t = Trainer(cfg(), tiny_gpt(), stream())
    with pytest.raises(ValueError, match="on_batch_end"):
        t.add_callback("on_batch_ends", lambda tr: None)

    class Misspelt:
        def on_bacth_end(self, trainer):
            pass

    with pytest.raises(ValueError, match="on_bacth_end"):
        t.add_callback(Misspelt())
    with pytest.raises(ValueError, match="valid events") as info:
        t.set_callback("on_epoch_end", lambda tr: None)
    assert all(event in str(info.value) for event in EVENTS)


def test_set_callback_replaces_and_iter_dt_is_measured_before_callbacks(tiny_gpt, monkeypatch):
    # A clock the callback can move forward by 1000 s: a "slow" callback, without waiting for it.
    offset = [0.0]
    monkeypatch.setattr(trainer_module.time, "perf_counter", lambda real=time.perf_counter: real() + offset[0])

    def slow_callback(tr):
        calls.append(tr.iter_dt)
        offset[0] += 1000.0

    calls = []
    t = Trainer(cfg(max_iters=3), tiny_gpt(), stream())
    t.add_callback("on_batch_end", lambda tr: calls.append("old"))
    t.set_callback("on_batch_end", slow_callback)
    t.run()
    assert "old" not in calls and len(calls) == 3
    assert all(0 < dt < 1000 for dt in calls), calls  # the slow callback is not part of the step time


# ---------------------------------------------------------------------------------------------- optimisation
def test_lr_schedule_warmup_cosine_and_floor():
    C = cfg(learning_rate=1.0, warmup_iters=4, max_iters=14, lr_schedule="cosine", min_lr=0.1)
    assert get_lr(0, C) == pytest.approx(1 / 5) and get_lr(3, C) == pytest.approx(4 / 5)
    assert get_lr(4, C) == pytest.approx(1.0)
    assert get_lr(9, C) == pytest.approx(0.55)  # halfway down the cosine: (1 + 0.1) / 2
    assert get_lr(14, C) == pytest.approx(0.1) and get_lr(100, C) == pytest.approx(0.1)
    assert get_lr(50, cfg(learning_rate=0.5)) == 0.5  # constant


def test_grad_accumulation_equals_one_big_batch(tiny_gpt):
    """
    The gradient the optimizer receives, not the weights after it: AdamW is nearly scale-invariant and clipping
    rescales, so weights would hide a gradient 2x or 4x too large. A huge clip threshold measures the pre-clip
    norm without changing anything.
    """
    grads, norms = [], []
    for batch_size, accum in ((8, 1), (4, 2), (2, 4)):
        model = tiny_gpt(dropout=0.0)
        t = Trainer(cfg(batch_size=batch_size, grad_accum_steps=accum, max_iters=1, grad_norm_clip=1e9), model,
                    Windows())
        t.optimizer.register_step_pre_hook(
            lambda opt, args, kwargs: grads.append(torch.cat([p.grad.flatten() for p in model.parameters()])))
        t.run()
        norms.append(float(t.grad_norm))
    assert len(grads) == 3
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(grads[2], grads[0], rtol=1e-5, atol=1e-7)
    assert norms[0] == pytest.approx(grads[0].norm().item(), rel=1e-5) and norms[0] > 0
    assert norms[1] == pytest.approx(norms[0], rel=1e-5) and norms[2] == pytest.approx(norms[0], rel=1e-5)


def test_generic_module_without_configure_optimizers_trains():
    class Bigram(nn.Module):
        def __init__(self):
            super().__init__()
            self.table = nn.Embedding(VOCAB, VOCAB)

        def forward(self, x, y):
            logits = self.table(x)
            return logits, nn.functional.cross_entropy(logits.view(-1, VOCAB), y.reshape(-1))

    t = Trainer(cfg(max_iters=30, learning_rate=0.1), Bigram(), stream())
    losses = []
    t.add_callback("on_batch_end", lambda tr: losses.append(tr.loss.item()))
    t.run()
    assert isinstance(t.optimizer, torch.optim.AdamW) and losses[-1] < losses[0]
    decays = sorted(g["weight_decay"] for g in t.optimizer.param_groups)
    assert decays == [0.0, 0.1]


def test_data_sets_that_batch_themselves_are_asked_for_batches_without_a_dataloader(tiny_gpt, monkeypatch):
    def no_loader(*args, **kwargs):
        raise AssertionError("a data set with batch_iterator should not go through a DataLoader")

    class SelfBatching(Windows):
        """Not a TokenStream: any data set with batch_iterator(...) hands the Trainer its own batches."""

        def __init__(self):
            super().__init__()
            self.calls = []

        def batch_iterator(self, batch_size, grad_accum_steps, world_size, rank, seed, stream, start_step, state=None):
            self.calls.append((batch_size, grad_accum_steps, world_size, rank, seed, stream, start_step, state))
            x, y = self[0]
            return iter(lambda: (x.repeat(batch_size, 1), y.repeat(batch_size, 1)), None)  # endless

    monkeypatch.setattr(batching, "DataLoader", no_loader)
    Trainer(cfg(), tiny_gpt(), stream()).run()  # TokenStream (and so CharDataset) batches itself
    train, val = SelfBatching(), SelfBatching()
    t = Trainer(cfg(max_iters=2, grad_accum_steps=2, seed=5, eval_interval=2, eval_iters=1), tiny_gpt(), train, val)
    t.run()
    assert train.calls == [(4, 2, 1, 0, 5, 0, 0, None)]  # batch, accum, world size, rank, seed, stream 0, step 0
    assert val.calls == [(4, 1, 1, 0, 5, 1, 0, None)]  # evaluation: its own stream, from step 0 every time
    assert t.data_state() is None  # an iterator without state_dict() has no position to save


def test_a_map_style_data_set_is_indexed_with_plain_ints(tiny_gpt):
    class PlainIntsOnly(Windows):
        def __getitem__(self, i):  # as a hand-written data set may: numpy's int64 is not an int
            if type(i) is not int:
                raise TypeError(f"index must be an int, got {type(i).__name__}")
            return super().__getitem__(i)

    Trainer(cfg(max_iters=1), tiny_gpt(), PlainIntsOnly()).run()


def test_precision_resolution_never_gives_cpu_or_mps_a_cuda_only_setup():
    for device in ("cpu", "mps"):
        p = resolve_precision("auto", device)  # bf16 on CPUs with native bf16 (tests/test_precision.py)
        assert (p.name, p.autocast_dtype, p.use_grad_scaler) in [("fp32", None, False), ("bf16", torch.bfloat16, False)]
        assert device == "cpu" or p.name == "fp32"
        with pytest.raises(ValueError, match="fp16"):
            resolve_precision("fp16", device)
    with pytest.raises(ValueError, match="mps"):
        resolve_precision("bf16", "mps")
    assert resolve_precision("bf16", "cpu").autocast_dtype is torch.bfloat16
    assert resolve_precision("auto", "cuda", cuda_bf16=True) == Precision("bf16", torch.bfloat16, False)
    assert resolve_precision("auto", "cuda", cuda_bf16=False) == Precision("fp16", torch.float16, True)
    with pytest.raises(ValueError, match="bfloat16"):
        resolve_precision("bf16", "cuda", cuda_bf16=False)


def test_bf16_autocast_trains_on_cpu(tiny_gpt):
    model = tiny_gpt()
    dtypes = []
    for layer in (model.transformer.h[0].attn.c_attn, model.transformer.h[1].mlp.c_fc, model.lm_head):
        layer.register_forward_hook(lambda module, args, output: dtypes.append(output.dtype))
    t = Trainer(cfg(precision="bf16"), model, stream())
    t.run()
    assert not t.scaler.is_enabled() and torch.isfinite(t.loss)  # bf16 needs no loss scaling
    assert len(dtypes) == 3 * 3 and set(dtypes) == {torch.bfloat16}  # the matmuls really ran in bfloat16
    assert all(p.dtype == torch.float32 for p in model.parameters())  # while the weights stay fp32


# ---------------------------------------------------------------------------------------------- resume
def params(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_resume_is_exact(tiny_gpt, tmp_path):
    """N steps straight == k steps, Ctrl-C, resume to N: same bits, same loss history (dropout on, cosine)."""
    settings = dict(max_iters=6, lr_schedule="cosine", warmup_iters=2, grad_accum_steps=2, work_dir=str(tmp_path))

    straight = tiny_gpt()
    history_a = []
    t = Trainer(cfg(**settings, checkpoint_interval=0), straight, stream())
    t.add_callback("on_batch_end", lambda tr: history_a.append(tr.loss.item()))
    t.run()

    history_b = []

    def stop_at_3(tr):
        history_b.append(tr.loss.item())
        if tr.iter_num == 2:  # the third step (0-based at on_batch_end)
            raise KeyboardInterrupt

    first = Trainer(cfg(**settings), tiny_gpt(), stream())
    first.add_callback("on_batch_end", stop_at_3)
    first.run()  # returns cleanly after saving
    assert first.interrupted and load_checkpoint(tmp_path / "last.pt")["iter_num"] == 3

    resumed_model = tiny_gpt(seed=123)  # different init: everything must come from the checkpoint
    second = Trainer(cfg(**settings, resume=str(tmp_path / "last.pt")), resumed_model, stream())
    assert second.iter_num == 3
    second.add_callback("on_batch_end", lambda tr: history_b.append(tr.loss.item()))
    second.run()

    assert history_a == history_b
    for (name, a), b in zip(params(straight).items(), params(resumed_model).values()):
        assert torch.equal(a, b), name


def test_keyboard_interrupt_saves_and_fires_train_end(tiny_gpt, tmp_path):
    ended = []
    t = Trainer(cfg(max_iters=10, work_dir=str(tmp_path)), tiny_gpt(), stream())
    t.add_callback("on_batch_end", lambda tr: (_ for _ in ()).throw(KeyboardInterrupt) if tr.iter_num == 1 else None)
    t.add_callback("on_train_end", lambda tr: ended.append(tr.iter_num))
    t.run()
    assert ended == [2] and t.last_checkpoint_path == str(tmp_path / "last.pt")
    assert load_checkpoint(t.last_checkpoint_path)["iter_num"] == 2


def test_stop_from_a_callback_ends_after_that_step_with_the_usual_final_eval_and_checkpoint(tiny_gpt, tmp_path):
    evaluated, ended = [], []
    t = Trainer(cfg(max_iters=50, eval_interval=100, work_dir=str(tmp_path)), tiny_gpt(), stream(), stream())
    t.add_callback("on_batch_end", lambda tr: tr.stop() if tr.iter_num == 2 else None)  # after the third step
    t.add_callback("on_eval_end", lambda tr: evaluated.append(tr.iter_num))
    t.add_callback("on_train_end", lambda tr: ended.append(tr.iter_num))
    t.run()
    assert ended == [3] and evaluated == [3] and t.config.max_iters == 50  # the config is left alone
    assert load_checkpoint(str(tmp_path / "last.pt"))["iter_num"] == 3
    t.config.max_iters = 5
    t.run()  # a later run() starts afresh: the earlier stop request does not carry over
    assert t.iter_num == 5


def test_resume_from_bad_checkpoints_raises(tiny_gpt, tmp_path):
    with pytest.raises(FileNotFoundError):
        Trainer(cfg(resume=str(tmp_path / "nope.pt")), tiny_gpt(), stream())
    (tmp_path / "junk.pt").write_bytes(b"\x00not a checkpoint" * 10)
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        Trainer(cfg(resume=str(tmp_path / "junk.pt")), tiny_gpt(), stream())
    Trainer(cfg(work_dir=str(tmp_path)), tiny_gpt(), stream()).run()
    with pytest.raises(ValueError, match="n_embd=32 \\(model has 16\\)"):
        Trainer(cfg(resume=str(tmp_path / "last.pt")), tiny_gpt(n_embd=16), stream())
    fresh = Trainer(cfg(work_dir=str(tmp_path / "new"), resume="auto"), tiny_gpt(), stream())
    assert fresh.iter_num == 0  # 'auto' with nothing to resume starts from scratch


def test_evaluation_tracks_best_and_saves_best_checkpoint(tiny_gpt, tmp_path):
    # A learning rate high enough that the validation loss goes up and down (the best is neither first nor last).
    t = Trainer(cfg(max_iters=8, eval_interval=1, eval_iters=2, learning_rate=3e-2, work_dir=str(tmp_path)),
                tiny_gpt(), stream(), stream(seed=1))
    evaluations, weights, saved = [], {}, []

    def record(tr):
        evaluations.append((tr.iter_num, tr.val_loss))
        weights[tr.iter_num] = params(tr.model)

    t.add_callback("on_eval_end", record)
    t.add_callback("on_checkpoint", lambda tr: saved.append((tr.iter_num, os.path.basename(tr.last_checkpoint_path))))
    t.run()
    best_step, best = min(evaluations, key=lambda e: e[1])
    assert [step for step, _ in evaluations] == list(range(1, 9)) and 1 < best_step < 8
    assert t.best_val_loss == best
    ckpt = load_checkpoint(tmp_path / "best.pt")
    assert ckpt["iter_num"] == best_step and ckpt["metadata"]["val_loss"] == best
    assert all(torch.equal(ckpt["model"][k], v) for k, v in weights[best_step].items())  # the best step's weights
    new_records = [step for i, (step, loss) in enumerate(evaluations) if all(loss < e[1] for e in evaluations[:i])]
    assert [step for step, name in saved if name == "best.pt"] == new_records  # saved at each improvement only
    assert saved[-1] == (8, "last.pt")
    assert t.evaluate() == t.evaluate()  # the same validation batches every time


# ---------------------------------------------------------------------------------------------- traps
@pytest.mark.parametrize("who_compiles", ["trainer", "caller"])
def test_compiled_model_checkpoint_loads_into_plain_model_and_generates(tiny_gpt, tmp_path, monkeypatch, who_compiles):
    # The wrapper (and its '_orig_mod.' prefix) is the trap, not the code generator: skip inductor's C++ build,
    # which takes over a minute on 2 cores, by compiling with the 'eager' backend (dynamo still traces).
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="eager"))
    model = tiny_gpt(dropout=0.0)
    given = torch.compile(model) if who_compiles == "caller" else model
    t = Trainer(cfg(max_iters=2, compile=who_compiles == "trainer", work_dir=str(tmp_path)), given, stream())
    t.run()
    assert hasattr(t._train_model, "_orig_mod") and t.model is model
    state = load_checkpoint(tmp_path / "last.pt")["model"]
    assert not any(k.startswith(("_orig_mod.", "module.")) for k in state)
    plain = tiny_gpt(seed=5, dropout=0.0)
    plain.load_state_dict(state)
    idx = torch.zeros(1, 1, dtype=torch.long)
    assert torch.equal(torch.compile(plain).generate(idx, 5), model.generate(idx, 5))


def test_dataloader_workers_draw_different_augmentations(tiny_gpt):
    class Augmented(Windows):
        def __getitem__(self, i):
            x, y = super().__getitem__(i)
            noise = int(torch.randint(0, 2**30, ())) ^ int(np.random.randint(0, 2**30))
            return torch.full_like(x, noise), y  # the "augmentation" is the whole x row

    t = Trainer(cfg(num_workers=2, batch_size=8), tiny_gpt(), Augmented())
    batches = t._batches(t.train_dataset, stream=0, start=0, accum=1)
    rows = [tuple(next(batches)[0][:, 0].tolist()) for _ in range(6)]
    batches.close()
    values = [v for row in rows for v in row]
    assert len(set(values)) == len(values), "two workers produced the same random augmentation"


def test_gpu_bench_runs_tiny_on_cpu(monkeypatch, capsys):
    bench = os.path.join(REPO, "bench", "gpu_train.py")
    out = subprocess.run([sys.executable, bench, "--tiny", "--iters=3", "--peak-flops=1e9"],
                         capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.returncode == 0, out.stderr
    rows = {" ".join(line.split()[:-1]): line.split()[-1] for line in out.stdout.splitlines()}
    tokens_per_sec = float(rows["tokens/s"].replace(",", ""))
    flops_per_token = tiny_bench_model().estimate_flops_per_token()
    assert float(rows["MFU"].rstrip("%")) == pytest.approx(100 * flops_per_token * tokens_per_sec / 1e9, abs=0.1)
    # Without a peak, a CPU's MFU is unknown (in-process, to skip a second interpreter start).
    monkeypatch.setattr(sys, "argv", [bench, "--tiny", "--iters=1"])
    runpy.run_path(bench, run_name="__main__")
    report = capsys.readouterr().out
    assert re.search(r"^peak FLOP/s +unknown$", report, re.M)
    assert re.search(r"^MFU +unknown \(pass --peak-flops\)$", report, re.M)


def tiny_bench_model() -> GPT:
    """The model `bench/gpu_train.py --tiny` trains."""
    C = GPT.get_default_config()
    C.merge_from_dict(dict(model_type=None, n_layer=2, n_head=2, n_embd=32, vocab_size=64, block_size=32))
    return GPT(C)


# ---------------------------------------------------------------------------------------------- hardening (issue 12)
class RandomWindows(Windows):
    """Windows with random noise from torch, numpy and python's random: a data set that draws from the global RNGs."""

    def __getitem__(self, i):
        x, y = super().__getitem__(i)
        shift = int(torch.randint(0, VOCAB, ())) + int(np.random.randint(0, VOCAB)) + random.randrange(VOCAB)
        return (x + shift) % VOCAB, (y + shift) % VOCAB


def _train_history(tiny_gpt, settings, stop_how=None, stop_after=3, resume_from=None, **overrides):
    """Train tiny_gpt() on RandomWindows (with a random validation set); returns (model, losses, trainer)."""
    model, losses = tiny_gpt(seed=123 if resume_from else 0), []
    C = cfg(**{**settings, **overrides}, **({"resume": resume_from} if resume_from else {}))
    t = Trainer(C, model, RandomWindows(), RandomWindows(seed=1))

    def record(tr):
        losses.append(tr.loss.item())
        if stop_how == "ctrl_c" and tr.iter_num == stop_after - 1:
            raise KeyboardInterrupt
        if stop_how == "stop" and tr.iter_num == stop_after - 1:
            tr.stop()

    t.add_callback("on_batch_end", record)
    t.run()
    return model, losses, t


@pytest.mark.parametrize("stop_how", ["ctrl_c", "stop", "max_iters", "checkpoint_interval"])
def test_resume_is_exact_for_every_way_of_stopping_with_random_validation_data(tiny_gpt, tmp_path, stop_how):
    """5 steps straight == 3 steps, stop, resume, 2 steps, although the data draw random numbers and 3 is not a
    multiple of eval_interval (the stop adds an evaluation the straight run never makes)."""
    settings = dict(max_iters=5, eval_interval=2, eval_iters=2, lr_schedule="cosine", lr_decay_iters=5,
                    work_dir=str(tmp_path))
    straight, history_a, _ = _train_history(tiny_gpt, {**settings, "work_dir": str(tmp_path / "straight")})

    if stop_how == "checkpoint_interval":  # killed right after the periodic save at step 3: keep that file
        def keep(tr):
            if tr.iter_num == 3 and tr.last_checkpoint_path.endswith("last.pt"):
                shutil.copy(tr.last_checkpoint_path, tmp_path / "at3.pt")
        C = cfg(**settings, checkpoint_interval=3)
        first = Trainer(C, tiny_gpt(), RandomWindows(), RandomWindows(seed=1))
        history_b = []
        first.add_callback("on_batch_end", lambda tr: history_b.append(tr.loss.item()) if tr.iter_num < 3 else None)
        first.add_callback("on_checkpoint", keep)
        first.run()
        path = str(tmp_path / "at3.pt")
    else:
        _, history_b, first = _train_history(tiny_gpt, settings, stop_how=stop_how,
                                             **({"max_iters": 3} if stop_how == "max_iters" else {}))
        assert first.iter_num == 3 and first.val_loss is not None or stop_how == "ctrl_c"
        path = str(tmp_path / "last.pt")
    assert load_checkpoint(path)["iter_num"] == 3
    resumed, history_c, second = _train_history(tiny_gpt, settings, resume_from=path)
    assert second.iter_num == 5
    assert history_a == history_b[:3] + history_c
    for (name, a), b in zip(params(straight).items(), params(resumed).values()):
        assert torch.equal(a, b), name


def test_evaluate_leaves_every_training_rng_as_it_was_and_repeats_its_random_draws(tiny_gpt):
    t = Trainer(cfg(eval_iters=2), tiny_gpt(), RandomWindows(), RandomWindows(seed=1))
    set_seed(7)
    expected = (torch.rand(3), np.random.rand(), random.random())
    set_seed(7)
    first, second = t.evaluate(), t.evaluate()
    got = (torch.rand(3), np.random.rand(), random.random())
    assert torch.equal(got[0], expected[0]) and got[1:] == expected[1:]
    assert first == second  # a random validation set gives the same batches every time


def test_cosine_schedule_continues_smoothly_when_resumed_with_more_iters(tiny_gpt, tmp_path, caplog):
    settings = dict(learning_rate=1e-2, min_lr=1e-4, lr_schedule="cosine", work_dir=str(tmp_path))
    Trainer(cfg(**settings, max_iters=6), tiny_gpt(), stream()).run()
    shutil.copy(tmp_path / "last.pt", tmp_path / "at6.pt")
    lrs = []
    with caplog.at_level("INFO", logger="mingpt.training.resume"):
        t = Trainer(cfg(**settings, max_iters=12, resume="auto"), tiny_gpt(), stream())
    t.add_callback("on_batch_end", lambda tr: lrs.append(tr.lr))
    t.run()
    assert lrs == [pytest.approx(1e-4)] * 6  # the run's schedule had reached min_lr: no jump back to ~5e-3
    assert "schedule ended at step 6, so it stays at min_lr=1.00e-04" in caplog.text
    assert "changed trainer settings" not in caplog.text  # adopting the run's horizon is not a change

    caplog.clear()
    with caplog.at_level("INFO", logger="mingpt.training.resume"):  # an explicit lr_decay_iters is the user's choice
        t = Trainer(cfg(**settings, max_iters=12, lr_decay_iters=12, resume=str(tmp_path / "at6.pt")), tiny_gpt(),
                    stream())
    assert get_lr(6, t.config) == pytest.approx(get_lr(6, cfg(**settings, max_iters=12)))
    assert "lr_decay_iters=12 replaces the run's horizon of 6: 1.00e-04 -> 5.05e-03 at step 6" in caplog.text


def test_cosine_horizon_is_fixed_when_training_starts_so_run_again_continues_smoothly(tiny_gpt):
    t = Trainer(cfg(learning_rate=1e-2, min_lr=1e-4, lr_schedule="cosine", max_iters=4), tiny_gpt(), stream())
    t.run()
    lrs = []
    t.add_callback("on_batch_end", lambda tr: lrs.append(tr.lr))
    t.config.max_iters = 8  # "call again after raising max_iters to continue"
    t.run()
    assert t.config.lr_decay_iters == 4 and lrs == [pytest.approx(1e-4)] * 4


class NaNAt(nn.Module):
    """A bigram model whose loss turns NaN on the `at`-th forward pass (0-based), as a diverging run's would."""

    def __init__(self, at):
        super().__init__()
        self.table, self.calls, self.at = nn.Embedding(VOCAB, VOCAB), 0, at

    def forward(self, x, y):
        logits = self.table(x)
        loss = nn.functional.cross_entropy(logits.view(-1, VOCAB), y.reshape(-1))
        self.calls += 1
        return logits, loss * float("nan") if self.calls - 1 == self.at else loss


def test_nonfinite_loss_stops_before_the_step_and_never_reaches_a_checkpoint(tmp_path):
    model, ended = NaNAt(at=2), []
    t = Trainer(cfg(max_iters=6, checkpoint_interval=1, work_dir=str(tmp_path)), model, stream())
    t.add_callback("on_train_end", lambda tr: ended.append(tr.iter_num))
    with pytest.raises(FloatingPointError, match=r"loss is nan at step 2 .*holds the weights after 2 steps"):
        t.run()
    assert ended == [2] and all(torch.isfinite(p).all() for p in model.parameters())  # the weights are the good ones
    last = load_checkpoint(tmp_path / "last.pt")
    assert last["iter_num"] == 2 and all(torch.isfinite(v).all() for v in last["model"].values())

    with torch.no_grad():  # weights that went bad some other way are never saved over a good checkpoint
        model.table.weight[0, 0] = float("inf")
    with pytest.raises(FloatingPointError, match=r"refusing to save .*table.weight"):
        t.save_checkpoint()
    assert load_checkpoint(tmp_path / "last.pt")["iter_num"] == 2


def test_nonfinite_check_has_an_opt_out(tmp_path):
    model = NaNAt(at=2)
    t = Trainer(cfg(max_iters=4, work_dir=str(tmp_path), stop_on_nonfinite=False), model, stream())
    t.run()  # trains on, as some experiments want
    assert t.iter_num == 4 and not torch.isfinite(model.table.weight).all()
    assert not torch.isfinite(load_checkpoint(tmp_path / "last.pt")["model"]["table.weight"]).all()


def test_on_train_end_fires_when_a_callback_raises(tiny_gpt):
    ended = []
    t = Trainer(cfg(max_iters=5), tiny_gpt(), stream())
    t.add_callback("on_batch_end", lambda tr: 1 / 0 if tr.iter_num == 1 else None)
    t.add_callback("on_train_end", lambda tr: ended.append(tr.iter_num))
    with pytest.raises(ZeroDivisionError):
        t.run()
    assert ended == [2]  # the second step was done when its callback raised


def test_original_mingpt_callbacks_fire_at_the_same_steps_and_see_iter_time(tiny_gpt, tmp_path):
    """The original increments iter_num after on_batch_end: `iter_num % 2 == 0` fires after steps 1, 3, 5."""
    seen, times = [], []

    def batch_end_callback(trainer):  # as written for the original minGPT
        times.append(trainer.iter_time)
        if trainer.iter_num % 2 == 0:
            seen.append(trainer.iter_num)

    t = Trainer(cfg(max_iters=5, checkpoint_interval=2, work_dir=str(tmp_path)), tiny_gpt(), stream())
    t.set_callback("on_batch_end", batch_end_callback)
    saved = []
    t.add_callback("on_checkpoint", lambda tr: saved.append(tr.iter_num))
    before = time.time()
    t.run()
    assert seen == [0, 2, 4] and t.iter_num == 5
    assert saved == [2, 4, 5] and load_checkpoint(tmp_path / "last.pt")["iter_num"] == 5  # steps done
    assert before <= times[0] <= times[-1] <= time.time() and times == sorted(times) and len(set(times)) == 5


@pytest.mark.parametrize("key,value,error,fragment", [
    ("learning_rate", None, TypeError, "'learning_rate' cannot be None"),
    ("weight_decay", None, TypeError, "'weight_decay' cannot be None"),
    ("grad_norm_clip", float("nan"), ValueError, "got nan"),
    ("grad_norm_clip", -1.0, ValueError, "grad_norm_clip must be >= 0"),
    ("betas", (0.9,), ValueError, "'betas' expects 2 values"),
    ("betas", (0.9, 1.5), ValueError, r"betas must be two numbers in \[0, 1\)"),
    ("weight_decay", -0.1, ValueError, "weight_decay must be >= 0"),
])
def test_bad_trainer_values_are_rejected_when_the_trainer_is_built(tiny_gpt, key, value, error, fragment):
    C = cfg()
    setattr(C, key, value)  # set directly (no merge check): the Trainer's own check must catch it
    with pytest.raises(error, match=fragment):
        Trainer(C, tiny_gpt(), stream())


@pytest.mark.parametrize("key,value,error", [("embd_pdrop", None, TypeError), ("layer_norm_epsilon", None, TypeError),
                                             ("tie_weights", None, TypeError), ("bias", None, TypeError),
                                             ("layer_norm_epsilon", 0.0, ValueError), ("n_layer", 0, ValueError)])
def test_bad_model_values_are_rejected_when_the_model_is_built(key, value, error):
    C = GPT.get_default_config()
    C.merge_from_dict(dict(model_type=None, n_layer=2, n_head=2, n_embd=32, vocab_size=VOCAB, block_size=BLOCK))
    setattr(C, key, value)
    with pytest.raises(error, match=key):
        GPT(C)


def test_a_truncated_checkpoint_says_how_to_go_on(tiny_gpt, tmp_path):
    Trainer(cfg(max_iters=2, eval_interval=1, eval_iters=1, work_dir=str(tmp_path)), tiny_gpt(), stream(),
            stream(seed=1)).run()
    last = tmp_path / "last.pt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    C = cfg(work_dir=str(tmp_path), resume="auto")
    for attempt in (lambda: check_resume(C), lambda: Trainer(C, tiny_gpt(), stream())):
        with pytest.raises(ValueError) as info:
            attempt()
        message = str(info.value)
        assert "cannot resume" in message and "last.pt" in message and "truncated or corrupt" in message
        assert f"--trainer.resume={tmp_path / 'best.pt'}" in message and "--trainer.resume=None" in message


# ---------------------------------------------------------------------------------------------- worker seeding (17.1)
class ThreeDraws(Windows):
    """x holds [worker id, a torch draw, a numpy draw, a python-random draw, ...]: each generator on its own."""

    def __getitem__(self, i):
        x, y = super().__getitem__(i)
        info = torch.utils.data.get_worker_info()
        draws = [info.id if info else -1, int(torch.randint(0, 2**62, ())), int(np.random.randint(0, 2**62)),
                 random.getrandbits(62)]
        return torch.tensor(draws + [0] * (BLOCK - 4)), y


def _draws(trainer, rank=0, start=0, batches=4):
    """{generator: {worker id: draws}} from the real DataLoader path, as process `rank` of 2 starting at `start`."""
    trainer.rank, trainer.world_size = rank, 2
    loader = trainer._batches(trainer.train_dataset, stream=0, start=start, accum=1)
    rows = torch.cat([next(loader)[0][:, :4] for _ in range(batches)]).tolist()
    loader.close()
    out = {name: {} for name in ("torch", "numpy", "random")}
    for worker, *values in rows:
        for name, value in zip(out, values):
            out[name].setdefault(worker, set()).add(value)
    return out


def test_dataloader_workers_seed_torch_numpy_and_random_per_worker_rank_and_start(tiny_gpt):
    t = Trainer(cfg(num_workers=2, batch_size=4), tiny_gpt(), ThreeDraws())
    base, other_rank, resumed = _draws(t), _draws(t, rank=1), _draws(t, start=5)
    for name in ("torch", "numpy", "random"):  # each generator separately, not a mix of them
        by_worker = base[name]
        assert set(by_worker) == {0, 1} and not by_worker[0] & by_worker[1], f"{name}: workers drew alike"
        everything = set().union(*by_worker.values())
        assert not everything & set().union(*other_rank[name].values()), f"{name}: ranks drew alike"
        assert not everything & set().union(*resumed[name].values()), f"{name}: a resumed start drew alike"
    assert _draws(t) == base  # and all of it is repeatable


def test_a_checkpoint_saved_from_on_batch_end_records_the_steps_done_and_resumes_exactly(tiny_gpt, tmp_path):
    straight, history_a, _ = _train_history(tiny_gpt, dict(max_iters=5))
    mid = str(tmp_path / "mid.pt")  # e.g. a project's own best.pt, saved from its on_batch_end callback
    t = Trainer(cfg(max_iters=5), tiny_gpt(), RandomWindows())
    t.add_callback("on_batch_end", lambda tr: tr.save_checkpoint(mid) if tr.iter_num == 2 else None)
    t.run()
    assert load_checkpoint(mid)["iter_num"] == 3  # saved after the third step (index 2)
    resumed, history_c, _ = _train_history(tiny_gpt, dict(max_iters=5), resume_from=mid)
    assert history_c == history_a[3:]
    for (name, a), b in zip(params(straight).items(), params(resumed).values()):
        assert torch.equal(a, b), name


def test_resumed_mid_decay_the_cosine_carries_on_where_it_was(tiny_gpt, tmp_path, caplog):
    settings = dict(learning_rate=1e-2, min_lr=1e-4, lr_schedule="cosine", work_dir=str(tmp_path))
    first = Trainer(cfg(**settings, max_iters=6), tiny_gpt(), stream())
    first.add_callback("on_batch_end", lambda tr: tr.stop() if tr.iter_num == 2 else None)  # stop after 3 steps
    first.run()
    lrs = []
    with caplog.at_level("INFO", logger="mingpt.training.resume"):
        t = Trainer(cfg(**settings, max_iters=8, resume="auto"), tiny_gpt(), stream())
    t.add_callback("on_batch_end", lambda tr: lrs.append(tr.lr))
    t.run()
    planned = [get_lr(k, cfg(**settings, max_iters=6)) for k in range(3, 8)]  # the schedule the run started with
    assert lrs == pytest.approx(planned) and lrs[-1] == pytest.approx(1e-4)
    assert f"continuing the run's cosine schedule ({planned[0]:.2e} at step 3, reaching min_lr at step 6)" in caplog.text


def test_a_model_whose_forward_takes_only_x_is_told_the_trainer_contract():
    """forward(x) instead of forward(x, y) -> (output, loss): a message about the contract, not a bare TypeError."""
    import torch.nn as nn

    class Regressor(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(3, 1)

        def forward(self, x):
            return self.linear(x)

    data = torch.utils.data.TensorDataset(torch.randn(16, 3), torch.randn(16, 3))
    config = Trainer.get_default_config()
    config.max_iters, config.batch_size, config.device = 1, 4, "cpu"
    with pytest.raises(TypeError, match=r"the Trainer calls model\(x, y\) and needs \(output, loss\) back, but "
                                        r"Regressor.forward\(x\) cannot take \(x, y\)"):
        Trainer(config, Regressor(), data).run()
