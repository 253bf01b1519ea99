"""
Text generation: choosing the next token (greedy, temperature, top-k, top-p) and the KV-cache decode loop.

The one idea: a GPT predicts one token at a time, and each step only *adds* one position. Without a cache every
step re-runs the whole sequence; with a KV cache each layer keeps the keys and values it computed for earlier
positions, so a step costs one position instead of T. The outputs are the same either way.

One subtlety: GPT-2 has *learned absolute positions* and a maximum context (block_size). Once a sequence is
longer than that, the model sees a sliding window of the last block_size tokens, and sliding the window changes
the position of every token in it, so nothing cached stays valid. From then on the cached loop refills its cache
from the window each step: slower, but exactly what the uncached model computes.

Stop tokens and padding: a row that produces an eos_token_id is finished, but the batch is a rectangle, so a finished
row still needs a token at every later step. It gets ``pad_token_id``, as in transformers' ``generate``; when no
pad_token_id is given (GPT-2 has none) it gets its first eos id, which is also what transformers falls back to.
"""

from __future__ import annotations

import logging
import math
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)


class KVCache:
    """Keys and values of every layer for the positions seen so far, in buffers preallocated to max_length."""

    def __init__(self, n_layer: int, max_length: int):
        self.max_length = max_length
        self.length = 0  # how many positions are stored
        self.keys: list[torch.Tensor | None] = [None] * n_layer
        self.values: list[torch.Tensor | None] = [None] * n_layer

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store k, v (B, nh, T, hs) after the cached positions; return all keys and values so far."""
        B, nh, T, hs = k.shape
        if self.keys[layer] is None:  # allocate lazily, so the buffers match the activations' dtype and device
            shape = (B, nh, self.max_length, hs)
            self.keys[layer] = torch.empty(shape, dtype=k.dtype, device=k.device)
            self.values[layer] = torch.empty(shape, dtype=v.dtype, device=v.device)
        end = self.length + T
        self.keys[layer][:, :, self.length : end] = k
        self.values[layer][:, :, self.length : end] = v
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]

    def advance(self, T: int) -> None:
        """Called by the model after all layers have stored T new positions."""
        self.length += T

    def reset(self) -> None:
        self.length = 0


def filter_logits(logits: torch.Tensor, top_k: int | None = None, top_p: float | None = None) -> torch.Tensor:
    """
    Set to -inf the logits of tokens that may not be sampled. logits: (B, V).
    top_k keeps the k most likely tokens; top_p ("nucleus") keeps the smallest set whose probability reaches p.
    """
    if top_k is not None and top_k < logits.size(-1):
        kth_largest = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth_largest, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, sorted_idx = torch.sort(logits, dim=-1, descending=True)
        cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        # Drop a token if the tokens ranked above it already reach top_p; the most likely token always stays.
        drop_sorted = (cumulative - sorted_logits.softmax(dim=-1)) >= top_p
        drop = drop_sorted.scatter(-1, sorted_idx, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def next_token(
    logits: torch.Tensor,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Pick one token per row from logits (B, V): the argmax, or a sample from the filtered distribution."""
    if not do_sample:
        return logits.argmax(dim=-1)
    # Temperature < 1 sharpens the distribution (more conservative), > 1 flattens it (more surprising).
    logits = filter_logits(logits.float() / temperature, top_k, top_p)
    probs = F.softmax(logits, dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(-1)


def _check_arguments(model, idx, max_new_tokens, do_sample, temperature, top_k, top_p, eos_token_id, generator,
                     pad_token_id):
    from mingpt.model import check_token_ids

    if isinstance(idx, torch.Tensor) and idx.dim() == 1:
        raise ValueError(f"idx (the prompt) must have shape (B, T), got {tuple(idx.shape)}: add a batch dimension "
                         f"with idx[None] (or idx.unsqueeze(0))")
    check_token_ids(idx, "idx (the prompt)", model.config.vocab_size, device=model.transformer.wte.weight.device)
    if not isinstance(max_new_tokens, int) or isinstance(max_new_tokens, bool) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be an int >= 0, got {max_new_tokens!r}")
    valid_temperature = isinstance(temperature, (int, float)) and not isinstance(temperature, bool)
    if do_sample and not (valid_temperature and 0 < temperature < math.inf):
        # inf would flatten every distribution to uniform noise; nan would poison the softmax
        raise ValueError(f"temperature must be > 0 and finite when sampling, got {temperature!r}; "
                         f"use do_sample=False for greedy")
    if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1):
        raise ValueError(f"top_k must be an int >= 1 (or None), got {top_k!r}")
    if top_p is not None and not (isinstance(top_p, (int, float)) and 0 < top_p <= 1):
        raise ValueError(f"top_p must be in (0, 1], got {top_p!r}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    stop = [] if eos_token_id is None else [eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id)
    for token in stop:
        if not isinstance(token, int) or not 0 <= token < model.config.vocab_size:
            raise ValueError(f"eos_token_id must be token ids in [0, {model.config.vocab_size}), got {eos_token_id!r}")
    if pad_token_id is not None:
        if not isinstance(pad_token_id, int) or isinstance(pad_token_id, bool):
            raise TypeError(f"pad_token_id must be an int token id (or None), got {type(pad_token_id).__name__}")
        if not 0 <= pad_token_id < model.config.vocab_size:
            raise ValueError(f"pad_token_id must be a token id in [0, {model.config.vocab_size}), got {pad_token_id}")
    return stop


def generate_stream(
    model,
    idx: torch.Tensor,
    max_new_tokens: int,
    temperature: float = 1.0,
    do_sample: bool = False,
    top_k: int | None = None,
    top_p: float | None = None,
    eos_token_id: int | Sequence[int] | None = None,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
    pad_token_id: int | None = None,
) -> Iterator[torch.Tensor]:
    """
    Yield the next token of every row, (B,), one step at a time.

    A row that has produced an eos_token_id is finished: from then on it yields pad_token_id (default: the first
    eos id), and the stream ends once every row is finished. Without eos_token_id, pad_token_id is never used.
    Dropout is switched off while generating (and restored after).
    Pass a seeded ``torch.Generator`` for sampling that repeats exactly.
    """
    # Check the arguments now, not at the first next(): a bad argument should fail where it was written.
    stop = _check_arguments(model, idx, max_new_tokens, do_sample, temperature, top_k, top_p, eos_token_id, generator,
                            pad_token_id)
    if idx.size(1) > model.config.block_size:  # said once per call, not at every step
        logger.warning("the prompt has %d tokens but the model sees at most block_size=%d: only its last %d are used",
                       idx.size(1), model.config.block_size, model.config.block_size)
    sampling = dict(do_sample=do_sample, temperature=temperature, top_k=top_k, top_p=top_p, generator=generator)
    pad = pad_token_id if pad_token_id is not None else stop[0] if stop else None
    return _decode_loop(model, idx, max_new_tokens, stop, pad, sampling, use_cache)


def _decode_loop(model, idx, max_new_tokens, stop, pad, sampling, use_cache):
    block_size = model.config.block_size
    stop_ids = torch.tensor(stop, dtype=torch.long, device=idx.device)
    finished = torch.zeros(idx.size(0), dtype=torch.bool, device=idx.device)
    cache = KVCache(model.config.n_layer, block_size) if use_cache else None
    was_training = model.training
    model.eval()
    try:
        seq = idx
        for step in range(max_new_tokens):
            # inference_mode is no_grad without autograd's per-tensor bookkeeping (version counters, view
            # tracking): about 2 % faster per decoded token on gpt2. Tensors made inside it are "inference tensors",
            # so the token is cloned outside before it reaches the caller, who may want to train on it.
            with torch.inference_mode():
                if cache is None:
                    logits = model.logits(seq[:, -block_size:], last_only=True)
                elif step == 0 or seq.size(1) > block_size:
                    cache.reset()  # first step, or the window slid: (re)fill the cache from the visible window
                    logits = model.logits(seq[:, -block_size:], cache, last_only=True)
                else:
                    logits = model.logits(seq[:, -1:], cache, last_only=True)  # one new position
                token = next_token(logits[:, -1, :], **sampling)
                if stop:
                    token = torch.where(finished, pad, token)  # finished rows only pad
                    finished = finished | torch.isin(token, stop_ids)
                seq = torch.cat([seq, token[:, None]], dim=1)
            token = token.clone()  # an ordinary tensor again
            yield token
            if stop and bool(finished.all()):
                break
    finally:
        model.train(was_training)


def generate(model, idx: torch.Tensor, max_new_tokens: int, **kwargs) -> torch.Tensor:
    """
    Continue each row of idx (B, T) by up to max_new_tokens tokens and return (B, T + new).

    Keyword arguments as in `generate_stream`: temperature, do_sample, top_k, top_p, eos_token_id, generator,
    use_cache, pad_token_id. Fewer than max_new_tokens are added only when every row hit an eos_token_id.
    """
    tokens = list(generate_stream(model, idx, max_new_tokens, **kwargs))
    if not tokens:
        return idx
    return torch.cat([idx, torch.stack(tokens, dim=1)], dim=1)
