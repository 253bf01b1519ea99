"""The held-out probe, round 18, tokens part 2: the KV cache (see heldout_probe_round18_tokens.py)."""

from __future__ import annotations

import torch

import mingpt.exercises as ex
from heldout_probe_models import mistake, valid


class Cache:
    """The notebook's cache; the rows below change one thing."""

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


@mistake(ex.check_kv_cache, r"order|prepend|append|before|revers")
class kv_r18_prepends(Cache):  # new keys in front: harmless for one query at a time, wrong for a chunk (mask)
    def update(self, layer, k, v):
        if self.keys[layer] is not None:
            k, v = torch.cat([k, self.keys[layer]], dim=2), torch.cat([v, self.values[layer]], dim=2)
        self.keys[layer], self.values[layer] = k, v
        return k, v


@mistake(ex.check_kv_cache, r"dim|axis|time|head")
class kv_r18_cat_heads(Cache):  # dim=1: along the heads
    def update(self, layer, k, v):
        if self.keys[layer] is not None:
            k, v = torch.cat([self.keys[layer], k], dim=1), torch.cat([self.values[layer], v], dim=1)
        self.keys[layer], self.values[layer] = k, v
        return k, v


@mistake(ex.check_kv_cache, r"advance|length|position")
class kv_r18_no_advance(Cache):
    def advance(self, T):
        pass


@mistake(ex.check_kv_cache, r"advance|length|position|T\b|one")
class kv_r18_advance_by_one(Cache):  # one step at a time... but the prompt is 3 tokens
    def advance(self, T):
        self.length += 1


@mistake(ex.check_kv_cache, r"return|all|new|cache|only")
class kv_r18_returns_new_only(Cache):
    def update(self, layer, k, v):
        super().update(layer, k, v)
        return k, v


@mistake(ex.check_kv_cache, r"layer|share|alias|same list")
class kv_r18_aliased_lists(Cache):  # [[]] * n_layer: every layer appends to the same list
    def __init__(self, n_layer, max_length):
        self.length = 0
        self.keys, self.values = [[]] * n_layer, [[]] * n_layer

    def update(self, layer, k, v):
        self.keys[layer].append(k)
        self.values[layer].append(v)
        return torch.cat(self.keys[layer], dim=2), torch.cat(self.values[layer], dim=2)


@mistake(ex.check_kv_cache, r"class|shared|instance|state|reset|previous|fresh|second")
class kv_r18_class_attribute(Cache):  # a dict on the class: the second cache starts with the first one's keys
    store = {}

    def __init__(self, n_layer, max_length):
        self.length = 0

    def update(self, layer, k, v):
        if layer in self.store:
            k = torch.cat([self.store[layer][0], k], dim=2)
            v = torch.cat([self.store[layer][1], v], dim=2)
        self.store[layer] = (k, v)
        return k, v


@mistake(ex.check_kv_cache, r"store|keep|overwrit|older|forget|last")
class kv_r18_stores_only_new(Cache):  # returns old + new but stores only the new: the third step loses the rest
    def update(self, layer, k, v):
        if self.keys[layer] is None:
            self.keys[layer], self.values[layer] = k, v
            return k, v
        out = torch.cat([self.keys[layer], k], dim=2), torch.cat([self.values[layer], v], dim=2)
        self.keys[layer], self.values[layer] = k, v
        return out


@mistake(ex.check_kv_cache, r"advance|length|layer|position")
class kv_r18_advance_in_update(Cache):  # length counted in update, per layer, and again in advance
    def update(self, layer, k, v):
        self.length += k.size(2)
        return super().update(layer, k, v)


@mistake(ex.check_kv_cache, r"length|off|slice|new|last|missing")
class kv_r18_buffer_slice_without_new(Cache):  # preallocated; returns [:length], forgetting this call's T
    def __init__(self, n_layer, max_length):
        self.length, self.max_length = 0, max_length
        self.keys, self.values = [None] * n_layer, [None] * n_layer

    def update(self, layer, k, v):
        B, nh, T, hs = k.shape
        if self.keys[layer] is None:
            self.keys[layer] = k.new_zeros(B, nh, self.max_length, hs)
            self.values[layer] = v.new_zeros(B, nh, self.max_length, hs)
        self.keys[layer][:, :, self.length:self.length + T] = k
        self.values[layer][:, :, self.length:self.length + T] = v
        end = max(self.length, T)  # "the prompt would be empty otherwise"
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]


@mistake(ex.check_kv_cache, r"max_length|buffer|zero|slice|pad|unused|empty")
class kv_r18_whole_buffer(kv_r18_buffer_slice_without_new):  # returns the whole buffer, zeros included
    def update(self, layer, k, v):
        super().update(layer, k, v)
        return self.keys[layer], self.values[layer]


@mistake(ex.check_kv_cache, r"batch|shape|B\b|broadcast")
class kv_r18_batch_one_buffer(kv_r18_buffer_slice_without_new):  # allocated for B = 1: fails only when B > 1
    def update(self, layer, k, v):
        B, nh, T, hs = k.shape
        if self.keys[layer] is None:
            self.keys[layer] = k.new_zeros(1, nh, self.max_length, hs)
            self.values[layer] = v.new_zeros(1, nh, self.max_length, hs)
        self.keys[layer][:, :, self.length:self.length + T] = k[:1]
        self.values[layer][:, :, self.length:self.length + T] = v[:1]
        end = self.length + T
        return self.keys[layer][:, :, :end].expand(B, -1, -1, -1), self.values[layer][:, :, :end].expand(B, -1, -1, -1)


@mistake(ex.check_kv_cache, r"swap|k.*v|key.*value|value.*key")
class kv_r18_swapped(Cache):
    def update(self, layer, k, v):
        keys, values = super().update(layer, k, v)
        return values, keys


@mistake(ex.check_kv_cache, r"precision|dtype|half|float16|bf16|round")
class kv_r18_half_storage(Cache):  # stored in float16 "to halve the memory", handed back as float32
    def update(self, layer, k, v):
        keys, values = super().update(layer, k.half(), v.half())
        return keys.to(k.dtype), values.to(v.dtype)


@mistake(ex.check_kv_cache, r"key|value|typo|v\b")
class kv_r18_keys_from_values(Cache):  # typo: the keys list grows with v
    def update(self, layer, k, v):
        if self.keys[layer] is None:
            self.keys[layer], self.values[layer] = k, v
        else:
            self.keys[layer] = torch.cat([self.keys[layer], v], dim=2)
            self.values[layer] = torch.cat([self.values[layer], v], dim=2)
        return self.keys[layer], self.values[layer]


@valid(ex.check_kv_cache)
class kv_r18_valid_prealloc_lazy(Cache):  # preallocated, written in place, sliced to the filled part
    def __init__(self, n_layer, max_length):
        self.length, self.max_length = 0, max_length
        self.k_buf = self.v_buf = None
        self.n_layer = n_layer

    def update(self, layer, k, v):
        B, nh, T, hs = k.shape
        if self.k_buf is None:  # one stacked buffer for all layers
            self.k_buf = k.new_empty(self.n_layer, B, nh, self.max_length, hs)
            self.v_buf = v.new_empty(self.n_layer, B, nh, self.max_length, hs)
        self.k_buf[layer, :, :, self.length:self.length + T] = k
        self.v_buf[layer, :, :, self.length:self.length + T] = v
        return self.k_buf[layer, :, :, :self.length + T], self.v_buf[layer, :, :, :self.length + T]


@valid(ex.check_kv_cache)
class kv_r18_valid_dict_lists(Cache):  # a dict of lists of chunks, concatenated on demand, cloned "to be safe"
    def __init__(self, n_layer, max_length):
        self.length = 0
        self.chunks = {}
        self.scratch = torch.zeros(1)  # an extra buffer nobody uses

    def update(self, layer, k, v):
        ks, vs = self.chunks.setdefault(layer, ([], []))
        ks.append(k.detach().clone())
        vs.append(v.detach().clone())
        return torch.cat(ks, dim=-2), torch.cat(vs, dim=-2)

    def advance(self, T):
        self.length = self.length + int(T)


@valid(ex.check_kv_cache)
class kv_r18_valid_float64_inside(Cache):  # kept in float64, handed back in the activations' dtype
    def update(self, layer, k, v):
        keys, values = super().update(layer, k.double(), v.double())
        return keys.to(k.dtype), values.to(v.dtype)


from heldout_probe_round18_tokens3 import *  # noqa: E402,F401,F403
