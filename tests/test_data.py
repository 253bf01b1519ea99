"""Tests for mingpt/data.py: token-stream windows (memory and memmap), char vocabulary, CharDataset."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mingpt.data import CharDataset, CharVocab, TokenStream


def test_windows_are_shifted_by_one_and_batches_match_items():
    s = TokenStream(np.arange(20, dtype=np.uint16), block_size=4)
    assert len(s) == 16  # starts 0..15: the last window needs tokens 15..19
    x, y = s[15]
    assert x.tolist() == [15, 16, 17, 18] and y.tolist() == [16, 17, 18, 19] and x.dtype == torch.int64
    bx, by = s.get_batch([3, 0, 15])
    assert torch.equal(bx, torch.stack([s[3][0], s[0][0], s[15][0]])) and torch.equal(by[2], y)
    assert bx.is_contiguous() and by.is_contiguous()
    with pytest.raises(IndexError):
        s[16]


def test_memmapped_file_gives_the_same_windows(tmp_path):
    tokens = np.random.default_rng(0).integers(0, 50000, 1000).astype(np.uint16)
    tokens.tofile(tmp_path / "train.bin")
    on_disk = TokenStream(tmp_path / "train.bin", 16)
    in_memory = TokenStream(torch.from_numpy(tokens.astype(np.int64)), 16)
    assert isinstance(on_disk.tokens, np.memmap) and len(on_disk) == len(in_memory)
    starts = [0, 500, len(on_disk) - 1]
    for a, b in zip(on_disk.get_batch(starts), in_memory.get_batch(starts)):
        assert torch.equal(a, b)
    with pytest.raises(FileNotFoundError, match="no token file"):
        TokenStream(tmp_path / "missing.bin", 16)
    (tmp_path / "odd.bin").write_bytes(b"\x00" * 7)
    with pytest.raises(ValueError, match="whole number"):
        TokenStream(tmp_path / "odd.bin", 2)


@pytest.mark.parametrize("tokens,block_size,error", [
    (np.zeros((2, 10), dtype=np.int64), 4, ValueError),  # not 1-D
    (np.zeros(10, dtype=np.float32), 4, TypeError),  # not integer ids
    (np.zeros(4, dtype=np.int64), 4, ValueError),  # too short for one window
    (np.zeros(10, dtype=np.int64), 0, ValueError),
    ([1, 2, 3], 1, TypeError),
])
def test_bad_token_streams_are_rejected(tokens, block_size, error):
    with pytest.raises(error):
        TokenStream(tokens, block_size)


def test_char_vocab_round_trip_and_errors(tmp_path):
    vocab = CharVocab.from_text("hello world")
    assert vocab.itos == sorted(set("hello world")) and vocab.decode(vocab.encode("low")) == "low"
    assert vocab.decode(torch.tensor(vocab.encode("he"))) == "he"
    with pytest.raises(KeyError, match="'z'"):
        vocab.encode("z")
    vocab.save(tmp_path / "vocab.json")
    assert CharVocab.load(tmp_path / "vocab.json").stoi == vocab.stoi
    with pytest.raises(FileNotFoundError):
        CharVocab.load(tmp_path / "none.json")


def test_char_dataset_is_a_token_stream_over_the_text(data_dir):
    text = (data_dir / "tinyshakespeare" / "input.txt").read_text(encoding="utf-8")[:5000]
    ds = CharDataset(text, block_size=16)
    assert isinstance(ds, TokenStream) and ds.get_block_size() == 16 and ds.get_vocab_size() == len(set(text))
    x, y = ds[100]
    assert ds.vocab.decode(x) == text[100:116] and ds.vocab.decode(y) == text[101:117]
    val = CharDataset(text[:100], 8, vocab=ds.vocab)  # the validation split shares the training vocabulary
    assert val.vocab is ds.vocab
