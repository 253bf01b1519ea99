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


# ------------------------------------------------------------------------------------------ against transformers
def test_references_equal_transformers_llama_parts():
    """The checkers' references are Hugging Face Llama's own functions, on the same tensors (odd sizes)."""
    llama = pytest.importorskip("transformers.models.llama.modeling_llama")
    from transformers import LlamaConfig

    from mingpt.exercises.modern import gqa_reference, rms_norm_reference

    hf_config = LlamaConfig(hidden_size=30, intermediate_size=14, num_attention_heads=3, num_key_value_heads=1,
                            head_dim=10, rope_theta=500.0, rms_norm_eps=0.1, vocab_size=11)
    norm = llama.LlamaRMSNorm(30, eps=0.1)
    with torch.no_grad():
        norm.weight.normal_()
    x = torch.randn(2, 5, 30)
    assert torch.allclose(rms_norm_reference(x, norm.weight, 0.1), norm(x), atol=1e-6)
    mlp = llama.LlamaMLP(hf_config)
    assert torch.allclose(swiglu_reference(x, mlp.gate_proj.weight, mlp.up_proj.weight, mlp.down_proj.weight),
                          mlp(x), atol=1e-6)
    q, k = torch.randn(2, 3, 4, 10), torch.randn(2, 1, 4, 10)  # HF's layout: (B, heads, T, hs)
    cos, sin = llama.LlamaRotaryEmbedding(hf_config)(q, torch.arange(6, 10)[None])  # a cache of 6 tokens before
    hq, hk = llama.apply_rotary_pos_emb(q, k, cos, sin)
    assert torch.allclose(rotary_reference(q.transpose(1, 2), 6, 500.0).transpose(1, 2), hq, atol=1e-5)
    assert torch.allclose(rotary_reference(k.transpose(1, 2), 6, 500.0).transpose(1, 2), hk, atol=1e-5)
    v = torch.randn(2, 1, 4, 10)
    q6, k2, v2 = torch.randn(1, 6, 4, 10), torch.randn(1, 2, 4, 10), torch.randn(1, 2, 4, 10)
    for qq, kk, vv in ((q, k, v), (q6, k2, v2)):
        n_rep = qq.size(1) // kk.size(1)
        theirs = F.scaled_dot_product_attention(qq, llama.repeat_kv(kk, n_rep), llama.repeat_kv(vv, n_rep),
                                                is_causal=True)
        assert torch.allclose(gqa_reference(qq, kk, vv), theirs, atol=1e-6)


def test_course_notebook_solution_computes_transformers_llama(tmp_path):
    """Notebook 10's solutions, assembled by its llama_forward, give transformers' LlamaForCausalLM's logits on the
    folder mingpt saved: the course's end result checked against an independent implementation."""
    import json
    import pathlib

    transformers = pytest.importorskip("transformers")
    nb = json.loads((pathlib.Path(__file__).parents[1] / "notebooks/course/10_modern_llama.ipynb").read_text())
    namespace = {"math": math, "torch": torch, "F": F}
    for cell in nb["cells"]:
        if cell["metadata"].get("nbgrader", {}).get("solution"):
            exec("".join(cell["source"]), namespace)
    for name, check in (("rms_norm", check_rmsnorm), ("apply_rotary", check_rotary), ("swiglu", check_swiglu),
                        ("gqa_attention", check_gqa)):
        assert check(namespace[name]).passed, name
    config = GPT.get_default_config()
    config.merge_from_dict(dict(n_layer=2, n_head=6, n_kv_head=2, n_embd=36, mlp_hidden=22, vocab_size=37,
                                block_size=16, position="rotary", norm="rmsnorm", mlp="swiglu", bias=False,
                                tie_weights=False, rotary_theta=300.0))
    torch.manual_seed(0)
    model = GPT(config)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(1 + 0.2 * torch.randn_like(p) if p.dim() == 1 else 0.3 * torch.randn_like(p))
    model.save_pretrained(tmp_path)
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path, attn_implementation="eager").eval()
    loaded = GPT.from_pretrained(str(tmp_path))
    idx = torch.tensor([[3, 1, 36, 7, 20, 11, 0]])
    with torch.no_grad():
        ours = namespace["llama_forward"](loaded.state_dict(), loaded.config, idx)
        assert torch.allclose(ours, hf(idx).logits, atol=1e-4)
