"""
The held-out probe, round 18, modern part (_modern: RMSNorm, rotary; _modern2: SwiGLU, GQA, GPT-2 conversion;
_modern3: LR schedule, weight-decay groups, train_and_compare), written by the round 18 modern helper before reading
the checkers. Angle: look-alikes and hidden bugs (a symptom that resembles another well-known mistake, bugs visible
only on some inputs: square sizes, n_head == T, float64/bf16, the default theta or weight decay; double slips; and
valid code that looks wrong: '>' for '>=' at the schedule's ends, cos^2 for 0.5 (1 + cos), .t() on 1-D biases, a
grouped einsum without repeat, a cos/sin table kept across calls, a block_size mask sliced [-T:, -T:]).

Untuned (judged; mistakes / caught / named / misnamed, valid passed / valid; no checker crash):
  check_rmsnorm 14 / 13 / 12 / 0, 3 / 3        check_rotary 14 / 13 / 11 / 0, 3 / 3
  check_swiglu 14 / 14 / 12 / 0, 3 / 3         check_gqa 14 / 14 / 13 / 0, 3 / 3
  check_hf_conversion 14 / 14 / 13 / 0, 2 / 2  check_lr_schedule 14 / 14 / 14 / 0, 3 / 3
  check_weight_decay_groups 13 / 13 / 13 / 0, 3 / 3   train_and_compare 6 / 6 / 6 / 0, 1 / 1
  total 103 / 101 / 94 (91 %) / 0, 21 / 21 (89 by the regexes as first written: four widened where the message
  named the cause in other words, and gqa_batch_mixed's regex corrected: the row is exactly the tiling slip).
Not caught: rms_float32_always (float64 in, float32 out), rot_angles_in_input_dtype (bf16 angles). Not named:
rms_eps_squared, rot_first_half_only, rot_start_added_to_angles, swi_down_on_each_branch, swi_up_weight_twice,
gqa_scale_by_T, hf_ln_swapped.

Tuned: 102 / 102 / 102 / 0, 22 / 22 (rot_angles_in_input_dtype moved to valid: exact in float32, the contract by which
round 13's rope_einsum_pairs, which casts its angles to x.dtype, is valid; a bfloat16 check caught both and was
dropped). Mechanisms: RMSNorm gets a float64 case (an x.float() never cast back is "wrong dtype") and an eps ** 2
knob; rotary knobs for the first half rotated alone and start added to the angles; SwiGLU rows for w_up used as the
gate and w_down applied to each branch; GQA a 1/sqrt(T) scale row; the conversion checker randomises the test model's
1-D parameters (LayerNorm gains 1 and biases 0 made every gain equal every other) and names a tensor stored under
another key's name ("weight and bias swapped" within one module).
"""

from __future__ import annotations

import math

import torch

import mingpt.exercises as ex
from heldout_probe_models import ROUND, mistake, valid
import heldout_probe_round18_core  # noqa: F401  (earlier rounds registered first)

ROUND[0] = 18


# ------------------------------------------------------------------------------------------ RMSNorm
def _ms(x):
    return x.pow(2).mean(dim=-1, keepdim=True)


@mistake(ex.check_rmsnorm, r"eps")
def rms_eps_outside_sqrt(x, weight, eps):  # visible only where the rms is small (tiny inputs)
    return x / (torch.sqrt(_ms(x)) + eps) * weight


@mistake(ex.check_rmsnorm, r"axis|dim|all|whole|every")
def rms_mean_over_everything(x, weight, eps):  # one rms for the whole tensor: B, T interact
    return x * torch.rsqrt(x.pow(2).mean() + eps) * weight


@mistake(ex.check_rmsnorm, r"axis|dim|time|position")
def rms_mean_over_time(x, weight, eps):  # over T, not C
    return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + eps) * weight


@mistake(ex.check_rmsnorm, r"centr|subtract|varian|layer ?norm|std")
def rms_variance(x, weight, eps):  # LayerNorm's variance (centred) instead of the mean square
    return x * torch.rsqrt(x.var(dim=-1, keepdim=True, unbiased=False) + eps) * weight


@mistake(ex.check_rmsnorm, r"sum|mean|sqrt\(C\)|scale")
def rms_sum_not_mean(x, weight, eps):  # looks like a scale slip: off by sqrt(C)
    return x * torch.rsqrt(x.pow(2).sum(dim=-1, keepdim=True) + eps) * weight


@mistake(ex.check_rmsnorm, r"weight|gain|order|before")
def rms_weight_before_norm(x, weight, eps):  # gain applied first, then normalised: the gain mostly cancels
    h = x * weight
    return h * torch.rsqrt(_ms(h) + eps)


@mistake(ex.check_rmsnorm, r"1 ?\+|offset|gemma|gain|weight")
def rms_one_plus_weight(x, weight, eps):  # Gemma's (1 + w) parameterisation on a Llama weight
    return x * torch.rsqrt(_ms(x) + eps) * (1 + weight)


@mistake(ex.check_rmsnorm, r"weight|gain")
def rms_no_weight(x, weight, eps):
    return x * torch.rsqrt(_ms(x) + eps)


@mistake(ex.check_rmsnorm, r"dtype|precision|float|half")
def rms_float32_always(x, weight, eps):  # float64 inputs come back float32
    x32 = x.float()
    return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps) * weight.float())


@mistake(ex.check_rmsnorm, r"abs|square|mean")
def rms_mean_abs(x, weight, eps):  # mean |x| instead of the root mean square
    return x / (x.abs().mean(dim=-1, keepdim=True) + eps) * weight


@mistake(ex.check_rmsnorm, r"in.place|input|modif|mutat|overwr")
def rms_in_place(x, weight, eps):  # right output, but the caller's x is overwritten
    x.mul_(torch.rsqrt(_ms(x) + eps))
    return x.mul_(weight)


@mistake(ex.check_rmsnorm, r"C ?- ?1|n ?- ?1|unbiased|bessel")
def rms_unbiased_mean(x, weight, eps):  # divides the sum of squares by C - 1 (a look-alike of a scale slip)
    C = x.size(-1)
    return x * torch.rsqrt(x.pow(2).sum(-1, keepdim=True) / (C - 1) + eps) * weight


@mistake(ex.check_rmsnorm, r"eps|sum|mean")
def rms_double_sum_eps_outside(x, weight, eps):  # two slips: sum instead of mean, eps outside the root
    return x / (x.pow(2).sum(-1, keepdim=True).sqrt() + eps) * weight


@mistake(ex.check_rmsnorm, r"eps")
def rms_eps_squared(x, weight, eps):  # eps ** 2 under the root (eps "is a std")
    return x * torch.rsqrt(_ms(x) + eps ** 2) * weight


@valid(ex.check_rmsnorm)
def rms_valid_float64_inside(x, weight, eps):  # computes in float64, returns the input's dtype
    x64 = x.double()
    y = x64 / torch.sqrt(x64.pow(2).mean(-1, keepdim=True) + eps)
    return (y * weight.double()).to(x.dtype)


@valid(ex.check_rmsnorm)
def rms_valid_loop(x, weight, eps):  # one position at a time
    out = torch.empty_like(x)
    for b in range(x.size(0)):
        for t in range(x.size(1)):
            v = x[b, t]
            out[b, t] = v / torch.sqrt((v * v).sum() / v.numel() + eps) * weight
    return out


@valid(ex.check_rmsnorm)
def rms_valid_norm(x, weight, eps):  # via the vector norm: rms = |x| / sqrt(C)
    C = x.size(-1)
    return x / torch.sqrt(torch.linalg.vector_norm(x, dim=-1, keepdim=True) ** 2 / C + eps) * weight


# ------------------------------------------------------------------------------------------ rotary
def _angles(T, hs, start, theta, dtype=torch.float32):
    inv = 1.0 / theta ** (torch.arange(0, hs, 2, dtype=torch.float32) / hs)
    a = torch.outer(torch.arange(start, start + T, dtype=torch.float32), inv)
    return torch.cat((a, a), -1)[:, None, :].to(dtype)


def _rot_half(x, ang):
    x1, x2 = x.chunk(2, dim=-1)
    return x * ang.cos() + torch.cat((-x2, x1), -1) * ang.sin()


@mistake(ex.check_rotary, r"pair|interleav|neighbo|adjacent")
def rot_interleaved(x, start, theta):  # Meta's (2j, 2j+1) pairing on a halves-paired checkpoint
    T, hs = x.shape[1], x.shape[-1]
    inv = 1.0 / theta ** (torch.arange(0, hs, 2).float() / hs)
    a = torch.outer(torch.arange(start, start + T).float(), inv).repeat_interleave(2, -1)[:, None, :]
    x1, x2 = x[..., 0::2], x[..., 1::2]
    rot = torch.stack((-x2, x1), -1).flatten(-2)
    return x * a.cos() + rot * a.sin()


@mistake(ex.check_rotary, r"start|offset|cache")
def rot_ignores_start(x, start, theta):
    return _rot_half(x, _angles(x.shape[1], x.shape[-1], 0, theta))


@mistake(ex.check_rotary, r"off.by.one|start|offset|\+ ?1|one|from 1")  # widened: "positions counted from 1"
def rot_positions_from_one(x, start, theta):  # positions start+1 .. start+T: looks like an offset slip
    return _rot_half(x, _angles(x.shape[1], x.shape[-1], start + 1, theta))


@mistake(ex.check_rotary, r"frequenc|exponent|2i|speed")
def rot_exponent_i_over_hs(x, start, theta):  # theta^(-i/hs) instead of theta^(-2i/hs)
    T, hs = x.shape[1], x.shape[-1]
    inv = 1.0 / theta ** (torch.arange(0, hs // 2).float() / hs)
    a = torch.outer(torch.arange(start, start + T).float(), inv)
    return _rot_half(x, torch.cat((a, a), -1)[:, None, :])


@mistake(ex.check_rotary, r"sign|direction|negative|clockwise|revers|opposite")
def rot_sign_flipped(x, start, theta):  # rotate_half = cat(x2, -x1): every pair turns backwards
    ang = _angles(x.shape[1], x.shape[-1], start, theta)
    x1, x2 = x.chunk(2, -1)
    return x * ang.cos() + torch.cat((x2, -x1), -1) * ang.sin()


@mistake(ex.check_rotary, r"pair|interleav|repeat|frequenc|order|duplicat")
def rot_angles_interleaved_halves_paired(x, start, theta):  # angles repeat_interleave'd, halves paired: mixed
    T, hs = x.shape[1], x.shape[-1]
    inv = 1.0 / theta ** (torch.arange(0, hs, 2).float() / hs)
    a = torch.outer(torch.arange(start, start + T).float(), inv).repeat_interleave(2, -1)[:, None, :]
    return _rot_half(x, a)


@mistake(ex.check_rotary, r"theta|base|10000|10 ?000")
def rot_theta_hard_coded(x, start, theta):  # right on the default theta only
    return _rot_half(x, _angles(x.shape[1], x.shape[-1], start, 10000.0))


@mistake(ex.check_rotary, r"axis|layout|head|position|shape|T\b|broadcast")
def rot_positions_from_axis2(x, start, theta):  # (B, nh, T, hs) habit: counts positions on the heads axis
    n, hs = x.shape[2], x.shape[-1]  # only runs when n_head == T or n_head == 1 (then every position = start)
    return _rot_half(x, _angles(n, hs, start, theta))


@mistake(ex.check_rotary, r"half|second|pair|only")
def rot_first_half_only(x, start, theta):  # only x1 turns; x2 is passed through
    ang = _angles(x.shape[1], x.shape[-1], start, theta)[..., : x.shape[-1] // 2]
    x1, x2 = x.chunk(2, -1)
    return torch.cat((x1 * ang.cos() - x2 * ang.sin(), x2), -1)


@mistake(ex.check_rotary, r"in.place|input|modif|mutat|overwr")
def rot_in_place(x, start, theta):  # writes the result into the caller's tensor
    out = _rot_half(x, _angles(x.shape[1], x.shape[-1], start, theta))
    x.copy_(out)
    return x


@mistake(ex.check_rotary, r"start|offset|angle|position")
def rot_start_added_to_angles(x, start, theta):  # start added to the angle, not to the position
    T, hs = x.shape[1], x.shape[-1]
    inv = 1.0 / theta ** (torch.arange(0, hs, 2).float() / hs)
    a = torch.outer(torch.arange(T).float(), inv) + start
    return _rot_half(x, torch.cat((a, a), -1)[:, None, :])


@mistake(ex.check_rotary, r"pair|interleav|neighbo|sign")
def rot_double_interleaved_and_sign(x, start, theta):  # two slips: neighbours paired and turned backwards
    T, hs = x.shape[1], x.shape[-1]
    inv = 1.0 / theta ** (torch.arange(0, hs, 2).float() / hs)
    a = torch.outer(torch.arange(start, start + T).float(), inv).repeat_interleave(2, -1)[:, None, :]
    rot = torch.stack((x[..., 1::2], -x[..., 0::2]), -1).flatten(-2)
    return x * a.cos() + rot * a.sin()


@mistake(ex.check_rotary, r"inverse|reciprocal|frequenc|exponent|sign")
def rot_no_reciprocal(x, start, theta):  # theta^(+2i/hs): frequencies grow instead of shrinking
    T, hs = x.shape[1], x.shape[-1]
    f = theta ** (torch.arange(0, hs, 2).float() / hs)
    a = torch.outer(torch.arange(start, start + T).float(), f)
    return _rot_half(x, torch.cat((a, a), -1)[:, None, :])


# Moved to valid after the untuned count: exact for float32 inputs, the exercise's contract (round 13's
# rope_einsum_pairs, which casts its angles to x.dtype, is valid by that contract). In bfloat16 it would be wrong at
# large positions (1001 rounds to 1000 or 1002), a case the checker does not test.
@valid(ex.check_rotary)
def rot_angles_in_input_dtype(x, start, theta):  # angles formed in x's dtype
    T, hs = x.shape[1], x.shape[-1]
    inv = (1.0 / theta ** (torch.arange(0, hs, 2).float() / hs)).to(x.dtype)
    a = torch.outer(torch.arange(start, start + T).to(x.dtype), inv)
    return _rot_half(x, torch.cat((a, a), -1)[:, None, :])


@valid(ex.check_rotary)
def rot_valid_complex_halves(x, start, theta):  # complex numbers with real = first half, imag = second half
    T, hs = x.shape[1], x.shape[-1]
    inv = 1.0 / theta ** (torch.arange(0, hs, 2, dtype=torch.float64) / hs)
    a = torch.outer(torch.arange(start, start + T, dtype=torch.float64), inv)[:, None, :]
    x1, x2 = x.double().chunk(2, -1)
    z = torch.complex(x1, x2) * torch.polar(torch.ones_like(a), a)
    return torch.cat((z.real, z.imag), -1).to(x.dtype)


@valid(ex.check_rotary)
def rot_valid_loop(x, start, theta):  # position by position, pair by pair, explicit 2x2 rotations
    out = x.clone()
    hs = x.shape[-1]
    h = hs // 2
    for t in range(x.shape[1]):
        for i in range(h):
            ang = (start + t) * theta ** (-2 * i / hs)
            c, s = math.cos(ang), math.sin(ang)
            a, b = x[:, t, :, i], x[:, t, :, i + h]
            out[:, t, :, i], out[:, t, :, i + h] = a * c - b * s, b * c + a * s
    return out


_ROT_CACHE = {}


@valid(ex.check_rotary)
def rot_valid_cached_table(x, start, theta):  # a cos/sin table kept across calls, keyed by everything it depends on
    T, hs = x.shape[1], x.shape[-1]
    key = (hs, theta, start + T)
    if key not in _ROT_CACHE:
        _ROT_CACHE[key] = _angles(start + T, hs, 0, theta)
    wide = x.to(torch.promote_types(x.dtype, torch.float32))  # angles and products in float32 at least
    return _rot_half(wide, _ROT_CACHE[key][start:start + T]).to(x.dtype)


import heldout_probe_round18_modern2  # noqa: E402,F401
