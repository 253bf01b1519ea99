"""The held-out probe, round 19, core part, fourth file: subtler slips and double slips, all nine checkers."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import mingpt.exercises as ex
from heldout_probe_models import mistake, valid
from heldout_probe_round19_core2 import R19LN, R19Attn, R19MLPSeq
from heldout_probe_round19_core3 import R19Block, R19Emb


def _xent(x, y, **kw):
    return F.cross_entropy(x.reshape(-1, x.size(-1)), y.reshape(-1), **kw)


# ------------------------------------------------------------------------------------------ loss
@mistake(ex.check_loss, r"smooth")
def r19b_loss_label_smoothing(logits, tokens):
    return _xent(logits[:, :-1], tokens[:, 1:], ignore_index=-1, label_smoothing=0.1)


@mistake(ex.check_loss, r"last|only|position")
def r19b_loss_last_position(logits, tokens):  # scores only the prediction after the last-but-one token
    return F.cross_entropy(logits[:, -2], tokens[:, -1], ignore_index=-1)


@mistake(ex.check_loss, r"shift|align|first|drop|slice")
def r19b_loss_same_slice(logits, tokens):  # slices both the same way: no shift at all
    return _xent(logits[:, 1:], tokens[:, 1:], ignore_index=-1)


@mistake(ex.check_loss, r"axis|dim|batch")
def r19b_loss_softmax_batch_axis(logits, tokens):
    logp = logits.log_softmax(dim=0)
    return F.nll_loss(logp[:, :-1].reshape(-1, logp.size(-1)), tokens[:, 1:].reshape(-1), ignore_index=-1)


@mistake(ex.check_loss, r"item|tensor|float|type|grad")
def r19b_loss_item(logits, tokens):
    return _xent(logits[:, :-1], tokens[:, 1:], ignore_index=-1).item()


@mistake(ex.check_loss, r"shape|keepdim|scalar|dim")
def r19b_loss_keepdim(logits, tokens):
    V = logits.size(-1)
    per = F.cross_entropy(logits[:, :-1].reshape(-1, V), tokens[:, 1:].reshape(-1), ignore_index=-1,
                          reduction="none").view(tokens.size(0), -1)
    n = (tokens[:, 1:] != -1).sum()
    return per.sum(dim=(0, 1), keepdim=True) / n


@mistake(ex.check_loss, r"dtype|double|float64|precision")
def r19b_loss_double(logits, tokens):
    return _xent(logits.double()[:, :-1], tokens[:, 1:], ignore_index=-1)


@mistake(ex.check_loss, r"grad|detach")
def r19b_loss_detached(logits, tokens):
    return _xent(logits.detach()[:, :-1], tokens[:, 1:], ignore_index=-1)


@mistake(ex.check_loss, r"shift|ignore|mask")  # double slip: unshifted and the ignored targets kept (as class 0)
def r19b_loss_unshifted_clamped(logits, tokens):
    return _xent(logits, tokens.clamp(min=0))


@valid(ex.check_loss)
def r19b_loss_valid_loop(logits, tokens):  # a plain Python loop over kept positions
    total, count = logits.new_zeros(()), 0
    B, T, V = logits.shape
    for b in range(B):
        for t in range(T - 1):
            y = int(tokens[b, t + 1])
            if y == -1:
                continue
            total = total - torch.log_softmax(logits[b, t], dim=0)[y]
            count += 1
    return total / count


# ------------------------------------------------------------------------------------------ bigram
@mistake(ex.check_bigram, r"shape|drop|last|slice|length")
class R19bBigramDropsLast(nn.Module):
    def __init__(self, vocab_size):
        super().__init__()
        self.t = nn.Embedding(vocab_size, vocab_size)

    def forward(self, idx):
        return self.t(idx[:, :-1])  # "the last token has no target"


@mistake(ex.check_bigram, r"tuple|return")
class R19bBigramTuple(nn.Module):
    def __init__(self, vocab_size):
        super().__init__()
        self.t = nn.Embedding(vocab_size, vocab_size)

    def forward(self, idx):
        return self.t(idx), None


@mistake(ex.check_bigram, r"regist|param|list")
class R19bBigramList(nn.Module):
    def __init__(self, vocab_size):
        super().__init__()
        self.parts = [nn.Embedding(vocab_size, vocab_size)]

    def forward(self, idx):
        return self.parts[0](idx)


@mistake(ex.check_bigram, r"grad|detach|no_grad|train")
class R19bBigramNoGrad(nn.Module):
    def __init__(self, vocab_size):
        super().__init__()
        self.t = nn.Embedding(vocab_size, vocab_size)

    def forward(self, idx):
        with torch.no_grad():
            return self.t(idx)


@valid(ex.check_bigram)
class R19bBigramValidIndexSelect(nn.Module):
    def __init__(self, vocab_size):
        super().__init__()
        self.table = nn.Parameter(torch.zeros(vocab_size, vocab_size))

    def forward(self, idx):
        return self.table.index_select(0, idx.flatten()).view(*idx.shape, -1)


# ------------------------------------------------------------------------------------------ attention weights
def _tril(T, dev):
    return torch.ones(T, T, device=dev).tril().bool()


@mistake(ex.check_attention_weights, r"scal|after|order")
def r19b_aw_scale_after_softmax(q, k):
    T = q.size(1)
    w = torch.softmax((q @ k.mT).masked_fill(~_tril(T, q.device), float("-inf")), dim=-1)
    return w / math.sqrt(q.size(-1))


@mistake(ex.check_attention_weights, r"axis|dim|scal")  # double slip: softmax over queries, unscaled
def r19b_aw_two_slips(q, k):
    T = q.size(1)
    return torch.softmax((q @ k.mT).masked_fill(~_tril(T, q.device), float("-inf")), dim=-2)


@mistake(ex.check_attention_weights, r"transpos")
def r19b_aw_returns_transpose(q, k):
    T = q.size(1)
    w = torch.softmax((q @ k.mT / math.sqrt(q.size(-1))).masked_fill(~_tril(T, q.device), float("-inf")), -1)
    return w.transpose(1, 2)


@mistake(ex.check_attention_weights, r"exp|normali|softmax|sum")
def r19b_aw_exp_no_normalise(q, k):  # exp of the scores, never divided by the row sum
    T = q.size(1)
    return torch.exp((q @ k.mT / math.sqrt(q.size(-1))).masked_fill(~_tril(T, q.device), float("-inf")))


@valid(ex.check_attention_weights)
def r19b_aw_valid_big_negative(q, k):  # -1e9 instead of -inf: exp underflows to exactly 0 in float32
    T = q.size(1)
    s = q @ k.mT / math.sqrt(q.size(-1))
    return torch.softmax(s.masked_fill(~_tril(T, q.device), -1e9), dim=-1)


# ------------------------------------------------------------------------------------------ attention (module)
def attn_with(**methods):
    return type("StudentAttention2", (R19Attn,), methods)


mistake(ex.check_attention, r"split|layout|interleav|order|head")(attn_with(  # q|k|v interleaved per head
    qkv=lambda self, x: self.c_attn(x).view(*x.shape[:2], self.heads, 3 * (x.size(-1) // self.heads)).split(
        x.size(-1) // self.heads, dim=-1)[0:3] and tuple(
        t.reshape(*x.shape[:2], x.size(-1)) for t in self.c_attn(x).view(
            *x.shape[:2], self.heads, 3 * (x.size(-1) // self.heads)).split(x.size(-1) // self.heads, dim=-1))))
mistake(ex.check_attention, r"split|head|order|reshape|view")(attn_with(  # (B, T, hs, nh) instead of (B, T, nh, hs)
    split_heads=lambda self, t, B, T, C: t.view(B, T, C // self.heads, self.heads).permute(0, 3, 1, 2)))
mistake(ex.check_attention, r"reshape|view|transpos|head|split|scal")(attn_with(  # double: reshape split, unscaled
    split_heads=lambda self, t, B, T, C: t.reshape(B, self.heads, T, C // self.heads),
    scores=lambda self, q, k: q @ k.transpose(-2, -1)))
mistake(ex.check_attention, r"scal|sqrt|hs|head")(attn_with(
    scores=lambda self, q, k: q @ k.transpose(-2, -1) / q.size(-1)))


@mistake(ex.check_attention, r"scal|value|v\b")
class R19bAttnScalesValues(R19Attn):  # the 1/sqrt(hs) lands on v
    def forward(self, x, kv_cache=None):
        B, T, C = x.shape
        q, k, v = (self.split_heads(t, B, T, C) for t in self.qkv(x))
        w = torch.softmax(self.mask(q @ k.transpose(-2, -1)), dim=-1)
        return self.c_proj(self.merge_heads(w @ (v / math.sqrt(v.size(-1))), B, T, C))


@mistake(ex.check_attention, r"super|init")
class R19bAttnNoSuper(R19Attn):
    def __init__(self, config, layer_idx=0):
        self.heads = config.n_head
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)


@mistake(ex.check_attention, r"bias")
class R19bAttnNoBias(R19Attn):
    def __init__(self, config, layer_idx=0):
        super().__init__(config, layer_idx)
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=False)


# ------------------------------------------------------------------------------------------ LayerNorm
@mistake(ex.check_layernorm, r"axis|axes|dim")  # widened: "the wrong axes (time and channels)"
class R19bLNAllAxes(R19LN):
    def forward(self, x):
        dims = tuple(range(1, x.dim()))
        mu = x.mean(dims, keepdim=True)
        var = x.var(dims, keepdim=True, unbiased=False)
        return (x - mu) / torch.sqrt(var + self.eps) * self.weight + self.bias


@mistake(ex.check_layernorm, r"init|zero|weight|gain")
class R19bLNZeroGain(nn.Module):
    def __init__(self, ndim, eps=1e-5, bias=True):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.zeros(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim))

    def forward(self, x):
        return F.layer_norm(x, x.shape[-1:], self.weight, self.bias, self.eps)


@mistake(ex.check_layernorm, r"eps|sqrt|std")
class R19bLNSqrtOfStd(R19LN):  # sqrt(std + eps): the square root taken twice
    def forward(self, x):
        sd = x.std(-1, keepdim=True, unbiased=False)
        return (x - x.mean(-1, keepdim=True)) / torch.sqrt(sd + self.eps) * self.weight + self.bias


@mistake(ex.check_layernorm, r"dtype|double|float64")
class R19bLNDouble(R19LN):
    def forward(self, x):
        x = x.double()
        mu = x.mean(-1, keepdim=True)
        var = (x - mu).pow(2).mean(-1, keepdim=True)
        return (x - mu) / (var + self.eps).sqrt() * self.weight.double() + self.bias.double()


# written as valid; refused on the tiny-variance rows, rightly (as round 15's LNMeanSquares): E[x^2] - E[x]^2
# cancels catastrophically in float32 around a mean of 1, leaving about three significant digits
@mistake(ex.check_layernorm, r"precision|significant|unstable|cancel")
class R19bLNValidMoments(R19LN):  # var = E[x^2] - E[x]^2
    def forward(self, x):
        m1 = x.mean(-1, keepdim=True)
        m2 = (x * x).mean(-1, keepdim=True)
        return (x - m1) / torch.sqrt(m2 - m1 * m1 + self.eps) * self.weight + self.bias


# ------------------------------------------------------------------------------------------ MLP
def mlp_act(fn):
    return type("StudentMLP2", (R19MLPSeq,), {"act": staticmethod(fn)})


mistake(ex.check_mlp, r"sigmoid|approx|1\.702|quick")(mlp_act(lambda h: h * torch.sigmoid(1.702 * h)))
mistake(ex.check_mlp, r"cube|x\^3|h\^3|x³|constant|square|power")(mlp_act(
    lambda h: 0.5 * h * (1 + torch.tanh(math.sqrt(2 / math.pi) * (h + 0.044715 * h * h)))))
mistake(ex.check_mlp, r"tanh")(mlp_act(nn.Tanh()))
mistake(ex.check_mlp, r"relu|leaky")(mlp_act(lambda h: F.leaky_relu(h, 0.01)))


@mistake(ex.check_mlp, r"bias")
class R19bMLPNoBias(R19MLPSeq):
    def __init__(self, config):
        super().__init__(config)
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=False)


@mistake(ex.check_mlp, r"residual|skip|input")
class R19bMLPResidual(R19MLPSeq):
    def forward(self, x):
        return x + self.c_proj(self.act(self.c_fc(x)))


# ------------------------------------------------------------------------------------------ Block
@mistake(ex.check_block, r"ln_1|norm|missing")
class R19bBlockNoLn1(R19Block):
    def forward(self, x, kv_cache=None):
        x = x + self.attn(x, kv_cache)
        return x + self.mlp(self.ln_2(x))


@mistake(ex.check_block, r"swap|ln_1|ln_2")
class R19bBlockNormsSwapped(R19Block):
    def forward(self, x, kv_cache=None):
        x = x + self.attn(self.ln_2(x), kv_cache)
        return x + self.mlp(self.ln_1(x))


@mistake(ex.check_block, r"residual|skip")
class R19bBlockNoAttnResidual(R19Block):
    def forward(self, x, kv_cache=None):
        x = self.attn(self.ln_1(x), kv_cache)
        return x + self.mlp(self.ln_2(x))


# double: parallel branches sharing ln_1 (GPT-J's wiring); widened: "ln_1 used for both, MLP reading the block's input"
@mistake(ex.check_block, r"parallel|ln_1 used for both.*input")
class R19bBlockParallelShared(R19Block):
    def forward(self, x, kv_cache=None):
        h = self.ln_1(x)
        return x + self.attn(h, kv_cache) + self.mlp(h)


@valid(ex.check_block)
class R19bBlockValidSequentialWrapper(nn.Module):  # attributes as the reference, residual wrapper class
    def __init__(self, config, layer_idx=0):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd)
        self.attn = CausalSelfAttentionShim(config, layer_idx)
        self.ln_2 = nn.LayerNorm(config.n_embd)
        self.mlp = MLPShim(config)

    def forward(self, x, kv_cache=None):
        x = torch.add(x, self.attn(self.ln_1(x), kv_cache))
        return torch.add(x, self.mlp(self.ln_2(x)))


from mingpt.model import MLP as MLPShim, CausalSelfAttention as CausalSelfAttentionShim  # noqa: E402


# ------------------------------------------------------------------------------------------ embedding
@mistake(ex.check_embedding, r"position|end|last|offset")
class R19bEmbPosFromEnd(R19Emb):
    def forward(self, idx):
        return self.wte(idx) + self.wpe.weight[-idx.size(1):]


@mistake(ex.check_embedding, r"swap|table|wte|wpe")
class R19bEmbTablesSwapped(R19Emb):
    def forward(self, idx):  # token ids into wpe, positions into wte
        pos = torch.arange(idx.size(1), device=idx.device)
        return self.wpe(idx) + self.wte(pos)


@mistake(ex.check_embedding, r"transpos|shape")
class R19bEmbTimeMajor(R19Emb):
    def forward(self, idx):
        pos = torch.arange(idx.size(1), device=idx.device)
        return self.wte(idx.t()) + self.wpe(pos)[:, None, :]


@mistake(ex.check_embedding, r"multipl|product|add|sum")
class R19bEmbMultiplied(R19Emb):
    def forward(self, idx):
        return self.wte(idx) * self.wpe(torch.arange(idx.size(1), device=idx.device))


@valid(ex.check_embedding)
class R19bEmbValidFullTableSlice(R19Emb):
    def forward(self, idx):
        every = self.wpe(torch.arange(self.wpe.num_embeddings, device=idx.device))
        return self.wte(idx) + every[: idx.size(1)]



import heldout_probe_round19_core5  # noqa: E402,F401  (subtler GPT slips)
