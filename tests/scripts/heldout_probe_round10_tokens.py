"""The held-out probe, round 10 (the token, training and post-training checkers): written fresh by w24f before
reading these checkers' tables or any earlier round, from the exercises' docstrings and mingpt's references only,
and counted untuned first. The slips are the ones students of nanoGPT / minbpe / the HF course / CS336 / TRL's docs
typically make; about a fifth carry two slips at once (their regex asks for both names). See heldout_probe.py."""

from __future__ import annotations

import math
from collections import Counter

import torch
import torch.nn as nn
import torch.nn.functional as F

import mingpt.exercises as ex
from mingpt.exercises.dpo import check_dpo_loss
from mingpt.exercises.lora import check_lora_layer
from mingpt.exercises.posttrain import check_group_advantages, check_sft_targets

from heldout_probe_models import ROUND, mistake, valid
import heldout_probe_round9_fresh  # noqa: F401  (round 9 registered first)

ROUND[0] = 10
INF = float("-inf")


def both(a: str, b: str) -> str:
    """A regex that the property matches only when it names both slips (in any order)."""
    return rf"(?=.*(?:{a}))(?=.*(?:{b}))"


# ------------------------------------------------------------------------------------------ sampling probs
def topk_fill(lg, k, le=False, fill=INF):
    if k is None or k >= lg.size(-1):
        return lg
    kth = torch.topk(lg, k, dim=-1).values[:, -1:]
    return lg.masked_fill(lg <= kth if le else lg < kth, fill)


def topp_fill(lg, p, rule="ref", presorted=True):
    if p is None or p >= 1.0:
        return lg
    if not presorted:  # forgot to sort: cumulative mass in vocabulary order
        pr = lg.softmax(-1)
        drop = (pr.cumsum(-1) - pr) >= p
        return lg.masked_fill(drop, INF)
    s, idx = torch.sort(lg, -1, descending=(rule != "ascending"))
    pr = s.softmax(-1)
    cum = pr.cumsum(-1)
    drop = {"ref": cum - pr >= p, "exclusive": cum > p, "ascending": cum - pr >= p}[rule]
    return lg.masked_fill(drop.scatter(-1, idx, drop), INF)


def probs(t_mul=False, k_le=False, p_rule="ref", sort=True, order="kp", t_after=False, k_fill=INF, dim=-1, log=False):
    def fn(logits, temperature, top_k=None, top_p=None):
        lg = logits * temperature if t_mul else (logits if t_after else logits / temperature)
        steps = [lambda z: topk_fill(z, top_k, k_le, k_fill), lambda z: topp_fill(z, top_p, p_rule, sort)]
        for step in (steps if order == "kp" else steps[::-1]):
            lg = step(lg)
        if t_after:
            lg = lg / temperature
        return (F.log_softmax if log else F.softmax)(lg, dim=dim)
    return fn


def _topk_no_renorm(logits, temperature, top_k=None, top_p=None):
    pr = F.softmax(logits / temperature, -1)
    if top_k is not None and top_k < pr.size(-1):
        kth = torch.topk(pr, top_k, -1).values[:, -1:]
        pr = pr * (pr >= kth)
    if top_p is not None and top_p < 1.0:
        s, idx = torch.sort(pr, -1, descending=True)
        drop = (s.cumsum(-1) - s) >= top_p
        pr = pr.masked_fill(drop.scatter(-1, idx, drop), 0.0)
    return pr  # never renormalised


def _temperature_dropped_with_k(logits, temperature, top_k=None, top_p=None):
    lg = logits if top_k is not None else logits / temperature  # the top-k branch forgot the temperature
    return F.softmax(topp_fill(topk_fill(lg, top_k), top_p), -1)


mistake(ex.check_sampling_probs, r"renormal|sum|normalis|normaliz")(_topk_no_renorm)
mistake(ex.check_sampling_probs, r"temperature|multipl|divid")(probs(t_mul=True))
mistake(ex.check_sampling_probs, r"top.?k|k - 1|k-1|fewer|kth|tie|<=")(probs(k_le=True))
mistake(ex.check_sampling_probs, r"top.?p|cross|includ|exclud|nucleus")(probs(p_rule="exclusive"))
mistake(ex.check_sampling_probs, r"sort|order")(probs(sort=False))
mistake(ex.check_sampling_probs, r"tail|ascend|unlikely|smallest|least")(probs(p_rule="ascending"))
mistake(ex.check_sampling_probs, r"order|before|after|top.?k.*top.?p|top.?p.*top.?k")(probs(order="pk"))
mistake(ex.check_sampling_probs, r"temperature|order|before|after")(probs(t_after=True))
mistake(ex.check_sampling_probs, r"-inf|zero|\b0\b|fill")(probs(k_fill=0.0))
mistake(ex.check_sampling_probs, r"dim|axis|batch")(probs(dim=0))
mistake(ex.check_sampling_probs, r"log")(probs(log=True))
mistake(ex.check_sampling_probs, r"temperature")(_temperature_dropped_with_k)
mistake(ex.check_sampling_probs, both(r"temperature|multipl", r"top.?k|k - 1|k-1|fewer|kth|<="))(
    probs(t_mul=True, k_le=True))
mistake(ex.check_sampling_probs, both(r"sort|order", r"cross|includ|exclud|top.?p"))(
    lambda lg, t, top_k=None, top_p=None: F.softmax(_unsorted_exclusive(topk_fill(lg / t, top_k), top_p), -1))


def _unsorted_exclusive(lg, p):
    if p is None or p >= 1.0:
        return lg
    return lg.masked_fill(lg.softmax(-1).cumsum(-1) > p, INF)


@valid(ex.check_sampling_probs)
def _probs_space(logits, temperature, top_k=None, top_p=None):  # filter probabilities, renormalise after each step
    pr = F.softmax(logits.double() / temperature, -1)
    if top_k is not None and top_k < pr.size(-1):
        keep = torch.zeros_like(pr, dtype=torch.bool).scatter(-1, torch.topk(pr, top_k, -1).indices, True)
        pr = torch.where(keep | (pr >= torch.topk(pr, top_k, -1).values[:, -1:]), pr, 0.0)
        pr = pr / pr.sum(-1, keepdim=True)
    if top_p is not None and top_p < 1.0:
        s, idx = torch.sort(pr, -1, descending=True)
        keep = torch.zeros_like(s, dtype=torch.bool).scatter(-1, idx, (s.cumsum(-1) - s) < top_p)
        pr = torch.where(keep, pr, 0.0)
        pr = pr / pr.sum(-1, keepdim=True)
    return pr.to(logits.dtype)


@valid(ex.check_sampling_probs)
def _probs_loop(logits, temperature, top_k=None, top_p=None):  # row by row, Python lists for the nucleus
    out = []
    for row in logits / temperature:
        if top_k is not None and top_k < row.numel():
            row = row.masked_fill(row < row.topk(top_k).values.min(), INF)
        if top_p is not None and top_p < 1.0:
            pr, total, keep = row.softmax(-1), 0.0, torch.zeros(row.numel(), dtype=torch.bool)
            for i in torch.argsort(row, descending=True).tolist():
                keep[i] = True
                total += pr[i].item()
                if total >= top_p:
                    break
            row = row.masked_fill(~keep, INF)
        out.append(row.softmax(-1))
    return torch.stack(out)


# ------------------------------------------------------------------------------------------ greedy
mistake(ex.check_greedy, r"dim|axis|batch")(lambda lg: lg.argmax(dim=0))
mistake(ex.check_greedy, r"argmin|smallest|least|min")(lambda lg: lg.argmin(-1))
mistake(ex.check_greedy, r"sampl|random|multinomial")(lambda lg: torch.multinomial(lg.softmax(-1), 1).squeeze(-1))
mistake(ex.check_greedy, r"flat|whole|scalar|shape|dim|single")(lambda lg: lg.argmax())
mistake(ex.check_greedy, r"shape|keepdim|dim|\(B, 1\)")(lambda lg: lg.argmax(-1, keepdim=True))
# (ids as floats, lg.argmax(-1).float(), was a mistake row here; round 6 counts it valid, so it is left out)
mistake(ex.check_greedy, both(r"dim|axis|batch", r"keepdim|shape"))(lambda lg: lg.argmax(0, keepdim=True))
valid(ex.check_greedy)(lambda lg: torch.sort(lg, dim=-1, descending=True, stable=True).indices[:, 0])
valid(ex.check_greedy)(lambda lg: torch.max(lg, dim=-1).indices)


# ------------------------------------------------------------------------------------------ KV cache
class Cache10:
    """A list-of-tensors cache; each knob is one slip (or two)."""
    knob = None

    def __init__(self, n_layer, max_length):
        self.n_layer, self.max_length, self.length = n_layer, max_length, 0
        self.k, self.v = [None] * n_layer, [None] * n_layer

    def update(self, layer, k, v):
        knob = self.knob
        slot = 0 if knob == "shared" else layer
        if knob == "only_new":
            return k, v
        old_k, old_v = self.k[slot], self.v[slot]
        if old_k is None:
            nk, nv = k, v
        elif knob in ("new_first", "new_first_vk"):
            nk, nv = torch.cat([k, old_k], 2), torch.cat([v, old_v], 2)
        else:
            nk, nv = torch.cat([old_k, k], 2), torch.cat([old_v, v if knob != "v_from_k" else k], 2)
        self.k[slot], self.v[slot] = nk, nv
        if knob == "advance_in_update":
            self.length += k.shape[2]
        if knob in ("swap", "new_first_vk"):
            return nv, nk
        return nk, nv

    def advance(self, T):
        if self.knob == "advance_one":
            self.length += 1
        elif self.knob not in ("advance_in_update", "never_advance"):
            self.length += T


class Buffer10:
    """A preallocated-buffer cache like nanoGPT forks write it; each knob is one slip."""
    knob = None

    def __init__(self, n_layer, max_length):
        self.max_length, self.length, self.k, self.v = max_length, 0, [None] * n_layer, [None] * n_layer

    def update(self, layer, k, v):
        B, nh, T, hs = k.shape
        if self.k[layer] is None:
            self.k[layer] = torch.zeros(B, nh, self.max_length, hs)
            self.v[layer] = torch.zeros(B, nh, self.max_length, hs)
        start = 0 if self.knob == "write_at_zero" else self.length
        self.k[layer][:, :, start:start + T] = k
        self.v[layer][:, :, start:start + T] = v
        end = self.max_length if self.knob == "whole_buffer" else self.length + T
        return self.k[layer][:, :, :end], self.v[layer][:, :, :end]

    def advance(self, T):
        self.length += T


for base, knob, expect in [
        (Cache10, "shared", r"layer|shared|same store|one store"),
        (Cache10, "only_new", r"new|stored|only|all|previous|cache"),
        (Cache10, "new_first", r"order|before|newest|oldest|new.*old"),
        (Cache10, "v_from_k", r"value|key"),
        (Cache10, "advance_in_update", r"advance|length|layer|offset|position"),
        (Cache10, "never_advance", r"advance|length|position|offset"),
        (Cache10, "advance_one", r"advance|length|position|one|T\b|prompt"),
        (Cache10, "swap", r"swap|order|keys.*values"),
        (Cache10, "new_first_vk", both(r"swap|keys and values|\(keys, values\)", r"order|before|newest|oldest")),
        (Buffer10, "write_at_zero", r"length|offset|overwrit|start|position|advance"),
        (Buffer10, "whole_buffer", r"slice|buffer|filled|empty|past|end")]:
    mistake(ex.check_kv_cache, expect)(type("Student", (base,), {"knob": knob}))


class _DictCache:  # valid: a dict per layer, detached tensors, length as a property of an explicit counter
    def __init__(self, n_layer, max_length):
        self.store, self._n = {}, 0

    @property
    def length(self):
        return self._n

    def update(self, layer, k, v):
        if layer in self.store:
            k = torch.cat((self.store[layer][0], k.detach()), dim=-2)
            v = torch.cat((self.store[layer][1], v.detach()), dim=-2)
        self.store[layer] = (k, v)
        return k, v

    def advance(self, T):
        self._n += T


valid(ex.check_kv_cache)(_DictCache)
valid(ex.check_kv_cache)(type("Student", (Buffer10,), {"knob": None}))


# ------------------------------------------------------------------------------------------ merge
def merge10(ids, pair, new_id, knob=None):
    out, i, n = [], 0, len(ids)
    stop = n - 1 if knob in ("drop_last", "overlap_drop_last") else n
    while i < stop:
        a = ids[i]
        b = ids[i + 1] if i + 1 < n else None
        hit = (a, b) == tuple(pair) or (knob == "either" and (b, a) == tuple(pair)) or \
            (knob == "first_only" and a == pair[0] and b is not None)
        if hit and not (knob == "once" and new_id in out):
            out.append(new_id)
            i += 1 if knob in ("overlap", "overlap_drop_last") else 2
        else:
            out.append(a)
            i += 1
    return out


def _merge_string(ids, pair, new_id):
    s = " ".join(map(str, ids)).replace(f"{pair[0]} {pair[1]}", str(new_id))
    return [int(t) for t in s.split()]


def _merge_in_place(ids, pair, new_id):
    i = 0
    while i < len(ids) - 1:
        if ids[i] == pair[0] and ids[i + 1] == pair[1]:
            ids[i:i + 2] = [new_id]
        i += 1
    return ids


for knob, expect in [("overlap", r"overlap|skip|twice|right half|kept"), ("drop_last", r"last|end|final"),
                     ("once", r"first|only|once|every|all"), ("either", r"order|revers|either|both"),
                     ("first_only", r"second|both|first element|right|only the first"),
                     ("overlap_drop_last", both(r"overlap|skip|right half", r"last|end|final"))]:
    mistake(ex.check_merge, expect)(lambda ids, pair, new_id, knob=knob: merge10(ids, pair, new_id, knob))
mistake(ex.check_merge, r"string|digit|text|str")(_merge_string)
mistake(ex.check_merge, r"in.place|input|mutat|modif|caller")(_merge_in_place)
valid(ex.check_merge)(lambda ids, pair, new_id: merge10(ids, pair, new_id))


@valid(ex.check_merge)
def _merge_skip(ids, pair, new_id):  # a for loop with a flag that skips the partner of each match
    out, skip = [], False
    for i, a in enumerate(ids):
        if skip:
            skip = False
            continue
        if i + 1 < len(ids) and (a, ids[i + 1]) == tuple(pair):
            out.append(new_id)
            skip = True
        else:
            out.append(a)
    return out


# ------------------------------------------------------------------------------------------ BPE encode
def _m(ids, pair, new):
    return merge10(list(ids), pair, new)


def encode10(choose, stop=lambda ids: len(ids) < 2, loop=True, new_id=lambda merges, p: merges[p]):
    def fn(ids, merges):
        ids = list(ids)
        for _ in range(200):  # guard: a loop that never stops still lets the probe finish
            if stop(ids):
                break
            pairs = list(zip(ids, ids[1:]))
            pair = choose(pairs, merges, ids)
            if pair is None or pair not in merges:
                break
            ids = _m(ids, pair, new_id(merges, pair))
            if not loop:
                break
        return ids
    return fn


def _lowest(pairs, merges, ids):
    return min(pairs, key=lambda p: merges.get(p, float("inf")))


def _highest(pairs, merges, ids):
    known = [p for p in pairs if p in merges]
    return max(known, key=merges.get) if known else None


def _frequent(pairs, merges, ids):
    known = Counter(p for p in pairs if p in merges)
    return known.most_common(1)[0][0] if known else None


def _leftmost(pairs, merges, ids):
    return next((p for p in pairs if p in merges), None)


def _as_string(pairs, merges, ids):
    known = [p for p in pairs if p in merges]
    return min(known, key=lambda p: str(merges[p])) if known else None


def _default_zero(pairs, merges, ids):
    return min(pairs, key=lambda p: merges.get(p, 0))


def _insertion_pass(ids, merges):  # one pass over the table in the order it was written
    ids = list(ids)
    for pair, new in merges.items():
        ids = _m(ids, pair, new)
    return ids


def _sorted_by_pair(ids, merges):
    ids = list(ids)
    for pair, new in sorted(merges.items()):
        ids = _m(ids, pair, new)
    return ids


def _min_crashes(ids, merges):  # no length check: min() of no pairs
    ids = list(ids)
    for _ in range(200):
        pair = min(zip(ids, ids[1:]), key=lambda p: merges.get(p, float("inf")))
        if pair not in merges:
            break
        ids = _m(ids, pair, merges[pair])
    return ids


mistake(ex.check_bpe_encode, r"frequen|common|count")(encode10(_frequent))
mistake(ex.check_bpe_encode, r"highest|max|latest|rank")(encode10(_highest))
mistake(ex.check_bpe_encode, r"insertion|dict|written|order|rank")(_insertion_pass)
mistake(ex.check_bpe_encode, r"sort|pair|order|rank")(_sorted_by_pair)
mistake(ex.check_bpe_encode, r"leftmost|position|first|left")(encode10(_leftmost))
mistake(ex.check_bpe_encode, r"single|empty|length|one|guard|pair|fewer|two")(_min_crashes)
mistake(ex.check_bpe_encode, r"once|one merge|loop|repeat|single")(encode10(_lowest, loop=False))
mistake(ex.check_bpe_encode, r"two|length|stop|2")(encode10(_lowest, stop=lambda ids: len(ids) <= 2))
mistake(ex.check_bpe_encode, r"string|str|digit|text")(encode10(_as_string))
mistake(ex.check_bpe_encode, r"unknown|default|missing|stop|0")(encode10(_default_zero))
mistake(ex.check_bpe_encode, r"id|new|rank")(encode10(_lowest, new_id=lambda merges, p: merges[p] + 1))
mistake(ex.check_bpe_encode, both(r"highest|max|latest", r"once|one merge|loop|repeat|single"))(
    encode10(_highest, loop=False))
mistake(ex.check_bpe_encode, both(r"frequen|common|count", r"two|length|stop|2"))(
    encode10(_frequent, stop=lambda ids: len(ids) <= 2))
valid(ex.check_bpe_encode)(lambda ids, merges: _sorted_pass(ids, merges))


def _sorted_pass(ids, merges):  # valid: each merge applied once, in rank order (minbpe's tokenizer can do this)
    ids = list(ids)
    for pair, new in sorted(merges.items(), key=lambda kv: kv[1]):
        ids = _m(ids, pair, new)
    return ids


@valid(ex.check_bpe_encode)
def _recursive(ids, merges):
    ranked = [(merges[p], i) for i, p in enumerate(zip(ids, ids[1:])) if p in merges]
    if not ranked:
        return list(ids)
    pair = (ids[min(ranked)[1]], ids[min(ranked)[1] + 1])
    return _recursive(_m(ids, pair, merges[pair]), merges)


# ------------------------------------------------------------------------------------------ LR schedule
def lr10(warm="ref", progress="ref", floor=True, shape="cos", after="min", period=1.0, add_min=False):
    def fn(it, lr, min_lr, W, D):
        if it < W:
            return {"ref": lr * (it + 1) / (W + 1), "it_over_W": lr * it / W, "plus1_over_W": lr * (it + 1) / W}[warm]
        if it >= D:
            return min_lr if after == "min" else 0.0
        p = {"ref": (it - W) / max(1, D - W), "it_over_D": it / D, "int": (it - W) // max(1, D - W)}[progress]
        lo = min_lr if floor else 0.0
        c = 0.5 * (1 + math.cos(period * math.pi * p)) if shape == "cos" else 1 - p
        if shape == "rising":
            c = 0.5 * (1 + math.cos(math.pi * (1 - p)))
        return min_lr + c * lr if add_min else lo + c * (lr - lo)
    return fn


for kw, expect in [({"warm": "it_over_W"}, r"warm|0 at the first step"),
                   ({"progress": "it_over_D"}, r"progress|warm|offset|start"),
                   ({"floor": False}, r"min_lr|floor|towards 0|to 0"), ({"period": 2.0}, r"half|full|2.?pi|period"),
                   ({"after": "zero"}, r"after|min_lr|end|0"), ({"shape": "lin"}, r"linear|cosine|shape|straight"),
                   ({"add_min": True}, r"min_lr|peak|add|above|overshoot"), ({"warm": "plus1_over_W"}, r"warm"),
                   ({"progress": "int"}, r"integer|division|floor|//|round"),
                   ({"shape": "rising"}, r"direction|increas|revers|rising|upside|flip|goes up"),
                   ({"warm": "it_over_W", "floor": False}, both(r"warm|0 at the first step",
                                                                 r"min_lr|floor|towards 0|to 0")),
                   ({"period": 2.0, "after": "zero"}, both(r"half|full|2.?pi|period", r"after|end"))]:
    mistake(ex.check_lr_schedule, expect)(lr10(**kw))


@valid(ex.check_lr_schedule)
def _lr_nanogpt(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):  # `it > D`, a sin² form of the cosine
    if it <= warmup_iters - 1:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it > lr_decay_iters:
        return min_lr
    ratio = (it - warmup_iters) / max(1, lr_decay_iters - warmup_iters)
    return min_lr + (learning_rate - min_lr) * math.cos(math.pi * ratio / 2) ** 2


# ------------------------------------------------------------------------------------------ weight decay groups
def wd10(rule, hard=None, swap=False, dup=False, only_decay=False):
    def fn(model, weight_decay):
        wd = weight_decay if hard is None else hard
        decay, rest = [], []
        linear = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
        for name, p in model.named_parameters(remove_duplicate=not dup):
            (decay if rule(name, p, linear) else rest).append(p)
        groups = [{"params": decay, "weight_decay": wd}, {"params": rest, "weight_decay": 0.0}]
        if swap:
            groups = [{"params": decay, "weight_decay": 0.0}, {"params": rest, "weight_decay": wd}]
        return groups[:1] if only_decay else groups
    return fn


def _linear(name, p, linear):
    return id(p) in linear


mistake(ex.check_weight_decay_groups, r"embed|wte|wpe|position")(wd10(lambda n, p, lin: p.dim() >= 2))
mistake(ex.check_weight_decay_groups, r"bias|all|every")(wd10(lambda n, p, lin: True))
mistake(ex.check_weight_decay_groups, r"layernorm|ln|gain|norm")(wd10(lambda n, p, lin: n.endswith("weight")))
mistake(ex.check_weight_decay_groups, r"hard|value|0\.1|number")(wd10(_linear, hard=0.1))
mistake(ex.check_weight_decay_groups, r"twice|duplicate|tied|once")(wd10(_linear, dup=True))
mistake(ex.check_weight_decay_groups, r"lm_head|wte|tied|head|embed")(wd10(lambda n, p, lin: ".c_" in n and n.endswith(
    "weight")))
mistake(ex.check_weight_decay_groups, r"swap")(wd10(_linear, swap=True))
mistake(ex.check_weight_decay_groups, r"missing|left out|absent|not in any")(wd10(_linear, only_decay=True))
mistake(ex.check_weight_decay_groups, both(r"bias|all|every", r"hard|value|0\.1|number"))(
    wd10(lambda n, p, lin: True, hard=0.1))
valid(ex.check_weight_decay_groups)(wd10(_linear))


@valid(ex.check_weight_decay_groups)
def _wd_by_modules(model, weight_decay):  # nanoGPT's older module walk, with the tied weight counted once
    decay, seen = [], set()
    for m in model.modules():
        if isinstance(m, nn.Linear) and id(m.weight) not in seen:
            decay.append(m.weight)
            seen.add(id(m.weight))
    rest = [p for p in model.parameters() if id(p) not in seen]
    return [{"params": rest, "weight_decay": 0.0}, {"params": decay, "weight_decay": weight_decay}]


# ------------------------------------------------------------------------------------------ HF conversion
CONV = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def conv10(transpose=CONV, keep_buffers=False, drop_bias=False, drop_head=False, how="t", in_place=False):
    def fn(hf):
        out = {}
        for k in list(hf):
            v = hf[k]
            if k.endswith((".attn.bias", ".attn.masked_bias")) and not keep_buffers:
                if in_place:
                    del hf[k]
                continue
            if drop_bias and k.endswith("bias"):
                continue
            if drop_head and k.startswith("lm_head"):
                continue
            if k.endswith(transpose) and v.dim() == 2:
                v = v.t() if how == "t" else v.reshape(v.shape[1], v.shape[0])
            out[k] = v
        return out
    return fn


mistake(ex.check_hf_conversion, r"c_proj|transpos")(conv10(transpose=CONV[:1] + CONV[2:]))
mistake(ex.check_hf_conversion, r"transpos|wte|wpe|embed|lm_head")(conv10(transpose=("weight",)))
mistake(ex.check_hf_conversion, r"buffer|mask|masked_bias|attn\.bias")(conv10(keep_buffers=True))
mistake(ex.check_hf_conversion, r"bias")(conv10(drop_bias=True))
mistake(ex.check_hf_conversion, r"lm_head|tied|missing|head")(conv10(drop_head=True))
mistake(ex.check_hf_conversion, r"mlp.c_proj|c_proj|transpos")(conv10(transpose=CONV[:3]))
mistake(ex.check_hf_conversion, r"reshape|view|transpos")(conv10(how="reshape"))
mistake(ex.check_hf_conversion, r"in.place|input|modif|mutat|delet|remov")(conv10(in_place=True))
mistake(ex.check_hf_conversion, both(r"buffer|mask|masked_bias|attn\.bias", r"c_proj|Conv1D"))(
    conv10(keep_buffers=True, transpose=CONV[:1] + CONV[2:]))
# Written as a valid one at first, but it is a real slip (counted so, as a probe error): "attn.c_attn.bias" also ends
# with "attn.bias", so the query/key/value biases go with the mask buffers.
mistake(ex.check_hf_conversion, r"c_attn\.bias|dropped")(
    lambda hf: {k: (v.T.clone() if any(k.endswith(s) for s in CONV) else v.clone()) for k, v in hf.items()
                if not k.endswith(("attn.bias", "masked_bias"))})
valid(ex.check_hf_conversion)(lambda hf: {k: (v.T.clone() if any(k.endswith(s) for s in CONV) else v.clone())
                                          for k, v in hf.items() if not k.endswith((".attn.bias", ".masked_bias"))})
valid(ex.check_hf_conversion)(lambda hf: {k: v.transpose(0, 1).contiguous() if k.split(".")[-2] in ("c_attn", "c_proj",
                                          "c_fc") and k.endswith("weight") else v for k, v in hf.items()
                                          if not k.endswith(".attn.bias") and "masked_bias" not in k})


# ------------------------------------------------------------------------------------------ SFT targets
def sft10(mask="shift", fill=-1, x_from="ref", y_from="ref"):
    def fn(ids, is_assistant):
        a = torch.as_tensor(is_assistant, dtype=torch.bool)
        x = ids[1:] if x_from == "next" else ids[:-1]
        y = ids[:-1] if y_from == "same" else ids[1:]
        keep = {"shift": a[1:], "noshift": a[:-1], "invert": ~a[1:], "none": torch.ones_like(a[1:])}[mask]
        return x, torch.where(keep, y, torch.full_like(y, fill))
    return fn


def _sft_in_place(ids, is_assistant):
    y = ids[1:]  # a view of ids: the fill below writes into the caller's tensor
    y[~torch.as_tensor(is_assistant, dtype=torch.bool)[1:]] = -1
    return ids[:-1], y


def _sft_full_length(ids, is_assistant):
    a = torch.as_tensor(is_assistant, dtype=torch.bool)
    y = torch.cat([ids[1:], ids.new_full((1,), -1)])
    return ids, torch.where(torch.cat([a[1:], a.new_zeros(1)]), y, -1)


mistake(check_sft_targets, r"shift|off by one|off-by-one")(sft10(mask="noshift"))
mistake(check_sft_targets, r"invert|user|opposite|revers")(sft10(mask="invert"))
mistake(check_sft_targets, r"-1|ignore|\b0\b|fill")(sft10(fill=0))
mistake(check_sft_targets, r"-100|ignore")(sft10(fill=-100))
mistake(check_sft_targets, r"\bx\b|input|shift")(sft10(x_from="next"))
mistake(check_sft_targets, r"target|shift|current|copy")(sft10(y_from="same"))
mistake(check_sft_targets, r"mask|nothing|every|all|user")(sft10(mask="none"))
mistake(check_sft_targets, r"in.place|input|view|modif|caller|clone")(_sft_in_place)
mistake(check_sft_targets, r"length|shape|T-1|T - 1|slice|ids\[:-1\]")(_sft_full_length)
mistake(check_sft_targets, both(r"shift|off by one", r"-100|ignore"))(sft10(mask="noshift", fill=-100))
valid(check_sft_targets)(lambda ids, a: (ids[:-1].clone(), ids[1:].masked_fill(~torch.as_tensor(a)[1:], -1)))


@valid(check_sft_targets)
def _sft_lists(ids, is_assistant):  # plain Python, as a first attempt often is
    ids_l, a = ids.tolist(), list(map(bool, is_assistant))
    y = [t if a[i + 1] else -1 for i, t in enumerate(ids_l[1:])]
    return torch.tensor(ids_l[:-1], dtype=ids.dtype), torch.tensor(y, dtype=ids.dtype)


# ------------------------------------------------------------------------------------------ LoRA layer
class LoRA10(nn.Module):
    knob = None

    def __init__(self, base, r, alpha):
        super().__init__()
        self.base, self.r, self.alpha, self.merged = base, r, alpha, False
        knob = self.knob
        self.scale = {"alpha": alpha, "inverse": r / alpha, "alpha_both": alpha}.get(knob, alpha / r)
        A, B = torch.empty(r, base.in_features), torch.zeros(base.out_features, r)
        nn.init.kaiming_uniform_(A, a=math.sqrt(5))
        if knob == "init_swapped":
            A, B = torch.zeros(r, base.in_features), torch.randn(base.out_features, r) * 0.01
        self.lora_A, self.lora_B = nn.Parameter(A), nn.Parameter(B)
        if knob != "not_frozen":
            base.requires_grad_(False)

    def forward(self, x):
        y = self.base(x)
        if self.merged and self.knob != "merge_no_flag":
            return y
        extra = self.scale * (x @ self.lora_A.T @ self.lora_B.T)
        return y + extra + (self.base.bias if self.knob == "bias_twice" else 0)

    @torch.no_grad()
    def merge(self):
        delta = self.lora_B @ self.lora_A
        s = 1.0 if self.knob in ("merge_no_scale", "alpha_both") else self.scale
        self.base.weight += -s * delta if self.knob == "merge_minus" else s * delta
        self.merged = True


for knob, expect in [("alpha", r"scal|alpha|/ r|/r"), ("inverse", r"scal|invert|r / alpha|r/alpha"),
                     ("init_swapped", r"init|zero"), ("not_frozen", r"frozen|freeze|requires_grad"),
                     ("merge_no_scale", r"merge.*scal|scal.*merge"), ("merge_minus", r"sign|subtract|minus|merge"),
                     ("merge_no_flag", r"twice|double|again|merge"), ("bias_twice", r"bias"),
                     ("alpha_both", both(r"scal|alpha", r"merge"))]:
    mistake(check_lora_layer, expect)(type("Student", (LoRA10,), {"knob": knob}))
valid(check_lora_layer)(type("Student", (LoRA10,), {"knob": None}))


class _LoRAZeroB(nn.Module):  # valid: nn.Linear adapters, F.linear on the summed weight, merge folds then zeroes B
    def __init__(self, base, r, alpha):
        super().__init__()
        self.base, self.s = base.requires_grad_(False), alpha / r
        self.lora_A = nn.Linear(base.in_features, r, bias=False)
        self.lora_B = nn.Linear(r, base.out_features, bias=False)
        nn.init.zeros_(self.lora_B.weight)

    def forward(self, x):
        return F.linear(x, self.base.weight + self.s * self.lora_B.weight @ self.lora_A.weight, self.base.bias)

    @torch.no_grad()
    def merge(self):
        self.base.weight.add_(self.s * self.lora_B.weight @ self.lora_A.weight)
        self.lora_B.weight.zero_()


valid(check_lora_layer)(_LoRAZeroB)


# ------------------------------------------------------------------------------------------ DPO loss
def logps10(model, x, y, mean=False, masked=True, probs=False):
    logits = model(x.flatten(0, 1))[0]
    t = y.flatten(0, 1)
    m = t != -1
    lp = (F.softmax if probs else F.log_softmax)(logits, -1).gather(-1, t.clamp(min=0)[..., None]).squeeze(-1)
    s = (lp * m).sum(-1) if masked else lp.sum(-1)
    return (s / m.sum(-1) if mean else s).view(-1, 2)


def dpo10(sign=1, ref=True, mean=False, masked=True, beta_out=False, ref_grad=False, logsig=True, reduce="mean",
          ref_swap=False, probs=False):
    def fn(policy, reference, x, y, beta):
        pi = logps10(policy, x, y, mean, masked, probs)
        if ref:
            with (torch.enable_grad() if ref_grad else torch.no_grad()):
                r = logps10(reference, x, y, mean, masked, probs)
        else:
            r = torch.zeros_like(pi)
        if ref_swap:
            r = r.flip(-1)
        diff = sign * ((pi[:, 0] - r[:, 0]) - (pi[:, 1] - r[:, 1]))
        z = diff if beta_out else beta * diff
        per = -F.logsigmoid(z) if logsig else -z
        per = beta * per if beta_out else per
        return per.mean() if reduce == "mean" else per.sum()
    return fn


def _dpo_unclamped(policy, reference, x, y, beta):  # gathers at y = -1 (index error, or the last token)
    def lp(model):
        logits = model(x.flatten(0, 1))[0]
        t = y.flatten(0, 1)
        return (F.log_softmax(logits, -1).gather(-1, t[..., None]).squeeze(-1) * (t != -1)).sum(-1).view(-1, 2)
    pi = lp(policy)
    with torch.no_grad():
        r = lp(reference)
    return -F.logsigmoid(beta * ((pi[:, 0] - r[:, 0]) - (pi[:, 1] - r[:, 1]))).mean()


for kw, expect in [({"sign": -1}, r"sign|swap|chosen|rejected|flip"), ({"ref": False}, r"reference"),
                   ({"mean": True}, r"mean|average|length|sum|per token"), ({"masked": False}, r"mask|prompt|padding"),
                   ({"beta_out": True}, r"beta"), ({"ref_grad": True}, r"grad|reference|detach|no_grad"),
                   ({"logsig": False}, r"sigmoid|log"), ({"reduce": "sum"}, r"sum|mean|reduc|average"),
                   ({"ref_swap": True}, r"reference|swap|chosen|rejected"), ({"probs": True}, r"log|prob|softmax"),
                   ({"masked": False, "beta_out": True}, both(r"mask|prompt|padding", r"beta")),
                   ({"sign": -1, "reduce": "sum"}, both(r"sign|swap|flip", r"sum|reduc"))]:
    mistake(check_dpo_loss, expect)(dpo10(**kw))
mistake(check_dpo_loss, r"-1|index|clamp|ignore|gather|range")(_dpo_unclamped)


@valid(check_dpo_loss)
def _dpo_ce(policy, reference, x, y, beta):  # log-probs from cross_entropy, logsigmoid written as -softplus(-z)
    def seq(model):
        logits = model(x.flatten(0, 1))[0]
        nll = F.cross_entropy(logits.transpose(1, 2), y.flatten(0, 1), ignore_index=-1, reduction="none")
        return (-nll.sum(-1)).view(-1, 2)
    pc, pr = seq(policy).unbind(-1)
    with torch.no_grad():
        rc, rr = seq(reference).unbind(-1)
    return F.softplus(-beta * ((pc - pr) - (rc - rr))).mean()


# ------------------------------------------------------------------------------------------ GRPO advantages
def adv10(unbiased=True, dim=1, eps=1e-4, use_flag=True, centre=True, scale="std", keepdim=True, sign=1,
          in_place=False, eps_in_sqrt=False):
    def fn(rewards, normalize_std):
        r = rewards
        m = r.mean() if dim is None else r.mean(dim, keepdim=keepdim)
        if in_place:
            r -= m
            a = r
        else:
            a = sign * ((r - m) if centre else r)
        if normalize_std or not use_flag:
            if scale == "range":
                d = r.amax(1, keepdim=True) - r.amin(1, keepdim=True) + eps
            elif eps_in_sqrt:
                d = (r.var(1, keepdim=True, unbiased=unbiased) + eps).sqrt()
            else:
                d = (r.std(unbiased=unbiased) if dim is None else r.std(dim, keepdim=keepdim, unbiased=unbiased)) + eps
            a = a / d
        return a
    return fn


for kw, expect in [({"unbiased": False}, r"bessel|unbiased|biased|n-1|n - 1|population"),
                   ({"dim": None}, r"global|batch|group|whole|all"), ({"eps": 0.0}, r"eps|nan|zero|divid"),
                   ({"dim": 0}, r"dim|axis|prompt|group|column"), ({"use_flag": False}, r"normalize_std|flag|ignor"),
                   ({"centre": False}, r"mean|centre|center|subtract"), ({"scale": "range"}, r"range|max|min|std"),
                   ({"keepdim": False}, r"shape|keepdim|broadcast"), ({"sign": -1}, r"sign|flip|negat"),
                   ({"in_place": True}, r"in.place|input|modif|caller|mutat"),
                   ({"unbiased": False, "dim": None}, both(r"bessel|unbiased|biased|n-1|population",
                                                            r"global|batch|group|whole|all"))]:
    mistake(check_group_advantages, expect)(adv10(**kw))
valid(check_group_advantages)(adv10(eps_in_sqrt=True, eps=1e-8))
valid(check_group_advantages)(lambda r, s: (r - r.mean(-1, keepdim=True)) / (r.std(-1, keepdim=True).clamp(min=1e-6)
                                                                             if s else 1))


@valid(check_group_advantages)
def _adv_manual(rewards, normalize_std):  # the unbiased std written out, torch.std_mean avoided
    G = rewards.shape[1]
    m = rewards.sum(1, keepdim=True) / G
    out = rewards - m
    if normalize_std:
        out = out / (((out ** 2).sum(1, keepdim=True) / (G - 1)).sqrt() + 1e-8)
    return out
