"""The held-out probe, round 21, core part. (Written by the round 21 core helper.)

Angle: cousins of the textbook mistakes (another constant, axis, offset), mistakes confined to part of the input (one
head, one batch row, the last position, half the units), combinations of two slips, and valid code that looks like a
cousin. Rows in this file (loss, bigram, attention weights), _core2 (attention, LayerNorm, MLP), _core3 (Block,
embedding, GPT).

Untuned counts (written before reading the checkers; judged; mistakes / caught / named / misnamed, valid passed):
    check_loss               15 / 15 / 11 / 0,  3 of 3
    check_bigram             13 / 13 /  8 / 0,  3 of 3
    check_attention_weights  13 / 13 /  5 / 0,  4 of 4
    check_attention          16 / 16 / 12 / 1,  3 of 3   (softmax over heads called "future leakage", whose message
                                                          lists a mask or a reshape: misnamed; one head unmasked and
                                                          the first batch row masked: "future leakage", a true fact
                                                          that does not say where: not counted named)
    check_layernorm          14 / 14 / 10 / 0,  3 of 3
    check_mlp                14 / 14 / 10 / 0,  3 of 3
    check_block              13 / 13 /  7 / 0,  3 of 3
    check_embedding          13 / 13 / 12 / 0,  3 of 3
    check_gpt                14 / 14 / 11 / 0,  3 of 3
    total                   125 / 125 / 86 (69 %) / 1, 28 of 28 valid, 0 crashes

Tuned (phase B): loss 13 named (a shift by two as a knob that pairs with other slips; only the first sequence of
the batch), attention weights 10 (families: the right scale times a fitted constant, hs to a fitted power, a finite
fill fitted; the mask off by two), attention 12 and 0 misnamed ("future leakage" now lists a softmax over another
axis and a mask on only some heads or rows among its causes). Total 125 / 125 / 93 (74 %) / 0, 28 of 28 valid.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import mingpt.exercises as ex
from heldout_probe_models import ROUND, mistake, valid
import heldout_probe_round20_post  # noqa: F401  (earlier rounds registered first)

ROUND[0] = 21


# ------------------------------------------------------------------------------------------ loss: cousins, partial
def _ce(logits, targets, **kw):
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), **kw)


@mistake(ex.check_loss, r"shift|offset|two|2|align")
def loss_shift_by_two(logits, tokens):  # predicts t+2 from t
    return _ce(logits[:, :-2], tokens[:, 2:], ignore_index=-1)


@mistake(ex.check_loss, r"direction|revers|backward|previous|shift")
def loss_shift_backwards(logits, tokens):  # logits[t] scored against tokens[t-1]
    return _ce(logits[:, 1:], tokens[:, :-1], ignore_index=-1)


@mistake(ex.check_loss, r"ignore.*0|zero|ignore_index|pad")
def loss_ignore_zero(logits, tokens):  # ignores token id 0 instead of -1 (then -1 crashes or not?)
    t = tokens[:, 1:].clone()
    return _ce(logits[:, :-1], t.masked_fill(t == 0, -100).masked_fill(t == -1, 0))


@mistake(ex.check_loss, r"half|0\.5|scale|factor")
def loss_half(logits, tokens):
    return 0.5 * _ce(logits[:, :-1], tokens[:, 1:], ignore_index=-1)


@mistake(ex.check_loss, r"first.*(row|batch)|batch|row")
def loss_first_row_only(logits, tokens):  # only the first sequence of the batch
    return _ce(logits[:1, :-1], tokens[:1, 1:], ignore_index=-1)


@mistake(ex.check_loss, r"last|position|drop")
def loss_drops_last_prediction(logits, tokens):  # stops one prediction early
    return _ce(logits[:, :-2], tokens[:, 1:-1], ignore_index=-1)


@mistake(ex.check_loss, r"temperature|scale|logits")
def loss_logits_halved(logits, tokens):
    return _ce(logits[:, :-1] / 2, tokens[:, 1:], ignore_index=-1)


@mistake(ex.check_loss, r"smooth")
def loss_label_smoothing(logits, tokens):
    return _ce(logits[:, :-1], tokens[:, 1:], ignore_index=-1, label_smoothing=0.1)


@mistake(ex.check_loss, r"per.?(row|seq)|mean of means|average|row")
def loss_mean_of_row_means(logits, tokens):  # each row's mean, then the mean over rows (weights rows equally)
    per = F.cross_entropy(logits[:, :-1].transpose(1, 2), tokens[:, 1:], ignore_index=-1, reduction="none")
    valid_ = (tokens[:, 1:] != -1).float()
    return ((per * valid_).sum(1) / valid_.sum(1).clamp(min=1)).mean()


@mistake(ex.check_loss, r"ignore.*(first|row)|first.*row|partial")
def loss_ignore_only_first_row(logits, tokens):  # -1 skipped in row 0 only; other rows' -1 counted as token V-1
    t = tokens[:, 1:].clone()
    t[1:] = t[1:].masked_fill(t[1:] == -1, logits.size(-1) - 1)
    return _ce(logits[:, :-1], t, ignore_index=-1)


@mistake(ex.check_loss, r"log2|base|bits|ln")
def loss_bits(logits, tokens):
    return _ce(logits[:, :-1], tokens[:, 1:], ignore_index=-1) / math.log(2)


@mistake(ex.check_loss, r"softmax|log|prob")
def loss_nll_of_probs(logits, tokens):  # nll on probabilities, not log-probabilities
    return F.nll_loss(F.softmax(logits[:, :-1], -1).reshape(-1, logits.size(-1)), tokens[:, 1:].reshape(-1),
                      ignore_index=-1)


@mistake(ex.check_loss, r"shift.*(ignore|sum|mean)|(ignore|sum|mean).*shift|and|also|two")
def loss_shift2_and_sum(logits, tokens):  # combination: off by two AND a sum instead of a mean
    return _ce(logits[:, :-2], tokens[:, 2:], ignore_index=-1, reduction="sum")


@mistake(ex.check_loss, r"dim|axis|softmax|time")
def loss_log_softmax_over_time(logits, tokens):
    lp = F.log_softmax(logits[:, :-1], dim=1)
    return F.nll_loss(lp.reshape(-1, logits.size(-1)), tokens[:, 1:].reshape(-1), ignore_index=-1)


@mistake(ex.check_loss, r"count|denominator|mean|divide|all")
def loss_divides_by_all_positions(logits, tokens):  # sum over kept / number of all positions (B*(T-1))
    s = _ce(logits[:, :-1], tokens[:, 1:], ignore_index=-1, reduction="sum")
    return s / tokens[:, 1:].numel()


@valid(ex.check_loss)
def loss_valid_gather(logits, tokens):
    lp = logits[:, :-1].log_softmax(-1)
    t = tokens[:, 1:]
    keep = t != -1
    nll = -lp.gather(-1, t.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return nll[keep].mean()


@valid(ex.check_loss)
def loss_valid_logsumexp(logits, tokens):
    x, t = logits[:, :-1], tokens[:, 1:]
    keep = (t != -1).float()
    picked = x.gather(-1, t.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return ((torch.logsumexp(x, -1) - picked) * keep).sum() / keep.sum()


@valid(ex.check_loss)
def loss_valid_loop_rows(logits, tokens):
    total, n = 0.0, 0
    for b in range(logits.size(0)):
        t = tokens[b, 1:]
        keep = t != -1
        total = total + F.cross_entropy(logits[b, :-1][keep], t[keep], reduction="sum")
        n += int(keep.sum())
    return total / n


# ------------------------------------------------------------------------------------------ bigram
class _Bigram(nn.Module):
    def __init__(self, vocab_size):
        super().__init__()
        self.table = nn.Embedding(vocab_size, vocab_size)


def _bigram(fwd, name):
    return type(name, (_Bigram,), {"forward": fwd})


for _fwd, _rx, _name in [
    (lambda self, idx: self.table.weight.t()[idx], r"transpos|column", "bigram_transposed_table"),
    (lambda self, idx: self.table(idx).softmax(-1), r"softmax|prob", "bigram_softmax"),
    (lambda self, idx: self.table((idx + 1) % self.table.num_embeddings), r"offset|shift|index|\+ ?1",
     "bigram_index_plus_one"),
    (lambda self, idx: self.table(idx[:1]).expand(idx.size(0), -1, -1), r"first.*(row|batch)|batch|row",
     "bigram_first_row_for_all"),
    (lambda self, idx: self.table(idx) * 2, r"scale|factor|2", "bigram_doubled"),
    (lambda self, idx: self.table(idx.flip(1)), r"rever|flip|order|time", "bigram_time_reversed"),
    (lambda self, idx: self.table(idx).transpose(1, 2), r"shape|transpos|permute|layout|\(B, ?V, ?T\)",
     "bigram_returns_BVT"),
    (lambda self, idx: self.table(torch.cat([idx[:, :1], idx[:, :-1]], 1)), r"previous|shift|offset|lag",
     "bigram_previous_token"),
    (lambda self, idx: self.table(idx).cumsum(1) / torch.arange(1, idx.size(1) + 1).view(1, -1, 1),
     r"average|mean|context|cumul|previous", "bigram_running_mean"),
    (lambda self, idx: torch.cat([self.table(idx[:, :-1]), torch.zeros_like(self.table(idx[:, -1:]))], 1),
     r"last|position|zero", "bigram_last_position_zero"),
    (lambda self, idx: self.table(idx) - self.table.weight.mean(0), r"center|mean|subtract|normali|constant vector",
     "bigram_centred_by_column_mean"),  # judged fair: "off by a constant vector" is exactly the fact
    (lambda self, idx: self.table(idx) + (idx == 0).unsqueeze(-1) * 1.0, r"token ?0|id|partial",
     "bigram_token0_bumped"),
]:
    mistake(ex.check_bigram, _rx)(_bigram(_fwd, _name))


@mistake(ex.check_bigram, r"shape|size|vocab|V")
class bigram_table_too_narrow(nn.Module):  # (V, V-1) table
    def __init__(self, vocab_size):
        super().__init__()
        self.table = nn.Embedding(vocab_size, vocab_size - 1)

    def forward(self, idx):
        return self.table(idx)


valid(ex.check_bigram)(_bigram(lambda self, idx: F.embedding(idx, self.table.weight), "bigram_valid_F"))
valid(ex.check_bigram)(_bigram(lambda self, idx: F.one_hot(idx, self.table.num_embeddings).float()
                               @ self.table.weight, "bigram_valid_onehot"))
valid(ex.check_bigram)(_bigram(lambda self, idx: self.table.weight.index_select(0, idx.reshape(-1)).view(
    *idx.shape, -1), "bigram_valid_index_select"))


# ------------------------------------------------------------------------------------------ attention weights
def _aw(q, k, scale=None, diag=0, fill=float("-inf"), dim=-1):
    T, hs = q.size(1), q.size(-1)
    s = q @ k.transpose(-2, -1) / (math.sqrt(hs) if scale is None else scale)
    keep = torch.ones(T, T, dtype=torch.bool).tril(diag)
    return F.softmax(s.masked_fill(~keep, fill), dim=dim)


for _f, _rx, _name in [
    (lambda q, k: _aw(q, k, scale=math.sqrt(q.size(1))), r"sqrt\(?T|time|length|scale", "aw_scale_sqrt_T"),
    (lambda q, k: _aw(q, k, scale=q.size(-1) ** 0.25), r"scale|fourth|0\.25", "aw_scale_fourth_root"),
    (lambda q, k: _aw(q, k, scale=2 * math.sqrt(q.size(-1))), r"scale|factor|2", "aw_scale_twice_sqrt"),
    (lambda q, k: _aw(q, k, diag=2), r"mask.*(2|two|off|shift|diag)|diag|future", "aw_mask_diag_2"),
    (lambda q, k: _aw(q, k, fill=-10.0), r"fill|-10|finite|large|mask value", "aw_fill_minus_10"),
    (lambda q, k: _aw(q, k, dim=0), r"dim|axis|batch", "aw_softmax_over_batch"),
    (lambda q, k: _aw(k, q), r"transpos|q.?k|k @ q|order|swap", "aw_k_at_q"),  # "k @ q^T": fair
    (lambda q, k: _aw(q, k, scale=1.0, diag=1), r"(scale|sqrt).*(mask|diag)|(mask|diag).*(scale|sqrt)|and|also",
     "aw_no_scale_and_diag1"),
    (lambda q, k: _aw(q, k, scale=math.sqrt(q.size(-1)) / 2), r"scale|factor|temperature", "aw_scale_half"),
]:
    _f.__name__ = _name
    mistake(ex.check_attention_weights, _rx)(_f)


@mistake(ex.check_attention_weights, r"mask.*(batch|row)|first.*(row|batch)|batch")
def aw_mask_first_batch_row_only(q, k):
    T = q.size(1)
    s = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    s0 = s[:1].masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf"))
    return F.softmax(torch.cat([s0, s[1:]]), -1)


@mistake(ex.check_attention_weights, r"renormal|sum|after|mask.*softmax|softmax.*mask")
def aw_mask_after_softmax_no_renorm(q, k):
    T = q.size(1)
    p = F.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.size(-1)), -1)
    return p * torch.ones(T, T).tril()


@mistake(ex.check_attention_weights, r"max|stabil|column")
def aw_max_over_columns(q, k):  # subtracts each column's max (over queries), which changes the row softmax
    T = q.size(1)
    s = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    s = s.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf"))
    m = s.max(dim=-2, keepdim=True).values
    e = torch.exp(s - m)
    return e / e.sum(-1, keepdim=True)


@mistake(ex.check_attention_weights, r"diag|self|own|strict")
def aw_first_row_ok_rest_strict(q, k):  # cannot attend to itself except at t=0 (avoids NaN)
    T = q.size(1)
    keep = torch.ones(T, T, dtype=torch.bool).tril(-1)
    keep[0, 0] = True
    s = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    return F.softmax(s.masked_fill(~keep, float("-inf")), -1)


@valid(ex.check_attention_weights)
def aw_valid_exp_minus_max_additive(q, k):
    T = q.size(1)
    s = q @ k.transpose(-2, -1) * q.size(-1) ** -0.5
    s = s + torch.full((T, T), float("-inf")).triu(1)
    e = torch.exp(s - s.max(-1, keepdim=True).values)
    return e / e.sum(-1, keepdim=True)


@valid(ex.check_attention_weights)
def aw_valid_row_loop(q, k):
    B, T, hs = q.shape
    out = torch.zeros(B, T, T, dtype=q.dtype)
    for t in range(T):
        out[:, t, : t + 1] = F.softmax(q[:, t : t + 1] @ k[:, : t + 1].transpose(-2, -1) / math.sqrt(hs), -1)[:, 0]
    return out


@valid(ex.check_attention_weights)
def aw_valid_mask_then_renorm(q, k):  # mask after the softmax, then renormalise: equal
    T = q.size(1)
    p = F.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.size(-1)) - q.new_zeros(1), -1)
    p = p * torch.ones(T, T).tril()
    return p / p.sum(-1, keepdim=True)


@valid(ex.check_attention_weights)
def aw_valid_fill_minus_1e9(q, k):
    return _aw(q, k, fill=-1e9)


import heldout_probe_round21_core2  # noqa: E402,F401
