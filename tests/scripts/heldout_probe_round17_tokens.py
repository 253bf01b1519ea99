"""The held-out probe, round 17, tokens part (greedy, sampling_probs, kv_cache, merge, bpe_encode).

Angle: the mistakes COMMON in class, as a teaching assistant who marked a hundred submissions of each exercise would
list them, most frequent first, in the surface forms different students write (loops, vectorised, helpers,
torch.nn.functional vs methods), with a few double slips; valid rows are the other correct solutions students write.
Written by the r17tokens helper before reading the checkers' code or tables, and counted untuned (judged;
mistakes / caught / named / misnamed, valid passed / valid): greedy 16 / 16 / 13 / 0, 4 / 4 (2 more given the fair
generic 'wrong output shape'); sampling_probs 18 / 18 / 15 / 0, 4 / 4; kv_cache 18 / 18 / 17 / 1, 3 / 3 (length
counted in update and in advance, called 'once per layer'); merge 16 / 16 / 15 / 0, 3 / 3; bpe_encode
15 / 15 / 15 / 0, 3 / 3. In all 75 of 83 named (90 %), 1 misnamed, 17 of 17 valid passed, no checker crash.
Eight regexes were widened after the run where the message names the cause, one narrowed (each commented).
Parts: this file (greedy, sampling), _tokens2 (KV cache), _tokens3 (merge, BPE encode).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

import mingpt.exercises as ex
from heldout_probe_models import ROUND, mistake, valid
import heldout_probe_round16_post  # noqa: F401  (earlier rounds registered first)

ROUND[0] = 17

# ---------------------------------------------------------------- greedy: logits (B, V) -> (B,) ids


@mistake(ex.check_greedy, r"dim|axis|batch|vocab|column")
def _g_argmax_dim0(logits):
    return logits.argmax(dim=0)  # the most likely ROW per column


@mistake(ex.check_greedy, r"value|logit|not.*(id|index)|instead of.*(id|index)")
def _g_max_values(logits):
    return torch.max(logits, dim=-1).values  # the highest logit, not its id


@mistake(ex.check_greedy, r"argmin|smallest|least likely|lowest|minimum")
def _g_argmin(logits):
    return logits.argmin(dim=-1)


@mistake(ex.check_greedy, r"tuple|values and indices|namedtuple|type|\(values, indices\) pair")  # widened
def _g_max_tuple(logits):
    return torch.max(logits, dim=-1)  # (values, indices)


@mistake(ex.check_greedy, r"flat|dim|whole|batch|shape|scalar")
def _g_argmax_no_dim(logits):
    return logits.argmax()  # index into the flattened tensor


@mistake(ex.check_greedy, r"keepdim|shape|\(B, ?1\)|extra dim")
def _g_keepdim(logits):
    return logits.argmax(dim=-1, keepdim=True)


@mistake(ex.check_greedy, r"sampl|random|multinomial|determin")
def _g_sampled(logits):
    probs = F.softmax(logits, dim=-1)
    return torch.multinomial(probs, num_samples=1).squeeze(-1)


@mistake(ex.check_greedy, r"argmin|smallest|least likely|lowest|ascend|sort")
def _g_sort_ascending_first(logits):
    return logits.sort(dim=-1).indices[:, 0]  # sorted ascending: the first is the least likely


@mistake(ex.check_greedy, r"shape|\(B, ?1\)|squeeze|extra dim")
def _g_topk_unsqueezed(logits):
    return torch.topk(logits, k=1, dim=-1).indices


@mistake(ex.check_greedy, r"last|position|shape|scalar|column|\[:, -1\]")  # widened: [:, -1] named
def _g_last_position(logits):
    return logits[:, -1].argmax(dim=-1)  # written for (B, T, V): here it takes the last column


@mistake(ex.check_greedy, r"softmax.*(dim|axis|batch)|dim ?0|axis|batch|column")
def _g_softmax_dim0(logits):
    probs = F.softmax(logits, dim=0)
    return probs.argmax(dim=-1)


@mistake(ex.check_greedy, r"negative|initial|start|-inf|zero")
def _g_loop_init_zero(logits):
    out = []
    for row in logits:
        best, best_val = 0, 0.0  # never beaten when every logit is negative
        for j in range(row.shape[0]):
            if row[j] > best_val:
                best, best_val = j, row[j]
        out.append(best)
    return torch.tensor(out)


@mistake(ex.check_greedy, r"batch|item|scalar|one row|single|first row")
def _g_item(logits):
    return torch.tensor([logits.argmax(dim=-1)[0].item()] * 1)  # only the first row's token


@mistake(ex.check_greedy, r"off by one|one too|\+ ?1|shift|1-based")
def _g_plus_one(logits):
    return logits.argmax(dim=-1) + 1


@mistake(ex.check_greedy, r"dim|axis|batch|keepdim|shape")
def _g_dim0_keepdim(logits):  # double slip: the wrong axis and keepdim
    return logits.argmax(dim=0, keepdim=True)


@mistake(ex.check_greedy, r"dim|axis|batch|value|logit")
def _g_max_dim0_values(logits):  # double slip: values of the wrong axis
    return torch.max(logits, 0)[0]


@valid(ex.check_greedy)
def _g_ok_dim1(logits):
    return logits.argmax(1)


@valid(ex.check_greedy)
def _g_ok_loop(logits):
    ids = []
    for row in logits.tolist():
        ids.append(max(range(len(row)), key=lambda j: row[j]))
    return torch.tensor(ids, dtype=torch.long)


@valid(ex.check_greedy)
def _g_ok_topk(logits):
    return logits.topk(1, dim=-1).indices.squeeze(-1)


@valid(ex.check_greedy)
def _g_ok_max_indices(logits):
    _, idx = torch.max(logits, dim=1)
    return idx


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


import heldout_probe_round17_tokens2  # noqa: E402,F401
