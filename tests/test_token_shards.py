"""
Tests for mingpt.data.token_shards: the shard format and its checks, the memory-mapped data set (order, determinism,
disjoint ranks), and exact resume through the Trainer with the data position stored in the checkpoint.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mingpt.data.token_shards import (HEADER_BYTES, SHARD_MAGIC, TokenShards, read_manifest, read_shard, verify_shards,
                                      write_manifest, write_shard)
from mingpt.model import GPT
from mingpt.trainer import Trainer


def make_shards(directory, sizes=(50, 120, 95), seed=0, vocab_size=50257):
    """Shards of random ids below vocab_size with a manifest (shard 0 = val); returns the token arrays."""
    rng = np.random.default_rng(seed)
    arrays, entries = [], []
    for k, n in enumerate(sizes):
        tokens = rng.integers(0, vocab_size, size=n).astype(np.uint16)
        name = f"shard_{k:06d}.bin"
        write_shard(directory / name, tokens)
        arrays.append(tokens)
        entries.append({"file": name, "split": "val" if k == 0 else "train", "tokens": n, "sha256": "x"})
    write_manifest(directory, {"shards": entries, "vocab_size": 50257})
    return arrays


# ---- the format ---------------------------------------------------------------------------------------------------
def test_shard_round_trip_and_header(tmp_path):
    tokens = np.array([0, 1, 50256, 65535, 7], dtype=np.int64)
    write_shard(tmp_path / "a.bin", tokens)
    raw = (tmp_path / "a.bin").read_bytes()
    assert len(raw) == HEADER_BYTES + 2 * len(tokens)
    assert list(np.frombuffer(raw[:12], dtype="<i4")) == [SHARD_MAGIC, 1, 5]
    back = read_shard(tmp_path / "a.bin")
    assert back.dtype == np.uint16 and back.tolist() == tokens.tolist()


def test_bad_shards_are_refused_with_the_reason(tmp_path):
    header = np.zeros(256, dtype="<i4")
    header[:3] = SHARD_MAGIC, 1, 10
    # Ten tokens written as int32 instead of uint16: the size does not match the header.
    (tmp_path / "wide.bin").write_bytes(header.tobytes() + np.arange(10, dtype=np.int32).tobytes())
    with pytest.raises(ValueError, match="promises 10 uint16 tokens.*another dtype"):
        read_shard(tmp_path / "wide.bin")
    (tmp_path / "short.bin").write_bytes(header.tobytes() + np.arange(9, dtype=np.uint16).tobytes())
    with pytest.raises(ValueError, match="cut short"):
        read_shard(tmp_path / "short.bin")
    (tmp_path / "raw.bin").write_bytes(np.arange(600, dtype=np.uint16).tobytes())
    with pytest.raises(ValueError, match="not the shard magic"):
        read_shard(tmp_path / "raw.bin")
    header[1] = 2
    (tmp_path / "v2.bin").write_bytes(header.tobytes() + np.arange(10, dtype=np.uint32).tobytes())
    with pytest.raises(ValueError, match="version 2"):
        read_shard(tmp_path / "v2.bin")
    with pytest.raises(FileNotFoundError, match="prepare.py"):
        read_shard(tmp_path / "missing.bin")


def test_ids_beyond_uint16_are_refused(tmp_path):
    with pytest.raises(ValueError, match="token id 70000 does not fit in uint16"):
        write_shard(tmp_path / "a.bin", np.array([1, 70000]))
    assert not (tmp_path / "a.bin").exists()


def test_verify_shards_catches_a_changed_shard(tmp_path):
    write_shard(tmp_path / "shard_000000.bin", np.arange(10))
    from mingpt.io.download import sha256_file

    write_manifest(tmp_path, {"shards": [{"file": "shard_000000.bin", "split": "val", "tokens": 10,
                                          "sha256": sha256_file(tmp_path / "shard_000000.bin")}]})
    verify_shards(tmp_path)
    write_shard(tmp_path / "shard_000000.bin", np.arange(1, 11))
    with pytest.raises(ValueError, match="changed"):
        verify_shards(tmp_path)


# ---- the data set -------------------------------------------------------------------------------------------------
def test_windows_are_the_non_overlapping_slices_of_each_shard(tmp_path):
    arrays = make_shards(tmp_path)
    ds = TokenShards.from_directory(tmp_path, "train", block_size=8, order="sequential")
    assert len(ds) == (120 - 1) // 8 + (95 - 1) // 8 == 14 + 11
    assert read_manifest(tmp_path)["shards"][0]["split"] == "val"
    x, y = ds[15]  # window 1 of the second train shard
    assert x.tolist() == arrays[2][8:16].tolist() and y.tolist() == arrays[2][9:17].tolist()
    batches = ds.batch_iterator(batch_size=3, seed=0)
    x, y = next(batches)  # sequential: windows 0, 1, 2 of the first train shard
    assert x.shape == (3, 8) and x.dtype == torch.int64
    assert x.reshape(-1).tolist() == arrays[1][:24].tolist() and torch.equal(x[:, 1:], y[:, :-1])


def test_random_order_is_a_seeded_permutation_per_epoch(tmp_path):
    make_shards(tmp_path)
    ds = TokenShards.from_directory(tmp_path, "train", block_size=8, order="random")
    n = len(ds)
    first_epoch = ds.window_ids(np.arange(n), seed=5, stream=0)
    assert sorted(first_epoch.tolist()) == list(range(n))  # every window once per epoch
    assert not np.array_equal(first_epoch, np.arange(n))
    assert np.array_equal(first_epoch, ds.window_ids(np.arange(n), seed=5, stream=0))  # deterministic
    assert not np.array_equal(first_epoch, ds.window_ids(np.arange(n), seed=6, stream=0))
    assert not np.array_equal(first_epoch, ds.window_ids(np.arange(n, 2 * n), seed=5, stream=0))  # new epoch


def test_ranks_read_disjoint_windows_that_make_up_the_single_process_batch(tmp_path):
    make_shards(tmp_path)
    ds = TokenShards.from_directory(tmp_path, "train", block_size=8, order="random")

    def take(world_size, rank, batch_size, accum, steps=2):
        it = ds.batch_iterator(batch_size, accum, world_size, rank, seed=3)
        return [next(it)[0] for _ in range(steps * accum)]

    single = take(1, 0, batch_size=4, accum=2)
    r0, r1 = take(2, 0, batch_size=2, accum=2), take(2, 1, batch_size=2, accum=2)
    for s, a, b in zip(single, r0, r1):
        assert torch.equal(s, torch.cat([a, b]))
        rows_a, rows_b = {tuple(r.tolist()) for r in a}, {tuple(r.tolist()) for r in b}
        assert not rows_a & rows_b  # disjoint


def test_state_resumes_at_the_exact_window_even_with_another_batch_size(tmp_path):
    make_shards(tmp_path)
    ds = TokenShards.from_directory(tmp_path, "train", block_size=8, order="random")
    it = ds.batch_iterator(batch_size=2, grad_accum_steps=2, seed=1)
    for _ in range(4 * 2 + 1):  # 4 steps, and one micro-batch of the unfinished fifth
        next(it)
    state = it.state_dict()
    assert state["position"] == 4 * 4  # the unfinished step does not count
    ds2 = TokenShards.from_directory(tmp_path, "train", block_size=8, order="random")
    resumed = ds2.batch_iterator(batch_size=1, grad_accum_steps=1, seed=1, start_step=99, state=state)
    expected = ds.window_ids(np.arange(16, 20), seed=1, stream=0)
    got = torch.cat([next(resumed)[0] for _ in range(4)])
    assert torch.equal(got, ds.get_windows(expected)[0])
    with pytest.raises(ValueError, match="seed=1.*seed=2"):
        ds2.batch_iterator(batch_size=1, seed=2, state=state)


def test_bad_sizes_are_refused(tmp_path):
    for name in ("short", "one"):
        (tmp_path / name).mkdir()
    make_shards(tmp_path / "short", sizes=(5, 6))
    with pytest.raises(ValueError, match="too short for block_size=8"):
        TokenShards.from_directory(tmp_path / "short", "train", block_size=8)
    make_shards(tmp_path / "one", sizes=(50,))
    with pytest.raises(ValueError, match="no 'train' shards"):
        TokenShards.from_directory(tmp_path / "one", "train", block_size=4)


# ---- exact resume through the Trainer -----------------------------------------------------------------------------
def tiny_trainer(directory, work_dir, max_iters, batch_size=2, resume=None):
    config = GPT.get_default_config()
    config.merge_from_dict(dict(model_type=None, n_layer=1, n_head=2, n_embd=16, vocab_size=256, block_size=8))
    torch.manual_seed(0)
    model = GPT(config)
    tc = Trainer.get_default_config()
    tc.merge_from_dict(dict(max_iters=max_iters, batch_size=batch_size, grad_accum_steps=2, learning_rate=1e-2,
                            device="cpu", work_dir=str(work_dir), resume=resume, seed=7))
    train = TokenShards.from_directory(directory, "train", block_size=8, order="random")
    return Trainer(tc, model, train)


def test_trainer_resume_with_the_data_position_is_bit_exact(tmp_path):
    make_shards(tmp_path, vocab_size=256)
    unbroken = tiny_trainer(tmp_path, tmp_path / "a", max_iters=6)
    unbroken.run()
    first = tiny_trainer(tmp_path, tmp_path / "b", max_iters=3)
    first.run()
    checkpoint = torch.load(tmp_path / "b" / "last.pt", weights_only=True)
    assert checkpoint["metadata"]["data_state"]["position"] == 3 * 2 * 2
    second = tiny_trainer(tmp_path, tmp_path / "b", max_iters=6, resume="auto")
    second.run()
    for name, value in unbroken.model.state_dict().items():
        assert torch.equal(value, second.model.state_dict()[name]), name
    assert second.data_state()["position"] == unbroken.data_state()["position"] == 6 * 4


def test_trainer_resume_continues_from_the_saved_position_not_from_the_step(tmp_path):
    make_shards(tmp_path, vocab_size=256)
    tiny_trainer(tmp_path, tmp_path / "b", max_iters=3, batch_size=2).run()  # position 12
    resumed = tiny_trainer(tmp_path, tmp_path / "b", max_iters=4, batch_size=1, resume="auto")
    resumed.run()
    assert resumed.data_state()["position"] == 12 + 2  # from the step it would be 3 * 2 + 2 = 8
