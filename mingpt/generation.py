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

Prompts of different lengths in one batch: as in transformers, they are *left*-padded to one length (see
`left_pad`), so every row's next token is predicted at the same column, and an ``attention_mask`` (B, T) says which
tokens are real (1) and which are padding (0). Two things keep a padded row computing exactly what it computes alone:
no query may look at a padding key (the mask joins the causal mask), and positions count only real tokens (a row
padded by 3 starts at position 0 in column 3, not column 0). Rows that stop early are padded on the right, as above.

Which model: any module with GPT's interface, ``model.forward_logits(idx, kv_cache, last_only=True, attn_mask=...,
position_ids=...)``, ``model.config`` (block_size, n_layer, vocab_size) and ``model.transformer.wte`` (its device).
This file never imports model.py: ``GPT.generate`` (model.py) calls down into it, so imports point one way.

Reduced precision: a model in bfloat16 or float16 (``model.to(torch.bfloat16)``) keeps its KV cache in that dtype,
but the logits are turned into float32 before sampling, so top-k/top-p and seeded sampling work as in float32.
"""

from __future__ import annotations

import logging
import math
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F

from mingpt.inputs import causal_mask, check_token_ids
from mingpt.utils import check_int, eval_mode

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
    check_token_ids(idx, "idx (the prompt)", model.config.vocab_size, device=model.transformer.wte.weight.device)
    check_int(max_new_tokens, "max_new_tokens", low=0)
    valid_temperature = isinstance(temperature, (int, float)) and not isinstance(temperature, bool)
    if do_sample and not (valid_temperature and 0 < temperature < math.inf):
        # inf would flatten every distribution to uniform noise; nan would poison the softmax
        raise ValueError(f"temperature must be > 0 and finite when sampling, got {temperature!r}; "
                         f"use do_sample=False for greedy")
    if top_k is not None:
        check_int(top_k, "top_k", low=1, hint=" (or None)")
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


def left_pad(prompts: Sequence[Sequence[int]], pad_token_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """
    Stack prompts of different lengths into one batch: (idx (B, T), attention_mask (B, T)), padded on the left with
    pad_token_id, attention_mask 1 at real tokens. Pass both to `generate`; the padding never affects the result.
    """
    if isinstance(prompts, torch.Tensor) or not prompts:
        raise ValueError("prompts must be a non-empty list of token id lists (or 1-D tensors)")
    rows = [torch.as_tensor(p, dtype=torch.long) for p in prompts]
    for i, row in enumerate(rows):
        if row.dim() != 1 or row.numel() == 0:
            raise ValueError(f"prompt {i} must be a non-empty 1-D list of token ids, got shape {tuple(row.shape)}")
    T = max(row.numel() for row in rows)
    idx = torch.full((len(rows), T), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros(len(rows), T, dtype=torch.long)
    for i, row in enumerate(rows):
        idx[i, T - row.numel() :] = row
        attention_mask[i, T - row.numel() :] = 1
    return idx, attention_mask


def _check_attention_mask(attention_mask, idx: torch.Tensor) -> torch.Tensor | None:
    """A bool (B, T) mask of real tokens, or None when there is no padding (the fast, unmasked path)."""
    if attention_mask is None:
        return None
    if not isinstance(attention_mask, torch.Tensor) or attention_mask.shape != idx.shape:
        got = tuple(attention_mask.shape) if isinstance(attention_mask, torch.Tensor) else type(attention_mask).__name__
        raise ValueError(f"attention_mask must be a tensor of the same shape as idx {tuple(idx.shape)}, got {got}")
    if not bool(((attention_mask == 0) | (attention_mask == 1)).all()):
        raise ValueError("attention_mask must hold only 0 (padding) and 1 (real token)")
    mask = attention_mask.to(device=idx.device, dtype=torch.bool)
    if not bool((mask[:, 1:] >= mask[:, :-1]).all()) or not bool(mask[:, -1].all()):
        raise ValueError("attention_mask must be left padding (0s, then 1s, each row ending in a real token); "
                         "right-padded prompts would be continued after their padding: use left_pad(prompts)")
    return None if bool(mask.all()) else mask


def padding_inputs(mask: torch.Tensor, T_q: int) -> dict:
    """
    What the model needs for left-padded rows: mask (B, T_kv) is True at the real tokens of all positions a step
    sees, of which the last T_q are this step's queries. Returns attn_mask (B, 1, T_q, T_kv) and position_ids (B, T_q).
    """
    T_kv = mask.size(1)
    positions = mask.long().cumsum(dim=-1) - 1  # each row counts only its own real tokens: (B, T_kv)
    position_ids = positions[:, -T_q:].clamp(min=0)  # padding gets position 0; its outputs are never used
    # A query sees earlier real tokens. A padding query sees itself too: a row of all -inf would give NaN
    # probabilities, and the NaNs would reach real tokens through the padding's cached values (0 * NaN = NaN).
    own = torch.arange(T_kv, device=mask.device) == torch.arange(T_kv - T_q, T_kv, device=mask.device)[:, None]
    attn_mask = (causal_mask(T_q, T_kv, mask.device) & mask[:, None, :]) | own  # (B, T_q, T_kv)
    return dict(attn_mask=attn_mask[:, None], position_ids=position_ids)


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
    attention_mask: torch.Tensor | None = None,
) -> Iterator[torch.Tensor]:
    """
    Yield the next token of every row, (B,), one step at a time.

    A row that has produced an eos_token_id is finished: from then on it yields pad_token_id (default: the first
    eos id), and the stream ends once every row is finished. Without eos_token_id, pad_token_id is never used.
    Dropout is switched off while generating (and restored after).
    Pass a seeded ``torch.Generator`` for sampling that repeats exactly. For prompts of different lengths, pass
    left-padded idx and its attention_mask (B, T), 1 at real tokens (see `left_pad`).
    """
    # Check the arguments now, not at the first next(): a bad argument should fail where it was written.
    stop = _check_arguments(model, idx, max_new_tokens, do_sample, temperature, top_k, top_p, eos_token_id, generator,
                            pad_token_id)
    if idx.size(1) > model.config.block_size:  # said once per call, not at every step
        logger.warning("the prompt has %d tokens but the model sees at most block_size=%d: only its last %d are used",
                       idx.size(1), model.config.block_size, model.config.block_size)
    sampling = dict(do_sample=do_sample, temperature=temperature, top_k=top_k, top_p=top_p, generator=generator)
    pad = pad_token_id if pad_token_id is not None else stop[0] if stop else None
    mask = _check_attention_mask(attention_mask, idx)
    return _decode_loop(model, idx, max_new_tokens, stop, pad, sampling, use_cache, mask)


def _decode_loop(model, idx, max_new_tokens, stop, pad, sampling, use_cache, mask):
    block_size = model.config.block_size
    stop_ids = torch.tensor(stop, dtype=torch.long, device=idx.device)
    finished = torch.zeros(idx.size(0), dtype=torch.bool, device=idx.device)
    cache = KVCache(model.config.n_layer, block_size) if use_cache else None
    with eval_mode(model):  # no dropout while decoding; the caller's mode comes back however the loop ends
        seq = idx
        for step in range(max_new_tokens):
            # inference_mode is no_grad without autograd's per-tensor bookkeeping (version counters, view
            # tracking), so each decoded token costs a little less. Tensors made inside it are "inference tensors",
            # so the token is cloned outside before it reaches the caller, who may want to train on it.
            with torch.inference_mode():
                if cache is None:
                    window = seq[:, -block_size:]
                elif step == 0 or seq.size(1) > block_size:
                    cache.reset()  # first step, or the window slid: (re)fill the cache from the visible window
                    window = seq[:, -block_size:]
                else:
                    window = seq[:, -1:]  # one new position
                # Padded rows: the mask over everything this step sees (the cache, then the window).
                padding = {} if mask is None else padding_inputs(mask[:, -block_size:], window.size(1))
                logits = model.forward_logits(window, cache, last_only=True, **padding)
                # Sampling in float32 whatever the model's dtype: bf16 logits are too coarse for top-p's sums.
                token = next_token(logits[:, -1, :].float(), **sampling)
                if stop:
                    token = torch.where(finished, pad, token)  # finished rows only pad
                    finished = finished | torch.isin(token, stop_ids)
                seq = torch.cat([seq, token[:, None]], dim=1)
                if mask is not None:
                    mask = torch.cat([mask, mask.new_ones(mask.size(0), 1)], dim=1)
            token = token.clone()  # an ordinary tensor again
            yield token
            if stop and bool(finished.all()):
                break


def generate(model, idx: torch.Tensor, max_new_tokens: int, **kwargs) -> torch.Tensor:
    """
    Continue each row of idx (B, T) by up to max_new_tokens tokens and return (B, T + new).

    Keyword arguments as in `generate_stream`: temperature, do_sample, top_k, top_p, eos_token_id, generator,
    use_cache, pad_token_id, attention_mask. Fewer than max_new_tokens are added only when every row hit an
    eos_token_id.
    """
    tokens = list(generate_stream(model, idx, max_new_tokens, **kwargs))
    if not tokens:
        return idx
    return torch.cat([idx, torch.stack(tokens, dim=1)], dim=1)
