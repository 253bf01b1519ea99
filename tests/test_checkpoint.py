"""Tests for mingpt/training/checkpoint.py: round trip, RNG states, atomic writes under SIGKILL, refusing pickled code."""

from __future__ import annotations

import functools
import pathlib
import pickle
import random
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

from mingpt.training.checkpoint import (capture_rng_state, isolated_rng, load_checkpoint, restore_checkpoint,
                                        restore_rng_state, save_checkpoint, unwrap_model)

SCRIPTS = pathlib.Path(__file__).parent / "scripts"


@pytest.fixture
def tiny_gpt(tiny_gpt):
    """conftest's factory with this file's sizes: 1 layer, 2 heads, 16 wide, over 7 tokens with blocks of 4."""
    return functools.partial(tiny_gpt, n_layer=1, n_head=2, n_embd=16, vocab_size=7, block_size=4)


def test_round_trip_restores_model_optimizer_iteration_and_config(tiny_gpt, tmp_path):
    model = tiny_gpt()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.zeros(1, 4, dtype=torch.long), torch.ones(1, 4, dtype=torch.long))[1].backward()
    optimizer.step()
    path = tmp_path / "ck.pt"
    save_checkpoint(path, model=model, optimizer=optimizer, iter_num=7, config={"model": model.config.to_dict()},
                    metadata={"note": "hi"})

    other = tiny_gpt()
    other_opt = torch.optim.AdamW(other.parameters(), lr=0.1)
    ckpt = load_checkpoint(path)
    assert restore_checkpoint(ckpt, other, other_opt) == 7
    for a, b in zip(model.state_dict().values(), other.state_dict().values()):
        assert torch.equal(a, b)
    exp_avg = [s["exp_avg"] for s in other_opt.state_dict()["state"].values()]
    assert len(exp_avg) == len(list(model.parameters())) and any(e.abs().sum() > 0 for e in exp_avg)
    assert ckpt["metadata"]["note"] == "hi" and ckpt["config"]["model"]["n_embd"] == 16
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]  # no temporary files left behind


def test_rng_states_round_trip_through_weights_only_load(tmp_path):
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    np.random.randn()  # leave a cached gaussian in numpy's state
    save_checkpoint(tmp_path / "ck.pt", model=torch.nn.Linear(1, 1))
    expected = (random.random(), np.random.randn(), np.random.rand(), torch.rand(3))
    random.seed(2), np.random.seed(2), torch.manual_seed(2)
    restore_rng_state(load_checkpoint(tmp_path / "ck.pt")["rng"])
    got = (random.random(), np.random.randn(), np.random.rand(), torch.rand(3))
    assert got[:3] == expected[:3] and torch.equal(got[3], expected[3])
    assert set(capture_rng_state()) >= {"python", "numpy", "torch"}


def test_sigkill_mid_save_leaves_previous_checkpoint_loadable_and_the_next_save_cleans_up(tmp_path):
    path = tmp_path / "last.pt"
    proc = subprocess.Popen([sys.executable, str(SCRIPTS / "killed_mid_save.py"), str(path)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "mid-save"
        leftovers = [p.name for p in tmp_path.iterdir() if p.name != "last.pt"]
        assert leftovers and leftovers[0].endswith(".tmp")  # the half-written new checkpoint exists...
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    ckpt = load_checkpoint(path)  # ...but the name still points at the complete old one
    assert ckpt["iter_num"] == 1 and torch.all(ckpt["model"]["weight"] == 1.0)
    assert len(list(tmp_path.iterdir())) == 2  # the killed save's half-written temp file is still there...
    save_checkpoint(path, model=torch.nn.Linear(4, 4), iter_num=3)
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # ...until the next save of the same target
    assert load_checkpoint(path)["iter_num"] == 3


class Payload:
    """Unpickling this would create the marker file: proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def write_malicious_pickle(path, contents: dict, marker, writer: str) -> None:
    """Write `contents` plus a Payload that creates `marker` when unpickled, with torch.save or pickle.dump."""
    evil = {**contents, "payload": Payload(marker)}
    if writer == "torch.save":
        torch.save(evil, path)
    else:
        with open(path, "wb") as f:
            pickle.dump(evil, f, protocol=2)


def load_unsafely(path, writer: str) -> None:
    """The positive control: an unsafe load of a file from write_malicious_pickle does run its payload."""
    if writer == "torch.save":
        torch.load(path, weights_only=False)
    else:
        with open(path, "rb") as f:
            pickle.load(f)


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_malicious_pickle_is_refused_and_never_runs(tmp_path, writer):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    write_malicious_pickle(path, {"format": "mingpt-checkpoint", "version": 1, "model": {}}, marker, writer)
    with pytest.raises(ValueError, match="refusing to load|not a readable checkpoint") as info:
        load_checkpoint(path)
    assert not marker.exists()
    if writer == "torch.save":
        assert "pickled Python objects" in str(info.value) and "Unsupported global" in str(info.value)
    load_unsafely(path, writer)  # the payload is real: an unsafe load does run it
    assert marker.exists()


def test_missing_corrupt_and_foreign_files_raise_clear_errors(tiny_gpt, tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
    save_checkpoint(tmp_path / "ok.pt", model=tiny_gpt())
    data = (tmp_path / "ok.pt").read_bytes()
    (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        load_checkpoint(tmp_path / "truncated.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="not a mingpt checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")


def test_checkpoint_from_a_different_model_config_names_the_difference(tiny_gpt, tmp_path):
    big = tiny_gpt(n_embd=16)
    save_checkpoint(tmp_path / "ck.pt", model=big, config={"model": big.config.to_dict()})
    with pytest.raises(ValueError, match=r"n_embd=16 \(model has 8\)"):
        restore_checkpoint(load_checkpoint(tmp_path / "ck.pt"), tiny_gpt(n_embd=8))


def test_compiled_wrapper_is_unwrapped_before_saving(tiny_gpt, tmp_path):
    model = tiny_gpt()
    compiled = torch.compile(model)  # creating the wrapper compiles nothing yet: cheap
    assert unwrap_model(compiled) is model
    save_checkpoint(tmp_path / "ck.pt", model=compiled)
    assert set(load_checkpoint(tmp_path / "ck.pt")["model"]) == set(model.state_dict())


@pytest.mark.parametrize("protocol", [2, 4, 5])
@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_malicious_pickle_of_any_protocol_is_refused_as_unsafe(tmp_path, writer, protocol):
    """Protocols 4 and 5 were reported as "corrupt?"; every protocol is refused as unsafe, without torch's advice."""
    from mingpt.io.safe_load import UnsafeFileError

    marker = tmp_path / "pwned"
    evil = {"format": "mingpt-checkpoint", "version": 1, "model": {}, "payload": Payload(marker)}
    path = tmp_path / "evil.pt"
    if writer == "torch.save":
        torch.save(evil, path, pickle_protocol=protocol)
    else:
        with open(path, "wb") as f:
            pickle.dump(evil, f, protocol=protocol)
    with pytest.raises(UnsafeFileError, match="refusing to load .*can run arbitrary code") as info:
        load_checkpoint(path)
    assert "corrupt" not in str(info.value) and "weights_only" not in str(info.value)
    assert "add_safe_globals" not in str(info.value)  # nor its advice to allow-list what it refused
    assert not marker.exists()


def test_every_refusal_of_the_safe_unpickler_is_named_without_torch_advice(tmp_path):
    from mingpt.io.safe_load import UnsafeFileError

    path = tmp_path / "odd.pt"
    path.write_bytes(b"\x80\x02}K\x01a.")  # a pickle that appends to a dict: refused, but with no "unsupported"
    with pytest.raises(UnsafeFileError, match="Can only append to lists") as info:
        load_checkpoint(path)
    assert "weights_only" not in str(info.value) and "Re-running" not in str(info.value)


def test_isolated_rng_repeats_its_draws_and_leaves_the_outer_streams_as_they_were():
    def draws():
        return random.random(), float(np.random.rand()), float(torch.rand(()))

    torch.manual_seed(1), np.random.seed(1), random.seed(1)
    straight = [draws(), draws()]
    torch.manual_seed(1), np.random.seed(1), random.seed(1)
    first = draws()
    with isolated_rng(5):
        inside = draws()
    with pytest.raises(KeyError), isolated_rng(5):  # put back even when the block raises
        assert draws() == inside
        raise KeyError("boom")
    assert [first, draws()] == straight and inside != straight[1]


def test_resuming_from_a_missing_file_in_python_gives_the_python_setting(tmp_path):
    """The Trainer used from Python is told the config value to set, not only a project's command-line flag."""
    import torch.utils.data

    from mingpt.trainer import Trainer

    config = Trainer.get_default_config()
    config.max_iters, config.device, config.resume = 1, "cpu", str(tmp_path / "nope.pt")
    model = torch.nn.Linear(2, 2)
    model.forward = lambda x, y: (x, ((x - y) ** 2).mean())  # noqa: E731 (the Trainer's (output, loss) contract)
    data = torch.utils.data.TensorDataset(torch.randn(8, 2), torch.randn(8, 2))
    with pytest.raises(FileNotFoundError, match=r"cannot resume: .*nope\.pt.*trainer\.resume = '<checkpoint>'.*"
                                                r"trainer\.resume = None"):
        Trainer(config, model, data)
