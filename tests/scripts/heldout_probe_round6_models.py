"""The held-out probe, round 6 (the model checkers and the modern parts): new kinds of mistakes, written after round
5's fixes and counted before any tuning for them. See heldout_probe.py."""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

import mingpt.exercises as ex

from heldout_probe_models import Emb, LN, block, cls_with, gpt, mistake, trunk, valid
from heldout_probe_round5_models import ROUND, Attn5, gqa5, mlp5, rope5

ROUND[0] = 6

# ------------------------------------------------------------------------------------------ MLP
for f, expect in [
    (lambda s, x: s.dropout(s.c_proj(s.gelu(s.c_fc(s.gelu(x))))), r"input|before c_fc|activation"),
    (lambda s, x: s.dropout(F.linear(s.gelu(s.c_fc(x)), s.c_proj.weight.T, s.c_proj.bias)), r"transpos|shape|weight"),
    (lambda s, x: s.dropout(s.c_proj(F.relu(s.c_fc(x)) ** 2)), r"squared|relu"),
    (lambda s, x: s.dropout(s.c_proj(s.gelu(s.c_fc(x))) + s.c_proj.bias), r"bias|twice"),
    (lambda s, x: s.dropout(s.c_proj(s.gelu(s.c_fc(x)))).sum(-1, keepdim=True), r"shape|sum|dimension"),
]:
    mistake(ex.check_mlp, expect)(mlp5(f))


# ------------------------------------------------------------------------------------------ attention
class Attn6(Attn5):
    """Round 6's knobs on the same plain attention."""
    knob6 = None

    def forward(self, x, kv_cache=None, attn_mask=None):
        B, T, C = x.shape
        nh, hs = self.n_head, C // self.n_head
        q, k, v = self.c_attn(x).split(C, dim=2)
        if self.knob6 == "v_is_x":
            v = x
        q, k, v = (t.view(B, T, nh, hs).transpose(1, 2) for t in (q, k, v))
        att = q @ k.transpose(-2, -1) / math.sqrt(T if self.knob6 == "sqrtT" else hs)
        keep = torch.ones(T, T, dtype=torch.bool).tril(1 if self.knob6 == "peek" else 0)
        att = att.masked_fill(~keep, float("-inf")).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        if self.knob6 == "proj_no_bias":
            return F.linear(y, self.c_proj.weight)
        if self.knob6 == "heads_mean":
            y = (att @ v).mean(1, keepdim=True).expand(-1, nh, -1, -1).transpose(1, 2).reshape(B, T, C)
        return self.resid_dropout(self.c_proj(y))


for knob, expect in [("v_is_x", r"value|v\b|projection"), ("sqrtT", r"scal|sqrt"),
                     ("peek", r"future|mask|leak|diagonal"), ("proj_no_bias", r"bias"),
                     ("heads_mean", r"head|mean|average")]:
    mistake(ex.check_attention, expect)(cls_with(Attn6, knob6=knob))


class FloatMaskAttn(Attn5):  # a float mask subtracted: exp(-1e4) is 0 in float32
    def forward(self, x, kv_cache=None, attn_mask=None):
        B, T, C = x.shape
        q, k, v = (t.view(B, T, self.n_head, -1).permute(0, 2, 1, 3) for t in self.c_attn(x).split(C, dim=2))
        att = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1)) - 1e4 * (1 - torch.ones(T, T).tril())
        return self.resid_dropout(self.c_proj((att.softmax(-1) @ v).permute(0, 2, 1, 3).reshape(B, T, C)))


valid(ex.check_attention)(FloatMaskAttn)


# ------------------------------------------------------------------------------------------ LayerNorm
def ln6(f):
    return cls_with(LN, forward=f)


def _c(x):
    return x - x.mean(-1, keepdim=True)


for f, expect in [
    (lambda s, x: _c(x) / _c(x).norm(dim=-1, keepdim=True).clamp(min=s.eps) * s.weight + s.bias,
     r"std|norm|sqrt|scal"),
    (lambda s, x: F.layer_norm(x * s.weight, x.shape[-1:], eps=s.eps) + s.bias, r"weight|order|before"),
    (lambda s, x: _c(x) / (_c(x).abs().mean(-1, keepdim=True) + s.eps) * s.weight + s.bias, r"std|abs|varian"),
    (lambda s, x: (F.layer_norm(x, x.shape[-1:], eps=s.eps) + s.bias) * s.weight, r"bias|order"),
    (lambda s, x: F.layer_norm(x, x.shape[-1:], s.weight, s.bias, s.eps).detach().double(), r"dtype|double|float"),
]:
    mistake(ex.check_layernorm, expect)(ln6(f))
valid(ex.check_layernorm)(ln6(lambda s, x: (lambda vm: (x - vm[1]) * (vm[0] + s.eps).rsqrt())(
    torch.var_mean(x, -1, unbiased=False, keepdim=True)) * s.weight + s.bias))


# ------------------------------------------------------------------------------------------ Block
for f, expect in [
    (lambda s, x: (h := x + s.ln_1(s.attn(x))) + s.ln_2(s.mlp(h)), r"norm|ln_1|output|branch|after"),
    (lambda s, x: x + s.attn(s.ln_1(x)) + s.mlp(s.ln_1(x)), r"input|stream|ln|parallel"),
    (lambda s, x: ((h := x + s.attn(s.ln_1(x))) + s.mlp(s.ln_2(h)), None), r"type|tuple|return"),
    (lambda s, x: (h := x + s.attn(s.ln_1(x))) + s.mlp(s.ln_2(h)) + s.attn(s.ln_1(x)), r"attn|twice|attention"),
    (lambda s, x: x + s.attn(s.ln_1(x)) + s.mlp(s.ln_2(s.attn(s.ln_1(x)))), r"mlp|input|stream|attention output"),
]:
    mistake(ex.check_block, expect)(block(f))


# ------------------------------------------------------------------------------------------ embedding
def emb6(f):
    return cls_with(Emb, forward=f)


for f, expect in [
    (lambda s, i: s.wte(i) + s.wpe.weight[i.shape[1] - 1], r"position|same|last"),
    (lambda s, i: s.wte(i.clamp(max=s.wte.num_embeddings - 2) + 1) + s.wpe(torch.arange(i.shape[1])),
     r"token id|ids|off|shift"),
    (lambda s, i: s.wte(i) + s.wpe.weight, r"position|shape|slice|block"),
    (lambda s, i: s.wte(i) + s.wpe(torch.arange(i.shape[1])).cumsum(0), r"position|cumul|sum"),
]:
    mistake(ex.check_embedding, expect)(emb6(f))
valid(ex.check_embedding)(emb6(lambda s, i: F.one_hot(i, s.wte.num_embeddings).float() @ s.wte.weight
                               + s.wpe(torch.arange(i.shape[1], device=i.device))[None]))


# ------------------------------------------------------------------------------------------ loss
def ce6(lg, tk, **kw):
    return F.cross_entropy(lg.reshape(-1, lg.size(-1)), tk.reshape(-1), **kw)


for f, expect in [
    (lambda lg, tk: ce6(lg[:, :-1], tk[:, 1:].clamp(min=0), ignore_index=0), r"ignore|index|0"),
    (lambda lg, tk: ce6(lg[:, -2:-1], tk[:, -1:], ignore_index=-1), r"last|position|only"),
    (lambda lg, tk: ce6(lg[:, :-1], tk[:, 1:], ignore_index=-1).exp(), r"perplex|exp"),
    (lambda lg, tk: F.mse_loss(lg[:, :-1].softmax(-1)[tk[:, 1:] != -1],
                               F.one_hot(tk[:, 1:][tk[:, 1:] != -1], lg.size(-1)).float()), r"mse|squared|one-hot"),
    (lambda lg, tk: ce6(lg[:, :-1], tk[:, 1:], ignore_index=-1).item(), r"float|item|tensor|type"),
    (lambda lg, tk: ce6(lg[:, :-1] / 2, tk[:, 1:], ignore_index=-1), r"temperature|scal|logits"),
]:
    mistake(ex.check_loss, expect)(f)


@valid(ex.check_loss)
def loss_masked_mean(logits, tokens):
    logp = F.log_softmax(logits[:, :-1], dim=-1)
    tgt = tokens[:, 1:]
    mask = (tgt >= 0).float()
    nll = -logp.gather(2, tgt.clamp(min=0)[..., None])[..., 0]
    return (nll * mask).sum() / mask.sum()


# ------------------------------------------------------------------------------------------ GPT
def trunk6(s, i, ln_first=False, double_residual=False):
    tr = s.transformer
    x = tr.drop(tr.wte(i) + tr.wpe(torch.arange(i.size(1))))
    if ln_first:
        x = tr.ln_f(x)
    for b in tr.h:
        x = x + b(x) if double_residual else b(x)
    return x if ln_first else tr.ln_f(x)


for g, expect in [
    (gpt(lambda s, i: s.lm_head(trunk6(s, i, ln_first=True))), r"ln_f|final|order|before"),
    (gpt(lambda s, i: s.lm_head(trunk6(s, i, double_residual=True))), r"residual|block|twice|double"),
    (gpt(lambda s, i: s.lm_head(trunk(s, i)),
         lambda lg, tg: F.cross_entropy(lg.reshape(-1, lg.size(-1)), tg.T.reshape(-1), ignore_index=-1)),
     r"order|flatten|transpos"),
    (gpt(lambda s, i: s.lm_head(trunk(s, i)).transpose(1, 2),
         lambda lg, tg: F.cross_entropy(lg, tg, ignore_index=-1)), r"transpos|shape|reshaped"),
    (gpt(lambda s, i: s.lm_head(trunk(s, i)),
         lambda lg, tg: F.cross_entropy(lg.reshape(-1, lg.size(-1)), tg.reshape(-1), ignore_index=-1).item()),
     r"float|item|tensor|type"),
]:
    mistake(ex.check_gpt, expect)(g)
valid(ex.check_gpt)(gpt(lambda s, i: s.lm_head(s.transformer.ln_f(functools.reduce(
    lambda x, b: b(x), s.transformer.h, s.transformer.wte(i) + s.transformer.wpe.weight[: i.size(1)])))))


# ------------------------------------------------------------------------------------------ RMSNorm
for f, expect in [
    (lambda x, w, eps: x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) + w, r"weight|add|bias"),
    (lambda x, w, eps: x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * w, r"eps"),
    (lambda x, w, eps: x / (x.abs().mean(-1, keepdim=True) + eps) * w, r"square|abs|mean"),
    (lambda x, w, eps: (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w).half(), r"dtype|half|float"),
]:
    mistake(ex.check_rmsnorm, expect)(f)
valid(ex.check_rmsnorm)(lambda x, w, eps: F.rms_norm(x, (x.shape[-1],), w, eps))


# ------------------------------------------------------------------------------------------ rotary
def rope_partial(x, start, theta):  # only the first half of the channels rotated (the rest passed through)
    hs = x.shape[-1]
    return torch.cat([rope5()(x[..., : hs // 2], start, theta), x[..., hs // 2:]], -1)


mistake(ex.check_rotary, r"half|channel|partial|pair")(rope_partial)
mistake(ex.check_rotary, r"start|offset|position")(lambda x, start, theta: rope5()(x, 2 * start, theta))
mistake(ex.check_rotary, r"freq|exponent|hs")(lambda x, start, theta: rope5(exponent=2.0 * x.shape[-1] /
                                                                            (x.shape[-1] - 2))(x, start, theta))
def _rotated_part(x, start, theta):  # x * cos left out: only rotate_half(x) * sin kept
    hs, T = x.shape[-1], x.shape[1]
    freq = theta ** (-torch.arange(0, hs, 2, dtype=torch.float32) / hs)
    ang = (torch.arange(T, dtype=torch.float32) + start)[:, None] * freq
    sin = torch.cat([ang.sin(), ang.sin()], -1)[None, :, None, :]
    return torch.cat([-x[..., hs // 2:], x[..., : hs // 2]], -1) * sin


mistake(ex.check_rotary, r"cos|sin|missing")(_rotated_part)


@valid(ex.check_rotary)
def rotary_cached_tables(x, start, theta):
    hs = x.shape[-1]
    inv = 1.0 / (theta ** (torch.arange(0, hs, 2).float() / hs))
    t = torch.arange(start, start + x.shape[1]).float()
    emb = torch.cat([torch.outer(t, inv)] * 2, dim=-1)
    cos, sin = emb.cos()[None, :, None], emb.sin()[None, :, None]
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat((-x2, x1), dim=-1) * sin


# ------------------------------------------------------------------------------------------ SwiGLU
for f, expect in [
    (lambda x, g, u, d: F.linear(F.silu(F.linear(x, g)) * F.linear(x, u), d.T), r"transpos|shape|down"),
    (lambda x, g, u, d: F.linear(F.silu(F.linear(x, g)) * F.linear(x, g), d), r"up|weight|gate"),
    (lambda x, g, u, d: F.linear(F.silu(F.linear(x, g)) * F.linear(x, u), d) + x, r"residual|input"),
    (lambda x, g, u, d: F.linear(torch.tanh(F.linear(x, g)) * F.linear(x, u), d), r"tanh|activation"),
]:
    mistake(ex.check_swiglu, expect)(f)


# ------------------------------------------------------------------------------------------ GQA
def gqa_time_axis(q, k, v):  # repeat_interleave along the time axis instead of the heads
    g = q.shape[1] // k.shape[1]
    return gqa5()(q, k.repeat_interleave(g, 2), v.repeat_interleave(g, 2))


mistake(ex.check_gqa, r"dim|axis|repeat|time|shape")(gqa_time_axis)
mistake(ex.check_gqa, r"transpos|shape")(lambda q, k, v: gqa5()(q, k, v).transpose(1, 2))
mistake(ex.check_gqa, r"scal|sqrt")(lambda q, k, v: gqa5(scale=False)(q / q.shape[-1], k, v))
mistake(ex.check_gqa, r"quer|key|swap")(lambda q, k, v: gqa5()(
    k.repeat_interleave(q.shape[1] // k.shape[1], 1), q[:, :: q.shape[1] // k.shape[1]], v))


@valid(ex.check_gqa)
def gqa_grouped_einsum(q, k, v):  # the query heads folded into groups instead of the K/V heads repeated
    B, nh, T, hs = q.shape
    nkv = k.shape[1]
    qg = q.view(B, nkv, nh // nkv, T, hs)
    att = torch.einsum("bkgtd,bksd->bkgts", qg, k) / math.sqrt(hs)
    att = att.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf")).softmax(-1)
    return torch.einsum("bkgts,bksd->bkgtd", att, v).reshape(B, nh, T, hs)
