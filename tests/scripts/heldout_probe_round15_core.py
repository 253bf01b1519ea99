"""The held-out probe, round 15, core part (loss, bigram, attention weights, attention, LayerNorm, MLP, Block,
embedding, GPT): written fresh by w24u before reading these checkers' tables, tests/mistakes_*.py or any earlier
round's rows, from the checkers' docstrings and the skeletons of notebooks/course/01-05 only, and counted untuned
first. The angle: the course's own fill-in cells (the blank filled with the wrong variable or axis, a skeleton line
left in), interface slips (extra outputs, arguments swapped, None returned, a float or a (1,) tensor for a scalar,
the input modified in place), numerics (float16 intermediates, .item() / torch.tensor() breaking gradients) and
two slips that partly cancel. See heldout_probe.py."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import mingpt.exercises as ex

from heldout_probe_models import ROUND, cls_with, mistake, valid
import heldout_probe_round14_post  # noqa: F401  (earlier rounds registered first)

ROUND[0] = 15
# "returned the wrong type" (its message: "yours is a tuple (a second value returned beside the output?)") is a right
# name, as round 10 judged it; the regex was widened to it after the untuned count
TUPLE = r"tuple|extra|two (outputs|values)|more than one|returned a (tuple|pair)|pair|wrong type"
HALF = r"half|float16|bfloat16|precision|dtype|round"
NONE = r"None|return"
INPLACE = r"in.place|modif|input|alias|view|clone"


def both(a: str, b: str) -> str:
    return rf"(?=.*(?:{a}))(?=.*(?:{b}))"


# ------------------------------------------------------------------------------------------ next-token loss
L = ex.check_loss
SHIFT = r"shift|align|next|one (place|position|token)|off by one|tokens\[:, ?1:\]|logits\[:, ?:-1\]"
IGN = r"ignore|-1\b|skip|mask"


def loss_with(lsl=slice(None, -1), tsl=slice(1, None), ignore=-1, reduction="mean", prep=lambda z: z, post=None):
    """The skeleton's one line, with knobs: which slices, which ignore_index, which reduction, what is done to the
    logits first (prep) and to the loss after (post)."""
    def f(logits, tokens):
        V = logits.size(-1)
        z = prep(logits[:, lsl]).reshape(-1, V)
        loss = F.cross_entropy(z, tokens[:, tsl].reshape(-1), ignore_index=ignore, reduction=reduction)
        return post(loss, logits) if post else loss
    return f


mistake(L, SHIFT)(loss_with(lsl=slice(None), tsl=slice(None)))  # the skeleton's shift forgotten
mistake(L, SHIFT + r"|previous|direction|backward")(loss_with(lsl=slice(1, None), tsl=slice(None, -1)))
mistake(L, IGN + r"|-100")(loss_with(ignore=-100))  # torch's default ignore_index
mistake(L, r"sum|mean|average|reduction")(loss_with(reduction="sum"))
mistake(L, r"softmax|probabilit|logits")(loss_with(prep=lambda z: F.softmax(z, dim=-1)))
mistake(L, TUPLE)(loss_with(post=lambda loss, logits: (loss, logits)))
mistake(L, r"float|item|tensor|grad|python|wrong type")(loss_with(post=lambda loss, logits: loss.item()))
mistake(L, r"shape|scalar|\(1,\)|0-d|dim")(loss_with(post=lambda loss, logits: loss.reshape(1)))
mistake(L, r"grad|detach|torch\.tensor|tensor\(|re-?wrap")(loss_with(post=lambda loss, logits: torch.tensor(loss)))
mistake(L, HALF)(loss_with(prep=lambda z: z.half().float()))
mistake(L, r"log|softmax|nll|probabilit")(lambda logits, tokens: F.nll_loss(
    F.softmax(logits[:, :-1], -1).reshape(-1, logits.size(-1)), tokens[:, 1:].reshape(-1), ignore_index=-1))


@mistake(L, r"argument|order|swap")
def loss_args_swapped(tokens, logits):  # the notebook calls fn(logits, tokens)
    V = logits.size(-1)
    return F.cross_entropy(logits[:, :-1].reshape(-1, V), tokens[:, 1:].reshape(-1), ignore_index=-1)


@mistake(L, r"view|contiguous|reshape")
def loss_view(logits, tokens):  # .view on a slice of the time axis: not contiguous
    V = logits.size(-1)
    return F.cross_entropy(logits[:, :-1].view(-1, V), tokens[:, 1:].reshape(-1), ignore_index=-1)


@mistake(L, IGN + r"|count|denominator|divid")
def loss_sum_over_all(logits, tokens):  # skips the -1 targets in the sum but divides by every position
    V = logits.size(-1)
    y = tokens[:, 1:].reshape(-1)
    return F.cross_entropy(logits[:, :-1].reshape(-1, V), y, ignore_index=-1, reduction="sum") / y.numel()


@mistake(L, r"per.(sequence|row|example)|average|mean of means|weight|count")
def loss_mean_per_row(logits, tokens):  # mean per sequence, then mean over the batch: differs with -1 targets
    return torch.stack([F.cross_entropy(logits[b, :-1], tokens[b, 1:], ignore_index=-1)
                        for b in range(logits.size(0))]).mean()


@mistake(L, r"log|zero|eps|-?inf|nan|underflow|softmax")
def loss_log_probs(logits, tokens):  # log(softmax) without log_softmax: log of 0 for a very unlikely token
    y = tokens[:, 1:]
    p = F.softmax(logits[:, :-1].half(), dim=-1).float()
    nll = -torch.log(p.gather(-1, y.clamp(min=0).unsqueeze(-1)).squeeze(-1))
    keep = y != -1
    return nll[keep].mean()


@valid(L)
def loss_masked_manual(logits, tokens):
    y = tokens[:, 1:]
    lp = logits[:, :-1].log_softmax(-1).gather(-1, y.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    keep = (y != -1).float()
    return -(lp * keep).sum() / keep.sum()


valid(L)(lambda logits, tokens: F.cross_entropy(logits[:, :-1].transpose(1, 2), tokens[:, 1:], ignore_index=-1))


# ------------------------------------------------------------------------------------------ bigram
BG = ex.check_bigram


class Bigram(nn.Module):
    mode = "ok"

    def __init__(self, vocab_size):
        super().__init__()
        self.table = nn.Embedding(vocab_size, vocab_size)

    def forward(self, idx):
        m, w = self.mode, self.table.weight
        if m == "softmax":
            return F.softmax(self.table(idx), dim=-1)
        if m == "log_softmax":
            return self.table(idx).log_softmax(-1)
        if m == "tuple":
            return self.table(idx), None
        if m == "transposed":
            return w.T[idx]
        if m == "one_hot_default":
            return F.one_hot(idx).float() @ w
        if m == "last":
            return self.table(idx)[:, -1]
        if m == "flat":
            return self.table(idx).view(-1, w.size(0))
        if m == "no_return":
            self.table(idx)
            return None
        if m == "double":
            return self.table(idx).double()
        return self.table(idx)


def bigram(mode):
    return cls_with(Bigram, mode=mode)


mistake(BG, r"softmax|probabilit|logits")(bigram("softmax"))
mistake(BG, r"log.?softmax|normali[sz]|logits|log")(bigram("log_softmax"))
mistake(BG, TUPLE)(bigram("tuple"))
mistake(BG, r"transpos|column|\.T\b|row")(bigram("transposed"))
mistake(BG, r"one.hot|num_classes|vocab|shape|size")(bigram("one_hot_default"))
mistake(BG, r"last|position|shape|every|\(B, T")(bigram("last"))
mistake(BG, r"shape|flat|view|\(B, T, V\)|\(B\*T")(bigram("flat"))
mistake(BG, NONE)(bigram("no_return"))
mistake(BG, r"float64|double|dtype")(bigram("double"))


class BigramUnregistered(nn.Module):
    def __init__(self, vocab_size):
        super().__init__()
        self.table = torch.randn(vocab_size, vocab_size)  # a plain tensor: not a parameter, never trained

    def forward(self, idx):
        return self.table[idx]


class BigramOffByOne(Bigram):
    def __init__(self, vocab_size):
        super().__init__(vocab_size)
        self.table = nn.Embedding(vocab_size + 1, vocab_size + 1)  # "one more for the padding token"


class BigramLinear(nn.Module):
    def __init__(self, vocab_size):
        super().__init__()
        self.table = nn.Linear(vocab_size, vocab_size)  # a bias the bigram table has no place for

    def forward(self, idx):
        return self.table(F.one_hot(idx, self.table.in_features).float())


mistake(BG, r"param|regist|train|grad")(BigramUnregistered)
mistake(BG, r"size|shape|vocab|\+ ?1|V")(BigramOffByOne)
mistake(BG, r"bias|linear|param|shape|table")(BigramLinear)


class BigramOneHot(nn.Module):
    def __init__(self, vocab_size):
        super().__init__()
        self.V = vocab_size
        self.table = nn.Embedding(vocab_size, vocab_size)

    def forward(self, idx):
        return F.one_hot(idx, self.V).to(self.table.weight.dtype) @ self.table.weight


class BigramFunctional(Bigram):
    def forward(self, idx):
        return F.embedding(idx, self.table.weight)


valid(BG)(BigramOneHot)
valid(BG)(BigramFunctional)


# ------------------------------------------------------------------------------------------ attention weights
AW = ex.check_attention_weights
SCALE = r"scal|sqrt|hs|head size|√"
MASK = r"mask|causal|future|tril|triu|diagonal|-inf"


def weights_with(scale="hs", fill=float("-inf"), diag=0, tri="tril", dim=-1, order="mask_softmax", swap=False,
                 mask_size=None, post=None, half=False):
    """The skeleton's three lines with knobs: the scale, what fills the masked scores, which triangle, the softmax
    axis, where the mask goes, q and k swapped, a fixed mask size, what is done to the result."""
    def f(q, k):
        T, hs = q.size(1), q.size(-1)
        a, b = (k, q) if swap else (q, k)
        s = a @ b.transpose(-2, -1)
        s = s.half() if half else s
        s = s / {"hs": math.sqrt(hs), "T": math.sqrt(T), "none": 1.0, "nosqrt": hs, "C": math.sqrt(2 * hs)}[scale]
        n = mask_size or T
        keep = getattr(torch, tri)(torch.ones(n, n, dtype=torch.bool), diagonal=diag)
        if order == "mask_softmax":
            w = F.softmax(s.masked_fill(~keep, fill), dim=dim)
        else:  # softmax first, then the mask: rows no longer sum to 1
            w = F.softmax(s, dim=dim).masked_fill(~keep, 0.0)
        w = w.float() if half else w
        return post(w, s) if post else w
    return f


mistake(AW, MASK + r"|zero|\b0\b")(weights_with(fill=0.0))
mistake(AW, r"after|order|renormal|sum to 1|before")(weights_with(order="softmax_mask"))
mistake(AW, SCALE + r"|\bT\b")(weights_with(scale="T"))  # the blank filled with the sequence length
mistake(AW, SCALE)(weights_with(scale="nosqrt"))
mistake(AW, SCALE)(weights_with(scale="none"))
mistake(AW, r"dim|axis|softmax|column|quer")(weights_with(dim=1))
mistake(AW, MASK + r"|upper")(weights_with(tri="triu"))
mistake(AW, r"transpos|swap|k ?@ ?q|key|order")(weights_with(swap=True))
mistake(AW, r"diagonal|itself|own|self|nan|off by one|" + MASK)(weights_with(diag=-1))
mistake(AW, r"diagonal|one (step|token)|next|off by one|" + MASK)(weights_with(diag=1))
mistake(AW, TUPLE)(weights_with(post=lambda w, s: (w, s)))
mistake(AW, HALF)(weights_with(half=True))
mistake(AW, r"size|shape|T\b|block|fixed|mask")(weights_with(mask_size=8))  # a mask made for T = 8 only


@mistake(AW, INPLACE)
def weights_scale_q_in_place(q, k):
    q /= math.sqrt(q.size(-1))  # scales the caller's queries too
    T = q.size(1)
    s = (q @ k.transpose(-2, -1)).masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf"))
    return F.softmax(s, dim=-1)


@mistake(AW, both(MASK, SCALE))
def weights_two_slips(q, k):  # the mask inverted and no scale
    T = q.size(1)
    s = (q @ k.transpose(-2, -1)).masked_fill(torch.ones(T, T).tril() == 1, float("-inf"))
    return F.softmax(s, dim=-1)


@valid(AW)
def weights_einsum_where(q, k):
    T, hs = q.size(1), q.size(-1)
    s = torch.einsum("btd,bsd->bts", q * hs**-0.25, k * hs**-0.25)
    return torch.where(torch.ones(T, T).tril().bool(), s, torch.tensor(-1e9)).softmax(-1)


@valid(AW)
def weights_torch_sqrt(q, k):
    T = q.size(1)
    s = q @ k.mT / torch.sqrt(torch.tensor(q.shape[-1]))
    return s.masked_fill(torch.triu(torch.ones(T, T), diagonal=1).bool(), -torch.inf).softmax(dim=-1)


import heldout_probe_round15_core2  # noqa: E402,F401  (the rest: attention, LayerNorm, MLP, Block, embedding, GPT)
