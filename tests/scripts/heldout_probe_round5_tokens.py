"""The held-out probe, round 5 (tokens side): sampling, greedy, KV cache, BPE, LR schedule, weight decay and the
post-training checkers. Written before reading the checkers' mistake tables, counted before any change. See
heldout_probe.py."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import mingpt.exercises as ex

import heldout_probe_round4  # noqa: F401  (rounds register in order)
from heldout_probe_models import ROUND, cls_with, mistake, valid
from heldout_probe_tokens import Cache, groups, lr_from, merge, pairs, topk, topp

ROUND[0] = 5


# ------------------------------------------------------------------------------------------ sampling
def probs_with(temp=lambda lg, t: lg / t, k=topk, p=topp, after=lambda pr, t: pr):
    def fn(logits, temperature=1.0, top_k=None, top_p=None):
        return after(F.softmax(p(k(temp(logits, temperature), top_k), top_p), -1), temperature)
    return fn


def topp_unsorted(lg, p):  # cumulative sum in vocabulary order: no sort
    if p is None or p >= 1.0:
        return lg
    probs = lg.softmax(-1)
    cum = probs.cumsum(-1)
    return lg.masked_fill(cum - probs >= p, float("-inf"))


def topp_ascending(lg, p):  # sorted the wrong way round
    if p is None or p >= 1.0:
        return lg
    s, idx = torch.sort(lg, dim=-1)
    probs = s.softmax(-1)
    cum = probs.cumsum(-1)
    drop = cum - probs >= p
    drop[:, 0] = False
    return lg.masked_fill(drop.scatter(-1, idx, drop), float("-inf"))


def topp_no_first(lg, p):  # drops every token whose cumulative sum passes p, the top one included
    if p is None or p >= 1.0:
        return lg
    s, idx = torch.sort(lg, dim=-1, descending=True)
    drop = s.softmax(-1).cumsum(-1) > p
    return lg.masked_fill(drop.scatter(-1, idx, drop), float("-inf"))


mistake(ex.check_sampling_probs, r"cross|>=|equal")(probs_with(p=lambda lg, p: topp(lg, p, mode="ge")))
mistake(ex.check_sampling_probs, r"sort")(probs_with(p=topp_unsorted))
mistake(ex.check_sampling_probs, r"sort|ascending|smallest|end|least")(probs_with(p=topp_ascending))
mistake(ex.check_sampling_probs, r"temperature|after|softmax")(probs_with(
    temp=lambda lg, t: lg, after=lambda pr, t: (pr ** (1 / t)) / (pr ** (1 / t)).sum(-1, keepdim=True)))
mistake(ex.check_sampling_probs, r"temperature|after|normal|sum")(probs_with(temp=lambda lg, t: lg,
                                                                             after=lambda pr, t: pr / t))
mistake(ex.check_sampling_probs, r"k \+ 1|one too many|top-k|off")(probs_with(
    k=lambda lg, k: topk(lg, None if k is None else k + 1)))
mistake(ex.check_sampling_probs, r"first|nan|at least one|cross|top token|empty")(probs_with(p=topp_no_first))
mistake(ex.check_sampling_probs, r"both|together|combin|ignor|top-p")(
    lambda lg, temperature=1.0, top_k=None, top_p=None: F.softmax(
        topk(lg / temperature, top_k) if top_k is not None else topp(lg / temperature, top_p), -1))
mistake(ex.check_sampling_probs, r"renormal|sum|normal")(
    lambda lg, temperature=1.0, top_k=None, top_p=None: F.softmax(lg / temperature, -1).masked_fill(
        topp(topk(lg / temperature, top_k), top_p) == float("-inf"), 0.0))
valid(ex.check_sampling_probs)(  # top-k before the temperature: dividing by T > 0 keeps the order
    lambda lg, temperature=1.0, top_k=None, top_p=None: F.softmax(topp(topk(lg, top_k) / temperature, top_p), -1))


def sampling_in_place(logits, temperature=1.0, top_k=None, top_p=None):
    logits.div_(temperature)  # changes the caller's tensor
    return F.softmax(topp(topk(logits, top_k), top_p), -1)


mistake(ex.check_sampling_probs, r"in.place|mutat|modif|input|caller")(sampling_in_place)


@valid(ex.check_sampling_probs)
def sampling_with_where(logits, temperature=1.0, top_k=None, top_p=None):
    lg = logits / temperature
    if top_k is not None:
        kth = lg.topk(min(top_k, lg.size(-1)), -1).values[..., -1:]
        lg = torch.where(lg < kth, torch.full_like(lg, -math.inf), lg)
    if top_p is not None:
        s, idx = lg.sort(-1, descending=True)
        before = s.softmax(-1).cumsum(-1) - s.softmax(-1)
        s = torch.where(before >= top_p, torch.full_like(s, -math.inf), s)
        lg = torch.empty_like(s).scatter_(-1, idx, s)
    return lg.softmax(-1)


mistake(ex.check_greedy, r"value|ind|max|largest logit")(lambda lg: lg.max(-1).values)
mistake(ex.check_greedy, r"flat|batch|row|whole")(lambda lg: lg.flatten().argmax().repeat(lg.size(0)))


# ------------------------------------------------------------------------------------------ KV cache
mistake(ex.check_kv_cache, r"order|before|prepend|revers|front")(cls_with(
    Cache, store=lambda s, o, n: n if o is None else torch.cat([n, o], dim=2)))
mistake(ex.check_kv_cache, r"axis|dim|batch")(cls_with(
    Cache, store=lambda s, o, n: n if o is None else torch.cat([o, n], dim=0)))
mistake(ex.check_kv_cache, r"length|advance|count|position|one")(cls_with(Cache, advance=lambda s, T: setattr(
    s, "length", s.length + 1)))
mistake(ex.check_kv_cache, r"length|position|start|off|initial")(cls_with(
    Cache, __init__=lambda s, n, m: (Cache.__init__(s, n, m), setattr(s, "length", 1))[0]))
mistake(ex.check_kv_cache, r"value|key")(cls_with(Cache, update=lambda s, layer, k, v: (
    lambda K, V: (K, K))(*Cache.update(s, layer, k, v))))
mistake(ex.check_kv_cache, r"new|current|stale|previous|before|without|forget|latest")(cls_with(
    Cache, update=lambda s, layer, k, v: (lambda old: (Cache.update(s, layer, k, v), old if old[0] is not None
                                                       else (k, v))[1])((s.k[layer], s.v[layer]))))


class BufferCache:  # a preallocated buffer, written at the current length
    def __init__(self, n_layer, max_length, offset=0, whole=False):
        self.k, self.v, self.length, self.max_length = [None] * n_layer, [None] * n_layer, 0, max_length
        self.offset, self.whole = offset, whole

    def update(self, layer, k, v):
        if self.k[layer] is None:
            B, H, _, D = k.shape
            self.k[layer] = k.new_zeros(B, H, self.max_length + 2, D)
            self.v[layer] = v.new_zeros(B, H, self.max_length + 2, D)
        start = self.length + self.offset
        self.k[layer][:, :, start:start + k.shape[2]] = k
        self.v[layer][:, :, start:start + k.shape[2]] = v
        end = start + k.shape[2]
        return (self.k[layer], self.v[layer]) if self.whole else (self.k[layer][:, :, :end], self.v[layer][:, :, :end])

    def advance(self, T):
        self.length += T


valid(ex.check_kv_cache)(BufferCache)
mistake(ex.check_kv_cache, r"offset|position|gap|length|zero|hole")(cls_with(
    BufferCache, __init__=lambda s, n, m: BufferCache.__init__(s, n, m, offset=1)))
mistake(ex.check_kv_cache, r"buffer|whole|max_length|zeros|unused|prealloc|padding")(cls_with(
    BufferCache, __init__=lambda s, n, m: BufferCache.__init__(s, n, m, whole=True)))


class ChunkCache:  # keeps a list of chunks per layer and joins them on every call
    def __init__(self, n_layer, max_length):
        self.chunks, self.length = [[] for _ in range(n_layer)], 0

    def update(self, layer, k, v):
        self.chunks[layer].append((k, v))
        return tuple(torch.cat(part, dim=-2) for part in zip(*self.chunks[layer]))

    def advance(self, T):
        self.length += T


valid(ex.check_kv_cache)(ChunkCache)


# ------------------------------------------------------------------------------------------ BPE merge
def merge_matching(match, step_after_match=2):
    def fn(ids, pair, new_id):
        out, i = [], 0
        while i < len(ids):
            if i + 1 < len(ids) and match(ids[i], ids[i + 1], pair):
                out.append(new_id)
                i += step_after_match
            else:
                out.append(ids[i])
                i += 1
        return out
    return fn


mistake(ex.check_merge, r"pair|first|second|either|element")(merge_matching(lambda a, b, p: b == p[1]))
mistake(ex.check_merge, r"revers|order|swap|pair")(merge_matching(lambda a, b, p: (b, a) == tuple(p)))
mistake(ex.check_merge, r"skip|jump|overlap|twice|advance|both|second element|right half")(merge_matching(
    lambda a, b, p: (a, b) == tuple(p), step_after_match=1))
mistake(ex.check_merge, r"tuple|list|type|never|nothing")(merge_matching(lambda a, b, p: [a, b] == p))


@mistake(ex.check_merge, r"in.place|mutat|modif|input|caller")
def merge_in_place(ids, pair, new_id):
    i = 0
    while i < len(ids) - 1:
        if (ids[i], ids[i + 1]) == tuple(pair):
            ids[i:i + 2] = [new_id]
        i += 1
    return ids


@valid(ex.check_merge)
def merge_by_index_list(ids, pair, new_id):
    starts, i = [], 0
    while i < len(ids) - 1:
        if ids[i] == pair[0] and ids[i + 1] == pair[1]:
            starts.append(i)
            i += 2
        else:
            i += 1
    out, last = [], 0
    for s in starts:
        out += list(ids[last:s]) + [new_id]
        last = s + 2
    return out + list(ids[last:])


# ------------------------------------------------------------------------------------------ BPE encode
def encode_loop(choose, merge_fn=merge, guard=2, new_id=lambda merges, pair: merges[pair]):
    def fn(ids, merges):
        ids = list(ids)
        while len(ids) >= guard:
            cands = [p for p in pairs(ids) if p in merges]
            if not cands:
                break
            pair = choose(cands, merges, ids)
            ids = merge_fn(ids, pair, new_id(merges, pair))
        return ids
    return fn


lowest = lambda c, m, ids: min(c, key=m.get)
mistake(ex.check_bpe_encode, r"id|off by one|new_id|\+ ?1")(encode_loop(lowest, new_id=lambda m, p: m[p] + 1))
mistake(ex.check_bpe_encode, r"frequen|count|common")(encode_loop(
    lambda c, m, ids: max(c, key=lambda p: (pairs(ids).count(p), -m[p]))))
mistake(ex.check_bpe_encode, r"stop|length|two|guard|short")(encode_loop(lowest, guard=3))
mistake(ex.check_bpe_encode, r"overlap|merge|skip")(encode_loop(lowest, merge_fn=merge_matching(
    lambda a, b, p: (a, b) == tuple(p), step_after_match=1)))
mistake(ex.check_bpe_encode, r"order|revers|rank|highest|latest")(lambda ids, merges: [
    ids := merge(ids, p, n) for p, n in sorted(merges.items(), key=lambda kv: -kv[1])][-1] if merges else list(ids))


@mistake(ex.check_bpe_encode, r"default|unknown|inf|stop|get|mergeable")
def encode_default_zero(ids, merges):
    ids = list(ids)
    while len(ids) >= 2:
        pair = min(pairs(ids), key=lambda p: merges.get(p, 0))  # unknown pairs rank first: stops early
        if pair not in merges:
            break
        ids = merge(ids, pair, merges[pair])
    return ids


@mistake(ex.check_bpe_encode, r"in.place|mutat|modif|input|caller")
def encode_in_place(ids, merges):
    work = ids
    while len(work) >= 2:
        cands = [p for p in pairs(work) if p in merges]
        if not cands:
            break
        pair = min(cands, key=merges.get)
        work[:] = merge(work, pair, merges[pair])
    return list(work)


@valid(ex.check_bpe_encode)
def encode_first_occurrence_each_time(ids, merges):
    ids = list(ids)
    while True:
        found = [(merges[p], i) for i, p in enumerate(pairs(ids)) if p in merges]
        if not found:
            return ids
        _, i = min(found)
        ids = ids[:i] + [merges[(ids[i], ids[i + 1])]] + ids[i + 2:]


# ------------------------------------------------------------------------------------------ LR schedule
cosine = lambda it, lr, mn, W, D: mn + 0.5 * (1 + math.cos(math.pi * (it - W) / (D - W))) * (lr - mn)
for fn, expect in [(lr_from(warm=lambda it, lr, W: lr * it / (W + 1)), r"warm|first step|0|it \+ 1"),
                   (lr_from(after=lambda lr, mn: 0.0), r"after|0|zero|floor|min_lr"),
                   (lr_from(decay=lambda it, lr, mn, W, D: mn + 0.5 * (1 + math.cos(math.pi * (it - W) / (D - W + 1)))
                            * (lr - mn)), r"never|floor|min_lr|denominator|progress|reach|length"),
                   (lr_from(decay=lambda it, lr, mn, W, D: mn + 0.5 * (1 + math.cos(math.pi * (it - W) / (D - W)))
                            * lr), r"min_lr|lr - min|subtract|range|amplitude"),
                   (lr_from(decay=lambda it, lr, mn, W, D: mn + 0.5 * (1 + math.cos(180 * (it - W) / (D - W)))
                            * (lr - mn)), r"degree|pi|radian"),
                   (lr_from(warm=lambda it, lr, W: lr), r"warm|constant|flat|no warmup"),
                   (lambda it, lr, mn, W, D: lr_from()(it, mn, lr, W, D), r"argument|order|swap|min_lr"),
                   (lr_from(decay=lambda it, lr, mn, W, D: mn + 0.5 * (1 + math.cos(math.pi * ((it - W) // (D - W))))
                            * (lr - mn)), r"integer|//|division|floor"),
                   (lr_from(decay=lambda it, lr, mn, W, D: mn + 0.5 * (1 + math.cos(math.pi * (it - W) / (D - W)))
                            * (lr - mn) if it < D - 1 else mn), r"early|one step|off by one|floor|D - 1")]:
    mistake(ex.check_lr_schedule, expect)(fn)


@mistake(ex.check_lr_schedule, r"warm|min_lr|start")
def warmup_from_min_lr(it, lr, mn, W, D):
    if it < W:
        return mn + (lr - mn) * (it + 1) / (W + 1)
    return lr_from()(it, lr, mn, W, D)


valid(ex.check_lr_schedule)(lambda it, lr, mn, W, D: lr * (it + 1) / (W + 1) if it < W else (
    mn if it > D else cosine(it, lr, mn, W, D)))
valid(ex.check_lr_schedule)(lambda it, lr, mn, W, D: lr * (it + 1) / (W + 1) if it < W else (
    cosine(min(it, D), lr, mn, W, D)))


# ------------------------------------------------------------------------------------------ weight decay
def linear_owned(model):
    return {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}


mistake(ex.check_weight_decay_groups, r"bias")(groups(lambda m, n, p: any(
    p is q for mod in m.modules() if isinstance(mod, nn.Linear) for q in mod.parameters())))
mistake(ex.check_weight_decay_groups, r"embedding|wpe|position")(groups(lambda m, n, p: p.dim() >= 2 and "wte" not in n
                                                                       or id(p) in linear_owned(m)))
mistake(ex.check_weight_decay_groups, r"weight_decay|hard|value|0\.1|argument")(lambda model, weight_decay: [
    {**g, "weight_decay": 0.1 if g["weight_decay"] else 0.0}
    for g in groups(lambda m, n, p: id(p) in linear_owned(m))(model, weight_decay)])
mistake(ex.check_weight_decay_groups, r"both|twice|duplicate|overlap")(lambda model, weight_decay: [
    {"params": [p for p in model.parameters() if id(p) in linear_owned(model)], "weight_decay": weight_decay},
    {"params": list(model.parameters()), "weight_decay": 0.0}])
valid(ex.check_weight_decay_groups)(groups(  # valid after all: lm_head.weight is wte.weight (tied), listed as wte
    lambda m, n, p: id(p) in linear_owned(m) and "lm_head" not in n))
mistake(ex.check_weight_decay_groups, r"name|string|tensor|parameter")(lambda model, weight_decay: [
    {"params": [n for n, p in model.named_parameters() if id(p) in linear_owned(model)], "weight_decay": weight_decay},
    {"params": [n for n, p in model.named_parameters() if id(p) not in linear_owned(model)], "weight_decay": 0.0}])
mistake(ex.check_weight_decay_groups, r"layernorm|norm")(groups(
    lambda m, n, p: n.endswith("weight") and "wte" not in n and "wpe" not in n))
valid(ex.check_weight_decay_groups)(groups(lambda m, n, p: n.endswith("weight") and "ln" not in n and "wte" not in n
                                           and "wpe" not in n or id(p) in linear_owned(m)))


# ------------------------------------------------------------------------------------------ SFT targets
def sft(keep=lambda a: a[1:], fill=-1, shift=1):
    def fn(ids, is_assistant):
        x, y = ids[:-1], ids[shift:] if shift else ids[:-1]
        return x, torch.where(torch.as_tensor(keep(is_assistant)), torch.as_tensor(y), torch.tensor(fill))
    return fn


mistake(ex.check_sft_targets, r"prompt|mask|user|every|all")(sft(keep=lambda a: torch.ones(len(a) - 1, dtype=bool)))
mistake(ex.check_sft_targets, r"shift|off by one|align|predicted|input")(sft(keep=lambda a: a[:-1]))
mistake(ex.check_sft_targets, r"-1|ignore|fill|0")(sft(fill=0))
mistake(ex.check_sft_targets, r"shift|copy|same")(sft(shift=0))
mistake(ex.check_sft_targets, r"invert|opposite|assistant|revers|user")(sft(keep=lambda a: ~torch.as_tensor(a)[1:]))
valid(ex.check_sft_targets)(lambda ids, a: (ids[:-1], torch.tensor(
    [t if k else -1 for t, k in zip(torch.as_tensor(ids)[1:].tolist(), torch.as_tensor(a)[1:].tolist())])))


# ------------------------------------------------------------------------------------------ LoRA
class LoRA(nn.Module):
    scale_rule = staticmethod(lambda alpha, r: alpha / r)

    def __init__(self, base, r, alpha):
        super().__init__()
        self.base, self.merged = base, False
        for p in base.parameters():
            p.requires_grad_(False)
        self.lora_A = nn.Parameter(torch.randn(r, base.in_features) / math.sqrt(base.in_features))
        self.lora_B = nn.Parameter(self.init_B(base.out_features, r))
        self.scale = self.scale_rule(alpha, r)

    def init_B(self, out, r):
        return torch.zeros(out, r)

    def forward(self, x):
        out = self.base(x)
        return out if self.merged else out + self.scale * (x @ self.lora_A.T @ self.lora_B.T)

    def merge(self):
        with torch.no_grad():
            self.base.weight += self.merge_scale() * self.lora_B @ self.lora_A
        self.merged = True

    def merge_scale(self):
        return self.scale


valid(ex.check_lora_layer)(LoRA)
mistake(ex.check_lora_layer, r"scale|alpha|/ ?r")(cls_with(LoRA, scale_rule=staticmethod(lambda alpha, r: alpha)))
mistake(ex.check_lora_layer, r"zero|init|B")(cls_with(LoRA, init_B=lambda s, o, r: torch.randn(o, r) * 0.1))
mistake(ex.check_lora_layer, r"scale|merge")(cls_with(LoRA, merge_scale=lambda s: 1.0))
mistake(ex.check_lora_layer, r"frozen|freez|requires_grad|base|train")(cls_with(
    LoRA, __init__=lambda s, b, r, a: (LoRA.__init__(s, b, r, a), [p.requires_grad_(True) for p in b.parameters()])[0]))
mistake(ex.check_lora_layer, r"twice|double|merged|again|after merg")(cls_with(
    LoRA, forward=lambda s, x: s.base(x) + s.scale * (x @ s.lora_A.T @ s.lora_B.T)))


# ------------------------------------------------------------------------------------------ DPO
def logps(model, x, y):
    logits = model(x.flatten(0, 1))[0]
    t = y.flatten(0, 1)
    tok = F.log_softmax(logits, -1).gather(-1, t.clamp(min=0)[..., None]).squeeze(-1)
    return (tok * (t != -1)).sum(-1).view(-1, 2)


def dpo(margin=lambda pi, ref, beta: beta * ((pi[:, 0] - ref[:, 0]) - (pi[:, 1] - ref[:, 1])),
        loss=lambda m: -F.logsigmoid(m).mean(), frozen=True, lp=logps):
    def fn(policy, reference, x, y, beta):
        pi = lp(policy, x, y)
        with torch.no_grad() if frozen else torch.enable_grad():
            ref = lp(reference, x, y)
        return loss(margin(pi, ref, beta))
    return fn


mistake(ex.check_dpo_loss, r"beta")(dpo(margin=lambda pi, ref, beta: ((pi[:, 0] - ref[:, 0]) - (pi[:, 1] - ref[:, 1]))
                                        / beta))
mistake(ex.check_dpo_loss, r"reference|frozen|grad|no_grad|detach")(dpo(frozen=False))
mistake(ex.check_dpo_loss, r"sign|swap|chosen|rejected|revers")(dpo(
    margin=lambda pi, ref, beta: beta * ((pi[:, 1] - ref[:, 1]) - (pi[:, 0] - ref[:, 0]))))
mistake(ex.check_dpo_loss, r"sum|mean|reduc")(dpo(loss=lambda m: -F.logsigmoid(m).sum()))
mistake(ex.check_dpo_loss, r"mean|average|sum|length|token")(dpo(lp=lambda mdl, x, y: logps(mdl, x, y) / (
    y != -1).sum(-1).clamp(min=1)))
mistake(ex.check_dpo_loss, r"mask|ignore|-1|prompt|every")(dpo(lp=lambda mdl, x, y: F.log_softmax(
    mdl(x.flatten(0, 1))[0], -1).gather(-1, y.flatten(0, 1).clamp(min=0)[..., None]).squeeze(-1).sum(-1).view(-1, 2)))
mistake(ex.check_dpo_loss, r"sigmoid|log")(dpo(loss=lambda m: -m.mean()))
mistake(ex.check_dpo_loss, r"reference|ref|subtract")(dpo(margin=lambda pi, ref, beta: beta * (pi[:, 0] - pi[:, 1])))
valid(ex.check_dpo_loss)(dpo(loss=lambda m: F.softplus(-m).mean()))


# ------------------------------------------------------------------------------------------ GRPO advantages
def adv(centre=lambda r: r.mean(1, keepdim=True), spread=lambda r: r.std(1, keepdim=True), eps=1e-6, flag=True):
    def fn(rewards, normalize_std):
        a = rewards - centre(rewards)
        return a / (spread(rewards) + eps) if (normalize_std or not flag) else a
    return fn


mistake(ex.check_group_advantages, r"axis|dim|group|prompt")(adv(spread=lambda r: r.std(0, keepdim=True)))
mistake(ex.check_group_advantages, r"group|batch|global|axis|whole")(adv(centre=lambda r: r.mean()))
mistake(ex.check_group_advantages, r"unbiased|biased|std|correction|n - 1")(adv(
    spread=lambda r: r.std(1, keepdim=True, unbiased=False)))
mistake(ex.check_group_advantages, r"normalize_std|flag|always|ignor")(adv(flag=False))
mistake(ex.check_group_advantages, r"eps|zero|nan|equal")(adv(eps=0.0))
valid(ex.check_group_advantages)(lambda r, s: (r - r.mean(1, keepdim=True)) / (
    r.std(1, keepdim=True).clamp(min=1e-6) if s else 1.0))
