"""The held-out probe, round 22, train part. (Written by the round 22 train helper.)

Angle: a new teacher who marked a class of beginners writes the mistakes the students made most often: schedules
where a hard-coded ratio happens to equal an argument, an LR that never reaches its floor, warm-up off by one,
cosine over the wrong span, decay continuing past lr_decay_iters, min_lr ignored; weight decay on biases, LayerNorm
or embeddings, or not on some Linear weights, duplicated parameters, name patterns that miss layers, names instead
of tensors; greedy slips; bigram slips (index + 1, probabilities instead of logits, time reversed); components whose
parameters never get a gradient (detach, .data, no_grad, an unused layer). Valid rows: correct but unusual code.

Untuned counts (written before reading the checkers; judged; mistakes / caught / named / misnamed, valid passed):
    check_lr_schedule           14 / 14 / 14 / 0,  2 of 2
    check_weight_decay_groups   12 / 12 / 12 / 0,  2 of 2 (r22c_wd_valid_minGPT_style was first written with the
                                                          original minGPT's tied-weight bug; refused rightly; fixed)
    check_greedy                 9 /  9 /  9 / 0,  2 of 2
    check_bigram                 9 /  9 /  6 / 0,  2 of 2
    train_and_compare            7 /  7 /  7 / 0,  1 of 2 (r22c_MLPValidRawParams refused, see its comment)
    total                       51 / 51 / 48 (94 %) / 0, valid 9 of 10, 0 crashes
Not named (the checker says it does not recognise them): r22c_BigramIndexPlusOne (row of (idx + 1) % V),
r22c_BigramTimeReversed (idx.flip(1)), r22c_BigramRowNormalised (rows divided by their sum).
Widened: r22c_lr_warmup_starts_at_zero (message "learning rate 0 at the first step" names lr * it / warmup).
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


# ------------------------------------------------------------------------------------------ LR schedule
# fn(it, learning_rate, min_lr, warmup_iters, lr_decay_iters)

@mistake(ex.check_lr_schedule, r"min_lr|floor")
def r22c_lr_floor_hardcoded_tenth(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    # student hard-coded the floor as learning_rate / 10 (the course default) and never used min_lr
    floor = learning_rate / 10
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:
        return floor
    p = (it - warmup_iters) / max(1, lr_decay_iters - warmup_iters)
    return floor + 0.5 * (1 + math.cos(math.pi * p)) * (learning_rate - floor)


@mistake(ex.check_lr_schedule, r"min_lr|floor|zero")
def r22c_lr_decays_to_zero(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    # student decayed the cosine to 0 instead of min_lr (and only used min_lr past the horizon)
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:
        return min_lr
    p = (it - warmup_iters) / max(1, lr_decay_iters - warmup_iters)
    return 0.5 * (1 + math.cos(math.pi * p)) * learning_rate


@mistake(ex.check_lr_schedule, r"warm|0 at the first step")  # widened: message says "learning rate 0 at the first step"
def r22c_lr_warmup_starts_at_zero(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    # warm-up off by one: lr * it / warmup, so step 0 has learning rate 0
    if it < warmup_iters:
        return learning_rate * it / warmup_iters
    if it >= lr_decay_iters:
        return min_lr
    p = (it - warmup_iters) / max(1, lr_decay_iters - warmup_iters)
    return min_lr + 0.5 * (1 + math.cos(math.pi * p)) * (learning_rate - min_lr)


@mistake(ex.check_lr_schedule, r"warm")
def r22c_lr_warmup_over_w(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    # warm-up off by one the other way: (it + 1) / warmup, so the last warm-up step already has the full rate
    if it < warmup_iters:
        return learning_rate * (it + 1) / warmup_iters
    if it >= lr_decay_iters:
        return min_lr
    p = (it - warmup_iters) / max(1, lr_decay_iters - warmup_iters)
    return min_lr + 0.5 * (1 + math.cos(math.pi * p)) * (learning_rate - min_lr)


@mistake(ex.check_lr_schedule, r"progress|span|warm|from (step )?0|origin|offset|shift|start")
def r22c_lr_cosine_from_step0(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    # cosine over the wrong span: progress = it / lr_decay_iters (the warm-up steps are not subtracted)
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it > lr_decay_iters:
        return min_lr
    p = it / lr_decay_iters
    return min_lr + 0.5 * (1 + math.cos(math.pi * p)) * (learning_rate - min_lr)


@mistake(ex.check_lr_schedule, r"progress|span|denominator|length|horizon|never reach|floor|lr_decay_iters")
def r22c_lr_never_reaches_floor(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    # divides by lr_decay_iters instead of (lr_decay_iters - warmup_iters): the cosine is still above min_lr at
    # the horizon, then drops to min_lr in one step
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:
        return min_lr
    p = (it - warmup_iters) / lr_decay_iters
    return min_lr + 0.5 * (1 + math.cos(math.pi * p)) * (learning_rate - min_lr)


@mistake(ex.check_lr_schedule, r"past|after|beyond|flat|clamp|stay|lr_decay_iters")
def r22c_lr_decay_continues(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    # no flat tail: the cosine keeps going after lr_decay_iters and the rate climbs back up
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    p = (it - warmup_iters) / max(1, lr_decay_iters - warmup_iters)
    return min_lr + 0.5 * (1 + math.cos(math.pi * p)) * (learning_rate - min_lr)


@mistake(ex.check_lr_schedule, r"past|after|beyond|flat|restart|lr_decay_iters")
def r22c_lr_restarts_after_horizon(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    # after the horizon the student returned learning_rate ("training is done, back to normal")
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:
        return learning_rate
    p = (it - warmup_iters) / max(1, lr_decay_iters - warmup_iters)
    return min_lr + 0.5 * (1 + math.cos(math.pi * p)) * (learning_rate - min_lr)


@mistake(ex.check_lr_schedule, r"half|period|full|twice|2 ?(π|pi)|frequency")
def r22c_lr_full_cosine(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    # a full cosine period (2*pi) instead of half: goes down to min_lr halfway and back up to the peak
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:
        return min_lr
    p = (it - warmup_iters) / max(1, lr_decay_iters - warmup_iters)
    return min_lr + 0.5 * (1 + math.cos(2 * math.pi * p)) * (learning_rate - min_lr)


@mistake(ex.check_lr_schedule, r"0\.5|half|factor|twice|double|amplitude|peak|overshoot|above")
def r22c_lr_missing_half(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    # forgot the 0.5: the cosine starts at 2*lr - min_lr
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:
        return min_lr
    p = (it - warmup_iters) / max(1, lr_decay_iters - warmup_iters)
    return min_lr + (1 + math.cos(math.pi * p)) * (learning_rate - min_lr)


@mistake(ex.check_lr_schedule, r"linear|straight")
def r22c_lr_linear_decay(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    # linear decay from lr to min_lr instead of the cosine
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:
        return min_lr
    p = (it - warmup_iters) / max(1, lr_decay_iters - warmup_iters)
    return learning_rate - p * (learning_rate - min_lr)


@mistake(ex.check_lr_schedule, r"min_lr|lr ?- ?min_lr|amplitude|range|peak|above|overshoot|scale")
def r22c_lr_amplitude_lr(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    # cosine amplitude learning_rate instead of (learning_rate - min_lr): starts at lr + min_lr
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:
        return min_lr
    p = (it - warmup_iters) / max(1, lr_decay_iters - warmup_iters)
    return min_lr + 0.5 * (1 + math.cos(math.pi * p)) * learning_rate


@mistake(ex.check_lr_schedule, r"warm|integer|//|floor div|round")
def r22c_lr_warmup_integer_division(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    # numpy/C habit: integer division in the warm-up ratio, so the rate is 0 during the whole warm-up
    if it < warmup_iters:
        return learning_rate * ((it + 1) // (warmup_iters + 1))
    if it >= lr_decay_iters:
        return min_lr
    p = (it - warmup_iters) / max(1, lr_decay_iters - warmup_iters)
    return min_lr + 0.5 * (1 + math.cos(math.pi * p)) * (learning_rate - min_lr)


@mistake(ex.check_lr_schedule, r"warm")
def r22c_lr_warmup_from_min_lr(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    # warm-up ramps from min_lr up to learning_rate instead of from 0
    if it < warmup_iters:
        return min_lr + (learning_rate - min_lr) * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:
        return min_lr
    p = (it - warmup_iters) / max(1, lr_decay_iters - warmup_iters)
    return min_lr + 0.5 * (1 + math.cos(math.pi * p)) * (learning_rate - min_lr)


@valid(ex.check_lr_schedule)
def r22c_lr_valid_clamped_cos_squared(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    # valid: progress clamped to [0, 1] instead of a separate tail branch, and 0.5 (1 + cos) written as cos^2
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    p = min(1.0, max(0.0, (it - warmup_iters) / max(1, lr_decay_iters - warmup_iters)))
    return min_lr + (learning_rate - min_lr) * math.cos(math.pi * p / 2) ** 2


@valid(ex.check_lr_schedule)
def r22c_lr_valid_numpy_lerp(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    # valid: numpy, written as an interpolation from learning_rate towards min_lr, returned as a Python float
    warm = learning_rate * (it + 1) / (warmup_iters + 1)
    span = max(1, lr_decay_iters - warmup_iters)
    t = np.clip((it - warmup_iters) / span, 0.0, 1.0)
    w = (1 - np.cos(np.pi * t)) / 2  # 0 -> 1
    decayed = learning_rate + w * (min_lr - learning_rate)
    return float(warm if it < warmup_iters else decayed)


# ------------------------------------------------------------------------------------------ weight-decay groups
# fn(model, weight_decay) -> AdamW parameter groups

def _groups(decay, no_decay, weight_decay):
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


@mistake(ex.check_weight_decay_groups, r"embed|wte|wpe")
def r22c_wd_all_matrices(model, weight_decay):
    # nanoGPT habit: every parameter with 2+ dims is decayed, so the embeddings are decayed too
    params = [p for p in model.parameters() if p.requires_grad]
    return _groups([p for p in params if p.dim() >= 2], [p for p in params if p.dim() < 2], weight_decay)


@mistake(ex.check_weight_decay_groups, r"norm|embed|ln")
def r22c_wd_all_but_bias(model, weight_decay):
    # everything except the biases is decayed (LayerNorm gains and embeddings decayed)
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if name.endswith("bias") else decay).append(p)
    return _groups(decay, no_decay, weight_decay)


@mistake(ex.check_weight_decay_groups, r"bias")
def r22c_wd_linear_bias_decayed(model, weight_decay):
    # grouped by module: all parameters of an nn.Linear decayed, its bias too
    decay, no_decay, seen = [], [], set()
    for m in model.modules():
        for p in m.parameters(recurse=False):
            if id(p) in seen:
                continue
            seen.add(id(p))
            (decay if isinstance(m, nn.Linear) else no_decay).append(p)
    return _groups(decay, no_decay, weight_decay)


@mistake(ex.check_weight_decay_groups,
         r"(linear|weight)s?.*(not decayed|undecayed|missing|left out|no decay|without)|c_proj|lm_head|miss")
def r22c_wd_name_pattern_misses_layers(model, weight_decay):
    # name patterns: only 'c_attn' and 'c_fc' weights decayed; c_proj and lm_head weights are missed
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if name.endswith("weight") and ("c_attn" in name or "c_fc" in name):
            decay.append(p)
        else:
            no_decay.append(p)
    return _groups(decay, no_decay, weight_decay)


@mistake(ex.check_weight_decay_groups, r"ln_f|norm")
def r22c_wd_ln_pattern_misses_ln_f(model, weight_decay):
    # excludes norms by 'ln_1'/'ln_2' in the name and embeddings by 'wte'/'wpe': the final ln_f weight is decayed
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if name.endswith("bias") or "ln_1" in name or "ln_2" in name or "wte" in name or "wpe" in name:
            no_decay.append(p)
        else:
            decay.append(p)
    return _groups(decay, no_decay, weight_decay)


@mistake(ex.check_weight_decay_groups, r"twice|duplicat|more than once|both|once")
def r22c_wd_no_decay_is_everything(model, weight_decay):
    # decay = Linear weights, no_decay = model.parameters(): every Linear weight is in both groups
    decay = [m.weight for m in model.modules() if isinstance(m, nn.Linear)]
    return _groups(decay, list(model.parameters()), weight_decay)


@mistake(ex.check_weight_decay_groups, r"twice|duplicat|more than once|both|once|tied|tie")
def r22c_wd_tied_in_both(model, weight_decay):
    # by module type, without a seen-set: the tied wte/lm_head matrix lands in decay (Linear) and in no_decay
    # (Embedding)
    decay, no_decay = [], []
    for m in model.modules():
        if isinstance(m, nn.Linear):
            decay.append(m.weight)
            if m.bias is not None:
                no_decay.append(m.bias)
        elif isinstance(m, (nn.LayerNorm, nn.Embedding)):
            no_decay.extend(m.parameters(recurse=False))
    return _groups(decay, no_decay, weight_decay)


@mistake(ex.check_weight_decay_groups, r"missing|left out|absent|not in any|omit|forg|every parameter|no group")
def r22c_wd_forgets_norms_and_embeddings(model, weight_decay):
    # no_decay collects only the biases: LayerNorm weights and embeddings are in no group at all
    decay = [m.weight for m in model.modules() if isinstance(m, nn.Linear)]
    no_decay = [p for n, p in model.named_parameters() if n.endswith("bias")]
    return _groups(decay, no_decay, weight_decay)


@mistake(ex.check_weight_decay_groups, r"name|string|str\b|tensor")
def r22c_wd_returns_names(model, weight_decay):
    # returns parameter names in the groups instead of the tensors
    linear_weights = {f"{mn}.weight" if mn else "weight" for mn, m in model.named_modules() if isinstance(m, nn.Linear)}
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if name in linear_weights else no_decay).append(name)
    return _groups(decay, no_decay, weight_decay)


@mistake(ex.check_weight_decay_groups, r"weight_decay|value|given|hard|argument|0\.1")
def r22c_wd_hardcoded_point_one(model, weight_decay):
    # the decay hard-coded as 0.1 (the default, so it "worked" in class) instead of the weight_decay argument
    linear = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
    params = list(model.parameters())
    return [{"params": [p for p in params if id(p) in linear], "weight_decay": 0.1},
            {"params": [p for p in params if id(p) not in linear], "weight_decay": 0.0}]


@mistake(ex.check_weight_decay_groups, r"swap|revers|invert|wrong group|opposite|embed|bias|norm")
def r22c_wd_groups_swapped(model, weight_decay):
    # the two groups' weight_decay swapped: Linear weights get 0, everything else gets weight_decay
    linear = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
    params = list(model.parameters())
    return [{"params": [p for p in params if id(p) in linear], "weight_decay": 0.0},
            {"params": [p for p in params if id(p) not in linear], "weight_decay": weight_decay}]


@mistake(ex.check_weight_decay_groups, r"key|weight_decay|spell|default")
def r22c_wd_misspelled_key(model, weight_decay):
    # key typo 'weightdecay': AdamW ignores it... the group falls back to the optimizer's default decay
    linear = {id(m.weight) for m in model.modules() if isinstance(m, nn.Linear)}
    params = list(model.parameters())
    return [{"params": [p for p in params if id(p) in linear], "weightdecay": weight_decay},
            {"params": [p for p in params if id(p) not in linear], "weightdecay": 0.0}]


@valid(ex.check_weight_decay_groups)
def r22c_wd_valid_minGPT_style(model, weight_decay):
    # valid: the original minGPT's way (full names by module type, sets, a name -> parameter dict), with the tied
    # matrix resolved by identity: lm_head.weight is wte.weight, a Linear weight, so it is decayed.
    # (First version, the original minGPT's code verbatim, was NOT valid: named_parameters lists the tied matrix
    # only as 'transformer.wte.weight', so 'lm_head.weight' fell out and the matrix went undecayed; the checker
    # refused it rightly: "the tied wte/lm_head weight not decayed". Fixed here, my row's bug.)
    decay, no_decay = set(), set()
    for mn, m in model.named_modules():
        for pn, p in m.named_parameters(recurse=False):
            fpn = f"{mn}.{pn}" if mn else pn
            if pn.endswith("bias"):
                no_decay.add(fpn)
            elif pn.endswith("weight") and isinstance(m, nn.Linear):
                decay.add(fpn)
            elif pn.endswith("weight") and isinstance(m, (nn.LayerNorm, nn.Embedding)):
                no_decay.add(fpn)
    decay_ids = {id(model.get_parameter(n)) for n in decay}
    param_dict = dict(model.named_parameters())  # a tied matrix appears once, under its first name
    names = sorted(param_dict)
    return [{"params": [param_dict[n] for n in names if id(param_dict[n]) in decay_ids], "weight_decay": weight_decay},
            {"params": [param_dict[n] for n in names if n in no_decay and id(param_dict[n]) not in decay_ids],
             "weight_decay": 0.0}]


@valid(ex.check_weight_decay_groups)
def r22c_wd_valid_no_decay_first(model, weight_decay):
    # valid: the no-decay group listed first, built from a dict keyed by id
    linear = {id(m.weight): m.weight for m in model.modules() if isinstance(m, nn.Linear)}
    rest = {id(p): p for p in model.parameters() if id(p) not in linear}
    return [{"params": list(rest.values()), "weight_decay": 0.0},
            {"params": list(linear.values()), "weight_decay": weight_decay}]


# ------------------------------------------------------------------------------------------ greedy
# fn(logits (B, V)) -> (B,) ids

@mistake(ex.check_greedy, r"dim|axis|batch")
def r22c_greedy_dim0(logits):
    # argmax over the batch axis
    return logits.argmax(dim=0)


@mistake(ex.check_greedy, r"argmin|least|smallest|lowest|min")
def r22c_greedy_sort_ascending(logits):
    # sorts and takes the first column, forgetting sort is ascending: the least likely token
    return torch.sort(logits, dim=-1).indices[:, 0]


@mistake(ex.check_greedy, r"sampl|random|multinomial|determin|repeat")
def r22c_greedy_samples(logits):
    # samples from the softmax instead of taking the most likely token
    return torch.multinomial(F.softmax(logits, dim=-1), 1).squeeze(-1)


@mistake(ex.check_greedy, r"value|indic|index|id")
def r22c_greedy_returns_values(logits):
    # returns the max logit values, not their indices
    return logits.max(dim=-1).values


@mistake(ex.check_greedy, r"shape|keepdim|\(B, ?1\)|squeeze|dimension")
def r22c_greedy_topk_shape(logits):
    # topk(1) keeps a trailing axis: (B, 1) instead of (B,)
    return torch.topk(logits, 1, dim=-1).indices


@mistake(ex.check_greedy, r"flat|dim|whole|scalar|shape|single")
def r22c_greedy_no_dim(logits):
    # argmax without dim: one index into the flattened (B*V) tensor
    return logits.argmax()


@mistake(ex.check_greedy, r"softmax|dim|axis|batch|normali")
def r22c_greedy_softmax_over_batch(logits):
    # a softmax over the batch axis first (dim=0), which changes the ranking inside a row
    return F.softmax(logits, dim=0).argmax(dim=-1)


@mistake(ex.check_greedy, r"first|batch|row|item|shape|single")
def r22c_greedy_item(logits):
    # .item() habit from the generation loop with B = 1: only the first row's id, as a tensor scalar
    return torch.tensor(logits[0].argmax().item())


@mistake(ex.check_greedy, r"tensor|list|type")
def r22c_greedy_python_list(logits):
    # a Python loop that returns a list of ints instead of a tensor
    return [max(range(row.numel()), key=lambda j: row[j].item()) for row in logits]


@valid(ex.check_greedy)
def r22c_greedy_valid_max_tuple(logits):
    # valid: torch.max(..., 1)[1] on the probabilities
    return torch.max(F.softmax(logits, dim=1), 1)[1]


@valid(ex.check_greedy)
def r22c_greedy_valid_numpy_loop(logits):
    # valid: numpy argmax row by row, back to a long tensor on the logits' device
    ids = [int(np.argmax(row)) for row in logits.detach().cpu().numpy()]
    return torch.tensor(ids, dtype=torch.long, device=logits.device)


# ------------------------------------------------------------------------------------------ bigram
# cls(vocab_size) with self.table = nn.Embedding(V, V); forward(idx) -> logits (B, T, V)

@mistake(ex.check_bigram, r"shift|\+ ?1|offset|next|index|row")
class r22c_BigramIndexPlusOne(nn.Module):
    # looks up the row of the NEXT id ("it predicts the next token"), wrapping round
    def __init__(self, vocab_size):
        super().__init__()
        self.vocab_size = vocab_size
        self.table = nn.Embedding(vocab_size, vocab_size)

    def forward(self, idx):
        return self.table((idx + 1) % self.vocab_size)


@mistake(ex.check_bigram, r"prob|softmax|logit")
class r22c_BigramReturnsProbs(nn.Module):
    # returns probabilities (softmax of the row) instead of logits
    def __init__(self, vocab_size):
        super().__init__()
        self.table = nn.Embedding(vocab_size, vocab_size)

    def forward(self, idx):
        return F.softmax(self.table(idx), dim=-1)


@mistake(ex.check_bigram, r"revers|flip|time|order|position")
class r22c_BigramTimeReversed(nn.Module):
    # flips the sequence in time ("the table is read right to left")
    def __init__(self, vocab_size):
        super().__init__()
        self.table = nn.Embedding(vocab_size, vocab_size)

    def forward(self, idx):
        return self.table(idx.flip(1))


@mistake(ex.check_bigram, r"transpos|column|row")
class r22c_BigramTransposed(nn.Module):
    # reads a column of the table instead of a row
    def __init__(self, vocab_size):
        super().__init__()
        self.table = nn.Embedding(vocab_size, vocab_size)

    def forward(self, idx):
        return self.table.weight.T[idx]


@mistake(ex.check_bigram, r"mean|average|previous|context|other position|depend|earlier")
class r22c_BigramRunningMean(nn.Module):
    # averages the rows of all tokens so far ("more context is better"): no longer a bigram
    def __init__(self, vocab_size):
        super().__init__()
        self.table = nn.Embedding(vocab_size, vocab_size)

    def forward(self, idx):
        rows = self.table(idx)  # (B, T, V)
        counts = torch.arange(1, idx.size(1) + 1, device=idx.device).view(1, -1, 1)
        return rows.cumsum(dim=1) / counts


@mistake(ex.check_bigram, r"shape|last|position|all|\(B, ?V\)")
class r22c_BigramLastOnly(nn.Module):
    # only the last position's logits, (B, V), as in generation
    def __init__(self, vocab_size):
        super().__init__()
        self.table = nn.Embedding(vocab_size, vocab_size)

    def forward(self, idx):
        return self.table(idx[:, -1])


@mistake(ex.check_bigram, r"exp|count|prob|positive|logit")
class r22c_BigramCounts(nn.Module):
    # thinks of the table as log-counts and returns counts (exp) instead of logits
    def __init__(self, vocab_size):
        super().__init__()
        self.table = nn.Embedding(vocab_size, vocab_size)

    def forward(self, idx):
        return self.table(idx).exp()


@mistake(ex.check_bigram, r"normali|prob|sum|divid|logit")
class r22c_BigramRowNormalised(nn.Module):
    # counts-to-probabilities habit: divides each row by its sum
    def __init__(self, vocab_size):
        super().__init__()
        self.table = nn.Embedding(vocab_size, vocab_size)

    def forward(self, idx):
        rows = self.table(idx)
        return rows / rows.sum(dim=-1, keepdim=True)


@mistake(ex.check_bigram, r"shape|size|vocab|\+ ?1|V ?\+ ?1|extra")
class r22c_BigramStartToken(nn.Module):
    # adds a start token: a (V + 1, V + 1) table, so the logits have V + 1 entries
    def __init__(self, vocab_size):
        super().__init__()
        self.table = nn.Embedding(vocab_size + 1, vocab_size + 1)

    def forward(self, idx):
        return self.table(idx)


@valid(ex.check_bigram)
class r22c_BigramValidOneHot(nn.Module):
    # valid: one-hot times the table's weight
    def __init__(self, vocab_size):
        super().__init__()
        self.vocab_size = vocab_size
        self.table = nn.Embedding(vocab_size, vocab_size)

    def forward(self, idx):
        return F.one_hot(idx, self.vocab_size).to(self.table.weight.dtype) @ self.table.weight


@valid(ex.check_bigram)
class r22c_BigramValidFunctional(nn.Module):
    # valid: F.embedding on the table's weight, with an optional targets argument returning (logits, loss)
    def __init__(self, vocab_size):
        super().__init__()
        self.table = nn.Embedding(vocab_size, vocab_size)

    def forward(self, idx, targets=None):
        logits = F.embedding(idx, self.table.weight)
        if targets is None:
            return logits
        return logits, F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-1)


# ------------------------------------------------------------------------------------------ train_and_compare
def tc_mlp(cls):
    return ex.train_and_compare(mlp=cls)


def tc_attention(cls):
    return ex.train_and_compare(attention=cls)


def tc_layer_norm(cls):
    return ex.train_and_compare(layer_norm=cls)


def tc_block(cls):
    return ex.train_and_compare(block=cls)


for _wrapper in (tc_mlp, tc_attention, tc_layer_norm, tc_block):  # counted as the checker they call
    _wrapper.__name__ = "train_and_compare"


GRAD = r"gradient|grad|learn|detach|never|chang|unused|frozen"


@mistake(tc_mlp, GRAD)
class r22c_MLPDetachedFc(nn.Module):
    # F.linear with c_fc.weight.detach() ("to save memory"): c_fc.weight never gets a gradient
    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd)

    def forward(self, x):
        h = F.gelu(F.linear(x, self.c_fc.weight.detach(), self.c_fc.bias), approximate="tanh")
        return self.c_proj(h)


@mistake(tc_mlp, GRAD)
class r22c_MLPDataProj(nn.Module):
    # uses .data in a hand-written matmul: c_proj.weight never gets a gradient
    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd)

    def forward(self, x):
        h = F.gelu(self.c_fc(x))
        return h @ self.c_proj.weight.data.T + self.c_proj.bias


@mistake(tc_layer_norm, GRAD)
class r22c_LayerNormBiasUnderNoGrad(nn.Module):
    # the shift is added inside torch.no_grad() ("it is just a constant offset"): bias never gets a gradient
    def __init__(self, ndim, eps=1e-5, bias=True):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, x):
        mu = x.mean(-1, keepdim=True)
        var = x.var(-1, keepdim=True, unbiased=False)
        y = (x - mu) / torch.sqrt(var + self.eps) * self.weight
        if self.bias is not None:
            with torch.no_grad():
                shift = self.bias.expand_as(y).clone()
            y = y + shift
        return y


@mistake(tc_attention, GRAD + r"|c_proj")
class r22c_AttentionForgetsProj(nn.Module):
    # defines c_proj but returns the heads without projecting: c_proj's parameters never get a gradient
    def __init__(self, config, layer_idx):
        super().__init__()
        self.n_head = config.n_head
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)

    def forward(self, x, kv_cache=None):
        if kv_cache is not None:
            raise NotImplementedError
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return y.transpose(1, 2).reshape(B, T, C)


@mistake(tc_attention, r"look-?ahead|later|future|causal|mask")
class r22c_AttentionMaskWrongTriangle(nn.Module):
    # hand-built mask with torch.triu instead of tril: every position sees the future, not the past
    def __init__(self, config, layer_idx):
        super().__init__()
        self.n_head = config.n_head
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)

    def forward(self, x, kv_cache=None):
        if kv_cache is not None:
            raise NotImplementedError
        B, T, C = x.shape
        nh, hs = self.n_head, C // self.n_head
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, nh, hs).transpose(1, 2) for t in (q, k, v))
        att = torch.einsum("bhqd,bhkd->bhqk", q, k) / math.sqrt(hs)
        mask = torch.triu(torch.ones(T, T, dtype=torch.bool, device=x.device))
        att = att.masked_fill(~mask, float("-inf")).softmax(-1)
        y = torch.einsum("bhqk,bhkd->bhqd", att, v)
        return self.c_proj(y.transpose(1, 2).reshape(B, T, C))


@mistake(tc_block, r"residual|skip|add|shortcut")
class r22c_BlockNoMlpResidual(nn.Module):
    # forgets the residual around the MLP: x = mlp(ln_2(x))
    def __init__(self, config, layer_idx):
        super().__init__()
        from mingpt.model import MLP, CausalSelfAttention
        self.ln_1 = nn.LayerNorm(config.n_embd)
        self.attn = CausalSelfAttention(config, layer_idx)
        self.ln_2 = nn.LayerNorm(config.n_embd)
        self.mlp = MLP(config)

    def forward(self, x, kv_cache=None):
        x = x + self.attn(self.ln_1(x), kv_cache)
        return self.mlp(self.ln_2(x))


@mistake(tc_mlp, GRAD)
class r22c_MLPFrozenFc(nn.Module):
    # copied requires_grad_(False) from a fine-tuning example: c_fc is frozen and never learns
    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd)
        self.c_fc.requires_grad_(False)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))


@valid(tc_mlp)
class r22c_MLPValidRawParams(nn.Module):
    # valid: its own nn.Parameters (GPT-2's init std 0.02), exact GELU, einsum.
    # REFUSED untuned: the Trainer's weight-decay rule raises ValueError for a raw 2-D nn.Parameter, reported as
    # "your code raised an exception" (it is mingpt's optimizer that raised, not the student's code).
    def __init__(self, config):
        super().__init__()
        C = config.n_embd
        self.w_in = nn.Parameter(torch.randn(C, 4 * C) * 0.02)
        self.b_in = nn.Parameter(torch.zeros(4 * C))
        self.w_out = nn.Parameter(torch.randn(4 * C, C) * 0.02)
        self.b_out = nn.Parameter(torch.zeros(C))

    def forward(self, x):
        h = F.gelu(torch.einsum("btc,ch->bth", x, self.w_in) + self.b_in)
        return torch.einsum("bth,hc->btc", h, self.w_out) + self.b_out


@valid(tc_mlp)
class r22c_MLPValidSequential(nn.Module):
    # valid: an nn.Sequential with exact GELU and dropout 0, forward via the Sequential
    def __init__(self, config):
        super().__init__()
        C = config.n_embd
        self.net = nn.Sequential(nn.Linear(C, 4 * C), nn.GELU(), nn.Linear(4 * C, C), nn.Dropout(0.0))

    def forward(self, x):
        return self.net(x)
