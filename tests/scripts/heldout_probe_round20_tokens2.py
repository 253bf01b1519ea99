"""The held-out probe, round 20, tokens part 2: the KV cache (HF DynamicCache, Llama's static cache, legacy
past_key_values tuples, Mistral's sliding window). Imported at the end of heldout_probe_round20_tokens.py."""

from __future__ import annotations

import torch

import mingpt.exercises as ex
from heldout_probe_models import mistake, valid


class ListCache:
    """The HF DynamicCache shape of the exercise: per-layer lists, torch.cat on the time axis."""
    dim, prepend, step, swap, ret_new = -2, False, "add", False, False

    def __init__(self, n_layer, max_length):
        self.length = 0
        self.key_cache = [None] * n_layer
        self.value_cache = [None] * n_layer

    def update(self, layer, k, v):
        if self.swap:
            k, v = v, k
        if self.key_cache[layer] is None:
            self.key_cache[layer], self.value_cache[layer] = k, v
        else:
            old_k, old_v = self.key_cache[layer], self.value_cache[layer]
            pair_k, pair_v = ([k, old_k], [v, old_v]) if self.prepend else ([old_k, k], [old_v, v])
            self.key_cache[layer] = torch.cat(pair_k, dim=self.dim)
            self.value_cache[layer] = torch.cat(pair_v, dim=self.dim)
        if self.ret_new:
            return k, v
        return self.key_cache[layer], self.value_cache[layer]

    def advance(self, T):
        if self.step == "add":
            self.length += T
        elif self.step == "one":
            self.length += 1
        elif self.step == "set":
            self.length = T


valid(ex.check_kv_cache)(type("HFDynamicCacheDimMinus2", (ListCache,), {}))
mistake(ex.check_kv_cache, r"dim|axis|time|heads")(type("CatDim1", (ListCache,), {"dim": 1}))  # (B, T, nh, hs) habit
mistake(ex.check_kv_cache, r"dim|axis|time|head size|hs")(type("CatDimMinus1", (ListCache,), {"dim": -1}))
mistake(ex.check_kv_cache, r"order|prepend|before|reverse|oldest")(type("Prepend", (ListCache,), {"prepend": True}))
mistake(ex.check_kv_cache, r"advance|length|position")(type("NoAdvance", (ListCache,), {"step": "none"}))
mistake(ex.check_kv_cache, r"advance|length|position|T_new|one")(type("AdvanceByOne", (ListCache,), {"step": "one"}))
mistake(ex.check_kv_cache, r"advance|length|position|accumul|\+=")(type("AdvanceSets", (ListCache,), {"step": "set"}))
mistake(ex.check_kv_cache, r"swap|keys.*values|values.*keys")(type("SwapKV", (ListCache,), {"swap": True}))
# widened: "the cache forgets earlier positions ... returns only the new ones"
mistake(ex.check_kv_cache, r"return|new only|all|cached|only the new|forgets")(
    type("ReturnsNew", (ListCache,), {"ret_new": True}))
mistake(ex.check_kv_cache, r"dim|axis|advance|length|position|time")(  # double slip
    type("CatDim1NoAdvance", (ListCache,), {"dim": 1, "step": "none"}))


@valid(ex.check_kv_cache)
class HFSeenTokensInUpdate(ListCache):
    """HF's old DynamicCache counted seen tokens in update for layer 0; advance is then a no-op. Same lengths when
    the model reads them (before the first layer of each forward)."""

    def update(self, layer, k, v):
        if layer == 0:
            self.length += k.shape[-2]
        return super().update(layer, k, v)

    def advance(self, T):
        pass


@mistake(ex.check_kv_cache, r"length|advance|twice|double|position")
class HFSeenTokensAndAdvance(HFSeenTokensInUpdate):
    """The same, but advance also adds T: every position counted twice."""

    def advance(self, T):
        self.length += T


@mistake(ex.check_kv_cache, r"length|advance|layer|position|n_layer")
class LengthPerLayer(ListCache):
    """Counts in update for every layer (not only layer 0) and advance is a no-op: length grows n_layer * T."""

    def update(self, layer, k, v):
        self.length += k.shape[2]
        return super().update(layer, k, v)

    def advance(self, T):
        pass


@mistake(ex.check_kv_cache, r"layer|shared|alias|same list")
class AliasedLists:
    """[[]] * n_layer: every layer appends to the same list."""

    def __init__(self, n_layer, max_length):
        self.length = 0
        self.ks, self.vs = [[]] * n_layer, [[]] * n_layer

    def update(self, layer, k, v):
        self.ks[layer].append(k)
        self.vs[layer].append(v)
        return torch.cat(self.ks[layer], dim=2), torch.cat(self.vs[layer], dim=2)

    def advance(self, T):
        self.length += T


@mistake(ex.check_kv_cache, r"layer|shared|one cache|per.layer")
class OneStoreForAllLayers:
    """Ignores layer: a single k/v store that every layer appends to."""

    def __init__(self, n_layer, max_length):
        self.length, self.k, self.v = 0, None, None

    def update(self, layer, k, v):
        self.k = k if self.k is None else torch.cat([self.k, k], dim=2)
        self.v = v if self.v is None else torch.cat([self.v, v], dim=2)
        return self.k, self.v

    def advance(self, T):
        self.length += T


class StaticCache:
    """Llama's reference: buffers of max_length allocated once, written at [length, length + T)."""
    slice_to = "end"  # 'end': [:length + T] (right); 'max': the whole buffer; 'old': [:length]

    def __init__(self, n_layer, max_length):
        self.length, self.max_length = 0, max_length
        self.cache_k, self.cache_v = [None] * n_layer, [None] * n_layer

    def update(self, layer, k, v):
        B, nh, T, hs = k.shape
        if self.cache_k[layer] is None:
            self.cache_k[layer] = k.new_zeros(B, nh, self.max_length, hs)
            self.cache_v[layer] = v.new_zeros(B, nh, self.max_length, hs)
        start = self.length
        self.cache_k[layer][:, :, start:start + T] = k
        self.cache_v[layer][:, :, start:start + T] = v
        end = {"end": start + T, "max": self.max_length, "old": max(start, 1)}[self.slice_to]
        return self.cache_k[layer][:, :, :end], self.cache_v[layer][:, :, :end]

    def advance(self, T):
        self.length += T


valid(ex.check_kv_cache)(type("LlamaStaticCache", (StaticCache,), {}))
# widened: "returned the whole preallocated buffer"
mistake(ex.check_kv_cache, r"zero|pad|slice|max_length|whole (preallocated )?buffer|unwritten|empty|future")(
    type("StaticWholeBuffer", (StaticCache,), {"slice_to": "max"}))
mistake(ex.check_kv_cache, r"new|slice|length|drop|latest|current")(
    type("StaticSliceExcludesNew", (StaticCache,), {"slice_to": "old"}))


@mistake(ex.check_kv_cache, r"layout|transpos|dim|axis|shape")
class LlamaLayoutNotTransposedBack(StaticCache):
    """Llama's (B, T, nh, hs) buffers: k transposed in, and returned without transposing back."""

    def update(self, layer, k, v):
        B, nh, T, hs = k.shape
        if self.cache_k[layer] is None:
            self.cache_k[layer] = k.new_zeros(B, self.max_length, nh, hs)
            self.cache_v[layer] = v.new_zeros(B, self.max_length, nh, hs)
        s = self.length
        self.cache_k[layer][:, s:s + T] = k.transpose(1, 2)
        self.cache_v[layer][:, s:s + T] = v.transpose(1, 2)
        return self.cache_k[layer][:, :s + T], self.cache_v[layer][:, :s + T]


@valid(ex.check_kv_cache)
class LlamaLayoutTransposedBack(StaticCache):
    def update(self, layer, k, v):
        B, nh, T, hs = k.shape
        if self.cache_k[layer] is None:
            self.cache_k[layer] = k.new_zeros(B, self.max_length, nh, hs)
            self.cache_v[layer] = v.new_zeros(B, self.max_length, nh, hs)
        s = self.length
        self.cache_k[layer][:, s:s + T] = k.transpose(1, 2)
        self.cache_v[layer][:, s:s + T] = v.transpose(1, 2)
        return self.cache_k[layer][:, :s + T].transpose(1, 2), self.cache_v[layer][:, :s + T].transpose(1, 2)


@valid(ex.check_kv_cache)
class LegacyPastKeyValues:
    """HF's legacy past_key_values: a tuple of (k, v) per layer, rebuilt on every update."""

    def __init__(self, n_layer, max_length):
        self.length = 0
        self.past = tuple(() for _ in range(n_layer))

    def update(self, layer, k, v):
        if self.past[layer]:
            pk, pv = self.past[layer]
            k, v = torch.cat((pk, k), dim=-2), torch.cat((pv, v), dim=-2)
        self.past = self.past[:layer] + ((k, v),) + self.past[layer + 1:]
        return k, v

    def advance(self, T):
        self.length += T


@mistake(ex.check_kv_cache, r"window|evict|drop|earliest|oldest|keep all|truncat")
class SlidingWindowFour(ListCache):
    """Mistral's sliding-window cache pasted with a window of 4: the oldest keys fall out."""

    def update(self, layer, k, v):
        k, v = super().update(layer, k, v)
        self.key_cache[layer], self.value_cache[layer] = k[:, :, -4:], v[:, :, -4:]
        return self.key_cache[layer], self.value_cache[layer]


import heldout_probe_round20_tokens3  # noqa: E402,F401  (this part's next rows, registered after these)
