"""The held-out probe, round 22, tokens part. (Written by the round 22 tokens helper.)

Angle: a new teacher who marked a class of beginners writes the mistakes the students made most often in the
next-token loss, the sampling distribution, the KV cache, BPE's merge and BPE encoding, in their own varied styles
(loops, einsum, hand-built masks, numpy habits, list comprehensions); valid rows are correct but unusual code.
Untuned counts (written before reading the checkers; judged; mistakes / caught / named / misnamed, valid passed):
    check_loss            14 / 14 / 12 / 0,  3 of 3  (shift after flattening; transpose-then-reshape: caught, unnamed)
    check_sampling_probs  14 / 14 / 14 / 0,  2 of 2
    check_kv_cache        11 / 11 / 10 / 0,  2 of 2  (keys appended, values prepended: caught, unnamed)
    check_merge           12 / 12 / 12 / 0,  3 of 3  (three regexes widened where the message named the cause)
    check_bpe_encode      13 / 13 / 12 / 0,  3 of 3  (stops when the list's first pair is not a merge: unnamed)
    total                 64 / 64 / 60 (94 %) / 0, 13 of 13 valid, no checker crash
Notes: a loss row with a keepdim slip was dropped before counting (it raised on every input: (B,T) - (B,T,1) does not
broadcast, so no student would hand it in); two rows written as mistakes turned out equal to the rule and were moved
to valid (merge stepping back after a replacement: a fresh new_id never re-matches; encode replacing only the first
occurrence per step: the while loop returns to the same lowest-ranked pair).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import mingpt.exercises as ex
from heldout_probe_models import ROUND, mistake, valid
import heldout_probe_round21_post  # noqa: F401  (earlier rounds registered first)

ROUND[0] = 22


# ================================================================================================ loss
@mistake(ex.check_loss, r"shift|offset|align|same position|next token|t ?\+ ?1")
def r22b_loss_no_shift(logits, tokens):  # forgot the shift: predicts tokens[:, t] from logits[:, t]
    V = logits.size(-1)
    return F.cross_entropy(logits.reshape(-1, V), tokens.reshape(-1), ignore_index=-1)


@mistake(ex.check_loss, r"shift|offset|align|direction|backward|revers|previous")
def r22b_loss_shift_backwards(logits, tokens):  # shifted the wrong way: logits[:, 1:] against tokens[:, :-1]
    V = logits.size(-1)
    return F.cross_entropy(logits[:, 1:].reshape(-1, V), tokens[:, :-1].reshape(-1), ignore_index=-1)


@mistake(ex.check_loss, r"ignor|skip|-1|mask|padding|averag|denominator|count")
def r22b_loss_mean_includes_ignored(logits, tokens):  # zeroed the ignored targets' losses but divided by all of them
    V = logits.size(-1)
    tgt = tokens[:, 1:]
    per = F.cross_entropy(logits[:, :-1].reshape(-1, V), tgt.reshape(-1), ignore_index=-1, reduction="none")
    return per.mean()


@mistake(ex.check_loss, r"ignor|skip|-1|mask|padding")
def r22b_loss_clamp_no_ignore(logits, tokens):  # "fixed" the -1 crash with clamp(min=0): ignored targets become token 0
    V = logits.size(-1)
    tgt = tokens[:, 1:].clamp(min=0)
    return F.cross_entropy(logits[:, :-1].reshape(-1, V), tgt.reshape(-1))


@mistake(ex.check_loss, r"axis|dim|softmax|normali[sz]|time|vocab")
def r22b_loss_log_softmax_time_axis(logits, tokens):  # log_softmax over dim=1 (time) instead of the vocabulary
    logp = F.log_softmax(logits[:, :-1], dim=1)
    tgt = tokens[:, 1:]
    keep = tgt != -1
    picked = logp.gather(-1, tgt.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return -(picked * keep).sum() / keep.sum()


@mistake(ex.check_loss, r"flatten|boundar|across|batch|row|sequence|shift|reshape")
def r22b_loss_shift_after_flatten(logits, tokens):  # flattens first, then shifts: row b's last logit predicts row b+1's first token
    V = logits.size(-1)
    flat_logits, flat_tokens = logits.reshape(-1, V), tokens.reshape(-1)
    return F.cross_entropy(flat_logits[:-1], flat_tokens[1:], ignore_index=-1)


@mistake(ex.check_loss, r"reshape|transpose|scrambl|layout|shape|view|order|axis|flatten")
def r22b_loss_transpose_then_reshape(logits, tokens):  # put V second "for cross_entropy", then reshape(-1, V): scrambled rows
    V = logits.size(-1)
    lg = logits[:, :-1].transpose(1, 2)  # (B, V, T-1)
    return F.cross_entropy(lg.reshape(-1, V), tokens[:, 1:].reshape(-1), ignore_index=-1)


@mistake(ex.check_loss, r"sum|mean|averag|reduc|scale")
def r22b_loss_sum_not_mean(logits, tokens):  # reduction="sum": the total, not the mean
    V = logits.size(-1)
    return F.cross_entropy(logits[:, :-1].reshape(-1, V), tokens[:, 1:].reshape(-1), ignore_index=-1, reduction="sum")


@mistake(ex.check_loss, r"per.?(row|sequence|batch)|mean of means|averag|weight|ignor|count")
def r22b_loss_mean_per_row(logits, tokens):  # mean per sequence, then mean over sequences: rows with many -1 overweighted
    losses = []
    for b in range(logits.size(0)):
        losses.append(F.cross_entropy(logits[b, :-1], tokens[b, 1:], ignore_index=-1))
    return torch.stack(losses).mean()


@mistake(ex.check_loss, r"sign|negat|minus")
def r22b_loss_forgot_minus(logits, tokens):  # mean log-likelihood, forgot the minus sign
    logp = logits[:, :-1].log_softmax(-1)
    tgt = tokens[:, 1:]
    keep = tgt != -1
    ll = logp.gather(-1, tgt.clamp(min=0)[..., None])[..., 0]
    return ll[keep].mean()


@mistake(ex.check_loss, r"ignor|skip|-1|mask|0\b|index|token 0|padding")
def r22b_loss_ignore_index_zero(logits, tokens):  # ignore_index=0 (a padding habit) with -1 clamped away
    V = logits.size(-1)
    tgt = torch.where(tokens[:, 1:] == -1, torch.zeros_like(tokens[:, 1:]), tokens[:, 1:])
    return F.cross_entropy(logits[:, :-1].reshape(-1, V), tgt.reshape(-1), ignore_index=0)


@mistake(ex.check_loss, r"softmax|probab|twice|double|log")
def r22b_loss_ce_on_probs(logits, tokens):  # passes softmax probabilities to cross_entropy (softmax applied twice)
    V = logits.size(-1)
    probs = logits.softmax(-1)
    return F.cross_entropy(probs[:, :-1].reshape(-1, V), tokens[:, 1:].reshape(-1), ignore_index=-1)


@mistake(ex.check_loss, r"log.?softmax|nll|raw|normali[sz]|softmax|logits")
def r22b_loss_nll_on_raw_logits(logits, tokens):  # nll_loss straight on the logits, no log_softmax
    V = logits.size(-1)
    return F.nll_loss(logits[:, :-1].reshape(-1, V), tokens[:, 1:].reshape(-1), ignore_index=-1)


@mistake(ex.check_loss, r"ignor|skip|-1|mask|input|target|shift")
def r22b_loss_mask_from_inputs(logits, tokens):  # the skip mask read from the INPUT tokens, not the targets
    lg, inp, tgt = logits[:, :-1], tokens[:, :-1], tokens[:, 1:]
    keep = inp != -1
    nll = lg.logsumexp(-1) - lg.gather(-1, tgt.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (nll * keep).sum() / keep.sum()


@valid(ex.check_loss)
def r22b_loss_einsum_onehot(logits, tokens):  # one-hot targets and einsum, masked mean by hand
    lg, tgt = logits[:, :-1], tokens[:, 1:]
    keep = (tgt >= 0).to(lg.dtype)
    onehot = F.one_hot(tgt.clamp(min=0), lg.size(-1)).to(lg.dtype)
    logp = lg - lg.logsumexp(dim=-1, keepdim=True)
    picked = torch.einsum("btv,btv->bt", logp, onehot)
    return -(picked * keep).sum() / keep.sum()


@valid(ex.check_loss)
def r22b_loss_flat_loop(logits, tokens):  # a list of (position, target) pairs, mean of the kept terms
    terms = []
    B, T, V = logits.shape
    for b in range(B):
        for t in range(T - 1):
            y = int(tokens[b, t + 1])
            if y == -1:
                continue
            terms.append(torch.logsumexp(logits[b, t], 0) - logits[b, t, y])
    return torch.stack(terms).mean()


@valid(ex.check_loss)
def r22b_loss_transpose_ce(logits, tokens):  # cross_entropy with the class axis second: (B, V, T-1)
    return F.cross_entropy(logits[:, :-1].transpose(1, 2), tokens[:, 1:], ignore_index=-1)


# ================================================================================================ sampling
def _top_p_mask(logits, top_p):
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    probs = sorted_logits.softmax(-1)
    above = probs.cumsum(-1) - probs
    remove_sorted = above >= top_p
    return remove_sorted.scatter(-1, order, remove_sorted)


@mistake(ex.check_sampling_probs, r"top.?k|smallest|least|wrong end|lowest|largest")
def r22b_samp_topk_smallest(logits, temperature=1.0, top_k=None, top_p=None):  # top-k keeps the k SMALLEST logits
    logits = logits / temperature
    if top_k is not None:
        kth = torch.topk(logits, top_k, dim=-1, largest=False).values[:, -1:]
        logits = logits.masked_fill(logits > kth, float("-inf"))
    if top_p is not None:
        logits = logits.masked_fill(_top_p_mask(logits, top_p), float("-inf"))
    return F.softmax(logits, dim=-1)


@mistake(ex.check_sampling_probs, r"temperature|after.*softmax|normali[sz]|sum")
def r22b_samp_temp_after_softmax(logits, temperature=1.0, top_k=None, top_p=None):  # divides the PROBABILITIES by T
    if top_k is not None:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None:
        logits = logits.masked_fill(_top_p_mask(logits, top_p), float("-inf"))
    return F.softmax(logits, dim=-1) / temperature


@mistake(ex.check_sampling_probs, r"top.?p|cum|logit|probab|softmax")
def r22b_samp_topp_cumsum_logits(logits, temperature=1.0, top_k=None, top_p=None):  # cumsum of the sorted LOGITS
    logits = logits / temperature
    if top_k is not None:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None:
        s, order = logits.sort(dim=-1, descending=True)
        cum = s.cumsum(-1)
        rem = (cum - s) >= top_p
        logits = logits.masked_fill(rem.scatter(-1, order, rem), float("-inf"))
    return F.softmax(logits, dim=-1)


@mistake(ex.check_sampling_probs, r"top.?p|inclusive|exclusive|cross|includ|one (token )?too|boundary|off.by.one")
def r22b_samp_topp_inclusive(logits, temperature=1.0, top_k=None, top_p=None):  # removes by the INCLUSIVE cumsum: the crossing token goes
    logits = logits / temperature
    if top_k is not None:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None:
        s, order = logits.sort(dim=-1, descending=True)
        cum = s.softmax(-1).cumsum(-1)
        rem = cum > top_p
        rem[:, 0] = False  # keep at least one
        logits = logits.masked_fill(rem.scatter(-1, order, rem), float("-inf"))
    return F.softmax(logits, dim=-1)


@mistake(ex.check_sampling_probs, r"top.?p|sort|order|unsorted|rank")
def r22b_samp_topp_unsorted(logits, temperature=1.0, top_k=None, top_p=None):  # cumsum in vocabulary order, never sorted
    logits = logits / temperature
    if top_k is not None:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None:
        p = logits.softmax(-1)
        above = p.cumsum(-1) - p
        logits = logits.masked_fill(above >= top_p, float("-inf"))
    return F.softmax(logits, dim=-1)


@mistake(ex.check_sampling_probs, r"top.?p|scatter|sort|order|unsort|index|position")
def r22b_samp_topp_no_scatter(logits, temperature=1.0, top_k=None, top_p=None):  # mask built in sorted order, applied unsorted
    logits = logits / temperature
    if top_k is not None:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None:
        s, _ = logits.sort(dim=-1, descending=True)
        p = s.softmax(-1)
        rem = (p.cumsum(-1) - p) >= top_p
        logits = logits.masked_fill(rem, float("-inf"))
    return F.softmax(logits, dim=-1)


@mistake(ex.check_sampling_probs, r"order|before|after|top.?k.*top.?p|top.?p.*top.?k|combin|renormali[sz]|unfiltered|both")
def r22b_samp_topp_before_topk(logits, temperature=1.0, top_k=None, top_p=None):  # top-p first, then top-k
    logits = logits / temperature
    if top_p is not None:
        logits = logits.masked_fill(_top_p_mask(logits, top_p), float("-inf"))
    if top_k is not None:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return F.softmax(logits, dim=-1)


@mistake(ex.check_sampling_probs, r"order|combin|top.?k.*top.?p|top.?p.*top.?k|unfiltered|renormali[sz]|original|both")
def r22b_samp_masks_from_original(logits, temperature=1.0, top_k=None, top_p=None):  # both masks from the raw logits, OR-ed
    logits = logits / temperature
    remove = torch.zeros_like(logits, dtype=torch.bool)
    if top_k is not None:
        remove |= logits < torch.topk(logits, top_k, dim=-1).values[:, -1:]
    if top_p is not None:
        remove |= _top_p_mask(logits, top_p)
    return F.softmax(logits.masked_fill(remove, float("-inf")), dim=-1)


@mistake(ex.check_sampling_probs, r"axis|dim|batch|softmax")
def r22b_samp_softmax_dim0(logits, temperature=1.0, top_k=None, top_p=None):  # final softmax over dim=0 (the batch)
    logits = logits / temperature
    if top_k is not None:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None:
        logits = logits.masked_fill(_top_p_mask(logits, top_p), float("-inf"))
    return F.softmax(logits, dim=0)


@mistake(ex.check_sampling_probs, r"top.?k|k ?- ?1|k ?\+ ?1|off.by.one|one (token )?too|count|tie|strict")
def r22b_samp_topk_le(logits, temperature=1.0, top_k=None, top_p=None):  # removes logits <= k-th: keeps only k-1 tokens
    logits = logits / temperature
    if top_k is not None:
        kth = logits.sort(dim=-1, descending=True).values[:, top_k - 1].unsqueeze(1)
        logits = torch.where(logits <= kth, torch.full_like(logits, -math.inf), logits)
    if top_p is not None:
        logits = logits.masked_fill(_top_p_mask(logits, top_p), float("-inf"))
    return F.softmax(logits, dim=-1)


@mistake(ex.check_sampling_probs, r"batch|row|first row|per.?row|broadcast")
def r22b_samp_topk_row0(logits, temperature=1.0, top_k=None, top_p=None):  # one threshold for the whole batch, from row 0
    logits = logits / temperature
    if top_k is not None:
        kth = torch.topk(logits, top_k, dim=-1).values[0, -1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None:
        logits = logits.masked_fill(_top_p_mask(logits, top_p), float("-inf"))
    return F.softmax(logits, dim=-1)


@mistake(ex.check_sampling_probs, r"temperature|after|top.?p|order")
def r22b_samp_temp_after_topp(logits, temperature=1.0, top_k=None, top_p=None):  # filters first, divides by T at the end
    if top_k is not None:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None:
        logits = logits.masked_fill(_top_p_mask(logits, top_p), float("-inf"))
    return F.softmax(logits / temperature, dim=-1)


@mistake(ex.check_sampling_probs, r"top.?p|ignor|both|elif|combin|top.?k.*top.?p|top.?p.*top.?k")
def r22b_samp_elif(logits, temperature=1.0, top_k=None, top_p=None):  # if/elif: top_p ignored whenever top_k is given
    logits = logits / temperature
    if top_k is not None:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    elif top_p is not None:
        logits = logits.masked_fill(_top_p_mask(logits, top_p), float("-inf"))
    return F.softmax(logits, dim=-1)


@mistake(ex.check_sampling_probs, r"log|softmax|probab|normali[sz]|sum")
def r22b_samp_log_softmax(logits, temperature=1.0, top_k=None, top_p=None):  # returns log_softmax (log-probabilities)
    logits = logits / temperature
    if top_k is not None:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None:
        logits = logits.masked_fill(_top_p_mask(logits, top_p), float("-inf"))
    return F.log_softmax(logits, dim=-1)


@valid(ex.check_sampling_probs)
def r22b_samp_rowloop_numpy(logits, temperature=1.0, top_k=None, top_p=None):  # per row with numpy, argsort and a loop
    out = []
    for row in logits.detach().double().numpy():
        z = row / temperature
        keep = np.ones_like(z, dtype=bool)
        if top_k is not None:
            kth = np.sort(z)[::-1][top_k - 1]
            keep &= z >= kth
        if top_p is not None:
            zz = np.where(keep, z, -np.inf)
            p = np.exp(zz - zz.max())
            p /= p.sum()
            mass = 0.0
            for i in np.argsort(-zz, kind="stable"):
                if mass >= top_p:
                    keep[i] = False
                mass += p[i]
        zz = np.where(keep, z, -np.inf)
        e = np.exp(zz - zz.max())
        out.append(e / e.sum())
    return torch.tensor(np.array(out), dtype=logits.dtype)


@valid(ex.check_sampling_probs)
def r22b_samp_probs_space(logits, temperature=1.0, top_k=None, top_p=None):  # works on probabilities, renormalises each time
    p = torch.softmax(logits / temperature, dim=-1)
    if top_k is not None:
        kth = p.topk(top_k, dim=-1).values[..., -1:]
        p = torch.where(p >= kth, p, torch.zeros_like(p))
        p = p / p.sum(-1, keepdim=True)
    if top_p is not None:
        sp, idx = p.sort(-1, descending=True)
        before = torch.cat([torch.zeros_like(sp[:, :1]), sp.cumsum(-1)[:, :-1]], dim=1)
        sp = torch.where(before < top_p, sp, torch.zeros_like(sp))
        p = torch.zeros_like(p).scatter(-1, idx, sp)
        p = p / p.sum(-1, keepdim=True)
    return p


# ================================================================================================ KV cache
class _GoodCache:
    def __init__(self, n_layer, max_length):
        self.length = 0
        self.keys = [None] * n_layer
        self.values = [None] * n_layer

    def update(self, layer, k, v):
        if self.keys[layer] is None:
            self.keys[layer], self.values[layer] = k, v
        else:
            self.keys[layer] = torch.cat([self.keys[layer], k], dim=2)
            self.values[layer] = torch.cat([self.values[layer], v], dim=2)
        return self.keys[layer], self.values[layer]

    def advance(self, T):
        self.length += T


@mistake(ex.check_kv_cache, r"buffer|prealloc|whole|max.?length|slice|unfilled|empty|zero|garbage|length")
class r22b_kv_whole_buffer(_GoodCache):  # preallocates zeros to max_length and returns the WHOLE buffer
    def __init__(self, n_layer, max_length):
        super().__init__(n_layer, max_length)
        self.max_length = max_length

    def update(self, layer, k, v):
        B, nh, T, hs = k.shape
        if self.keys[layer] is None:
            self.keys[layer] = torch.zeros(B, nh, self.max_length, hs, dtype=k.dtype)
            self.values[layer] = torch.zeros(B, nh, self.max_length, hs, dtype=v.dtype)
        self.keys[layer][:, :, self.length:self.length + T] = k
        self.values[layer][:, :, self.length:self.length + T] = v
        return self.keys[layer], self.values[layer]


@mistake(ex.check_kv_cache, r"value|\bv\b|keys? (twice|as values)|only (the )?keys")
class r22b_kv_returns_keys_twice(_GoodCache):  # caches both but returns the keys for the values too
    def update(self, layer, k, v):
        super().update(layer, k, v)
        return self.keys[layer], self.keys[layer]


@mistake(ex.check_kv_cache, r"value|\bv\b|only (the )?keys|not cached|new (token|position)s? only")
class r22b_kv_only_keys(_GoodCache):  # caches k, returns the new v alone (values never cached)
    def update(self, layer, k, v):
        if self.keys[layer] is None:
            self.keys[layer] = k
        else:
            self.keys[layer] = torch.cat([self.keys[layer], k], dim=2)
        return self.keys[layer], v


@mistake(ex.check_kv_cache, r"axis|dim|batch|concat|time")
class r22b_kv_cat_dim0(_GoodCache):  # concatenates along dim 0 (batch) instead of time
    def update(self, layer, k, v):
        if self.keys[layer] is None:
            self.keys[layer], self.values[layer] = k, v
        else:
            self.keys[layer] = torch.cat([self.keys[layer], k], dim=0)
            self.values[layer] = torch.cat([self.values[layer], v], dim=0)
        return self.keys[layer], self.values[layer]


@mistake(ex.check_kv_cache, r"layer|shared|one (list|cache|buffer)|per.?layer")
class r22b_kv_shared_between_layers(_GoodCache):  # one k and one v for all layers: ignores the layer index
    def __init__(self, n_layer, max_length):
        self.length = 0
        self.k = None
        self.v = None

    def update(self, layer, k, v):
        self.k = k if self.k is None else torch.cat([self.k, k], dim=2)
        self.v = v if self.v is None else torch.cat([self.v, v], dim=2)
        return self.k, self.v


@mistake(ex.check_kv_cache, r"advance|length|position|counter|pos")
class r22b_kv_never_advances(_GoodCache):  # advance() left as `pass`: every new token gets position 0..
    def advance(self, T):
        pass


@mistake(ex.check_kv_cache, r"advance|length|position|counter|by one|T_new|prompt")
class r22b_kv_advance_by_one(_GoodCache):  # advance adds 1, not T: the 3-token prompt counts as one position
    def advance(self, T):
        self.length += 1


@mistake(ex.check_kv_cache, r"advance|length|position|counter|twice|double")
class r22b_kv_counts_in_update(_GoodCache):  # increments length in update (once per layer) AND in advance
    def update(self, layer, k, v):
        out = super().update(layer, k, v)
        self.length += k.size(2)
        return out


@mistake(ex.check_kv_cache, r"overwrit|replac|only (the )?(new|last|latest)|append|window|forget|keeps? only|no cache")
class r22b_kv_overwrites(_GoodCache):  # stores the new k, v in place of the old ones: nothing accumulates
    def update(self, layer, k, v):
        self.keys[layer], self.values[layer] = k, v
        return k, v


@mistake(ex.check_kv_cache, r"order|mismatch|prepend|value|key|align|revers|pair")
class r22b_kv_values_prepended(_GoodCache):  # keys appended, values prepended: k and v positions no longer match
    def update(self, layer, k, v):
        if self.keys[layer] is None:
            self.keys[layer], self.values[layer] = k, v
        else:
            self.keys[layer] = torch.cat([self.keys[layer], k], dim=2)
            self.values[layer] = torch.cat([v, self.values[layer]], dim=2)
        return self.keys[layer], self.values[layer]


@mistake(ex.check_kv_cache, r"one (token|position)|T ?> ?1|prompt|several|T_new|length|slice|\+ ?1")
class r22b_kv_buffer_plus_one(_GoodCache):  # preallocated buffer, returns [:length + 1] (assumes one token per call)
    def __init__(self, n_layer, max_length):
        super().__init__(n_layer, max_length)
        self.max_length = max_length

    def update(self, layer, k, v):
        B, nh, T, hs = k.shape
        if self.keys[layer] is None:
            self.keys[layer] = k.new_zeros(B, nh, self.max_length, hs)
            self.values[layer] = v.new_zeros(B, nh, self.max_length, hs)
        self.keys[layer][:, :, self.length:self.length + T] = k
        self.values[layer][:, :, self.length:self.length + T] = v
        return self.keys[layer][:, :, :self.length + 1], self.values[layer][:, :, :self.length + 1]


@valid(ex.check_kv_cache)
class r22b_kv_index_copy(_GoodCache):  # preallocated buffers filled with index_copy_, sliced to what is filled
    def __init__(self, n_layer, max_length):
        super().__init__(n_layer, max_length)
        self.max_length = max_length

    def update(self, layer, k, v):
        B, nh, T, hs = k.shape
        if self.keys[layer] is None:
            self.keys[layer] = torch.full((B, nh, self.max_length, hs), float("nan"), dtype=k.dtype)
            self.values[layer] = torch.full((B, nh, self.max_length, hs), float("nan"), dtype=v.dtype)
        where = torch.arange(self.length, self.length + T)
        self.keys[layer].index_copy_(2, where, k)
        self.values[layer].index_copy_(2, where, v)
        n = self.length + T
        return self.keys[layer].narrow(2, 0, n), self.values[layer].narrow(2, 0, n)


@valid(ex.check_kv_cache)
class r22b_kv_dict_of_lists(_GoodCache):  # a dict of per-step chunks, concatenated on every call
    def __init__(self, n_layer, max_length):
        self.length = 0
        self.chunks = {}

    def update(self, layer, k, v):
        self.chunks.setdefault(layer, []).append((k, v))
        ks, vs = zip(*self.chunks[layer])
        return torch.cat(ks, dim=-2), torch.cat(vs, dim=-2)


# ================================================================================================ merge
# widened: property "nothing merged", its explanation names a list never equalling a tuple
@mistake(ex.check_merge, r"tuple|list|type|never|no (merge|replace)|unchanged|compar|nothing merged")
def r22b_merge_list_vs_tuple(ids, pair, new_id):  # compares a list slice with the tuple pair: never equal
    out, i = [], 0
    while i < len(ids):
        if ids[i:i + 2] == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


# widened: message says "right half of a merged pair kept" -- the same cause (i += 1 revisits the right half)
@mistake(ex.check_merge, r"overlap|skip|advance|step|i ?\+ ?=? ?1|twice|aaa|repeat|right half")
def r22b_merge_step_one(ids, pair, new_id):  # after a match steps by 1, so the right half is visited again
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
        else:
            out.append(ids[i])
        i += 1
    return out


@mistake(ex.check_merge, r"last|final|end|drop|lost|missing")
def r22b_merge_drops_last(ids, pair, new_id):  # loops to len-1 and forgets the last id when it isn't merged
    out, i = [], 0
    while i < len(ids) - 1:
        if (ids[i], ids[i + 1]) == tuple(pair):
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


@mistake(ex.check_merge, r"right|revers|left.to.right|direction|overlap|order")
def r22b_merge_right_to_left(ids, pair, new_id):  # scans from the right end: overlapping runs merge on the wrong side
    out, i = [], len(ids) - 1
    while i >= 0:
        if i >= 1 and (ids[i - 1], ids[i]) == tuple(pair):
            out.append(new_id)
            i -= 2
        else:
            out.append(ids[i])
            i -= 1
    return out[::-1]


@mistake(ex.check_merge, r"string|str|digit|join|text|boundar|substring")
def r22b_merge_string_replace(ids, pair, new_id):  # joins ids into a string and uses str.replace
    s = " " + " ".join(map(str, ids)) + " "
    s = s.replace(f"{pair[0]} {pair[1]}", str(new_id))
    return [int(x) for x in s.split()]


@mistake(ex.check_merge, r"first|only one|once|every|all occurrences")
def r22b_merge_first_only(ids, pair, new_id):  # replaces only the first occurrence
    ids = list(ids)
    for i in range(len(ids) - 1):
        if ids[i] == pair[0] and ids[i + 1] == pair[1]:
            return ids[:i] + [new_id] + ids[i + 2:]
    return ids


@mistake(ex.check_merge, r"order|revers|either|swap|(b|second).*(a|first)|direction|set")
def r22b_merge_either_order(ids, pair, new_id):  # compares sets: (b, a) merges too
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and {ids[i], ids[i + 1]} == set(pair):
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


# widened: message says "only the pair's first element compared"
@mistake(ex.check_merge, r"second|first (element|id|token) only|only the first|only the pair's first|pair\[1\]|both|half")
def r22b_merge_first_element_only(ids, pair, new_id):  # checks only ids[i] == pair[0]
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


@mistake(ex.check_merge, r"overlap|non.?overlapping|twice|aaa|repeat|consecutive")
def r22b_merge_numpy_all_positions(ids, pair, new_id):  # numpy: every matching start replaced, overlaps included
    a = np.array(ids)
    if len(a) < 2:
        return list(ids)
    hit = (a[:-1] == pair[0]) & (a[1:] == pair[1])
    drop = np.zeros(len(a), dtype=bool)
    drop[1:] = hit
    a = a.copy()
    a[:-1][hit] = new_id
    return [int(x) for x in a[~drop]]


@mistake(ex.check_merge, r"mutat|in.?place|input|caller|modif|copy")
def r22b_merge_mutates_input(ids, pair, new_id):  # edits the caller's list in place (and returns it)
    i = 0
    while i < len(ids) - 1:
        if ids[i] == pair[0] and ids[i + 1] == pair[1]:
            ids[i:i + 2] = [new_id]
        i += 1
    return ids


# written as a mistake, found equal to the rule (a fresh new_id never re-matches the pair): moved to valid
@valid(ex.check_merge)
def r22b_merge_rescans(ids, pair, new_id):  # after a replacement steps back one place (harmless: new_id is fresh)
    ids = list(ids)
    i = 0
    while i < len(ids) - 1:
        if ids[i] == pair[0] and ids[i + 1] == pair[1]:
            ids[i:i + 2] = [new_id]
            i = max(i - 1, 0)
        else:
            i += 1
    return ids


@mistake(ex.check_merge, r"empty|short|single|length|edge|index|one (id|element|token)")
def r22b_merge_assumes_two(ids, pair, new_id):  # zip-based, but returns [] for a single id (forgot the tail)
    out, skip = [], False
    for a, b in zip(ids, ids[1:]):
        if skip:
            skip = False
            continue
        if (a, b) == tuple(pair):
            out.append(new_id)
            skip = True
        else:
            out.append(a)
    if not skip and len(ids) >= 2:
        out.append(ids[-1])
    return out


@mistake(ex.check_merge, r"never stop|infinite|loop|stuck|hang|move on|advance")
def r22b_merge_stuck_at_end(ids, pair, new_id):  # nested if: at the last id neither appends nor moves on -> loops forever
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids):
            if (ids[i], ids[i + 1]) == tuple(pair):
                out.append(new_id)
                i += 2
            else:
                out.append(ids[i])
                i += 1
        else:
            continue
    return out


@valid(ex.check_merge)
def r22b_merge_lookback(ids, pair, new_id):  # looks back at the last output instead of ahead
    out = []
    for x in ids:
        if out and out[-1] == pair[0] and x == pair[1]:
            out[-1] = new_id
        else:
            out.append(x)
    return out


@valid(ex.check_merge)
def r22b_merge_recursive(ids, pair, new_id):  # recursion on the head of the list
    ids = list(ids)
    if len(ids) < 2:
        return ids
    if (ids[0], ids[1]) == tuple(pair):
        return [new_id] + r22b_merge_recursive(ids[2:], pair, new_id)
    return [ids[0]] + r22b_merge_recursive(ids[1:], pair, new_id)


# ================================================================================================ BPE encode
def _merge(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


@mistake(ex.check_bpe_encode, r"leftmost|first|position|left|rank|lowest")
def r22b_bpe_leftmost(ids, merges):  # merges the leftmost mergeable pair, not the lowest-ranked one
    ids = list(ids)
    while True:
        for p in zip(ids, ids[1:]):
            if p in merges:
                ids = _merge(ids, p, merges[p])
                break
        else:
            return ids


@mistake(ex.check_bpe_encode, r"frequen|count|common|rank|lowest")
def r22b_bpe_by_frequency(ids, merges):  # picks the most frequent mergeable pair (training habit)
    from collections import Counter
    ids = list(ids)
    while True:
        counts = Counter(p for p in zip(ids, ids[1:]) if p in merges)
        if not counts:
            return ids
        p = counts.most_common(1)[0][0]
        ids = _merge(ids, p, merges[p])


@mistake(ex.check_bpe_encode, r"highest|max|largest|latest|rank|lowest")
def r22b_bpe_highest_rank(ids, merges):  # max instead of min: the most recently learned merge first
    ids = list(ids)
    while len(ids) >= 2:
        cands = [p for p in zip(ids, ids[1:]) if p in merges]
        if not cands:
            break
        p = max(cands, key=lambda q: merges[q])
        ids = _merge(ids, p, merges[p])
    return ids


@mistake(ex.check_bpe_encode, r"once|one (round|pass|merge)|repeat|loop|until|stop")
def r22b_bpe_single_merge(ids, merges):  # `if` where a `while` belongs: one merge and done
    ids = list(ids)
    if len(ids) >= 2:
        p = min(zip(ids, ids[1:]), key=lambda q: merges.get(q, float("inf")))
        if p in merges:
            ids = _merge(ids, p, merges[p])
    return ids


@mistake(ex.check_bpe_encode, r"first pair|stop|early|break|unknown|not in merges|until")
def r22b_bpe_stops_on_first_pair(ids, merges):  # stops as soon as the FIRST pair of the list is not a merge
    ids = list(ids)
    while len(ids) >= 2 and (ids[0], ids[1]) in merges:
        p = min(zip(ids, ids[1:]), key=lambda q: merges.get(q, float("inf")))
        ids = _merge(ids, p, merges[p])
    return ids


@mistake(ex.check_bpe_encode, r"lexico|tuple|ids? (value|order)|rank|lowest|key")
def r22b_bpe_min_by_tuple(ids, merges):  # min over the pairs themselves (smallest ids), not their rank
    ids = list(ids)
    while True:
        cands = [p for p in zip(ids, ids[1:]) if p in merges]
        if not cands:
            return ids
        p = min(cands)
        ids = _merge(ids, p, merges[p])


@mistake(ex.check_bpe_encode, r"two|2|last pair|length|stop|until|final")
def r22b_bpe_stops_at_two(ids, merges):  # `while len(ids) > 2`: the last pair is never merged
    ids = list(ids)
    while len(ids) > 2:
        p = min(zip(ids, ids[1:]), key=lambda q: merges.get(q, float("inf")))
        if p not in merges:
            break
        ids = _merge(ids, p, merges[p])
    return ids


@mistake(ex.check_bpe_encode, r"default|unknown|not in merges|0|stop|early|rank")
def r22b_bpe_default_zero(ids, merges):  # merges.get(p, 0): an unknown pair looks like the best, the loop stops
    ids = list(ids)
    while len(ids) >= 2:
        p = min(zip(ids, ids[1:]), key=lambda q: merges.get(q, 0))
        if p not in merges:
            break
        ids = _merge(ids, p, merges[p])
    return ids


@mistake(ex.check_bpe_encode, r"right|last|position|rank|lowest")
def r22b_bpe_rightmost(ids, merges):  # merges the rightmost mergeable pair
    ids = list(ids)
    while True:
        cands = [p for p in zip(ids, ids[1:]) if p in merges]
        if not cands:
            return ids
        p = cands[-1]
        ids = _merge(ids, p, merges[p])


# written as a mistake, found equal: the loop comes back to the same lowest-ranked pair next time; moved to valid
@valid(ex.check_bpe_encode)
def r22b_bpe_merge_first_occurrence(ids, merges):  # each step replaces only the first occurrence; the while loop does the rest
    ids = list(ids)
    while len(ids) >= 2:
        p = min(zip(ids, ids[1:]), key=lambda q: merges.get(q, float("inf")))
        if p not in merges:
            break
        i = list(zip(ids, ids[1:])).index(p)
        ids = ids[:i] + [merges[p]] + ids[i + 2:]
    return ids


@mistake(ex.check_bpe_encode, r"revers|order|highest|rank|backward|latest")
def r22b_bpe_reverse_pass(ids, merges):  # one pass over the merges, newest first
    ids = list(ids)
    for p, new_id in sorted(merges.items(), key=lambda kv: -kv[1]):
        ids = _merge(ids, p, new_id)
    return ids


@mistake(ex.check_bpe_encode, r"new.?id|offset|256|value|wrong id|off.by.one")
def r22b_bpe_new_id_offset(ids, merges):  # thinks merges hold 0-based ranks: writes rank + 256 as the new id
    ids = list(ids)
    ranked = {p: r for r, p in enumerate(sorted(merges, key=merges.get))}
    while len(ids) >= 2:
        p = min(zip(ids, ids[1:]), key=lambda q: ranked.get(q, float("inf")))
        if p not in ranked:
            break
        ids = _merge(ids, p, ranked[p] + 256 + 1)
    return ids


@mistake(ex.check_bpe_encode, r"never stop|infinite|loop|stuck|hang|break|way out")
def r22b_bpe_no_way_out(ids, merges):  # forgot the break: when nothing is mergeable the while loop spins forever
    ids = list(ids)
    while len(ids) >= 2:
        p = min(zip(ids, ids[1:]), key=lambda q: merges.get(q, float("inf")))
        if p in merges:
            ids = _merge(ids, p, merges[p])
    return ids


@mistake(ex.check_bpe_encode, r"once|start|initial|recomput|new (pair|token)|created|stale|fixed")
def r22b_bpe_pairs_once(ids, merges):  # lists the mergeable pairs once at the start: pairs made by merges never merge
    ids = list(ids)
    todo = sorted({p for p in zip(ids, ids[1:]) if p in merges}, key=merges.get)
    for p in todo:
        ids = _merge(ids, p, merges[p])
    return ids


@valid(ex.check_bpe_encode)
def r22b_bpe_scan_loop(ids, merges):  # explicit scan for the best position, merges every occurrence of that pair
    ids = list(ids)
    while True:
        best, best_rank = None, None
        for i in range(len(ids) - 1):
            r = merges.get((ids[i], ids[i + 1]))
            if r is not None and (best_rank is None or r < best_rank):
                best, best_rank = (ids[i], ids[i + 1]), r
        if best is None:
            return ids
        ids = _merge(ids, best, best_rank)


@valid(ex.check_bpe_encode)
def r22b_bpe_recursive(ids, merges):  # recursive: merge the best pair, encode the rest
    ids = list(ids)
    pairs = [p for p in zip(ids, ids[1:]) if p in merges]
    if not pairs:
        return ids
    p = min(pairs, key=merges.__getitem__)
    return r22b_bpe_recursive(_merge(ids, p, merges[p]), merges)
