"""
The modern-parts checkers (mingpt/exercises/modern.py): every mistake in each table, written as a student would
write it, is caught and named (and no other name given); valid alternative implementations pass; a mistake
outside the tables is reported as not recognised, with its first differing element. The references are checked
against mingpt.modern's modules and torch's nn.RMSNorm.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from mingpt.exercises import check_gqa, check_rmsnorm, check_rotary, check_swiglu
from mingpt.exercises.compare import NOT_RECOGNISED
from mingpt.exercises.modern import (GQA_MISTAKES, RMSNORM_MISTAKES, ROTARY_MISTAKES, SWIGLU_MISTAKES,
                                     rotary_reference, swiglu_reference)
from mingpt.model import GPT
from mingpt.modern.mlps import SwiGLUMLP
from mingpt.modern.rotary import Rotary

CHECKERS = [(check_rmsnorm, RMSNORM_MISTAKES), (check_rotary, ROTARY_MISTAKES), (check_swiglu, SWIGLU_MISTAKES),
            (check_gqa, GQA_MISTAKES)]


@pytest.mark.parametrize("check, table", CHECKERS, ids=lambda v: getattr(v, "__name__", ""))
def test_every_mistake_is_caught_and_named(check, table):
    assert len(table) >= 6
    for variant in table:
        result = check(variant.compute)
        assert not result.passed, variant.property
        assert result.property == variant.property, (variant.property, str(result))


# ------------------------------------------------------------------------------------------ valid alternatives
def rms_rsqrt(x, weight, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def rms_torch(x, weight, eps):
    return F.rms_norm(x, (x.shape[-1],), weight, eps)


def rms_float64(x, weight, eps):
    y = x.double()
    return (y / (y * y).mean(dim=-1, keepdim=True).add(eps).sqrt() * weight.double()).to(x.dtype)


def rotary_complex(x, start, theta):
    """The rotation as complex multiplication, with the halves as real and imaginary parts."""
    hs = x.shape[-1]
    inv = theta ** (-torch.arange(0, hs, 2, dtype=torch.float64) / hs)
    angles = torch.outer(torch.arange(start, start + x.shape[1], dtype=torch.float64), inv)[:, None, :]
    z = torch.complex(x[..., : hs // 2].double(), x[..., hs // 2:].double()) * torch.polar(torch.ones_like(angles),
                                                                                          angles)
    return torch.cat((z.real, z.imag), dim=-1).float()


def rotary_loop(x, start, theta):
    hs, out = x.shape[-1], x.clone()
    for t in range(x.shape[1]):
        for i in range(hs // 2):
            a = (start + t) * theta ** (-2 * i / hs)
            x1, x2 = x[:, t, :, i], x[:, t, :, i + hs // 2]
            out[:, t, :, i], out[:, t, :, i + hs // 2] = x1 * math.cos(a) - x2 * math.sin(a), \
                x2 * math.cos(a) + x1 * math.sin(a)
    return out


def swiglu_matmul(x, w_gate, w_up, w_down):
    g = x @ w_gate.T
    return (g * torch.sigmoid(g) * (x @ w_up.T)) @ w_down.T


def swiglu_fused(x, w_gate, w_up, w_down):
    gate, up = F.linear(x, torch.cat((w_gate, w_up))).chunk(2, dim=-1)
    return F.linear(F.silu(gate) * up, w_down)


def gqa_hf_repeat_kv(q, k, v):
    """Hugging Face's repeat_kv: expand a new axis, then fold it into the heads."""
    B, nkv, T, hs = k.shape
    g = q.size(1) // nkv
    k, v = (t[:, :, None].expand(B, nkv, g, T, hs).reshape(B, nkv * g, T, hs) for t in (k, v))
    att = (q @ k.transpose(-1, -2)) / math.sqrt(hs)
    return att.masked_fill(torch.ones(T, T).triu(1).bool(), float("-inf")).softmax(-1) @ v


def gqa_index(q, k, v):
    heads = torch.arange(q.size(1)) // (q.size(1) // k.size(1))
    return F.scaled_dot_product_attention(q, k[:, heads], v[:, heads], is_causal=True)


def gqa_grouped(q, k, v):
    """No repeat at all: the query heads folded into groups that broadcast against their K/V head."""
    B, nh, T, hs = q.shape
    nkv = k.size(1)
    qg = q.view(B, nkv, nh // nkv, T, hs)
    att = (qg @ k[:, :, None].transpose(-1, -2)) / math.sqrt(hs)
    att = att.masked_fill(torch.ones(T, T).triu(1).bool(), float("-inf")).softmax(-1)
    return (att @ v[:, :, None]).view(B, nh, T, hs)


@pytest.mark.parametrize("check, fn", [
    (check_rmsnorm, rms_rsqrt), (check_rmsnorm, rms_torch), (check_rmsnorm, rms_float64),
    (check_rotary, rotary_complex), (check_rotary, rotary_loop), (check_swiglu, swiglu_matmul),
    (check_swiglu, swiglu_fused), (check_gqa, gqa_hf_repeat_kv), (check_gqa, gqa_index), (check_gqa, gqa_grouped)],
    ids=lambda v: getattr(v, "__name__", ""))
def test_valid_alternatives_pass(check, fn):
    result = check(fn)
    assert result.passed, str(result)


# ------------------------------------------------------------------------------------------ not recognised
@pytest.mark.parametrize("check, fn", [
    (check_rmsnorm, lambda x, w, eps: rms_rsqrt(x, w, eps) * 1.01),
    (check_rotary, lambda x, s, th: rotary_reference(x, s, th * 2)),
    (check_swiglu, lambda x, g, u, d: swiglu_reference(x, g, u, d) + 0.01),
    (check_gqa, lambda q, k, v: gqa_index(q, k, v).flip(-1))], ids=["rmsnorm", "rotary", "swiglu", "gqa"])
def test_unknown_mistake_shows_its_first_difference(check, fn):
    result = check(fn)
    assert not result.passed and result.property == NOT_RECOGNISED, str(result)
    assert "first differing element" in result.counterexample


def test_not_implemented_and_crash_are_reported():
    def todo(*args):
        raise NotImplementedError
    assert not check_swiglu(todo).passed and "implement" in str(check_swiglu(todo)).lower()
    result = check_gqa(lambda q, k, v: q @ k)
    assert not result.passed and "RuntimeError" in str(result)


# ------------------------------------------------------------------------------------------ the references
def test_references_equal_mingpts_modules_and_torch():
    x, w = torch.randn(2, 5, 6), torch.randn(6)
    norm = nn.RMSNorm(6, eps=0.1)
    with torch.no_grad():
        norm.weight.copy_(w)
    assert rms_float64(x, w, 0.1).allclose(norm(x), atol=1e-6)
    config = GPT.get_default_config()
    config.merge_from_dict(dict(n_layer=1, n_head=3, n_embd=30, vocab_size=11, block_size=16, position="rotary",
                                rotary_theta=500.0, mlp="swiglu", mlp_hidden=14, bias=False))
    q, k = torch.randn(2, 4, 3, 10), torch.randn(2, 4, 3, 10)
    rq, rk = Rotary(config)(q, k, start=5)
    assert torch.allclose(rotary_reference(q, 5, 500.0), rq, atol=1e-6)
    assert torch.allclose(rotary_reference(k, 5, 500.0), rk, atol=1e-6)
    mlp = SwiGLUMLP(config).eval()
    x = torch.randn(2, 3, 30)
    expected = swiglu_reference(x, mlp.c_gate.weight, mlp.c_fc.weight, mlp.c_proj.weight)
    assert torch.allclose(mlp(x), expected, atol=1e-6)
