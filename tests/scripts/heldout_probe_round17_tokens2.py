"""The held-out probe, round 17, tokens part 2: the sampling distribution, sampling_probs(logits, temperature,
top_k=None, top_p=None) -> probabilities (B, V). See heldout_probe_round17_tokens.py for the angle and the counts."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import mingpt.exercises as ex
from heldout_probe_models import mistake, valid


# ---------------------------------------------------------------- sampling_probs(logits, temperature, top_k, top_p)


def _ref_top_p_mask(logits, top_p):
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    probs = sorted_logits.softmax(dim=-1)
    above = probs.cumsum(dim=-1) - probs
    return (above >= top_p).scatter(-1, order, above >= top_p)


def _ref_top_k(logits, top_k):
    kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


@mistake(ex.check_sampling_probs, r"temperature.*(multipl|divid|invert|inverse)|multipl|1 ?/ ?T|invers")
def _s_temp_multiplied(logits, temperature=1.0, top_k=None, top_p=None):
    logits = logits * temperature
    if top_k is not None:
        logits = _ref_top_k(logits, top_k)
    if top_p is not None:
        logits = logits.masked_fill(_ref_top_p_mask(logits, top_p), float("-inf"))
    return F.softmax(logits, dim=-1)


@mistake(ex.check_sampling_probs, r"temperature.*(after|probab|softmax)|normali|sum to 1|sum")
def _s_temp_after_softmax(logits, temperature=1.0, top_k=None, top_p=None):
    if top_k is not None:
        logits = _ref_top_k(logits, top_k)
    if top_p is not None:
        logits = logits.masked_fill(_ref_top_p_mask(logits, top_p), float("-inf"))
    return F.softmax(logits, dim=-1) / temperature


@mistake(ex.check_sampling_probs, r"k ?- ?1|one fewer|one too few|kth|k-th|<=|tie")
def _s_topk_le(logits, temperature=1.0, top_k=None, top_p=None):
    logits = logits / temperature
    if top_k is not None:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits <= kth, float("-inf"))  # drops the k-th itself
    if top_p is not None:
        logits = logits.masked_fill(_ref_top_p_mask(logits, top_p), float("-inf"))
    return F.softmax(logits, dim=-1)


@mistake(ex.check_sampling_probs, r"-inf|zero|0 instead|masked.*0|removed tokens? .*(probab|kept|nonzero|chance)")
def _s_topk_fill_zero(logits, temperature=1.0, top_k=None, top_p=None):
    logits = logits / temperature
    if top_k is not None:
        v, _ = torch.topk(logits, top_k)
        logits[logits < v[:, [-1]]] = 0.0  # a logit of 0 still has probability
    if top_p is not None:
        logits = logits.masked_fill(_ref_top_p_mask(logits, top_p), float("-inf"))
    return F.softmax(logits, dim=-1)


@mistake(ex.check_sampling_probs, r"renormali|sum to 1|sum|normali")
def _s_topk_after_softmax(logits, temperature=1.0, top_k=None, top_p=None):
    probs = F.softmax(logits / temperature, dim=-1)
    if top_k is not None:
        kth = probs.topk(top_k, dim=-1).values[:, -1:]
        probs = torch.where(probs < kth, torch.zeros_like(probs), probs)  # never renormalised
    if top_p is not None:
        sp, order = probs.sort(dim=-1, descending=True)
        above = sp.cumsum(-1) - sp
        probs = probs.masked_fill((above >= top_p).scatter(-1, order, above >= top_p), 0.0)
    return probs


@mistake(ex.check_sampling_probs, r"temperature.*(before|order|first|after)|order|top-p.*temperature")
def _s_top_p_before_temperature(logits, temperature=1.0, top_k=None, top_p=None):
    if top_p is not None:  # the nucleus is taken on the untempered distribution
        logits = logits.masked_fill(_ref_top_p_mask(logits, top_p), float("-inf"))
    logits = logits / temperature
    if top_k is not None:
        logits = _ref_top_k(logits, top_k)
    return F.softmax(logits, dim=-1)


@mistake(ex.check_sampling_probs, r"cross|includ|boundary|the one|reach|exclud|one too few|shift")
def _s_top_p_drops_crossing(logits, temperature=1.0, top_k=None, top_p=None):
    logits = logits / temperature
    if top_k is not None:
        logits = _ref_top_k(logits, top_k)
    if top_p is not None:
        sorted_logits, idx = torch.sort(logits, descending=True)
        cum = torch.cumsum(F.softmax(sorted_logits, dim=-1), dim=-1)
        remove_sorted = cum > top_p  # removes the token that crosses p as well
        remove_sorted[:, 0] = False
        remove = remove_sorted.scatter(1, idx, remove_sorted)
        logits = logits.masked_fill(remove, float("-inf"))
    return F.softmax(logits, dim=-1)


@mistake(ex.check_sampling_probs, r"sort|order|scatter|unsort|position|rank")
def _s_top_p_no_scatter(logits, temperature=1.0, top_k=None, top_p=None):
    logits = logits / temperature
    if top_k is not None:
        logits = _ref_top_k(logits, top_k)
    if top_p is not None:
        sorted_logits, _ = logits.sort(dim=-1, descending=True)
        p = sorted_logits.softmax(-1)
        remove = (p.cumsum(-1) - p) >= top_p  # a mask in sorted order applied to unsorted logits
        logits = logits.masked_fill(remove, float("-inf"))
    return F.softmax(logits, dim=-1)


@mistake(ex.check_sampling_probs, r"ascend|least likely|smallest|descending|sort|order")
def _s_top_p_ascending(logits, temperature=1.0, top_k=None, top_p=None):
    logits = logits / temperature
    if top_k is not None:
        logits = _ref_top_k(logits, top_k)
    if top_p is not None:
        sorted_logits, order = logits.sort(dim=-1)  # ascending
        probs = sorted_logits.softmax(dim=-1)
        above = probs.cumsum(dim=-1) - probs
        remove = (above >= top_p).scatter(-1, order, above >= top_p)
        logits = logits.masked_fill(remove, float("-inf"))
    return F.softmax(logits, dim=-1)


@mistake(ex.check_sampling_probs, r"logits.*(prob|cumsum|softmax)|cumsum|probabilit|softmax")
def _s_top_p_cumsum_logits(logits, temperature=1.0, top_k=None, top_p=None):
    logits = logits / temperature
    if top_k is not None:
        logits = _ref_top_k(logits, top_k)
    if top_p is not None:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        above = sorted_logits.cumsum(dim=-1) - sorted_logits  # logits summed, not probabilities
        remove = (above >= top_p).scatter(-1, order, above >= top_p)
        logits = logits.masked_fill(remove, float("-inf"))
    return F.softmax(logits, dim=-1)


@mistake(ex.check_sampling_probs, r"batch|row|across|global|per row|whole")
def _s_topk_global(logits, temperature=1.0, top_k=None, top_p=None):
    logits = logits / temperature
    if top_k is not None:
        kth = torch.topk(logits.flatten(), top_k).values[-1]  # one threshold for the whole batch
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None:
        logits = logits.masked_fill(_ref_top_p_mask(logits, top_p), float("-inf"))
    return F.softmax(logits, dim=-1)


@mistake(ex.check_sampling_probs, r"temperature|ignor")
def _s_no_temperature(logits, temperature=1.0, top_k=None, top_p=None):
    if top_k is not None:
        logits = _ref_top_k(logits, top_k)
    if top_p is not None:
        logits = logits.masked_fill(_ref_top_p_mask(logits, top_p), float("-inf"))
    return F.softmax(logits, dim=-1)


@mistake(ex.check_sampling_probs, r"log|softmax")
def _s_log_softmax(logits, temperature=1.0, top_k=None, top_p=None):
    logits = logits / temperature
    if top_k is not None:
        logits = _ref_top_k(logits, top_k)
    if top_p is not None:
        logits = logits.masked_fill(_ref_top_p_mask(logits, top_p), float("-inf"))
    return F.log_softmax(logits, dim=-1)


@mistake(ex.check_sampling_probs, r"dim|axis|batch|column|row|sum")
def _s_softmax_dim0(logits, temperature=1.0, top_k=None, top_p=None):
    logits = logits / temperature
    if top_k is not None:
        logits = _ref_top_k(logits, top_k)
    if top_p is not None:
        logits = logits.masked_fill(_ref_top_p_mask(logits, top_p), float("-inf"))
    return F.softmax(logits, dim=0)


@mistake(ex.check_sampling_probs, r"top-k.*top-p|after top-k|renormal|order|untruncated|original|before")
def _s_top_p_from_unfiltered(logits, temperature=1.0, top_k=None, top_p=None):
    logits = logits / temperature
    probs_all = F.softmax(logits, dim=-1)  # the nucleus measured before top-k removed anything
    if top_k is not None:
        logits = _ref_top_k(logits, top_k)
    if top_p is not None:
        sp, order = probs_all.sort(dim=-1, descending=True)
        above = sp.cumsum(-1) - sp
        logits = logits.masked_fill((above >= top_p).scatter(-1, order, above >= top_p), float("-inf"))
    return F.softmax(logits, dim=-1)


@mistake(ex.check_sampling_probs, r"sort|order|position")
def _s_topk_returns_sorted(logits, temperature=1.0, top_k=None, top_p=None):
    logits, _ = (logits / temperature).sort(dim=-1, descending=True)  # the result is in sorted order
    if top_k is not None:
        logits[:, top_k:] = float("-inf")
    if top_p is not None:
        p = logits.softmax(-1)
        logits = logits.masked_fill(p.cumsum(-1) - p >= top_p, float("-inf"))
    return logits.softmax(-1)


@mistake(ex.check_sampling_probs, r"temperature|multipl|k ?- ?1|kth|k-th|invers")
def _s_double_temp_topk(logits, temperature=1.0, top_k=None, top_p=None):  # double slip
    logits = logits * temperature
    if top_k is not None:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits <= kth, float("-inf"))
    if top_p is not None:
        logits = logits.masked_fill(_ref_top_p_mask(logits, top_p), float("-inf"))
    return F.softmax(logits, dim=-1)


@mistake(ex.check_sampling_probs, r"cross|includ|sort|order|scatter|boundary")
def _s_double_top_p(logits, temperature=1.0, top_k=None, top_p=None):  # double slip: crossing token and no scatter
    logits = logits / temperature
    if top_k is not None:
        logits = _ref_top_k(logits, top_k)
    if top_p is not None:
        s, _ = torch.sort(logits, descending=True)
        cum = s.softmax(-1).cumsum(-1)
        remove = cum > top_p
        remove[..., 0] = False
        logits = logits.masked_fill(remove, float("-inf"))
    return F.softmax(logits, dim=-1)


@valid(ex.check_sampling_probs)
def _s_ok_loop(logits, temperature=1.0, top_k=None, top_p=None):
    rows = []
    for row in logits:
        row = row / temperature
        if top_k is not None:
            kth = sorted(row.tolist(), reverse=True)[top_k - 1]
            row = torch.where(row < kth, torch.full_like(row, float("-inf")), row)
        if top_p is not None:
            p = torch.softmax(row, 0)
            order = torch.argsort(p, descending=True)
            keep = torch.zeros_like(row, dtype=torch.bool)
            mass = 0.0
            for j in order.tolist():
                if mass >= top_p:
                    break
                keep[j] = True
                mass += p[j].item()
            row = row.masked_fill(~keep, float("-inf"))
        rows.append(torch.softmax(row, 0))
    return torch.stack(rows)


@valid(ex.check_sampling_probs)
def _s_ok_topk_first_then_temp(logits, temperature=1.0, top_k=None, top_p=None):
    if top_k is not None:  # dividing by T > 0 keeps the order, so top-k can come first
        logits = _ref_top_k(logits, top_k)
    logits = logits / temperature
    if top_p is not None:
        logits = logits.masked_fill(_ref_top_p_mask(logits, top_p), float("-inf"))
    return logits.softmax(-1)


@valid(ex.check_sampling_probs)
def _s_ok_zero_and_renormalise(logits, temperature=1.0, top_k=None, top_p=None):
    probs = torch.softmax(logits / temperature, dim=-1)
    if top_k is not None:
        kth = probs.topk(top_k, dim=-1).values[:, -1:]
        probs = probs * (probs >= kth)
        probs = probs / probs.sum(-1, keepdim=True)
    if top_p is not None:
        sp, order = probs.sort(dim=-1, descending=True)
        keep_sorted = (sp.cumsum(-1) - sp) < top_p
        keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
        probs = probs * keep
        probs = probs / probs.sum(-1, keepdim=True)
    return probs


@valid(ex.check_sampling_probs)
def _s_ok_kthvalue(logits, temperature=1.0, top_k=None, top_p=None):
    logits = logits / temperature
    if top_k is not None:
        kth = (-logits).kthvalue(top_k, dim=-1, keepdim=True).values.neg()  # the k-th largest
        logits = torch.where(logits >= kth, logits, torch.full_like(logits, float("-inf")))
    if top_p is not None:
        logits = logits.masked_fill(_ref_top_p_mask(logits, top_p), float("-inf"))
    return F.softmax(logits, -1)


import heldout_probe_round17_tokens3  # noqa: E402,F401
