"""
Checking a student's KV cache: the object each attention layer hands its new keys and values to while decoding.

The one idea: decoding with a cache must give *exactly* the logits of running the whole sequence again, and
every cache mistake shows in what ``update`` hands back. So the checker decodes a few tokens through mingpt's
own GPT with the student's cache plugged in, records every call to ``update`` (what went in, what came out),
and compares the returned keys and values with what they must be: all the keys of that layer so far, in order,
along the time axis.

The interface (the one mingpt.generation.KVCache has), which mingpt's attention and GPT call:

    cache = MyCache(n_layer, max_length)
    k_all, v_all = cache.update(layer, k, v)   # k, v: (B, nh, T_new, hs) -> all so far: (B, nh, T_total, hs)
    cache.advance(T_new)                        # called by the model once every layer has stored T_new positions
    cache.length                                # positions stored (the model reads it to number new positions)
"""

from __future__ import annotations

import re

import torch

from mingpt.exercises.attention import attention_config
from mingpt.exercises.checking import CheckResult, close, crashed, fail, fmt
from mingpt.model import GPT

__all__ = ["check_kv_cache"]

EXERCISE = "KV cache"


def check_kv_cache(cls, seed: int = 0) -> CheckResult:
    """Decode 4 tokens after a 3-token prompt with cls as the cache; logits must equal the uncached model's."""
    if not isinstance(cls, type):
        raise TypeError(f"check_kv_cache expects your cache class, got {cls!r}")
    config = attention_config(dropout=0.0)
    config.n_layer = 2
    torch.manual_seed(seed)
    model = GPT(config).eval()
    g = torch.Generator().manual_seed(seed + 1)
    seq = torch.randint(0, config.vocab_size, (2, 7), generator=g)
    prompt = 3
    try:
        cache = cls(config.n_layer, config.block_size)
    except Exception as e:
        return crashed(EXERCISE, f"{cls.__name__}(n_layer={config.n_layer}, max_length={config.block_size})", e)
    calls: list[tuple[int, torch.Tensor, torch.Tensor, object]] = []  # (layer, k, v, what update returned)
    student_update = cache.update

    def recording_update(layer, k, v):
        try:
            returned = student_update(layer, k, v)
        except RuntimeError as e:
            axis = re.search(r"except in dimension (\d+)", str(e))
            if axis and axis.group(1) != "2":  # torch.cat along another axis than time
                raise WrongAxis(layer, k, int(axis.group(1))) from e
            raise
        calls.append((layer, k.clone(), v.clone(), returned))
        return returned

    cache.update = recording_update
    with torch.no_grad():
        full = model.forward_logits(seq)  # (B, 7, V): what every step must reproduce
        steps = [seq[:, :prompt]] + [seq[:, t : t + 1] for t in range(prompt, seq.shape[1])]
        for step, chunk in enumerate(steps):
            before = len(calls)
            try:
                logits = model.forward_logits(chunk, cache)
            except WrongAxis as e:
                return fail(EXERCISE, "concatenated along the wrong axis",
                            "k and v are (B, nh, T, hs): new positions go along the time axis (dim 2); yours "
                            f"concatenated along dim {e.axis}.",
                            f"layer {e.layer}, step {step}: update got k of shape {tuple(e.k.shape)}, cached keys "
                            f"hold {prompt + step - 1} positions; torch.cat along dim {e.axis} needs every other "
                            f"dim to match, so it failed", "which dim of (B, nh, T, hs) is T?")
            except Exception as e:
                problem = _diagnose_calls(calls, config.n_layer)
                return problem if problem is not None else crashed(EXERCISE, f"decoding step {step}", e)
            problem = _diagnose_calls(calls[before:], config.n_layer, calls[:before])
            if problem is not None:
                return problem
            end = prompt + step if step else prompt
            length = getattr(cache, "length", None)
            if length != end:
                return fail(EXERCISE, "length does not count the stored positions",
                            "The model numbers each new token's position from cache.length, so it must grow by T "
                            "in advance(T).", f"after {end} tokens your cache.length is {length!r}",
                            "advance(T) adds T to length")
            want = full[:, end - chunk.shape[1] : end]
            if not close(logits, want, atol=1e-4):
                return fail(EXERCISE, "cached logits differ from the full forward",
                            "Decoding with the cache must give the logits of re-running the whole sequence.",
                            f"step {step}: yours {fmt(logits[0, -1])}\nexpected {fmt(want[0, -1])}",
                            hint="the cache must hold every earlier position of this layer, in order")
    return CheckResult(EXERCISE, True, checked=["update returns every layer's keys and values so far",
                                                "same logits as the uncached model at every step"])


class WrongAxis(Exception):
    """Raised through the model when the student's update concatenated along an axis other than time."""

    def __init__(self, layer, k, axis):
        super().__init__(f"concatenated along dim {axis}")
        self.layer, self.k, self.axis = layer, k, axis


def _diagnose_calls(calls, n_layer, earlier=()) -> CheckResult | None:
    """Compare what update returned with what it must return: the concatenation of that layer's inputs so far."""
    history: dict[int, list] = {layer: [] for layer in range(n_layer)}
    for layer, k, v, _ in earlier:
        history[layer].append((k, v))
    for layer, k, v, returned in calls:
        history[layer].append((k, v))
        want_k = torch.cat([kk for kk, _ in history[layer]], dim=2)
        want_v = torch.cat([vv for _, vv in history[layer]], dim=2)
        pair_of_tensors = isinstance(returned, tuple) and len(returned) == 2
        if not (pair_of_tensors and all(isinstance(t, torch.Tensor) for t in returned)):
            return fail(EXERCISE, "update must return (keys, values)",
                        f"yours returned {type(returned).__name__}", hint="return a tuple of two tensors")
        got_k, got_v = returned
        T_total = want_k.shape[2]
        example = (f"layer {layer}, after {T_total} positions: update got k of shape {tuple(k.shape)}\n"
                   f"yours returned keys of shape {tuple(got_k.shape)}, expected {tuple(want_k.shape)}")
        if close(got_k, want_k) and close(got_v, want_v):
            continue
        if got_k.shape == k.shape and T_total > k.shape[2]:
            return fail(EXERCISE, "the cache forgets earlier positions",
                        "update must return the keys and values of *all* positions so far; yours returns only "
                        "the new ones, so each new token attends to itself alone.", example,
                        "store the new k, v after the ones you already have, then return everything stored")
        if got_k.dim() == 4 and got_k.shape[2] > T_total:
            return fail(EXERCISE, "layers share one cache",
                        "Each layer has its own keys and values; yours returned more positions than this layer has "
                        "seen, so it mixes layers.", example, "keep one store per layer index")
        if got_k.dim() == 4 and got_k.shape[1] != k.shape[1] and got_k.shape[2] == k.shape[2]:
            return fail(EXERCISE, "concatenated along the wrong axis",
                        "k and v are (B, nh, T, hs): new positions go along the time axis (dim 2), not the heads.",
                        example, "which dim is T?")
        if close(got_k, want_v) and close(got_v, want_k):
            return fail(EXERCISE, "keys and values swapped", "update must return (keys, values) in that order.",
                        example, hint="return keys first, then values")
        if close(got_k, want_k) and close(got_v, want_k):
            return fail(EXERCISE, "values stored as keys", "The values returned are the keys.", example,
                        hint="keep two separate stores, one for keys and one for values")
        return fail(EXERCISE, "update returned the wrong keys or values",
                    "Expected all the keys (and values) of this layer so far, oldest first, along dim 2.",
                    f"{example}\nyours[0, 0, :, 0] = {fmt(got_k[0, 0, :, 0], 8)}\n"
                    f"expected {fmt(want_k[0, 0, :, 0], 8)}",
                    hint="append the new k, v after the stored ones (dim 2) and return all of them")
    return None
