"""
Data for language modelling: a token stream you can sample windows from, and a character-level vocabulary.

The one idea: a language-modelling data set is just one long array of token ids. Example ``i`` is the window
``tokens[i : i + block_size + 1]``, split into the input ``x = window[:-1]`` and the target ``y = window[1:]``
(each position predicts the next token). Because every example is a slice of the same array, a whole batch is
one vectorised gather, with no per-item Python and no DataLoader: `TokenStream.get_batch` does exactly that, and
`TokenStream.batch_iterator` hands the Trainer whole batches that way (the protocol of `mingpt.training.batching`).

    >>> stream = TokenStream(np.arange(100, dtype=np.uint16), block_size=8)
    >>> x, y = stream.get_batch(np.array([0, 50]))
    >>> x.shape, y[0, 0].item()
    (torch.Size([2, 8]), 1)

Which examples go into a batch is decided by `mingpt.training.batching.StepSampler`: the batch of optimizer step s
is a pure function of (seed, s). Resuming at step k therefore needs no sampler state, and several processes can
split one global batch.

Tokens can live in memory (a numpy array or torch tensor) or on disk: a path to a flat binary file of token ids
(``.bin``, uint16 by default, the layout nanoGPT's prepare scripts write) is memory-mapped, so a corpus larger
than RAM costs only the pages a batch touches.

`tiny_shakespeare()` returns the classic character-level corpus from an explicit path, from a local copy in
$MINGPT_DATA_DIR, or from mingpt's download cache (downloaded once, sha256-verified): the rule of
`mingpt.io.data_files.find_data`, which GPT-2's vocabulary files follow too.
"""

from __future__ import annotations

import json
import os
from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from mingpt.atomic import atomic_path
from mingpt.io.data_files import DataFile, find_data, read_text
from mingpt.training.batching import StepSampler
from mingpt.utils import check_int

__all__ = ["TokenStream", "CharVocab", "CharDataset", "TINY_SHAKESPEARE", "tiny_shakespeare", "split_train_val"]



class TokenStream(Dataset):
    """
    Every window of ``block_size + 1`` consecutive tokens of one long 1-D array, as (x, y) pairs.

    tokens: a 1-D integer numpy array or torch tensor, or a path to a binary file of token ids (memory-mapped).
    dtype: the integer type stored in that file (ignored for arrays, which keep their own dtype).
    It is also an ordinary map-style Dataset (``len``, ``stream[i]``), so a DataLoader can read it too.
    """

    def __init__(self, tokens, block_size: int, dtype: np.dtype | str = np.uint16):
        check_int(block_size, "block_size", 1)
        if isinstance(tokens, (str, os.PathLike)):
            path = os.fspath(tokens)
            if not os.path.isfile(path):
                raise FileNotFoundError(f"no token file at {path!r}; write one with array.tofile(path)")
            itemsize = np.dtype(dtype).itemsize
            if os.path.getsize(path) % itemsize:
                raise ValueError(f"{path!r} is {os.path.getsize(path)} bytes, not a whole number of {dtype} tokens")
            # A read-only memory map: the OS pages in only what a batch reads, and shares it between workers.
            tokens = np.memmap(path, dtype=dtype, mode="r")
        elif isinstance(tokens, torch.Tensor):
            tokens = tokens.detach().cpu().numpy()
        elif not isinstance(tokens, np.ndarray):
            raise TypeError(f"tokens must be a numpy array, a torch tensor or a file path, got {type(tokens).__name__}")
        if tokens.ndim != 1:
            raise ValueError(f"tokens must be 1-D (one long stream), got shape {tokens.shape}; flatten it first")
        if not np.issubdtype(tokens.dtype, np.integer):
            raise TypeError(f"tokens must hold integer ids, got dtype {tokens.dtype}")
        if len(tokens) <= block_size:
            raise ValueError(
                f"need more than block_size={block_size} tokens to make one (x, y) window, got {len(tokens)}"
            )
        self.tokens = tokens
        self.block_size = block_size
        self._offsets = np.arange(block_size + 1)  # (T+1,) the positions inside one window

    def __len__(self) -> int:
        # Window i needs tokens i .. i+T (T+1 of them), so the last valid start is len - T - 1.
        return len(self.tokens) - self.block_size

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"window {i} out of range for a stream with {len(self)} windows")
        i = i % len(self)
        chunk = torch.from_numpy(self.tokens[i : i + self.block_size + 1].astype(np.int64))
        return chunk[:-1], chunk[1:]

    def get_batch(self, starts: np.ndarray | Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """The windows starting at each index in `starts`, stacked: x and y of shape (B, T), int64."""
        starts = np.asarray(starts, dtype=np.int64)
        # (B, 1) + (T+1,) -> (B, T+1): row b holds the positions of window b; one fancy-index reads them all.
        chunk = torch.from_numpy(self.tokens[starts[:, None] + self._offsets].astype(np.int64))
        # Slicing off one column leaves non-contiguous views; make them contiguous so .view() works downstream.
        return chunk[:, :-1].contiguous(), chunk[:, 1:].contiguous()

    def batch_iterator(self, batch_size: int, grad_accum_steps: int = 1, world_size: int = 1, rank: int = 0,
                       seed: int = 0, stream: int = 0, start_step: int = 0, state: dict | None = None
                       ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """
        The Trainer's protocol for a data set that batches itself (see `mingpt.training.batching`): an endless
        iterator of (x, y) micro-batches, each one `get_batch` of the windows `StepSampler` picks for
        (seed, stream, step). Batches are a pure function of the step, so there is no data position to save: the
        iterator has no ``state_dict()``, and `state` must be None.
        """
        if state is not None:
            raise ValueError(
                f"a TokenStream has no data position to restore (its batches are a pure function of the step), got "
                f"state={state!r}; was the checkpoint written while training on another data set (e.g. TokenShards)? "
                "Resume with that data set, or start from scratch")
        sampler = StepSampler(len(self), batch_size, grad_accum_steps, world_size, rank, seed, stream, start_step)
        return (self.get_batch(starts) for starts in sampler)


class CharVocab:
    """A character-level vocabulary: every distinct character of a text gets an id, in sorted order."""

    def __init__(self, chars: Sequence[str]):
        chars = list(chars)
        if not chars or any(not isinstance(c, str) or len(c) != 1 for c in chars) or len(set(chars)) != len(chars):
            raise ValueError("CharVocab needs a non-empty list of distinct single characters")
        self.itos = chars
        self.stoi = {c: i for i, c in enumerate(chars)}

    @classmethod
    def from_text(cls, text: str) -> "CharVocab":
        """The vocabulary of all characters that occur in `text`."""
        if not isinstance(text, str) or not text:
            raise ValueError("CharVocab.from_text needs a non-empty string")
        return cls(sorted(set(text)))

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        """Text -> list of ids; an unseen character raises a KeyError naming it."""
        try:
            return [self.stoi[c] for c in text]
        except KeyError as e:
            raise KeyError(f"character {e.args[0]!r} is not in this vocabulary of {len(self)} characters") from None

    def decode(self, ids) -> str:
        """Ids (list or tensor) -> text."""
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        return "".join(self.itos[i] for i in ids)

    def save(self, path: str | os.PathLike) -> None:
        """Write the characters as a JSON list, atomically."""
        with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.itos, f, ensure_ascii=False)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "CharVocab":
        """Read a vocabulary written by `save`."""
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no vocabulary file at {os.fspath(path)!r}")
        with open(path, encoding="utf-8") as f:
            return cls(json.load(f))


class CharDataset(TokenStream):
    """
    A text as a stream of character ids (the original minGPT's chargpt data set).
    ``dataset[i]`` is the (x, y) window starting at character i; `vocab` turns ids back into text.
    """

    def __init__(self, text: str, block_size: int, vocab: CharVocab | None = None):
        if not isinstance(text, str):
            raise TypeError(f"CharDataset expects the text as a str, got {type(text).__name__}")
        self.vocab = vocab if vocab is not None else CharVocab.from_text(text)
        super().__init__(np.array(self.vocab.encode(text), dtype=np.int64), block_size)

    def get_vocab_size(self) -> int:
        return len(self.vocab)

    def get_block_size(self) -> int:
        return self.block_size


TINY_SHAKESPEARE = DataFile(
    "tinyshakespeare/input.txt",
    "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
    "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
)


def tiny_shakespeare(path: str | os.PathLike | None = None, url: str | None = None) -> str:
    """
    Tiny Shakespeare (1.1 M characters): from `path` if given, else found by `find_data` (MINGPT_DATA_DIR or
    the cache, downloaded once from `url`, default the char-rnn original; a mirror must serve identical bytes).
    """
    if path is not None:
        return read_text(path)
    source = TINY_SHAKESPEARE if url is None else DataFile(TINY_SHAKESPEARE.name, url, TINY_SHAKESPEARE.sha256)
    return read_text(find_data([source], "Tiny Shakespeare")[0])


def split_train_val(sequence, val_fraction: float, block_size: int):
    """
    (train, val): the first (1 - val_fraction) of a text or token sequence, and the rest.

    The validation set is the tail, not a random sample: neighbouring windows overlap, so windows drawn at random
    for validation would share most of their characters with training windows. Both parts must hold more than
    `block_size` items, enough for one (x, y) window.
    """
    if not isinstance(val_fraction, float) or not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be a float in (0, 1), got {val_fraction!r}")
    n_val = int(len(sequence) * val_fraction)
    if min(n_val, len(sequence) - n_val) <= block_size:
        unit = "characters" if isinstance(sequence, str) else "tokens"
        raise ValueError(f"the data is too short ({len(sequence)} {unit}) for val_fraction={val_fraction}: both "
                         f"splits need more than block_size={block_size} {unit}; use a longer text or a smaller "
                         f"block_size")
    return sequence[:-n_val], sequence[-n_val:]
