"""
The modern parts (mingpt/modern) against their references: nn.RMSNorm and the hand formulas, transformers' own
rotary functions, grouped-query attention as multi-head attention with repeated K/V heads; and, for every
combination of switches, KV-cache generation equal to the full forward pass and the hook points TransformerLens names.
"""

import itertools

import pytest
import torch
import torch.nn.functional as F

from mingpt.generation import left_pad
from mingpt.model import GPT
from mingpt.modern.mlps import ReLU2MLP, SwiGLUMLP
from mingpt.modern.norms import RMSNorm, RMSNormNoWeight
from mingpt.modern.rotary import Rotary


def config(**switches):
    C = GPT.get_default_config()
    C.merge_from_dict(dict(n_layer=2, n_head=6, n_embd=48, vocab_size=37, block_size=24, embd_pdrop=0.0,
                           resid_pdrop=0.0, attn_pdrop=0.0))
    C.merge_from_dict(switches)
    return C


def model(seed=0, **switches):
    torch.manual_seed(seed)
    m = GPT(config(**switches)).eval()
    with torch.no_grad():  # larger weights than GPT-2's init, so positions and tokens matter to the output
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    return m


# ------------------------------------------------------------------ the parts against references

def test_rmsnorm_is_the_hand_formula_and_pytorchs():
    x = torch.randn(3, 5, 11)
    norm = RMSNorm(11, eps=1e-6)
    with torch.no_grad():
        norm.weight.normal_()
    hand = x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * norm.weight
    torch.testing.assert_close(norm(x), hand)
    torch.testing.assert_close(RMSNormNoWeight(11, eps=1e-6)(x), F.rms_norm(x, (11,), eps=1e-6))
    assert list(RMSNormNoWeight(11).parameters()) == []
    # the mean is over the channels of one position: scaling one position leaves the others alone
    y = x.clone()
    y[0, 0] *= 7
    torch.testing.assert_close(norm(y)[0, 1:], norm(x)[0, 1:])


@pytest.mark.parametrize("fraction,theta,start", [(1.0, 10000.0, 0), (0.25, 10000.0, 5), (0.5, 500000.0, 3)])
def test_rotary_matches_transformers_apply_rotary_pos_emb(fraction, theta, start):
    from transformers import GPTNeoXConfig
    from transformers.models.gpt_neox.modeling_gpt_neox import GPTNeoXRotaryEmbedding, apply_rotary_pos_emb

    C = config(n_embd=48, n_head=3, position="rotary", rotary_fraction=fraction, rotary_theta=theta)  # hs = 16
    hf_config = GPTNeoXConfig(hidden_size=48, num_attention_heads=3, rotary_pct=fraction, rotary_emb_base=theta,
                              max_position_embeddings=24)
    q, k = torch.randn(2, 7, 3, 16), torch.randn(2, 7, 2, 16)  # (B, T, nh, hs); k with fewer heads (GQA)
    positions = torch.arange(start, start + 7)[None]
    cos, sin = GPTNeoXRotaryEmbedding(hf_config)(q, positions)
    # transformers' layout is (B, nh, T, hs); ours the hook points' (B, T, nh, hs)
    ref_q, ref_k = apply_rotary_pos_emb(q.transpose(1, 2), k.transpose(1, 2), cos, sin)
    ours_q, ours_k = Rotary(C)(q, k, start)
    torch.testing.assert_close(ours_q, ref_q.transpose(1, 2), rtol=0, atol=1e-6)
    torch.testing.assert_close(ours_k, ref_k.transpose(1, 2), rtol=0, atol=1e-6)


def test_llama3_rope_scaling_matches_transformers():
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

    scaling = dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                   original_max_position_embeddings=16)
    hf_config = LlamaConfig(hidden_size=64, num_attention_heads=2, rope_theta=500000.0, rope_scaling=scaling,
                            max_position_embeddings=64)
    C = config(n_embd=64, n_head=2, block_size=64, position="rotary", rotary_theta=500000.0,
               rotary_scaling=("llama3", 8.0, 1.0, 4.0, 16))
    rotary = Rotary(C)
    torch.testing.assert_close(rotary.inv_freq, LlamaRotaryEmbedding(hf_config).inv_freq, rtol=1e-6, atol=0)
    assert not torch.equal(rotary.inv_freq, Rotary(config(n_embd=64, n_head=2, rotary_theta=500000.0)).inv_freq)


def test_rotary_scores_depend_only_on_relative_position():
    rotary = Rotary(config(position="rotary"))
    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)
    scores = [(rotary(q, k, s)[0] * rotary(k, q, s + 3)[0]).sum() for s in (0, 4, 11)]  # query at s, key at s+3
    torch.testing.assert_close(torch.stack(scores), scores[0].expand(3), rtol=1e-5, atol=1e-5)


def test_swiglu_and_relu2_are_their_formulas():
    C = config(mlp_hidden=17)
    x = torch.randn(2, 3, 48)
    swiglu, relu2 = SwiGLUMLP(C), ReLU2MLP(C)
    expected = swiglu.c_proj(F.silu(swiglu.c_gate(x)) * swiglu.c_fc(x))
    torch.testing.assert_close(swiglu(x), expected)
    torch.testing.assert_close(relu2(x), relu2.c_proj(torch.relu(relu2.c_fc(x)) ** 2))
    assert swiglu.c_fc.out_features == 17


def test_grouped_query_attention_is_multi_head_attention_with_repeated_kv_heads():
    gqa = model(n_kv_head=2, position="rotary")  # 6 query heads, 2 K/V heads: 3 queries per K/V head
    mha = GPT(config(position="rotary")).eval()
    hs, state = 8, gqa.state_dict()
    for i in range(2):
        W = state[f"transformer.h.{i}.attn.c_attn.weight"]  # (6 + 2 + 2) * hs rows: q, k, v
        b = state[f"transformer.h.{i}.attn.c_attn.bias"]
        for name, t in (("weight", W), ("bias", b)):
            q, k, v = t.split([6 * hs, 2 * hs, 2 * hs])
            repeat = lambda kv: kv.view(2, hs, *kv.shape[1:]).repeat_interleave(3, dim=0).flatten(0, 1)
            state[f"transformer.h.{i}.attn.c_attn.{name}"] = torch.cat([q, repeat(k), repeat(v)])
    mha.load_state_dict(state)
    idx = torch.randint(0, 37, (2, 11))
    torch.testing.assert_close(gqa(idx)[0], mha(idx)[0], rtol=1e-5, atol=1e-5)
    assert gqa.transformer.h[0].attn.c_attn.out_features < mha.transformer.h[0].attn.c_attn.out_features


# ------------------------------------------------------------------ every combination in one GPT

COMBINATIONS = [
    dict(position="rotary"),
    dict(position="rotary", rotary_fraction=0.5, parallel_residual=True, mlp="gelu_exact"),  # Pythia-like
    dict(position="rotary", norm="rmsnorm", mlp="swiglu", mlp_hidden=30, n_kv_head=3, bias=False, qkv_bias=True,
         tie_weights=False),  # Qwen2-like
    dict(position="rotary", norm="rmsnorm", mlp="swiglu", n_kv_head=2, qk_norm=True, bias=False, head_dim=10),
    dict(model_type="modern-mini", n_layer=None, n_head=None, n_embd=None),  # nanochat-like
    dict(norm="rmsnorm", norm_weight=False, mlp="relu2", logit_softcap=5.0, n_kv_head=1),  # learned positions + MQA
]


@pytest.mark.parametrize("switches", COMBINATIONS, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items())[:60])
def test_kv_cache_decoding_equals_the_full_forward_pass(switches):
    m = model(**switches)
    idx = torch.randint(0, 37, (2, 13))
    full = m(idx)[0]
    from mingpt.generation import KVCache

    cache = KVCache(m.config.n_layer, m.config.block_size)
    steps = [m(idx[:, :6], kv_cache=cache)[0]] + [m(idx[:, t : t + 1], kv_cache=cache)[0] for t in range(6, 13)]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-4, atol=1e-4)
    with_cache = m.generate(idx[:, :4], 12)
    assert torch.equal(with_cache, m.generate(idx[:, :4], 12, use_cache=False))
    # causality: changing the last token changes no logit before it
    changed = idx.clone()
    changed[:, -1] = (changed[:, -1] + 1) % 37
    torch.testing.assert_close(m(changed)[0][:, :-1], full[:, :-1])


@pytest.mark.parametrize("switches", COMBINATIONS[:3], ids=["rotary", "pythia", "qwen2"])
def test_left_padded_batches_give_each_rows_own_tokens(switches):
    # rotary scores depend on relative positions only, so per-row offsets of a left-padded batch change nothing
    m = model(**switches)
    rows = [[3, 5, 7], [1, 2, 3, 4, 5, 6, 7], [9]]
    idx, mask = left_pad(rows)
    batched = m.generate(idx, 6, attention_mask=mask)[:, idx.size(1):]
    alone = [m.generate(torch.tensor([r]), 6)[0, len(r):] for r in rows]
    assert torch.equal(batched, torch.stack(alone))


def test_hook_points_carry_transformer_lens_names_and_values():
    m = model(position="rotary", mlp="swiglu", qk_norm=True, n_kv_head=2)
    names = list(m.hook_dict)
    block0 = [n for n in names if n.startswith("blocks.0.")]
    order = ["attn.hook_q", "attn.hook_k", "attn.hook_v", "attn.hook_rot_q", "attn.hook_rot_k", "attn.hook_pattern",
             "attn.hook_z", "mlp.hook_pre", "mlp.hook_pre_linear", "mlp.hook_post", "hook_resid_post"]
    assert [n for n in block0 if n.removeprefix("blocks.0.") in order] == [f"blocks.0.{n}" for n in order]
    idx = torch.randint(0, 37, (1, 9))
    logits, cache = m.run_with_cache(idx)
    torch.testing.assert_close(logits, m(idx)[0])
    attn = m.transformer.h[1].attn
    q_rot, k_rot = attn.rotary(attn.q_norm(cache["blocks.1.attn.hook_q"]), attn.k_norm(cache["blocks.1.attn.hook_k"]))
    torch.testing.assert_close(cache["blocks.1.attn.hook_rot_q"], q_rot)
    torch.testing.assert_close(cache["blocks.1.attn.hook_rot_k"], k_rot)
    assert cache["blocks.1.attn.hook_k"].shape == (1, 9, 2, 8)  # the K/V heads as stored: 2 of them
    assert cache["blocks.1.attn.hook_pattern"].shape == (1, 6, 9, 9)  # every query head attends
    assert "blocks.0.attn.hook_rot_q" not in model().hook_dict  # GPT-2 has no rotation to show


def test_modern_mini_preset_and_its_overrides():
    C = config(model_type="modern-mini", n_layer=None, n_head=None, n_embd=None)
    m = GPT(C)
    c = m.config
    assert (c.n_layer, c.n_head, c.n_embd, c.position, c.norm, c.norm_weight, c.mlp, c.qk_norm, c.bias,
            c.tie_weights) == (6, 6, 192, "rotary", "rmsnorm", False, "relu2", True, False, False)
    assert "transformer.wpe.weight" not in m.state_dict() and m.lm_head.weight is not m.transformer.wte.weight
    assert not any(name.endswith(".bias") for name, _ in m.named_parameters())
    logits = m(torch.randint(0, 37, (1, 5)))[0]
    assert logits.abs().max() < c.logit_softcap
    C.mlp = "swiglu"  # a switch changed from its default wins over the preset
    assert (GPT(C).config.mlp, GPT(C).config.position) == ("swiglu", "rotary")


def test_a_modern_model_trains_and_the_optimizer_takes_every_parameter():
    m = model(position="rotary", norm="rmsnorm", mlp="swiglu", n_kv_head=3, qk_norm=True)
    from mingpt.trainer import Trainer

    train = Trainer.get_default_config()
    optimizer = m.configure_optimizers(train)
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(m.parameters()))
    idx = torch.randint(0, 37, (4, 12))
    m.train()
    losses = []
    for _ in range(5):
        _, loss = m(idx, idx)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("bad,message", [
    (dict(n_kv_head=4), "multiple of n_kv_head"),
    (dict(position="alibi"), "position must be one of"),
    (dict(mlp="geglu"), "mlp must be one of"),
    (dict(position="rotary", rotary_fraction=0.1), "even number"),
    (dict(rotary_scaling=("yarn", 1, 2, 3, 4)), "rotary_scaling"),
    (dict(norm_weight=False), "norm_weight=False needs"),
])
def test_bad_switches_say_what_to_change(bad, message):
    with pytest.raises(ValueError, match=message):
        GPT(config(**bad))


def test_a_students_attention_cannot_stand_in_for_rotary():
    from mingpt.model import CausalSelfAttention

    with pytest.raises(ValueError, match="custom attention"):
        GPT(config(position="rotary"), attention=CausalSelfAttention)
    GPT(config(mlp="relu2"), attention=CausalSelfAttention)  # a switch the attention does not meet is fine


def test_gpt2_config_builds_exactly_the_gpt2_parts():
    m = GPT(config())
    assert type(m.transformer.h[0].attn).__name__ == "CausalSelfAttention"
    assert type(m.transformer.h[0].mlp).__name__ == "MLP" and type(m.transformer.h[0]).__name__ == "Block"
    assert list(itertools.islice(m.state_dict(), 3)) == ["transformer.wte.weight", "transformer.wpe.weight",
                                                          "transformer.h.0.ln_1.weight"]
