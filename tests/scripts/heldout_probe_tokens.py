"""The held-out probe, round 1, part 2: sampling, greedy, KV cache, BPE, LR schedule, weight decay. See
heldout_probe.py."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import mingpt.exercises as ex

from heldout_probe_models import ROUND, cls_with, mistake, valid  # noqa: F401


# ------------------------------------------------------------------------------------------ sampling
def topk(lg, k, keep_ties=True, smallest=False, fill=float("-inf")):
    if k is None or k >= lg.size(-1):
        return lg
    kth = torch.topk(lg, k, dim=-1, largest=not smallest).values[:, -1:]
    drop = (lg > kth) if smallest else ((lg < kth) if keep_ties else (lg <= kth))
    return lg.masked_fill(drop, fill)


def topp(lg, p, mode="ok", fill=float("-inf")):
    if p is None or p >= 1.0:
        return lg
    s, idx = torch.sort(lg, dim=-1, descending=True)
    probs = s.softmax(-1)
    cum = probs.cumsum(-1)
    drop = {"ok": cum - probs >= p, "crossing": cum > p, "ge": cum >= p, "logits": s.cumsum(-1) - s >= p}[mode]
    drop[:, 0] = False if mode != "zero" else drop[:, 0]
    return lg.masked_fill(drop.scatter(-1, idx, drop), fill)


def sampler(order="kp", temp="div", k_kw=None, p_kw=None, fill=None):
    def fn(logits, temperature=1.0, top_k=None, top_p=None):
        lg = logits / temperature if temp == "div" else (logits * temperature if temp == "mul" else logits)
        if order == "kp":
            lg = topp(topk(lg, top_k, **(k_kw or {})), top_p, **(p_kw or {}))
        else:
            lg = topk(topp(lg, top_p, **(p_kw or {})), top_k, **(k_kw or {}))
        probs = F.softmax(lg, dim=-1)
        if temp == "after":
            probs = probs ** (1 / temperature)
            probs = probs / probs.sum(-1, keepdim=True)
        return probs
    return fn


for fn, expect in [(sampler(temp="mul"), r"temperature|multipl"),
                   (sampler(temp="none"), r"temperature"),
                   (sampler(k_kw={"keep_ties": False}), r"top-k|k - 1|one too few|<="),
                   (sampler(k_kw={"smallest": True}), r"end|smallest|least|top-k"),
                   (sampler(p_kw={"mode": "crossing"}), r"cross"),
                   (sampler(p_kw={"mode": "logits"}), r"logit|cumulative|probabilit"),
                   (sampler(order="pk"), r"order|before|top-p first"),
                   (lambda lg, temperature=1.0, top_k=None, top_p=None: F.softmax(topp(
                       topk(lg / temperature, top_k, fill=0.0), top_p, fill=0.0), -1), r"-inf|zero|0")]:
    mistake(ex.check_sampling_probs, expect)(fn)
valid(ex.check_sampling_probs)(sampler(temp="div"))


@valid(ex.check_sampling_probs)
def sampling_with_loop(logits, temperature=1.0, top_k=None, top_p=None):
    probs = []
    for row in logits / temperature:
        row = row.clone()
        if top_k is not None:
            row[row < row.sort(descending=True).values[min(top_k, len(row)) - 1]] = -math.inf
        if top_p is not None:
            order = row.argsort(descending=True)
            p = row.softmax(0)[order]
            total = 0.0
            for j, tok in enumerate(order.tolist()):
                if total >= top_p:
                    row[tok] = -math.inf
                total += p[j].item()
        probs.append(row.softmax(0))
    return torch.stack(probs)


mistake(ex.check_greedy, r"axis")(lambda lg: lg.argmax(0))
mistake(ex.check_greedy, r"shape|keepdim|dim")(lambda lg: lg.argmax(-1, keepdim=True))
mistake(ex.check_greedy, r"sampl|random")(lambda lg: torch.multinomial(lg.softmax(-1), 1, generator=torch.Generator()
                                                                       .manual_seed(0)).squeeze(-1))
mistake(ex.check_greedy, r"smallest|min|least")(lambda lg: lg.argmin(-1))
valid(ex.check_greedy)(lambda lg: lg.softmax(-1).argmax(-1))
valid(ex.check_greedy)(lambda lg: torch.tensor([max(range(len(r)), key=r.__getitem__) for r in lg.tolist()]))


# ------------------------------------------------------------------------------------------ KV cache
class Cache:
    def __init__(self, n_layer, max_length):
        self.k, self.v, self.length, self.max_length = [None] * n_layer, [None] * n_layer, 0, max_length

    def store(self, old, new):
        return new if old is None else torch.cat([old, new], dim=2)

    def update(self, layer, k, v):
        self.k[layer], self.v[layer] = self.store(self.k[layer], k), self.store(self.v[layer], v)
        return self.k[layer], self.v[layer]

    def advance(self, T):
        self.length += T


valid(ex.check_kv_cache)(Cache)
mistake(ex.check_kv_cache, r"axis|dim")(cls_with(Cache, store=lambda s, o, n: n if o is None else torch.cat([o, n], 1)))
mistake(ex.check_kv_cache, r"length|advance|count|position")(cls_with(Cache, advance=lambda s, T: None))


def counting_in_update(self, layer, k, v):
    self.length += k.shape[2]
    return Cache.update(self, layer, k, v)


mistake(ex.check_kv_cache, r"length|advance|count|position")(cls_with(Cache, update=counting_in_update))
mistake(ex.check_kv_cache, r"forget|earlier")(cls_with(Cache, store=lambda s, o, n: n))
mistake(ex.check_kv_cache, r"value|only the keys")(cls_with(Cache, update=lambda s, layer, k, v: (
    s.k.__setitem__(layer, s.store(s.k[layer], k)), (s.k[layer], v))[1]))
mistake(ex.check_kv_cache, r"share|one cache|layer")(cls_with(Cache, update=lambda s, layer, k, v: Cache.update(
    s, 0, k, v)))


def trimmed_to_block(self, layer, k, v):
    K, V = Cache.update(self, layer, k, v)
    return K[:, :, -4:], V[:, :, -4:]  # keeps only a 4-position window: forgets the oldest


mistake(ex.check_kv_cache, r"window|forget|earlier|trim|oldest")(cls_with(Cache, update=trimmed_to_block))


# ------------------------------------------------------------------------------------------ BPE merge
@mistake(ex.check_merge, r"first")
def merge_first_only(ids, pair, new_id):
    for i in range(len(ids) - 1):
        if (ids[i], ids[i + 1]) == tuple(pair):
            return ids[:i] + [new_id] + ids[i + 2:]
    return list(ids)


@mistake(ex.check_merge, r"overlap|skip|twice|second|right half")
def merge_overlapping(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
        else:
            out.append(ids[i])
        i += 1  # forgot to skip the pair's second element after a merge
    return out


@mistake(ex.check_merge, r"last")
def merge_drops_last(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids) - 1:
        if ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


@mistake(ex.check_merge, r"right|end|backward|revers")
def merge_right_to_left(ids, pair, new_id):
    out, i = [], len(ids) - 1
    while i >= 0:
        if i > 0 and ids[i - 1] == pair[0] and ids[i] == pair[1]:
            out.append(new_id)
            i -= 2
        else:
            out.append(ids[i])
            i -= 1
    return out[::-1]


@mistake(ex.check_merge, r"string|digit|text|str")
def merge_by_string(ids, pair, new_id):
    s = " ".join(map(str, ids)).replace(f"{pair[0]} {pair[1]}", str(new_id))
    return [int(t) for t in s.split()]


@valid(ex.check_merge)
def merge_with_skip_flag(ids, pair, new_id):
    out, skip = [], False
    for a, b in zip(ids, ids[1:] + [None]):
        if skip:
            skip = False
            continue
        if (a, b) == tuple(pair):
            out.append(new_id)
            skip = True
        else:
            out.append(a)
    return out


# ------------------------------------------------------------------------------------------ BPE encode
def merge(ids, pair, new_id):
    return merge_with_skip_flag(ids, pair, new_id)


def pairs(ids):
    return list(zip(ids, ids[1:]))


@valid(ex.check_bpe_encode)
def encode_by_rank_order(ids, merges):
    ids = list(ids)
    for pair, new_id in sorted(merges.items(), key=lambda kv: kv[1]):
        ids = merge(ids, pair, new_id)
    return ids


@valid(ex.check_bpe_encode)
def encode_minbpe(ids, merges):
    ids = list(ids)
    while len(ids) >= 2:
        pair = min(set(pairs(ids)), key=lambda p: merges.get(p, float("inf")))
        if pair not in merges:
            break
        ids = merge(ids, pair, merges[pair])
    return ids


def encode_choosing(choose, once=False):
    def encode(ids, merges):
        ids = list(ids)
        while True:
            cands = [p for p in pairs(ids) if p in merges]
            if not cands:
                return ids
            ids = merge(ids, choose(cands, merges), merges[choose(cands, merges)])
            if once:
                return ids
    return encode


mistake(ex.check_bpe_encode, r"highest|rank|latest")(encode_choosing(lambda c, m: max(c, key=m.get)))
mistake(ex.check_bpe_encode, r"leftmost|left|position|first pair")(encode_choosing(lambda c, m: c[0]))
mistake(ex.check_bpe_encode, r"once|one merge|single|stop|repeat")(
    encode_choosing(lambda c, m: min(c, key=m.get), once=True))
mistake(ex.check_bpe_encode, r"order|insertion|dict|rank")(lambda ids, merges: [
    ids := merge(ids, p, n) for p, n in merges.items()][-1] if merges else list(ids))
mistake(ex.check_bpe_encode, r"one pass|once|one merge|single|repeat")(lambda ids, merges: (lambda out: out)(
    [x for x in encode_choosing(lambda c, m: min(c, key=m.get), once=True)(ids, merges)]))


# ------------------------------------------------------------------------------------------ LR schedule
def lr_from(warm=None, decay=None, after=None):
    def fn(it, lr, mn, W, D):
        if it < W:
            return warm(it, lr, W) if warm else lr * (it + 1) / (W + 1)
        if it >= D:
            return after(lr, mn) if after else mn
        return decay(it, lr, mn, W, D) if decay else mn + 0.5 * (1 + math.cos(math.pi * (it - W) / (D - W))) * (lr - mn)
    return fn


for fn, expect in [(lr_from(warm=lambda it, lr, W: lr * (it + 1) / W), r"warm"),
                   (lr_from(warm=lambda it, lr, W: lr * it / W), r"first step|0|warm"),
                   (lr_from(decay=lambda it, lr, mn, W, D: 0.5 * (1 + math.cos(math.pi * (it - W) / (D - W))) * lr),
                    r"min_lr|zero|0|floor"),
                   (lr_from(decay=lambda it, lr, mn, W, D: mn + 0.5 * (1 + math.cos(math.pi * it / D)) * (lr - mn)),
                    r"warm|progress|start|it - warmup|from 0"),
                   (lr_from(after=lambda lr, mn: lr), r"after|flat|floor|restart"),
                   (lr_from(decay=lambda it, lr, mn, W, D: mn + (1 + math.cos(math.pi * (it - W) / (D - W)))
                            * (lr - mn)),
                    r"half|0.5|factor"),
                   (lr_from(decay=lambda it, lr, mn, W, D: mn + 0.5 * (1 + math.cos(math.pi * (it - W) / D))
                            * (lr - mn)),
                    r"progress|decay|lr_decay|length|denominator"),
                   (lr_from(decay=lambda it, lr, mn, W, D: mn + (lr - mn) * (1 - (it - W) / (D - W))), r"linear"),
                   (lr_from(decay=lambda it, lr, mn, W, D: mn + 0.5 * (1 + math.cos(math.pi * (it + 1 - W) / (D - W)))
                            * (lr - mn)), r"off by one|it \+ 1|one step|early")]:
    mistake(ex.check_lr_schedule, expect)(fn)
valid(ex.check_lr_schedule)(lambda it, lr, mn, W, D: (lr * (it + 1) / (W + 1)) if it < W else (
    mn if it >= D else mn + (lr - mn) * math.cos(0.5 * math.pi * (it - W) / (D - W)) ** 2))


# ------------------------------------------------------------------------------------------ weight decay
def groups(rule):
    def fn(model, weight_decay):
        named = list(model.named_parameters())
        return [{"params": [p for n, p in named if rule(model, n, p)], "weight_decay": weight_decay},
                {"params": [p for n, p in named if not rule(model, n, p)], "weight_decay": 0.0}]
    return fn


for rule, expect in [(lambda m, n, p: p.dim() >= 2, r"embedding|wpe|wte|position"),
                     (lambda m, n, p: n.endswith("weight"), r"layernorm|norm"),
                     (lambda m, n, p: True, r"everything|all|bias|norm"),
                     (lambda m, n, p: p.dim() < 2, r"invert|swap|revers|opposite|bias"),
                     (lambda m, n, p: n.endswith("weight") and "ln" not in n, r"embedding|wpe|wte"),
                     (lambda m, n, p: "c_attn.weight" in n or "c_fc.weight" in n,
                      r"missing|c_proj|some|not all|matmul weights")]:
    mistake(ex.check_weight_decay_groups, expect)(groups(rule))
mistake(ex.check_weight_decay_groups, r"only|missing|every parameter|all parameters|left out|forgot")(
    lambda model, weight_decay: [{"params": [p for m in model.modules() if isinstance(m, nn.Linear)
                                             for p in [m.weight]], "weight_decay": weight_decay}])
valid(ex.check_weight_decay_groups)(lambda model, weight_decay: [
    {"params": [m.weight for m in model.modules() if isinstance(m, nn.Linear)], "weight_decay": weight_decay},
    {"params": [p for mn, m in model.named_modules() for pn, p in m.named_parameters(recurse=False)
                if not (isinstance(m, nn.Linear) and pn == "weight")
                and all(p is not l.weight for l in model.modules() if isinstance(l, nn.Linear))], "weight_decay": 0.0}])


