"""Tests for mingpt/data/datasets.py and mingpt/io/data_files.py: token-stream windows (memory and memmap), char vocabulary, CharDataset, where data
comes from (explicit path, MINGPT_DATA_DIR, the download cache) and the train/validation split."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from mingpt.bpe import BPETokenizer
from mingpt.data import TINY_SHAKESPEARE, CharDataset, CharVocab, TokenStream, split_train_val, tiny_shakespeare
from mingpt.io.data_files import fetch_gpt2_vocab, find_data
from mingpt.io.download import ChecksumError, DownloadError
from mingpt.training.batching import StepSampler

NOWHERE = "http://127.0.0.1:9/input.txt"  # nothing listens there: any download attempt fails


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


def test_batch_iterator_gathers_the_windows_the_step_sampler_picks_and_ranks_split_them():
    s = TokenStream(np.arange(100, dtype=np.uint16), block_size=4)
    batches = s.batch_iterator(3, grad_accum_steps=2, seed=7, stream=0, start_step=5)
    sampler = iter(StepSampler(len(s), 3, 2, seed=7, stream=0, start=5))
    for _ in range(4):  # 2 steps of 2 micro-batches, from step 5: the windows starting at the sampled indices
        x, y = next(batches)
        starts = next(sampler)
        assert x[:, 0].tolist() == starts.tolist() and torch.equal(y, x + 1) and x.shape == (3, 4)
    # Two processes x 3 examples see exactly what one process x 6 sees, step after step.
    one = s.batch_iterator(6, seed=7, start_step=5)
    ranks = [s.batch_iterator(3, world_size=2, rank=r, seed=7, start_step=5) for r in (0, 1)]
    for _ in range(3):
        assert torch.equal(next(one)[0], torch.cat([next(r)[0] for r in ranks]))
    assert not hasattr(one, "state_dict")  # a pure function of the step: no position to save
    with pytest.raises(ValueError, match="TokenStream has no data position to restore.*'position': 12"):
        s.batch_iterator(3, state={"position": 12})
    with pytest.raises(ValueError, match=r"rank must be an int in \[0, 1\] \(one of the world_size processes\), got 2"):
        next(s.batch_iterator(3, world_size=2, rank=2))


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


# ---- where the data comes from ------------------------------------------------------------------------------------


def test_tiny_shakespeare_from_path_data_dir_or_cache(data_dir, cache_dir, monkeypatch, tmp_path):
    original = (data_dir / "tinyshakespeare" / "input.txt").read_text(encoding="utf-8")
    # 1. the download cache, filled by an earlier online run: no network needed
    (cache_dir / "tinyshakespeare").mkdir(parents=True)
    shutil.copy(data_dir / "tinyshakespeare" / "input.txt", cache_dir / "tinyshakespeare" / "input.txt")
    assert tiny_shakespeare(url=NOWHERE) == original
    # 2. MINGPT_DATA_DIR wins over the cache
    local = tmp_path / "local"
    (local / "tinyshakespeare").mkdir(parents=True)
    (local / "tinyshakespeare" / "input.txt").write_text("a local copy", encoding="utf-8")
    monkeypatch.setenv("MINGPT_DATA_DIR", str(local))
    assert tiny_shakespeare(url=NOWHERE) == "a local copy"
    # 3. an explicit path wins over both
    (tmp_path / "mine.txt").write_text("my own text", encoding="utf-8")
    assert tiny_shakespeare(tmp_path / "mine.txt") == "my own text"
    with pytest.raises(FileNotFoundError, match="no text file at .*nope.txt"):
        tiny_shakespeare(tmp_path / "nope.txt")


def test_a_data_dir_without_the_file_is_an_error_not_a_silent_download(cache_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("MINGPT_DATA_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"MINGPT_DATA_DIR=.* does not hold tinyshakespeare/input.txt"):
        tiny_shakespeare(url=NOWHERE)


def test_download_goes_into_the_cache_and_is_verified(data_dir, cache_dir, serve_directory, tmp_path):
    site = serve_directory(data_dir / "tinyshakespeare")
    text = tiny_shakespeare(url=f"{site}/input.txt")
    assert (cache_dir / TINY_SHAKESPEARE.name).read_text(encoding="utf-8") == text and len(text) == 1_115_394
    (tmp_path / "mirror").mkdir()
    (tmp_path / "mirror" / "input.txt").write_text("not Shakespeare", encoding="utf-8")
    (cache_dir / TINY_SHAKESPEARE.name).unlink()
    with pytest.raises(ChecksumError):  # a mirror with other contents is refused, never cached
        tiny_shakespeare(url=f"{serve_directory(tmp_path / 'mirror')}/input.txt")
    assert not (cache_dir / TINY_SHAKESPEARE.name).exists()


def test_offline_and_uncached_names_what_is_missing_and_both_ways_in_one_line(cache_dir, monkeypatch):
    monkeypatch.setattr("mingpt.io.download.time.sleep", lambda seconds: None)  # skip the backoff between retries
    with pytest.raises(DownloadError) as error:
        tiny_shakespeare(url=NOWHERE)
    message = str(error.value)
    assert "\n" not in message
    for fragment in ("Tiny Shakespeare", "tinyshakespeare/input.txt", "no connection",
                     str(cache_dir / "tinyshakespeare" / "input.txt"), "MINGPT_DATA_DIR", "network access"):
        assert fragment in message, (fragment, message)
    # Several files: every missing one is named, in the same single line.
    with pytest.raises(DownloadError) as error:
        BPETokenizer(base_url="http://127.0.0.1:9/gpt2")
    assert "gpt2/encoder.json, gpt2/vocab.bpe are not in" in str(error.value) and "\n" not in str(error.value)


def test_gpt2_vocabulary_from_the_data_dir(data_dir, cache_dir, monkeypatch):
    monkeypatch.setenv("MINGPT_DATA_DIR", str(data_dir))
    monkeypatch.setenv("MINGPT_GPT2_VOCAB_URL", "http://127.0.0.1:9")
    assert fetch_gpt2_vocab() == (data_dir / "gpt2" / "encoder.json", data_dir / "gpt2" / "vocab.bpe")
    assert find_data([TINY_SHAKESPEARE], "Tiny Shakespeare") == [data_dir / TINY_SHAKESPEARE.name]
    assert not cache_dir.exists()  # nothing was downloaded


def test_split_train_val_keeps_the_tail_for_validation():
    train, val = split_train_val("abcdefghij" * 10, 0.1, block_size=4)
    assert train == ("abcdefghij" * 10)[:90] and val == "abcdefghij"
    tokens = np.arange(1000, dtype=np.uint16)
    train, val = split_train_val(tokens, 0.25, block_size=8)
    assert len(val) == 250 and val[0] == 750 and train[-1] == 749
    with pytest.raises(ValueError, match=r"too short \(100 characters\).*block_size=10"):
        split_train_val("x" * 100, 0.1, block_size=10)
    with pytest.raises(ValueError, match="val_fraction must be a float in \\(0, 1\\), got 1.5"):
        split_train_val(tokens, 1.5, block_size=8)
