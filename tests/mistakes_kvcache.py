"""
Student-style KV caches: (checker, buggy cache class, expected name) rows, valid alternatives, and an unnamed one.
"""

from __future__ import annotations

import torch

from mingpt.exercises import check_kv_cache


class ListCache:
    """A student's cache: one growing tensor per layer, concatenated along time."""

    def __init__(self, n_layer, max_length):
        self.length = 0
        self.keys = [None] * n_layer
        self.values = [None] * n_layer

    def join(self, old, new):
        return new if old is None else torch.cat([old, new], dim=2)

    def answer(self, layer, k, v):
        return self.keys[layer], self.values[layer]

    def update(self, layer, k, v):
        self.keys[layer] = self.join(self.keys[layer], k)
        self.values[layer] = self.join(self.values[layer], v)
        return self.answer(layer, k, v)

    def advance(self, T):
        self.length += T


def cache(**methods):
    return type("BuggyCache", (ListCache,), methods)


class BufferCache:
    """A student's preallocated cache (valid): buffers of max_length, filled at [length, length + T)."""

    def __init__(self, n_layer, max_length):
        self.length, self.max_length = 0, max_length
        self.keys, self.values = [None] * n_layer, [None] * n_layer

    def update(self, layer, k, v):
        if self.keys[layer] is None:
            B, nh, _, hs = k.shape
            self.keys[layer] = torch.zeros(B, nh, self.max_length, hs)
            self.values[layer] = torch.zeros(B, nh, self.max_length, hs)
        end = self.length + k.shape[2]
        self.keys[layer][:, :, self.length : end] = k
        self.values[layer][:, :, self.length : end] = v
        return self.result(layer, end)

    def result(self, layer, end):
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]

    def advance(self, T):
        self.length += T


class WholeBufferCache(BufferCache):
    def result(self, layer, end):
        return self.keys[layer], self.values[layer]


class OneStoreCache(ListCache):
    def update(self, layer, k, v):
        self.keys[0] = self.join(self.keys[0], k)
        self.values[0] = self.join(self.values[0], v)
        return self.keys[0], self.values[0]


class CountsInUpdate(ListCache):
    def update(self, layer, k, v):
        self.length += k.shape[2]
        return super().update(layer, k, v)

    def advance(self, T):
        pass


class ValuesFromKeys(ListCache):
    def update(self, layer, k, v):
        if self.keys[layer] is None:
            self.keys[layer], self.values[layer] = k, v
        else:
            self.keys[layer] = torch.cat([self.keys[layer], k], dim=2)
            self.values[layer] = torch.cat([self.values[layer], k], dim=2)  # the typo
        return self.keys[layer], self.values[layer]


class DictCache:  # valid: a dict of (k, v) pairs per layer
    def __init__(self, n_layer, max_length):
        self.length, self.store = 0, {}

    def update(self, layer, k, v):
        if layer in self.store:
            old_k, old_v = self.store[layer]
            k, v = torch.cat((old_k, k), 2), torch.cat((old_v, v), 2)
        self.store[layer] = (k, v)
        return k, v

    def advance(self, T):
        self.length = self.length + T


KV_MISTAKES = [
    (check_kv_cache, cache(answer=lambda self, layer, k, v: (k, v)), "the cache forgets earlier positions"),
    (check_kv_cache, OneStoreCache, "layers share one cache"),
    (check_kv_cache, WholeBufferCache, "returned the whole preallocated buffer"),
    (check_kv_cache, cache(answer=lambda self, layer, k, v: (self.values[layer], self.keys[layer])),
     "keys and values swapped"),
    (check_kv_cache, cache(answer=lambda self, layer, k, v: (self.keys[layer], self.keys[layer])),
     "values stored as keys"),
    (check_kv_cache, cache(answer=lambda self, layer, k, v: (self.values[layer], self.values[layer])),
     "keys stored as values"),
    (check_kv_cache, cache(answer=lambda self, layer, k, v: (self.keys[layer], v)), "only the keys are cached"),
    (check_kv_cache, cache(answer=lambda self, layer, k, v: (k, self.values[layer])), "only the values are cached"),
    (check_kv_cache, ValuesFromKeys, "new values taken from k"),
    (check_kv_cache, cache(join=lambda self, old, new: new if old is None else torch.cat([new, old], dim=2)),
     "new positions put before the old ones"),
    (check_kv_cache, cache(answer=lambda self, layer, k, v: (self.keys[layer].transpose(-2, -1), self.values[layer])),
     "keys returned transposed"),
    (check_kv_cache, cache(join=lambda self, old, new: new if old is None else torch.cat([old, new], dim=1)),
     "concatenated along the wrong axis"),
    (check_kv_cache, cache(join=lambda self, old, new: new if old is None else torch.cat([old, new], dim=-1)),
     "concatenated along the wrong axis"),
    (check_kv_cache, cache(advance=lambda self, T: None), "length does not count the stored positions"),
    (check_kv_cache, CountsInUpdate, "length counted once per layer"),
    (check_kv_cache, cache(answer=lambda self, layer, k, v: [self.keys[layer], self.values[layer]]),
     "update must return (keys, values)"),
]

KV_VALID = [(check_kv_cache, ListCache), (check_kv_cache, BufferCache), (check_kv_cache, DictCache)]

UNNAMED = [(check_kv_cache, cache(answer=lambda self, layer, k, v: (self.keys[layer] * 1.5, self.values[layer])))]

MISTAKES = KV_MISTAKES
VALID = KV_VALID
