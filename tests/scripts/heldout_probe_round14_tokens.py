"""The held-out probe, round 14, tokens part (greedy, the sampling distribution, the KV cache, BPE's merge and
encode): written fresh by w24s before reading these checkers' tables, tests/mistakes_*.py or any earlier round's rows,
from the checkers' docstrings, notebooks 06 and 07 and mingpt.generation / mingpt.tokenizer only, and counted untuned
first. The angle: the student's second attempt and the assistant's answer -- confident idiomatic code with a slip in
a torch default (argmax without dim, topk's sorted/largest, cumsum's dim, masked_fill not in place, softmax without
dim), an over-correction (temperature applied twice, the top-p shift done twice), state kept across calls (a class
attribute shared by every cache, the first call's temperature remembered, the caller's list mutated) and edge sizes
(B = 1, ties, ids > 255, a one-token input). See heldout_probe.py."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

import mingpt.exercises as ex

from heldout_probe_models import ROUND, mistake, valid
import heldout_probe_round13_post  # noqa: F401  (earlier rounds registered first)

ROUND[0] = 14


def both(a: str, b: str) -> str:
    return rf"(?=.*(?:{a}))(?=.*(?:{b}))"


# ------------------------------------------------------------------------------------------ greedy
G = ex.check_greedy
DIM = r"dim|axis|flatten|batch|row|column"
SHAPE = r"shape|dim|squeeze|\(B,\s*1\)|\(B,\)|extra|keepdim|scalar|0-d"
mistake(G, DIM)(lambda logits: torch.argmax(logits))  # no dim: an index into the flattened (B*V) tensor
mistake(G, DIM)(lambda logits: logits.argmax(dim=0))  # the batch axis
mistake(G, SHAPE)(lambda logits: logits.argmax(dim=-1, keepdim=True))
mistake(G, SHAPE)(lambda logits: torch.topk(logits, 1, dim=-1).indices)  # (B, 1)
mistake(G, SHAPE)(lambda logits: logits.argmax(-1).squeeze())  # (B,) unless B == 1: then a 0-d tensor
# (regex widened after the untuned count: the checker's name was fair)
mistake(G, r"value|max\b|float|dtype|not (the )?(id|index)|indices|largest logit|token id")(
    lambda logits: logits.max(dim=-1).values)
mistake(G, r"argmin|smallest|least|lowest|min")(lambda logits: logits.argmin(dim=-1))
mistake(G, r"sampl|multinomial|random|determin")(
    lambda logits: torch.multinomial(F.softmax(logits, dim=-1), 1).squeeze(-1))
# (moved from the mistakes to the valid rows after the untuned count, where they were counted uncaught: which of two
# tied tokens greedy picks is arbitrary, as check_sampling_probs says of top-k's ties; and int32 ids index an embedding
# and concatenate with int64 ids, and check_greedy's docstring accepts any dtype holding the right ids)
valid(G)(lambda logits: logits.size(-1) - 1 - logits.flip(-1).argmax(dim=-1))  # the last of tied maxima
valid(G)(lambda logits: logits.argmax(dim=-1).to(torch.int32))
mistake(G, r"list|tensor|type")(lambda logits: logits.argmax(dim=-1).tolist())
mistake(G, r"numpy|ndarray|tensor|type")(lambda logits: np.argmax(logits.detach().numpy(), axis=-1))
mistake(G, r"\[:, ?-1\]|last (position|column|token)|time|(B, ?T, ?V)|3-?d|dim|shape|scalar")(
    lambda logits: logits[:, -1].argmax(dim=-1))  # the generate loop's logits[:, -1] pasted into greedy


def remembering_greedy():
    """An assistant's 'optimisation': the argmax cached on the function after the first call."""
    memo = {}

    def greedy(logits):
        if "ids" not in memo:
            memo["ids"] = logits.argmax(dim=-1)
        return memo["ids"]
    return greedy


mistake(G, r"cache|state|first call|twice|stale|same (answer|output)|every call|memo")(remembering_greedy())
valid(G)(lambda logits: torch.max(logits, dim=-1).indices)
valid(G)(lambda logits: F.softmax(logits, dim=-1).argmax(dim=-1))  # the softmax keeps the order
valid(G)(lambda logits: logits.topk(1, dim=-1).indices.squeeze(-1))
valid(G)(lambda logits: torch.stack([row.argmax() for row in logits]))


# ------------------------------------------------------------------------------------------ sampling probs
P = ex.check_sampling_probs
TEMP = r"temperature|\bT\b|divid|multipl|scal"
TOPK = r"top.?k|k-?th|largest|k\b"
TOPP = r"top.?p|nucleus|cumul|cumsum|reach|above"
NEG = float("-inf")


def sampler(temp="divide", temp_when="first", k_pick="last", k_cmp="lt", k_fill=NEG, p_cum="above", p_cmp="ge",
            p_dim=-1, p_scatter=True, p_descending=True, p_from="filtered", out="softmax", inplace=False,
            k_ties="keep"):
    """A sampling_probs with knobs; the defaults are the notebook's solution."""
    def scale(x, t):
        if temp == "divide":
            return x / t
        if temp == "multiply":
            return x * t
        if temp == "twice":
            return x / t / t
        return x

    def f(logits, temperature=1.0, top_k=None, top_p=None):
        if inplace:
            logits /= temperature  # the caller's tensor changes
            x = logits
        else:
            x = scale(logits, temperature) if temp_when == "first" else logits
        original = x
        if top_k is not None:
            if k_ties == "drop":  # exactly k kept, by index: ties at the k-th value lose
                keep = torch.zeros_like(x, dtype=torch.bool).scatter(-1, x.topk(top_k, dim=-1).indices, True)
                x = x.masked_fill(~keep, k_fill)
            else:
                values = torch.topk(x, top_k, dim=-1).values
                kth = values[:, -1:] if k_pick == "last" else values[:, :1]
                drop = x < kth if k_cmp == "lt" else x <= kth
                x = x.masked_fill(drop, k_fill)
        if top_p is not None:
            source = x if p_from == "filtered" else original
            srt, order = source.sort(dim=-1, descending=p_descending)
            probs = srt.softmax(dim=-1)
            cum = probs.cumsum(dim=p_dim)
            if p_cum == "above":
                mass = cum - probs
                remove = mass >= top_p if p_cmp == "ge" else mass > top_p
            elif p_cum == "hf_shift":  # HF: cumulative > p, shifted right by one, first kept
                remove = cum > top_p
                remove[..., 1:] = remove[..., :-1].clone()
                remove[..., 0] = False
            else:  # cumulative including the token itself
                remove = cum > top_p if p_cmp == "gt" else cum >= top_p
            if p_scatter:
                remove = remove.scatter(-1, order, remove)
            x = x.masked_fill(remove, NEG)
        if temp_when == "last":
            x = scale(x, temperature)
        if out == "softmax":
            return F.softmax(x, dim=-1)
        if out == "softmax_dim0":
            return F.softmax(x, dim=0)
        if out == "logits":
            return x
        if out == "log_softmax":
            return F.log_softmax(x, dim=-1)
        if out == "double":
            return F.softmax(x.double(), dim=-1)
        if out == "prob_then_temp":
            return F.softmax(x, dim=-1) / temperature
        raise ValueError(out)
    return f


mistake(P, TEMP)(sampler(temp="multiply"))
mistake(P, both(TEMP, r"twice|two|double|again|squar|T\^?2|T²"))(sampler(temp="twice"))  # the fix added twice
mistake(P, both(TEMP, r"after|order|before|top.?p|filter|last"))(sampler(temp_when="last"))  # top-p on T=1 probs
mistake(P, TEMP + r"|normali|sum")(sampler(out="prob_then_temp"))  # the probabilities divided by T
# (regex widened after the untuned count: the checker's name was fair)
mistake(P, both(TOPK, r"\[:, ?:1\]|\[0\]|first|largest|argmax|only one|1 token|greedy|k-?th|most likely"))(
    sampler(k_pick="first"))
mistake(P, both(TOPK, r"<=|≤|k-1|k - 1|one (too )?(few|less)|equal|strict|k-?th"))(sampler(k_cmp="le"))
# (regex widened after the untuned count: the checker's name was fair)
mistake(P, r"\b0\b|zero|-inf|fill")(sampler(k_fill=0.0))  # masked_fill with 0: a logit, not removed
# (moved to the valid rows after the untuned count, where it was counted uncaught: the checker's docstring accepts
# exactly k of the tokens tied at the k-th value as well as all of them)
valid(P)(sampler(k_ties="drop"))
mistake(P, both(TOPP, r"itself|includ|shift|crosses|the token that|last token|own|>|above"))(sampler(p_cum="self"))
# HF's top_p: drop when the mass above exceeds p strictly; the exercise drops when it reaches p
mistake(P, r">=|≥|reach|strict|equal|exactly|boundary|> ?p\b")(sampler(p_cum="hf_shift"))
mistake(P, both(TOPP, r"dim|axis|batch|row"))(sampler(p_dim=0))
mistake(P, both(TOPP, r"scatter|sort|order|unsort|original (order|position)|index"))(sampler(p_scatter=False))
mistake(P, both(TOPP, r"descend|ascend|sort|smallest|least|order|reverse"))(sampler(p_descending=False))
mistake(P, both(TOPP, TOPK + r"|order|before|filtered|unfiltered|both"))(sampler(p_from="original"))
mistake(P, r"softmax|logits|probab|normali")(sampler(out="logits"))
mistake(P, r"log|softmax|probab|negative")(sampler(out="log_softmax"))
mistake(P, r"dim|axis|batch|row|normali|sum")(sampler(out="softmax_dim0"))
mistake(P, r"float64|double|dtype")(sampler(out="double"))
mistake(P, r"in.?place|mutat|input|caller|modif|/=")(sampler(inplace=True))


def first_temperature_sampler():
    """State across calls: the temperature of the first call kept as the default of every later one."""
    state = {}

    def f(logits, temperature=1.0, top_k=None, top_p=None):
        t = state.setdefault("t", temperature)
        return sampler()(logits, t, top_k, top_p)
    return f


mistake(P, TEMP + r"|first call|state|stale|cache")(first_temperature_sampler())
valid(P)(lambda logits, temperature=1.0, top_k=None, top_p=None: sampler(k_fill=torch.finfo(logits.dtype).min)(
    logits, temperature, top_k, top_p))  # the most negative float instead of -inf: exp underflows to 0 too
valid(P)(lambda logits, temperature=1.0, top_k=None, top_p=None: F.softmax(
    sampler(out="logits")(logits, temperature, top_k, top_p), dim=1))  # dim=1 of (B, V) is the vocabulary
valid(P)(lambda logits, temperature=1.0, top_k=None, top_p=None: sampler(inplace=True)(
    logits.clone(), temperature, top_k, top_p))  # in place, but on a copy: the caller's tensor stays


def sampler_sorted_all_the_way(logits, temperature=1.0, top_k=None, top_p=None):
    """Everything done in sorted order, then put back with gather by the inverse permutation."""
    x = logits / temperature
    srt, order = x.sort(dim=-1, descending=True)
    keep = torch.ones_like(srt, dtype=torch.bool)
    if top_k is not None:
        keep &= srt >= srt[:, top_k - 1:top_k]
    if top_p is not None:
        p = srt.masked_fill(~keep, NEG).softmax(-1)
        keep &= (p.cumsum(-1) - p) < top_p
    probs = srt.masked_fill(~keep, NEG).softmax(-1)
    return probs.gather(-1, order.argsort(-1))


valid(P)(sampler_sorted_all_the_way)

import heldout_probe_round14_tokens2  # noqa: E402,F401  (the cache, merge and encode rows, in this order)
