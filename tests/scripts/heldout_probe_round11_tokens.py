"""The held-out probe, round 11 (the token, training and post-training checkers): written fresh by w24h before
reading these checkers' tables, tests/mistakes_*.py or any earlier round, from the exercises' docstrings and
mingpt's references only, and counted untuned first. The angle: the code an AI assistant or a hurried student
writes from the papers and popular repos (nanoGPT's get_lr and configure_optimizers, HF's top_k_top_p_filtering,
minbpe's merge/encode, TRL's DPO and GRPO, PEFT's LoRA, nanoGPT's from_pretrained). About a fifth carry two slips
(their regex asks for both names). See heldout_probe.py."""

from __future__ import annotations

from collections import Counter

import torch
import torch.nn.functional as F

import mingpt.exercises as ex

from heldout_probe_models import ROUND, mistake, valid
import heldout_probe_round10_tokens  # noqa: F401  (round 10 registered first)

ROUND[0] = 11
NEG = float("-inf")


def both(a: str, b: str) -> str:
    return rf"(?=.*(?:{a}))(?=.*(?:{b}))"


# ------------------------------------------------------------------------------------------ sampling (HF style)
def hf_filter(lg, top_k=None, top_p=None, fill=NEG, shift="ok", k_off=0, min_keep=1):
    """HF's top_k_top_p_filtering, with the slips a copy of it makes."""
    if top_k is not None and top_k > 0:
        k = min(max(top_k, min_keep), lg.size(-1))
        kth = torch.topk(lg, k, dim=-1)[0][..., -1, None] if not k_off else torch.sort(lg, -1, True)[0][..., k, None]
        lg = lg.masked_fill(lg < kth, fill)
    if top_p is not None and top_p < 1.0:
        s, idx = torch.sort(lg, descending=True)
        cum = F.softmax(s, dim=-1).cumsum(-1)
        remove = cum > top_p if shift == "hf" else cum >= top_p  # HF's own code keeps a tie at exactly p
        if shift in ("ok", "hf"):
            remove[..., 1:] = remove[..., :-1].clone()
            remove[..., 0] = False
        elif shift == "wrong_dir":  # shifted left instead of right
            remove[..., :-1] = remove[..., 1:].clone()
            remove[..., 0] = False
        lg = lg.masked_fill(remove.scatter(1, idx, remove), fill)
    return lg


def probs_with(t_where="div", **kw):
    def f(logits, temperature, top_k=None, top_p=None):
        lg = logits / temperature if t_where == "div" else logits * temperature if t_where == "mul" else logits
        p = F.softmax(hf_filter(lg, top_k, top_p, **kw), dim=-1)
        return p / temperature if t_where == "after" else p
    return f


S = ex.check_sampling_probs
mistake(S, r"cross|includ|at least p|reach")(probs_with(shift="none"))
mistake(S, r"cross|includ|at least p|reach|shift")(probs_with(shift="wrong_dir"))
mistake(S, r"\b0\b|zero|-inf|fill|filter")(probs_with(fill=0.0))
mistake(S, r"multipl|temperature")(probs_with(t_where="mul"))
mistake(S, r"temperature")(probs_with(t_where="after"))
mistake(S, r"k ?\+ ?1|too many|one more")(probs_with(k_off=1))
mistake(S, both(r"multipl|temperature", r"k ?\+ ?1|too many|one more"))(probs_with(t_where="mul", k_off=1))
mistake(S, both(r"\b0\b|zero|-inf|fill", r"cross|includ|at least p|reach"))(probs_with(fill=0.0, shift="none"))


@mistake(S, r"sample|shape|id|multinomial")
def sample_not_probs(logits, temperature, top_k=None, top_p=None):
    return torch.multinomial(F.softmax(logits / temperature, -1), 1)


@mistake(S, r"multinomial|negative|probabilit")
def multinomial_on_logits(logits, temperature, top_k=None, top_p=None):
    ids = torch.multinomial(logits / temperature, 1)  # logits are not probabilities: negative entries raise
    return F.one_hot(ids[:, 0], logits.size(-1)).float()


@mistake(S, r"sort|order")
def top_p_unsorted(logits, temperature, top_k=None, top_p=None):
    lg = hf_filter(logits / temperature, top_k)
    if top_p is not None and top_p < 1.0:
        cum = F.softmax(lg, -1).cumsum(-1)  # in vocabulary order
        drop = (cum - F.softmax(lg, -1)) >= top_p
        lg = lg.masked_fill(drop, NEG)
    return F.softmax(lg, -1)


@mistake(S, r"normali|sum")
def zeroed_not_renormalised(logits, temperature, top_k=None, top_p=None):
    p = F.softmax(logits / temperature, -1)
    keep = hf_filter(logits / temperature, top_k, top_p) > NEG
    return p * keep


@mistake(S, r"order|before|after|temperature")
def top_p_before_temperature(logits, temperature, top_k=None, top_p=None):
    return F.softmax(hf_filter(logits, top_k, top_p) / temperature, -1)


@mistake(S, r"dim|axis|batch|column")
def softmax_dim0(logits, temperature, top_k=None, top_p=None):
    return F.softmax(hf_filter(logits / temperature, top_k, top_p), dim=0)


@valid(S)
def hf_exact(logits, temperature, top_k=None, top_p=None):
    return F.softmax(hf_filter(logits / temperature, top_k, top_p), -1)


mistake(S, r"equals p|exactly p|>=")(probs_with(shift="hf"))  # HF's code: > keeps one more token on a tie at p


@valid(S)
def ascending_hf(logits, temperature, top_k=None, top_p=None):
    lg = logits / temperature
    if top_k is not None:
        lg = lg.masked_fill(lg < torch.topk(lg, min(top_k, lg.size(-1)))[0][..., -1:], NEG)
    if top_p is not None:
        s, idx = torch.sort(lg, descending=False)
        remove = s.softmax(-1).cumsum(-1) <= (1 - top_p)
        lg = lg.masked_fill(remove.scatter(1, idx, remove), NEG)
    return lg.softmax(-1)


@valid(S)  # keeps exactly k on a tie: as right as keeping every tied token (which stays is arbitrary)
def probs_space(logits, temperature, top_k=None, top_p=None):
    p = torch.exp(logits / temperature - (logits / temperature).amax(-1, keepdim=True))
    p = p / p.sum(-1, keepdim=True)
    if top_k is not None:
        v, i = torch.topk(p, min(top_k, p.size(-1)))
        p = torch.zeros_like(p).scatter(-1, i, v)
        p = p / p.sum(-1, keepdim=True)
    if top_p is not None:
        v, i = torch.sort(p, -1, descending=True)
        v = torch.where(v.cumsum(-1) - v >= top_p, torch.zeros_like(v), v)
        p = torch.zeros_like(p).scatter(-1, i, v)
        p = p / p.sum(-1, keepdim=True)
    return p


# ------------------------------------------------------------------------------------------ greedy
G = ex.check_greedy
mistake(G, r"batch|dim|axis")(lambda logits: logits.argmax(0))
mistake(G, r"keepdim|shape|\(B, ?1\)")(lambda logits: torch.topk(logits, 1).indices)
mistake(G, r"sampl|random|same|determin")(lambda logits: torch.multinomial(F.softmax(logits, -1), 1).squeeze(-1))
mistake(G, r"value|max|largest logit")(lambda logits: logits.max(-1).values)
mistake(G, r"argmin|smallest|least|ascending")(lambda logits: torch.sort(logits, -1)[1][:, 0])
mistake(G, r"flat")(lambda logits: logits.view(-1).argmax().repeat(logits.size(0)))
valid(G)(lambda logits: logits.max(-1).indices)
valid(G)(lambda logits: torch.sort(logits, -1, descending=True)[1][:, 0])
valid(G)(lambda logits: F.softmax(logits, -1).argmax(-1, keepdim=True).squeeze(-1))


# ------------------------------------------------------------------------------------------ KV cache
class CatCache:
    dim, advance_by, new_first, values_are_keys, only_new = 2, 1, False, False, False

    def __init__(self, n_layer, max_length):
        self.k, self.v, self.length = [None] * n_layer, [None] * n_layer, 0

    def update(self, layer, k, v):
        if self.k[layer] is not None and not self.only_new:
            old = (self.k[layer], self.v[layer])
            k, v = ((torch.cat([k, old[0]], self.dim), torch.cat([v, old[1]], self.dim)) if self.new_first else
                    (torch.cat([old[0], k], self.dim), torch.cat([old[1], v], self.dim)))
        self.k[layer], self.v[layer] = k, v
        return k, (k if self.values_are_keys else v)

    def advance(self, T):
        self.length += T * self.advance_by


K = ex.check_kv_cache
mistake(K, r"dim|axis|head size|hs|last|time")(type("CatLastDim", (CatCache,), {"dim": -1}))
mistake(K, r"dim|axis|head|time")(type("CatHeadDim", (CatCache,), {"dim": 1}))
mistake(K, r"length|advance|position")(type("NeverAdvances", (CatCache,), {"advance_by": 0}))
mistake(K, r"order|before|prepend|revers|front")(type("NewFirst", (CatCache,), {"new_first": True}))
mistake(K, r"value|keys? .*as|k.*v|twice")(type("ValuesAreKeys", (CatCache,), {"values_are_keys": True}))
mistake(K, r"only the new|new|stored|cached|forget")(type("OnlyNew", (CatCache,), {"only_new": True}))
mistake(K, both(r"dim|axis|hs|last|time", r"length|advance|position"))(
    type("LastDimNoAdvance", (CatCache,), {"dim": -1, "advance_by": 0}))


class CountsPerLayer(CatCache):
    def update(self, layer, k, v):
        out = super().update(layer, k, v)
        self.length += k.size(2)  # counted in every layer
        return out

    def advance(self, T):
        pass


mistake(K, r"length|layer|advance")(CountsPerLayer)


class OneCacheForAll(CatCache):
    def update(self, layer, k, v):
        return super().update(0, k, v)  # every layer writes to slot 0


mistake(K, r"share|layer|one cache")(OneCacheForAll)


class WritesToEnd(CatCache):
    def __init__(self, n_layer, max_length):
        super().__init__(n_layer, max_length)
        self.max_length = max_length

    def update(self, layer, k, v):
        if self.k[layer] is None:
            B, H, _, D = k.shape
            self.k[layer] = torch.zeros(B, H, self.max_length, D)
            self.v[layer] = torch.zeros(B, H, self.max_length, D)
        self.k[layer][:, :, self.length:] = k  # to the end of the buffer: shapes clash
        self.v[layer][:, :, self.length:] = v
        return self.k[layer][:, :, :self.length + k.size(2)], self.v[layer][:, :, :self.length + k.size(2)]


mistake(K, r"slice|end|length|shape|buffer")(WritesToEnd)


class DictCache:
    def __init__(self, n_layer, max_length):
        self.store, self.length = {}, 0

    def update(self, layer, k, v):
        ks, vs = self.store.setdefault(layer, ([], []))
        ks.append(k)
        vs.append(v)
        return torch.cat(ks, dim=-2), torch.cat(vs, dim=-2)

    def advance(self, T):
        self.length += T


valid(K)(DictCache)
valid(K)(CatCache)


# ------------------------------------------------------------------------------------------ merge (minbpe style)
def minbpe_merge(step=2, reversed_pair=False, bound=True, first_only=False, keep_last=True):
    def merge(ids, pair, idx):
        a, b = (pair[1], pair[0]) if reversed_pair else pair
        out, i, done = [], 0, False
        n = len(ids) if keep_last else len(ids) - 1
        while i < n:
            ok = (i < len(ids) - 1 or not bound) and not done
            if ok and ids[i] == a and ids[i + 1] == b:
                out.append(idx)
                i += step
                done = first_only
            else:
                out.append(ids[i])
                i += 1
        return out
    return merge


M = ex.check_merge
mistake(M, r"overlap|right half|i \+= 2")(minbpe_merge(step=1))
mistake(M, r"revers|order|swap")(minbpe_merge(reversed_pair=True))
mistake(M, r"last|bound|end|index")(minbpe_merge(bound=False))
mistake(M, r"first|only one|once|every")(minbpe_merge(first_only=True))
mistake(M, r"last|drop|end")(minbpe_merge(keep_last=False))
mistake(M, both(r"revers|order|swap", r"overlap|right half"))(minbpe_merge(step=1, reversed_pair=True))


@mistake(M, r"string|digit|text")
def merge_as_text(ids, pair, idx):
    s = " ".join(map(str, ids)).replace(f"{pair[0]} {pair[1]}", str(idx))
    return [int(t) for t in s.split()]


@mistake(M, r"tuple|list|never|nothing")
def pair_as_list(ids, pair, idx):
    out, i = [], 0
    while i < len(ids):
        if i < len(ids) - 1 and [ids[i], ids[i + 1]] == pair:
            out.append(idx)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


@mistake(M, r"mutat|in place|input|modif")
def merge_in_place(ids, pair, idx):
    i = 0
    while i < len(ids) - 1:
        if (ids[i], ids[i + 1]) == tuple(pair):
            ids[i:i + 2] = [idx]
        i += 1
    return ids


valid(M)(minbpe_merge())


@valid(M)
def merge_recursive(ids, pair, idx):
    if len(ids) < 2:
        return list(ids)
    if (ids[0], ids[1]) == tuple(pair):
        return [idx] + merge_recursive(ids[2:], pair, idx)
    return [ids[0]] + merge_recursive(ids[1:], pair, idx)


# ------------------------------------------------------------------------------------------ encode (minbpe style)
def minbpe_encode(pick="min", guard=2, merge=minbpe_merge(), once=False):
    def encode(ids, merges):
        ids = list(ids)
        while len(ids) >= guard:
            stats = Counter(zip(ids, ids[1:]))
            if pick == "min":
                pair = min(stats, key=lambda p: merges.get(p, float("inf")))
            elif pick == "max":
                pair = max((p for p in stats if p in merges), key=lambda p: merges[p], default=None)
            elif pick == "freq":
                pair = max((p for p in stats if p in merges), key=lambda p: stats[p], default=None)
            elif pick == "left":
                pair = next((p for p in zip(ids, ids[1:]) if p in merges), None)
            if pair is None or pair not in merges:
                break
            ids = merge(ids, pair, merges[pair])
            if once:
                break
        return ids
    return encode


E = ex.check_bpe_encode
mistake(E, r"highest|max|latest|last|rank")(minbpe_encode(pick="max"))
mistake(E, r"frequen|count|common")(minbpe_encode(pick="freq"))
mistake(E, r"leftmost|position|first|left")(minbpe_encode(pick="left"))
mistake(E, r"one|once|single")(minbpe_encode(once=True))
mistake(E, r"two|2|stop|short|length")(
    minbpe_encode(guard=3))
mistake(E, r"overlap|right half")(minbpe_encode(merge=minbpe_merge(step=1)))
mistake(E, both(r"highest|max|latest|last", r"overlap|right half"))(
    minbpe_encode(pick="max", merge=minbpe_merge(step=1)))
mistake(E, both(r"frequen|count|common", r"two|2|stop|short"))(minbpe_encode(pick="freq", guard=3))


@mistake(E, r"stop|never|loop|limit|step")
def encode_no_break(ids, merges):
    ids = list(ids)
    while len(ids) >= 2:
        stats = Counter(zip(ids, ids[1:]))
        pair = min(stats, key=lambda p: merges.get(p, float("inf")))
        if pair in merges:
            ids = minbpe_merge()(ids, pair, merges[pair])
    return ids


@mistake(E, r"order|insertion|dict|table")
def encode_in_dict_order(ids, merges):
    ids = list(ids)
    for pair, idx in merges.items():
        ids = minbpe_merge()(ids, pair, idx)
    return ids


valid(E)(minbpe_encode())


@valid(E)
def encode_ranked_sweep(ids, merges):  # keep merging the best present pair until none is in the table
    ids = list(ids)
    while True:
        present = [p for p in set(zip(ids, ids[1:])) if p in merges]
        if not present:
            return ids
        best = min(present, key=merges.__getitem__)
        ids = minbpe_merge()(ids, best, merges[best])

import heldout_probe_round11_post  # noqa: E402,F401  (round 11, second part)
import heldout_probe_round11_train  # noqa: E402,F401  (round 11, third part: the training run)
