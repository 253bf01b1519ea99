"""The held-out probe, round 15, tokens part (greedy, the sampling distribution, the KV cache, BPE's merge and
encode): written fresh by w24w before reading these checkers' tables, tests/mistakes_*.py or any earlier round, from
the checkers' docstrings and notebooks 06 and 07 only, and counted untuned first. The angle: the notebooks' own
fill-in cells (the blank filled with the wrong variable or axis, the right line in the wrong place), interface slips
(tuples, lists, numpy, None, the input modified and returned), numerics (float16, int32 ids) and two slips that
partly cancel. See heldout_probe.py."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import mingpt.exercises as ex

from heldout_probe_models import ROUND, mistake, valid
import heldout_probe_round14_post  # noqa: F401  (earlier rounds registered first)

ROUND[0] = 15
INF = float("-inf")


def both(a: str, b: str) -> str:
    return rf"(?=.*(?:{a}))(?=.*(?:{b}))"


# ------------------------------------------------------------------------------------------ greedy (6.1)
G = ex.check_greedy
AXIS = r"dim|axis|row|batch|column"
mistake(G, AXIS)(lambda logits: logits.argmax(dim=0))
mistake(G, r"dim|flat|whole|axis|row|shape")(lambda logits: logits.argmax())
mistake(G, r"keepdim|shape|extra|\(B, 1\)|squeeze")(lambda logits: logits.argmax(dim=-1, keepdim=True))
mistake(G, r"tuple|indices|values|max")(lambda logits: logits.max(dim=-1))
mistake(G, r"values|indices|prob|logit|id")(lambda logits: logits.max(dim=-1).values)
mistake(G, r"argmin|least|smallest|min")(lambda logits: logits.argmin(dim=-1))
mistake(G, r"sampl|random|multinomial|determin")(lambda logits: torch.multinomial(F.softmax(logits, -1), 1)[:, 0])
mistake(G, r"list|tensor|type")(lambda logits: logits.argmax(dim=-1).tolist())
# (int32 ids and float ids were written as mistakes and passed untuned: check_greedy accepted ids of any dtype whose
# values are right, as round 6 decided; int32 ids stay valid (they index an embedding), float ids are named a wrong
# dtype since round 19, as three of four writers judged them)
valid(G)(lambda logits: logits.argmax(dim=-1).int())
mistake(G, r"dtype|float|integer")(lambda logits: logits.argmax(dim=-1).float())
mistake(G, r"numpy|tensor|type")(lambda logits: logits.argmax(dim=-1).numpy())


@mistake(G, r"None|return")
def greedy_no_return(logits):
    ids = logits.argmax(dim=-1)  # noqa: F841  (the return forgotten)


mistake(G, r"squeeze|B ?= ?1|batch|shape|0-d|scalar|dim")(lambda logits: torch.topk(logits, 1).indices.squeeze())
mistake(G, r"last|\[:, ?-1\]|\(B, T, V\)|shape|time|column")(lambda logits: logits[:, -1].argmax(dim=-1))
mistake(G, AXIS + r"|softmax")(lambda logits: F.softmax(logits, dim=0).argmax(dim=-1))  # a softmax over the batch
valid(G)(lambda logits: logits.sort(dim=-1, descending=True, stable=True).indices[:, 0])
valid(G)(lambda logits: torch.max(logits, 1).indices)
valid(G)(lambda logits: torch.stack([row.argmax() for row in logits]))


# ------------------------------------------------------------------------------------------ sampling (6.2)
S = ex.check_sampling_probs
TEMP = r"temperature"
TOPK = r"top.?k|k-th|kth|k most"
TOPP = r"top.?p|nucleus|cumul|mass|cross"


def sp(temp="div", kcol=-1, kcmp="lt", kfill=INF, p_above=True, p_scatter=True, p_desc=True, order="kp",
       temp_late=False, final="softmax", half=False, inplace=False, kplus=0, kdim=-1):
    """The notebook's cell, with the slips; every knob's default is the solution's line."""
    def f(logits, temperature=1.0, top_k=None, top_p=None):
        if inplace:
            logits /= temperature  # the student's tensor modified in place
        elif not temp_late:
            logits = logits * temperature if temp == "mul" else logits / temperature
        if half:
            logits = logits.half()

        def do_k(lg):
            vals = torch.topk(lg, top_k + kplus, dim=kdim).values
            if kcol == "flat":
                kth = vals[:, -1]
            elif kdim != -1:
                kth = vals[-1:]
            else:
                kth = vals[:, kcol:kcol + 1] if kcol != -1 else vals[:, -1:]
            keep = lg >= kth if kcmp == "lt" else lg > kth
            return lg.masked_fill(~keep, kfill)

        def do_p(lg):
            sorted_logits, idx = lg.sort(dim=-1, descending=p_desc)
            probs = sorted_logits.softmax(dim=-1)
            above = probs.cumsum(dim=-1) - (probs if p_above else 0)
            rem = above >= top_p
            rem = rem.scatter(-1, idx, rem) if p_scatter else rem
            return lg.masked_fill(rem, INF)

        for step in order:
            if step == "k" and top_k is not None:
                logits = do_k(logits)
            if step == "p" and top_p is not None:
                logits = do_p(logits)
        if temp_late:
            logits = logits / temperature
        out = {"softmax": lambda: F.softmax(logits, dim=-1), "log": lambda: F.log_softmax(logits, dim=-1),
               "logits": lambda: logits, "dim0": lambda: F.softmax(logits, dim=0),
               "tuple": lambda: (F.softmax(logits, dim=-1), logits)}[final]()
        return out.float() if half else out
    return f


mistake(S, TEMP)(sp(temp="mul"))
mistake(S, TOPK)(sp(kcol=0))  # the first column of topk's values: only the best token kept
mistake(S, TOPK)(sp(kcmp="le"))  # '<=' the k-th: k - 1 kept
mistake(S, TOPK + r"|0\b|zero|-inf")(sp(kfill=0.0))  # masked with 0, not -inf
mistake(S, TOPP)(sp(p_above=False))  # the token that crosses p removed
mistake(S, TOPP + r"|scatter|sort|order|position")(sp(p_scatter=False))  # the sorted mask applied unsorted
mistake(S, TOPP + r"|descending|ascending|sort|least")(sp(p_desc=False))
mistake(S, TEMP + r"|order|after|before")(sp(temp_late=True))  # filters on the untempered distribution
mistake(S, TOPK + "|" + TOPP + r"|order|after|before")(sp(order="pk"))  # top-p before top-k
mistake(S, r"log|prob")(sp(final="log"))
mistake(S, r"softmax|prob|logit")(sp(final="logits"))
mistake(S, r"dim|axis|row|batch|softmax")(sp(final="dim0"))
mistake(S, r"tuple|extra|two|output|second value")(sp(final="tuple"))  # "second value" widened after the count
mistake(S, r"in.?place|modif|input|argument")(sp(inplace=True))
mistake(S, r"half|float16|dtype|precision")(sp(half=True))
mistake(S, TOPK + r"|dim|axis|batch")(sp(kdim=0))  # topk over the batch
mistake(S, TOPK + r"|tie|equal")(sp(kplus=1, kcmp="le"))  # k + 1 and '<=': the same but on ties
mistake(S, TOPK + r"|shape|broadcast|keepdim|batch")(sp(kcol="flat"))  # (B,) against (B, V): fine only for B = 1


def probs_route(logits, temperature=1.0, top_k=None, top_p=None):
    """Valid: top-k on probabilities and renormalized; top-p by a cumulative mask built in sorted order."""
    probs = F.softmax(logits / temperature, dim=-1)
    if top_k is not None:
        kth = probs.topk(top_k, dim=-1).values[:, -1:]
        probs = torch.where(probs < kth, torch.zeros_like(probs), probs)
        probs = probs / probs.sum(-1, keepdim=True)
    if top_p is not None:
        sp_, idx = probs.sort(dim=-1, descending=True)
        cum = sp_.cumsum(-1)
        keep_sorted = (cum - sp_) < top_p
        keep = torch.zeros_like(keep_sorted).scatter(-1, idx, keep_sorted)
        probs = torch.where(keep, probs, torch.zeros_like(probs))
        probs = probs / probs.sum(-1, keepdim=True)
    return probs


def nanogpt_style(logits, temperature=1.0, top_k=None, top_p=None):
    """Valid: nanoGPT's top-k on a clone (v[:, [-1]]), the p-filter via gather back into place."""
    logits = logits.clone() / temperature
    if top_k is not None:
        v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
        logits[logits < v[:, [-1]]] = INF
    if top_p is not None:
        s, idx = torch.sort(logits, descending=True)
        p = s.softmax(-1)
        rem_sorted = (p.cumsum(-1) - p) >= top_p
        rem = torch.empty_like(rem_sorted)
        rem.scatter_(1, idx, rem_sorted)
        logits[rem] = INF
    return torch.exp(F.log_softmax(logits, dim=1))


valid(S)(probs_route)
valid(S)(nanogpt_style)

import heldout_probe_round15_tokens2  # noqa: E402,F401  (the KV cache and BPE rows, in file order)
