"""
The KV cache checker's table of mistakes (kvcache.py runs it): each a predicate of what update(layer, k, v) returned,
tested against every recorded call, so that a name is given only when it explains them all.
"""

from __future__ import annotations

import torch

__all__ = ["KV_MISTAKES", "ADVANCED_BY_LAYER_0", "close"]

# On the prompt's step this looks like a length counted in every layer's update (layer 1 writes after layer 0's
# positions either way); kvcache.py reads cache.length to tell the two apart.
ADVANCED_BY_LAYER_0 = ("length advanced inside update by layer 0 (not in advance): the other layers write T_new "
                       "positions late")


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


def _advanced_by_layer_0(chunks, layer):
    """What a preallocated buffer (zeros) returns when layer 0's update already added T_new to length before the
    other layers ran: each later layer writes every chunk T_new positions late, at [stored + T : stored + 2T], and
    returns [:stored + 2T], its slots before that as they were (zeros, or an earlier chunk's leftover)."""
    if layer == 0:
        return _cat(chunks)
    stored, buf, out = 0, chunks[0][:, :, :0], None
    for c in chunks:
        T = c.shape[2]
        if buf.shape[2] < stored + 2 * T:
            buf = torch.cat([buf, torch.zeros_like(c[:, :, :1]).expand(-1, -1, stored + 2 * T - buf.shape[2], -1)], 2)
        buf[:, :, stored + T : stored + 2 * T] = c
        out, stored = buf[:, :, : stored + 2 * T].clone(), stored + T
    return out


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
    ("new keys returned but never stored after the first call (the store keeps the first call's alone)",
     lambda K, V, h: close(K, _cat(h.k[:1] + h.k[1:][-1:])) and close(V, _cat(h.v[:1] + h.v[1:][-1:])),
     "Each call returns the first call's keys (the prompt's) plus the new ones, never the ones in between: the "
     "concatenation is returned but not written back to the store.",
     "keep the concatenation: self.keys[layer] = torch.cat([self.keys[layer], k], dim=2), then return it"),
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
    (ADVANCED_BY_LAYER_0,
     lambda K, V, h: h.layer is not None and close(K, _advanced_by_layer_0(h.k, h.layer))
     and close(V, _advanced_by_layer_0(h.v, h.layer)),
     "Layer 0 is right, but every later layer's keys have a gap of T_new empty slots before its newest ones: length "
     "grew inside update (when layer 0 stored its keys), so the layers after it read a length that already counts "
     "this step. The model calls advance(T_new) once all layers have stored them.",
     "count only in advance(T): self.length += T, nothing in update"),
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
    ("new keys taken from v", lambda K, V, h: close(K, _cat(h.k[:1] + h.v[1:])) and close(V, _cat(h.v)),
     "After the first call, your keys store grows with the new *values*: torch.cat([keys, v]) instead of k.",
     "append k to the keys"),
    ("new positions put before the old ones", lambda K, V, h: close(K, _cat(h.k[::-1])) and close(V, _cat(h.v[::-1])),
     "Positions are stored oldest first; torch.cat([new, old]) puts the newest first.", "torch.cat([old, new], dim=2)"),
    # One store appended, the other prepended: each store alone holds the right positions, but key i and value i no
    # longer belong to the same token, so every query reads the wrong token's value for a key it matched.
    *[(f"new {side} put before the old ones ({other} appended): keys and values no longer line up position by "
       "position", lambda K, V, h, s=side: close(K, _cat(h.k[::-1] if s == "keys" else h.k))
       and close(V, _cat(h.v[::-1] if s == "values" else h.v)),
       f"Your {other} are stored oldest first, as they must be, but your {side} newest first: torch.cat([new, old]) "
       "for one store and torch.cat([old, new]) for the other. Attention pairs key i with value i, so after the "
       "first step a token's key sits beside another token's value.", f"torch.cat([old, new], dim=2) for the {side} "
       f"too, the same order as the {other}") for side, other in (("values", "keys"), ("keys", "values"))],
    ("keys returned transposed", lambda K, V, h: close(K, _cat(h.k).transpose(2, 3)) and close(V, _cat(h.v)),
     "update returns keys as (B, nh, T, hs), like the k it was given; the attention transposes them itself.",
     "store k as it comes"),
    # Llama's reference and nanoGPT-style code keep (B, T, nh, hs) buffers: returned without transposing back, time
    # and heads trade places (the same shape only when T_total == nh; otherwise the attention fails on it).
    ("keys and values returned as (B, T, nh, hs): time and heads swapped (a buffer in Llama's layout, not "
     "transposed back)", lambda K, V, h: close(K, _cat(h.k).transpose(1, 2)) and close(V, _cat(h.v).transpose(1, 2)),
     "update gets k, v as (B, nh, T_new, hs) and must return them in that layout; yours come back with the time and "
     "head axes swapped, as a (B, T, nh, hs) buffer holds them.", "return buffer[:, :end].transpose(1, 2), or keep "
     "the buffers as (B, nh, max_length, hs)"),
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
