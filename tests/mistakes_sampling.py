"""
Student-style sampling distributions and greedy choices: (checker, buggy implementation, expected name) rows,
valid alternatives, and unnamed mistakes that must be reported as not recognised.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mingpt.exercises import check_greedy, check_sampling_probs

NEG = float("-inf")


def top_k_filter(logits, k):
    kth = torch.topk(logits, k, dim=-1).values[:, -1:]
    return logits.masked_fill(logits < kth, NEG)


def top_p_filter(logits, p):
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    probs = sorted_logits.softmax(dim=-1)
    above = probs.cumsum(dim=-1) - probs
    return logits.masked_fill((above >= p).scatter(-1, order, above >= p), NEG)


def sampler(temperature_step=lambda lg, t: lg / t, top_k=top_k_filter, top_p=top_p_filter, finish=None, both=True):
    """A student's function with one step swapped; finish(logits) -> probs."""
    def probs(logits, temperature=1.0, top_k_=None, top_p_=None):
        logits = temperature_step(logits, temperature)
        if top_k_ is not None:
            logits = top_k(logits, top_k_)
        if top_p_ is not None and (both or top_k_ is None):
            logits = top_p(logits, top_p_)
        return finish(logits) if finish else F.softmax(logits, dim=-1)
    return probs


def top_p_rule(logits, p, drop, unsort=True):
    """top-p with the rule drop(sorted probs, p) -> which sorted positions go; unsort=False forgets the scatter."""
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    remove = drop(sorted_logits.softmax(dim=-1), p)
    return logits.masked_fill(remove.scatter(-1, order, remove) if unsort else remove, NEG)


def probs_ok(logits, temperature=1.0, top_k=None, top_p=None):
    return sampler()(logits, temperature, top_k, top_p)


def top_p_drops_crossing(logits, p):
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    remove = cumulative > p
    remove[:, 0] = False
    return logits.masked_fill(remove.scatter(-1, order, remove), NEG)


def top_p_over_logits(logits, p):  # the cumulative sum of the logits themselves
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    above = sorted_logits.cumsum(dim=-1) - sorted_logits
    return logits.masked_fill((above >= p).scatter(-1, order, above >= p), NEG)


def top_p_unsorted(logits, p):
    probs = logits.softmax(-1)
    return logits.masked_fill(probs.cumsum(-1) - probs >= p, NEG)


def top_p_tail(logits, p):
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    probs = sorted_logits.softmax(dim=-1)
    keep = probs.cumsum(dim=-1) - probs >= p
    return logits.masked_fill(~keep.scatter(-1, order, keep), NEG)


def probs_top_p_before_temperature(logits, temperature=1.0, top_k=None, top_p=None):
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    return F.softmax(logits / temperature, dim=-1)


def probs_top_p_on_full(logits, temperature=1.0, top_k=None, top_p=None):
    logits = logits / temperature
    remove = torch.zeros_like(logits, dtype=torch.bool)
    if top_k is not None:
        remove |= top_k_filter(logits, top_k).isinf()
    if top_p is not None:
        remove |= top_p_filter(logits, top_p).isinf()
    return F.softmax(logits.masked_fill(remove, NEG), dim=-1)


def probs_top_k_ignored_with_top_p(logits, temperature=1.0, top_k=None, top_p=None):
    logits = logits / temperature
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    elif top_k is not None:
        logits = top_k_filter(logits, top_k)
    return F.softmax(logits, dim=-1)


def probs_filter_after_softmax(logits, temperature=1.0, top_k=None, top_p=None):
    probs = F.softmax(logits / temperature, dim=-1)
    keep = ~sampler(finish=lambda lg: lg)(logits, temperature, top_k, top_p).isinf()
    return probs * keep


SAMPLING_MISTAKES = [
    (check_sampling_probs, sampler(temperature_step=lambda lg, t: lg * t), "temperature multiplied instead of divided"),
    (check_sampling_probs, sampler(temperature_step=lambda lg, t: lg),
     "temperature has no effect (ignored, or applied to the probabilities and renormalised)"),
    (check_sampling_probs, sampler(top_p=top_p_tail), "top-p keeps the wrong side of the threshold"),
    (check_sampling_probs, sampler(top_p=top_p_drops_crossing), "top-p drops the token that crosses p"),
    (check_sampling_probs, sampler(top_p=top_p_over_logits), "top-p cumulates logits instead of probabilities"),
    (check_sampling_probs, sampler(top_p=top_p_unsorted), "top-p without sorting"),
    (check_sampling_probs, probs_top_p_before_temperature, "top-p decided before the temperature"),
    (check_sampling_probs, probs_top_p_on_full, "top-p measured on the distribution before top-k"),
    (check_sampling_probs, sampler(both=False), "top-p ignored when top-k is given"),
    (check_sampling_probs, probs_top_k_ignored_with_top_p, "top-k ignored when top-p is given"),
    (check_sampling_probs, sampler(top_k=lambda lg, k: top_k_filter(lg, k + 1) if k + 1 < lg.shape[-1] else lg),
     "top-k keeps one token too many"),
    (check_sampling_probs, sampler(top_k=lambda lg, k: lg.masked_fill(lg <= torch.topk(lg, k).values[:, -1:], NEG)),
     "top-k removes the k-th largest logit too (<= where < is needed)"),  # also one token too few, fewer with ties
    (check_sampling_probs, sampler(top_k=lambda lg, k: lg.masked_fill(
        lg > torch.topk(lg, k, largest=False).values[:, -1:], NEG)), "top-k keeps the k least likely tokens"),
    (check_sampling_probs, probs_filter_after_softmax, "filtered after the softmax without renormalising"),
    (check_sampling_probs, sampler(finish=lambda lg: F.softmax(lg.masked_fill(lg.isinf(), 0.0), -1)),
     "removed logits set to 0 instead of -inf"),
    (check_sampling_probs, sampler(finish=lambda lg: lg), "returned the filtered logits, not probabilities"),
    (check_sampling_probs, sampler(finish=lambda lg: F.softmax(lg, dim=0)), "softmax over the batch axis"),
    (check_sampling_probs, sampler(finish=lambda lg: F.softmax(lg, dim=-1).double()), "wrong dtype"),
    (check_sampling_probs, sampler(finish=lambda lg: F.softmax(lg, dim=-1)[:, None]), "extra dimension of size 1"),
    # ties and an exact running sum (the checker's last stage), the shift written with roll, the mask left sorted
    (check_sampling_probs, sampler(top_p=lambda lg, p: top_p_rule(lg, p, lambda pr, p: pr.cumsum(-1) - pr > p)),
     "top-p keeps a token when the mass above it equals p (> where >= is needed)"),
    (check_sampling_probs, sampler(top_p=lambda lg, p: top_p_rule(lg, p, lambda probs, p: torch.roll(
        probs.cumsum(-1) > p, 1, -1))), "top-p's shift done with torch.roll: the last decision wraps round to the most "
                                         "likely token"),
    (check_sampling_probs, sampler(top_p=lambda lg, p: top_p_rule(lg, p, lambda probs, p: probs.cumsum(-1) - probs >= p,
                                                                  unsort=False)),
     "top-p's decision left in sorted order (not scattered back to the vocabulary)"),
    (check_sampling_probs, sampler(finish=lambda lg: F.one_hot(lg.argmax(-1), lg.shape[-1]).float()),
     "returned a one-hot of the most likely token (greedy), not the distribution"),
    # argument mistakes, fitted families and two mistakes at once (compare.part_variants)
    (check_sampling_probs, sampler(temperature_step=lambda lg, t: lg / t ** 0.5),
     "temperature applied as its square root"),
    (check_sampling_probs, sampler(top_k=lambda lg, k: top_k_filter(lg, min(k + 2, lg.shape[-1]))),
     "top-k keeps 2 tokens too many"),
    (check_sampling_probs, sampler(top_p=lambda lg, p: top_p_filter(lg, 0.85)),
     "top-p uses a fixed p, not the top_p argument (your outputs match p = 0.85)"),
    (check_sampling_probs, sampler(top_p=lambda lg, p: top_p_filter(lg, 0.9)),
     "top-p uses a fixed p, not the top_p argument (your outputs match p = 0.9)"),
    (check_sampling_probs, lambda lg, t=1.0, k=None, p=None: probs_filter_after_softmax(lg * t * t, t, k, p),
     "two mistakes: filtered after the softmax without renormalising; and temperature multiplied instead of divided"),
    (check_sampling_probs, sampler(top_k=lambda lg, k: top_k_filter(lg, min(k + 1, lg.shape[-1])),
                                   top_p=top_p_drops_crossing),
     "two mistakes: top-p drops the token that crosses p; and top-k keeps one token too many"),
    (check_greedy, lambda logits: logits.argmax(dim=0), "argmax over the wrong axis"),
    (check_greedy, lambda logits: logits.max(dim=-1).values, "returned the largest logit, not its token id"),
    (check_greedy, lambda logits: logits.argmax(dim=-1).float(), "ids returned as torch.float32, not integers (wrong "
     "dtype)"),  # the right values, but wte(ids) refuses floats
]


def probs_by_power(logits, temperature=1.0, top_k=None, top_p=None):
    """Valid: softmax(l / T) equals softmax(l)^(1/T) renormalised; filtering by probability ranks as by logits."""
    probs = F.softmax(logits, dim=-1) ** (1 / temperature)
    probs = probs / probs.sum(-1, keepdim=True)
    if top_k is not None:
        probs = probs * (probs >= torch.topk(probs, top_k).values[:, -1:])
        probs = probs / probs.sum(-1, keepdim=True)
    if top_p is not None:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        keep = sorted_probs.cumsum(-1) - sorted_probs < top_p
        probs = probs * keep.scatter(-1, order, keep)
        probs = probs / probs.sum(-1, keepdim=True)
    return probs


# top-k keeping exactly k tokens (a tie at the k-th broken by position) is as right as keeping every tied token
EXACTLY_K = sampler(top_k=lambda lg, k: lg.masked_fill(~torch.zeros_like(lg, dtype=torch.bool).scatter(
    -1, torch.topk(lg, k).indices, True), NEG))
SAMPLING_VALID = [(check_sampling_probs, probs_ok), (check_sampling_probs, probs_by_power),
                  (check_sampling_probs, EXACTLY_K),
                  (check_greedy, lambda logits: logits.argmax(dim=-1)),
                  (check_greedy, lambda logits: torch.max(logits, dim=1).indices),
                  (check_greedy, lambda logits: logits.argmax(dim=-1).int())]  # int32 ids index an embedding too

UNNAMED = [(check_sampling_probs, sampler(temperature_step=lambda lg, t: lg / (t + 0.1))),
           (check_sampling_probs, sampler(top_p=lambda lg, p: top_p_filter(lg, p * 0.93)))]

MISTAKES = SAMPLING_MISTAKES
VALID = SAMPLING_VALID
