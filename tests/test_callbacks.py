"""Tests for mingpt/training/callbacks.py and mingpt/training/mfu.py: progress line, MFU against the real device's peak, loss plot,
time limit."""

from __future__ import annotations

import logging
import re
import sys
import types

import numpy as np
import pytest
import torch

import mingpt.training.callbacks as callbacks
from mingpt.data import TokenStream
from mingpt.trainer import Trainer
from mingpt.training.callbacks import LossCurvePlot, ProgressLogger, TimeLimit
from mingpt.training.mfu import device_peak_flops, estimate_mfu, peak_flops_for


@pytest.fixture
def tiny_trainer(tiny_gpt):
    """A factory of Trainers of a 1-layer GPT over 9 tokens: tiny_trainer(max_iters=4, callbacks=(), **config)."""

    def make(max_iters=4, callbacks=(), **overrides) -> Trainer:
        config = Trainer.get_default_config()
        config.merge_from_dict(dict(device="cpu", max_iters=max_iters, batch_size=4, **overrides))
        data = TokenStream(np.random.default_rng(0).integers(0, 9, 200), 8)
        model = tiny_gpt(n_layer=1, n_head=2, n_embd=16, vocab_size=9, block_size=8)
        return Trainer(config, model, data, data if overrides.get("eval_interval") else None, callbacks=callbacks)

    return make


def test_progress_logger_reports_loss_lr_throughput_eta_and_mfu(tiny_trainer, caplog):
    t = tiny_trainer(eval_interval=4, eval_iters=1)
    t.add_callback(ProgressLogger(interval=2, peak_flops=1e12))
    with caplog.at_level(logging.INFO, logger="mingpt.training.callbacks"):
        t.run()
    lines = [r.getMessage() for r in caplog.records if r.name == "mingpt.training.callbacks"]
    steps = [line for line in lines if "tok/s" in line]
    assert [line.split(" |")[0] for line in steps] == ["step 2/4", "step 4/4"]
    assert all(key in steps[0] for key in ("loss ", "lr ", "MFU ", "ETA "))
    evals = [line for line in lines if "val loss" in line]
    assert len(evals) == 1 and re.fullmatch(r"step 4 \| val loss \d\.\d{4} \| best \d\.\d{4} \| \d+ s", evals[0])


def test_progress_logger_omits_mfu_when_the_peak_is_unknown_and_can_use_tqdm(tiny_trainer, caplog):
    t = tiny_trainer(max_iters=2)
    logger = ProgressLogger(interval=1, use_tqdm=True)
    t.add_callback(logger)
    t.run()
    assert logger.bar is None  # closed at the end
    assert "MFU" not in logger.format(t) and "step 2/2" in logger.format(t)


def test_peak_flops_table_and_mfu_use_the_actual_device(monkeypatch):
    assert peak_flops_for("NVIDIA H100 80GB HBM3") == 989e12
    assert peak_flops_for("NVIDIA H100 PCIe") == 756e12
    assert peak_flops_for("NVIDIA A100-SXM4-40GB") == 312e12
    assert peak_flops_for("Some Future GPU") is None
    assert device_peak_flops("cpu") is None and device_peak_flops("mps") is None
    for name, peak in (("NVIDIA A100-SXM4-80GB", 312e12), ("NVIDIA H100 80GB HBM3", 989e12), ("Mystery", None)):
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None, name=name: name)
        assert device_peak_flops("cuda") == peak
    assert estimate_mfu(6e9, 50_000, 1e15) == pytest.approx(0.3)
    assert estimate_mfu(6e9, 50_000, 1e15, n_devices=2) == pytest.approx(0.15)
    assert estimate_mfu(6e9, 50_000, None) is None


def test_peak_flops_match_whole_names_only():
    """'L4' is a substring of 'L40' and 'L40S', 'H100' of 'H100 PCIe': each must get its own figure."""
    assert peak_flops_for("NVIDIA L4") == 121e12
    assert peak_flops_for("NVIDIA L40") == 181e12
    assert peak_flops_for("NVIDIA L40S") == 362e12
    assert peak_flops_for("NVIDIA H100 NVL") == 835e12
    assert peak_flops_for("  nvidia h100 pcie ") == 756e12  # case and outer spaces do not matter
    for unknown in ("NVIDIA L4000", "L4", "NVIDIA H100", "NVIDIA H100 80GB HBM3 (MIG 1g.10gb)"):
        assert peak_flops_for(unknown) is None, unknown


def test_peak_flops_follow_the_precision_in_use(monkeypatch):
    name = "NVIDIA A100-SXM4-80GB"
    assert [peak_flops_for(name, p) for p in ("bf16", "fp16", "tf32", "fp32")] == [312e12, 312e12, 156e12, 19.5e12]
    with pytest.raises(ValueError, match="precision must be one of .* got 'int8'"):
        peak_flops_for(name, "int8")
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    assert device_peak_flops("cuda", "bf16") == 312e12
    monkeypatch.setattr(torch, "get_float32_matmul_precision", lambda: "highest")
    assert device_peak_flops("cuda", "fp32") == 19.5e12  # plain fp32 matmuls: the CUDA-core peak
    monkeypatch.setattr(torch, "get_float32_matmul_precision", lambda: "high")
    assert device_peak_flops("cuda", "fp32") == 156e12  # fp32 matmuls allowed on TF32 tensor cores


def test_progress_logger_measures_mfu_against_the_trainers_precision(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA A100-SXM4-80GB")
    monkeypatch.setattr(torch, "get_float32_matmul_precision", lambda: "highest")
    model = types.SimpleNamespace(estimate_flops_per_token=lambda: 1e9)
    fake = types.SimpleNamespace(iter_num=10, steps_done=10, device="cuda", model=model,
                                 precision=types.SimpleNamespace(name="bf16"), config=types.SimpleNamespace(max_iters=20),
                                 is_main_process=True, world_size=1,
                                 loss=torch.tensor(2.0), lr=1e-3, tokens_per_sec=15_600.0)
    logger = ProgressLogger(interval=1)
    logger.on_train_start(fake)
    assert "MFU 5.0%" in logger.format(fake)  # 1e9 * 15,600 / 312e12
    fake.precision.name = "fp32"
    logger.on_train_start(fake)
    assert "MFU 80.0%" in logger.format(fake)  # 1e9 * 15,600 / 19.5e12


def test_progress_logger_takes_the_peak_of_the_trainers_device(monkeypatch):
    monkeypatch.setattr(callbacks, "device_peak_flops", lambda device, precision: {"cuda": 100e12}.get(str(device)))
    model = types.SimpleNamespace(estimate_flops_per_token=lambda: 1e9)
    fake = types.SimpleNamespace(iter_num=10, steps_done=10, device="cuda", model=model,
                                 config=types.SimpleNamespace(max_iters=20), is_main_process=True, world_size=1,
                                 loss=torch.tensor(2.0), lr=1e-3, tokens_per_sec=25_000.0)
    logger = ProgressLogger(interval=1)
    logger.on_train_start(fake)
    assert "MFU 25.0%" in logger.format(fake)  # 1e9 FLOPs/token * 25k tokens/s / 100e12
    fake.device = "cpu"
    logger.on_train_start(fake)
    assert "MFU" not in logger.format(fake)


def test_loss_curve_png_is_written(tiny_trainer, tmp_path):
    t = tiny_trainer(eval_interval=2, eval_iters=1)
    plot = LossCurvePlot(tmp_path / "plots" / "loss.png")
    t.add_callback(plot)
    t.run()
    assert (tmp_path / "plots" / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(plot.train) == 4 and len(plot.val) == 2
    assert [s for s, _ in plot.train] == [1, 2, 3, 4] and [s for s, _ in plot.val] == [2, 4]  # one x axis: steps done


def test_loss_curve_without_matplotlib_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    with pytest.raises(ImportError, match="pip install matplotlib"):
        LossCurvePlot("loss.png")


def test_time_limit_stops_after_the_step_that_runs_past_it_and_says_so(tiny_trainer, caplog):
    t = tiny_trainer(max_iters=50)
    limit = TimeLimit(1e-9)  # already past after the first step
    t.add_callback(limit)
    with caplog.at_level(logging.INFO, logger="mingpt.training.callbacks"):
        t.run()
    assert t.iter_num == 1 and limit.fired and "time limit of 0 s reached after 1 steps" in caplog.text
    t = tiny_trainer(max_iters=1)  # the run ends at max_iters anyway: the limit did not end it
    limit = TimeLimit(1e-9)
    t.add_callback(limit)
    t.run()
    assert t.iter_num == 1 and not limit.fired
    unlimited = TimeLimit(0)
    t = tiny_trainer(max_iters=3, callbacks=(unlimited,))
    t.run()
    assert t.iter_num == 3 and not unlimited.fired
    with pytest.raises(ValueError, match="seconds must be a number >= 0 .* got -1"):
        TimeLimit(-1)
