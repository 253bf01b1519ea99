"""The held-out probe, round 19, tokens part 2: kv_cache rows (see heldout_probe_round19_tokens.py)."""

from __future__ import annotations

import torch

import mingpt.exercises as ex
from heldout_probe_models import mistake, valid


# ------------------------------------------------------------------------------------------ kv_cache
class _Base:
    def __init__(self, n_layer, max_length):
        self.length = 0
        self.k = [None] * n_layer
        self.v = [None] * n_layer

    def advance(self, T):
        self.length += T


@mistake(ex.check_kv_cache, r"value|v\b|only|keys")
class KV_r19_keys_only(_Base):
    def update(self, layer, k, v):
        self.k[layer] = k if self.k[layer] is None else torch.cat((self.k[layer], k), dim=2)
        return self.k[layer], v  # the values are never cached


@mistake(ex.check_kv_cache, r"buffer|prealloc|whole|max_length|slice|unfilled|empty")
class KV_r19_whole_buffer(_Base):
    def __init__(self, n_layer, max_length):
        super().__init__(n_layer, max_length)
        self.max_length = max_length

    def update(self, layer, k, v):
        B, H, T, D = k.shape
        if self.k[layer] is None:
            self.k[layer] = k.new_zeros(B, H, self.max_length, D)
            self.v[layer] = v.new_zeros(B, H, self.max_length, D)
        self.k[layer][:, :, self.length:self.length + T] = k
        self.v[layer][:, :, self.length:self.length + T] = v
        return self.k[layer], self.v[layer]


@mistake(ex.check_kv_cache, r"shar|layer|alias|same")
class KV_r19_aliased_lists:
    def __init__(self, n_layer, max_length):
        self.length = 0
        self.ks = [[]] * n_layer  # one list, n_layer names for it
        self.vs = [[]] * n_layer

    def update(self, layer, k, v):
        self.ks[layer].append(k)
        self.vs[layer].append(v)
        return torch.cat(self.ks[layer], dim=2), torch.cat(self.vs[layer], dim=2)

    def advance(self, T):
        self.length += T


@mistake(ex.check_kv_cache, r"advance|length|position")
class KV_r19_never_advances(_Base):
    def update(self, layer, k, v):
        if self.k[layer] is not None:
            k, v = torch.cat([self.k[layer], k], 2), torch.cat([self.v[layer], v], 2)
        self.k[layer], self.v[layer] = k, v
        return k, v

    def advance(self, T):
        pass


@mistake(ex.check_kv_cache, r"advance|length|position|\+=|assign")
class KV_r19_length_assigned(KV_r19_never_advances):
    def advance(self, T):
        self.length = T


@mistake(ex.check_kv_cache, r"cache|concat|append|store|new")
class KV_r19_no_concat(_Base):
    def update(self, layer, k, v):
        self.k[layer], self.v[layer] = k, v  # stores, but hands back only the new positions
        return k, v


@mistake(ex.check_kv_cache, r"dim|axis|head")
class KV_r19_cat_heads(_Base):
    def update(self, layer, k, v):
        if self.k[layer] is not None:
            k, v = torch.cat([self.k[layer], k], 1), torch.cat([self.v[layer], v], 1)
        self.k[layer], self.v[layer] = k, v
        return k, v


@mistake(ex.check_kv_cache, r"swap|order|value|keys")
class KV_r19_swapped(KV_r19_never_advances):
    def update(self, layer, k, v):
        ks, vs = KV_r19_never_advances.update(self, layer, k, v)
        return vs, ks

    def advance(self, T):
        self.length += T


@mistake(ex.check_kv_cache, r"length|advance|update|per layer|twice|position")
class KV_r19_counts_in_update(_Base):
    def update(self, layer, k, v):
        if self.k[layer] is not None:
            k, v = torch.cat([self.k[layer], k], 2), torch.cat([self.v[layer], v], 2)
        self.k[layer], self.v[layer] = k, v
        self.length = k.shape[2]  # counts the new positions before the model asks
        return k, v


@mistake(ex.check_kv_cache, r"buffer|prealloc|slice|length|new|stale|end")
class KV_r19_buffer_old_length(KV_r19_whole_buffer):
    def update(self, layer, k, v):
        super().update(layer, k, v)
        end = max(self.length, 1)  # forgets to add the new T positions
        return self.k[layer][:, :, :end], self.v[layer][:, :, :end]


@mistake(ex.check_kv_cache, r"value|v\b|keys|only|swap")
class KV_r19_keys_as_values(_Base):
    def update(self, layer, k, v):
        self.k[layer] = k if self.k[layer] is None else torch.cat((self.k[layer], k), dim=-2)
        return self.k[layer], self.k[layer]


@mistake(ex.check_kv_cache, r"shar|layer|one cache|single")
class KV_r19_one_slot:
    def __init__(self, n_layer, max_length):
        self.length, self.k, self.v = 0, None, None  # one slot, whatever the layer

    def update(self, layer, k, v):
        if self.k is not None:
            k, v = torch.cat([self.k, k], dim=2), torch.cat([self.v, v], dim=2)
        self.k, self.v = k, v
        return k, v

    def advance(self, T):
        self.length += T


@mistake(ex.check_kv_cache, r"value|keys|only|advance|length|two mistakes")
class KV_r19_double_slip(KV_r19_keys_only):
    def advance(self, T):
        return T  # never counted; and only the keys are cached


@valid(ex.check_kv_cache)
class KV_r19_valid_dict:
    def __init__(self, n_layer, max_length):
        self.store = {}
        self.length = 0

    def update(self, layer, k, v):
        old = self.store.get(layer)
        if old is not None:
            k, v = torch.cat((old[0], k), dim=-2), torch.cat((old[1], v), dim=-2)
        self.store[layer] = (k, v)
        return k, v

    def advance(self, T):
        self.length = self.length + T


@valid(ex.check_kv_cache)
class KV_r19_valid_buffer(KV_r19_whole_buffer):
    def update(self, layer, k, v):
        super().update(layer, k, v)
        end = self.length + k.size(2)
        return self.k[layer][:, :, :end], self.v[layer][:, :, :end]


@valid(ex.check_kv_cache)
class KV_r19_valid_list_of_chunks:
    def __init__(self, n_layer, max_length):
        self.length = 0
        self.chunks = [([], []) for _ in range(n_layer)]

    def update(self, layer, k, v):
        ks, vs = self.chunks[layer]
        ks.append(k.detach().clone())
        vs.append(v.detach().clone())
        return torch.cat(ks, dim=2), torch.cat(vs, dim=2)

    def advance(self, T):
        self.length += T
