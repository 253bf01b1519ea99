"""The held-out probe, round 5 (the model checkers and the modern parts): written before reading the checkers'
mistake tables or the earlier rounds' rows, counted before any change. See heldout_probe.py."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import mingpt.exercises as ex
from mingpt.model import MLP

from heldout_probe_models import Emb, LN, block, cls_with, gpt, mistake, trunk, valid
from heldout_probe_round4 import ROUND  # noqa: F401 (rounds register in order)

ROUND[0] = 5


# ------------------------------------------------------------------------------------------ MLP
def mlp5(f):
    return cls_with(MLP, forward=f)


for f, expect in [
    (lambda s, x: s.dropout(s.c_proj(s.gelu(s.gelu(s.c_fc(x))))), r"twice|gelu|activation"),
    (lambda s, x: F.dropout(s.c_proj(s.gelu(s.c_fc(x))), 0.3, training=True), r"dropout|eval|train"),
    (lambda s, x: x + s.dropout(s.c_proj(s.gelu(s.c_fc(x)))), r"residual|input|add"),
    (lambda s, x: s.dropout(s.c_proj(s.gelu(F.linear(x, s.c_fc.weight)))), r"bias"),
    (lambda s, x: s.dropout(s.c_proj(F.leaky_relu(s.c_fc(x), 0.1))), r"leaky|relu"),
    (lambda s, x: s.dropout(s.c_proj((lambda h: 0.5 * h * (1 + torch.erf(h / 2)))(s.c_fc(x)))),
     r"gelu|constant|sqrt|erf"),
    (lambda s, x: s.dropout(s.c_proj(s.gelu(s.c_fc(x)))) * math.sqrt(2), r"scal|constant|sqrt"),
]:
    mistake(ex.check_mlp, expect)(mlp5(f))


class ListMLP(nn.Module):  # the layers kept in a plain list: nothing registered
    def __init__(self, config):
        super().__init__()
        self.layers = [nn.Linear(config.n_embd, 4 * config.n_embd), nn.Linear(4 * config.n_embd, config.n_embd)]

    def forward(self, x):
        return self.layers[1](F.gelu(self.layers[0](x), approximate="tanh"))


class NarrowMLP(MLP):  # hidden width 2C instead of 4C
    def __init__(self, config):
        super().__init__(config)
        self.c_fc = nn.Linear(config.n_embd, 2 * config.n_embd)
        self.c_proj = nn.Linear(2 * config.n_embd, config.n_embd)


mistake(ex.check_mlp, r"regist|parameter|ModuleList")(ListMLP)
mistake(ex.check_mlp, r"4|size|shape|width")(NarrowMLP)
valid(ex.check_mlp)(mlp5(lambda s, x: s.dropout(torch.addmm(s.c_proj.bias, (lambda h: h * 0.5 * (1 + torch.tanh(
    (2 / math.pi) ** 0.5 * (h + 0.044715 * h * h * h))))(x.reshape(-1, x.size(-1)) @ s.c_fc.weight.T + s.c_fc.bias),
    s.c_proj.weight.T).view_as(x))))


# ------------------------------------------------------------------------------------------ attention
class Attn5(nn.Module):
    """A plain causal attention; each knob a single plausible slip."""
    knob = None

    def __init__(self, config, layer_idx=0):
        super().__init__()
        self.n_head = config.n_head
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)
        self.attn_dropout = nn.Dropout(config.attn_pdrop)
        self.resid_dropout = nn.Dropout(config.resid_pdrop)

    def forward(self, x, kv_cache=None, attn_mask=None):
        B, T, C = x.shape
        nh = 1 if self.knob == "one_head" else self.n_head
        hs = C // nh
        parts = self.c_attn(x).split(C, dim=2)
        q, k, v = (parts[0], parts[2], parts[1]) if self.knob == "qvk" else parts
        q, k, v = (t.view(B, T, nh, hs).transpose(1, 2) for t in (q, k, v))
        att = k @ q.transpose(-2, -1) if self.knob == "kq" else q @ k.transpose(-2, -1)
        att = att * math.sqrt(hs) if self.knob == "times" else att if self.knob == "late_scale" else att / math.sqrt(hs)
        ones = torch.ones(T, T, dtype=torch.bool)
        keep = {"triu": ones.triu(), "strict": ones.tril(diagonal=-1), "none": ones}.get(self.knob, ones.tril())
        att = att.masked_fill(~keep, float("-inf")).softmax(-1)
        if self.knob == "late_scale":
            att = att / math.sqrt(hs)
        att = F.dropout(att, 0.3, training=True) if self.knob == "drop" else self.attn_dropout(att)
        y = self.resid_dropout(self.c_proj((att @ v).transpose(1, 2).reshape(B, T, C)))
        return x + y if self.knob == "residual" else y


for knob, expect in [("triu", r"mask|causal|future|transpos"), ("strict", r"diagonal|itself|mask|nan"),
                     ("kq", r"quer|key|swap|transpos"), ("qvk", r"order|split|q, k, v|swap|value|key"),
                     ("drop", r"dropout|eval"), ("times", r"scal|sqrt"), ("late_scale", r"scal|softmax|order"),
                     ("none", r"mask|causal|future"), ("one_head", r"head|split"),
                     ("residual", r"residual|input")]:
    mistake(ex.check_attention, expect)(cls_with(Attn5, knob=knob))


class EinsumAttn(Attn5):
    def forward(self, x, kv_cache=None, attn_mask=None):
        B, T, C = x.shape
        q, k, v = (t.unflatten(-1, (self.n_head, -1)) for t in self.c_attn(x).chunk(3, dim=-1))  # (B, T, nh, hs)
        att = torch.einsum("bqhd,bkhd->bhqk", q, k) * q.size(-1) ** -0.5
        att = att.masked_fill(torch.ones(T, T).triu(1).bool(), torch.finfo(att.dtype).min).softmax(-1)
        y = torch.einsum("bhqk,bkhd->bqhd", self.attn_dropout(att), v).flatten(2)
        return self.resid_dropout(self.c_proj(y))


valid(ex.check_attention)(EinsumAttn)


# ------------------------------------------------------------------------------------------ LayerNorm
def ln5(f):
    return cls_with(LN, forward=f)


for f, expect in [
    (lambda s, x: (x - x.mean(-1, keepdim=True)) / x.var(-1, keepdim=True, unbiased=False).sqrt() * s.weight + s.bias,
     r"eps"),
    (lambda s, x: (x - x.mean(-1, keepdim=True)) / (x.var(-1, keepdim=True, unbiased=False) + s.eps) * s.weight
     + s.bias, r"sqrt|var|std"),
    (lambda s, x: F.layer_norm(x, x.shape[-1:], eps=s.eps) * s.weight - s.bias, r"bias|sign"),
    (lambda s, x: x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + s.eps) * s.weight + s.bias, r"mean|center|rms"),
    (lambda s, x: F.layer_norm(x, x.shape[-1:], eps=s.eps) * s.bias + s.weight, r"swap|weight|bias"),
    (lambda s, x: (x - x.mean(1, keepdim=True)) / torch.sqrt(x.var(1, keepdim=True, unbiased=False) + s.eps)
     * s.weight + s.bias, r"axis|dim|time"),
]:
    mistake(ex.check_layernorm, expect)(ln5(f))
valid(ex.check_layernorm)(ln5(lambda s, x: (lambda c: c * torch.rsqrt(c.pow(2).mean(-1, keepdim=True) + s.eps))(
    x - x.mean(-1, keepdim=True)) * s.weight + s.bias))


# ------------------------------------------------------------------------------------------ Block
for f, expect in [
    (lambda s, x: (h := x + s.mlp(s.ln_2(x))) + s.attn(s.ln_1(h)), r"order|swap|first|before"),  # widened
    (lambda s, x: (h := x + s.attn(s.ln_2(x))) + s.mlp(s.ln_1(h)), r"ln_1|ln_2|swap"),
    (lambda s, x: (h := x + 0.5 * s.attn(s.ln_1(x))) + 0.5 * s.mlp(s.ln_2(h)), r"scal|half|residual|0\.5"),
    (lambda s, x: x + s.mlp(s.ln_2(x)), r"attn|attention|missing|skip"),
    (lambda s, x: x + s.attn(s.ln_1(x)), r"mlp|missing|skip"),
    (lambda s, x: (h := x + s.attn(s.ln_1(x))) + s.mlp(s.ln_2(h)) - x, r"residual|input|\bx\b"),
]:
    mistake(ex.check_block, expect)(block(f))
valid(ex.check_block)(block(lambda s, x: (lambda a: torch.add(a, s.mlp(s.ln_2(a))))(torch.add(x, s.attn(s.ln_1(x))))))


# ------------------------------------------------------------------------------------------ embedding
def emb5(f):
    return cls_with(Emb, forward=f)


for f, expect in [
    (lambda s, i: s.wte(i) + s.wpe(torch.arange(s.wpe.num_embeddings - i.shape[1], s.wpe.num_embeddings)),
     r"position|offset|start|end"),
    (lambda s, i: s.wte(i) * math.sqrt(s.wte.embedding_dim) + s.wpe(torch.arange(i.shape[1])), r"scal|sqrt"),
    (lambda s, i: torch.cat([s.wte(i), s.wpe(torch.arange(i.shape[1])).expand(i.shape[0], -1, -1)], -1),
     r"shape|concat|add"),
    (lambda s, i: s.wte(i) + s.wpe(torch.zeros_like(i)), r"position|0|same"),
    (lambda s, i: s.wte(i) + s.wte(torch.arange(i.shape[1])), r"position|wpe|table"),
    (lambda s, i: s.wte(i) + s.wpe(torch.arange(i.shape[1]).unsqueeze(1)), r"shape|dim|broadcast|position"),
]:
    mistake(ex.check_embedding, expect)(emb5(f))
valid(ex.check_embedding)(emb5(lambda s, i: F.embedding(i, s.wte.weight) + s.wpe.weight[: i.shape[1]].unsqueeze(0)
                               .expand(i.shape[0], -1, -1)))


# ------------------------------------------------------------------------------------------ loss
def ce5(lg, tk, **kw):
    return F.cross_entropy(lg.reshape(-1, lg.size(-1)), tk.reshape(-1), **kw)


for f, expect in [
    (lambda lg, tk: ce5(lg[:, :-1], tk[:, :-1], ignore_index=-1), r"shift|same position|predict|both drop"),  # widened
    (lambda lg, tk: ce5(lg[:, :-2], tk[:, 2:], ignore_index=-1), r"shift|two|2|off"),
    (lambda lg, tk: F.cross_entropy(lg[:, :-1].transpose(1, 2), tk[:, 1:], ignore_index=-1, reduction="none")
     .sum(1).div((tk[:, 1:] != -1).sum(1)).mean(), r"mean|average|per sequence|count|ignored"),
    (lambda lg, tk: ce5(lg[:, :-1], tk[:, 1:], ignore_index=-1) / math.log(2), r"log|base|bits|scal|2"),
    (lambda lg, tk: ce5(lg[:, :-1], tk[:, 1:], ignore_index=-1, label_smoothing=0.1), r"smooth"),
    (lambda lg, tk: -ce5(lg[:, :-1], tk[:, 1:], ignore_index=-1), r"sign|negative"),
]:
    mistake(ex.check_loss, expect)(f)
valid(ex.check_loss)(lambda lg, tk: F.nll_loss(lg[:, :-1].log_softmax(-1).flatten(0, 1), tk[:, 1:].flatten(),
                                               ignore_index=-1))


# ------------------------------------------------------------------------------------------ GPT
def trunk5(s, i, order=1, chain=True, drop=False, ln_twice=False):
    tr = s.transformer
    x = tr.wte(i) + tr.wpe(torch.arange(i.size(1)))
    x = F.dropout(x, 0.3, training=True) if drop else tr.drop(x)
    out = x
    for b in list(tr.h)[::order]:
        out = b(out) if chain else b(x)
    out = tr.ln_f(out)
    return tr.ln_f(out) if ln_twice else out


for g, expect in [
    (gpt(lambda s, i: s.lm_head(trunk5(s, i, order=-1))), r"order|revers|layer|block"),
    (gpt(lambda s, i: s.lm_head(trunk5(s, i, chain=False))), r"block|layer|chain"),
    (gpt(lambda s, i: s.lm_head(trunk5(s, i, drop=True))), r"dropout|eval"),
    (gpt(lambda s, i: s.lm_head(trunk5(s, i))[:, -1:]), r"last|shape|position|all"),
    (gpt(lambda s, i: s.lm_head(trunk5(s, i, ln_twice=True))), r"ln_f|final|norm|twice"),
    (gpt(lambda s, i: s.lm_head(trunk5(s, i)) / math.sqrt(s.config.n_embd)), r"scal"),
]:
    mistake(ex.check_gpt, expect)(g)
valid(ex.check_gpt)(gpt(lambda s, i: F.linear(trunk(s, i), s.lm_head.weight)))


# ------------------------------------------------------------------------------------------ RMSNorm
for f, expect in [
    (lambda x, w, eps: (x - x.mean(-1, keepdim=True)) / torch.sqrt((x - x.mean(-1, keepdim=True)).pow(2)
                                                                   .mean(-1, keepdim=True) + eps) * w,
     r"mean|center|layernorm"),
    (lambda x, w, eps: x / (x.pow(2).mean(-1, keepdim=True).sqrt() + eps) * w, r"eps"),
    (lambda x, w, eps: x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps), r"weight|scale|gain"),
    (lambda x, w, eps: x * torch.rsqrt(x.pow(2).sum(-1, keepdim=True) + eps) * w, r"sum|mean|sqrt\(C\)|scal"),
    (lambda x, w, eps: x * torch.rsqrt(x.pow(2).mean(1, keepdim=True) + eps) * w, r"axis|dim|last"),
    (lambda x, w, eps: x * torch.rsqrt(x.mean(-1, keepdim=True).pow(2) + eps) * w, r"square|mean"),
]:
    mistake(ex.check_rmsnorm, expect)(f)
valid(ex.check_rmsnorm)(lambda x, w, eps: w * (x / x.norm(dim=-1, keepdim=True).div(x.size(-1) ** 0.5)
                                               .pow(2).add(eps).sqrt()))


# ------------------------------------------------------------------------------------------ rotary
def rope5(pairing="half", use_start=True, sign=1.0, exponent=2.0, pos_axis=1, fixed_theta=None, inv=False):
    def apply_rotary(x, start, theta):
        theta = fixed_theta or theta
        hs = x.shape[-1]
        T = x.shape[pos_axis]
        j = torch.arange(0, hs // 2, dtype=torch.float32)
        freq = theta ** ((exponent * j / hs) if inv else (-exponent * j / hs))
        pos = torch.arange(T, dtype=torch.float32) + (start if use_start else 0)
        ang = pos[:, None] * freq[None, :]  # (T, hs/2)
        shape = [1] * x.dim()
        shape[pos_axis], shape[-1] = T, hs // 2
        cos, sin = ang.cos().view(shape), sign * ang.sin().view(shape)
        if pairing == "half":
            a, b = x[..., : hs // 2], x[..., hs // 2:]
            return torch.cat([a * cos - b * sin, a * sin + b * cos], -1)
        a, b = x[..., 0::2], x[..., 1::2]
        return torch.stack([a * cos - b * sin, a * sin + b * cos], -1).flatten(-2)
    return apply_rotary


for knobs, expect in [({"pairing": "interleaved"}, r"pair|interleav|neighbour|adjacent"),
                      ({"use_start": False}, r"start|offset|position"),
                      ({"sign": -1.0}, r"sign|direction|revers|invers"),
                      ({"exponent": 1.0}, r"freq|exponent|2"),
                      ({"pos_axis": 2}, r"axis|position|head"),
                      ({"fixed_theta": 10000.0}, r"theta|base"),
                      ({"inv": True}, r"freq|sign|exponent|invers")]:
    mistake(ex.check_rotary, expect)(rope5(**knobs))


@valid(ex.check_rotary)
def rotary_complex(x, start, theta):  # the halves as real and imaginary parts of one complex number
    hs, T = x.shape[-1], x.shape[1]
    freq = 1.0 / theta ** (torch.arange(0, hs, 2, dtype=torch.float64) / hs)
    ang = torch.outer(torch.arange(start, start + T, dtype=torch.float64), freq)
    z = torch.complex(x[..., : hs // 2].double(), x[..., hs // 2:].double()) * torch.polar(torch.ones_like(ang), ang)[
        None, :, None, :]
    return torch.cat([z.real, z.imag], -1).to(x.dtype)


# ------------------------------------------------------------------------------------------ SwiGLU
for f, expect in [
    (lambda x, g, u, d: F.linear(F.linear(x, g) * F.silu(F.linear(x, u)), d), r"gate|up|swap|branch"),
    (lambda x, g, u, d: F.linear(F.gelu(F.linear(x, g)) * F.linear(x, u), d), r"gelu|activation"),
    (lambda x, g, u, d: F.linear(F.silu(F.linear(x, g)) + F.linear(x, u), d), r"add|sum|product|multipl"),
    (lambda x, g, u, d: F.linear(F.silu(F.linear(x, g) * F.linear(x, u)), d), r"after|order|product"),
    (lambda x, g, u, d: (F.silu(x @ g) * (x @ u)) @ d, r"transpos|shape|weight"),
    (lambda x, g, u, d: F.linear(F.sigmoid(F.linear(x, g)) * F.linear(x, u), d), r"sigmoid|silu|activation|glu"),
]:
    mistake(ex.check_swiglu, expect)(f)
valid(ex.check_swiglu)(lambda x, g, u, d: torch.einsum("...h,ch->...c", (lambda a: a * torch.sigmoid(a))(
    torch.einsum("...c,hc->...h", x, g)) * torch.einsum("...c,hc->...h", x, u), d))


# ------------------------------------------------------------------------------------------ GQA
def gqa5(rep="interleave", scale=True, causal=True, v_from_k=False, sm_dim=-1):
    def gqa_attention(q, k, v):
        g = q.shape[1] // k.shape[1]
        grow = (lambda t: t.repeat_interleave(g, 1)) if rep == "interleave" else (lambda t: t.repeat(1, g, 1, 1))
        k, v = grow(k), grow(k if v_from_k else v)
        att = q @ k.transpose(-2, -1) / (math.sqrt(q.shape[-1]) if scale else 1.0)
        T = q.shape[2]
        if causal:
            att = att.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
        return att.softmax(sm_dim) @ v
    return gqa_attention


for knobs, expect in [({"rep": "repeat"}, r"repeat|interleav|group|head"), ({"scale": False}, r"scal|sqrt"),
                      ({"causal": False}, r"causal|mask|future"), ({"v_from_k": True}, r"\bv\b|value|\bk\b|key"),
                      ({"sm_dim": -2}, r"softmax|dim|axis")]:
    mistake(ex.check_gqa, expect)(gqa5(**knobs))
valid(ex.check_gqa)(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True))
valid(ex.check_gqa)(lambda q, k, v: gqa5()(q, *(t[:, :, None].expand(-1, -1, q.shape[1] // t.shape[1], -1, -1)
                                              .flatten(1, 2) for t in (k, v))))
