"""The held-out probe, round 16, tokens part 2: the KV cache (see heldout_probe_round16_tokens.py)."""

from __future__ import annotations

import numpy as np
import torch

from heldout_probe_models import mistake, valid

import mingpt.exercises as ex


class _Cat:
    """A correct cache by concatenation; the mistakes below change one method."""

    def __init__(self, n_layer, max_length):
        self.length = 0
        self.keys = [None] * n_layer
        self.values = [None] * n_layer

    def update(self, layer, k, v):
        if self.keys[layer] is None:
            self.keys[layer], self.values[layer] = k, v
        else:
            self.keys[layer] = torch.cat([self.keys[layer], k], dim=2)
            self.values[layer] = torch.cat([self.values[layer], v], dim=2)
        return self.keys[layer], self.values[layer]

    def advance(self, T):
        self.length += T


def _cat_on(dim):
    def update(self, layer, k, v):
        if self.keys[layer] is None:
            self.keys[layer], self.values[layer] = k, v
        else:
            self.keys[layer] = torch.cat([self.keys[layer], k], dim=dim)
            self.values[layer] = torch.cat([self.values[layer], v], dim=dim)
        return self.keys[layer], self.values[layer]
    return update


@mistake(ex.check_kv_cache, r"dim|axis|head|time")
class CacheCatHeads(_Cat):
    update = _cat_on(1)  # Hugging Face's (B, T, nh, hs) layout: time is dim 1 there


@mistake(ex.check_kv_cache, r"dim|axis|head size|last|time")
class CacheCatLast(_Cat):
    update = _cat_on(-1)


@mistake(ex.check_kv_cache, r"dim|axis|batch|time")
class CacheCatBatch(_Cat):
    update = _cat_on(0)


@mistake(ex.check_kv_cache, r"order|before|prepend|revers|front")
class CacheNewFirst(_Cat):
    def update(self, layer, k, v):
        if self.keys[layer] is not None:
            k = torch.cat([k, self.keys[layer]], dim=2)  # the new position put before the old ones
            v = torch.cat([v, self.values[layer]], dim=2)
        self.keys[layer], self.values[layer] = k, v
        return k, v


@mistake(ex.check_kv_cache, r"only the new|new (keys|positions|token)|not.*(all|cached)|return"
         r"|forgets earlier")  # widened: its message says "returns only the new ones"
class CacheReturnsOnlyNew(_Cat):
    def update(self, layer, k, v):
        super().update(layer, k, v)
        return k, v  # stored, but attention sees only this step


@mistake(ex.check_kv_cache, r"current|new (token|position)|before (appending|storing)|stale|without the new"
         r"|stored before|new ones not included")  # widened: the same cause in other words
class CacheReturnsBeforeAppend(_Cat):
    def update(self, layer, k, v):
        old = (self.keys[layer], self.values[layer])
        super().update(layer, k, v)
        return old if old[0] is not None else (k, v)  # the cache as it was, without this step


@mistake(ex.check_kv_cache, r"length|advance|position")
class CacheNeverAdvances(_Cat):
    def advance(self, T):
        pass  # length stays 0: every new token is numbered position 0


@mistake(ex.check_kv_cache, r"length|advance|position|accumul|\+=")
class CacheAdvanceAssigns(_Cat):
    def advance(self, T):
        self.length = T  # = instead of +=


@mistake(ex.check_kv_cache, r"length|advance|position|one per|T_new")
class CacheAdvanceByOne(_Cat):
    def advance(self, T):
        self.length += 1  # one per call, but the prompt brings several positions at once


@mistake(ex.check_kv_cache, r"length|advance|position|per layer|each layer|twice|double")
class CacheCountsInUpdateToo(_Cat):
    def update(self, layer, k, v):
        self.length += k.shape[2]  # counted again in every layer, and advance counts once more
        return super().update(layer, k, v)


@mistake(ex.check_kv_cache, r"layer|shared|mix|same (list|storage)|alias")
class CacheListMultiplied:
    def __init__(self, n_layer, max_length):
        self.length = 0
        self.chunks = [[]] * n_layer  # one list, n_layer references to it

    def update(self, layer, k, v):
        self.chunks[layer].append((k, v))
        return torch.cat([c[0] for c in self.chunks[layer]], 2), torch.cat([c[1] for c in self.chunks[layer]], 2)

    def advance(self, T):
        self.length += T


@mistake(ex.check_kv_cache, r"layer|shared|mix")
class CacheIgnoresLayer:
    def __init__(self, n_layer, max_length):
        self.length = 0
        self.k = self.v = None

    def update(self, layer, k, v):
        self.k = k if self.k is None else torch.cat([self.k, k], 2)  # every layer appends to the same tensor
        self.v = v if self.v is None else torch.cat([self.v, v], 2)
        return self.k, self.v

    def advance(self, T):
        self.length += T


@mistake(ex.check_kv_cache, r"shared|class|instance|earlier|previous|state|fresh")
class CacheClassLevelStore:
    store = {}  # a class attribute: every cache ever made shares it
    length = 0

    def __init__(self, n_layer, max_length):
        self.length = 0

    def update(self, layer, k, v):
        if layer in self.store:
            k = torch.cat([self.store[layer][0], k], 2)
            v = torch.cat([self.store[layer][1], v], 2)
        self.store[layer] = (k, v)
        return k, v

    def advance(self, T):
        self.length += T


class _Buffer:
    def __init__(self, n_layer, max_length):
        self.length = 0
        self.max_length = max_length
        self.keys = [None] * n_layer
        self.values = [None] * n_layer

    def _write(self, layer, k, v):
        B, nh, T, hs = k.shape
        if self.keys[layer] is None:
            self.keys[layer] = k.new_zeros(B, nh, self.max_length, hs)
            self.values[layer] = v.new_zeros(B, nh, self.max_length, hs)
        self.keys[layer][:, :, self.length:self.length + T] = k
        self.values[layer][:, :, self.length:self.length + T] = v
        return self.length + T

    def update(self, layer, k, v):
        end = self._write(layer, k, v)
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]

    def advance(self, T):
        self.length += T


@mistake(ex.check_kv_cache, r"zero|unfilled|whole buffer|max_length|padding|beyond|prealloc|empty")
class CacheWholeBuffer(_Buffer):
    def update(self, layer, k, v):
        self._write(layer, k, v)
        return self.keys[layer], self.values[layer]  # attends to the unwritten zeros too


@mistake(ex.check_kv_cache, r"current|new (token|position)|stale|without the new|length"
         r"|stored before|new ones not included")  # widened: the same cause in other words
class CacheBufferSliceToLength(_Buffer):
    def update(self, layer, k, v):
        end = self._write(layer, k, v)
        n = self.length if self.length else end
        return self.keys[layer][:, :, :n], self.values[layer][:, :, :n]  # up to length: this step left out


@mistake(ex.check_kv_cache, r"dtype|float64|double")
class CacheNumpyBuffer(_Buffer):
    def _write(self, layer, k, v):
        B, nh, T, hs = k.shape
        if self.keys[layer] is None:  # numpy's zeros are float64
            self.keys[layer] = torch.from_numpy(np.zeros((B, nh, self.max_length, hs)))
            self.values[layer] = torch.from_numpy(np.zeros((B, nh, self.max_length, hs)))
        self.keys[layer][:, :, self.length:self.length + T] = k
        self.values[layer][:, :, self.length:self.length + T] = v
        return self.length + T


@mistake(ex.check_kv_cache, r"values?.*keys|keys.*values|swap|\bk\b.*\bv\b")
class CacheValuesFromKeys(_Cat):
    def update(self, layer, k, v):
        return super().update(layer, k, k)  # copy-paste: the keys stored as values


@mistake(ex.check_kv_cache, r"swap|order|keys.*values|values.*keys")
class CacheReturnsSwapped(_Cat):
    def update(self, layer, k, v):
        keys, values = super().update(layer, k, v)
        return values, keys


@mistake(ex.check_kv_cache, r"length|advance|position|layer|offset")
class CacheBufferAdvancesInLayer0(_Buffer):
    def update(self, layer, k, v):
        end = self._write(layer, k, v)
        out = self.keys[layer][:, :, :end], self.values[layer][:, :, :end]
        if layer == 0:
            self.length += k.shape[2]  # moved too early: later layers write after a gap
        return out

    def advance(self, T):
        pass


@mistake(ex.check_kv_cache, r"overwrit|only the (last|previous)|keeps.*(last|recent)|forget|lost|drop")
class CacheKeepsOnlyPreviousStep(_Cat):
    def update(self, layer, k, v):
        if self.keys[layer] is None:
            out = k, v
        else:
            out = torch.cat([self.keys[layer], k], 2), torch.cat([self.values[layer], v], 2)
        self.keys[layer], self.values[layer] = k, v  # stores only this step, not everything so far
        return out


@valid(ex.check_kv_cache)
class CacheBufferCorrect(_Buffer):
    pass


@valid(ex.check_kv_cache)
class CacheDictOfChunks:
    def __init__(self, n_layer, max_length):
        self.length = 0
        self.chunks = {layer: [] for layer in range(n_layer)}

    def update(self, layer, k, v):
        self.chunks[layer].append((k.detach().clone(), v.detach().clone()))
        keys, values = zip(*self.chunks[layer])
        return torch.cat(keys, dim=-2), torch.cat(values, dim=-2)  # dim -2 is time for (B, nh, T, hs)

    def advance(self, T):
        self.length = self.length + int(T)


@valid(ex.check_kv_cache)
class CacheTuplePerLayer:
    def __init__(self, n_layer, max_length):
        self.length = 0
        self.kv = [(None, None) for _ in range(n_layer)]

    def update(self, layer, k, v):
        old_k, old_v = self.kv[layer]
        if old_k is not None:
            k, v = torch.cat((old_k, k), 2), torch.cat((old_v, v), 2)
        self.kv[layer] = (k, v)
        return self.kv[layer]

    def advance(self, T):
        self.length += T


import heldout_probe_round16_tokens3  # noqa: E402,F401
