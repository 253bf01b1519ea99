"""The held-out probe, round 7 (the model checkers and the modern parts): a short fresh round written after round 6's
fixes, counted and left untuned, to measure how the checkers do on mistakes nobody tuned them for. See
heldout_probe.py."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

import mingpt.exercises as ex

from heldout_probe_models import block, gpt, mistake, trunk
from heldout_probe_round5_models import gqa5, mlp5, rope5
from heldout_probe_round6_models import ROUND, Attn6, emb6, ln6  # noqa: F401

ROUND[0] = 7

mistake(ex.check_mlp, r"gelu|exact|erf|approx")(mlp5(lambda s, x: s.c_proj(F.gelu(s.c_fc(x), approximate="none"))))
mistake(ex.check_mlp, r"residual|input|scal")(mlp5(lambda s, x: 0.5 * (x + s.c_proj(s.gelu(s.c_fc(x))))))
mistake(ex.check_mlp, r"softplus|activation")(mlp5(lambda s, x: s.c_proj(F.softplus(s.c_fc(x)))))
mistake(ex.check_mlp, r"sigmoid|activation")(mlp5(lambda s, x: s.c_proj(torch.sigmoid(s.c_fc(x)))))


class Attn7(Attn6):
    knob7 = None

    def forward(self, x, kv_cache=None, attn_mask=None):
        B, T, C = x.shape
        nh, hs = self.n_head, C // self.n_head
        q, k, v = (t.view(B, T, nh, hs).transpose(1, 2) for t in self.c_attn(x).split(C, dim=2))
        att = q @ k.transpose(-2, -1) / math.sqrt(hs)
        keep = torch.ones(T, T, dtype=torch.bool).tril()
        if self.knob7 == "window":  # a sliding window of 2 keys
            keep = keep & ~torch.ones(T, T, dtype=torch.bool).tril(-2)
        att = att.masked_fill(~keep, float("-inf"))
        att = (att - att.amax(-1, keepdim=True)).exp()
        att = att / (att.sum(-1, keepdim=True) + (1.0 if self.knob7 == "plus_one" else 0.0))
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        if self.knob7 == "no_proj_bias_then_relu":
            return F.relu(self.c_proj(y))
        return self.c_proj(y)


for knob, expect in [("window", r"mask|window|future|causal"), ("plus_one", r"softmax|sum|normali"),
                     ("no_proj_bias_then_relu", r"relu|activation|proj")]:
    mistake(ex.check_attention, expect)(type("Student", (Attn7,), {"knob7": knob}))

mistake(ex.check_layernorm, r"var|std|unbiased|eps")(ln6(lambda s, x: (x - x.mean(-1, keepdim=True))
                                                        / (x.std(-1, keepdim=True) + s.eps) * s.weight + s.bias))
mistake(ex.check_layernorm, r"axis|dim|batch")(ln6(lambda s, x: F.layer_norm(x.transpose(0, 1), x.shape[-1:], s.weight,
                                                                             s.bias, s.eps)))
mistake(ex.check_layernorm, r"mean|center|median")(ln6(lambda s, x: (x - x.median(-1, keepdim=True).values)
                                                      / torch.sqrt(x.var(-1, keepdim=True, unbiased=False) + s.eps)
                                                      * s.weight + s.bias))

mistake(ex.check_block, r"ln_2|norm|weight|affine|gain")(block(lambda s, x: (h := x + s.attn(s.ln_1(x))) + s.mlp(
    F.layer_norm(h, h.shape[-1:]))))
mistake(ex.check_block, r"detach|gradient|residual")(block(lambda s, x: (h := x.detach() + s.attn(s.ln_1(x)))
                                                           + s.mlp(s.ln_2(h))))
mistake(ex.check_block, r"post|norm|output|final")(block(lambda s, x: s.ln_2((h := x + s.attn(s.ln_1(x)))
                                                                             + s.mlp(s.ln_2(h)))))

mistake(ex.check_embedding, r"position|wrap|modulo")(emb6(lambda s, i: s.wte(i) + s.wpe(torch.arange(i.shape[1]) % 4)))
mistake(ex.check_embedding, r"position|scal|half")(emb6(lambda s, i: s.wte(i) + 0.5 * s.wpe(torch.arange(i.shape[1]))))

mistake(ex.check_loss, r"mean|sum|batch|average")(lambda lg, tk: F.cross_entropy(
    lg[:, :-1].reshape(-1, lg.size(-1)), tk[:, 1:].reshape(-1), ignore_index=-1, reduction="sum") / lg.shape[0])
mistake(ex.check_loss, r"log|softmax|nll")(lambda lg, tk: F.nll_loss(
    torch.log(lg[:, :-1].softmax(-1) + 1e-3).reshape(-1, lg.size(-1)), tk[:, 1:].reshape(-1), ignore_index=-1))

mistake(ex.check_gpt, r"position|wpe|offset")(gpt(lambda s, i: s.lm_head(s.transformer.ln_f(
    s.transformer.h[1](s.transformer.h[0](s.transformer.wte(i)
                                          + s.transformer.wpe(torch.arange(i.size(1)).flip(0))))))))
mistake(ex.check_gpt, r"head|scal|weight")(gpt(lambda s, i: F.linear(trunk(s, i), s.lm_head.weight * 0.5)))

mistake(ex.check_rmsnorm, r"sqrt|root|rms")(lambda x, w, eps: x / (x.pow(2).mean(-1, keepdim=True) + eps) ** 0.25 * w)
mistake(ex.check_rmsnorm, r"axis|dim|batch")(lambda x, w, eps: x * torch.rsqrt(x.pow(2).mean(0, keepdim=True) + eps)
                                             * w)

mistake(ex.check_rotary, r"position|start|revers|order")(lambda x, start, theta: rope5()(x.flip(1), start, theta)
                                                          .flip(1))
def _rope_cos_sin_swapped(x, start, theta):
    hs, T = x.shape[-1], x.shape[1]
    freq = theta ** (-torch.arange(0, hs, 2, dtype=torch.float64) / hs)
    ang = (torch.arange(T, dtype=torch.float64) + start)[:, None] * freq
    a, b = x[..., : hs // 2], x[..., hs // 2:]
    cos, sin = ang.cos().float()[None, :, None], ang.sin().float()[None, :, None]
    return torch.cat([a * sin - b * cos, a * cos + b * sin], -1)


mistake(ex.check_rotary, r"sin|cos|swap")(_rope_cos_sin_swapped)


mistake(ex.check_swiglu, r"down|missing|proj")(lambda x, g, u, d: F.silu(F.linear(x, g)) * F.linear(x, u))
mistake(ex.check_swiglu, r"scal|silu|beta|activation")(lambda x, g, u, d: F.linear(
    F.linear(x, g) * torch.sigmoid(2 * F.linear(x, g)) * F.linear(x, u), d))

mistake(ex.check_gqa, r"mask|causal|diagonal|future")(lambda q, k, v: F.scaled_dot_product_attention(
    q, k.repeat_interleave(q.shape[1] // k.shape[1], 1), v.repeat_interleave(q.shape[1] // k.shape[1], 1),
    attn_mask=torch.ones(q.shape[2], q.shape[2], dtype=torch.bool).triu()))
mistake(ex.check_gqa, r"group|head|mean|repeat")(lambda q, k, v: gqa5()(
    q.view(q.shape[0], k.shape[1], -1, *q.shape[2:]).mean(2).repeat_interleave(q.shape[1] // k.shape[1], 1), k, v))
