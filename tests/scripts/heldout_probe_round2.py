"""The held-out probe, round 2: written after round 1's fixes, counted before any tuning. See heldout_probe.py."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import mingpt.exercises as ex
from mingpt.model import MLP

from heldout_probe_models import *  # noqa: F403 (the helpers: Attn, mlp, block, Emb, gpt, trunk, Bigram)
from heldout_probe_tokens import *  # noqa: F403 (topk, topp, Cache, merge, pairs, lr_from, groups)


# ------------------------------------------------------------------------------------------ round 2
# Written after round 1's fixes, without looking at the checkers' tables again, and counted before any tuning.
ROUND[0] = 2
mistake(ex.check_mlp, r"dropout")(cls_with(MLP, forward=lambda s, x: s.c_proj(s.gelu(s.c_fc(s.dropout(x))))))
mistake(ex.check_mlp, r"erf|sqrt|gelu")(mlp(lambda h: 0.5 * h * (1 + torch.erf(h / 2))))
for knobs, expect in [({"scale": "mul"}, r"scal|sqrt")]:
    pass


class TriuAttn(Attn):
    def forward(self, x, kv_cache=None):
        B, T, C = x.shape
        q, k, v = (t.view(B, T, self.n_head, -1).transpose(1, 2) for t in self.c_attn(x).split(C, dim=2))
        att = self.scores(q, k, C // self.n_head)
        att = att.masked_fill(self.hidden(T), float("-inf")).softmax(-1)
        return self.c_proj((att @ v).transpose(1, 2).reshape(B, T, C))

    def scores(self, q, k, hs):
        return q @ k.transpose(-2, -1) / math.sqrt(hs)

    def hidden(self, T):
        return torch.ones(T, T, dtype=torch.bool).triu(1)


mistake(ex.check_attention, r"mask|triangle|past|future")(cls_with(TriuAttn, hidden=lambda s, T: torch.ones(
    T, T, dtype=torch.bool).tril(-1)))
mistake(ex.check_attention, r"itself|diagonal|nan")(cls_with(TriuAttn, hidden=lambda s, T: torch.ones(
    T, T, dtype=torch.bool).triu(0)))
mistake(ex.check_attention, r"scal|sqrt")(cls_with(TriuAttn, scores=lambda s, q, k, hs: q @ k.transpose(-2, -1)
                                                   * math.sqrt(hs)))
mistake(ex.check_attention, r"no causal mask|mask")(cls_with(TriuAttn, hidden=lambda s, T: torch.zeros(
    T, T, dtype=torch.bool)))
mistake(ex.check_attention, r"swap|q and k|transpos|k @ q")(cls_with(TriuAttn, scores=lambda s, q, k, hs:
                                                                    k @ q.transpose(-2, -1) / math.sqrt(hs)))
valid(ex.check_attention)(cls_with(TriuAttn, scores=lambda s, q, k, hs: torch.einsum("bhtd,bhsd->bhts", q / hs**0.25,
                                                                                    k / hs**0.25)))

for f, expect in [(lambda s, x: (h := x + s.mlp(s.ln_2(x))) + s.attn(s.ln_1(h)), r"swap|order|before"),
                  (lambda s, x: (h := x + s.attn(s.ln_2(x))) + s.mlp(s.ln_1(h)), r"swap|ln_1|ln_2|norm")]:
    mistake(ex.check_block, expect)(block(f))

mistake(ex.check_embedding, r"swap|position")(cls_with(Emb, forward=lambda s, i: s.wpe(i) + s.wte(
    torch.arange(i.shape[1]))))
mistake(ex.check_embedding, r"scal|sqrt")(cls_with(Emb, forward=lambda s, i: s.wte(i) * math.sqrt(s.wte.embedding_dim)
                                                   + s.wpe(torch.arange(i.shape[1]))))

mistake(ex.check_loss, r"transpos|class|axis|dim|flatten")(lambda lg, tk: F.cross_entropy(lg[:, :-1], tk[:, 1:],
                                                                                  ignore_index=-1))
mistake(ex.check_gpt, r"loss|none|type")(gpt(lambda s, i: s.lm_head(trunk(s, i)), lambda lg, tg: None))
mistake(ex.check_gpt, r"softmax|probabilit")(gpt(lambda s, i: s.lm_head(trunk(s, i)), lambda lg, tg: F.cross_entropy(
    lg.softmax(-1).reshape(-1, lg.size(-1)), tg.reshape(-1), ignore_index=-1)))


def trunk_blocks(self, idx, blocks):
    tr = self.transformer
    x = tr.wte(idx) + tr.wpe(torch.arange(idx.size(1)))
    for b in blocks(tr.h):
        x = b(x)
    return self.lm_head(tr.ln_f(x))


mistake(ex.check_gpt, r"order|revers|block|layer")(gpt(lambda s, i: trunk_blocks(s, i, lambda h: list(h)[::-1])))
mistake(ex.check_gpt, r"block|layer")(gpt(lambda s, i: trunk_blocks(s, i, lambda h: list(h)[:1])))
mistake(ex.check_bigram, r"shape|last|position")(cls_with(Bigram, forward=lambda s, i: s.table(i[:, :-1])))

def top_p_unsorted(lg, p):  # the cumulative sum taken in vocabulary order, not in descending probability
    probs = lg.softmax(-1)
    return lg if p is None else lg.masked_fill(probs.cumsum(-1) - probs >= p, float("-inf"))


mistake(ex.check_sampling_probs, r"sort|order|cumulative")(
    lambda lg, temperature=1.0, top_k=None, top_p=None: F.softmax(top_p_unsorted(topk(lg / temperature, top_k),
                                                                                 top_p), -1))
valid(ex.check_sampling_probs)(lambda lg, temperature=1.0, top_k=None, top_p=None: (
    lambda p: p / p.sum(-1, keepdim=True))(
    F.softmax(topp(topk(lg, top_k), top_p), -1) ** (1 / temperature)) if top_k is None and top_p is None
    else F.softmax(topp(topk(lg / temperature, top_k), top_p), -1))


def topk_plus_one(lg, k):
    if k is None or k >= lg.size(-1):
        return lg
    kth = torch.sort(lg, -1, descending=True).values[:, k: k + 1] if k < lg.size(-1) else lg.min(-1, True).values
    return lg.masked_fill(lg < kth, float("-inf"))


mistake(ex.check_sampling_probs, r"top-k|one too many|k \+ 1")(
    lambda lg, temperature=1.0, top_k=None, top_p=None: F.softmax(
        topp(topk_plus_one(lg / temperature, top_k), top_p), -1))
mistake(ex.check_sampling_probs, r"order|temperature|before")(
    lambda lg, temperature=1.0, top_k=None, top_p=None: F.softmax(topp(topk(lg, top_k), top_p) / temperature, -1)
    if False else F.softmax(topp(topk(lg / temperature, top_k), None) if top_p is None else
                            topk(topp(lg, top_p), top_k) / temperature, -1))
mistake(ex.check_greedy, r"largest logit|value")(lambda lg: lg.max(-1).values)


def update_returns_old(self, layer, k, v):
    old = (self.k[layer], self.v[layer])
    Cache.update(self, layer, k, v)
    return old if old[0] is not None else (k, v)


mistake(ex.check_kv_cache, r"new|before|previous|old|forget")(cls_with(Cache, update=update_returns_old))


def advance_by_one(self, T):
    self.length += 1


mistake(ex.check_kv_cache, r"length|advance|count")(cls_with(Cache, advance=advance_by_one))


@mistake(ex.check_merge, r"nothing|list|tuple|type")
def merge_list_vs_tuple(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids):
        if [ids[i], ids[i + 1] if i + 1 < len(ids) else None] == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


mistake(ex.check_merge, r"revers|swap|order|pair")(lambda ids, pair, new_id: merge_with_skip_flag(
    ids, (pair[1], pair[0]), new_id))


@mistake(ex.check_bpe_encode, r"frequen|count|common")
def encode_most_frequent(ids, merges):
    ids = list(ids)
    while True:
        cands = [p for p in pairs(ids) if p in merges]
        if not cands:
            return ids
        best = max(set(cands), key=cands.count)
        ids = merge(ids, best, merges[best])


mistake(ex.check_lr_schedule, r"first step|0|warm")(lr_from(warm=lambda it, lr, W: lr * it / (W + 1)))
mistake(ex.check_lr_schedule, r"progress|decay|floor|early|reach")(lr_from(
    decay=lambda it, lr, mn, W, D: mn + 0.5 * (1 + math.cos(math.pi * min(1.0, (it - W) / (D - W - 1)))) * (lr - mn)))
mistake(ex.check_weight_decay_groups, r"bias|embedding")(groups(lambda m, n, p: "ln" not in n))
mistake(ex.check_weight_decay_groups, r"bias")(lambda model, weight_decay: [
    {"params": [p for mod in model.modules() if isinstance(mod, nn.Linear) for p in mod.parameters(recurse=False)],
     "weight_decay": weight_decay},
    {"params": [p for mod in model.modules() if not isinstance(mod, nn.Linear) for p in mod.parameters(recurse=False)
                if all(p is not l.weight for l in model.modules() if isinstance(l, nn.Linear))], "weight_decay": 0.0}])


