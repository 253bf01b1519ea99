"""The held-out probe, round 19, core part: the nine model checkers (loss, bigram, attention weights, attention,
LayerNorm, MLP, Block, embedding, GPT), written without reading the checkers, guessing the grader's own categories
(activation choice and hand-written GELU constants, unregistered parameters, Block data flow, position ids, loss
slicing / averaging / axis, probabilities returned, ignore index, output shape and dtype, reshape vs transpose),
in new surface forms, plus valid unusual implementations. Files: this one (loss, bigram, attention weights),
_core2 (attention, LayerNorm, MLP), _core3 (Block, embedding, GPT), _core4 (subtler slips and double slips),
_core5 (subtler GPT slips), imported in that chain.

Untuned (before any checker change; regexes widened only where the name was right in other words, commented):
    checker                   mistakes caught named misnamed   valid   crashes
    check_loss                      22     22    22      0      3/3       0
    check_bigram                    12     11    11      0      3/3       0
    check_attention_weights         15     15    14      0      3/3       0
    check_attention                 17     17    16      0      2/2       0
    check_layernorm                 15     15    13      0      2/3       0
    check_mlp                       16     16    16      0      1/1       0
    check_block                     15     15    15      0      3/3       0
    check_embedding                 13     13    13      0      3/3       0
    check_gpt                       18     18    18      0      3/3       0
    total                          143    142   138 (96.5 %) 0  23/24       0
Not caught: R19bBigramNoGrad (forward under torch.no_grad: same logits, no gradient).
Caught, not named: R19LNNotCentred (x / std, mean never subtracted), R19bLNSqrtOfStd (sqrt(std + eps)),
r19b_aw_exp_no_normalise (exp of the masked scores, never divided by the row sum), StudentAttention2 with q, k, v
interleaved per head in c_attn's output. Valid refused: R19bLNValidMoments (E[x^2] - E[x]^2, "three significant
digits" on small-variance inputs).

Tuned: 144 mistakes (R19bLNValidMoments moved to @mistake with a comment, as round 15's LNMeanSquares: E[x^2] - E[x]^2
cancels catastrophically in float32), 144 caught, 144 named (100 %), 0 misnamed, 23/23 valid, 0 crashes. Mechanisms:
the gradient check pairs a parameter named otherwise by its unique shape, and calls an output cut from the graph
(a no_grad forward) blocked (gradients.py); LayerNorm variants "mean not subtracted from x (only used for the
variance)" and "square root taken twice: sqrt(std + eps)" (layernorm.py); the attention-weights part "exp of the
scores without dividing by the row sum" (attention_weights.py); attention's q, k, v read interleaved per head or
channel by channel from c_attn (attention_mistakes.py). Rounds 1-18 unchanged.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import mingpt.exercises as ex
from heldout_probe_models import ROUND, mistake, valid
import heldout_probe_round18_post  # noqa: F401  (earlier rounds registered first)

ROUND[0] = 19


# ------------------------------------------------------------------------------------------ loss
@mistake(ex.check_loss, r"shift|align|offset")
def r19_loss_unshifted(logits, tokens):  # predicts the token it is looking at
    n_vocab = logits.shape[-1]
    return F.cross_entropy(logits.reshape(-1, n_vocab), tokens.reshape(-1), ignore_index=-1)


@mistake(ex.check_loss, r"shift|direction|revers|align")
def r19_loss_shift_backwards(logits, tokens):  # logits of t+1 predict token t
    flat = logits[:, 1:, :].flatten(0, 1)
    return F.cross_entropy(flat, tokens[:, :-1].flatten(), ignore_index=-1)


@mistake(ex.check_loss, r"ignore")
def r19_loss_no_ignore(logits, tokens):
    preds, targ = logits[:, :-1], tokens[:, 1:]
    return F.cross_entropy(preds.reshape(-1, preds.size(-1)), targ.reshape(-1))


@mistake(ex.check_loss, r"ignore|mask|mean|averag|count|denominator")
def r19_loss_mean_over_all(logits, tokens):  # zeroes the ignored terms but divides by every position
    logp = torch.log_softmax(logits[:, :-1], dim=-1)
    tgt = tokens[:, 1:]
    keep = tgt != -1
    picked = logp.gather(-1, tgt.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return -(picked * keep).mean()


@mistake(ex.check_loss, r"axis|dim|softmax")
def r19_loss_logsoftmax_time_axis(logits, tokens):
    logp = F.log_softmax(logits, dim=1)[:, :-1]
    tgt = tokens[:, 1:]
    return F.nll_loss(logp.reshape(-1, logp.shape[-1]), tgt.reshape(-1), ignore_index=-1)


@mistake(ex.check_loss, r"sum|mean|reduc")
def r19_loss_summed(logits, tokens):
    V = logits.size(-1)
    return F.cross_entropy(logits[:, :-1].reshape(-1, V), tokens[:, 1:].reshape(-1), ignore_index=-1,
                           reduction="sum")


@mistake(ex.check_loss, r"ignore")
def r19_loss_ignores_zero(logits, tokens):  # ignore_index=0: skips token id 0 and tries to score -1
    V = logits.size(-1)
    tgt = tokens[:, 1:].masked_fill(tokens[:, 1:] == -1, 0)
    return F.cross_entropy(logits[:, :-1].reshape(-1, V), tgt.reshape(-1), ignore_index=0)


@mistake(ex.check_loss, r"log|base|bits|ln 2|log2")
def r19_loss_in_bits(logits, tokens):
    V = logits.size(-1)
    nats = F.cross_entropy(logits[:, :-1].reshape(-1, V), tokens[:, 1:].reshape(-1), ignore_index=-1)
    return nats / math.log(2)


@mistake(ex.check_loss, r"row|sequence|per.?seq|mean|averag|weight")
def r19_loss_mean_of_row_means(logits, tokens):  # each sequence weighted equally, whatever its number of targets
    rows = []
    for b in range(logits.size(0)):
        t = tokens[b, 1:]
        rows.append(F.cross_entropy(logits[b, :-1], t, ignore_index=-1))
    return torch.stack(rows).mean()


@mistake(ex.check_loss, r"log_softmax|softmax|nll|raw|normali")
def r19_loss_nll_on_raw_logits(logits, tokens):
    V = logits.size(-1)
    return F.nll_loss(logits[:, :-1].reshape(-1, V), tokens[:, 1:].reshape(-1), ignore_index=-1)


@mistake(ex.check_loss, r"shape|scalar|reduc")
def r19_loss_per_token(logits, tokens):
    V = logits.size(-1)
    return F.cross_entropy(logits[:, :-1].reshape(-1, V), tokens[:, 1:].reshape(-1), ignore_index=-1,
                           reduction="none")


@mistake(ex.check_loss, r"softmax|prob|twice|double")
def r19_loss_softmax_first(logits, tokens):
    probs = logits.softmax(-1)
    return F.cross_entropy(probs[:, :-1].transpose(1, 2), tokens[:, 1:], ignore_index=-1)


@mistake(ex.check_loss, r"transpos|axis|dim|class|flatten|order")  # widened: "flattened in different orders" is this
def r19_loss_wrong_class_axis(logits, tokens):  # cross_entropy wants (N, V, T): the student passes (N, T, V)^T wrong
    return F.cross_entropy(logits[:, :-1].transpose(0, 1).reshape(-1, logits.size(-1)),
                           tokens[:, 1:].reshape(-1), ignore_index=-1)


@valid(ex.check_loss)
def r19_loss_valid_logsumexp(logits, tokens):
    x, y = logits[:, :-1], tokens[:, 1:]
    ok = y.ne(-1)
    score = x.gather(2, y.clamp_min(0)[..., None])[..., 0]
    nll = torch.logsumexp(x, dim=2) - score
    return nll[ok].sum() / ok.sum()


@valid(ex.check_loss)
def r19_loss_valid_class_dim(logits, tokens):  # (B, V, T-1) layout that cross_entropy accepts
    return F.cross_entropy(logits[:, :-1].permute(0, 2, 1), tokens[:, 1:], ignore_index=-1)


# ------------------------------------------------------------------------------------------ bigram
class R19BigramProbs(nn.Module):
    def __init__(self, vocab_size):
        super().__init__()
        self.counts = nn.Embedding(vocab_size, vocab_size)

    def forward(self, idx):
        return torch.softmax(self.counts(idx), dim=-1)


mistake(ex.check_bigram, r"prob|softmax")(R19BigramProbs)


@mistake(ex.check_bigram, r"log")
class R19BigramLogProbs(nn.Module):
    def __init__(self, vocab_size):
        super().__init__()
        self.lookup = nn.Embedding(vocab_size, vocab_size)

    def forward(self, idx):
        return F.log_softmax(self.lookup(idx), -1)


@mistake(ex.check_bigram, r"param|regist")
class R19BigramPlainTensor(nn.Module):
    def __init__(self, vocab_size):
        super().__init__()
        self.W = torch.randn(vocab_size, vocab_size) * 0.01  # a plain tensor: no parameter, never trained

    def forward(self, idx):
        return self.W[idx]


@mistake(ex.check_bigram, r"super|init")
class R19BigramNoSuper(nn.Module):
    def __init__(self, vocab_size):
        self.table = nn.Parameter(torch.zeros(vocab_size, vocab_size))

    def forward(self, idx):
        return self.table[idx]


@mistake(ex.check_bigram, r"transpos|column|row")
class R19BigramColumns(nn.Module):
    def __init__(self, vocab_size):
        super().__init__()
        self.logit_table = nn.Parameter(torch.randn(vocab_size, vocab_size))

    def forward(self, idx):
        return self.logit_table.t()[idx]


@mistake(ex.check_bigram, r"shape|flat|view")
class R19BigramFlat(nn.Module):
    def __init__(self, vocab_size):
        super().__init__()
        self.emb = nn.Embedding(vocab_size, vocab_size)

    def forward(self, idx):
        return self.emb(idx).view(-1, self.emb.num_embeddings)


@mistake(ex.check_bigram, r"shape|dim|unsqueeze|extra")
class R19BigramExtraDim(nn.Module):
    def __init__(self, vocab_size):
        super().__init__()
        self.emb = nn.Embedding(vocab_size, vocab_size)

    def forward(self, idx):
        return self.emb(idx.unsqueeze(-1))  # (B, T, 1, V)


@mistake(ex.check_bigram, r"dtype|double|float64")
class R19BigramDouble(nn.Module):
    def __init__(self, vocab_size):
        super().__init__()
        self.table = nn.Parameter(torch.zeros(vocab_size, vocab_size, dtype=torch.float64))

    def forward(self, idx):
        return self.table[idx]


@valid(ex.check_bigram)
class R19BigramOneHot(nn.Module):
    def __init__(self, vocab_size):
        super().__init__()
        self.vocab_size = vocab_size
        self.W = nn.Parameter(torch.randn(vocab_size, vocab_size) * 0.02)

    def forward(self, idx):
        return F.one_hot(idx, self.vocab_size).to(self.W.dtype) @ self.W


@valid(ex.check_bigram)
class R19BigramFunctional(nn.Module):
    def __init__(self, vocab_size):
        super().__init__()
        self.register_parameter("next_logits", nn.Parameter(torch.zeros(vocab_size, vocab_size)))

    def forward(self, idx):
        return F.embedding(idx, self.next_logits)


# ------------------------------------------------------------------------------------------ attention weights
def _causal(T, device=None):
    return torch.tril(torch.ones(T, T, dtype=torch.bool, device=device))


@mistake(ex.check_attention_weights, r"axis|dim|query|column")
def r19_aw_softmax_queries(q, k):
    s = q @ k.transpose(1, 2) / q.shape[-1] ** 0.5
    s = s.masked_fill(~_causal(q.shape[1], q.device), float("-inf"))
    return s.softmax(dim=1)


@mistake(ex.check_attention_weights, r"scale|sqrt")
def r19_aw_divide_by_hs(q, k):
    s = torch.einsum("bqd,bkd->bqk", q, k) / q.size(-1)
    return torch.softmax(s.masked_fill(~_causal(q.size(1), q.device), -math.inf), dim=-1)


@mistake(ex.check_attention_weights, r"scale|sqrt")
def r19_aw_unscaled(q, k):
    s = torch.bmm(q, k.transpose(1, 2))
    return torch.softmax(s.masked_fill(~_causal(q.size(1), q.device), -math.inf), dim=-1)


@mistake(ex.check_attention_weights, r"mask|causal|future|upper|transpos|anti")
def r19_aw_triu(q, k):  # keeps the future, hides the past
    T = q.size(1)
    s = q @ k.mT / math.sqrt(q.size(-1))
    keep = torch.ones(T, T, dtype=torch.bool, device=q.device).triu()
    return torch.softmax(s.masked_fill(~keep, float("-inf")), dim=-1)


@mistake(ex.check_attention_weights, r"mask|fill|zero")
def r19_aw_fill_zero(q, k):
    T = q.size(1)
    s = q @ k.mT / math.sqrt(q.size(-1))
    return F.softmax(s.masked_fill(~_causal(T, q.device), 0.0), dim=-1)


@mistake(ex.check_attention_weights, r"mask|after|renorm|order|normali")
def r19_aw_mask_after_softmax(q, k):
    T = q.size(1)
    w = F.softmax(q @ k.mT / math.sqrt(q.size(-1)), dim=-1)
    return w * _causal(T, q.device)


@mistake(ex.check_attention_weights, r"diag|self|strict")
def r19_aw_strict_past(q, k):  # a token may not attend to itself (row 0 then NaN)
    T = q.size(1)
    s = q @ k.mT / math.sqrt(q.size(-1))
    keep = torch.ones(T, T, device=q.device).tril(diagonal=-1).bool()
    return F.softmax(s.masked_fill(~keep, float("-inf")), dim=-1)


@mistake(ex.check_attention_weights, r"transpos|k\W*q|q\W*k|key|order|swap")  # widened: "k @ q^T"
def r19_aw_keys_times_queries(q, k):
    T = q.size(1)
    s = k @ q.transpose(-2, -1) / math.sqrt(q.size(-1))
    return F.softmax(s.masked_fill(~_causal(T, q.device), float("-inf")), dim=-1)


@mistake(ex.check_attention_weights, r"scale|sqrt|length|\bT\b")
def r19_aw_sqrt_T(q, k):
    T = q.size(1)
    s = q @ k.mT / math.sqrt(T)
    return F.softmax(s.masked_fill(~_causal(T, q.device), float("-inf")), dim=-1)


@mistake(ex.check_attention_weights, r"log")
def r19_aw_log_weights(q, k):
    T = q.size(1)
    s = q @ k.mT / math.sqrt(q.size(-1))
    return F.log_softmax(s.masked_fill(~_causal(T, q.device), float("-inf")), dim=-1)


@mistake(ex.check_attention_weights, r"shape|dim|extra|head")
def r19_aw_head_dim(q, k):  # keeps a head axis: (B, 1, T, T)
    T = q.size(1)
    s = (q @ k.mT / math.sqrt(q.size(-1))).unsqueeze(1)
    return F.softmax(s.masked_fill(~_causal(T, q.device), float("-inf")), dim=-1)


@valid(ex.check_attention_weights)
def r19_aw_valid_where(q, k):
    B, T, hs = q.shape
    scores = torch.einsum("btd,bsd->bts", q, k) * hs ** -0.5
    i = torch.arange(T, device=q.device)
    scores = torch.where(i[None, :] <= i[:, None], scores, torch.finfo(scores.dtype).min)
    return scores.softmax(-1)


@valid(ex.check_attention_weights)
def r19_aw_valid_loop(q, k):  # row by row: softmax over the visible prefix, zeros after it
    B, T, hs = q.shape
    out = q.new_zeros(B, T, T)
    for t in range(T):
        row = (q[:, t:t + 1] @ k[:, :t + 1].transpose(1, 2)).squeeze(1) / math.sqrt(hs)
        out[:, t, :t + 1] = torch.softmax(row, dim=-1)
    return out


import heldout_probe_round19_core2  # noqa: E402,F401  (this part's second file: more rows, registered after these)
