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
from mingpt.exercises.kvcache_mistakes import ADVANCED_BY_LAYER_0, KV_MISTAKES, _cat, close
from mingpt.exercises.kvcache_partial import confined_problem, explains
from mingpt.model import GPT

__all__ = ["check_kv_cache", "KV_MISTAKES"]

EXERCISE = "KV cache"


class _History:
    """The inputs update saw, per layer and overall, up to one call (layer: the call's layer index)."""

    def __init__(self, max_length, layer=None):
        self.max_length, self.k, self.v, self.all_k, self.all_v = max_length, [], [], [], []
        self.layer = layer

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
            if problem is not None and problem.property in (NOT_RECOGNISED, ADVANCED_BY_LAYER_0) \
                    and isinstance(length, int) \
                    and length in ((prompt + step) * config.n_layer, (prompt + step) * (config.n_layer + 1)):
                return _wrong_length(length, prompt + step, config.n_layer, cls)  # a buffer written at length
            if problem is not None:
                return _after_every_step(model, cache, steps[step + 1:], calls, config, problem)
            end = prompt + step if step else prompt
            length = getattr(cache, "length", None)
            if length != end:
                found = _wrong_length(length, end, config.n_layer, cls)
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


def _wrong_length(length, end, n_layer, cls=None) -> CheckResult:
    example = f"after {end} tokens your cache.length is {length!r}"
    if isinstance(length, int) and length in (end * n_layer, end * (n_layer + 1)) and _growth(cls) == 2:
        return fail(EXERCISE, "length counted twice: in update (once per step) and again in advance", "Your length "
                    "grows by 2 T_new per step whatever the number of layers (a 3-layer cache shows it): update adds "
                    "T_new (once, e.g. when layer 0 stores its keys) and advance(T_new) adds it again. The model "
                    "calls advance(T) once per step; update only stores.", f"{example}\n(a fresh cache of 3 layers "
                    "grew by 2 T in one step: update in each layer, then advance(T))", "count only in advance(T)")
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


def _growth(cls, T: int = 2, n_layer: int = 3):
    """How many times T a fresh cls(n_layer, ...) adds to length in one step (update in every layer, then
    advance(T)); None when it cannot say. With 3 layers, counting in every update (3 or 4) and counting once in
    update plus once in advance (2) differ; with the checker's 2 layers both give 2."""
    if cls is None:
        return None
    try:
        cache, k = cls(n_layer, 16), torch.zeros(1, 1, T, 2)
        start = cache.length
        for layer in range(n_layer):
            cache.update(layer, k.clone(), k.clone())
        cache.advance(T)
        grown = cache.length - start
    except Exception:  # a cache that fails on this tiny step: the caller's other names stand
        return None
    return grown / T if isinstance(grown, (int, float)) else None


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
        snapshot = _History(config.block_size, layer)
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
        if explains(name, holds, seen):
            return fail(EXERCISE, name, explanation, example, hint)
    confined = confined_problem(EXERCISE, seen, KV_MISTAKES, example)  # one layer, head or position (kvcache_partial)
    if confined is not None:
        return confined
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
        return early if full is None else full  # (a failed result is falsy: `full or early` would drop full)
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
