"""The held-out probe, round 19, modern part (written without reading the checkers, as a new teacher's set would be):
RMSNorm, rotary, SwiGLU, GQA here; GPT-2 conversion, LR schedule, weight-decay groups in _modern2; train_and_compare
rows (detach, no_grad, .data, unregistered parameters, no super().__init__, a layer built in forward) and double
slips in _modern3.

Untuned (checker: mistakes / caught / named / misnamed, valid passed / valid; no crashes):
    check_rmsnorm              14 / 14 / 14 / 0    4 / 4
    check_rotary               13 / 13 / 13 / 0    2 / 2
    check_swiglu               11 / 11 / 11 / 0    2 / 3   (the refused "valid" row copies the weights into new
                                                            nn.Linear layers under no_grad: no gradient reaches
                                                            w_gate/w_up/w_down; the checker is right, moved to
                                                            mistakes, where it is named: 12 / 12 / 12, 2 / 2)
    check_gqa                  12 / 12 / 12 / 0    4 / 4
    check_hf_conversion        12 / 12 / 12 / 0    2 / 2
    check_lr_schedule          11 / 11 / 11 / 0    3 / 3   (one row written as a mistake, warm-up with it <= warmup,
                                                            is valid: both branches give learning_rate there; moved)
    check_weight_decay_groups   9 /  9 /  9 / 0    2 / 2
    train_and_compare          12 / 11 / 11 / 0    2 / 2   (not caught: keys detached in attention, k.detach();
                                                            c_attn still gets a gradient through q and v)
    total                      94 / 93 / 93 (98.9 %) / 0 misnamed, 21 / 22 valid (after the move: 95 / 94 / 94, 21 / 21)
Regexes widened for fair names (commented on their lines): "parameters that do not learn", "learning rate 0 at the
first step", "not deterministic in eval mode" (its hint: a layer built inside forward).

Tuned: 95 mistakes, 95 caught, 95 named (100 %), 0 misnamed, 21 / 21 valid, no crashes. The one gap was a gradient
cut from a *part* of a parameter (k.detach(): c_attn learns through q and v, so every parameter got a gradient and
the loss stayed within tolerance). train_and_compare (mingpt/exercises/training.py) now records which entries of
each parameter ever received a non-zero gradient and, when a run otherwise passes, fails one where at least 1/8 of
the entries (whole rows, for a matrix) never did: "part of a parameter never receives a gradient". Checked after the
loss, so a run that is behind keeps that name (round 9's softmax over the diagonal alone, whose q and k get none).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

import mingpt.exercises as ex
from heldout_probe_models import ROUND, mistake, valid
import heldout_probe_round19_core  # noqa: F401  (earlier rounds registered first)

ROUND[0] = 19


# ------------------------------------------------------------------------------------------ RMSNorm
@mistake(ex.check_rmsnorm, r"eps")
def rms_eps_outside_root(x, weight, eps):
    return x / (x.square().mean(-1, keepdim=True).sqrt() + eps) * weight


@mistake(ex.check_rmsnorm, r"axis|dim")
def rms_over_time(x, g, eps):  # statistics over the positions (dim 1), not the channels
    return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + eps) * g


@mistake(ex.check_rmsnorm, r"mean|centr|layer")
def rms_centred(x, weight, eps):  # LayerNorm habit: subtracts the mean first
    xc = x - x.mean(-1, keepdim=True)
    return xc / torch.sqrt((xc * xc).mean(-1, keepdim=True) + eps) * weight


@mistake(ex.check_rmsnorm, r"weight|gain|scale")
def rms_no_gain(x, weight, eps):
    ms = (x ** 2).mean(-1, keepdim=True)
    return x / torch.sqrt(ms + eps)


@mistake(ex.check_rmsnorm, r"sum|mean")
def rms_sum_of_squares(x, weight, eps):
    return x * (x.pow(2).sum(-1, keepdim=True) + eps).rsqrt() * weight


@mistake(ex.check_rmsnorm, r"add|weight|gain|bias")
def rms_gain_added(x, weight, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) + weight


@mistake(ex.check_rmsnorm, r"sqrt|root")
def rms_no_root(x, w, eps):
    return x / (x.pow(2).mean(-1, keepdim=True) + eps) * w


@mistake(ex.check_rmsnorm, r"1 ?\+|offset|gemma|weight|gain")
def rms_gemma_gain(x, weight, eps):  # Gemma's (1 + w) gain, not this exercise's w
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * (1 + weight)


@mistake(ex.check_rmsnorm, r"dtype|half|precision|float")
def rms_half_output(x, weight, eps):
    y = x.half()
    return (y * torch.rsqrt(y.float().pow(2).mean(-1, keepdim=True) + eps).half()) * weight.half()


@mistake(ex.check_rmsnorm, r"axis|dim|all|global|whole")
def rms_global_mean(x, weight, eps):  # one mean square over the whole tensor
    return x * torch.rsqrt(torch.mean(x * x) + eps) * weight


@mistake(ex.check_rmsnorm, r"sum|mean|norm|sqrt")
def rms_l2_norm(x, weight, eps):  # the L2 norm, not the root mean square (missing 1/sqrt(C))
    return x / torch.sqrt(torch.linalg.vector_norm(x, dim=-1, keepdim=True) ** 2 + eps) * weight


@mistake(ex.check_rmsnorm, r"var|mean|centr|layer|unbias")
def rms_via_var(x, weight, eps):  # x.var: centred and unbiased (two slips in one call)
    return x / torch.sqrt(x.var(-1, keepdim=True) + eps) * weight


@valid(ex.check_rmsnorm)
def rms_valid_einsum(x, weight, eps):
    ms = torch.einsum("btc,btc->bt", x, x) / x.shape[-1]
    return x * (ms + eps).rsqrt().unsqueeze(-1) * weight


@valid(ex.check_rmsnorm)
def rms_valid_functional(x, weight, eps):
    return F.rms_norm(x, (x.size(-1),), weight, eps)


@valid(ex.check_rmsnorm)
def rms_valid_upcast(x, weight, eps):  # computes in float32 and returns x's dtype (as Llama does)
    h = x.float()
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return (weight * h).to(x.dtype)


@valid(ex.check_rmsnorm)
def rms_valid_norm(x, weight, eps):  # ||x|| / sqrt(C), eps scaled to match: the same number
    C = x.size(-1)
    return x * math.sqrt(C) / torch.sqrt(x.norm(dim=-1, keepdim=True) ** 2 + C * eps) * weight


# ------------------------------------------------------------------------------------------ rotary
def _angles(T, hs, start, theta, dtype=torch.float32):
    inv = 1.0 / theta ** (torch.arange(0, hs, 2, dtype=torch.float32) / hs)
    return torch.outer(torch.arange(start, start + T, dtype=torch.float32), inv)


def _rot(x, ang):
    ang = torch.cat((ang, ang), -1)[:, None, :]
    x1, x2 = x.chunk(2, -1)
    return x * ang.cos() + torch.cat((-x2, x1), -1) * ang.sin()


@mistake(ex.check_rotary, r"start|offset|position")
def rope_ignores_start(x, start, theta):
    return _rot(x, _angles(x.shape[1], x.shape[-1], 0, theta))


@mistake(ex.check_rotary, r"pair|interleav|adjacent|neighbo|even|odd")
def rope_neighbour_pairs(x, start, theta):  # Meta's layout: (2j, 2j+1) turn together
    B, T, nh, hs = x.shape
    ang = _angles(T, hs, start, theta)[:, None, :]
    xe, xo = x[..., 0::2], x[..., 1::2]
    c, s = ang.cos(), ang.sin()
    out = torch.stack((xe * c - xo * s, xe * s + xo * c), dim=-1)
    return out.flatten(-2)


@mistake(ex.check_rotary, r"sign|direction|rotate_half|negat|clockwise|invers")
def rope_half_sign(x, start, theta):
    ang = torch.cat([_angles(x.size(1), x.size(-1), start, theta)] * 2, -1)[:, None]
    a, b = x[..., : x.size(-1) // 2], x[..., x.size(-1) // 2:]
    return x * ang.cos() + torch.cat((b, -a), -1) * ang.sin()


@mistake(ex.check_rotary, r"freq|exponent|2i|speed|dim")
def rope_freq_missing_two(x, start, theta):  # omega_i = theta^(-i/hs): forgot the factor 2
    T, hs = x.shape[1], x.shape[3]
    inv = theta ** (-torch.arange(hs // 2).float() / hs)
    return _rot(x, torch.outer(torch.arange(start, start + T).float(), inv))


@mistake(ex.check_rotary, r"repeat|interleav|duplicat|freq|pair|cat")
def rope_repeat_interleave_angles(x, start, theta):  # angles laid out a0 a0 a1 a1 ... against the halves pairing
    ang = _angles(x.shape[1], x.shape[-1], start, theta).repeat_interleave(2, -1)[:, None, :]
    x1, x2 = x.chunk(2, -1)
    return x * ang.cos() + torch.cat((-x2, x1), -1) * ang.sin()


@mistake(ex.check_rotary, r"axis|layout|head|position|shape|transpos")
def rope_heads_as_positions(x, start, theta):  # assumes (B, nh, T, hs): the positions run along the heads axis
    nh, hs = x.shape[2], x.shape[3]
    ang = torch.cat((_angles(nh, hs, start, theta),) * 2, -1)  # (nh, hs) broadcasts on (B, T, nh, hs)
    x1, x2 = x.chunk(2, -1)
    return x * ang.cos() + torch.cat((-x2, x1), -1) * ang.sin()


@mistake(ex.check_rotary, r"freq|theta|exponent|sign|invers")
def rope_positive_exponent(x, start, theta):
    hs = x.size(-1)
    inv = theta ** (torch.arange(0, hs, 2).float() / hs)
    return _rot(x, torch.arange(start, start + x.size(1)).float()[:, None] * inv[None, :])


@mistake(ex.check_rotary, r"sin|cos|swap")
def rope_sin_cos_swapped(x, start, theta):
    ang = torch.cat((_angles(x.size(1), x.size(-1), start, theta),) * 2, -1)[:, None]
    x1, x2 = x.chunk(2, -1)
    return x * ang.sin() + torch.cat((-x2, x1), -1) * ang.cos()


@mistake(ex.check_rotary, r"start|offset|position|off.by.one|one")
def rope_one_based(x, start, theta):  # positions start + 1 .. start + T
    return _rot(x, _angles(x.size(1), x.size(-1), start + 1, theta))


@mistake(ex.check_rotary, r"freq|integer|division|int|exponent")
def rope_integer_division(x, start, theta):  # // on integers: every exponent 0, every pair at speed 1
    hs = x.size(-1)
    inv = 1.0 / theta ** (torch.arange(0, hs, 2) // hs)
    return _rot(x, torch.arange(start, start + x.size(1))[:, None] * inv[None, :].float())


@mistake(ex.check_rotary, r"dtype|float64|double|precision")
def rope_float64_out(x, start, theta):
    xd = x.double()
    hs = x.size(-1)
    inv = 1.0 / theta ** (torch.arange(0, hs, 2, dtype=torch.float64) / hs)
    ang = torch.outer(torch.arange(start, start + x.size(1), dtype=torch.float64), inv)
    ang = torch.cat((ang, ang), -1)[:, None]
    x1, x2 = xd.chunk(2, -1)
    return xd * ang.cos() + torch.cat((-x2, x1), -1) * ang.sin()


@mistake(ex.check_rotary, r"theta|base|freq")
def rope_fixed_base(x, start, theta):  # hard-codes 10000 instead of the theta given
    return _rot(x, _angles(x.size(1), x.size(-1), start, 10000.0))


@valid(ex.check_rotary)
def rope_valid_complex(x, start, theta):  # halves as real and imaginary parts, multiplied by e^(i angle)
    B, T, nh, hs = x.shape
    z = torch.complex(x[..., : hs // 2].float(), x[..., hs // 2:].float())
    ang = _angles(T, hs, start, theta)[:, None, :]
    z = z * torch.polar(torch.ones_like(ang), ang)
    return torch.cat((z.real, z.imag), -1).to(x.dtype)


@valid(ex.check_rotary)
def rope_valid_loop(x, start, theta):  # one position at a time, explicit 2x2 rotations per pair
    B, T, nh, hs = x.shape
    half = hs // 2
    out = torch.empty_like(x)
    freqs = [theta ** (-2 * i / hs) for i in range(half)]
    for t in range(T):
        p = start + t
        c = torch.tensor([math.cos(p * f) for f in freqs], dtype=x.dtype)
        s = torch.tensor([math.sin(p * f) for f in freqs], dtype=x.dtype)
        a, b = x[:, t, :, :half], x[:, t, :, half:]
        out[:, t, :, :half] = a * c - b * s
        out[:, t, :, half:] = b * c + a * s
    return out


# ------------------------------------------------------------------------------------------ SwiGLU
@mistake(ex.check_swiglu, r"gate|up|swap|branch|wrong")
def swiglu_silu_on_up(x, w_gate, w_up, w_down):
    gate, up = x @ w_gate.T, x @ w_up.T
    return (gate * F.silu(up)) @ w_down.T


@mistake(ex.check_swiglu, r"after|product|order|placement|outside")
def swiglu_silu_after_product(x, w_gate, w_up, w_down):
    return F.linear(F.silu(F.linear(x, w_gate) * F.linear(x, w_up)), w_down)


@mistake(ex.check_swiglu, r"gelu")
def swiglu_gelu(x, w_gate, w_up, w_down):
    return F.linear(F.gelu(F.linear(x, w_gate)) * F.linear(x, w_up), w_down)


@mistake(ex.check_swiglu, r"sigmoid|glu")
def swiglu_plain_glu(x, wg, wu, wd):  # sigmoid gate: GLU, not SwiGLU
    return F.linear(torch.sigmoid(F.linear(x, wg)) * F.linear(x, wu), wd)


@mistake(ex.check_swiglu, r"relu")
def swiglu_relu(x, w_gate, w_up, w_down):
    return F.linear(torch.relu(x @ w_gate.t()) * (x @ w_up.t()), w_down)


@mistake(ex.check_swiglu, r"activation|silu|linear|bilinear|missing")
def swiglu_no_activation(x, w_gate, w_up, w_down):
    return F.linear(F.linear(x, w_gate) * F.linear(x, w_up), w_down)


@mistake(ex.check_swiglu, r"both|up|silu")
def swiglu_silu_both(x, w_gate, w_up, w_down):
    act = torch.nn.SiLU()
    return F.linear(act(F.linear(x, w_gate)) * act(F.linear(x, w_up)), w_down)


@mistake(ex.check_swiglu, r"add|sum|product|multipl|plus")
def swiglu_added(x, w_gate, w_up, w_down):
    return F.linear(F.silu(F.linear(x, w_gate)) + F.linear(x, w_up), w_down)


@mistake(ex.check_swiglu, r"silu|sigmoid|activation|sign")
def swiglu_handwritten_sign(x, w_gate, w_up, w_down):  # z / (1 + e^z): the sign in the exponent is wrong
    z = x @ w_gate.T
    return ((z / (1 + torch.exp(z))) * (x @ w_up.T)) @ w_down.T


@mistake(ex.check_swiglu, r"tanh")
def swiglu_tanh(x, w_gate, w_up, w_down):
    return torch.tanh(x @ w_gate.T).mul(x @ w_up.T) @ w_down.T


@mistake(ex.check_swiglu, r"down|shape|projection|missing")
def swiglu_no_down(x, w_gate, w_up, w_down):  # forgot the down projection: returns the (.., H) hidden state
    return F.silu(F.linear(x, w_gate)) * F.linear(x, w_up)


@valid(ex.check_swiglu)
def swiglu_valid_fused(x, w_gate, w_up, w_down):  # one matmul for both expansions, then chunk
    g, u = F.linear(x, torch.cat([w_gate, w_up], 0)).chunk(2, dim=-1)
    return F.linear(g * torch.sigmoid(g) * u, w_down)


@valid(ex.check_swiglu)
def swiglu_valid_einsum(x, w_gate, w_up, w_down):
    g = torch.einsum("...c,hc->...h", x, w_gate)
    u = torch.einsum("...c,hc->...h", x, w_up)
    return torch.einsum("...h,ch->...c", F.silu(g) * u, w_down)


# ------------------------------------------------------------------------------------------ GQA
def _causal(q, k, v, scale=None, fill=float("-inf"), dim=-1, diag=1):
    T = q.size(-2)
    att = q @ k.transpose(-2, -1) * (scale if scale is not None else q.size(-1) ** -0.5)
    att = att.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(diag), fill)
    return att.softmax(dim) @ v


@mistake(ex.check_gqa, r"repeat|interleav|group|tile|order")
def gqa_tiled(q, k, v):  # repeat tiles the K/V heads (0 1 0 1), query head j reads j % n_kv
    g = q.size(1) // k.size(1)
    return _causal(q, k.repeat(1, g, 1, 1), v.repeat(1, g, 1, 1))


@mistake(ex.check_gqa, r"causal|mask|future")
def gqa_no_mask(q, k, v):
    g = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(g, 1), v.repeat_interleave(g, 1)
    return F.softmax(q @ k.mT / math.sqrt(q.shape[-1]), -1) @ v


@mistake(ex.check_gqa, r"scale|sqrt")
def gqa_scale_hs(q, k, v):
    g = q.shape[1] // k.shape[1]
    return _causal(q, k.repeat_interleave(g, 1), v.repeat_interleave(g, 1), scale=1 / q.shape[-1])


@mistake(ex.check_gqa, r"axis|dim|softmax|query")
def gqa_softmax_queries(q, k, v):
    g = q.shape[1] // k.shape[1]
    return _causal(q, k.repeat_interleave(g, 1), v.repeat_interleave(g, 1), dim=-2)


@mistake(ex.check_gqa, r"diagonal|mask|self|nan")
def gqa_mask_diagonal(q, k, v):  # triu(0) hides each token from itself too (row 0 all -inf -> nan)
    g = q.shape[1] // k.shape[1]
    return _causal(q, k.repeat_interleave(g, 1), v.repeat_interleave(g, 1), diag=0)


@mistake(ex.check_gqa, r"repeat|interleav|group|tile|order")
def gqa_expand_wrong_axis(q, k, v):  # expands a new axis in front of the K/V heads: tiles again
    B, nkv, T, hs = k.shape
    g = q.size(1) // nkv
    k = k[:, None].expand(B, g, nkv, T, hs).reshape(B, g * nkv, T, hs)
    v = v[:, None].expand(B, g, nkv, T, hs).reshape(B, g * nkv, T, hs)
    return _causal(q, k, v)


@mistake(ex.check_gqa, r"zero|fill|mask|0")
def gqa_fill_zero(q, k, v):  # masked scores set to 0, not -inf: the future still gets weight
    g = q.shape[1] // k.shape[1]
    return _causal(q, k.repeat_interleave(g, 1), v.repeat_interleave(g, 1), fill=0.0)


@mistake(ex.check_gqa, r"value|key|\bv\b|\bk\b")
def gqa_keys_as_values(q, k, v):
    g = q.shape[1] // k.shape[1]
    kk = k.repeat_interleave(g, 1)
    return _causal(q, kk, kk)


@mistake(ex.check_gqa, r"shape|transpos|layout|axis")
def gqa_returns_btnh(q, k, v):  # returns (B, T, nh, hs)
    g = q.shape[1] // k.shape[1]
    return _causal(q, k.repeat_interleave(g, 1), v.repeat_interleave(g, 1)).transpose(1, 2)


@mistake(ex.check_gqa, r"scale|sqrt|C|embd")
def gqa_scale_model_width(q, k, v):  # 1/sqrt(n_head * hs), the model width, not the head size
    g = q.shape[1] // k.shape[1]
    return _causal(q, k.repeat_interleave(g, 1), v.repeat_interleave(g, 1), scale=(q.shape[1] * q.shape[-1]) ** -0.5)


@valid(ex.check_gqa)
def gqa_valid_grouped_einsum(q, k, v):  # queries viewed as (B, nkv, group, T, hs): no copies of K/V
    B, nh, T, hs = q.shape
    nkv = k.size(1)
    qg = q.view(B, nkv, nh // nkv, T, hs)
    s = torch.einsum("bkgtd,bksd->bkgts", qg, k) / math.sqrt(hs)
    s = s.masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool), 1), float("-inf"))
    return torch.einsum("bkgts,bksd->bkgtd", s.softmax(-1), v).reshape(B, nh, T, hs)


@valid(ex.check_gqa)
def gqa_valid_sdpa(q, k, v):
    g = q.size(1) // k.size(1)
    return F.scaled_dot_product_attention(q, k.repeat_interleave(g, 1), v.repeat_interleave(g, 1), is_causal=True)


@valid(ex.check_gqa)
def gqa_valid_head_loop(q, k, v):
    g = q.size(1) // k.size(1)
    heads = [_causal(q[:, j:j + 1], k[:, j // g:j // g + 1], v[:, j // g:j // g + 1]) for j in range(q.size(1))]
    return torch.cat(heads, dim=1)


import heldout_probe_round19_modern2  # noqa: E402,F401
