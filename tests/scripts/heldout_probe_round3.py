"""The held-out probe, round 3: written after round 2's fixes, counted before any tuning. See heldout_probe.py."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import mingpt.exercises as ex

from heldout_probe_models import *  # noqa: F403 (the helpers: Attn, mlp, block, Emb, gpt, trunk, Bigram, LN)
from heldout_probe_tokens import *  # noqa: F403 (topk, topp, Cache, merge, pairs, lr_from, groups)
from heldout_probe_round2 import TriuAttn

ROUND[0] = 3
mistake(ex.check_mlp, r"exact|erf")(mlp(lambda h: h * 0.5 * (1 + torch.erf(h / math.sqrt(2)))))
mistake(ex.check_mlp, r"residual")(cls_with(MLP, forward=lambda s, x: x + s.dropout(s.c_proj(s.gelu(s.c_fc(x))))))
mistake(ex.check_attention, r"mask|future|triangle")(cls_with(TriuAttn, hidden=lambda s, T: torch.ones(
    T, T, dtype=torch.bool).tril()))


class EvalDropoutAttn(TriuAttn):
    def forward(self, x, kv_cache=None):
        B, T, C = x.shape
        q, k, v = (t.view(B, T, self.n_head, -1).transpose(1, 2) for t in self.c_attn(x).split(C, dim=2))
        att = self.scores(q, k, C // self.n_head).masked_fill(self.hidden(T), float("-inf")).softmax(-1)
        att = F.dropout(att, p=0.3)  # training=True by default: on in eval mode too
        return self.c_proj((att @ v).transpose(1, 2).reshape(B, T, C))


mistake(ex.check_attention, r"dropout|eval")(EvalDropoutAttn)
mistake(ex.check_layernorm, r"eps")(cls_with(LN, forward=lambda s, x: (x - x.mean(-1, keepdim=True)) / (
    x.std(-1, keepdim=True, unbiased=False) + s.eps) * s.weight + s.bias))
mistake(ex.check_layernorm, r"swap|gain|bias|weight")(cls_with(LN, forward=lambda s, x: F.layer_norm(
    x, x.shape[-1:], None, None, s.eps) * s.bias + s.weight))
mistake(ex.check_block, r"mlp|input|attention output|stream")(block(
    lambda s, x: (lambda a: x + a + s.mlp(s.ln_2(a)))(s.attn(s.ln_1(x)))))
mistake(ex.check_loss, r"per sequence|average|mean")(lambda lg, tk: sum(
    F.cross_entropy(lg[b, :-1], tk[b, 1:], ignore_index=-1) for b in range(lg.shape[0])) / lg.shape[0])
mistake(ex.check_gpt, r"ignore|count")(gpt(lambda s, i: s.lm_head(trunk(s, i)), lambda lg, tg: (F.cross_entropy(
    lg.reshape(-1, lg.size(-1)), tg.reshape(-1), ignore_index=-1, reduction="sum") / tg.numel())))
mistake(ex.check_gpt, r"ln_f|final")(gpt(lambda s, i: trunk(s, i, ln_f=False) @ s.transformer.wte.weight.T))
mistake(ex.check_sampling_probs, r"probabilit|logit|softmax")(
    lambda lg, temperature=1.0, top_k=None, top_p=None: topp(topk(lg / temperature, top_k), top_p))
mistake(ex.check_sampling_probs, r"top-k|end|smallest")(lambda lg, temperature=1.0, top_k=None, top_p=None: F.softmax(
    topp(lg / temperature if top_k is None else (lambda l: l.masked_fill(
        l < l.sort(-1).values[:, top_k - 1: top_k], float("-inf")))(lg / temperature), top_p), -1))
mistake(ex.check_kv_cache, r"axis|dim")(cls_with(Cache, store=lambda s, o, n: n if o is None
                                                   else torch.cat([o, n], -1)))
mistake(ex.check_kv_cache, r"values|keys")(cls_with(Cache, update=lambda s, layer, k, v: (
    lambda K, V: (K, K))(*Cache.update(s, layer, k, v))))


@mistake(ex.check_merge, r"input|changed|place")
def merge_in_place(ids, pair, new_id):
    i = 0
    while i < len(ids) - 1:
        if (ids[i], ids[i + 1]) == tuple(pair):
            ids[i: i + 2] = [new_id]
        i += 1
    return ids


@mistake(ex.check_bpe_encode, r"rank|left|order|pass")
def encode_one_sweep(ids, merges):
    """Merge every mergeable pair in one left-to-right sweep, whatever its rank, and repeat."""
    ids = list(ids)
    while True:
        out, i, changed = [], 0, False
        while i < len(ids):
            if i + 1 < len(ids) and (ids[i], ids[i + 1]) in merges:
                out.append(merges[ids[i], ids[i + 1]])
                i, changed = i + 2, True
            else:
                out.append(ids[i])
                i += 1
        ids = out
        if not changed:
            return ids


mistake(ex.check_lr_schedule, r"after|floor|0|flat")(lr_from(after=lambda lr, mn: 0.0))
mistake(ex.check_weight_decay_groups, r"tied|lm_head")(groups(
    lambda m, n, p: any(p is mod.weight for mod in m.modules() if isinstance(mod, nn.Linear)) and "wte" not in n))
valid(ex.check_layernorm)(cls_with(LN, forward=lambda s, x: (x - x.mean(-1, keepdim=True)) * torch.rsqrt(
    ((x - x.mean(-1, keepdim=True)) ** 2).mean(-1, keepdim=True) + s.eps) * s.weight + s.bias))
