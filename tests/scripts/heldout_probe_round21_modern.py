"""The held-out probe, round 21, modern part. (Written by the round 21 modern helper.)

Angle: cousins of the textbook mistakes (another constant, axis, offset), mistakes confined to part of the input
(one head, one layer, the first batch row, the last position), and combinations; valid rows that look like cousins.

Untuned (before any checker change; mistakes / caught / named / misnamed, valid passed / valid; no crashes):
  check_rmsnorm 14 / 14 / 9 / 0, 4 / 4          check_rotary 13 / 12 / 6 / 0, 4 / 4
  check_swiglu 13 / 13 / 11 / 0, 3 / 3          check_gqa 14 / 14 / 9 / 0, 3 / 3
  check_hf_conversion 15 / 15 / 11 / 0, 3 / 3   (4 partial rows named "Conv1D weight not transposed" without saying
                                                 which: counted not named; the probe prints them as OTHER NAME)
  check_lr_schedule 14 / 14 / 10 / 1, 3 / 3     (misname: (it + 2) / (warmup + 1) named "cosine one step behind
                                                 and the whole schedule one step ahead"; the cosine is right)
  check_weight_decay_groups 14 / 14 / 14 / 0, 3 / 3
  train_and_compare (20 steps; attention / mlp / layer_norm / block) 5 / 5 / 5 / 0, 4 / 4
  total 102 / 101 / 75 (74 %) / 1, 27 / 27, 0 crashes

Tuned: 102 / 102 / 101 (99 %) / 0, 27 / 27, 0 crashes. Not named, rightly: swi_gate_first_half (the gate applied to
half of the hidden units: inside the MLP, no output slice shows it). Mechanisms: partial.py (a known mistake on the
slices one rule picks along one axis, the reference elsewhere: rmsnorm, rotary, swiglu, gqa); fitted families (rotary
position offset, angle scale, position cap; GQA mask diagonal); GQA's per-head K/V map; the LR schedule's warm-up
(it + 2, warmup_iters + 2) and floor (k * min_lr) parts and "wrong only at one step"; the conversion's untransposed
Conv1D weights located; RMSNorm's max norm and weight twice; rotary's odd frequencies and a longer fifth case.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

import mingpt.exercises as ex
from heldout_probe_models import ROUND, mistake, valid
import heldout_probe_round21_core  # noqa: F401  (earlier rounds registered first)

ROUND[0] = 21


# ------------------------------------------------------------------------------------------ RMSNorm
def _ms(x):
    return x.pow(2).mean(-1, keepdim=True)


@mistake(ex.check_rmsnorm, r"eps|epsilon")
def rms_eps_fixed_1e3(x, weight, eps):  # cousin: eps hard-coded 1e-3, the given eps ignored
    return x / torch.sqrt(_ms(x) + 1e-3) * weight


@mistake(ex.check_rmsnorm, r"eps|epsilon")
def rms_eps_squared(x, weight, eps):  # cousin: eps**2 under the root
    return x / torch.sqrt(_ms(x) + eps * eps) * weight


@mistake(ex.check_rmsnorm, r"axis|dim|time|position|T\b")
def rms_over_time(x, weight, eps):  # cousin axis: mean over T instead of C
    return x / torch.sqrt(x.pow(2).mean(-2, keepdim=True) + eps) * weight


@mistake(ex.check_rmsnorm, r"C ?- ?1|unbiased|bessel|divid|n-1")
def rms_divide_c_minus_1(x, weight, eps):  # cousin: sum / (C - 1)
    return x / torch.sqrt(x.pow(2).sum(-1, keepdim=True) / (x.size(-1) - 1) + eps) * weight


@mistake(ex.check_rmsnorm, r"root|sqrt|power|fourth")
def rms_fourth_root(x, weight, eps):  # cousin of "no sqrt": ** 0.25
    return x / (_ms(x) + eps) ** 0.25 * weight


@mistake(ex.check_rmsnorm, r"1 ?\+ ?weight|gemma|offset|plus one")
def rms_one_plus_weight(x, weight, eps):  # Gemma's (1 + weight) on a Llama-style weight
    return x / torch.sqrt(_ms(x) + eps) * (1 + weight)


@mistake(ex.check_rmsnorm, r"half|part|channel|weight")
def rms_weight_first_half(x, weight, eps):  # partial: the weight only on the first half of the channels
    C = x.size(-1)
    w = torch.cat([weight[: C // 2], torch.ones_like(weight[C // 2:])])
    return x / torch.sqrt(_ms(x) + eps) * w


@mistake(ex.check_rmsnorm, r"centr|mean|variance|layernorm")
def rms_centred_variance_only(x, weight, eps):  # the root of the variance (centred), x itself not centred
    var = x.var(-1, unbiased=False, keepdim=True)
    return x / torch.sqrt(var + eps) * weight


@mistake(ex.check_rmsnorm, r"batch|row|first|part")
def rms_first_row_only(x, weight, eps):  # partial: only batch row 0 normalised, the rest only scaled
    y = x * weight
    y[0] = x[0] / torch.sqrt(_ms(x[0]) + eps) * weight
    return y


@mistake(ex.check_rmsnorm, r"abs|l1|mean absolute")
def rms_mean_abs(x, weight, eps):  # cousin: mean |x| instead of the root mean square
    return x / (x.abs().mean(-1, keepdim=True) + eps) * weight


@mistake(ex.check_rmsnorm, r"eps.*(1 ?\+|weight)|(1 ?\+|weight).*eps|two|and")
def rms_eps_outside_and_one_plus(x, weight, eps):  # combination: eps outside the root and (1 + weight)
    return x / (torch.sqrt(_ms(x)) + eps) * (1 + weight)


@mistake(ex.check_rmsnorm, r"max|norm")
def rms_max_norm(x, weight, eps):  # normalised by the largest |x| instead of the rms
    return x / (x.abs().amax(-1, keepdim=True) + eps) * weight


@mistake(ex.check_rmsnorm, r"last|position|part")
def rms_skip_last_position(x, weight, eps):  # partial: the last position left unnormalised
    y = x / torch.sqrt(_ms(x) + eps) * weight
    return torch.cat([y[:, :-1], x[:, -1:] * weight], dim=1)


@mistake(ex.check_rmsnorm, r"twice|two|double|weight")
def rms_weight_twice(x, weight, eps):  # cousin of "weight missing": the weight applied twice
    return x / torch.sqrt(_ms(x) + eps) * weight * weight


@valid(ex.check_rmsnorm)
def rms_valid_vector_norm(x, weight, eps):  # ||x|| / sqrt(C) is the rms: same formula
    C = x.size(-1)
    return x / torch.sqrt(torch.linalg.vector_norm(x, dim=-1, keepdim=True) ** 2 / C + eps) * weight


@valid(ex.check_rmsnorm)
def rms_valid_float64(x, weight, eps):  # computed in float64, cast back
    y = x.double()
    return (y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype) * weight


@valid(ex.check_rmsnorm)
def rms_valid_loop_rows(x, weight, eps):  # a loop over the positions of every row
    out = torch.empty_like(x)
    for b in range(x.size(0)):
        for t in range(x.size(1)):
            v = x[b, t]
            out[b, t] = v / torch.sqrt((v * v).sum() / v.numel() + eps) * weight
    return out


@valid(ex.check_rmsnorm)
def rms_valid_einsum(x, weight, eps):
    ms = torch.einsum("btc,btc->bt", x, x)[..., None] / x.size(-1)
    return weight * (x / (ms + eps).sqrt())


# ------------------------------------------------------------------------------------------ rotary
def _rot(x, start, theta, positions=None, inv=None, pairing="half", sign=1.0, heads=None, angle_scale=1.0):
    T, hs = x.shape[1], x.shape[-1]
    if inv is None:
        inv = 1.0 / theta ** (torch.arange(0, hs, 2).float() / hs)
    pos = torch.arange(start, start + T).float() if positions is None else positions.float()
    ang = torch.outer(pos, inv) * angle_scale
    if pairing == "half":
        ang = torch.cat((ang, ang), -1)[:, None, :]
        x1, x2 = x.chunk(2, -1)
        out = x * ang.cos() + sign * torch.cat((-x2, x1), -1) * ang.sin()
    else:
        ang = ang.repeat_interleave(2, -1)[:, None, :]
        xe, xo = x[..., 0::2], x[..., 1::2]
        rh = torch.stack((-xo, xe), -1).flatten(-2)
        out = x * ang.cos() + sign * rh * ang.sin()
    if heads is not None:
        out = torch.where(heads.view(1, 1, -1, 1), out, x)
    return out


@mistake(ex.check_rotary, r"start|offset|position")
def rot_start_plus_two(x, start, theta):  # cousin: positions start + 2 .. (off by two)
    T = x.shape[1]
    return _rot(x, start, theta, positions=torch.arange(start + 2, start + 2 + T))


@mistake(ex.check_rotary, r"start|offset|position|one")
def rot_start_plus_one(x, start, theta):  # positions 1-based
    T = x.shape[1]
    return _rot(x, start, theta, positions=torch.arange(start + 1, start + 1 + T))


@mistake(ex.check_rotary, r"theta|base|10000|frequenc")
def rot_theta_fixed(x, start, theta):  # the given theta ignored, 10000 used
    return _rot(x, start, 10000.0)


@valid(ex.check_rotary)  # looked like a cousin while writing; theta ** (-i / (hs/2)) = theta ** (-2i / hs): equal
def rot_freq_over_half(x, start, theta):
    hs = x.shape[-1]
    inv = 1.0 / theta ** (torch.arange(0, hs // 2).float() / (hs // 2))
    return _rot(x, start, theta, inv=inv)


@mistake(ex.check_rotary, r"frequenc|exponent|odd|index|inv_freq")
def rot_freq_odd_index(x, start, theta):  # cousin: arange(1, hs, 2) (frequencies shifted by one index)
    hs = x.shape[-1]
    inv = 1.0 / theta ** (torch.arange(1, hs, 2).float() / hs)
    return _rot(x, start, theta, inv=inv)


@mistake(ex.check_rotary, r"direction|sign|negat|clockwise|inverse")
def rot_sign_flipped(x, start, theta):
    return _rot(x, start, theta, sign=-1.0)


@mistake(ex.check_rotary, r"twice|double|factor|angle|2")
def rot_double_angle(x, start, theta):  # cousin: angles times 2
    return _rot(x, start, theta, angle_scale=2.0)


@mistake(ex.check_rotary, r"head|first|part")
def rot_first_head_only(x, start, theta):  # partial: only head 0 rotated
    nh = x.shape[2]
    return _rot(x, start, theta, heads=torch.arange(nh) == 0)


@mistake(ex.check_rotary, r"head|last|part")
def rot_not_last_head(x, start, theta):  # partial: the last head left unrotated
    nh = x.shape[2]
    return _rot(x, start, theta, heads=torch.arange(nh) != nh - 1)


@mistake(ex.check_rotary, r"revers|backward|order|position")
def rot_positions_reversed(x, start, theta):
    T = x.shape[1]
    return _rot(x, start, theta, positions=torch.arange(start + T - 1, start - 1, -1))


@mistake(ex.check_rotary, r"interleav|repeat|pair|layout|angle")
def rot_angles_interleaved_half_pairing(x, start, theta):  # halves paired, but angles laid out repeat_interleave
    T, hs = x.shape[1], x.shape[-1]
    inv = 1.0 / theta ** (torch.arange(0, hs, 2).float() / hs)
    ang = torch.outer(torch.arange(start, start + T).float(), inv).repeat_interleave(2, -1)[:, None, :]
    x1, x2 = x.chunk(2, -1)
    return x * ang.cos() + torch.cat((-x2, x1), -1) * ang.sin()


@mistake(ex.check_rotary, r"(start|position).*(sign|direction)|(sign|direction).*(start|position)|two|and")
def rot_no_start_and_sign(x, start, theta):  # combination: start ignored and the rotation's sign flipped
    return _rot(x, 0, theta, sign=-1.0)


@mistake(ex.check_rotary, r"degree|radian|angle")
def rot_degrees(x, start, theta):  # angles treated as degrees
    return _rot(x, start, theta, angle_scale=math.pi / 180)


@mistake(ex.check_rotary, r"clamp|block|long|position|beyond")
def rot_positions_clamped(x, start, theta):  # partial: positions capped at 7 (only wrong for later positions)
    T = x.shape[1]
    return _rot(x, start, theta, positions=torch.arange(start, start + T).clamp(max=7))


@valid(ex.check_rotary)
def rot_valid_complex(x, start, theta):  # complex multiplication with halves as (real, imaginary)
    T, hs = x.shape[1], x.shape[-1]
    inv = torch.exp(-math.log(theta) * torch.arange(0, hs, 2, dtype=torch.float64) / hs)
    ang = torch.outer(torch.arange(start, start + T, dtype=torch.float64), inv)[:, None, :]
    x1, x2 = x.double().chunk(2, -1)
    z = torch.complex(x1, x2) * torch.polar(torch.ones_like(ang), ang)
    return torch.cat((z.real, z.imag), -1).to(x.dtype)


@valid(ex.check_rotary)
def rot_valid_explicit(x, start, theta):  # written out: x1 cos - x2 sin, x2 cos + x1 sin
    T, hs = x.shape[1], x.shape[-1]
    inv = theta ** (-torch.arange(0, hs, 2).float() / hs)
    ang = (torch.arange(T).float() + start)[:, None] * inv[None, :]
    c, s = ang.cos()[:, None, :], ang.sin()[:, None, :]
    x1, x2 = x[..., : hs // 2], x[..., hs // 2:]
    return torch.cat((x1 * c - x2 * s, x2 * c + x1 * s), -1)


@valid(ex.check_rotary)
def rot_valid_loop_positions(x, start, theta):  # one position at a time
    out = torch.empty_like(x)
    for t in range(x.shape[1]):
        out[:, t:t + 1] = _rot(x[:, t:t + 1], start + t, theta)
    return out


# ------------------------------------------------------------------------------------------ SwiGLU
@mistake(ex.check_swiglu, r"sigmoid|glu|silu|swish")
def swi_sigmoid_gate(x, w_gate, w_up, w_down):  # GLU: sigmoid(gate) * up instead of silu(gate) * up
    return F.linear(torch.sigmoid(F.linear(x, w_gate)) * F.linear(x, w_up), w_down)


@mistake(ex.check_swiglu, r"beta|swish|silu|sigmoid|2")
def swi_swish_beta2(x, w_gate, w_up, w_down):  # cousin of silu: g * sigmoid(2 g)
    g = F.linear(x, w_gate)
    return F.linear(g * torch.sigmoid(2 * g) * F.linear(x, w_up), w_down)


@mistake(ex.check_swiglu, r"relu|reglu")
def swi_relu(x, w_gate, w_up, w_down):
    return F.linear(F.relu(F.linear(x, w_gate)) * F.linear(x, w_up), w_down)


@mistake(ex.check_swiglu, r"swap|gate.*up|up.*gate")
def swi_swapped(x, w_gate, w_up, w_down):
    return F.linear(F.silu(F.linear(x, w_up)) * F.linear(x, w_gate), w_down)


@mistake(ex.check_swiglu, r"sum|add|\+|plus")
def swi_sum(x, w_gate, w_up, w_down):  # silu(gate) + up instead of the product
    return F.linear(F.silu(F.linear(x, w_gate)) + F.linear(x, w_up), w_down)


@mistake(ex.check_swiglu, r"residual|\+ ?x|input added|skip")
def swi_residual(x, w_gate, w_up, w_down):  # a residual inside the MLP
    return x + F.linear(F.silu(F.linear(x, w_gate)) * F.linear(x, w_up), w_down)


@mistake(ex.check_swiglu, r"half|factor|scale|0\.5")
def swi_half(x, w_gate, w_up, w_down):  # cousin: scaled by 0.5
    return 0.5 * F.linear(F.silu(F.linear(x, w_gate)) * F.linear(x, w_up), w_down)


@mistake(ex.check_swiglu, r"both|up.*silu|silu.*up|twice")
def swi_silu_both(x, w_gate, w_up, w_down):
    return F.linear(F.silu(F.linear(x, w_gate)) * F.silu(F.linear(x, w_up)), w_down)


@mistake(ex.check_swiglu, r"after|product|order|outside")
def swi_silu_after_product(x, w_gate, w_up, w_down):
    return F.linear(F.silu(F.linear(x, w_gate) * F.linear(x, w_up)), w_down)


@mistake(ex.check_swiglu, r"half|part|hidden|unit")
def swi_gate_first_half(x, w_gate, w_up, w_down):  # partial: the gate applied only to the first half of hidden units
    g, u = F.silu(F.linear(x, w_gate)), F.linear(x, w_up)
    H = g.size(-1)
    g = torch.cat([g[..., : H // 2], torch.ones_like(g[..., H // 2:])], -1)
    return F.linear(g * u, w_down)


@mistake(ex.check_swiglu, r"gelu")
def swi_gelu_tanh(x, w_gate, w_up, w_down):  # GeGLU with the tanh approximation
    return F.linear(F.gelu(F.linear(x, w_gate), approximate="tanh") * F.linear(x, w_up), w_down)


@mistake(ex.check_swiglu, r"(swap|gate.*up).*(gelu)|gelu.*(swap|gate.*up|up)|two|and")
def swi_swapped_gelu(x, w_gate, w_up, w_down):  # combination: gate/up swapped and GELU
    return F.linear(F.gelu(F.linear(x, w_up)) * F.linear(x, w_gate), w_down)


@mistake(ex.check_swiglu, r"batch|row|first|part")
def swi_first_row_relu(x, w_gate, w_up, w_down):  # partial: batch row 0 gated by relu, the rest right
    g = F.linear(x, w_gate)
    a = F.silu(g)
    a = torch.cat([F.relu(g[:1]), a[1:]], 0)
    return F.linear(a * F.linear(x, w_up), w_down)


@valid(ex.check_swiglu)
def swi_valid_explicit(x, w_gate, w_up, w_down):
    g = x @ w_gate.T
    return (g * torch.sigmoid(g) * (x @ w_up.T)) @ w_down.T


@valid(ex.check_swiglu)
def swi_valid_fused(x, w_gate, w_up, w_down):  # one matmul with the two weights stacked, then chunk
    g, u = F.linear(x, torch.cat([w_gate, w_up], 0)).chunk(2, -1)
    return F.linear(F.silu(g) * u, w_down)


@valid(ex.check_swiglu)
def swi_valid_einsum(x, w_gate, w_up, w_down):
    g, u = torch.einsum("...c,hc->...h", x, w_gate), torch.einsum("...c,hc->...h", x, w_up)
    return torch.einsum("...h,ch->...c", g / (1 + torch.exp(-g)) * u, w_down)


import heldout_probe_round21_modern2  # noqa: E402,F401
