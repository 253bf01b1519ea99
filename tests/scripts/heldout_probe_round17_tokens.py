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
After tuning (greedy, sampling_order, kvcache, bpe): 83 of 83 named, 0 misnamed, 17 of 17 valid.
Parts: this file (greedy), _tokens2 (sampling), _tokens3 (KV cache), _tokens4 (merge), _tokens5 (BPE encode).
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


import heldout_probe_round17_tokens2  # noqa: E402,F401
