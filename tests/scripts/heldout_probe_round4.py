"""The held-out probe, round 4: written after round 3's fixes, counted before any tuning. See heldout_probe.py."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import mingpt.exercises as ex

from heldout_probe_models import *  # noqa: F403 (the helpers: Attn, mlp, block, Emb, gpt, trunk, Bigram, LN)
from heldout_probe_tokens import *  # noqa: F403 (topk, topp, Cache, merge, pairs, lr_from, groups)
from heldout_probe_round2 import TriuAttn
from heldout_probe_round3 import ROUND  # noqa: F811 (rounds register in order)

ROUND[0] = 4
mistake(ex.check_mlp, r"gelu|1 \+|constant")(mlp(lambda h: 0.5 * h * torch.tanh(
    math.sqrt(2 / math.pi) * (h + 0.044715 * h ** 3))))
mistake(ex.check_attention, r"scal")(cls_with(TriuAttn, scores=lambda s, q, k, hs: q @ k.transpose(-2, -1)
                                              / math.sqrt(s.n_head)))


class HeadSoftmaxAttn(TriuAttn):
    def forward(self, x, kv_cache=None):
        B, T, C = x.shape
        q, k, v = (t.view(B, T, self.n_head, -1).transpose(1, 2) for t in self.c_attn(x).split(C, dim=2))
        att = self.scores(q, k, C // self.n_head).masked_fill(self.hidden(T), float("-inf")).softmax(1)
        return self.c_proj((att @ v).transpose(1, 2).reshape(B, T, C))


mistake(ex.check_attention, r"softmax|dim|axis|nan")(HeadSoftmaxAttn)
mistake(ex.check_layernorm, r"eps")(cls_with(LN, forward=lambda s, x: F.layer_norm(x, x.shape[-1:], s.weight, s.bias,
                                                                                   1e-12)))
mistake(ex.check_block, r"residual")(block(lambda s, x: s.mlp(s.ln_2(x + s.attn(s.ln_1(x)))) + 0 * x
                                           if False else (lambda h: s.mlp(s.ln_2(h)))(x + s.attn(s.ln_1(x)))))
mistake(ex.check_embedding, r"position|1|start|off")(cls_with(Emb, forward=lambda s, i: s.wte(i) + s.wpe(
    torch.arange(1, i.shape[1] + 1))))
mistake(ex.check_loss, r"mean|count|divide|ignored|position")(lambda lg, tk: F.cross_entropy(
    lg[:, :-1].reshape(-1, lg.size(-1)), tk[:, 1:].reshape(-1), ignore_index=-1, reduction="sum") / tk.numel())
mistake(ex.check_loss, r"softmax|axis|batch|dim")(lambda lg, tk: F.nll_loss(
    lg.log_softmax(0)[:, :-1].reshape(-1, lg.size(-1)), tk[:, 1:].reshape(-1), ignore_index=-1))
mistake(ex.check_gpt, r"block|layer")(gpt(lambda s, i: s.lm_head(s.transformer.ln_f(
    s.transformer.wte(i) + s.transformer.wpe(torch.arange(i.size(1)))))))
mistake(ex.check_sampling_probs, r"order|temperature|before")(lambda lg, temperature=1.0, top_k=None, top_p=None:
                                                              F.softmax(topp(topk(lg, top_k), top_p) / temperature, -1))
valid(ex.check_sampling_probs)(lambda lg, temperature=1.0, top_k=None, top_p=None: F.one_hot(
    lg.argmax(-1), lg.size(-1)).float() if top_k == 1 else F.softmax(topp(topk(lg / temperature, top_k), top_p), -1))


def advance_per_layer(self, T):
    self.length += T * len(self.k)


mistake(ex.check_kv_cache, r"length|count|layer")(cls_with(Cache, advance=advance_per_layer))
valid(ex.check_kv_cache)(cls_with(Cache, store=lambda s, o, n: n.detach().clone() if o is None
                                  else torch.cat([o, n.detach()], dim=2)))


@mistake(ex.check_merge, r"pair|second|first element|either")
def merge_first_element_only(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids):
        if ids[i] == pair[0] and i + 1 < len(ids):
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


@mistake(ex.check_bpe_encode, r"stop|loop|none|crash|mergeable")
def encode_without_default(ids, merges):
    ids = list(ids)
    while len(ids) >= 2:
        pair = min(pairs(ids), key=lambda p: merges.get(p))  # None for unknown pairs: TypeError when compared
        ids = merge(ids, pair, merges[pair])
    return ids


mistake(ex.check_lr_schedule, r"pi|period|cosine")(lr_from(
    decay=lambda it, lr, mn, W, D: mn + 0.5 * (1 + math.cos((it - W) / (D - W))) * (lr - mn)))
valid(ex.check_weight_decay_groups)(groups(lambda m, n, p: p.dim() >= 2 and "wpe" not in n))
mistake(ex.check_weight_decay_groups, r"swap|invert|revers|opposite|bias")(lambda model, weight_decay: [
    {"params": [mod.weight for mod in model.modules() if isinstance(mod, nn.Linear)], "weight_decay": 0.0},
    {"params": [p for p in model.parameters() if all(p is not mod.weight for mod in model.modules()
                                                    if isinstance(mod, nn.Linear))], "weight_decay": weight_decay}])
