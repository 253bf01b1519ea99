"""
The held-out probe, round 18, tokens part (greedy, sampling distribution, KV cache, BPE merge and encode), in three
files (_tokens, _tokens2 for the cache, _tokens3 for BPE). Angle: look-alikes and hidden bugs (a symptom that
resembles another mistake, bugs visible only at B > 1 / on ties / on a second cache / on multi-digit ids / on a
shuffled merges dict, double slips) and valid code that looks wrong (softmax first then p ** (1/T), torch.where with
finfo.min, log space, a stacked preallocated cache, minbpe's sorted passes, one occurrence at a time).

Untuned (written before reading the checkers; mistakes / caught / named / misnamed, valid passed / valid, crashes):
  check_greedy          13 / 11 / 10 / 0,  3 / 3   (not caught: last-of-tied ids, which the checker's contract
                                                    accepts: a valid row; bf16 argmax, near-ties never tested)
  check_sampling_probs  16 / 15 / 14 / 0,  2 / 3   (not caught: exactly k kept when tied with the k-th; refused:
                                                    top-p in log space, rounding at the exact p boundary)
  check_kv_cache        15 / 15 / 14 / 0,  3 / 3
  check_merge           12 / 12 / 12 / 0,  2 / 2   (2 by widened regexes: fair names in other words)
  check_bpe_encode      12 / 12 / 12 / 0,  3 / 3   (2 by widened regexes)
  total                 68 / 65 / 62 / 0, 13 / 14, 0 crashes (58 named by the regexes as first written)
Not named untuned: greedy's max probability returned (not recognised), bfloat16 argmax (passed: no near-ties
tested); sampling's first row's k-th value for every row (not recognised); the cache's keys grown with v (not
recognised). Judged valid by the contracts and moved to the valid rows: the last of tied greedy ids, exactly k kept
when tokens tie with the k-th.

Tuned (after the checker changes of this round): greedy 12 / 12 / 12 / 0, 4 / 4; sampling 15 / 15 / 15 / 0, 4 / 4;
cache 15 / 15 / 15 / 0, 3 / 3; merge 12 / 12 / 12 / 0, 2 / 2; encode 12 / 12 / 12 / 0, 3 / 3; total 66 / 66 / 66 / 0,
16 / 16. Mechanisms: greedy.py a near-tie batch and float16 / bfloat16 argmax variants, the softmax max returned;
sampling_order.py one row's k-th value for all rows; sampling_edges.py + sampling.py top-p's decision at an exact
sum accepted either side when no slip (a strict >) explains every output; kvcache_mistakes.py keys grown with v.
"""

from __future__ import annotations

from heldout_probe_models import ROUND
import heldout_probe_round18_modern  # noqa: F401  (earlier rounds registered first)

ROUND[0] = 18

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import mingpt.exercises as ex  # noqa: E402
from heldout_probe_models import mistake, valid  # noqa: E402


# ------------------------------------------------------------------------------------------ greedy
@mistake(ex.check_greedy, r"axis|dim|row|batch")
def greedy_r18_dim0(logits):  # argmax over the batch axis: the right shape only when B == V
    return logits.argmax(dim=0)


@mistake(ex.check_greedy, r"argmin|min|least|smallest")
def greedy_r18_argmin(logits):
    return logits.argmin(dim=-1)


@mistake(ex.check_greedy, r"value|prob|index|id")
def greedy_r18_max_prob(logits):  # the probability of the best token, not its id
    return logits.softmax(-1).max(-1).values


@mistake(ex.check_greedy, r"shape|keepdim|dim")
def greedy_r18_keepdim(logits):  # (B, 1) instead of (B,)
    return logits.argmax(dim=-1, keepdim=True)


# valid: the contract accepts any one of a row's tied ids (argmax takes the first, this the last)
@valid(ex.check_greedy)
def greedy_r18_last_on_ties(logits):  # the last of tied maxima (flip trick), argmax's convention is the first
    V = logits.size(-1)
    return V - 1 - logits.flip(-1).argmax(dim=-1)


@mistake(ex.check_greedy, r"batch|row|first|broadcast")
def greedy_r18_first_row_only(logits):  # visible only when B > 1
    return logits[0].argmax().repeat(logits.size(0))


@mistake(ex.check_greedy, r"last|vocab|off|slice|exclud")
def greedy_r18_drops_last_token(logits):  # off by one: the last vocabulary entry can never win
    return logits[:, :-1].argmax(dim=-1)


@mistake(ex.check_greedy, r"sampl|random|multinomial|determin")
def greedy_r18_samples(logits):
    return torch.multinomial(logits.softmax(-1), 1).squeeze(-1)


@mistake(ex.check_greedy, r"abs|magnitude|negative|sign")
def greedy_r18_abs(logits):  # largest magnitude: wrong only when a large negative logit exists
    return logits.abs().argmax(dim=-1)


@mistake(ex.check_greedy, r"flat|scalar|global|shape|dim")
def greedy_r18_flat(logits):  # no dim: one index into the flattened tensor
    return logits.argmax()


@mistake(ex.check_greedy, r"off|one|\+ ?1|index|shift")
def greedy_r18_one_based(logits):
    return logits.argmax(dim=-1) + 1


@mistake(ex.check_greedy, r"precision|bf16|bfloat|half|round|tie")
def greedy_r18_bf16(logits):  # "to save memory": rounding makes near-equal logits tie
    return logits.to(torch.bfloat16).argmax(dim=-1)


@mistake(ex.check_greedy, r"value|index|id|max")
def greedy_r18_max_values(logits):  # torch.max returns (values, indices); [0] takes the values
    return torch.max(logits, dim=-1)[0]


@valid(ex.check_greedy)
def greedy_r18_valid_neg_argmin(logits):
    return (-logits).argmin(dim=-1)


@valid(ex.check_greedy)
def greedy_r18_valid_loop(logits):
    out = []
    for row in logits:
        best, best_i = row[0], 0
        for i in range(1, row.numel()):
            if row[i] > best:
                best, best_i = row[i], i
        out.append(best_i)
    return torch.tensor(out, dtype=torch.long)


@valid(ex.check_greedy)
def greedy_r18_valid_softmax_first(logits):  # argmax of the probabilities, in float64 so no new ties
    return logits.double().softmax(-1).argmax(dim=-1)


# ------------------------------------------------------------------------------------------ sampling_probs
def _top_p_remove(logits, top_p, strict=False, shift=True, scatter=True):
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    probs = sorted_logits.softmax(dim=-1)
    mass = probs.cumsum(dim=-1) - (probs if shift else 0)
    remove_sorted = mass > top_p if strict else mass >= top_p
    if not scatter:
        return remove_sorted
    return remove_sorted.scatter(-1, order, remove_sorted)


def _top_k(logits, k, le=False):
    kth = logits.topk(k, dim=-1).values[:, -1:]
    return logits.masked_fill(logits <= kth if le else logits < kth, float("-inf"))


@mistake(ex.check_sampling_probs, r"temperature|multipl|divid")
def sp_r18_times_temperature(logits, temperature=1.0, top_k=None, top_p=None):
    logits = logits * temperature
    if top_k is not None:
        logits = _top_k(logits, top_k)
    if top_p is not None:
        logits = logits.masked_fill(_top_p_remove(logits, top_p), float("-inf"))
    return F.softmax(logits, dim=-1)


@mistake(ex.check_sampling_probs, r"temperature|normali|sum|after")
def sp_r18_temperature_after_softmax(logits, temperature=1.0, top_k=None, top_p=None):
    if top_k is not None:
        logits = _top_k(logits, top_k)
    if top_p is not None:
        logits = logits.masked_fill(_top_p_remove(logits, top_p), float("-inf"))
    return F.softmax(logits, dim=-1) / temperature


@mistake(ex.check_sampling_probs, r"top.?k|k\b|off|one|extra|k \+ 1")
def sp_r18_topk_keeps_k_plus_1(logits, temperature=1.0, top_k=None, top_p=None):
    logits = logits / temperature
    if top_k is not None:  # values[:, top_k] (0-based thinking): the (k+1)-th largest is the threshold
        kth = logits.topk(min(top_k + 1, logits.size(-1)), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None:
        logits = logits.masked_fill(_top_p_remove(logits, top_p), float("-inf"))
    return F.softmax(logits, dim=-1)


@mistake(ex.check_sampling_probs, r"top.?k|k\b|off|one|<=|fewer|k - 1|k-1")
def sp_r18_topk_le(logits, temperature=1.0, top_k=None, top_p=None):
    logits = logits / temperature
    if top_k is not None:  # <= removes the k-th largest too: keeps k - 1
        logits = _top_k(logits, top_k, le=True)
    if top_p is not None:
        logits = logits.masked_fill(_top_p_remove(logits, top_p), float("-inf"))
    return F.softmax(logits, dim=-1)


# valid: the contract keeps all tokens tied with the k-th or exactly k of them (which tied token stays is arbitrary)
@valid(ex.check_sampling_probs)
def sp_r18_topk_exact_k_on_ties(logits, temperature=1.0, top_k=None, top_p=None):
    logits = logits / temperature
    if top_k is not None:  # keeps exactly k ids; a token tied with the k-th largest is dropped
        keep = torch.zeros_like(logits, dtype=torch.bool).scatter(-1, logits.topk(top_k, dim=-1).indices, True)
        logits = logits.masked_fill(~keep, float("-inf"))
    if top_p is not None:
        logits = logits.masked_fill(_top_p_remove(logits, top_p), float("-inf"))
    return F.softmax(logits, dim=-1)


@mistake(ex.check_sampling_probs, r"top.?p|cross|includ|shift|reach")
def sp_r18_topp_drops_crossing(logits, temperature=1.0, top_k=None, top_p=None):
    logits = logits / temperature
    if top_k is not None:
        logits = _top_k(logits, top_k)
    if top_p is not None:  # cumsum >= p without the shift: the token that crosses p goes too
        logits = logits.masked_fill(_top_p_remove(logits, top_p, shift=False), float("-inf"))
    return F.softmax(logits, dim=-1)


@mistake(ex.check_sampling_probs, r"temperature|order|before|after")
def sp_r18_topp_before_temperature(logits, temperature=1.0, top_k=None, top_p=None):
    if top_k is not None:
        logits = _top_k(logits, top_k)
    if top_p is not None:  # the nucleus chosen on the untempered distribution; identical at T = 1
        logits = logits.masked_fill(_top_p_remove(logits, top_p), float("-inf"))
    return F.softmax(logits / temperature, dim=-1)


@mistake(ex.check_sampling_probs, r"sort|order|scatter|unsort|position")
def sp_r18_topp_mask_not_scattered(logits, temperature=1.0, top_k=None, top_p=None):
    logits = logits / temperature
    if top_k is not None:
        logits = _top_k(logits, top_k)
    if top_p is not None:  # the mask in sorted order applied to the unsorted logits
        logits = logits.masked_fill(_top_p_remove(logits, top_p, scatter=False), float("-inf"))
    return F.softmax(logits, dim=-1)


@mistake(ex.check_sampling_probs, r"order|top.?k|renormal|both|combin")
def sp_r18_topp_ignores_topk(logits, temperature=1.0, top_k=None, top_p=None):
    logits = logits / temperature
    remove = torch.zeros_like(logits, dtype=torch.bool)
    if top_p is not None:  # the nucleus from the full distribution, not the one top-k left (renormalised)
        remove |= _top_p_remove(logits, top_p)
    if top_k is not None:
        remove |= logits < logits.topk(top_k, dim=-1).values[:, -1:]
    return F.softmax(logits.masked_fill(remove, float("-inf")), dim=-1)


@mistake(ex.check_sampling_probs, r"-inf|zero|fill|mask|0\b")
def sp_r18_fill_zero(logits, temperature=1.0, top_k=None, top_p=None):
    logits = logits / temperature
    if top_k is not None:  # masked_fill(..., 0): removed tokens keep exp(0 - max) of probability
        logits = logits.masked_fill(logits < logits.topk(top_k, dim=-1).values[:, -1:], 0.0)
    if top_p is not None:
        logits = logits.masked_fill(_top_p_remove(logits, top_p), 0.0)
    return F.softmax(logits, dim=-1)


@mistake(ex.check_sampling_probs, r"batch|row|first|broadcast")
def sp_r18_topk_first_row_threshold(logits, temperature=1.0, top_k=None, top_p=None):
    logits = logits / temperature
    if top_k is not None:  # the first row's k-th value for every row: visible only when B > 1
        logits = logits.masked_fill(logits < logits.topk(top_k, dim=-1).values[0, -1], float("-inf"))
    if top_p is not None:
        logits = logits.masked_fill(_top_p_remove(logits, top_p), float("-inf"))
    return F.softmax(logits, dim=-1)


@mistake(ex.check_sampling_probs, r"top.?p|boundary|>=|equal|strict|exact")
def sp_r18_topp_strict(logits, temperature=1.0, top_k=None, top_p=None):
    logits = logits / temperature
    if top_k is not None:
        logits = _top_k(logits, top_k)
    if top_p is not None:  # mass above > p: a token whose predecessors reach p exactly stays
        logits = logits.masked_fill(_top_p_remove(logits, top_p, strict=True), float("-inf"))
    return F.softmax(logits, dim=-1)


@mistake(ex.check_sampling_probs, r"temperature|twice|squar|double")
def sp_r18_temperature_twice(logits, temperature=1.0, top_k=None, top_p=None):
    logits = logits / temperature
    if top_k is not None:
        logits = _top_k(logits, top_k)
    if top_p is not None:
        logits = logits.masked_fill(_top_p_remove(logits, top_p), float("-inf"))
    return F.softmax(logits / temperature, dim=-1)  # divided again "before the softmax", as the notes say


@mistake(ex.check_sampling_probs, r"log")
def sp_r18_log_probs(logits, temperature=1.0, top_k=None, top_p=None):
    logits = logits / temperature
    if top_k is not None:
        logits = _top_k(logits, top_k)
    if top_p is not None:
        logits = logits.masked_fill(_top_p_remove(logits, top_p), float("-inf"))
    return F.log_softmax(logits, dim=-1)


@mistake(ex.check_sampling_probs, r"normali|renormal|sum|after")
def sp_r18_topk_on_probs_no_renorm(logits, temperature=1.0, top_k=None, top_p=None):
    probs = F.softmax(logits / temperature, dim=-1)
    if top_k is not None:  # zeroes the probabilities outside the top k but never renormalises
        probs = probs.masked_fill(probs < probs.topk(top_k, dim=-1).values[:, -1:], 0.0)
    if top_p is not None:
        probs = probs.masked_fill(_top_p_remove(probs.log(), top_p), 0.0)
    return probs


@mistake(ex.check_sampling_probs, r"axis|dim|batch")
def sp_r18_softmax_dim0(logits, temperature=1.0, top_k=None, top_p=None):
    logits = logits / temperature
    if top_k is not None:
        logits = _top_k(logits, top_k)
    if top_p is not None:
        logits = logits.masked_fill(_top_p_remove(logits, top_p), float("-inf"))
    return F.softmax(logits, dim=0)


@valid(ex.check_sampling_probs)
def sp_r18_valid_power_of_probs(logits, temperature=1.0, top_k=None, top_p=None):
    # softmax first, then p ** (1/T) renormalised: equal to softmax(logits / T); filters on the probabilities
    p = F.softmax(logits.double(), dim=-1) ** (1.0 / temperature)
    p = p / p.sum(-1, keepdim=True)
    if top_k is not None:
        p = p.masked_fill(p < p.topk(top_k, dim=-1).values[:, -1:], 0.0)
        p = p / p.sum(-1, keepdim=True)
    if top_p is not None:
        sp, order = p.sort(dim=-1, descending=True)
        drop = (sp.cumsum(-1) - sp) >= top_p
        p = p.masked_fill(drop.scatter(-1, order, drop), 0.0)
        p = p / p.sum(-1, keepdim=True)
    return p.to(logits.dtype)


@valid(ex.check_sampling_probs)
def sp_r18_valid_finfo_where(logits, temperature=1.0, top_k=None, top_p=None):
    logits = logits / temperature
    low = torch.full_like(logits, torch.finfo(logits.dtype).min)  # torch.where with the dtype's lowest, not -inf
    if top_k is not None:
        logits = torch.where(logits >= logits.topk(top_k, dim=-1).values[:, -1:], logits, low)
    if top_p is not None:
        logits = torch.where(_top_p_remove(logits, top_p), low, logits)
    return F.softmax(logits, dim=-1)


@valid(ex.check_sampling_probs)
def sp_r18_valid_logspace_loop(logits, temperature=1.0, top_k=None, top_p=None):
    rows = []  # one row at a time, in log space: logsumexp of the tokens ranked above each one
    for row in logits:
        row = row / temperature
        if top_k is not None:
            row = row.masked_fill(row < torch.sort(row, descending=True).values[top_k - 1], float("-inf"))
        if top_p is not None:
            s, order = torch.sort(row, descending=True)
            logp = s - torch.logsumexp(s, 0)
            above = torch.cat([logp.new_full((1,), float("-inf")), torch.logcumsumexp(logp, 0)[:-1]])
            drop = above >= torch.log(torch.tensor(top_p, dtype=logp.dtype))
            row = row.masked_fill(torch.zeros_like(drop).scatter(0, order, drop), float("-inf"))
        rows.append(torch.softmax(row, 0))
    return torch.stack(rows)


from heldout_probe_round18_tokens2 import *  # noqa: E402,F401,F403
