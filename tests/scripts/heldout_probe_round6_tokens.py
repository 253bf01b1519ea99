"""The held-out probe, round 6 (tokens side): new kinds of mistakes, written after round 5's fixes and counted before
any tuning for them. See heldout_probe.py."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

import heldout_probe_round5_tokens  # noqa: F401  (rounds register in order)
from heldout_probe_models import ROUND, cls_with, mistake, valid
from heldout_probe_round5_tokens import LoRA, adv, dpo, encode_loop, logps, lowest, merge_matching, sft
from heldout_probe_tokens import Cache, groups, lr_from, merge, pairs, topk, topp

import mingpt.exercises as ex

ROUND[0] = 6


# ------------------------------------------------------------------------------------------ sampling
def probs(k=topk, p=topp, t=lambda lg, t: lg / t, end=lambda lg: F.softmax(lg, -1)):
    return lambda lg, temperature=1.0, top_k=None, top_p=None: end(p(k(t(lg, temperature), top_k), top_p))


def topk_only_max(lg, k):  # the threshold read from the wrong end of topk's values: the largest one
    if k is None:
        return lg
    return lg.masked_fill(lg < torch.topk(lg, k, dim=-1).values[:, :1], float("-inf"))


def topp_probs_dim0(lg, p):  # the probabilities inside top-p taken over the batch axis
    if p is None:
        return lg
    s, idx = torch.sort(lg, dim=-1, descending=True)
    pr = s.softmax(0)
    drop = pr.cumsum(-1) - pr >= p
    return lg.masked_fill(drop.scatter(-1, idx, drop), float("-inf"))


mistake(ex.check_sampling_probs, r"top-k|only|one token|largest|first")(probs(k=topk_only_max))
mistake(ex.check_sampling_probs, r"temperature|twice|square")(probs(t=lambda lg, t: lg / t / t))
mistake(ex.check_sampling_probs, r"log")(probs(end=lambda lg: F.log_softmax(lg, -1)))
mistake(ex.check_sampling_probs, r"axis|dim|batch")(probs(p=topp_probs_dim0))
valid(ex.check_sampling_probs)(probs(k=lambda lg, k: topk(lg, k, fill=-1e9), p=lambda lg, p: topp(lg, p, fill=-1e9)))
mistake(ex.check_sampling_probs, r"top-p|ignor|skip")(probs(p=lambda lg, p: lg))

mistake(ex.check_greedy, r"axis|dim|batch")(lambda lg: lg.softmax(0).argmax(-1))
mistake(ex.check_greedy, r"type|tensor|list")(lambda lg: lg.argmax(-1).tolist())
mistake(ex.check_greedy, r"dtype|float|integer")(lambda lg: lg.argmax(-1).float())  # valid until round 19


# ------------------------------------------------------------------------------------------ KV cache
mistake(ex.check_kv_cache, r"length|advance|count|position")(cls_with(Cache, advance=lambda s, T: setattr(
    s, "length", T)))
# written as a mistake, but a fixed permutation of the layers' stores is valid (each layer always gets its own store)
valid(ex.check_kv_cache)(cls_with(Cache, update=lambda s, layer, k, v: Cache.update(
    s, (layer + 1) % len(s.k), k, v)))
mistake(ex.check_kv_cache, r"transpos|value")(cls_with(Cache, update=lambda s, layer, k, v: (
    lambda K, V: (K, V.transpose(2, 3)))(*Cache.update(s, layer, k, v))))
mistake(ex.check_kv_cache, r"batch|first sequence|row")(cls_with(Cache, store=lambda s, o, n: n[:1].expand_as(n) if o
                                                                  is None else torch.cat([o, n[:1].expand_as(n)], 2)))
valid(ex.check_kv_cache)(cls_with(Cache, update=lambda s, layer, k, v: tuple(t.clone() for t in Cache.update(
    s, layer, k, v))))


# ------------------------------------------------------------------------------------------ BPE
@mistake(ex.check_merge, r"left|kept|both|first element")
def merge_keeps_left(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == tuple(pair):
            out += [ids[i], new_id]
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


mistake(ex.check_merge, r"type|str|int|text")(lambda ids, pair, n: [str(t) if t == n else t
                                                                   for t in merge(ids, pair, n)])
mistake(ex.check_merge, r"none|return")(lambda ids, pair, n: (merge(ids, pair, n), None)[1])


@valid(ex.check_merge)
def merge_first_repeatedly(ids, pair, new_id):
    ids = list(ids)
    while True:
        at = next((i for i in range(len(ids) - 1) if (ids[i], ids[i + 1]) == tuple(pair)), None)
        if at is None:
            return ids
        ids[at:at + 2] = [new_id]


@mistake(ex.check_bpe_encode, r"all|every|several|one pass|at once|lowest|rank")
def encode_all_pairs_at_once(ids, merges):
    ids = list(ids)
    while True:
        cands = {p for p in pairs(ids) if p in merges}
        if not cands:
            return ids
        for p in sorted(cands, key=lambda p: (ids.index(p[0]), merges[p])):  # every pair present, left to right
            ids = merge(ids, p, merges[p])


# written as a mistake, but encode's input is bytes (ids < 256), so list(bytes(ids)) is valid
valid(ex.check_bpe_encode)(lambda ids, merges: encode_loop(lowest)(list(bytes(ids)), merges))
mistake(ex.check_bpe_encode, r"tuple|list|type")(lambda ids, merges: tuple(encode_loop(lowest)(ids, merges)))
mistake(ex.check_bpe_encode, r"revers|order|pair|swap")(encode_loop(lambda c, m, ids: min(c, key=m.get),
                                                                    new_id=lambda m, p: m.get(p[::-1], m[p])))


# ------------------------------------------------------------------------------------------ LR schedule
mistake(ex.check_lr_schedule, r"number|float|tensor|type")(lambda it, lr, mn, W, D: torch.tensor(
    lr_from()(it, lr, mn, W, D)))
mistake(ex.check_lr_schedule, r"exponential|cosine|shape|geometric")(lr_from(
    decay=lambda it, lr, mn, W, D: lr * (mn / lr) ** ((it - W) / (D - W))))
mistake(ex.check_lr_schedule, r"max|floor|clamp|0|zero")(lr_from(
    decay=lambda it, lr, mn, W, D: max(mn, 0.5 * (1 + math.cos(math.pi * (it - W) / (D - W))) * lr)))
mistake(ex.check_lr_schedule, r"warm|quadratic|linear|square")(lr_from(warm=lambda it, lr, W: lr * ((it + 1) / (W + 1))
                                                                     ** 2))
valid(ex.check_lr_schedule)(lambda it, lr, mn, W, D: lr * (it + 1) / (W + 1) if it < W else
                            lr_from()(it, lr, mn, W, D) if it <= D else mn)


# ------------------------------------------------------------------------------------------ weight decay
mistake(ex.check_weight_decay_groups, r"embedding|wte|wpe")(groups(lambda m, n, p: p.dim() >= 2 and "emb" not in n))
mistake(ex.check_weight_decay_groups, r"key|weight_decay|missing|name")(lambda model, weight_decay: [
    {"params": g["params"], "weight decay": g["weight_decay"]} for g in groups(
        lambda m, n, p: any(p is mod.weight for mod in m.modules() if isinstance(mod, nn.Linear)))(model,
                                                                                                  weight_decay)])
mistake(ex.check_weight_decay_groups, r"missing|some|mlp|not all|c_fc")(groups(
    lambda m, n, p: n.endswith("weight") and ".attn." in n))


# ------------------------------------------------------------------------------------------ post-training
mistake(ex.check_sft_targets, r"x|input")(lambda ids, a: (ids[1:], sft()(ids, a)[1]))
mistake(ex.check_sft_targets, r"tensor|type|list")(lambda ids, a: (ids[:-1], sft()(ids, a)[1].tolist()))
mistake(ex.check_sft_targets, r"user|turn|prompt|mask|every|after")(sft(keep=lambda a: torch.as_tensor(a).cumsum(0)[1:]
                                                                         > 0))
mistake(ex.check_lora_layer, r"merge|replace|base|overwr")(cls_with(LoRA, merge=lambda s: (
    s.base.weight.data.copy_(s.scale * s.lora_B @ s.lora_A), setattr(s, "merged", True))[0]))


class DropoutLoRA(LoRA):
    def forward(self, x):
        return self.base(x) + self.scale * (F.dropout(x, 0.1) @ self.lora_A.T @ self.lora_B.T)


mistake(ex.check_lora_layer, r"dropout|random|train")(DropoutLoRA)
mistake(ex.check_dpo_loss, r"sign|minus|negative|maximi")(dpo(loss=lambda m: F.logsigmoid(m).mean()))
mistake(ex.check_dpo_loss, r"log|probabilit")(dpo(lp=lambda mdl, x, y: (lambda t: (F.softmax(mdl(x.flatten(0, 1))[0], -1)
                                                                                .gather(-1, t.clamp(min=0)[..., None])
                                                                                .squeeze(-1) * (t != -1)).sum(-1)
                                                                               .view(-1, 2))(y.flatten(0, 1))))
mistake(ex.check_dpo_loss, r"beta")(dpo(margin=lambda pi, ref, beta: beta * (pi[:, 0] - ref[:, 0])
                                        - (pi[:, 1] - ref[:, 1])))
mistake(ex.check_group_advantages, r"keepdim|shape|broadcast|axis")(lambda r, s: (r - r.mean(1)) / (
    r.std(1) + 1e-6) if s else r - r.mean(1))
mistake(ex.check_group_advantages, r"range|max|min|std")(adv(spread=lambda r: r.amax(1, keepdim=True)
                                                             - r.amin(1, keepdim=True)))
mistake(ex.check_group_advantages, r"median|mean")(adv(centre=lambda r: r.median(1, keepdim=True).values))


@valid(ex.check_dpo_loss)
def dpo_chosen_and_rejected_apart(policy, reference, x, y, beta):
    def lp(model, i):
        t = y[:, i]
        return (F.log_softmax(model(x[:, i])[0], -1).gather(-1, t.clamp(min=0)[..., None]).squeeze(-1)
                * (t != -1)).sum(-1)
    with torch.no_grad():
        ref_chosen, ref_rejected = lp(reference, 0), lp(reference, 1)
    return -F.logsigmoid(beta * ((lp(policy, 0) - ref_chosen) - (lp(policy, 1) - ref_rejected))).mean()
