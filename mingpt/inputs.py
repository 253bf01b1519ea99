"""
What a GPT reads: a (B, T) tensor of token ids, and which of those positions may look at which.

The one idea: a causal language model sees its input through two rules. Every id must be a row of the embedding
table (``check_token_ids`` says so in words before torch fails deep inside ``nn.Embedding``), and position t may
attend only to positions <= t (``causal_mask``). The model (model.py) and the decode loop (generation.py) both
need these two rules, so they live here, below both: generation can build its masks for padded batches without
importing the model.
"""

from __future__ import annotations

import torch

__all__ = ["check_token_ids", "check_targets", "causal_mask"]


def check_token_ids(idx, name: str, vocab_size: int, device: torch.device | None = None) -> None:
    """Raise a clear error unless idx is a non-empty (B, T) integer tensor of ids in [0, vocab_size) (on `device`,
    the model's, when given: otherwise torch fails deep inside the embedding)."""
    if not isinstance(idx, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of token ids, got {type(idx).__name__}")
    if device is not None and idx.device != device:
        raise ValueError(f"{name} is on {idx.device} but the model is on {device}; move it there first, e.g. "
                         f"idx.to({str(device)!r})")
    if idx.dtype.is_floating_point or idx.dtype.is_complex or idx.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer token ids, got dtype {idx.dtype}; use .long()")
    if idx.dim() != 2:
        # A single prompt without its batch dimension is the usual slip: the one place that says how to fix it.
        hint = ": add a batch dimension with idx[None] (or idx.unsqueeze(0))" if idx.dim() == 1 else ""
        raise ValueError(f"{name} must have shape (B, T), got {tuple(idx.shape)}{hint}")
    if idx.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(idx.shape)}); give at least one token")
    low, high = int(idx.min()), int(idx.max())
    if low < 0 or high >= vocab_size:
        bad = low if low < 0 else high
        raise ValueError(f"{name} contains token id {bad}, outside [0, {vocab_size}) for this model's vocab_size")


def check_targets(targets, idx: torch.Tensor, vocab_size: int, ignore_index: int) -> None:
    """Raise a clear error unless targets is an integer tensor shaped like idx, on idx's device, holding ids in
    [0, vocab_size) or `ignore_index` (otherwise torch fails inside cross_entropy with "Target -100 is out of
    bounds" or a dtype error, and says nothing about what a target is)."""
    if not isinstance(targets, torch.Tensor) or targets.shape != idx.shape:
        got = tuple(targets.shape) if isinstance(targets, torch.Tensor) else type(targets).__name__
        raise ValueError(f"targets must be a tensor of the same shape as idx {tuple(idx.shape)}, got {got}")
    if targets.dtype.is_floating_point or targets.dtype.is_complex or targets.dtype == torch.bool:
        raise TypeError(f"targets must hold integer token ids (the next token at each position), got dtype "
                        f"{targets.dtype}; use .long()")
    if targets.device != idx.device:
        raise ValueError(f"targets is on {targets.device} but idx is on {idx.device}; move both to the model's device")
    if torch.compiler.is_compiling():  # the value checks below need the values: a sync and a graph break
        return
    valid = (targets == ignore_index) | ((targets >= 0) & (targets < vocab_size))
    if not bool(valid.all()):
        bad = int(targets[~valid][0])
        if bad == -100:  # the usual slip of anyone coming from transformers or PyTorch's default
            raise ValueError(f"targets contains -100, the ignore index of transformers and of PyTorch's "
                             f"cross_entropy; mingpt's is {ignore_index}: use targets[targets == -100] = "
                             f"{ignore_index}")
        raise ValueError(f"targets contains {bad}, outside [0, {vocab_size}) for this model's vocab_size and not "
                         f"the ignore index {ignore_index} (positions without a loss)")


def causal_mask(T_q: int, T_kv: int, device) -> torch.Tensor:
    """
    Boolean (T_q, T_kv) mask, True where allowed. The queries are the *last* T_q of the T_kv positions: with a KV
    cache, T_kv - T_q earlier positions are already stored, and query i sits at position T_kv - T_q + i.
    """
    return torch.ones(T_q, T_kv, dtype=torch.bool, device=device).tril(diagonal=T_kv - T_q)
