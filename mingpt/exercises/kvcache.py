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
from mingpt.exercises.checking import CheckResult, crashed, fail, fmt
from mingpt.exercises.compare import NOT_RECOGNISED, where_it_differs
from mingpt.model import GPT

__all__ = ["check_kv_cache", "KV_MISTAKES"]

EXERCISE = "KV cache"


def close(a, b, atol: float = 1e-5) -> bool:
    """Tensors of one shape, equal within tolerance, NaN where the other has NaN: a cache slip upstream (a layer that
    attended to no key at all) makes NaN keys downstream, and a rebuilt slip reproduces them in the same places."""
    return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape and \
        bool(torch.allclose(a.double(), b.double(), atol=atol, rtol=1e-4, equal_nan=True))


def _cat(tensors):
    return torch.cat(tensors, dim=2)


def _one_per_call(chunks, i):
    """The store of a cache that writes only position i of each call's chunk, at its first slot (zeros after it)."""
    return _cat([torch.cat([c[:, :, i : i + 1 or None], torch.zeros_like(c[:, :, 1:])], dim=2) for c in chunks])


# What update(layer, k, v) returned, as a predicate of (keys, values, h): h.k / h.v are this layer's inputs so far
# (the new one last), h.all_k / h.all_v every layer's, h.max_length the length the cache was built for. A mistake is
# named only when its predicate holds for *every* recorded call.
KV_MISTAKES = [  # (name, predicate, explanation, hint)
    ("the cache forgets earlier positions", lambda K, V, h: close(K, h.k[-1]) and close(V, h.v[-1]),
     "update must return the keys and values of *all* positions so far; yours returns only the new ones, so each "
     "new token attends to itself alone.", "store the new k, v after the ones you already have, then return all"),
    ("layers share one cache", lambda K, V, h: close(K, _cat(h.all_k)) and close(V, _cat(h.all_v)),
     "Each layer has its own keys and values; yours appends every layer's to one store, so layer 1 attends to "
     "layer 0's keys.", "keep one store per layer index"),
    ("the store overwritten with the new k, v (the concatenation returned but not kept)",
     lambda K, V, h: close(K, _cat(h.k[-2:])) and close(V, _cat(h.v[-2:])),
     "Each call returns the previous call's keys plus the new ones, never older: the store is set to the new k, v "
     "alone (self.keys[layer] = k) while the concatenation is only returned.",
     "keep the concatenation: self.keys[layer] = torch.cat([self.keys[layer], k], dim=2)"),
    ("only the most recent positions kept (a sliding window)",
     lambda K, V, h: K.dim() == 4 and K.shape == V.shape and 0 < K.shape[2] <= len(h)
     and close(K, _cat(h.k)[:, :, len(h) - K.shape[2]:]) and close(V, _cat(h.v)[:, :, len(h) - V.shape[2]:]),
     "update returns the newest positions only: the oldest keys and values were dropped, so later tokens no longer "
     "see the start of the sequence (trim only when the sequence exceeds max_length, and then the model crops).",
     "return every position stored so far"),
    ("returned the keys stored before this call (new ones not included)",
     lambda K, V, h: close(K, _cat(h.k[:-1])) and close(V, _cat(h.v[:-1])) if len(h.k) > 1 else  # first call:
     close(K, _cat(h.k)) and close(V, _cat(h.v)) or K.dim() == 4 and K.shape[2] == 0 == V.shape[2],  # or nothing
     "update must return every position so far *including* the k, v it was just given; yours returns what was "
     "stored before, so the new token cannot attend to itself.", "append first, then return the stores"),
    ("returned the whole preallocated buffer", lambda K, V, h: K.dim() == 4 and K.shape[2] > len(h)
     and K.shape == V.shape and close(K[:, :, : len(h)], _cat(h.k)) and close(V[:, :, : len(h)], _cat(h.v)),
     "Your keys start with the stored positions but go on past them: a preallocated buffer holds the stored ones "
     "first, the rest is empty and must not be attended to. Return only the filled part.",
     "slice the buffers to [:, :, :end]"),
    ("written at the wrong offset (a gap before the stored positions)",
     lambda K, V, h: K.dim() == 4 and K.shape[2] > len(h) and K.shape == V.shape
     and close(K[:, :, K.shape[2] - len(h):], _cat(h.k)) and close(V[:, :, V.shape[2] - len(h):], _cat(h.v)),
     "Your keys end with every stored position, in order, but start with positions that were never written (the "
     "buffer's empty slots): the write offset is past where the stored positions end.",
     "write the new k, v at [length : length + T] and return [:length + T]"),
    *[(f"written {d} position{'s' * (d > 1)} too late (off by {d}): the first slot{'s' * (d > 1)} empty, the newest "
       "cut off", lambda K, V, h, d=d: K.dim() == 4 and K.shape == V.shape and K.shape[2] == len(h) > d
       and close(K[:, :, d:], _cat(h.k)[:, :, :-d]) and close(V[:, :, d:], _cat(h.v)[:, :, :-d]),
       f"Your keys are the right ones shifted {d} later along time: a write at [length + {d} : ...] instead of "
       "[length : length + T] leaves the first slot(s) of the buffer unwritten and pushes the newest position past "
       "the end you return.", "write the new k, v at [length : length + T]") for d in (1, 2)],
    ("returned one new position only ([:length + 1]): right for single tokens, not for the prompt",
     lambda K, V, h: (b := len(h) - h.k[-1].shape[2]) >= 0 and close(K, _cat(h.k)[:, :, : b + 1])
     and close(V, _cat(h.v)[:, :, : b + 1]),
     "update got T_new positions at once (the whole prompt on the first step) but returned the stored ones and only "
     "one more: the end of the slice must be length + T_new, not length + 1.",
     "end = self.length + k.shape[2]; return buffer[:, :, :end]"),
    *[(f"one position stored per update (k[:, :, {i}]), however many it was given: the prompt's keys lost",
       lambda K, V, h, i=i: close(K, _one_per_call(h.k, i)) and close(V, _one_per_call(h.v, i)),
       "update gets T_new positions at once (the whole prompt on the first step); yours writes only one of them, "
       "at buffer[:, :, length], and the other slots of the prompt stay empty (zeros).",
       "buffer[:, :, length : length + T] = k, all T_new positions") for i in (-1, 0)],
    ("keys and values stored in low precision (float16 or bfloat16)", lambda K, V, h: any(
        close(K, _cat(h.k).to(d).to(K.dtype)) and close(V, _cat(h.v).to(d).to(V.dtype))
        for d in (torch.float16, torch.bfloat16)), "Your keys and values are the right ones rounded to about 3 "
     "significant digits: a buffer or a cast in float16 / bfloat16 while the model runs in float32.",
     "store them in k's own dtype (torch.zeros(..., dtype=k.dtype), or torch.zeros_like)"),
    ("keys and values swapped", lambda K, V, h: close(K, _cat(h.v)) and close(V, _cat(h.k)),
     "update must return (keys, values) in that order.", "return keys first, then values"),
    ("values stored as keys", lambda K, V, h: close(K, _cat(h.k)) and close(V, _cat(h.k)),
     "The values returned are the keys.", "keep two separate stores, one for keys and one for values"),
    ("keys stored as values", lambda K, V, h: close(K, _cat(h.v)) and close(V, _cat(h.v)),
     "The keys returned are the values.", "keep two separate stores, one for keys and one for values"),
    ("only the keys are cached", lambda K, V, h: close(K, _cat(h.k)) and close(V, h.v[-1]),
     "Your keys cover every position so far, but the values only the new ones: attention needs both.",
     "store and return the values the way you do the keys"),
    ("only the values are cached", lambda K, V, h: close(K, h.k[-1]) and close(V, _cat(h.v)),
     "Your values cover every position so far, but the keys only the new ones: attention needs both.",
     "store and return the keys the way you do the values"),
    ("new values taken from k", lambda K, V, h: close(K, _cat(h.k)) and close(V, _cat(h.v[:1] + h.k[1:])),
     "After the first call, your values store grows with the new *keys*: torch.cat([values, k]) instead of v.",
     "append v to the values"),
    ("new positions put before the old ones", lambda K, V, h: close(K, _cat(h.k[::-1])) and close(V, _cat(h.v[::-1])),
     "Positions are stored oldest first; torch.cat([new, old]) puts the newest first.", "torch.cat([old, new], dim=2)"),
    ("keys returned transposed", lambda K, V, h: close(K, _cat(h.k).transpose(2, 3)) and close(V, _cat(h.v)),
     "update returns keys as (B, nh, T, hs), like the k it was given; the attention transposes them itself.",
     "store k as it comes"),
    ("only the first sequence of the batch stored",
     lambda K, V, h: K.shape[0] > 1 and close(K, _cat(h.k)[:1].expand_as(K)) and close(V, _cat(h.v)[:1].expand_as(V)),
     "k and v are (B, nh, T, hs): every sequence of the batch has its own keys; yours repeats the first one's.",
     "store k and v whole, along dim 2"),
    ("values returned transposed", lambda K, V, h: close(K, _cat(h.k)) and close(V, _cat(h.v).transpose(2, 3)),
     "update returns values as (B, nh, T, hs), like the v it was given.", "store v as it comes"),
    ("new positions written at the start of the buffer (offset 0), not after the stored ones",
     lambda K, V, h: K.dim() == 4 and K.shape == V.shape and K.shape[2] == len(h) and (T := h.k[-1].shape[2]) > 0
     and close(K[:, :, :T], h.k[-1]) and close(V[:, :, :T], h.v[-1])
     and (len(h.k) == 1 or not close(K[:, :, -T:], h.k[-1])),
     "Each call's new keys sit at positions 0..T-1 of what update returns, over the oldest stored ones, and the "
     "slots at the end were never written: the write ignores how many positions are stored.",
     "write the new k, v at [length : length + T]"),
]


class _History:
    """The inputs update saw, per layer and overall, up to one call."""

    def __init__(self, max_length):
        self.max_length, self.k, self.v, self.all_k, self.all_v = max_length, [], [], [], []

    def __len__(self):
        return sum(k.shape[2] for k in self.k)


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
        return crashed(EXERCISE, f"{cls.__name__}(n_layer={config.n_layer}, max_length={config.block_size})", e,
                       "the constructor only sets up empty stores")
    missing = [name for name in ("update", "advance", "length") if not hasattr(cache, name)]
    if missing:  # the model calls all three: say which is absent rather than fail inside the model
        return fail(EXERCISE, "the cache lacks part of its interface", f"Yours has no {', '.join(missing)}: the "
                    "model calls cache.update(layer, k, v) in every layer, reads cache.length to number new "
                    "positions, and calls cache.advance(T_new) once every layer has stored them.",
                    f"{cls.__name__}(n_layer={config.n_layer}, max_length={config.block_size}) has attributes "
                    f"{sorted(a for a in vars(cache) if not a.startswith('_'))}",
                    "define update, advance and length (a plain attribute or a property)")
    calls: list[tuple[int, torch.Tensor, torch.Tensor, object]] = []  # (layer, k, v, what update returned)
    student_update = cache.update

    def recording_update(layer, k, v):
        try:
            returned = student_update(layer, k, v)
        except RuntimeError as e:
            axis = re.search(r"except in dimension (\d+)", str(e))
            if axis and axis.group(1) != "2":  # torch.cat along another axis than time
                raise WrongAxis(layer, k, int(axis.group(1))) from e
            _slice_to_end(e, layer, k, getattr(cache, "length", None), config.block_size)
            _buffer_not_shaped_like_k(e, layer, k)
            raise
        kept = tuple(t.clone() if isinstance(t, torch.Tensor) else t for t in returned) \
            if isinstance(returned, tuple) else returned  # a copy: views of a buffer change on later writes
        calls.append((layer, k.clone(), v.clone(), kept))
        return returned

    cache.update = recording_update
    with torch.no_grad():
        full = model.forward_logits(seq)  # (B, 7, V): what every step must reproduce
        steps = [seq[:, :prompt]] + [seq[:, t : t + 1] for t in range(prompt, seq.shape[1])]
        for step, chunk in enumerate(steps):
            try:
                logits = model.forward_logits(chunk, cache)
            except SliceToEnd as e:
                return e.result
            except WrongAxis as e:
                return fail(EXERCISE, "concatenated along the wrong axis",
                            "k and v are (B, nh, T, hs): new positions go along the time axis (dim 2); yours "
                            f"concatenated along dim {e.axis}.",
                            f"layer {e.layer}, step {step}: update got k of shape {tuple(e.k.shape)}, cached keys "
                            f"hold {prompt + step - 1} positions; torch.cat along dim {e.axis} needs every other "
                            f"dim to match, so it failed", "which dim of (B, nh, T, hs) is T?")
            except Exception as e:
                problem = _diagnose_calls(calls, config)
                return problem if problem is not None else crashed(
                    EXERCISE, f"decoding step {step}", e, "update(layer, k, v) gets k, v of shape (B, nh, T_new, hs) "
                    "and returns all of this layer's keys and values so far, (B, nh, T_total, hs)")
            problem = _diagnose_calls(calls, config)
            length = getattr(cache, "length", None)
            if problem is not None and problem.property == NOT_RECOGNISED and isinstance(length, int) \
                    and length in ((prompt + step) * config.n_layer, (prompt + step) * (config.n_layer + 1)):
                return _wrong_length(length, prompt + step, config.n_layer)  # explains a buffer written at length
            if problem is not None:
                return _after_every_step(model, cache, steps[step + 1:], calls, config, problem)
            end = prompt + step if step else prompt
            length = getattr(cache, "length", None)
            if length != end:
                found = _wrong_length(length, end, config.n_layer)
                return _and_the_rest(found, cls, seed) if length == 0 else found
            want = full[:, end - chunk.shape[1] : end]
            if not close(logits, want, atol=1e-4):
                return fail(EXERCISE, NOT_RECOGNISED,
                            "update returned the right keys and values, but decoding with your cache does not give "
                            "the logits of re-running the whole sequence.",
                            f"step {step}: yours {fmt(logits[0, -1])}\nexpected {fmt(want[0, -1])}",
                            hint="the model reads cache.length to number the new positions")
    fresh = _fresh_cache_problem(cls, config, calls)
    if fresh is not None:
        return fresh
    return CheckResult(EXERCISE, True, checked=["update returns every layer's keys and values so far",
                                                "same logits as the uncached model at every step"])


def _wrong_length(length, end, n_layer) -> CheckResult:
    example = f"after {end} tokens your cache.length is {length!r}"
    if length == 0:
        return fail(EXERCISE, "length does not count the stored positions", "length stays 0. The model numbers "
                    "each new token's position from "
                    "cache.length, so advance(T) must add T to it.", example, "advance(T): self.length += T")
    if isinstance(length, int) and length in (end * n_layer, end * (n_layer + 1)):
        return fail(EXERCISE, "length counted once per layer", "Every layer calls update, so counting positions "
                    "in update counts each one n_layer times; the model calls advance(T) once per step.", example,
                    "count only in advance(T)")
    return fail(EXERCISE, "length does not count the stored positions", "The model numbers each new token's position "
                "from cache.length, so it must grow by T in advance(T).", example, "advance(T) adds T to length")


class WrongAxis(Exception):
    """Raised through the model when the student's update concatenated along an axis other than time."""

    def __init__(self, layer, k, axis):
        super().__init__(f"concatenated along dim {axis}")
        self.layer, self.k, self.axis = layer, k, axis


def _diagnose_calls(calls, config) -> CheckResult | None:
    """None when every call to update returned the concatenation of that layer's inputs so far; else the mistake
    that explains every call, or where the first wrong call differs."""
    histories = {layer: _History(config.block_size) for layer in range(config.n_layer)}
    all_k, all_v, seen, first_wrong = [], [], [], None
    for n, (layer, k, v, returned) in enumerate(calls):
        all_k.append(k)
        all_v.append(v)
        h = histories[layer]
        h.k, h.v = h.k + [k], h.v + [v]
        snapshot = _History(config.block_size)
        snapshot.k, snapshot.v, snapshot.all_k, snapshot.all_v = list(h.k), list(h.v), list(all_k), list(all_v)
        if not (isinstance(returned, tuple) and len(returned) == 2 and all(isinstance(t, torch.Tensor)
                                                                           for t in returned)):
            return fail(EXERCISE, "update must return (keys, values)", f"yours returned {type(returned).__name__}",
                        f"update(layer={layer}, k of shape {tuple(k.shape)}, v)", hint="return a tuple of two tensors")
        seen.append((returned, snapshot))
        if first_wrong is None and not (close(returned[0], _cat(h.k)) and close(returned[1], _cat(h.v))):
            first_wrong = (layer, k, returned, snapshot)
    if first_wrong is None:
        return None
    layer, k, (got_k, got_v), h = first_wrong
    example = (f"layer {layer}, after {len(h)} positions: update got k of shape {tuple(k.shape)}\n"
               f"yours returned keys {tuple(got_k.shape)}, values {tuple(got_v.shape)}; expected "
               f"{tuple(_cat(h.k).shape)} each")
    for name, holds, explanation, hint in KV_MISTAKES:
        if all(_holds(holds, returned, snapshot) for returned, snapshot in seen):
            return fail(EXERCISE, name, explanation, example, hint)
    wrong_part = "keys" if not close(got_k, _cat(h.k)) else "values"
    got, want = (got_k, _cat(h.k)) if wrong_part == "keys" else (got_v, _cat(h.v))
    return fail(EXERCISE, NOT_RECOGNISED, "update must return all the keys and values of this layer so far, oldest "
                f"first, along dim 2; your {wrong_part} differ, and no mistake the checker knows explains every call.",
                f"{example}\nyour {wrong_part}: {where_it_differs(got, want) if got.shape == want.shape else ''}",
                hint="append the new k, v after the stored ones (dim 2) and return all of them")


def _holds(predicate, returned, snapshot) -> bool:
    try:
        return bool(predicate(returned[0], returned[1], snapshot))
    except Exception:
        return False


def _after_every_step(model, cache, rest, calls, config, early: CheckResult) -> CheckResult:
    """A mistake found on the first steps' calls is named only if it still explains every call once the remaining
    steps have run (the prompt's single call per layer cannot show, e.g., the order of old and new positions)."""
    with torch.no_grad():
        for chunk in rest:
            try:
                model.forward_logits(chunk, cache)
            except Exception:  # the calls recorded so far are what can be judged
                break
    full = _diagnose_calls(calls, config)
    if full is None or full.property != NOT_RECOGNISED or early.property == NOT_RECOGNISED:
        return full or early
    if early.property == "keys and values swapped":  # undo the swap: does one known mistake explain the rest?
        unswapped = _diagnose_calls([(n, k, v, r[::-1]) for n, k, v, r in calls], config)
        if unswapped is not None and unswapped.property != NOT_RECOGNISED:
            return fail(EXERCISE, f"two mistakes: keys and values swapped; and {unswapped.property}",
                        f"{early.explanation} And: {unswapped.explanation}", unswapped.counterexample,
                        f"{early.hint}; and {unswapped.hint}")
    return fail(EXERCISE, f"{early.property} on the first step, and a second difference on later steps",
                f"{early.explanation} After the first decoding step your keys or values also differ in a way that no "
                "single mistake the checker knows explains.", f"{early.counterexample}\nlater: "
                f"{full.counterexample}", early.hint)



class SliceToEnd(Exception):
    """Raised through the model when the student's update wrote k into buffer[:, :, length:] (to the end)."""

    def __init__(self, result: CheckResult):
        super().__init__(result.property)
        self.result = result


def _slice_to_end(e: RuntimeError, layer, k, length, max_length) -> None:
    """Raise SliceToEnd when e is exactly the error of `buffer[:, :, length:] = k` with a buffer of max_length
    positions: torch reports the slice's size (max_length - length) against k's T_new, along dim 2."""
    sizes = re.search(r"expanded size of the tensor \((\d+)\) must match the existing size \((\d+)\) at "
                      r"non-singleton dimension 2", str(e))
    if not (sizes and isinstance(length, int) and int(sizes.group(1)) == max_length - length != k.shape[2]
            and int(sizes.group(2)) == k.shape[2]):
        return
    raise SliceToEnd(fail(EXERCISE, "new keys written to the end of the buffer (slice length: without an end)",
                          "buffer[:, :, length:] runs to the end of the preallocated buffer, max_length - length "
                          "positions, and k brings only T_new of them: the slice must end at length + T_new.",
                          f"layer {layer}: update got k of shape {tuple(k.shape)} with length {length}; torch "
                          f"reported the slice's size {max_length - length} against {k.shape[2]}",
                          "buffer[:, :, self.length : self.length + T] = k")) from e


def _buffer_not_shaped_like_k(e: RuntimeError, layer, k) -> None:
    """Raise SliceToEnd (a named failure) when e is torch's error for writing k into a buffer whose batch, head or
    head-size axis has another size than k's: a buffer shaped from fixed numbers instead of k.shape."""
    sizes = re.search(r"expanded size of the tensor \((\d+)\) must match the existing size \((\d+)\) at "
                      r"non-singleton dimension ([013])", str(e))
    if not sizes or k.dim() != 4:
        return
    theirs, got, d = (int(g) for g in sizes.groups())
    if got != k.shape[d] or theirs == k.shape[d]:
        return
    what = {0: "batch size", 1: "number of heads", 3: "head size"}[d]
    raise SliceToEnd(fail(EXERCISE, f"buffers made with the wrong {what} (not taken from k's shape)",
                          f"The buffers must match k (B, nh, T_new, hs) on every axis but time; yours have {theirs} "
                          f"along dim {d} ({what}) where k has {got}: a size fixed when the buffers were made instead "
                          "of read from k.", f"layer {layer}: update got k of shape {tuple(k.shape)}; torch reported "
                          f"the buffer's size {theirs} against {got} at dim {d}", "make the buffers on the first "
                          "update: B, nh, _, hs = k.shape; torch.zeros(B, nh, max_length, hs)")) from e


def _fresh_cache_problem(cls, config, calls) -> CheckResult | None:
    """None when a second cache of cls, given the first call's k and v, returns exactly them; else a failure (named
    when the new cache returns earlier keys before them: state shared by every instance, such as a class attribute)."""
    layer, k, v, _ = calls[0]
    try:
        K, V = cls(config.n_layer, config.block_size).update(layer, k.clone(), v.clone())
    except Exception as e:
        return crashed(EXERCISE, f"a second {cls.__name__}(...).update({layer}, k, v)", e,
                       "keep every store on self (made in __init__), not on the class")
    if isinstance(K, torch.Tensor) and close(K, k) and isinstance(V, torch.Tensor) and close(V, v):
        return None
    example = f"a new {cls.__name__}: update({layer}, k of shape {tuple(k.shape)}, v) returned keys of shape " \
              f"{tuple(K.shape) if isinstance(K, torch.Tensor) else type(K).__name__}"
    T = k.shape[2]
    if isinstance(K, torch.Tensor) and K.dim() == 4 and K.shape[2] > T and close(K[:, :, -T:], k):
        return fail(EXERCISE, "a new cache starts with an earlier cache's keys (state shared between instances)",
                    "The first cache decoded correctly, but a second one, made afterwards, returns the first one's "
                    "keys before the new ones: its stores are shared by every instance (a class attribute, a "
                    "mutable default argument or a module-level list).", example,
                    "create the stores in __init__: self.keys = [None] * n_layer")
    return fail(EXERCISE, NOT_RECOGNISED, "The first cache decoded correctly, but a second one, made afterwards, does "
                "not return the keys and values it was given on its first update.", example,
                "keep every store on self, made in __init__")


def _and_the_rest(found: CheckResult, cls, seed: int) -> CheckResult:
    """found (length stays 0), or both mistakes when the same cache with a working advance() still has a named one:
    a length that never moves stops the decoding at its first step, before update's own slips can show."""
    class Advancing(cls):
        def advance(self, T):
            self.length = (getattr(self, "length", 0) or 0) + T
    rest = check_kv_cache(Advancing, seed)
    if rest or rest.property in (NOT_RECOGNISED, found.property) or "raised" in rest.property:
        return found
    return fail(EXERCISE, f"two mistakes: {found.property}; and {rest.property}", f"{found.explanation} And: "
                f"{rest.explanation}", f"{found.counterexample}\n{rest.counterexample}",
                f"{found.hint}; and {rest.hint}")
