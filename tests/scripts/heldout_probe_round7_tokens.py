"""The held-out probe, round 7 (tokens side): plausible student mistakes written from the exercises' docstrings and
the reference code only (without reading the checkers' tables or earlier rounds' mistakes), counted before any
tuning for them. See heldout_probe.py."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import heldout_probe_round6_tokens  # noqa: F401  (rounds register in order)
from heldout_probe_models import ROUND, cls_with, mistake, valid

import mingpt.exercises as ex

ROUND[0] = 7
INF = float("-inf")


# ------------------------------------------------------------------------------------------ sampling
def k_filter(lg, k):  # keeps every token tied with the k-th largest logit, as mingpt's filter_logits
    if k is None or k >= lg.size(-1):
        return lg
    return lg.masked_fill(lg < torch.topk(lg, k, dim=-1).values[:, -1:], INF)


def p_filter(lg, p, strict=False, unsort=True, roll=False, sort=True):
    if p is None or p >= 1.0:
        return lg
    if sort:
        s, idx = torch.sort(lg, dim=-1, descending=True)
    else:
        s, idx = lg, torch.arange(lg.size(-1)).expand_as(lg)
    pr = s.softmax(-1)
    cum = pr.cumsum(-1)
    if roll:  # "shift the mask right by one" written with roll: the last column wraps around to the first
        drop = torch.roll(cum > p, 1, dims=-1)
    else:
        drop = (cum - pr > p) if strict else (cum - pr >= p)
    if unsort:
        drop = drop.scatter(-1, idx, drop)
    return lg.masked_fill(drop, INF)


def sampler(t=lambda lg, t: lg / t, k=k_filter, p=p_filter, order="tkp", end=lambda lg: lg.softmax(-1)):
    def probs(logits, temperature=1.0, top_k=None, top_p=None):
        lg = logits
        for step in order:
            lg = {"t": lambda z: t(z, temperature), "k": lambda z: k(z, top_k), "p": lambda z: p(z, top_p)}[step](lg)
        return end(lg)
    return probs


def topk_sorted_slice(lg, k):  # exactly k tokens by position in the sort: ties with the k-th are cut
    if k is None or k >= lg.size(-1):
        return lg
    idx = torch.sort(lg, dim=-1, descending=True).indices[:, k:]
    return lg.scatter(-1, idx, INF)


def no_renormalise(logits, temperature=1.0, top_k=None, top_p=None):  # probabilities zeroed after the softmax
    lg = logits / temperature
    pr = lg.softmax(-1)
    kept = p_filter(k_filter(lg, top_k), top_p) > INF
    return pr * kept


def one_hot_argmax(logits, temperature=1.0, top_k=None, top_p=None):  # "sampling" by argmax of the probabilities
    pr = sampler()(logits, temperature, top_k, top_p)
    return F.one_hot(pr.argmax(-1), pr.size(-1)).float()


def in_place_temperature(logits, temperature=1.0, top_k=None, top_p=None):
    logits /= temperature  # divides the caller's tensor too
    return sampler(t=lambda lg, t: lg)(logits, temperature, top_k, top_p)


def topp_on_untempered(logits, temperature=1.0, top_k=None, top_p=None):  # nucleus chosen before the temperature
    keep = p_filter(k_filter(logits, top_k), top_p) > INF
    return (logits / temperature).masked_fill(~keep, INF).softmax(-1)


def tempered_probs(logits, temperature=1.0, top_k=None, top_p=None):  # valid: p ** (1/T), filtered on probabilities
    pr = logits.softmax(-1) ** (1.0 / temperature)
    pr = pr / pr.sum(-1, keepdim=True)
    if top_k is not None and top_k < pr.size(-1):
        pr = pr * (pr >= torch.topk(pr, top_k, -1).values[:, -1:])
        pr = pr / pr.sum(-1, keepdim=True)
    if top_p is not None and top_p < 1.0:
        s, idx = torch.sort(pr, -1, descending=True)
        before = s.cumsum(-1) - s  # the mass ranked above each token
        keep = (before < top_p).scatter(-1, idx, before < top_p)
        pr = pr * keep
        pr = pr / pr.sum(-1, keepdim=True)
    return pr


mistake(ex.check_sampling_probs, r"temperature.*(after|filter|top-p)|order|before the temperature")(
    sampler(order="kpt"))
valid(ex.check_sampling_probs)(sampler(k=topk_sorted_slice))  # exactly k of the tied: valid (lead's call)
mistake(ex.check_sampling_probs, r"strict|equal|>=|boundary|exactly")(sampler(p=lambda lg, p: p_filter(lg, p, True)))
mistake(ex.check_sampling_probs, r"roll|wrap|most likely|first")(sampler(p=lambda lg, p: p_filter(lg, p, roll=True)))
mistake(ex.check_sampling_probs, r"renormal|sum to 1|normalis")(no_renormalise)
mistake(ex.check_sampling_probs, r"order|top-p.*before|before.*top-k")(sampler(order="tpk"))
mistake(ex.check_sampling_probs, r"argmax|one-hot|greedy")(one_hot_argmax)
mistake(ex.check_sampling_probs, r"sort")(sampler(p=lambda lg, p: p_filter(lg, p, sort=False)))
mistake(ex.check_sampling_probs, r"scatter|unsort|sorted order|position")(sampler(p=lambda lg, p: p_filter(
    lg, p, unsort=False)))
mistake(ex.check_sampling_probs, r"in place|in-place|modif")(in_place_temperature)
mistake(ex.check_sampling_probs, r"temperature")(topp_on_untempered)
mistake(ex.check_sampling_probs, r"k \+ 1|one token too many|too many")(sampler(k=lambda lg, k: k_filter(
    lg, None if k is None else k + 1)))
mistake(ex.check_sampling_probs, r"top-p|p =|0\.9|fixed")(sampler(p=lambda lg, p: p_filter(
    lg, None if p is None else 0.9)))
mistake(ex.check_sampling_probs, r"temperature.*(renormal|sum)|(renormal|sum).*temperature")(
    lambda lg, temperature=1.0, top_k=None, top_p=None: no_renormalise(lg * temperature ** 2, temperature,
                                                                        top_k, top_p))
valid(ex.check_sampling_probs)(sampler(t=lambda lg, t: lg * (1.0 / t)))
valid(ex.check_sampling_probs)(tempered_probs)

mistake(ex.check_greedy, r"shape|keepdim")(lambda lg: lg.argmax(-1, keepdim=True))
mistake(ex.check_greedy, r"value|indices|max|largest logit")(lambda lg: torch.max(lg, -1)[0])


# ------------------------------------------------------------------------------------------ KV cache
class Cache:  # grows by concatenation
    def __init__(self, n_layer, max_length):
        self.k, self.v, self.length = [None] * n_layer, [None] * n_layer, 0

    def update(self, layer, k, v):
        self.k[layer] = k if self.k[layer] is None else torch.cat([self.k[layer], k], dim=2)
        self.v[layer] = v if self.v[layer] is None else torch.cat([self.v[layer], v], dim=2)
        return self.k[layer], self.v[layer]

    def advance(self, T):
        self.length += T


class Buffers:  # preallocated, as mingpt's KVCache
    shift, upto = 0, lambda self, end: end

    def __init__(self, n_layer, max_length):
        self.max_length, self.length, self.k, self.v = max_length, 0, [None] * n_layer, [None] * n_layer

    def update(self, layer, k, v):
        B, nh, T, hs = k.shape
        if self.k[layer] is None:
            self.k[layer] = torch.zeros(B, nh, self.max_length + 1, hs)
            self.v[layer] = torch.zeros(B, nh, self.max_length + 1, hs)
        start = self.length + self.shift
        self.k[layer][:, :, start:start + T] = k
        self.v[layer][:, :, start:start + T] = v
        end = self.upto(self.length + T)
        return self.k[layer][:, :, :end], self.v[layer][:, :, :end]

    def advance(self, T):
        self.length += T


class AliasedLists:  # [[]] * n_layer: one list object for every layer
    def __init__(self, n_layer, max_length):
        self.k, self.v, self.length = [[]] * n_layer, [[]] * n_layer, 0

    def update(self, layer, k, v):
        self.k[layer].append(k)
        self.v[layer].append(v)
        return torch.cat(self.k[layer], 2), torch.cat(self.v[layer], 2)

    def advance(self, T):
        self.length += T


def count_in_update(self, layer, k, v):  # length advanced by every layer's update (advance left empty)
    out = Cache.update(self, layer, k, v)
    self.length += k.size(2)
    return out


mistake(ex.check_kv_cache, r"off|position|shift|one")(cls_with(Buffers, shift=1))
mistake(ex.check_kv_cache, r"share|layer")(AliasedLists)
mistake(ex.check_kv_cache, r"length|advance|count")(cls_with(Cache, update=count_in_update, advance=lambda s, T: None))
mistake(ex.check_kv_cache, r"axis|dim|time")(cls_with(Cache, update=lambda s, layer, k, v: (
    s.k.__setitem__(layer, k if s.k[layer] is None else torch.cat([s.k[layer], k], -1)),
    s.v.__setitem__(layer, v if s.v[layer] is None else torch.cat([s.v[layer], v], -1)), s.k[layer], s.v[layer])[2:]))
mistake(ex.check_kv_cache, r"new|only|all|forget")(cls_with(Cache, update=lambda s, layer, k, v: (
    Cache.update(s, layer, k, v), (k, v))[1]))
mistake(ex.check_kv_cache, r"swap|keys and values|order")(cls_with(Cache, update=lambda s, layer, k, v: tuple(
    reversed(Cache.update(s, layer, k, v)))))
mistake(ex.check_kv_cache, r"new|length|last|missing|latest")(cls_with(Buffers, upto=lambda s, end: s.length))
valid(ex.check_kv_cache)(cls_with(Cache, update=lambda s, layer, k, v: tuple(
    t.detach().clone() for t in Cache.update(s, layer, k, v))))
valid(ex.check_kv_cache)(Buffers)


# ------------------------------------------------------------------------------------------ BPE
def merge_ok(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


@mistake(ex.check_merge, r"first|only one|once")
def merge_first_only(ids, pair, new_id):
    for i in range(len(ids) - 1):
        if (ids[i], ids[i + 1]) == tuple(pair):
            return ids[:i] + [new_id] + ids[i + 2:]
    return list(ids)


@mistake(ex.check_merge, r"skip|second|both|right|i \+= 2|kept")
def merge_no_skip(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
        else:
            out.append(ids[i])
        i += 1
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


@mistake(ex.check_merge, r"in place|in-place|modif|changed")
def merge_in_place(ids, pair, new_id):
    i = 0
    while i < len(ids) - 1:
        if ids[i] == pair[0] and ids[i + 1] == pair[1]:
            ids[i:i + 2] = [new_id]
        i += 1
    return ids


@valid(ex.check_merge)
def merge_with_flag(ids, pair, new_id):
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


def encode(pick=min, default=math.inf, guard=2, merge=merge_ok, write=lambda merges, pair: merges[pair]):
    def enc(ids, merges):
        ids = list(ids)
        while len(ids) >= guard:
            pairs = set(zip(ids, ids[1:]))
            pair = pick(pairs, key=lambda p: merges.get(p, default))
            if pair not in merges:
                break
            ids = merge(ids, pair, write(merges, pair))
        return ids
    return enc


def encode_in_place(ids, merges):  # merges into the caller's list
    while len(ids) >= 2:
        pair = min(zip(ids, ids[1:]), key=lambda p: merges.get(p, math.inf))
        if pair not in merges:
            break
        ids[:] = merge_ok(ids, pair, merges[pair])
    return ids


mistake(ex.check_bpe_encode, r"two|2|length|stop|single|last pair")(encode(guard=3))
mistake(ex.check_bpe_encode, r"highest|max|rank|latest")(encode(pick=max, default=-1))
mistake(ex.check_bpe_encode, r"default|unknown|stops|0")(encode(default=0))
mistake(ex.check_bpe_encode, r"in place|in-place|modif|changed")(encode_in_place)
mistake(ex.check_bpe_encode, r"id|offset|256|rank")(encode(write=lambda merges, pair: 256 + sorted(
    merges.values()).index(merges[pair])))
# written as a mistake, but valid: the pair stays the lowest-ranked one until every occurrence is merged
valid(ex.check_bpe_encode)(encode(merge=merge_first_only))
mistake(ex.check_bpe_encode, r"(highest|max|rank|latest).*(two|2|stop)|(two|2|stop).*(highest|max|rank|latest)")(
    encode(pick=max, default=-1, guard=3))


@valid(ex.check_bpe_encode)
def encode_in_rank_order(ids, merges):  # every merge once, in rank order: the same as BPE for a trained table
    ids = list(ids)
    for pair, new_id in sorted(merges.items(), key=lambda kv: kv[1]):
        ids = merge_ok(ids, pair, new_id)
    return ids


# ------------------------------------------------------------------------------------------ LR schedule
def lr(warm=lambda it, lr, W: lr * (it + 1) / (W + 1), progress=lambda it, W, D: (it - W) / (D - W),
       coeff=lambda p: 0.5 * (1 + math.cos(math.pi * p)), floor=True, after=lambda lr, mn: mn):
    def f(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
        if it < warmup_iters:
            return warm(it, learning_rate, warmup_iters)
        if it > lr_decay_iters:
            return after(learning_rate, min_lr)
        c = coeff(progress(it, warmup_iters, lr_decay_iters))
        return min_lr + c * (learning_rate - min_lr) if floor else c * learning_rate
    return f


mistake(ex.check_lr_schedule, r"progress|warm-up|subtract|denominator|never reaches")(
    lr(progress=lambda it, W, D: it / D))
mistake(ex.check_lr_schedule, r"min_lr|zero|0")(lr(floor=False))
mistake(ex.check_lr_schedule, r"after|end|lr_decay_iters|peak")(lr(after=lambda lr, mn: lr))
mistake(ex.check_lr_schedule, r"quarter|half|pi")(lr(coeff=lambda p: math.cos(math.pi / 2 * p)))
mistake(ex.check_lr_schedule, r"one step|progress|off|ahead")(lr(progress=lambda it, W, D: (it - W + 1) / (D - W)))
mistake(ex.check_lr_schedule, r"warm.*(min_lr|zero|0)|(min_lr|zero|0).*warm")(lr(warm=lambda it, lr, W: lr,
                                                                               floor=False))
mistake(ex.check_lr_schedule, r"warm")(lr(warm=lambda it, lr, W: lr * (it + 1) / 10))


@mistake(ex.check_lr_schedule, r"warm.*(min_lr|zero|0)|(min_lr|zero|0).*warm|warm-up missing")
def lr_no_warmup_to_zero(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    if it > lr_decay_iters:
        return min_lr
    return learning_rate * 0.5 * (1 + math.cos(math.pi * max(0, it - warmup_iters) / (lr_decay_iters - warmup_iters)))


@valid(ex.check_lr_schedule)
def lr_clamped(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    p = min(1.0, (it - warmup_iters) / max(1, lr_decay_iters - warmup_iters))
    cos = torch.cos(torch.tensor(math.pi * p, dtype=torch.float64))
    return float(min_lr + (learning_rate - min_lr) * (1 + cos) / 2)


# ------------------------------------------------------------------------------------------ weight decay
def groups(decide, wd_of=lambda wd: wd, key="weight_decay", no_decay_wd=0.0):
    def fn(model, weight_decay):
        decay, rest = [], []
        for n, p in model.named_parameters():
            (decay if decide(n, p) else rest).append(p)
        return [{"params": decay, key: wd_of(weight_decay)}, {"params": rest, key: no_decay_wd}]
    return fn


def decay_linear(n, p):  # the matrices except the position table (the token table is the tied lm_head)
    return p.dim() >= 2 and "wpe" not in n


def modules_twice(model, weight_decay):  # each module's own parameters: the tied lm_head weight lands in both groups
    decay, rest = [], []
    for m in model.modules():
        for n, p in m.named_parameters(recurse=False):
            (decay if isinstance(m, nn.Linear) and n == "weight" else rest).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


mistake(ex.check_weight_decay_groups, r"position|wpe|embedding")(groups(lambda n, p: p.dim() >= 2))
mistake(ex.check_weight_decay_groups, r"bias")(groups(lambda n, p: "ln" not in n))
mistake(ex.check_weight_decay_groups, r"LayerNorm|ln|gain")(groups(
    lambda n, p: n.endswith("weight") and "wpe" not in n))
mistake(ex.check_weight_decay_groups, r"twice|both groups|tied|once")(modules_twice)
mistake(ex.check_weight_decay_groups, r"mlp|attention|c_attn|some|only")(groups(lambda n, p: decay_linear(n, p) and (
    "mlp" in n or "wte" in n)))
mistake(ex.check_weight_decay_groups, r"value|hard|0\.1|given")(groups(decay_linear, wd_of=lambda wd: 0.1))
mistake(ex.check_weight_decay_groups, r"key|weight_decay|spell|default")(groups(decay_linear, key="weight decay"))
mistake(ex.check_weight_decay_groups, r"no-decay|both|0|every|biases and LayerNorm")(
    groups(decay_linear, no_decay_wd=0.1))


@valid(ex.check_weight_decay_groups)
def groups_by_module(model, weight_decay):
    decay = {id(m.weight): m.weight for m in model.modules() if isinstance(m, nn.Linear)}
    rest = [p for p in model.parameters() if id(p) not in decay]
    return [{"params": rest, "weight_decay": 0.0}, {"params": list(decay.values()), "weight_decay": weight_decay}]


# ------------------------------------------------------------------------------------------ SFT targets
def sft(keep=lambda a: a[1:], fill=-1, x=lambda ids: ids[:-1]):
    def fn(ids, is_assistant):
        a = torch.as_tensor(is_assistant, dtype=torch.bool)
        y = torch.where(keep(a), ids[1:], torch.full_like(ids[1:], fill))
        return x(ids), y
    return fn


def sft_view(ids, is_assistant):  # y is a view of ids: masking it writes -1 into the caller's ids
    y = ids[1:]
    y[~torch.as_tensor(is_assistant, dtype=torch.bool)[1:]] = -1
    return ids[:-1], y


mistake(ex.check_sft_targets, r"prompt|mask|every")(sft(keep=lambda a: torch.ones_like(a[1:])))
mistake(ex.check_sft_targets, r"shift|one|off")(sft(keep=lambda a: a[:-1]))
mistake(ex.check_sft_targets, r"-1|ignore|0")(sft(fill=0))
mistake(ex.check_sft_targets, r"invert|prompt|assistant|~")(sft(keep=lambda a: ~a[1:]))
mistake(ex.check_sft_targets, r"dtype|float|long|type")(lambda ids, a: (ids[:-1], torch.where(
    torch.as_tensor(a, dtype=torch.bool)[1:], ids[1:].float(), -1.0)))
mistake(ex.check_sft_targets, r"shape|length|x|input")(sft(x=lambda ids: ids))
mistake(ex.check_sft_targets, r"in place|in-place|modif|view|clone")(sft_view)
valid(ex.check_sft_targets)(lambda ids, a: (ids[:-1].clone(), ids[1:].masked_fill(
    ~torch.as_tensor(a, dtype=torch.bool)[1:], -1)))


# ------------------------------------------------------------------------------------------ LoRA
class LoRA(nn.Module):
    def __init__(self, base, r, alpha):
        super().__init__()
        self.base, self.r, self.alpha, self.merged = base, r, alpha, False
        self.lora_A = nn.Linear(base.in_features, r, bias=False)
        self.lora_B = nn.Linear(r, base.out_features, bias=False)
        nn.init.zeros_(self.lora_B.weight)
        base.requires_grad_(False)

    def scale(self):
        return self.alpha / self.r

    def forward(self, x):
        out = self.base(x)
        return out if self.merged else out + self.lora_B(self.lora_A(x)) * self.scale()

    @torch.no_grad()
    def merge(self):
        self.base.weight += self.lora_B.weight @ self.lora_A.weight * self.scale()
        self.merged = True


class LoRAParams(nn.Module):  # valid: plain parameters, A small random, B zero
    def __init__(self, base, r, alpha):
        super().__init__()
        self.base, self.scaling = base, alpha / r
        self.lora_A = nn.Parameter(torch.randn(r, base.in_features) * 0.01)
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r))
        for p in base.parameters():
            p.requires_grad = False

    def forward(self, x):
        return self.base(x) + (x @ self.lora_A.T @ self.lora_B.T) * self.scaling

    @torch.no_grad()
    def merge(self):
        self.base.weight.add_(self.scaling * self.lora_B @ self.lora_A)
        self.forward = self.base.forward


def lora_b_random(self, base, r, alpha):
    LoRA.__init__(self, base, r, alpha)
    nn.init.normal_(self.lora_B.weight, std=0.02)


def lora_not_frozen(self, base, r, alpha):
    LoRA.__init__(self, base, r, alpha)
    base.requires_grad_(True)


mistake(ex.check_lora_layer, r"alpha|scal")(cls_with(LoRA, scale=lambda s: s.alpha))
mistake(ex.check_lora_layer, r"zero|init|B")(cls_with(LoRA, __init__=lora_b_random))
mistake(ex.check_lora_layer, r"merge.*scal|scal")(cls_with(LoRA, merge=torch.no_grad()(lambda s: (
    s.base.weight.add_(s.lora_B.weight @ s.lora_A.weight), setattr(s, "merged", True)))))
mistake(ex.check_lora_layer, r"twice|merged|double|after merg")(cls_with(LoRA, forward=lambda s, x: s.base(
    x) + s.lora_B(s.lora_A(x)) * s.scale()))
mistake(ex.check_lora_layer, r"frozen|requires_grad|freeze|train")(cls_with(LoRA, __init__=lora_not_frozen))
mistake(ex.check_lora_layer, r"r\b|rank|alpha|scal")(cls_with(LoRA, scale=lambda s: s.r / s.alpha))
valid(ex.check_lora_layer)(LoRAParams)


# ------------------------------------------------------------------------------------------ DPO
def seq_logps(model, x, y, reduce="sum", masked=True):
    B, _, T = x.shape
    logits, _ = model(x.reshape(-1, T))
    tg = y.reshape(-1, T)
    lp = F.log_softmax(logits, -1).gather(-1, tg.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    mask = (tg != -1) if masked else torch.ones_like(tg, dtype=torch.bool)
    s = (lp * mask).sum(-1)
    if reduce == "mean":
        s = s / mask.sum(-1)
    return s.view(B, 2)


def dpo(margin=lambda pc, pr, rc, rr, b: b * ((pc - rc) - (pr - rr)), out=lambda m, b: -F.logsigmoid(m).mean(),
        ref_grad=False, chosen=0, **kw):
    def fn(policy, reference, x, y, beta):
        p = seq_logps(policy, x, y, **kw)
        if ref_grad:
            r = seq_logps(reference, x, y, **kw)
        else:
            with torch.no_grad():
                r = seq_logps(reference, x, y, **kw)
        c, j = chosen, 1 - chosen
        return out(margin(p[:, c], p[:, j], r[:, c], r[:, j], beta), beta)
    return fn


@valid(ex.check_dpo_loss)
def dpo_cross_entropy(policy, reference, x, y, beta):  # log-probs from cross_entropy, log(sigmoid) written out
    def logps(model):
        B, _, T = x.shape
        logits, _ = model(x.reshape(-1, T))
        nll = F.cross_entropy(logits.transpose(1, 2), y.reshape(-1, T), ignore_index=-1, reduction="none")
        return -nll.sum(-1).view(B, 2)
    pol = logps(policy)
    with torch.no_grad():
        ref = logps(reference)
    z = beta * ((pol[:, 0] - ref[:, 0]) - (pol[:, 1] - ref[:, 1]))
    return -torch.log(torch.sigmoid(z)).mean()


mistake(ex.check_dpo_loss, r"reference|swap")(dpo(margin=lambda pc, pr, rc, rr, b: b * ((pc - rr) - (pr - rc))))
mistake(ex.check_dpo_loss, r"beta")(dpo(margin=lambda pc, pr, rc, rr, b: (pc - rc) - (pr - rr),
                                        out=lambda m, b: -b * F.logsigmoid(m).mean()))
mistake(ex.check_dpo_loss, r"grad|no_grad|detach|reference")(dpo(ref_grad=True))
mistake(ex.check_dpo_loss, r"mask|ignore|-1|prompt|every")(dpo(masked=False))
mistake(ex.check_dpo_loss, r"sum|mean")(dpo(out=lambda m, b: -F.logsigmoid(m).sum()))
mistake(ex.check_dpo_loss, r"chosen|rejected|swap|sign")(dpo(chosen=1))
mistake(ex.check_dpo_loss, r"beta")(dpo(margin=lambda pc, pr, rc, rr, b: ((pc - rc) - (pr - rr)) / b))


# ------------------------------------------------------------------------------------------ GRPO advantages
def adv(mean=lambda r: r.mean(1, keepdim=True), std=lambda r: r.std(1, keepdim=True), eps=1e-4, use_flag=True):
    def fn(rewards, normalize_std=True):
        a = rewards - mean(rewards)
        if normalize_std or not use_flag:
            a = a / (std(rewards) + eps)
        return a
    return fn


mistake(ex.check_group_advantages, r"group|global|whole|batch")(adv(mean=lambda r: r.mean(), std=lambda r: r.std()))
mistake(ex.check_group_advantages, r"biased|unbiased|std")(adv(std=lambda r: r.std(1, keepdim=True, unbiased=False)))
# written as a mistake, but valid: the exercise asks for "a small eps" without fixing its value
valid(ex.check_group_advantages)(adv(eps=1e-8))
mistake(ex.check_group_advantages, r"normalize_std|ignor|flag|always")(adv(use_flag=False))
mistake(ex.check_group_advantages, r"axis|dim|group|prompt")(adv(mean=lambda r: r.mean(0, keepdim=True),
                                                                   std=lambda r: r.std(0, keepdim=True)))
mistake(ex.check_group_advantages, r"nan|eps|equal")(adv(eps=0.0))
mistake(ex.check_group_advantages, r"(group|global).*(biased|std)|(biased|std).*(group|global)")(adv(
    mean=lambda r: r.mean(), std=lambda r: r.std(unbiased=False)))


@valid(ex.check_group_advantages)
def adv_by_hand(rewards, normalize_std=True):
    G = rewards.size(1)
    centred = rewards - rewards.sum(1, keepdim=True) / G
    if not normalize_std:
        return centred
    std = (centred.pow(2).sum(1, keepdim=True) / (G - 1)).sqrt()
    return centred / (std + 1e-4)
