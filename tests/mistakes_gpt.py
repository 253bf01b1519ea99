"""
Student-style embeddings, losses, bigram models and whole GPTs: each MISTAKES row is (checker, buggy
implementation, the name the checker must give); VALID rows must pass; UNNAMED rows must be reported as not
recognised, never under a wrong name.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from mingpt.exercises import check_bigram, check_embedding, check_gpt, check_loss
from mingpt.model import GPT


# ------------------------------------------------------------------------------------------ embedding
class StudentEmbedding(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.block_size, config.n_embd)

    def positions(self, idx):
        return torch.arange(idx.shape[1])

    def forward(self, idx):
        return self.wte(idx) + self.wpe(self.positions(idx))


def embedding(forward):
    return type("BuggyEmbedding", (StudentEmbedding,), {"forward": lambda self, idx: forward(self, idx)})


def positions(fn):
    return type("BuggyPositions", (StudentEmbedding,), {"positions": lambda self, idx: fn(idx)})


class EmbeddingInADict(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.tables = {"wte": nn.Embedding(config.vocab_size, config.n_embd),
                       "wpe": nn.Embedding(config.block_size, config.n_embd)}

    def forward(self, idx):
        return self.tables["wte"](idx) + self.tables["wpe"](torch.arange(idx.shape[1]))


EMBEDDING_MISTAKES = [
    (check_embedding, embedding(lambda e, i: e.wte(i)), "position embedding missing"),
    (check_embedding, embedding(lambda e, i: e.wpe(e.positions(i)).repeat(i.shape[0], 1, 1)),
     "token embedding missing"),
    (check_embedding, positions(lambda i: i), "positions looked up by token id"),
    (check_embedding, positions(lambda i: torch.arange(1, i.shape[1] + 1)), "positions start at 1"),
    (check_embedding, positions(lambda i: torch.arange(i.shape[1] - 1, -1, -1)), "positions reversed"),
    (check_embedding, embedding(lambda e, i: e.wte(i) + e.wpe.weight[-i.shape[1]:]),
     "positions taken from the end of the table"),
    (check_embedding, positions(lambda i: torch.zeros(i.shape[1], dtype=torch.long)), "every position gets position 0"),
    (check_embedding, embedding(lambda e, i: e.wte(i) + e.wpe(torch.arange(i.shape[0])).unsqueeze(1)),
     "positions numbered along the batch axis"),
    (check_embedding, embedding(lambda e, i: e.wte(i) * e.wpe(e.positions(i))),
     "token and position embeddings multiplied"),
    (check_embedding, embedding(lambda e, i: e.wte(i) * math.sqrt(e.wte.embedding_dim) + e.wpe(e.positions(i))),
     "token embedding scaled by sqrt(C)"),
    (check_embedding, embedding(lambda e, i: e.wpe(i) + e.wte(e.positions(i))), "token and position tables swapped"),
    (check_embedding, EmbeddingInADict, "parameters not registered"),
    (check_embedding, embedding(lambda e, i: (e.wte(i) + e.wpe(e.positions(i))).view(-1, e.wte.embedding_dim)),
     "output reshaped"),
]

EMBEDDING_VALID = [
    (check_embedding, StudentEmbedding),
    (check_embedding, embedding(lambda e, i: e.wte.weight[i] + e.wpe.weight[: i.shape[1]])),
    (check_embedding, embedding(lambda e, i: e.wte(i) + e.wpe(torch.arange(i.shape[1]).expand_as(i)))),
]


# ------------------------------------------------------------------------------------------ loss
def loss_ok(logits, tokens):
    B, T, V = logits.shape
    return F.cross_entropy(logits[:, :-1].reshape(-1, V), tokens[:, 1:].reshape(-1), ignore_index=-1)


def loss_by_hand(logits, tokens):  # valid: log-softmax, gather, mask, mean over the real targets
    log_probs = logits[:, :-1].log_softmax(-1)
    targets = tokens[:, 1:]
    mask = targets != -1
    picked = log_probs.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return -(picked * mask).sum() / mask.sum()


def loss_transposed(logits, tokens):  # valid: cross_entropy with the classes on dim 1
    return F.cross_entropy(logits[:, :-1].transpose(1, 2), tokens[:, 1:], ignore_index=-1)


def loss_masked_mean_by_numel(logits, tokens):
    log_probs = logits[:, :-1].log_softmax(-1)
    targets = tokens[:, 1:]
    picked = log_probs.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return -(picked * (targets != -1)).sum() / targets.numel()


def loss_per_sequence(logits, tokens):
    losses = [F.cross_entropy(logits[b, :-1], tokens[b, 1:], ignore_index=-1) for b in range(len(tokens))]
    return torch.stack(losses).mean()


def loss_softmax_over_time(logits, tokens):
    log_probs = logits[:, :-1].log_softmax(1)
    targets = tokens[:, 1:]
    mask = targets != -1
    picked = log_probs.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return -(picked * mask).sum() / mask.sum()


def loss_minus_probability(logits, tokens):
    probs = logits[:, :-1].softmax(-1)
    targets = tokens[:, 1:]
    mask = targets != -1
    picked = probs.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return -(picked * mask).sum() / mask.sum()


def loss_reshaped(logits, tokens):
    B, T, V = logits.shape
    return F.cross_entropy(logits[:, :-1].reshape(B, V, T - 1), tokens[:, 1:], ignore_index=-1)


def loss_keepdim(logits, tokens):
    return loss_ok(logits, tokens).reshape(1)


def loss_float(logits, tokens):
    return loss_ok(logits, tokens).item()


def shifted(lg_slice, tk_slice, **kw):
    def loss(logits, tokens):
        lg, tk = logits[lg_slice], tokens[tk_slice]
        return F.cross_entropy(lg.reshape(-1, lg.shape[-1]), tk.reshape(-1), **kw)
    return loss


ALL, BUT_LAST, BUT_FIRST = (slice(None), slice(None)), (slice(None), slice(None, -1)), (slice(None), slice(1, None))
LOSS_MISTAKES = [
    (check_loss, shifted(ALL, ALL, ignore_index=-1), "targets not shifted"),
    (check_loss, shifted(BUT_FIRST, BUT_LAST, ignore_index=-1), "targets shifted the wrong way"),
    (check_loss, shifted(BUT_FIRST, BUT_FIRST, ignore_index=-1), "logits and targets both drop the first position"),
    (check_loss, shifted(BUT_LAST, BUT_LAST, ignore_index=-1), "logits and targets both drop the last position"),
    (check_loss, shifted(BUT_LAST, BUT_FIRST), "ignore index not honoured"),
    (check_loss, lambda lg, tk: F.cross_entropy(lg.flatten(0, 1), tk.roll(-1, 1).flatten(), ignore_index=-1),
     "targets rolled: the last position wraps around"),
    (check_loss, shifted(BUT_LAST, BUT_FIRST, ignore_index=-1, label_smoothing=0.1), "label smoothing"),
    (check_loss, shifted(BUT_LAST, BUT_FIRST, ignore_index=-1, reduction="sum"), "sum instead of mean"),
    (check_loss, loss_masked_mean_by_numel, "ignored positions counted in the mean"),
    (check_loss, loss_per_sequence, "averaged per sequence, then over the batch"),
    (check_loss, lambda lg, tk: loss_ok(lg.softmax(-1), tk), "softmax applied before cross_entropy"),
    (check_loss, loss_softmax_over_time, "softmax over the time axis"),
    (check_loss, loss_minus_probability, "minus the probability instead of minus its log"),
    (check_loss, lambda lg, tk: loss_ok(lg, tk) / math.log(2), "log base 2"),
    (check_loss, loss_reshaped, "reshape where a transpose is needed"),
    (check_loss, loss_keepdim, "extra dimension of size 1"),
    (check_loss, loss_float, "returned the wrong type"),
]

LOSS_VALID = [(check_loss, loss_ok), (check_loss, loss_by_hand), (check_loss, loss_transposed),
              (check_loss, lambda lg, tk: loss_ok(lg.log_softmax(-1), tk))]  # log_softmax twice changes nothing


# ------------------------------------------------------------------------------------------ bigram
class StudentBigram(nn.Module):
    def __init__(self, vocab_size):
        super().__init__()
        self.table = nn.Embedding(vocab_size, vocab_size)

    def forward(self, idx):
        return self.table(idx)


def bigram(forward):
    return type("BuggyBigram", (StudentBigram,), {"forward": lambda self, idx: forward(self, idx)})


BIGRAM_MISTAKES = [
    (check_bigram, bigram(lambda m, i: m.table(i).softmax(-1)), "returned probabilities, not logits"),
    (check_bigram, bigram(lambda m, i: F.log_softmax(m.table(i), dim=-1)), "returned log-probabilities, not logits"),
    (check_bigram, bigram(lambda m, i: m.table.weight.T[i]), "table read by column"),
    (check_bigram, bigram(lambda m, i: m.table(i).view(-1, m.table.num_embeddings)), "output reshaped"),
]
BIGRAM_VALID = [(check_bigram, StudentBigram), (check_bigram, bigram(lambda m, i: m.table.weight[i]))]


# ------------------------------------------------------------------------------------------ GPT
class StudentGPT(GPT):
    """The student writes forward; the modules are the given skeleton (mingpt's own names)."""

    order = None
    final_norm = True
    with_positions = True

    def head(self, logits):
        return logits

    def loss_of(self, logits, targets):
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)

    def forward(self, idx, targets=None):
        tr = self.transformer
        x = tr.wte(idx) + (tr.wpe(torch.arange(idx.size(1))) if self.with_positions else 0)
        x = tr.drop(x)
        for i in self.order if self.order is not None else range(len(tr.h)):
            x = tr.h[i](x)
        logits = self.lm_head(tr.ln_f(x) if self.final_norm else x)
        return self.head(logits), (None if targets is None else self.loss_of(logits, targets))


def gpt(**changes):
    return type("BuggyGPT", (StudentGPT,), {k: (staticmethod(v) if callable(v) and k != "head" and k != "loss_of"
                                                else v) for k, v in changes.items()})


GPT_MISTAKES = [
    (check_gpt, gpt(final_norm=False), "final LayerNorm missing"),
    (check_gpt, gpt(head=lambda self, lg: lg.softmax(-1)), "returned probabilities, not logits"),
    (check_gpt, gpt(head=lambda self, lg: lg.log_softmax(-1)), "returned log-probabilities, not logits"),
    (check_gpt, gpt(with_positions=False), "position embedding missing"),
    (check_gpt, gpt(order=[1, 0]), "Blocks applied in reverse order"),
    (check_gpt, gpt(order=[0, 0]), "the first Block used for every layer"),
    (check_gpt, gpt(order=[1]), "only the last Block applied"),
    (check_gpt, gpt(order=[0]), "only the first Block applied"),
    (check_gpt, gpt(head=lambda self, lg: lg[:, -1, :]), "only one position returned"),
    (check_gpt, gpt(loss_of=lambda self, lg, tg: loss_ok(lg, tg)), "targets shifted twice"),
    (check_gpt, gpt(loss_of=lambda self, lg, tg: F.cross_entropy(lg.flatten(0, 1), tg.flatten())),
     "ignore index not honoured"),
    (check_gpt, gpt(loss_of=lambda self, lg, tg: F.cross_entropy(lg.flatten(0, 1), tg.flatten(), ignore_index=-1,
                                                                 reduction="sum")), "sum instead of mean"),
    (check_gpt, gpt(loss_of=lambda self, lg, tg: -(lg.log_softmax(-1).gather(-1, tg.clamp(min=0)[..., None])[..., 0]
                                                   * (tg != -1)).sum() / tg.numel()),
     "ignored positions counted in the mean"),
]
GPT_VALID = [(check_gpt, GPT), (check_gpt, StudentGPT)]

UNNAMED = [
    (check_embedding, embedding(lambda e, i: e.wte(i) * 1.01 + e.wpe(e.positions(i)))),  # 0.5 * wpe is named now
    (check_loss, lambda lg, tk: loss_ok(lg, tk) + 0.01),
    (check_gpt, gpt(head=lambda self, lg: lg * 1.1)),
    (check_bigram, bigram(lambda m, i: m.table(i) + 1)),
]

MISTAKES = EMBEDDING_MISTAKES + LOSS_MISTAKES + BIGRAM_MISTAKES + GPT_MISTAKES
VALID = EMBEDDING_VALID + LOSS_VALID + BIGRAM_VALID + GPT_VALID
