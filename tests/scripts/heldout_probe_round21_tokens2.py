"""The held-out probe, round 21, tokens part 2: the KV cache (cousins, partial slips, combinations, valid)."""

from __future__ import annotations

import torch

import mingpt.exercises as ex
from heldout_probe_models import mistake, valid


class Ref:
    def __init__(self, n_layer, max_length):
        self.length = 0
        self.keys = [None] * n_layer
        self.values = [None] * n_layer

    def cat(self, old, new, layer):
        return torch.cat([old, new], dim=2)

    def update(self, layer, k, v):
        if self.keys[layer] is None:
            self.keys[layer], self.values[layer] = k, v
        else:
            self.keys[layer] = self.cat(self.keys[layer], k, layer)
            self.values[layer] = self.cat(self.values[layer], v, layer)
        return self.keys[layer], self.values[layer]

    def advance(self, T):
        self.length += T


@mistake(ex.check_kv_cache, r"dim|axis|head|time")
class KVCatDim3(Ref):  # cousin of the wrong axis: along the head size (dim 3)
    def cat(self, old, new, layer):
        return torch.cat([old, new], dim=3)


@mistake(ex.check_kv_cache, r"window|last \d|truncat|drop|old|keeps only|earliest|first")
class KVWindow4(Ref):  # keeps only the last 4 positions
    def cat(self, old, new, layer):
        return torch.cat([old, new], dim=2)[:, :, -4:]


@mistake(ex.check_kv_cache, r"advance|length|position|twice|double")
class KVAdvanceTwice(Ref):
    def advance(self, T):
        self.length += 2 * T


@mistake(ex.check_kv_cache, r"advance|length|position|one|\+ ?1")
class KVAdvanceOne(Ref):  # length += 1 whatever T (the 3-token prompt counts as 1)
    def advance(self, T):
        self.length += 1


@mistake(ex.check_kv_cache, r"advance|length|accumul|set|=|overwr|reset")
class KVAdvanceSets(Ref):  # length = T, not +=
    def advance(self, T):
        self.length = T


@mistake(ex.check_kv_cache, r"stale|before|current|new|previous|old|missing|last")
class KVReturnsOld(Ref):  # returns what was cached BEFORE this step's keys and values were added
    def update(self, layer, k, v):
        if self.keys[layer] is None:
            self.keys[layer], self.values[layer] = k, v
            return k, v
        old = self.keys[layer], self.values[layer]
        self.keys[layer] = torch.cat([self.keys[layer], k], dim=2)
        self.values[layer] = torch.cat([self.values[layer], v], dim=2)
        return old


@mistake(ex.check_kv_cache, r"layer")
class KVLayerIgnored(Ref):  # one store for every layer
    def update(self, layer, k, v):
        return super().update(0, k, v)


@mistake(ex.check_kv_cache, r"layer")
class KVOnlyLayer0(Ref):  # partial: only layer 0 is cached, the others attend to the new positions only
    def update(self, layer, k, v):
        if layer != 0:
            return k, v
        return super().update(layer, k, v)


@mistake(ex.check_kv_cache, r"layer")
class KVLastLayerStale(Ref):  # partial: the last layer caches only the prompt, never appends
    def update(self, layer, k, v):
        if layer == len(self.keys) - 1 and self.keys[layer] is not None:
            return torch.cat([self.keys[layer], k], 2), torch.cat([self.values[layer], v], 2)
        return super().update(layer, k, v)


@mistake(ex.check_kv_cache, r"swap|order|key.*value|value.*key")
class KVSwapped(Ref):
    def update(self, layer, k, v):
        K, V = super().update(layer, k, v)
        return V, K


@mistake(ex.check_kv_cache, r"order|prepend|revers|front|before")
class KVPrepend(Ref):  # the new positions go in front of the old ones
    def cat(self, old, new, layer):
        return torch.cat([new, old], dim=2)


@mistake(ex.check_kv_cache, r"buffer|max_length|zero|unfilled|pad|empty|whole")
class KVWholeBuffer:  # a preallocated buffer, returned whole (the unfilled zero positions included)
    def __init__(self, n_layer, max_length):
        self.length, self.max_length = 0, max_length
        self.k, self.v = [None] * n_layer, [None] * n_layer

    def update(self, layer, k, v):
        if self.k[layer] is None:
            B, nh, _, hs = k.shape
            self.k[layer] = k.new_zeros(B, nh, self.max_length, hs)
            self.v[layer] = v.new_zeros(B, nh, self.max_length, hs)
        T = k.shape[2]
        self.k[layer][:, :, self.length:self.length + T] = k
        self.v[layer][:, :, self.length:self.length + T] = v
        return self.k[layer], self.v[layer]

    def advance(self, T):
        self.length += T


@mistake(ex.check_kv_cache, r"head")
class KVLastHeadNotCached(Ref):  # partial: the last head's new keys overwrite its history (only one head wrong)
    def cat(self, old, new, layer):
        out = torch.cat([old, new], dim=2)
        out[:, -1, :-new.shape[2]] = new[:, -1, -1:]
        return out


@mistake(ex.check_kv_cache, r"value")
class KVDecodedValuesFromKeys(Ref):  # partial: the prompt's values are right, each decoded position stores k as v
    def update(self, layer, k, v):
        return super().update(layer, k, v if self.keys[layer] is None else k)


@mistake(ex.check_kv_cache, r"dtype|precision|half|float16|bfloat")
class KVHalf(Ref):  # stores in bfloat16
    def update(self, layer, k, v):
        K, V = super().update(layer, k.bfloat16(), v.bfloat16())
        return K.to(k.dtype), V.to(v.dtype)


@mistake(ex.check_kv_cache, r"second|step|drop|skip|missing|position")
class KVSkipsSecondStep(Ref):  # only the second call: the first decoded position is not stored
    def __init__(self, n_layer, max_length):
        super().__init__(n_layer, max_length)
        self.calls = [0] * n_layer

    def update(self, layer, k, v):
        self.calls[layer] += 1
        if self.calls[layer] == 2:
            return torch.cat([self.keys[layer], k], 2), torch.cat([self.values[layer], v], 2)
        return super().update(layer, k, v)


@valid(ex.check_kv_cache)
class KVValidNeg2(Ref):  # dim=-2 is the time axis of a (B, nh, T, hs) tensor
    def cat(self, old, new, layer):
        return torch.cat([old, new], dim=-2)


@valid(ex.check_kv_cache)
class KVValidBuffer:  # a preallocated buffer, sliced to what is filled
    def __init__(self, n_layer, max_length):
        self.length, self.max_length = 0, max_length
        self.k, self.v = {}, {}

    def update(self, layer, k, v):
        if layer not in self.k:
            B, nh, _, hs = k.shape
            self.k[layer] = k.new_zeros(B, nh, self.max_length, hs)
            self.v[layer] = v.new_zeros(B, nh, self.max_length, hs)
        end = self.length + k.shape[2]
        self.k[layer][:, :, self.length:end] = k
        self.v[layer][:, :, self.length:end] = v
        return self.k[layer][:, :, :end], self.v[layer][:, :, :end]

    def advance(self, T):
        self.length += T


@valid(ex.check_kv_cache)
class KVValidLists:  # per-position lists, stacked on read; length derived from the list of layer 0
    def __init__(self, n_layer, max_length):
        self.length = 0
        self.k = [[] for _ in range(n_layer)]
        self.v = [[] for _ in range(n_layer)]

    def update(self, layer, k, v):
        self.k[layer].extend(k.unbind(2))
        self.v[layer].extend(v.unbind(2))
        return torch.stack(self.k[layer], 2), torch.stack(self.v[layer], 2)

    def advance(self, T):
        self.length = self.length + T


@valid(ex.check_kv_cache)
class KVValidCloned(Ref):  # detached copies
    def update(self, layer, k, v):
        return super().update(layer, k.detach().clone(), v.detach().clone())


import heldout_probe_round21_tokens3  # noqa: E402,F401
