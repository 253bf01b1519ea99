"""
HellaSwag, completion style: which of four endings does the language model find most likely after the context?

The one idea: a base model is never asked a question. Each example is a context ("A man is sitting on a roof.
he") and four endings; the model scores ``context + " " + ending`` for each, and the ending whose tokens get the
lowest loss is its answer. Two scorings, as in the reference evaluations:

    acc       the lowest *sum* of the ending's token losses  (favours short endings)
    acc_norm  the lowest *mean* loss per ending token        (length-normalised)

Published numbers for OpenAI's GPT-2 124M on the 10,042 validation examples: acc_norm 0.2955 with this scoring
(the "reproduce GPT-2" lecture code), about 0.311 with the Eleuther harness (which normalises by characters).
Random guessing gives 0.25.

The data are the official validation jsonl from the HellaSwag authors' repository, downloaded once into the mingpt
cache and verified against the content hash git records for that file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pathlib
from typing import Callable, Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F

from mingpt.io.download import ChecksumError, cached_download
from mingpt.io.hub import git_blob_sha1
from mingpt.training.evaluation import PeriodicEvaluation
from mingpt.training.precision import autocast
from mingpt.utils import eval_mode

__all__ = ["HELLASWAG_URL", "HELLASWAG_GIT_BLOB", "git_blob_sha1", "fetch_hellaswag", "load_examples",
           "render_example", "score_endings", "evaluate_hellaswag", "HellaSwag"]

logger = logging.getLogger(__name__)

# The file has not changed since the commit that added it (6774d74, May 2019). Its pin is git's own content hash
# (the blob id in `git ls-tree` of rowanz/hellaswag), checked after every download: sha1 of "blob <size>\0" + bytes.
HELLASWAG_URL = "https://raw.githubusercontent.com/rowanz/hellaswag/master/data/hellaswag_val.jsonl"
HELLASWAG_GIT_BLOB = "0f5ee25d72216f12317d5d8a7b92deafa423d81e"
N_ENDINGS = 4


def fetch_hellaswag(url: str = HELLASWAG_URL, git_blob: str | None = HELLASWAG_GIT_BLOB) -> pathlib.Path:
    """The validation jsonl in the mingpt cache (downloaded on first use), verified against `git_blob`."""
    # One cache folder per URL, so a mirror's file and the official one never stand in for each other.
    folder = hashlib.sha256(url.encode()).hexdigest()[:16]
    path = cached_download(url, f"hellaswag/{folder}/{url.rsplit('/', 1)[-1] or 'hellaswag.jsonl'}")
    if git_blob is not None:
        actual = git_blob_sha1(path)
        if actual != git_blob:
            os.remove(path)  # never keep a file that is not the pinned one
            raise ChecksumError(f"{url} downloaded with git blob id {actual}, expected {git_blob}: not the official "
                                "HellaSwag validation file, so it was removed from the cache. Download it by hand "
                                "and pass its path (--jsonl) if you trust it.")
    return path


def load_examples(path: str | os.PathLike, limit: int | None = None) -> list[dict]:
    """The examples of a HellaSwag jsonl file ({'ctx', 'endings': [4 str], 'label': int, ...} per line)."""
    examples = []
    with open(path, encoding="utf-8") as f:
        for line_number, line in enumerate(f, 1):
            if not line.strip():
                continue
            example = json.loads(line)
            endings, label = example.get("endings"), example.get("label")
            if (not isinstance(example.get("ctx"), str) or not isinstance(endings, list) or len(endings) != N_ENDINGS
                    or not all(isinstance(e, str) and e for e in endings)
                    or not isinstance(label, int) or not 0 <= label < N_ENDINGS):
                raise ValueError(f"{os.fspath(path)}:{line_number} is not a HellaSwag example: it needs 'ctx' (str), "
                                 f"'endings' (4 non-empty str) and 'label' (0-3)")
            examples.append(example)
            if limit is not None and len(examples) == limit:
                break
    if not examples:
        raise ValueError(f"{os.fspath(path)} holds no HellaSwag examples")
    return examples


def render_example(example: dict, encode: Callable[[str], list[int]], block_size: int | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor, int]:
    """
    (tokens, mask, label): 4 rows of context + " " + ending, right-padded with 0 to one length (N, T), and a mask
    that is 1 on the ending's tokens. A context too long for block_size loses its oldest tokens.
    """
    context = encode(example["ctx"])
    rows, masks = [], []
    for ending in example["endings"]:
        ending_ids = encode(" " + ending)  # the space belongs to the ending's first token, as GPT-2 saw it in text
        ids = context + ending_ids
        if block_size is not None and len(ids) > block_size:
            if len(ending_ids) >= block_size:
                raise ValueError(f"an ending of {len(ending_ids)} tokens does not fit block_size={block_size}")
            ids = ids[-block_size:]
        rows.append(ids)
        masks.append([0] * (len(ids) - len(ending_ids)) + [1] * len(ending_ids))
    width = max(len(r) for r in rows)
    tokens = torch.zeros(N_ENDINGS, width, dtype=torch.long)
    mask = torch.zeros(N_ENDINGS, width, dtype=torch.long)
    for i, (ids, m) in enumerate(zip(rows, masks)):
        tokens[i, : len(ids)], mask[i, : len(m)] = torch.tensor(ids), torch.tensor(m)
    return tokens, mask, example["label"]


@torch.no_grad()
def score_endings(model: torch.nn.Module, tokens: torch.Tensor,
                  mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum, mean) of each row's ending-token losses, each (N,). model(tokens) gives logits or (logits, loss)."""
    out = model(tokens)
    logits = (out[0] if isinstance(out, (tuple, list)) else out).float()  # (N, T, V)
    # Position t predicts token t+1: drop the last logit and the first token.
    losses = F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), tokens[:, 1:].reshape(-1),
                             reduction="none").view(tokens.size(0), -1)  # (N, T-1)
    target_mask = mask[:, 1:].to(losses.dtype)  # the losses of predicting the ending's tokens
    total = (losses * target_mask).sum(dim=1)
    return total, total / target_mask.sum(dim=1)


def evaluate_hellaswag(model: torch.nn.Module, examples: Sequence[dict], encode: Callable[[str], list[int]],
                       device: str | torch.device | None = None, autocast_dtype: torch.dtype | None = None,
                       rank: int = 0, world_size: int = 1) -> dict:
    """
    Accuracy by summed loss (acc) and by mean loss (acc_norm); under DDP each process scores every world_size-th
    example and the counts are all-reduced. Returns {'acc', 'acc_norm', 'correct', 'correct_norm', 'n'}.
    """
    if not examples:
        raise ValueError("evaluate_hellaswag needs at least one example (see load_examples)")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    block_size = getattr(getattr(model, "config", None), "block_size", None)
    counts = torch.zeros(3, dtype=torch.long, device=device)  # correct (sum), correct (mean), examples
    with eval_mode(model):  # dropout off; the caller's training mode comes back afterwards, even on errors
        for example in examples[rank::world_size]:
            tokens, mask, label = render_example(example, encode, block_size)
            tokens, mask = tokens.to(device), mask.to(device)
            with autocast(device.type, autocast_dtype):
                total, mean = score_endings(model, tokens, mask)
            counts += torch.tensor([int(total.argmin() == label), int(mean.argmin() == label), 1], device=device)
    if world_size > 1 and dist.is_available() and dist.is_initialized():
        dist.all_reduce(counts)
    correct, correct_norm, n = (int(c) for c in counts.tolist())
    return {"acc": correct / n, "acc_norm": correct_norm / n, "correct": correct, "correct_norm": correct_norm, "n": n}


class HellaSwag(PeriodicEvaluation):
    """A Trainer callback: HellaSwag every `interval` steps and when training ends (as the reference run does),
    logged and kept in ``history`` as (step, result dict)."""

    def __init__(self, examples: Sequence[dict], encode: Callable[[str], list[int]], interval: int):
        super().__init__(interval)
        self.examples, self.encode = list(examples), encode

    def measure(self, trainer) -> dict:
        return evaluate_hellaswag(trainer.model, self.examples, self.encode, trainer.device,
                                  trainer.precision.autocast_dtype, trainer.rank, trainer.world_size)

    def describe(self, result: dict) -> str:
        return f"hellaswag acc {result['acc']:.4f} acc_norm {result['acc_norm']:.4f} ({result['n']} examples)"
