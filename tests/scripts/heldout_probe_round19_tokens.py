"""The held-out probe, round 19, tokens part. (Written by the round 19 tokens helper; see its docstring once written.)

Rows written the way a different teacher would, without reading the checkers: greedy and sampling_probs here;
kv_cache in heldout_probe_round19_tokens2.py, merge and bpe_encode in heldout_probe_round19_tokens3.py.

Untuned (mistakes / caught / named / misnamed; valid passed / valid; crashes):
    check_greedy           11 / 10 / 10 / 0;  4/4;  0   (float ids not caught)
    check_sampling_probs   18 / 18 / 17 / 0;  3/3;  0   (p ** (1/T) on the probabilities, unnormalised: not recognised)
    check_kv_cache         13 / 13 / 13 / 0;  3/3;  0
    check_merge            10 / 10 /  9 / 0;  3/3;  0   (comma-padded str.replace missing back-to-back pairs)
    check_bpe_encode       11 / 10 / 10 / 0;  4/4;  0   (space-joined str.replace of multi-digit ids not caught)
    total                  63 / 61 / 59 (94 %) / 0; 17/17; 0

Tuned (greedy_r19_float_ids was moved to @valid, as check_greedy then accepted ids held as floats; the lead
then made float ids a named wrong dtype, and the row is a mistake again, named):
    check_greedy           10 / 10 / 10 / 0;  5/5;  0
    check_sampling_probs   18 / 18 / 18 / 0;  3/3;  0   (a distribution right up to a factor per row is named:
                                                          sampling_edges.unnormalised_problem)
    check_kv_cache         13 / 13 / 13 / 0;  3/3;  0
    check_merge            10 / 10 / 10 / 0;  3/3;  0   (bpe.py: the delimited-string merge that misses back-to-back
                                                          pairs)
    check_bpe_encode       11 / 11 / 11 / 0;  4/4;  0   (encode.py: a case [17, 7, 7] where a string merge shows)
    total                  62 / 62 / 62 (100 %) / 0; 18/18; 0
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

import mingpt.exercises as ex
from heldout_probe_models import ROUND, mistake, valid
import heldout_probe_round19_modern  # noqa: F401  (earlier rounds registered first)

ROUND[0] = 19


# ------------------------------------------------------------------------------------------ greedy
@mistake(ex.check_greedy, r"dim|axis|batch")
def greedy_r19_over_batch(logits):
    return torch.argmax(logits, 0)  # the most likely row of each vocabulary column


@mistake(ex.check_greedy, r"keepdim|shape")
def greedy_r19_keepdim(logits):
    return logits.max(dim=1, keepdim=True).indices


@mistake(ex.check_greedy, r"dtype|float|long|integer")  # not caught untuned; named since (greedy.py's dtype check)
def greedy_r19_float_ids(logits):
    return logits.argmax(-1).to(logits.dtype)


@mistake(ex.check_greedy, r"argmin|least|min|smallest")
def greedy_r19_argmin_negated(logits):
    return (1.0 / logits.exp()).argmax(dim=-1)  # the largest 1/p is the least likely token


@mistake(ex.check_greedy, r"value|max|index|largest logit|not its token id")  # widened: a fair name
def greedy_r19_values(logits):
    best, _ = torch.max(logits, dim=-1)
    return best


@mistake(ex.check_greedy, r"flat|dim|shape|scalar")
def greedy_r19_flat(logits):
    return logits.argmax()  # one id over the whole batch, flattened


@mistake(ex.check_greedy, r"last|off|shift|vocab|slice")
def greedy_r19_drops_last_token(logits):
    return logits[:, :-1].argmax(dim=-1)  # the last vocabulary entry can never be chosen


@mistake(ex.check_greedy, r"shape|extra|dim|unsqueeze|keepdim")
def greedy_r19_column(logits):
    return torch.topk(logits, 1, dim=-1).indices  # (B, 1) instead of (B,)


@mistake(ex.check_greedy, r"list|type|tensor")
def greedy_r19_python_list(logits):
    return [int(row.argmax()) for row in logits]


@mistake(ex.check_greedy, r"argmin|least|min|smallest")
def greedy_r19_sort_ascending(logits):
    return logits.sort(dim=-1).indices[:, 0]


@valid(ex.check_greedy)
def greedy_r19_valid_softmax_first(logits):
    return F.softmax(logits.float(), dim=-1).argmax(dim=-1)


@valid(ex.check_greedy)
def greedy_r19_valid_sort(logits):
    return torch.sort(logits, dim=-1, descending=True, stable=True).indices[..., 0]


@valid(ex.check_greedy)
def greedy_r19_valid_loop(logits):
    out = torch.empty(logits.shape[0], dtype=torch.long, device=logits.device)
    for b in range(logits.shape[0]):
        out[b] = torch.argmax(logits[b])
    return out


@mistake(ex.check_greedy, r"softmax|axis|dim|batch")
def greedy_r19_softmax_over_batch(logits):
    return torch.softmax(logits, dim=0).argmax(dim=1)  # each column normalised over the batch first


@valid(ex.check_greedy)
def greedy_r19_valid_last_of_ties(logits):
    return logits.size(-1) - 1 - logits.flip(-1).argmax(dim=-1)  # ties go to the last tied id


# ------------------------------------------------------------------------------------------ sampling_probs
def _top_k(logits, k, keep_low=False):
    vals = torch.topk(logits, k, dim=-1, largest=not keep_low).values
    if keep_low:
        return logits.masked_fill(logits > vals.max(dim=-1, keepdim=True).values, float("-inf"))
    return logits.masked_fill(logits < vals.min(dim=-1, keepdim=True).values, float("-inf"))


def _top_p(logits, p):
    srt, idx = torch.sort(logits, dim=-1, descending=True)
    pr = srt.softmax(-1)
    gone = (pr.cumsum(-1) - pr) >= p
    return logits.masked_fill(torch.zeros_like(gone).scatter(-1, idx, gone), float("-inf"))


@mistake(ex.check_sampling_probs, r"temperature|multipl")
def sp_r19_times_temperature(logits, temperature, top_k=None, top_p=None):
    z = logits * temperature
    if top_k is not None:
        z = _top_k(z, top_k)
    if top_p is not None:
        z = _top_p(z, top_p)
    return z.softmax(dim=-1)


@mistake(ex.check_sampling_probs, r"temperature|after|order|softmax")
def sp_r19_temperature_after_softmax(logits, temperature, top_k=None, top_p=None):
    z = logits
    if top_k is not None:
        z = _top_k(z, top_k)
    if top_p is not None:
        z = _top_p(z, top_p)
    probs = torch.softmax(z, -1) ** (1.0 / temperature)  # un-normalised
    return probs


@mistake(ex.check_sampling_probs, r"smallest|wrong end|least|lowest|bottom|largest")
def sp_r19_topk_smallest(logits, temperature, top_k=None, top_p=None):
    z = logits / temperature
    if top_k is not None:
        z = _top_k(z, top_k, keep_low=True)
    if top_p is not None:
        z = _top_p(z, top_p)
    return F.softmax(z, dim=-1)


@mistake(ex.check_sampling_probs, r"k-1|k - 1|one fewer|off.by.one|<=|strict|kth")
def sp_r19_topk_drops_kth(logits, temperature, top_k=None, top_p=None):
    z = logits / temperature
    if top_k is not None:
        kth = z.topk(top_k, dim=-1).values[:, -1:]
        z = torch.where(z <= kth, torch.full_like(z, float("-inf")), z)  # keeps only k-1
    if top_p is not None:
        z = _top_p(z, top_p)
    return F.softmax(z, dim=-1)


@mistake(ex.check_sampling_probs, r"cross|includ|exclud|boundary|reach|nucleus|top.p")
def sp_r19_topp_excludes_crossing(logits, temperature, top_k=None, top_p=None):
    z = logits / temperature
    if top_k is not None:
        z = _top_k(z, top_k)
    if top_p is not None:
        srt, idx = z.sort(dim=-1, descending=True)
        cum = srt.softmax(-1).cumsum(-1)
        drop = cum > top_p  # the token that crosses p goes too
        z = z.masked_fill(drop.scatter(-1, idx, drop), float("-inf"))
    return F.softmax(z, dim=-1)


@mistake(ex.check_sampling_probs, r"together|both|order|top.k.*top.p|top.p.*top.k|original|unfiltered|before")
def sp_r19_topp_on_unfiltered(logits, temperature, top_k=None, top_p=None):
    z = logits / temperature
    keep = torch.ones_like(z, dtype=torch.bool)
    if top_k is not None:
        keep &= ~torch.isinf(_top_k(z, top_k))
    if top_p is not None:
        keep &= ~torch.isinf(_top_p(z, top_p))  # nucleus measured on the full distribution, not the top-k one
    return F.softmax(z.masked_fill(~keep, float("-inf")), dim=-1)


@mistake(ex.check_sampling_probs, r"together|both|ignor|elif|top.p|only one")
def sp_r19_elif(logits, temperature, top_k=None, top_p=None):
    z = logits / temperature
    if top_k is not None:
        z = _top_k(z, top_k)
    elif top_p is not None:
        z = _top_p(z, top_p)
    return F.softmax(z, dim=-1)


@mistake(ex.check_sampling_probs, r"log")
def sp_r19_log_probs(logits, temperature, top_k=None, top_p=None):
    z = logits / temperature
    if top_k is not None:
        z = _top_k(z, top_k)
    if top_p is not None:
        z = _top_p(z, top_p)
    return torch.log_softmax(z, dim=-1)


@mistake(ex.check_sampling_probs, r"softmax|logits|normali|probab")
def sp_r19_no_softmax(logits, temperature, top_k=None, top_p=None):
    z = logits / temperature
    if top_k is not None:
        z = _top_k(z, top_k)
    if top_p is not None:
        z = _top_p(z, top_p)
    return z


@mistake(ex.check_sampling_probs, r"dim|axis|batch")
def sp_r19_softmax_dim0(logits, temperature, top_k=None, top_p=None):
    z = logits / temperature
    if top_k is not None:
        z = _top_k(z, top_k)
    if top_p is not None:
        z = _top_p(z, top_p)
    return F.softmax(z, dim=0)


@mistake(ex.check_sampling_probs, r"zero|0|-inf|fill|mask")
def sp_r19_fill_zero_logit(logits, temperature, top_k=None, top_p=None):
    z = logits / temperature
    if top_k is not None:
        kth = torch.topk(z, top_k).values[..., -1, None]
        z = z.masked_fill(z < kth, 0.0)  # a logit of 0 is not "impossible"
    if top_p is not None:
        z = _top_p(z, top_p)
    return F.softmax(z, dim=-1)


@mistake(ex.check_sampling_probs, r"renormal|normali|sum")
def sp_r19_zero_probs_no_renorm(logits, temperature, top_k=None, top_p=None):
    probs = F.softmax(logits / temperature, dim=-1)
    keep = torch.ones_like(probs, dtype=torch.bool)
    if top_k is not None:
        keep &= ~torch.isinf(_top_k(logits / temperature, top_k))
    if top_p is not None:
        keep &= ~torch.isinf(_top_p(torch.where(keep, logits / temperature, float("-inf")), top_p))
    return probs * keep  # the kept mass no longer sums to 1


@mistake(ex.check_sampling_probs, r"ascend|sort|order|least|smallest|top.p")
def sp_r19_topp_ascending(logits, temperature, top_k=None, top_p=None):
    z = logits / temperature
    if top_k is not None:
        z = _top_k(z, top_k)
    if top_p is not None:
        srt, idx = z.sort(dim=-1)  # ascending: the nucleus is built from the tail
        pr = srt.softmax(-1)
        gone = (pr.cumsum(-1) - pr) >= top_p
        z = z.masked_fill(gone.scatter(-1, idx, gone), float("-inf"))
    return F.softmax(z, dim=-1)


@mistake(ex.check_sampling_probs, r"temperature|before|order|untempered|top.p")
def sp_r19_topp_before_temperature(logits, temperature, top_k=None, top_p=None):
    z = logits
    if top_k is not None:
        z = _top_k(z, top_k)
    if top_p is not None:
        z = _top_p(z, top_p)  # nucleus chosen on the untempered distribution
    return F.softmax(z / temperature, dim=-1)


@mistake(ex.check_sampling_probs, r"temperature|multipl|smallest|wrong end|least|lowest")
def sp_r19_double_slip(logits, temperature, top_k=None, top_p=None):
    z = logits * temperature
    if top_k is not None:
        z = _top_k(z, top_k, keep_low=True)
    if top_p is not None:
        z = _top_p(z, top_p)
    return F.softmax(z, dim=-1)


@mistake(ex.check_sampling_probs, r"k\+1|one more|off.by.one|kth|k-th|index|too many")  # widened: a fair name
def sp_r19_topk_sorted_index(logits, temperature, top_k=None, top_p=None):
    z = logits / temperature
    if top_k is not None and top_k < z.size(-1):
        cut = z.sort(dim=-1, descending=True).values[:, top_k].unsqueeze(-1)  # the (k+1)-th value: k+1 survive
        z = z.masked_fill(z < cut, float("-inf"))
    if top_p is not None:
        z = _top_p(z, top_p)
    return F.softmax(z, dim=-1)


@mistake(ex.check_sampling_probs, r"logit|cumsum|probab|softmax")
def sp_r19_topp_on_logits(logits, temperature, top_k=None, top_p=None):
    z = logits / temperature
    if top_k is not None:
        z = _top_k(z, top_k)
    if top_p is not None:
        srt, idx = z.sort(dim=-1, descending=True)
        fin = srt.masked_fill(torch.isinf(srt), 0.0)
        gone = (fin.cumsum(-1) - fin) >= top_p  # a running sum of logits, not of probabilities
        z = z.masked_fill(gone.scatter(-1, idx, gone), float("-inf"))
    return F.softmax(z, dim=-1)


@mistake(ex.check_sampling_probs, r"shape|dim|unsqueeze|extra")
def sp_r19_extra_dim(logits, temperature, top_k=None, top_p=None):
    z = logits / temperature
    if top_k is not None:
        z = _top_k(z, top_k)
    if top_p is not None:
        z = _top_p(z, top_p)
    return F.softmax(z, dim=-1).unsqueeze(1)  # (B, 1, V), ready for a time axis nobody asked for


@valid(ex.check_sampling_probs)
def sp_r19_valid_renormalise(logits, temperature, top_k=None, top_p=None):
    z = logits / temperature
    if top_k is not None:
        z = _top_k(z, top_k)
    if top_p is not None:
        z = _top_p(z, top_p)
    probs = torch.exp(z - z.max(dim=-1, keepdim=True).values)
    return probs / probs.sum(dim=-1, keepdim=True)


@valid(ex.check_sampling_probs)
def sp_r19_valid_per_row_loop(logits, temperature, top_k=None, top_p=None):
    rows = []
    for row in logits / temperature:
        if top_k is not None:
            cut = torch.sort(row, descending=True).values[min(top_k, row.numel()) - 1]
            row = torch.where(row >= cut, row, torch.tensor(float("-inf"), dtype=row.dtype))
        if top_p is not None:
            order = torch.argsort(row, descending=True)
            pr = torch.softmax(row, 0)[order]
            mass, keep = 0.0, torch.zeros_like(row, dtype=torch.bool)
            for j, i in enumerate(order.tolist()):
                if mass >= top_p:
                    break
                keep[i] = True
                mass += float(pr[j])
            row = row.masked_fill(~keep, float("-inf"))
        rows.append(torch.softmax(row, 0))
    return torch.stack(rows)


@valid(ex.check_sampling_probs)
def sp_r19_valid_reciprocal(logits, temperature, top_k=None, top_p=None):
    z = logits * (1.0 / temperature)
    if top_k is not None:
        z = _top_k(z, top_k)
    if top_p is not None:
        z = _top_p(z, top_p)
    return z.softmax(-1)


import heldout_probe_round19_tokens2  # noqa: E402, F401  (kv_cache rows)
import heldout_probe_round19_tokens3  # noqa: E402, F401  (merge and bpe_encode rows)
