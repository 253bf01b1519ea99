"""
Token shards: a corpus tokenized once into many files of uint16 token ids, and a data set that reads them.

The one idea: a big corpus is tokenized once into shards (files of ~1e8 token ids each, the layout of the
"reproduce GPT-2" code and its C/CUDA port), and training only ever *memory-maps* them: the OS pages in the few
kilobytes a batch touches, so 10B tokens (20 GB) cost no RAM and start instantly.

A shard is a 1024-byte header of 256 little-endian int32 followed by the tokens as little-endian uint16:

    header[0] = 20240520 (magic)   header[1] = 1 (version: uint16 tokens)   header[2] = number of tokens

so a file that was cut short, or written with another dtype, is caught from its size before training reads
garbage. GPT-2's 50,257 ids fit in uint16 (< 65,536): half the disk of int32. A directory of shards carries a
``manifest.json`` (token counts, sha256 per shard, tokenizer, source); by convention shard 0 is validation.

`TokenShards` is the data set. Each shard is cut into non-overlapping windows of ``block_size + 1`` tokens
(x = window[:-1], y = window[1:]); windows never cross a shard boundary (a shard ends mid-document anyway). The
windows are visited in one long sequence, *position* 0, 1, 2, ...: in file order (``order='sequential'``, one
sweep after another) or in a fresh seeded permutation per epoch (``order='random'``). A training step takes the
next ``batch_size * grad_accum_steps * world_size`` positions; micro-step m of rank r takes slice
``m * world_size + r`` of them, so ranks read disjoint windows and 2 processes x 2 micro-steps read exactly what
1 process x 4 reads. The iterator's state is that one integer position: the Trainer stores it in the checkpoint,
and a resumed run continues at the exact window, even with another batch size.
"""

from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Iterator
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from mingpt.atomic import atomic_path
from mingpt.io.download import sha256_file
from mingpt.utils import check_int

__all__ = ["SHARD_MAGIC", "SHARD_VERSION", "HEADER_BYTES", "write_shard", "read_shard", "shard_name",
           "read_manifest", "write_manifest", "TokenShards", "ShardBatches", "ORDERS"]

SHARD_MAGIC = 20240520
SHARD_VERSION = 1  # version 1: uint16 tokens (the C/CUDA port's version 2 holds uint32 tokens for larger vocabs)
HEADER_INTS = 256
HEADER_BYTES = HEADER_INTS * 4
TOKEN_DTYPE = np.dtype("<u2")
MANIFEST = "manifest.json"
ORDERS = ("random", "sequential")


# ---------------------------------------------------------------------------------------------- one shard
def shard_name(index: int, prefix: str = "shard") -> str:
    """'shard_000000.bin': zero-padded, so a sorted directory listing is the shard order."""
    return f"{prefix}_{index:06d}.bin"


def write_shard(path: str | os.PathLike, tokens: np.ndarray) -> None:
    """Write `tokens` (1-D ints in [0, 65535]) as one shard, atomically: a killed writer leaves no partial file."""
    tokens = np.asarray(tokens)
    if tokens.ndim != 1 or not np.issubdtype(tokens.dtype, np.integer):
        raise ValueError(f"a shard holds a 1-D array of integer token ids, got shape {tokens.shape} {tokens.dtype}")
    if tokens.size and (int(tokens.min()) < 0 or int(tokens.max()) > np.iinfo(TOKEN_DTYPE).max):
        bad = int(tokens.max()) if int(tokens.max()) > 65535 else int(tokens.min())
        raise ValueError(f"token id {bad} does not fit in uint16 [0, 65535]: shards store GPT-2-sized vocabularies "
                         "(<= 65,536 ids); a larger vocabulary needs a wider token type")
    header = np.zeros(HEADER_INTS, dtype="<i4")
    header[:3] = SHARD_MAGIC, SHARD_VERSION, tokens.size
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(header.tobytes())
        f.write(tokens.astype(TOKEN_DTYPE).tobytes())


def read_shard(path: str | os.PathLike) -> np.memmap:
    """Memory-map a shard's tokens (read-only uint16), after checking its header against its size."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no token shard at {path!r}; write shards with projects/gpt2/prepare.py")
    size = os.path.getsize(path)
    if size < HEADER_BYTES:
        raise ValueError(f"{path!r} is {size} bytes, shorter than the {HEADER_BYTES}-byte shard header: "
                         "not a token shard (or cut short)")
    header = np.fromfile(path, dtype="<i4", count=HEADER_INTS)
    if header[0] != SHARD_MAGIC:
        raise ValueError(f"{path!r} starts with {int(header[0])}, not the shard magic number {SHARD_MAGIC}: "
                         "not a token shard (a raw .bin of tokens is read by mingpt.data.TokenStream instead)")
    if header[1] != SHARD_VERSION:
        raise ValueError(f"{path!r} is shard version {int(header[1])}; this reader handles version {SHARD_VERSION} "
                         "(uint16 tokens). Version 2 holds uint32 tokens, for vocabularies larger than 65,536")
    n = int(header[2])
    expected = HEADER_BYTES + n * TOKEN_DTYPE.itemsize
    if size != expected:
        raise ValueError(f"{path!r} is {size} bytes but its header promises {n:,} uint16 tokens ({expected} bytes): "
                         "the file was cut short or written with another dtype; prepare it again")
    return np.memmap(path, dtype=TOKEN_DTYPE, mode="r", offset=HEADER_BYTES, shape=(n,))


# ---------------------------------------------------------------------------------------------- manifest
def write_manifest(directory: str | os.PathLike, manifest: dict) -> None:
    """Write directory/manifest.json atomically (the preparation's progress record and the data set's index)."""
    with atomic_path(pathlib.Path(directory) / MANIFEST) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1)


def read_manifest(directory: str | os.PathLike) -> dict:
    """The manifest of a shard directory: {'shards': [{'file', 'split', 'tokens', 'sha256'}, ...], ...}."""
    path = pathlib.Path(directory) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"no {MANIFEST} in {os.fspath(directory)!r}; prepare the shards with "
                                "projects/gpt2/prepare.py (it writes the manifest last)")
    with open(path, encoding="utf-8") as f:
        manifest = json.load(f)
    if not isinstance(manifest.get("shards"), list):
        raise ValueError(f"{path} has no 'shards' list; is it a mingpt token-shard manifest?")
    return manifest


def verify_shards(directory: str | os.PathLike) -> None:
    """Recompute every shard's sha256 and compare it with the manifest; raise ValueError naming a mismatch."""
    for entry in read_manifest(directory)["shards"]:
        path = pathlib.Path(directory) / entry["file"]
        digest = sha256_file(path)
        if digest != entry["sha256"]:
            raise ValueError(f"{path} has sha256 {digest}, the manifest says {entry['sha256']}: the shard changed "
                             "after preparation; prepare it again")


# ---------------------------------------------------------------------------------------------- the data set
class TokenShards(Dataset):
    """
    The non-overlapping (x, y) windows of a list of shards. ``TokenShards.from_directory(dir, 'train', 1024)``
    reads a prepared directory (split 'val' is shard 0, 'train' the rest; 'all' every shard).
    It is a map-style Dataset (``len``, ``ds[i]``), and `batch_iterator` is the fast, resumable path the Trainer
    uses: whole batches, disjoint per rank, with a position that goes into the checkpoint.
    """

    def __init__(self, paths: Sequence[str | os.PathLike], block_size: int, order: str = "random"):
        check_int(block_size, "block_size", 1)
        if order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
        paths = [os.fspath(p) for p in paths]
        if not paths:
            raise ValueError("TokenShards needs at least one shard path")
        self.paths, self.block_size, self.order = paths, block_size, order
        self.shards = [read_shard(p) for p in paths]
        # Shard k holds (len_k - 1) // T windows: window j is tokens[j*T : j*T + T + 1] (x and y share T tokens).
        counts = np.array([max(0, (len(s) - 1) // block_size) for s in self.shards], dtype=np.int64)
        if counts.sum() == 0:
            longest = max(len(s) for s in self.shards)
            raise ValueError(f"the shards are too short for block_size={block_size}: the longest holds {longest} "
                             f"tokens and one window needs {block_size + 1}; use a smaller block_size or more data")
        self.first_window = np.concatenate([[0], np.cumsum(counts)])  # (n_shards + 1,) window id of each shard start
        self._permutations: dict[tuple, np.ndarray] = {}

    @classmethod
    def from_directory(cls, directory: str | os.PathLike, split: str, block_size: int,
                       order: str = "random") -> "TokenShards":
        entries = read_manifest(directory)["shards"]
        if split not in ("train", "val", "all"):
            raise ValueError(f"split must be 'train', 'val' or 'all', got {split!r}")
        chosen = [e for e in entries if split == "all" or e["split"] == split]
        if not chosen:
            raise ValueError(f"{os.fspath(directory)!r} has no {split!r} shards (it has {len(entries)} in all); "
                             "prepare more data, or make shards smaller so that there are at least two")
        return cls([pathlib.Path(directory) / e["file"] for e in chosen], block_size, order)

    @property
    def num_tokens(self) -> int:
        return int(sum(len(s) for s in self.shards))

    def __len__(self) -> int:
        return int(self.first_window[-1])

    def _window(self, i: int) -> np.ndarray:
        k = int(np.searchsorted(self.first_window, i, side="right")) - 1  # the shard holding window i
        start = (i - int(self.first_window[k])) * self.block_size
        return self.shards[k][start : start + self.block_size + 1]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= i < len(self):
            raise IndexError(f"window {i} out of range for {len(self)} windows")
        chunk = torch.from_numpy(self._window(int(i)).astype(np.int64))
        return chunk[:-1], chunk[1:]

    def get_windows(self, ids: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Stack the windows with these ids into x, y of shape (B, T), int64."""
        chunk = torch.from_numpy(np.stack([self._window(int(i)) for i in ids]).astype(np.int64))  # (B, T+1)
        return chunk[:, :-1].contiguous(), chunk[:, 1:].contiguous()

    def window_ids(self, positions: np.ndarray, seed: int, stream: int) -> np.ndarray:
        """Which window sits at each position of the endless visiting sequence (see the module docstring)."""
        n = len(self)
        epochs, offsets = np.divmod(np.asarray(positions, dtype=np.int64), n)
        if self.order == "sequential":
            return offsets
        ids = np.empty_like(offsets)
        for epoch in np.unique(epochs):
            ids[epochs == epoch] = self._permutation(seed, stream, int(epoch))[offsets[epochs == epoch]]
        return ids

    def _permutation(self, seed: int, stream: int, epoch: int) -> np.ndarray:
        key = (seed, stream, epoch)
        if key not in self._permutations:
            if len(self._permutations) >= 2:  # a batch spans at most two epochs when it is smaller than one
                self._permutations.pop(next(iter(self._permutations)))
            self._permutations[key] = np.random.default_rng([seed, stream, epoch]).permutation(len(self))
        return self._permutations[key]

    def batch_iterator(self, batch_size: int, grad_accum_steps: int = 1, world_size: int = 1, rank: int = 0,
                       seed: int = 0, stream: int = 0, start_step: int = 0, state: dict | None = None
                       ) -> "ShardBatches":
        """The Trainer's protocol: an endless iterator of (x, y) micro-batches with ``state_dict()``. It starts
        at `state` (a previous iterator's state_dict) if given, else at step `start_step` of this batch shape."""
        return ShardBatches(self, batch_size, grad_accum_steps, world_size, rank, seed, stream, start_step, state)


class ShardBatches(Iterator):
    """Micro-batches of one process, step after step; ``state_dict()`` is the position of the next full step."""

    def __init__(self, dataset: TokenShards, batch_size: int, grad_accum_steps: int, world_size: int, rank: int,
                 seed: int, stream: int, start_step: int, state: dict | None):
        for value, name in ((batch_size, "batch_size"), (grad_accum_steps, "grad_accum_steps"),
                            (world_size, "world_size")):
            check_int(value, name, 1)
        check_int(rank, "rank", 0, world_size - 1, hint=" (one of the world_size processes)")
        self.dataset, self.batch_size, self.accum = dataset, batch_size, grad_accum_steps
        self.world_size, self.rank, self.seed, self.stream = world_size, rank, seed, stream
        self.step_size = batch_size * grad_accum_steps * world_size  # windows per optimizer step, all ranks
        self.micro, self.position = 0, start_step * self.step_size
        if state is not None:
            self._check_state(state)
            self.position = int(state["position"])

    def _check_state(self, state: dict) -> None:
        mine = self.state_dict()
        for key in ("windows", "order", "seed", "block_size"):
            if state.get(key) != mine[key]:
                raise ValueError(f"cannot resume the data position: the checkpoint's data has {key}={state.get(key)!r}"
                                 f" but this data set has {key}={mine[key]!r}; resume with the same shards and "
                                 "settings, or start from the step instead (drop the data state)")

    def state_dict(self) -> dict:
        """Plain data: the position of the first window of the next (unfinished) step, and what it indexes."""
        return {"position": self.position, "windows": len(self.dataset), "order": self.dataset.order,
                "seed": self.seed, "block_size": self.dataset.block_size}

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        lo = self.position + (self.micro * self.world_size + self.rank) * self.batch_size
        ids = self.dataset.window_ids(np.arange(lo, lo + self.batch_size), self.seed, self.stream)
        self.micro += 1
        if self.micro == self.accum:  # the step is complete: only now does the saved position move
            self.micro, self.position = 0, self.position + self.step_size
        return self.dataset.get_windows(ids)
