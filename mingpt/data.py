"""
Data for language modelling: a token stream you can sample windows from, and a character-level vocabulary.

The one idea: a language-modelling data set is just one long array of token ids. Example ``i`` is the window
``tokens[i : i + block_size + 1]``, split into the input ``x = window[:-1]`` and the target ``y = window[1:]``
(each position predicts the next token). Because every example is a slice of the same array, a whole batch is
one vectorised gather, with no per-item Python and no DataLoader: `TokenStream.get_batch` does exactly that, and
the Trainer uses it whenever the training set is a `TokenStream`.

    >>> stream = TokenStream(np.arange(100, dtype=np.uint16), block_size=8)
    >>> x, y = stream.get_batch(np.array([0, 50]))
    >>> x.shape, y[0, 0].item()
    (torch.Size([2, 8]), 1)

Which examples go into a batch is decided by `StepSampler`: the batch of optimizer step s is a pure function of
(seed, s). Resuming at step k therefore needs no sampler state, and several processes can split one global batch.

Tokens can live in memory (a numpy array or torch tensor) or on disk: a path to a flat binary file of token ids
(``.bin``, uint16 by default, the layout nanoGPT's prepare scripts write) is memory-mapped, so a corpus larger
than RAM costs only the pages a batch touches.
"""

from __future__ import annotations

import json
import os
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from mingpt.atomic import atomic_path

__all__ = ["TokenStream", "StepSampler", "CharVocab", "CharDataset"]


class TokenStream(Dataset):
    """
    Every window of ``block_size + 1`` consecutive tokens of one long 1-D array, as (x, y) pairs.

    tokens: a 1-D integer numpy array or torch tensor, or a path to a binary file of token ids (memory-mapped).
    dtype: the integer type stored in that file (ignored for arrays, which keep their own dtype).
    It is also an ordinary map-style Dataset (``len``, ``stream[i]``), so a DataLoader can read it too.
    """

    def __init__(self, tokens, block_size: int, dtype: np.dtype | str = np.uint16):
        if not isinstance(block_size, int) or isinstance(block_size, bool) or block_size < 1:
            raise ValueError(f"block_size must be a positive int, got {block_size!r}")
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


class StepSampler:
    """
    The example indices of each micro-batch this process trains on, step after step, starting at step `start`.

    Step s draws its *global* batch, ``grad_accum_steps * world_size * batch_size`` indices uniformly with
    replacement from [0, n) (as the original minGPT's RandomSampler did), from a generator seeded with
    (seed, stream, s). Micro-step m of process r takes slice ``m * world_size + r`` of it, so 2 processes x 4
    examples see exactly what 1 process x 8 sees, and step s is the same whether or not the run was resumed.
    stream separates independent sequences (the Trainer uses 0 for training batches, 1 for evaluation).
    With as_list=True it yields lists, as a DataLoader's batch_sampler must; otherwise int64 arrays.
    """

    def __init__(self, n: int, batch_size: int, grad_accum_steps: int = 1, world_size: int = 1, rank: int = 0,
                 seed: int = 0, stream: int = 0, start: int = 0, as_list: bool = False):
        if n < 1 or batch_size < 1 or grad_accum_steps < 1 or not 0 <= rank < world_size:
            raise ValueError(f"bad StepSampler sizes: n={n}, batch_size={batch_size}, "
                             f"grad_accum_steps={grad_accum_steps}, rank={rank}, world_size={world_size}")
        self.n, self.batch_size, self.accum = n, batch_size, grad_accum_steps
        self.world_size, self.rank = world_size, rank
        self.seed, self.stream, self.start, self.as_list = seed, stream, start, as_list

    def __iter__(self):
        step, B = self.start, self.batch_size
        while True:
            rng = np.random.default_rng([self.seed, self.stream, step])  # a fresh, well-mixed generator per step
            global_batch = rng.integers(0, self.n, size=self.accum * self.world_size * B)
            for micro in range(self.accum):
                lo = (micro * self.world_size + self.rank) * B  # micro-step major, then rank: disjoint slices
                part = global_batch[lo : lo + B]
                yield part.tolist() if self.as_list else part
            step += 1


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
