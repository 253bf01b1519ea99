"""The held-out probe, round 17, tokens part 3: the KV cache (cache.update(layer, k, v) returns all keys and values
of that layer so far, (B, nh, T, hs), along dim 2; cache.advance(T_new); cache.length). See
heldout_probe_round17_tokens.py for the angle and the untuned counts."""

from __future__ import annotations

import torch

import mingpt.exercises as ex
from heldout_probe_models import mistake, valid


class _Lazy:
    """The notebook's skeleton: one slot per layer, filled on the first update."""

    def __init__(self, n_layer, max_length):
        self.length = 0
        self.keys = [None] * n_layer
        self.values = [None] * n_layer

    def advance(self, T):
        self.length += T


@mistake(ex.check_kv_cache, r"dim|axis|time|head")
class _KCatDim1(_Lazy):
    def update(self, layer, k, v):
        if self.keys[layer] is None:
            self.keys[layer], self.values[layer] = k, v
        else:
            self.keys[layer] = torch.cat([self.keys[layer], k], dim=1)  # the heads' axis
            self.values[layer] = torch.cat([self.values[layer], v], dim=1)
        return self.keys[layer], self.values[layer]


@mistake(ex.check_kv_cache, r"dim|axis|time|head ?size|last")
class _KCatLast(_Lazy):
    def update(self, layer, k, v):
        if self.keys[layer] is not None:
            k = torch.cat((self.keys[layer], k), -1)
            v = torch.cat((self.values[layer], v), -1)
        self.keys[layer], self.values[layer] = k, v
        return k, v


@mistake(ex.check_kv_cache, r"length|advance|position|accumulat|\+=")
class _KLengthAssigned(_Lazy):
    def update(self, layer, k, v):
        if self.keys[layer] is not None:
            k = torch.cat([self.keys[layer], k], dim=2)
            v = torch.cat([self.values[layer], v], dim=2)
        self.keys[layer], self.values[layer] = k, v
        return k, v

    def advance(self, T):
        self.length = T  # the count of the last step only


@mistake(ex.check_kv_cache, r"length|advance|position|T_new|one per|by 1")
class _KLengthPlusOne(_KLengthAssigned):
    def advance(self, T):
        self.length += 1  # the prompt adds 3 positions, not 1


@mistake(ex.check_kv_cache, r"return|only the new|all|cached|past|whole|forgets earlier")  # widened: forgetting named
class _KReturnsNew(_Lazy):
    def update(self, layer, k, v):
        if self.keys[layer] is None:
            self.keys[layer], self.values[layer] = k, v
        else:
            self.keys[layer] = torch.cat([self.keys[layer], k], dim=2)
            self.values[layer] = torch.cat([self.values[layer], v], dim=2)
        return k, v  # only this step's keys and values


# widened: "forgets earlier" names it
@mistake(ex.check_kv_cache, r"store|keep|append|overwrit|replac|accumulat|only the new|all|cached|past|forgets earlier")
class _KOverwrites(_Lazy):
    def update(self, layer, k, v):
        self.keys[layer] = k  # replaced every step instead of appended to
        self.values[layer] = v
        return self.keys[layer], self.values[layer]


@mistake(ex.check_kv_cache, r"layer|shared|one cache|mix")
class _KOneForAllLayers:
    def __init__(self, n_layer, max_length):
        self.length = 0
        self.k = None
        self.v = None

    def update(self, layer, k, v):
        if self.k is None:
            self.k, self.v = k, v
        else:
            self.k = torch.cat([self.k, k], dim=2)
            self.v = torch.cat([self.v, v], dim=2)
        return self.k, self.v

    def advance(self, T):
        self.length += T


@mistake(ex.check_kv_cache, r"layer|shared|alias|same list|mix")
class _KAliasedLists:
    def __init__(self, n_layer, max_length):
        self.length = 0
        self.k_cache = [[]] * n_layer  # n_layer references to ONE list
        self.v_cache = [[]] * n_layer

    def update(self, layer, k, v):
        self.k_cache[layer].append(k)
        self.v_cache[layer].append(v)
        return torch.cat(self.k_cache[layer], dim=2), torch.cat(self.v_cache[layer], dim=2)

    def advance(self, T):
        self.length += T


@mistake(ex.check_kv_cache, r"order|prepend|revers|before|front")
class _KPrepends(_Lazy):
    def update(self, layer, k, v):
        if self.keys[layer] is not None:
            k = torch.cat([k, self.keys[layer]], dim=2)  # new first
            v = torch.cat([v, self.values[layer]], dim=2)
        self.keys[layer], self.values[layer] = k, v
        return k, v


@mistake(ex.check_kv_cache, r"value|key|swap")
class _KKeysAsValues(_Lazy):
    def update(self, layer, k, v):
        if self.keys[layer] is None:
            self.keys[layer], self.values[layer] = k, v
        else:
            self.keys[layer] = torch.cat([self.keys[layer], k], dim=2)
            self.values[layer] = torch.cat([self.values[layer], v], dim=2)
        return self.keys[layer], self.keys[layer]  # copy-paste: keys twice


@mistake(ex.check_kv_cache, r"swap|order|key|value")
class _KSwapped(_Lazy):
    def update(self, layer, k, v):
        if self.keys[layer] is not None:
            k = torch.cat([self.keys[layer], k], dim=2)
            v = torch.cat([self.values[layer], v], dim=2)
        self.keys[layer], self.values[layer] = k, v
        return v, k


@mistake(ex.check_kv_cache, r"twice|double|both|update and advance|in update")  # narrowed: "length" was vague
class _KLengthInUpdateAndAdvance(_Lazy):
    def update(self, layer, k, v):
        if layer == 0:
            self.length += k.shape[2]  # counted here, and again by advance
        if self.keys[layer] is not None:
            k = torch.cat([self.keys[layer], k], dim=2)
            v = torch.cat([self.values[layer], v], dim=2)
        self.keys[layer], self.values[layer] = k, v
        return k, v


@mistake(ex.check_kv_cache, r"length|layer|advance|position|update")
class _KLengthPerLayer(_Lazy):
    def update(self, layer, k, v):
        self.length += k.shape[2]  # once per layer: n_layer times too much
        if self.keys[layer] is not None:
            k = torch.cat([self.keys[layer], k], dim=2)
            v = torch.cat([self.values[layer], v], dim=2)
        self.keys[layer], self.values[layer] = k, v
        return k, v

    def advance(self, T):
        pass


class _Buffer:
    """A preallocated (n_layer, B, nh, max_length, hs) buffer, made on the first update."""

    def __init__(self, n_layer, max_length):
        self.length = 0
        self.n_layer, self.max_length = n_layer, max_length
        self.kbuf = self.vbuf = None

    def _alloc(self, k):
        B, nh, _, hs = k.shape
        self.kbuf = k.new_zeros(self.n_layer, B, nh, self.max_length, hs)
        self.vbuf = k.new_zeros(self.n_layer, B, nh, self.max_length, hs)

    def advance(self, T):
        self.length += T


@mistake(ex.check_kv_cache, r"zero|slice|unused|max_length|pad|whole|buffer|empty|unfilled")
class _KBufferUnsliced(_Buffer):
    def update(self, layer, k, v):
        if self.kbuf is None:
            self._alloc(k)
        T = k.shape[2]
        self.kbuf[layer, :, :, self.length:self.length + T] = k
        self.vbuf[layer, :, :, self.length:self.length + T] = v
        return self.kbuf[layer], self.vbuf[layer]  # max_length positions, most of them zeros


@mistake(ex.check_kv_cache, r"slice|new|length|exclud|off by|current|last")
class _KBufferSliceOld(_Buffer):
    def update(self, layer, k, v):
        if self.kbuf is None:
            self._alloc(k)
        T = k.shape[2]
        self.kbuf[layer, :, :, self.length:self.length + T] = k
        self.vbuf[layer, :, :, self.length:self.length + T] = v
        # forgot that this step's positions are not counted in self.length until advance
        return self.kbuf[layer, :, :, :self.length], self.vbuf[layer, :, :, :self.length]


@mistake(ex.check_kv_cache, r"class|shared|instance|state|fresh|previous|reset|across")
class _KClassLevelDict:
    keys = {}  # class attributes: every cache object shares them
    values = {}
    length = 0

    def __init__(self, n_layer, max_length):
        pass

    def update(self, layer, k, v):
        if layer in self.keys:
            self.keys[layer] = torch.cat([self.keys[layer], k], dim=2)
            self.values[layer] = torch.cat([self.values[layer], v], dim=2)
        else:
            self.keys[layer], self.values[layer] = k, v
        return self.keys[layer], self.values[layer]

    def advance(self, T):
        self.length += T


@mistake(ex.check_kv_cache, r"dim|axis|length|advance|head|time")
class _KDoubleDim1Length(_Lazy):  # double slip: the heads' axis and the length assigned
    def update(self, layer, k, v):
        if self.keys[layer] is not None:
            k = torch.cat([self.keys[layer], k], dim=1)
            v = torch.cat([self.values[layer], v], dim=1)
        self.keys[layer], self.values[layer] = k, v
        return k, v

    def advance(self, T):
        self.length = T


@mistake(ex.check_kv_cache, r"return|only the new|store|all|cached|past|length|advance")
class _KDoubleNoStoreLength(_Lazy):  # double slip: nothing kept and the length never moves
    def update(self, layer, k, v):
        return k, v

    def advance(self, T):
        pass


@valid(ex.check_kv_cache)
class _KOkChunks:
    def __init__(self, n_layer, max_length):
        self.length = 0
        self.chunks = [([], []) for _ in range(n_layer)]

    def update(self, layer, k, v):
        ks, vs = self.chunks[layer]
        ks.append(k)
        vs.append(v)
        return torch.cat(ks, dim=2), torch.cat(vs, dim=2)

    def advance(self, T):
        self.length = self.length + T


@valid(ex.check_kv_cache)
class _KOkBuffer(_Buffer):
    def update(self, layer, k, v):
        if self.kbuf is None:
            self._alloc(k)
        start, end = self.length, self.length + k.shape[2]
        self.kbuf[layer, :, :, start:end] = k
        self.vbuf[layer, :, :, start:end] = v
        return self.kbuf[layer, :, :, :end], self.vbuf[layer, :, :, :end]


@valid(ex.check_kv_cache)
class _KOkDict:
    def __init__(self, n_layer, max_length):
        self.length = 0
        self.cache = {}

    def update(self, layer, k, v):
        if layer in self.cache:
            old_k, old_v = self.cache[layer]
            k, v = torch.cat((old_k, k), dim=-2), torch.cat((old_v, v), dim=-2)
        self.cache[layer] = (k, v)
        return k, v

    def advance(self, T):
        self.length += T


import heldout_probe_round17_tokens4  # noqa: E402,F401
