"""The held-out probe, round 14, core part 3 (GPT, loss, bigram): see heldout_probe_round14_core.py."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

import mingpt.exercises as ex
from mingpt.model import Block as RefBlock

from heldout_probe_models import mistake, valid
from heldout_probe_round14_core import DTYPE, both

IGNORE = -1


# ------------------------------------------------------------------------------------------ GPT
G = ex.check_gpt


class Gpt(nn.Module):
    """The notebook's MyGPT with knobs on the forward pass."""
    loss_kw, shift, probs, ln_f, flow, pos, last, none_loss = {}, 0, 0, 1, "ok", 1, 0, 0

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            wpe=nn.Embedding(config.block_size, config.n_embd),
            drop=nn.Dropout(config.embd_pdrop),
            h=nn.ModuleList([RefBlock(config, i) for i in range(config.n_layer)]),
            ln_f=nn.LayerNorm(config.n_embd),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight

    def forward(self, idx, targets=None):
        t = self.transformer
        pos = torch.arange(idx.size(1))
        x = t.drop(t.wte(idx) + (t.wpe(pos) if self.pos else 0))
        h = x
        for block in t.h:
            h = block(x) if self.flow == "each_from_x" else block(h)
        x = t.ln_f(h) if self.ln_f else h
        if self.last and targets is None:  # nanoGPT's inference shortcut: only the last position
            return self.lm_head(x[:, [-1], :]), None
        logits = self.lm_head(x)
        if self.probs == 2:
            logits = F.softmax(logits, dim=-1)
        if targets is None:
            return logits, (torch.tensor(0.0) if self.none_loss else None)
        lg, tg = (logits[:, :-1], targets[:, 1:]) if self.shift else (logits, targets)
        lg = F.softmax(lg, dim=-1) if self.probs == 1 else lg
        kw = {"ignore_index": IGNORE, **self.loss_kw}
        return logits, F.cross_entropy(lg.reshape(-1, lg.size(-1)), tg.reshape(-1), **kw)


def gpt(**knobs):
    return type("StudentGPT", (Gpt,), knobs)


mistake(G, r"probab|softmax|twice|logits")(gpt(probs=1))
mistake(G, r"probab|softmax|logits")(gpt(probs=2))
mistake(G, r"ignore|-1|-100|index")(gpt(loss_kw={"ignore_index": -100}))
mistake(G, r"smooth")(gpt(loss_kw={"label_smoothing": 0.1}))
mistake(G, r"sum|mean|reduction|averag")(gpt(loss_kw={"reduction": "sum"}))
mistake(G, r"shift|twice|already")(gpt(shift=1))
mistake(G, r"ln_f|final|layer ?norm")(gpt(ln_f=0))
mistake(G, r"block|each|previous|chain|flow|last|embedding|input")(gpt(flow="each_from_x"))
mistake(G, r"position")(gpt(pos=0))
mistake(G, r"None|target|loss")(gpt(none_loss=1))
mistake(G, r"last|-1|inference|shape|position|every|all")(gpt(last=1))


class GptTiedLinear(Gpt):  # valid: the head as F.linear on wte, the loss via nll_loss(log_softmax)
    def forward(self, idx, targets=None):
        t = self.transformer
        x = t.drop(t.wte(idx) + t.wpe.weight[: idx.size(1)])
        for block in t.h:
            x = block(x)
        logits = F.linear(t.ln_f(x), t.wte.weight)
        if targets is None:
            return logits, None
        lp = F.log_softmax(logits, dim=-1).flatten(0, 1)
        return logits, F.nll_loss(lp, targets.flatten(), ignore_index=-1)


valid(G)(GptTiedLinear)
valid(G)(gpt(loss_kw={"reduction": "mean", "label_smoothing": 0.0}))


# ------------------------------------------------------------------------------------------ loss
S = ex.check_loss
SHIFT = r"shift|next|t ?\+ ?1|one (position|place)|off by one"


def ce_loss(shift="ok", **kw):
    def f(logits, tokens):
        lg, tg = {"ok": (logits[:, :-1], tokens[:, 1:]), "none": (logits, tokens),
                  "reversed": (logits[:, 1:], tokens[:, :-1])}[shift]
        return F.cross_entropy(lg.reshape(-1, lg.size(-1)), tg.reshape(-1), **{"ignore_index": -1, **kw})
    return f


def loss_view(logits, tokens):  # .view on a slice: works only for B == 1
    V = logits.size(-1)
    return F.cross_entropy(logits[:, :-1].view(-1, V), tokens[:, 1:].view(-1), ignore_index=-1)


def loss_no_transpose(logits, tokens):  # (B, T, V) handed to cross_entropy as is: classes on dim 1
    return F.cross_entropy(logits[:, :-1], tokens[:, 1:], ignore_index=-1)


def loss_none_mean(logits, tokens):  # per-token losses, then a mean that counts the skipped ones as 0
    V = logits.size(-1)
    return F.cross_entropy(logits[:, :-1].reshape(-1, V), tokens[:, 1:].reshape(-1), ignore_index=-1,
                           reduction="none").mean()


def loss_per_row(logits, tokens):  # mean per sequence, then over the batch
    per = F.cross_entropy(logits[:, :-1].transpose(1, 2), tokens[:, 1:], ignore_index=-1, reduction="none")
    m = (tokens[:, 1:] != -1).float()
    return ((per * m).sum(1) / m.sum(1)).mean()


def loss_nll_logits(logits, tokens):
    return F.nll_loss(logits[:, :-1].flatten(0, 1), tokens[:, 1:].flatten(), ignore_index=-1)


def loss_softmax_nodim(logits, tokens):  # the manual way, with F.softmax's implicit dim (0 for 3-d: the batch)
    p = F.softmax(logits[:, :-1])
    tg = tokens[:, 1:]
    keep = tg != -1
    nll = -torch.log(p.gather(-1, tg.clamp(min=0).unsqueeze(-1)).squeeze(-1))
    return nll[keep].mean()


def loss_gather(logits, tokens):  # the manual way, forgetting the -1 targets
    lp = F.log_softmax(logits[:, :-1], dim=-1)
    return -lp.gather(-1, tokens[:, 1:].unsqueeze(-1)).mean()


def loss_item(logits, tokens):
    return ce_loss()(logits, tokens).item()  # a Python float: nothing to backpropagate


def loss_mutates(logits, tokens):  # the -1 targets replaced in the caller's tensor, then masked
    tg = tokens[:, 1:]
    keep = tg != -1
    tg[~keep] = 0
    nll = F.cross_entropy(logits[:, :-1].transpose(1, 2), tg, reduction="none")
    return nll[keep].mean()


def loss_log_softmax_time(logits, tokens):
    lp = F.log_softmax(logits, dim=1)[:, :-1]
    return F.nll_loss(lp.reshape(-1, lp.size(-1)), tokens[:, 1:].reshape(-1), ignore_index=-1)


mistake(S, r"view|reshape|contiguous")(loss_view)
# (regex widened after the untuned count by "unflattened", the checker's fair name)
mistake(S, r"transpose|dim|class|shape|permute|\(B, ?V|flatten")(loss_no_transpose)
mistake(S, r"ignore|-1|-100")(ce_loss(ignore_index=-100))
mistake(S, r"smooth")(ce_loss(label_smoothing=0.1))
mistake(S, r"sum|mean|averag|reduction")(ce_loss(reduction="sum"))
mistake(S, r"ignore|skip|count|mask|-1|averag|mean")(loss_none_mean)
mistake(S, r"averag|mean|per (row|sequence)|batch|weigh|row")(loss_per_row)
mistake(S, r"shift|wrong way|direction|revers|previous")(ce_loss(shift="reversed"))
mistake(S, SHIFT)(ce_loss(shift="none"))
mistake(S, r"log_softmax|nll|log|logits|probab")(loss_nll_logits)
mistake(S, r"dim|softmax|batch|axis")(loss_softmax_nodim)
mistake(S, r"ignore|-1|gather|index|skip")(loss_gather)
mistake(S, r"tensor|item|float|type|grad")(loss_item)
mistake(S, r"in.place|input|modif|mutat|tokens")(loss_mutates)
mistake(S, r"dim|axis|time|vocab|log_softmax")(loss_log_softmax_time)
mistake(S, both(SHIFT, r"ignore|-1|-100"))(ce_loss(shift="none", ignore_index=-100))


def loss_masked_manual(logits, tokens):  # valid: a masked mean written out
    tg = tokens[:, 1:]
    keep = (tg != -1).to(logits.dtype)
    lp = logits[:, :-1].log_softmax(-1).gather(-1, tg.clamp(min=0)[..., None])[..., 0]
    return -(lp * keep).sum() / keep.sum()


valid(S)(lambda logits, tokens: F.cross_entropy(logits[:, :-1].transpose(1, 2), tokens[:, 1:], ignore_index=-1))
valid(S)(loss_masked_manual)
valid(S)(lambda logits, tokens: F.nll_loss(F.log_softmax(logits, -1)[:, :-1].flatten(0, 1), tokens[:, 1:].flatten(),
                                           ignore_index=-1))


# ------------------------------------------------------------------------------------------ bigram
Q = ex.check_bigram


class Big(nn.Module):
    how = "ok"

    def __init__(self, vocab_size):
        super().__init__()
        self.V = vocab_size
        if self.how == "tensor":
            self.table = torch.zeros(vocab_size, vocab_size)  # not registered
        elif self.how == "linear":
            self.table = nn.Linear(vocab_size, vocab_size, bias=False)
        elif self.how == "frozen":
            self.table = nn.Parameter(torch.zeros(vocab_size, vocab_size), requires_grad=False)
        else:
            self.table = nn.Embedding(vocab_size, vocab_size)

    def forward(self, idx):
        h = self.how
        if h == "linear":
            return self.table(F.one_hot(idx, self.V).float())  # weight[:, id]: a column, not a row
        if h in ("tensor", "frozen"):
            return self.table[idx]
        if h == "column":
            return self.table.weight[:, idx].permute(1, 2, 0)
        if h == "probs":
            return F.softmax(self.table(idx), dim=-1)
        if h == "byte":
            return self.table(idx.byte())
        if h == "unsqueeze":
            return self.table(idx.unsqueeze(-1))
        if h == "double":
            return self.table(idx).double()
        return self.table(idx)


def big(how):
    return type("StudentBigram", (Big,), {"how": how})


mistake(Q, r"transpose|column|row|linear|one.?hot")(big("linear"))
mistake(Q, r"transpose|column|row")(big("column"))
mistake(Q, r"probab|softmax|logits")(big("probs"))
mistake(Q, r"uint8|byte|255|256|overflow|wrap|dtype")(big("byte"))
mistake(Q, r"shape|dim|unsqueeze|extra")(big("unsqueeze"))
mistake(Q, r"param|regist|nn\.Parameter|table")(big("tensor"))
mistake(Q, r"grad|train|learn|frozen|requires_grad")(big("frozen"))
mistake(Q, DTYPE)(big("double"))


class BigParam(nn.Module):  # valid: a bare Parameter looked up with F.embedding
    def __init__(self, vocab_size):
        super().__init__()
        self.table = nn.Parameter(torch.randn(vocab_size, vocab_size))

    def forward(self, idx):
        return F.embedding(idx, self.table)


class BigOneHot(Big):  # valid: one-hot rows times the embedding's table
    def forward(self, idx):
        return F.one_hot(idx, self.V).to(self.table.weight.dtype) @ self.table.weight


valid(Q)(BigParam)
valid(Q)(BigOneHot)
