"""
LoRA (mingpt/posttrain/lora.py) on the modern parts (mingpt/modern): SwiGLU's c_gate / c_fc / c_proj and grouped-
query attention's c_attn / c_proj are nn.Linear under mingpt's names, so apply_lora targets them as it targets
GPT-2's; PEFT's "all-linear" and Hugging Face's layer names (gate_proj, o_proj...) are accepted too.
"""

from __future__ import annotations

import pytest
import torch

from mingpt.posttrain.lora import LoRALinear, apply_lora, merge_lora, unmerge_lora

LLAMA_LIKE = dict(position="rotary", norm="rmsnorm", mlp="swiglu", mlp_hidden=40, n_kv_head=2, bias=False,
                  qk_norm=True, tie_weights=False)  # 4 query heads share 2 key/value heads
MODELS = {"llama-like": LLAMA_LIKE, "modern-mini": dict(model_type="modern-mini", n_layer=None, n_head=None,
                                                        n_embd=None, vocab_size=50, block_size=16)}


def wrapped_names(model):
    return sorted(name for name, m in model.named_modules() if isinstance(m, LoRALinear))


@pytest.mark.parametrize("kind", list(MODELS))
def test_all_linear_adapts_every_modern_matrix_and_merging_changes_no_output(tiny_gpt, kind):
    model = tiny_gpt(dropout=0.0, **MODELS[kind]).eval()
    assert model.transformer.h[0].attn.n_kv_head < model.config.n_head or kind == "modern-mini"
    wrapped = apply_lora(model, "all-linear", r=4, alpha=8)
    per_layer = sorted(name.split(".", 3)[3] for name in wrapped if name.startswith("transformer.h.0."))
    gate = ["mlp.c_gate"] if kind == "llama-like" else []  # modern-mini's MLP is relu², with no gate
    assert per_layer == ["attn.c_attn", "attn.c_proj", "mlp.c_fc", *gate, "mlp.c_proj"]
    assert "lm_head" not in wrapped and sorted(wrapped) == wrapped_names(model)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():  # fresh adapters are zero: give them values, so a wrong merge would show
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    idx = torch.randint(0, model.config.vocab_size, (2, 12), generator=gen)
    with torch.no_grad():
        base_up = model.transformer.h[0].mlp.c_fc.base_layer.weight.clone()
        unmerged = model(idx)[0]
        merge_lora(model)
        assert not torch.equal(model.transformer.h[0].mlp.c_fc.weight, base_up)  # the delta went in
        torch.testing.assert_close(model(idx)[0], unmerged, atol=1e-5, rtol=0)
        unmerge_lora(model)
        torch.testing.assert_close(model.transformer.h[0].mlp.c_fc.weight, base_up, atol=1e-6, rtol=0)


def test_only_the_adapters_train_on_a_modern_model(tiny_gpt):
    model = tiny_gpt(dropout=0.0, **LLAMA_LIKE)
    apply_lora(model, ("c_attn", "c_gate", "c_fc", "c_proj"), r=2, alpha=4)
    frozen = {n: p.clone() for n, p in model.named_parameters() if not p.requires_grad}
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(".lora_A." in n or ".lora_B." in n for n in trainable)
    assert any(".c_gate.lora_A." in n for n in trainable) and any(".attn.c_attn.lora_B." in n for n in trainable)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    idx = torch.randint(0, 50, (2, 16))
    for _ in range(3):
        _, loss = model(idx, idx)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if n in frozen)
    assert model.transformer.h[1].mlp.c_gate.lora_B.weight.abs().sum() > 0  # B left zero: it did train


def test_hugging_face_layer_names_target_mingpts_layers(tiny_gpt):
    model = tiny_gpt(dropout=0.0, **LLAMA_LIKE)
    wrapped = apply_lora(model, ("gate_proj", "o_proj"), r=2)
    assert wrapped == ["transformer.h.0.attn.c_proj", "transformer.h.0.mlp.c_gate", "transformer.h.1.attn.c_proj",
                       "transformer.h.1.mlp.c_gate"]
    assert model.lora_config["target_modules"] == ["attn.c_proj", "mlp.c_gate"]  # recorded as mingpt's names
    with pytest.raises(ValueError, match="'q_proj'.*'c_attn'"):
        apply_lora(tiny_gpt(**LLAMA_LIKE), ("q_proj", "v_proj"))
