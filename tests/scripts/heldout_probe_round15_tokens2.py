"""The held-out probe, round 15, tokens part continued: the KV cache (notebook 06's class to fill in) and BPE's
merge and encode (notebook 07), written by w24w before reading the checkers' tables. See
heldout_probe_round15_tokens.py."""

from __future__ import annotations

import torch

import mingpt.exercises as ex

from heldout_probe_models import mistake, valid


def both(a: str, b: str) -> str:
    return rf"(?=.*(?:{a}))(?=.*(?:{b}))"


# ------------------------------------------------------------------------------------------ KV cache (6.3)
K = ex.check_kv_cache


def cache(dim=2, new_first=False, ret="all", advance="add", count_in_update=False, one_store=False,
          keep_last_only=False, swap=False):
    """The notebook's list-per-layer cache, with the slips; every knob's default is the solution's line."""
    class Cache:
        def __init__(self, n_layer, max_length):
            self.length = 0
            n = 1 if one_store else n_layer
            self.keys, self.values = [None] * n, [None] * n

        def update(self, layer, k, v):
            layer = 0 if one_store else layer
            old_k, old_v = self.keys[layer], self.values[layer]
            if old_k is None:
                new_k, new_v = k, v
            else:
                pair_k, pair_v = ([k, old_k], [v, old_v]) if new_first else ([old_k, k], [old_v, v])
                new_k, new_v = torch.cat(pair_k, dim=dim), torch.cat(pair_v, dim=dim)
            self.keys[layer], self.values[layer] = (k, v) if keep_last_only else (new_k, new_v)
            if count_in_update:
                self.length += k.shape[2]
            out = {"all": (new_k, new_v), "new": (k, v), "none": None, "three": (new_k, new_v, self.length)}[ret]
            return (out[1], out[0]) if swap else out

        def advance(self, T):
            if advance == "add":
                self.length += T
            elif advance == "set":
                self.length = T
    return Cache


ATTN = r"dim|axis|time|head|shape|cat"
mistake(K, ATTN)(cache(dim=1))  # the heads axis
mistake(K, ATTN)(cache(dim=-1))  # the head-size axis
mistake(K, r"order|new.*(first|before)|revers|prepend|old")(cache(new_first=True))
mistake(K, r"return|all|only the new|new keys|whole|every|forgets earlier")(cache(ret="new"))  # widened after the count
mistake(K, r"advance|length|position")(cache(advance="none"))  # advance left as the skeleton's blank
mistake(K, r"advance|length|position|\+=")(cache(advance="set"))
mistake(K, r"advance|length|position|twice|double|update")(cache(count_in_update=True))
mistake(K, r"layer|shared|one (store|list)|every layer")(cache(one_store=True))
mistake(K, r"keep|last|overwrit|stor|only|previous")(cache(keep_last_only=True))
mistake(K, r"None|return")(cache(ret="none"))
mistake(K, r"tuple|three|two|extra|return|unpack")(cache(ret="three"))
mistake(K, r"swap|order|keys.*values|values.*keys")(cache(swap=True))


def aliased_lists():
    """[[]] * n_layer: every layer appends to the same list (Python's aliasing slip)."""
    class Cache:
        def __init__(self, n_layer, max_length):
            self.length = 0
            self.keys, self.values = [[]] * n_layer, [[]] * n_layer

        def update(self, layer, k, v):
            self.keys[layer].append(k)
            self.values[layer].append(v)
            return torch.cat(self.keys[layer], dim=2), torch.cat(self.values[layer], dim=2)

        def advance(self, T):
            self.length += T
    return Cache


mistake(K, r"layer|shared|alias|same list|\[\[\]\]")(aliased_lists())


def prealloc(end="ok", dtype=None, advance_in_update=False):
    """A preallocated (B, nh, max_length, hs) buffer per layer, written at self.length; the slips: the slice's end,
    the buffer's dtype, the length advanced inside update (per layer)."""
    class Cache:
        def __init__(self, n_layer, max_length):
            self.length, self.max_length = 0, max_length
            self.k, self.v = [None] * n_layer, [None] * n_layer

        def update(self, layer, k, v):
            if self.k[layer] is None:
                B, nh, _, hs = k.shape
                self.k[layer] = torch.zeros(B, nh, self.max_length, hs, dtype=dtype or k.dtype)
                self.v[layer] = torch.zeros(B, nh, self.max_length, hs, dtype=dtype or v.dtype)
            T = k.shape[2]
            self.k[layer][:, :, self.length:self.length + T] = k
            self.v[layer][:, :, self.length:self.length + T] = v
            stop = {"ok": self.length + T, "length": self.length, "max": self.max_length}[end]
            if advance_in_update:
                self.length += T
            return self.k[layer][:, :, :stop], self.v[layer][:, :, :stop]

        def advance(self, T):
            if not advance_in_update:
                self.length += T
    return Cache


mistake(K, r"slice|length|new|\+ ?T|end|stop|position")(prealloc(end="length"))
mistake(K, r"slice|zero|max|buffer|length|empty|unfilled")(prealloc(end="max"))
mistake(K, r"half|float16|dtype|precision")(prealloc(dtype=torch.float16))
mistake(K, r"advance|length|update|layer|position")(prealloc(advance_in_update=True))
valid(K)(prealloc())


class DictCache:
    """Valid: a dict keyed by layer, chunks kept in lists and joined on every call."""
    def __init__(self, n_layer, max_length):
        self.length, self.chunks = 0, {}

    def update(self, layer, k, v):
        ks, vs = self.chunks.setdefault(layer, ([], []))
        ks.append(k)
        vs.append(v)
        return torch.cat(ks, dim=-2), torch.cat(vs, dim=-2)

    def advance(self, T):
        self.length = self.length + T


valid(K)(DictCache)


# ------------------------------------------------------------------------------------------ merge (7.1)
M = ex.check_merge


def merge_with(step=2, bound="ok", reverse_pair=False, as_list_pair=False, first_only=False, last=True, out="list"):
    """The notebook's while loop, with the slips; every knob's default is the solution's line."""
    def f(ids, pair, new_id):
        res, i = [], 0
        stop = len(ids) - 1 if not last else len(ids)
        target = list(pair) if as_list_pair else pair
        done = False
        while i < stop:
            ok = i + 1 < len(ids) if bound == "ok" else True
            cur = (ids[i + 1], ids[i]) if ok and reverse_pair else ((ids[i], ids[i + 1]) if ok else None)
            if ok and cur == target and not done:
                res.append(new_id)
                i += step
                done = first_only
            else:
                res.append(ids[i])
                i += 1
        return {"list": res, "tuple": tuple(res), "tensor": torch.tensor(res, dtype=torch.long), "none": None}[out]
    return f


OVERLAP = r"overlap|skip|\+= ?2|twice|both|1, 1, 1|right half"  # "right half" widened after the count (a fair name)
mistake(M, OVERLAP)(merge_with(step=1))
mistake(M, r"last|end|final|drop|trailing|bound|len")(merge_with(last=False))
mistake(M, r"order|revers|swap|\(b, a\)|pair")(merge_with(reverse_pair=True))
mistake(M, r"list|tuple|type|never|no merge|compar|nothing merged")(merge_with(as_list_pair=True))  # [a, b] != (a, b)
mistake(M, r"first|every|all|once|only one")(merge_with(first_only=True))
mistake(M, r"tuple|list|type")(merge_with(out="tuple"))
mistake(M, r"tensor|list|type")(merge_with(out="tensor"))
mistake(M, r"None|return")(merge_with(out="none"))
mistake(M, r"bound|index|last|end|IndexError|range")(merge_with(bound="none"))  # ids[i + 1] past the end


def merge_in_place(ids, pair, new_id):
    """The input list edited and returned."""
    i = 0
    while i < len(ids) - 1:
        if (ids[i], ids[i + 1]) == pair:
            ids[i:i + 2] = [new_id]
        i += 1
    return ids


def merge_right_to_left(ids, pair, new_id):
    """Scans from the right: [1, 1, 1] becomes [1, X]."""
    out, i = [], len(ids) - 1
    while i >= 0:
        if i >= 1 and (ids[i - 1], ids[i]) == pair:
            out.append(new_id)
            i -= 2
        else:
            out.append(ids[i])
            i -= 1
    return out[::-1]


def merge_by_string(ids, pair, new_id):
    """A string replace over space-joined ids: '1 1' also matches inside '11 1' (ids > 9)."""
    s = " " + " ".join(map(str, ids)) + " "
    s = s.replace(f"{pair[0]} {pair[1]}", str(new_id))
    return [int(t) for t in s.split()]


def merge_zip(ids, pair, new_id):
    """zip over neighbours: no skip after a merge and the last id lost."""
    return [new_id if (a, b) == pair else a for a, b in zip(ids, ids[1:])]


def merge_empty(ids, pair, new_id):
    """Starts from ids[0]: fine unless ids is empty."""
    out = [ids[0]]
    for t in ids[1:]:
        if (out[-1], t) == pair:
            out[-1] = new_id
        else:
            out.append(t)
    return out


mistake(M, r"in.?place|modif|input|new list|copy")(merge_in_place)
mistake(M, r"left|right|direction|overlap|revers|scan")(merge_right_to_left)
mistake(M, r"string|digit|substring|replace|overlap|id")(merge_by_string)
mistake(M, OVERLAP + r"|last|end|zip")(merge_zip)
mistake(M, r"empty|\[\]|index|IndexError|length")(merge_empty)


def merge_flag(ids, pair, new_id):
    """Valid: a for loop with a skip flag."""
    out, skip = [], False
    for a, b in zip(ids, list(ids[1:]) + [None]):
        if skip:
            skip = False
        elif (a, b) == tuple(pair):
            out.append(new_id)
            skip = True
        else:
            out.append(a)
    return out


def merge_recursive(ids, pair, new_id):
    """Valid: recursion on the head."""
    if len(ids) < 2:
        return list(ids)
    if (ids[0], ids[1]) == pair:
        return [new_id] + merge_recursive(ids[2:], pair, new_id)
    return [ids[0]] + merge_recursive(ids[1:], pair, new_id)


valid(M)(merge_flag)
valid(M)(merge_recursive)


# ------------------------------------------------------------------------------------------ encode (7.2)
E = ex.check_bpe_encode
RANK = r"rank|lowest|earliest|order|first learned|priority|min"


def merge_ok(ids, pair, new_id):
    return merge_flag(ids, pair, new_id)


def enc_with(pick="rank", default="inf", at_least=2, once=False, merger=merge_ok, out="list", copy=True):
    """The notebook's while loop, with the slips; every knob's default is the solution's line."""
    def f(ids, merges):
        ids = list(ids) if copy else ids
        while len(ids) >= at_least:
            pairs = list(zip(ids, ids[1:]))
            if pick == "rank":
                d = float("inf") if default == "inf" else 0
                pair = min(pairs, key=lambda p: merges.get(p, d))
            elif pick == "max":
                pair = max(pairs, key=lambda p: merges.get(p, -1))
            elif pick == "count":
                known = [p for p in pairs if p in merges]
                pair = max(known, key=pairs.count) if known else pairs[0]
            else:  # "pairval": the smallest pair by its ids, not by its rank
                known = [p for p in pairs if p in merges]
                pair = min(known) if known else pairs[0]
            if pair not in merges:
                break
            new = merger(ids, pair, merges[pair])
            if copy:
                ids = new
            else:
                ids[:] = new
            if once:
                break
        return {"list": ids, "tuple": tuple(ids), "tensor": torch.tensor(ids)}[out]
    return f


mistake(E, RANK + r"|highest|latest|max")(enc_with(pick="max"))
mistake(E, RANK + r"|frequen|count|most common")(enc_with(pick="count"))
mistake(E, RANK + r"|smallest pair|ids|value")(enc_with(pick="pairval"))
mistake(E, r"default|0\b|zero|inf|stop|early|unknown")(enc_with(default="zero"))
mistake(E, r"2|two|len|length|short|stop|>=")(enc_with(at_least=3))
mistake(E, r"once|one merge|repeat|loop|until|single")(enc_with(once=True))
mistake(E, r"tuple|list|type")(enc_with(out="tuple"))
mistake(E, r"tensor|list|type")(enc_with(out="tensor"))
mistake(E, r"in.?place|modif|input|copy")(enc_with(copy=False))
mistake(E, both(r"merge|overlap|skip", r"\+= ?2|overlap|twice|skip|1, 1, 1|merge"))(
    enc_with(merger=lambda ids, pair, new_id: [new_id if (a, b) == pair else a for a, b in zip(ids, ids[1:])]
             + ids[-1:]))  # its own merge without the skip (the last id kept)


def enc_first_occurrence(ids, merges):
    """Valid: the best pair merged at its first occurrence only, each round (the next rounds take the others)."""
    ids = list(ids)
    while len(ids) >= 2:
        pairs = list(zip(ids, ids[1:]))
        pair = min(pairs, key=lambda p: merges.get(p, float("inf")))
        if pair not in merges:
            break
        i = pairs.index(pair)
        ids[i:i + 2] = [merges[pair]]
    return ids


def enc_dict_order(ids, merges):
    """Every merge replayed once in the dict's iteration order: right only when the dict is ordered by rank."""
    ids = list(ids)
    for pair, new_id in merges.items():
        ids = merge_ok(ids, pair, new_id)
    return ids


def enc_global_min(ids, merges):
    """The lowest-ranked merge of the whole table, then stop if it is not in the text."""
    ids = list(ids)
    for pair in sorted(merges, key=merges.get):
        if pair not in set(zip(ids, ids[1:])):
            break
        ids = merge_ok(ids, pair, merges[pair])
    return ids


mistake(E, RANK + r"|dict|sorted|insertion")(enc_dict_order)
mistake(E, RANK + r"|stop|early|present|absent|break|table")(enc_global_min)


def enc_sorted_replay(ids, merges):
    """Valid: replay the merges once each in rank order (a pair made later always ranks after its parts)."""
    ids = list(ids)
    for pair, new_id in sorted(merges.items(), key=lambda kv: kv[1]):
        ids = merge_recursive(ids, pair, new_id)
    return ids


def enc_candidates(ids, merges):
    """Valid: (rank, pair) candidates, the min, stop when none."""
    ids = list(ids)
    while True:
        cands = [(merges[p], p) for p in zip(ids, ids[1:]) if p in merges]
        if not cands:
            return ids
        r, pair = min(cands)
        ids = merge_flag(ids, pair, r)


# (enc_first_occurrence was written as a mistake and passed untuned: it is right, since a pair formed after a merge
# always ranks after it, the same pair is picked again next round; moved to the valid rows)
valid(E)(enc_first_occurrence)
valid(E)(enc_sorted_replay)
valid(E)(enc_candidates)
