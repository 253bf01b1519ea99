"""The held-out probe, round 10 (the thirteen model checkers, w24e): written before reading the checkers' tables,
tests/mistakes_*.py or the earlier rounds' mistakes (only the exercise docstrings, the reference code and the probe's
registration API), as students of ARENA's chapter 1, Karpathy's zero-to-hero and CS336's assignment 1 slip: masks off
by one, sums for means, the wrong axis, .view on a transposed tensor, scaling twice or not at all, the wrong
sub-module, returning probabilities, and about one row in five with two slips at once (their regex asks for both
names). Untuned: 93 of 93 caught, 75 named by these regexes and 80 by judgment (five regexes were too narrow for a
right name: "returned the wrong type" for a tuple, "wrong scaling factor", "positions looked up by token id", "wrong
position vectors", "weights used as (in, out)"; widened since), 1 named in part (two slips, one named), 0 misnamed,
27 of 27 valid passed, no checker crash; then 93 of 93 named by pairs of knobs (rotary, SwiGLU, GPT, embedding,
attention's off-by-one mask), a few table rows, torch's non-contiguous .view error named in checking.crashed
and LayerNorm's crash without keepdim rebuilt.
The writer had seen round 1's Block rows (the `block` helper's neighbours) before writing. See heldout_probe.py."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import mingpt.exercises as ex
from mingpt.model import MLP

from heldout_probe_models import block, cls_with, gpt, mistake, trunk, valid
from heldout_probe_round8_models import both
from heldout_probe_round9_fresh import ROUND  # noqa: F401  (round 9 registered first)

ROUND[0] = 10


# ------------------------------------------------------------------------------------------ MLP
def mlp10(f):
    return cls_with(MLP, forward=f)


def _tanh_gelu(h):
    return 0.5 * h * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (h + 0.044715 * h.pow(3))))


def _gelu_no_linear_term(h):  # the "h +" inside the tanh forgotten
    return 0.5 * h * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * 0.044715 * h.pow(3)))


mistake(ex.check_mlp, r"residual|adds? (its|the) input|\+ x")(mlp10(lambda s, x: x + s.c_proj(s.gelu(s.c_fc(x)))))
mistake(ex.check_mlp, r"squared relu|relu.*squar|relu\^?2|relu²")(mlp10(lambda s, x: s.c_proj(F.relu(s.c_fc(x)) ** 2)))
mistake(ex.check_mlp, r"twice|two gelu|gelu.*gelu")(mlp10(lambda s, x: s.c_proj(s.gelu(s.gelu(s.c_fc(x))))))
mistake(ex.check_mlp, r"hand.*gelu|gelu.*(term|inside|formula)")(
    mlp10(lambda s, x: s.c_proj(_gelu_no_linear_term(s.c_fc(x)))))
mistake(ex.check_mlp, r"before c_fc|input|activation.*(first|before)")(
    mlp10(lambda s, x: s.c_proj(s.c_fc(s.gelu(x)))))
mistake(ex.check_mlp, both(r"exact", r"bias"))(mlp10(lambda s, x: s.c_proj(F.gelu(s.c_fc(x))) - s.c_proj.bias))
mistake(ex.check_mlp, both(r"relu", r"after c_proj|c_proj.*activation|activation after"))(
    mlp10(lambda s, x: F.relu(s.c_proj(s.c_fc(x)))))
valid(ex.check_mlp)(mlp10(lambda s, x: _tanh_gelu(x @ s.c_fc.weight.T + s.c_fc.bias) @ s.c_proj.weight.T
                          + s.c_proj.bias))
valid(ex.check_mlp)(mlp10(lambda s, x: F.linear(F.gelu(F.linear(x, s.c_fc.weight, s.c_fc.bias), approximate="tanh"),
                                                s.c_proj.weight, s.c_proj.bias)))


# ------------------------------------------------------------------------------------------ Block
mistake(ex.check_block, r"residual|twice|doubl|2 ?\*? ?x")(
    block(lambda s, x: (h := x + s.attn(s.ln_1(x))) + h + s.mlp(s.ln_2(h))))
mistake(ex.check_block, r"tuple|wrong type")(block(lambda s, x: ((h := x + s.attn(s.ln_1(x))) + s.mlp(s.ln_2(h)), h)))
mistake(ex.check_block, r"extra|output|final|after")(
    block(lambda s, x: s.ln_2((h := x + s.attn(s.ln_1(x))) + s.mlp(s.ln_2(h)))))
mistake(ex.check_block, both(r"ln_2|norm", r"residual"))(block(lambda s, x: (h := s.attn(s.ln_1(x))) + s.mlp(h)))
mistake(ex.check_block, r"swap|order|mlp first|before")(
    block(lambda s, x: (h := x + s.mlp(s.ln_1(x))) + s.attn(s.ln_2(h))))
mistake(ex.check_block, r"ln_2.*ln_1|swap|norms?.*(exchang|swap)")(
    block(lambda s, x: (h := x + s.attn(s.ln_2(x))) + s.mlp(s.ln_1(h))))
valid(ex.check_block)(block(lambda s, x: torch.add(h := torch.add(x, s.attn(s.ln_1(x))), s.mlp(s.ln_2(h)))))


# ------------------------------------------------------------------------------------------ attention
class Attn10(nn.Module):
    """An ARENA-style attention with knobs for the slips; defaults are right."""
    scale, mask_diag, fill, sm_dim, order, merge, proj, after = "hs", 0, "inf", -1, "qkv", "transpose", True, False

    def __init__(self, config, layer_idx=0):
        super().__init__()
        self.n_head, self.n_embd = config.n_head, config.n_embd
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)

    def forward(self, x):
        B, T, C = x.shape
        nh = self.n_head
        hs = C // nh
        a, b, c = self.c_attn(x).split(C, dim=2)
        q, k, v = {"qkv": (a, b, c), "kqv": (b, a, c), "qvk": (a, c, b)}[self.order]
        q, k, v = (t.view(B, T, nh, hs).transpose(1, 2) for t in (q, k, v))
        att = q @ k.transpose(-2, -1)
        att = att / {"hs": math.sqrt(hs), "C": math.sqrt(C), "none": 1.0, "hs2": hs}[self.scale]
        keep = torch.tril(torch.ones(T, T, dtype=torch.bool), diagonal=self.mask_diag)
        if not self.after:
            att = att.masked_fill(~keep, {"inf": float("-inf"), "1e9": -1e9, "zero": 0.0,
                                          "min": torch.finfo(att.dtype).min}[self.fill])
        att = att.softmax(dim=self.sm_dim)
        if self.after:
            att = att * keep
        y = att @ v
        y = {"transpose": lambda: y.transpose(1, 2).contiguous().view(B, T, C),
             "reshape": lambda: y.reshape(B, T, C),
             "view": lambda: y.transpose(1, 2).view(B, T, C)}[self.merge]()
        return self.c_proj(y) if self.proj else y


def attn10(**kw):
    return type("Student", (Attn10,), kw)


mistake(ex.check_attention, r"sqrt\(C\)|n_embd|C\b|scal")(attn10(scale="C"))
mistake(ex.check_attention, r"softmax|axis|dim|quer")(attn10(sm_dim=-2))
mistake(ex.check_attention, r"diagonal|itself|own|nan")(attn10(mask_diag=-1))
mistake(ex.check_attention, r"contiguous|view")(attn10(merge="view"))
mistake(ex.check_attention, r"transpose|merge|head|reshape")(attn10(merge="reshape"))
mistake(ex.check_attention, r"order|split|q, k, v|swap")(attn10(order="kqv"))
mistake(ex.check_attention, r"c_proj|projection")(attn10(proj=False))
mistake(ex.check_attention, r"zero|0 instead|mask.*0|-inf")(attn10(fill="zero"))
mistake(ex.check_attention, r"after.*softmax|renormal")(attn10(after=True))
mistake(ex.check_attention, both(r"scal|sqrt", r"softmax|axis|dim"))(attn10(scale="none", sm_dim=-2))
mistake(ex.check_attention, both(r"scal|hs\b|sqrt", r"next|future|ahead|diagonal|mask"))(
    attn10(scale="hs2", mask_diag=1))
valid(ex.check_attention)(attn10(fill="1e9"))
valid(ex.check_attention)(attn10(fill="min"))


class EinsumAttn(Attn10):
    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).chunk(3, dim=-1)
        q, k, v = (t.reshape(B, T, self.n_head, -1) for t in (q, k, v))
        s = torch.einsum("bqhd,bkhd->bhqk", q, k) / q.size(-1) ** 0.5
        s = torch.where(torch.ones(T, T).tril().bool(), s, torch.tensor(float("-inf")))
        e = (s - s.amax(-1, keepdim=True)).exp()
        y = torch.einsum("bhqk,bkhd->bqhd", e / e.sum(-1, keepdim=True), v)
        return self.c_proj(y.reshape(B, T, C))


class SdpaAttn10(Attn10):
    def forward(self, x):
        B, T, C = x.shape
        q, k, v = (t.unflatten(-1, (self.n_head, -1)).permute(0, 2, 1, 3) for t in self.c_attn(x).split(C, -1))
        return self.c_proj(F.scaled_dot_product_attention(q, k, v, is_causal=True).permute(0, 2, 1, 3).flatten(2))


valid(ex.check_attention)(EinsumAttn)
valid(ex.check_attention)(SdpaAttn10)


# ------------------------------------------------------------------------------------------ attention weights
def _aw(q, k, scale=None, dim=-1, diag=0, swap=False, log=False, mask=True):
    s = (k @ q.transpose(-2, -1)) if swap else (q @ k.transpose(-2, -1))
    s = s / (math.sqrt(q.size(-1)) if scale is None else scale(q))
    T = q.size(1)
    if mask:
        s = s.masked_fill(~torch.tril(torch.ones(T, T, dtype=torch.bool), diagonal=diag), float("-inf"))
    return s.log_softmax(dim) if log else s.softmax(dim)


mistake(ex.check_attention_weights, r"quer|axis|dim|column|softmax")(lambda q, k: _aw(q, k, dim=1))
mistake(ex.check_attention_weights, r"sqrt\(T\)|\bT\b|length")(lambda q, k: _aw(q, k, scale=lambda q: q.size(1) ** .5))
mistake(ex.check_attention_weights, r"k.*q|transpos|order|swap")(lambda q, k: _aw(q, k, swap=True))
mistake(ex.check_attention_weights, r"next|ahead|diagonal|future|off.by")(lambda q, k: _aw(q, k, diag=1))
mistake(ex.check_attention_weights, r"log")(lambda q, k: _aw(q, k, log=True))
mistake(ex.check_attention_weights, both(r"scal|sqrt", r"mask|causal|future"))(
    lambda q, k: _aw(q, k, scale=lambda q: 1.0, mask=False))
mistake(ex.check_attention_weights, r"softmax|scores|before|normal")(
    lambda q, k: (q @ k.transpose(-2, -1) / q.size(-1) ** .5).masked_fill(
        ~torch.ones(q.size(1), q.size(1), dtype=torch.bool).tril(), 0.0))
valid(ex.check_attention_weights)(
    lambda q, k: (lambda s: (s - s.amax(-1, keepdim=True)).exp() / (s - s.amax(-1, keepdim=True)).exp().sum(
        -1, keepdim=True))(torch.einsum("bqd,bkd->bqk", q, k).mul(q.size(-1) ** -0.5).masked_fill(
            torch.ones(q.size(1), q.size(1), dtype=torch.bool).triu(1), torch.finfo(q.dtype).min)))


# ------------------------------------------------------------------------------------------ LayerNorm
class LN10(nn.Module):
    """A student's LayerNorm with knobs for the slips; defaults are right."""
    unbiased, eps_out, dim, swap, centre, fixed_eps, std = False, False, -1, False, True, None, False

    def __init__(self, ndim, eps=1e-5, bias=True):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None
        self.eps = eps

    def forward(self, x):
        eps = self.eps if self.fixed_eps is None else self.fixed_eps
        mu = x.mean(self.dim, keepdim=True) if self.centre else 0.0
        var = ((x - mu) ** 2).sum(self.dim, keepdim=True) / (x.size(self.dim) - self.unbiased)
        if self.std:
            xh = (x - mu) / (var.sqrt() + eps)
        else:
            xh = (x - mu) / (torch.sqrt(var) + eps if self.eps_out else torch.sqrt(var + eps))
        b = self.bias if self.bias is not None else 0.0
        return xh * b + self.weight if self.swap else xh * self.weight + b


def ln10(**kw):
    return type("Student", (LN10,), kw)


mistake(ex.check_layernorm, r"unbiased|n - 1|bessel")(ln10(unbiased=True))
mistake(ex.check_layernorm, r"eps.*(outside|sqrt)|sqrt")(ln10(std=True))
mistake(ex.check_layernorm, r"axis|dim|time|position")(ln10(dim=1))
mistake(ex.check_layernorm, r"swap|weight.*bias|bias.*weight")(ln10(swap=True))
mistake(ex.check_layernorm, r"mean|centr|rms")(ln10(centre=False))
mistake(ex.check_layernorm, r"eps|epsilon|1e-6")(ln10(fixed_eps=1e-6))
mistake(ex.check_layernorm, both(r"unbiased|n - 1", r"eps.*(outside|sqrt)|sqrt"))(ln10(unbiased=True, eps_out=True))


class LNNoKeepdim(LN10):
    def forward(self, x):
        mu = x.mean(-1)  # keepdim forgotten: (B, T) against (B, T, C)
        var = x.var(-1, unbiased=False)
        return (x - mu) / torch.sqrt(var + self.eps) * self.weight + self.bias


mistake(ex.check_layernorm, r"keepdim|broadcast|shape")(LNNoKeepdim)
valid(ex.check_layernorm)(cls_with(LN10, forward=lambda s, x: F.layer_norm(x, x.shape[-1:], s.weight, s.bias, s.eps)))
valid(ex.check_layernorm)(cls_with(LN10, forward=lambda s, x: (x - x.mean(-1, keepdim=True)) * torch.rsqrt(
    x.var(-1, keepdim=True, correction=0) + s.eps) * s.weight + s.bias))


# ------------------------------------------------------------------------------------------ embedding
class Emb10(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.block_size, config.n_embd)


def emb10(f):
    return cls_with(Emb10, forward=f)


def _pos(idx, start=0):
    return torch.arange(start, start + idx.size(1), device=idx.device)


mistake(ex.check_embedding, r"token ids?|idx|ids")(emb10(lambda s, idx: s.wte(idx) + s.wpe(idx)))
mistake(ex.check_embedding, r"cat|concat|shape|2 ?\*? ?C")(emb10(lambda s, idx: torch.cat(
    [s.wte(idx), s.wpe(_pos(idx)).expand(idx.size(0), -1, -1)], dim=-1)))
mistake(ex.check_embedding, r"multipl|product|\*")(emb10(lambda s, idx: s.wte(idx) * s.wpe(_pos(idx))))
mistake(ex.check_embedding, r"sqrt|scale")(emb10(lambda s, idx: s.wte(idx) * math.sqrt(s.wte.embedding_dim)
                                                + s.wpe(_pos(idx))))
mistake(ex.check_embedding, r"revers|end|backward")(
    emb10(lambda s, idx: s.wte(idx) + s.wpe(_pos(idx).flip(0))))
mistake(ex.check_embedding, r"from 1|off.by.one|start|shift|wrong position vectors")(
    emb10(lambda s, idx: s.wte(idx) + s.wpe(_pos(idx, 1).clamp(max=s.wpe.num_embeddings - 1))))
mistake(ex.check_embedding, both(r"position", r"sqrt|scale"))(
    emb10(lambda s, idx: s.wte(idx) * s.wte.embedding_dim ** 0.5))
valid(ex.check_embedding)(emb10(lambda s, idx: s.wte.weight[idx] + s.wpe.weight[: idx.size(1)]))
valid(ex.check_embedding)(emb10(lambda s, idx: F.embedding(idx, s.wte.weight) + F.embedding(
    _pos(idx)[None].expand_as(idx), s.wpe.weight)))


# ------------------------------------------------------------------------------------------ loss
def _ce(lg, tg, **kw):
    return F.cross_entropy(lg.reshape(-1, lg.size(-1)), tg.reshape(-1), **kw)


mistake(ex.check_loss, r"shift")(lambda lg, tk: _ce(lg, tk, ignore_index=-1))
mistake(ex.check_loss, r"wrong way|backward|revers|direction|previous")(
    lambda lg, tk: _ce(lg[:, 1:], tk[:, :-1], ignore_index=-1))
mistake(ex.check_loss, r"sum")(lambda lg, tk: _ce(lg[:, :-1], tk[:, 1:], ignore_index=-1, reduction="sum"))
mistake(ex.check_loss, r"ignore|-1")(lambda lg, tk: _ce(lg[:, :-1], tk[:, 1:]))
mistake(ex.check_loss, r"ignore|\b0\b")(lambda lg, tk: _ce(lg[:, :-1], tk[:, 1:], ignore_index=0))
mistake(ex.check_loss, r"row|sequence|per.*batch|each")(
    lambda lg, tk: torch.stack([_ce(lg[b, :-1], tk[b, 1:], ignore_index=-1) for b in range(lg.size(0))]).mean())
mistake(ex.check_loss, r"nll|softmax|probab")(
    lambda lg, tk: F.nll_loss(lg[:, :-1].softmax(-1).reshape(-1, lg.size(-1)), tk[:, 1:].reshape(-1),
                              ignore_index=-1))
mistake(ex.check_loss, r"contiguous|view")(
    lambda lg, tk: F.cross_entropy(lg[:, :-1].view(-1, lg.size(-1)), tk[:, 1:].view(-1), ignore_index=-1))
mistake(ex.check_loss, both(r"shift", r"sum"))(lambda lg, tk: _ce(lg, tk, ignore_index=-1, reduction="sum"))
valid(ex.check_loss)(lambda lg, tk: _ce(lg[:, :-1].log_softmax(-1), tk[:, 1:], ignore_index=-1))
valid(ex.check_loss)(lambda lg, tk: F.cross_entropy(lg[:, :-1].transpose(1, 2), tk[:, 1:], ignore_index=-1))


def _gather_loss(lg, tk):
    lp, tg = lg[:, :-1].log_softmax(-1), tk[:, 1:]
    keep = tg != -1
    nll = -lp.gather(-1, tg.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (nll * keep).sum() / keep.sum()


valid(ex.check_loss)(_gather_loss)


# ------------------------------------------------------------------------------------------ bigram
class Bigram10(nn.Module):
    def __init__(self, vocab_size):
        super().__init__()
        self.table = nn.Parameter(torch.randn(vocab_size, vocab_size))


def bigram10(f, base=Bigram10):
    return cls_with(base, forward=f)


mistake(ex.check_bigram, r"probab|softmax")(bigram10(lambda s, idx: s.table[idx].softmax(-1)))
mistake(ex.check_bigram, r"transpos|column")(bigram10(lambda s, idx: s.table.T[idx]))
mistake(ex.check_bigram, r"log")(bigram10(lambda s, idx: F.log_softmax(s.table[idx], dim=-1)))
mistake(ex.check_bigram, r"shape|flat|B ?\* ?T|\(B\*T")(bigram10(lambda s, idx: s.table[idx].view(-1, s.table.size(1))))
mistake(ex.check_bigram, r"softmax|axis|dim|probab")(bigram10(lambda s, idx: s.table.softmax(0)[idx]))
valid(ex.check_bigram)(bigram10(lambda s, idx: F.one_hot(idx, s.table.size(0)).float() @ s.table))


class BigramEmb(nn.Module):
    def __init__(self, vocab_size):
        super().__init__()
        self.token_embedding_table = nn.Embedding(vocab_size, vocab_size)

    def forward(self, idx):
        return self.token_embedding_table(idx)


valid(ex.check_bigram)(BigramEmb)


# ------------------------------------------------------------------------------------------ GPT
def _head(s, i, **kw):
    return s.lm_head(trunk(s, i, **kw))


def _trunk_rev(s, idx):
    tr = s.transformer
    x = tr.wte(idx) + tr.wpe(torch.arange(idx.size(1)))
    for b in reversed(tr.h):
        x = b(x)
    return s.lm_head(tr.ln_f(x))


def _trunk_first(s, idx):  # the loop variable unused: the first Block applied n_layer times
    tr = s.transformer
    x = tr.wte(idx) + tr.wpe(torch.arange(idx.size(1)))
    for _ in tr.h:
        x = tr.h[0](x)
    return s.lm_head(tr.ln_f(x))


class ZeroLossGPT(gpt(_head)):
    def forward(self, idx, targets=None, kv_cache=None):
        logits = _head(self, idx)
        loss = torch.tensor(0.0) if targets is None else _ce(logits, targets, ignore_index=-1)
        return logits, loss


mistake(ex.check_gpt, r"revers|order")(gpt(_trunk_rev))
mistake(ex.check_gpt, r"None|no targets|zero")(ZeroLossGPT)
mistake(ex.check_gpt, r"sum")(gpt(_head, lambda lg, tg: _ce(lg, tg, ignore_index=-1, reduction="sum")))
mistake(ex.check_gpt, both(r"ln_f|final", r"position"))(gpt(lambda s, i: _head(s, i, pos=False, ln_f=False)))
mistake(ex.check_gpt, both(r"probab|softmax", r"shift"))(
    gpt(lambda s, i: _head(s, i).softmax(-1), lambda lg, tg: _ce(lg[:, :-1], tg[:, 1:], ignore_index=-1)))
mistake(ex.check_gpt, r"repeat|same block|first block|h\[0\]|one block")(gpt(_trunk_first))
valid(ex.check_gpt)(gpt(_head, lambda lg, tg: F.cross_entropy(lg.transpose(1, 2), tg, ignore_index=-1)))
valid(ex.check_gpt)(gpt(lambda s, i: F.linear(trunk(s, i), s.transformer.wte.weight)))


# ------------------------------------------------------------------------------------------ RMSNorm
def _rms(x, w, eps, dim=-1, red="mean", eps_out=False, centre=False, sqrt=True, weight=True):
    if centre:
        x = x - x.mean(dim, keepdim=True)
    ms = x.pow(2).mean(dim, keepdim=True) if red == "mean" else x.pow(2).sum(dim, keepdim=True)
    d = (ms.sqrt() + eps if eps_out else (ms + eps).sqrt()) if sqrt else ms + eps
    return x / d * (w if weight else 1.0)


mistake(ex.check_rmsnorm, r"eps.*(outside|sqrt)|sqrt")(lambda x, w, eps: _rms(x, w, eps, eps_out=True))
mistake(ex.check_rmsnorm, r"mean|centr|layernorm")(lambda x, w, eps: _rms(x, w, eps, centre=True))
mistake(ex.check_rmsnorm, r"sum")(lambda x, w, eps: _rms(x, w, eps, red="sum"))
mistake(ex.check_rmsnorm, r"sqrt|square root|root")(lambda x, w, eps: _rms(x, w, eps, sqrt=False))
mistake(ex.check_rmsnorm, r"weight|gain|scale")(lambda x, w, eps: _rms(x, w, eps, weight=False))
mistake(ex.check_rmsnorm, r"axis|dim|time|position")(lambda x, w, eps: _rms(x, w, eps, dim=1))
mistake(ex.check_rmsnorm, both(r"sum", r"eps.*(outside|sqrt)|sqrt"))(
    lambda x, w, eps: _rms(x, w, eps, red="sum", eps_out=True))
valid(ex.check_rmsnorm)(lambda x, w, eps: x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w)
valid(ex.check_rmsnorm)(lambda x, w, eps: w * x / torch.sqrt(x.norm(dim=-1, keepdim=True) ** 2 / x.size(-1) + eps))


# ------------------------------------------------------------------------------------------ rotary
def _rot(x, start=0, theta=10000.0, pair="half", use_start=True, sign=1, freq="ok", axis=1, fixed_theta=None):
    hs = x.size(-1)
    th = theta if fixed_theta is None else fixed_theta
    i = torch.arange(0, hs, 2).float()
    inv = 1.0 / th ** ((i / hs) if freq == "ok" else (torch.arange(hs // 2).float() / hs))
    T = x.size(axis)
    pos = torch.arange(start if use_start else 0, (start if use_start else 0) + T).float()
    ang = torch.outer(pos, inv)  # (T, hs/2)
    shape = [1, 1, 1, hs // 2]
    shape[axis] = T
    cos, sin = ang.cos().view(shape), sign * ang.sin().view(shape)
    if pair == "half":
        a, b = x[..., : hs // 2], x[..., hs // 2:]
        return torch.cat([a * cos - b * sin, b * cos + a * sin], dim=-1)
    a, b = x[..., 0::2], x[..., 1::2]
    return torch.stack([a * cos - b * sin, b * cos + a * sin], dim=-1).flatten(-2)


mistake(ex.check_rotary, r"interleav|neighbour|2j|meta|pair")(lambda x, start, theta: _rot(x, start, theta, pair="il"))
mistake(ex.check_rotary, r"start|offset")(lambda x, start, theta: _rot(x, start, theta, use_start=False))
mistake(ex.check_rotary, r"sign|direction|clockwise|negat|invers|revers")(
    lambda x, start, theta: _rot(x, start, theta, sign=-1))
mistake(ex.check_rotary, r"frequenc|exponent|2i|inv_freq")(lambda x, start, theta: _rot(x, start, theta, freq="bad"))
mistake(ex.check_rotary, r"axis|head|time|dim")(lambda x, start, theta: _rot(x, start, theta, axis=2))
mistake(ex.check_rotary, r"theta|10000|base")(lambda x, start, theta: _rot(x, start, theta, fixed_theta=10000.0))
mistake(ex.check_rotary, both(r"start|offset", r"sign|direction|clockwise|negat|invers"))(
    lambda x, start, theta: _rot(x, start, theta, use_start=False, sign=-1))


def _rot_complex(x, start, theta):
    hs = x.size(-1)
    inv = 1.0 / theta ** (torch.arange(0, hs, 2).float() / hs)
    ang = torch.outer(torch.arange(start, start + x.size(1)).float(), inv)
    z = torch.complex(x[..., : hs // 2].float(), x[..., hs // 2:].float()) * torch.polar(torch.ones_like(ang), ang)[
        None, :, None, :]
    return torch.cat([z.real, z.imag], dim=-1).to(x.dtype)


valid(ex.check_rotary)(_rot_complex)
valid(ex.check_rotary)(lambda x, start, theta: _rot(x.double(), start, theta).to(x.dtype))


# ------------------------------------------------------------------------------------------ SwiGLU
def _sw(x, wg, wu, wd, act=F.silu, swap=False, after=False, add=False):
    g, u = F.linear(x, wg), F.linear(x, wu)
    if swap:
        g, u = u, g
    h = act(g * u) if after else (act(g) + u if add else act(g) * u)
    return F.linear(h, wd)


mistake(ex.check_swiglu, r"swap|gate.*up|up.*gate")(lambda x, g, u, d: _sw(x, g, u, d, swap=True))
mistake(ex.check_swiglu, r"gelu")(lambda x, g, u, d: _sw(x, g, u, d, act=F.gelu))
mistake(ex.check_swiglu, r"sigmoid")(lambda x, g, u, d: _sw(x, g, u, d, act=torch.sigmoid))
mistake(ex.check_swiglu, r"transpos|shape|\((out|in), (in|out)\)|layout")(
    lambda x, g, u, d: F.silu(x @ g) * (x @ u) @ d)
mistake(ex.check_swiglu, r"after|product|outside")(lambda x, g, u, d: _sw(x, g, u, d, after=True))
mistake(ex.check_swiglu, r"sum|add|\+")(lambda x, g, u, d: _sw(x, g, u, d, add=True))
mistake(ex.check_swiglu, both(r"swap|gate.*up|up.*gate", r"gelu"))(
    lambda x, g, u, d: _sw(x, g, u, d, act=F.gelu, swap=True))
valid(ex.check_swiglu)(lambda x, g, u, d: torch.einsum(
    "...h,ch->...c", (lambda a: a * torch.sigmoid(a))(torch.einsum("...c,hc->...h", x, g)) * (x @ u.T), d))
valid(ex.check_swiglu)(lambda x, g, u, d: (F.silu(x @ g.t()) * (x @ u.t())) @ d.t())


# ------------------------------------------------------------------------------------------ GQA
def _gqa(q, k, v, rep="interleave", scale=True, mask="ok", dim=-1):
    g = q.size(1) // k.size(1)
    if rep == "interleave":
        k, v = k.repeat_interleave(g, dim=1), v.repeat_interleave(g, dim=1)
    else:
        k, v = k.repeat(1, g, 1, 1), v.repeat(1, g, 1, 1)
    s = q @ k.transpose(-2, -1) / (math.sqrt(q.size(-1)) if scale else 1.0)
    T = q.size(2)
    if mask == "ok":
        s = s.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    elif mask == "polarity":
        s = s.masked_fill(torch.ones(T, T, dtype=torch.bool).tril(-1), float("-inf"))
    return s.softmax(dim) @ v


mistake(ex.check_gqa, r"tile|repeat|interleav|group")(lambda q, k, v: _gqa(q, k, v, rep="tile"))
mistake(ex.check_gqa, r"scal|sqrt")(lambda q, k, v: _gqa(q, k, v, scale=False))
mistake(ex.check_gqa, r"causal|mask")(lambda q, k, v: _gqa(q, k, v, mask="none"))
mistake(ex.check_gqa, r"polarity|future|triu|past|revers")(lambda q, k, v: _gqa(q, k, v, mask="polarity"))
mistake(ex.check_gqa, r"softmax|axis|dim|quer")(lambda q, k, v: _gqa(q, k, v, dim=-2))
mistake(ex.check_gqa, both(r"tile|repeat|interleav|group", r"scal|sqrt"))(
    lambda q, k, v: _gqa(q, k, v, rep="tile", scale=False))
valid(ex.check_gqa)(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True))
valid(ex.check_gqa)(lambda q, k, v: _gqa(q, k[:, :, None].expand(-1, -1, q.size(1) // k.size(1), -1, -1).flatten(1, 2),
                                         v[:, :, None].expand(-1, -1, q.size(1) // v.size(1), -1, -1).flatten(1, 2)))
