"""
Open weights beyond GPT-2 (mingpt/io/open_weights.py): tiny random-weight models of each family, built and saved by
transformers (the oracle, a test-only dependency), loaded by GPT.from_pretrained without it: the same logits (fp32,
1e-5) and, with mingpt's KV cache, the same greedy tokens as transformers' generate.
"""

import json

import pytest
import torch
import transformers

from mingpt.model import GPT

VOCAB, BLOCK = 67, 40


def tiny(family, **extra):
    """A transformers config of `family` at odd sizes: 6 query heads, 2 key/value heads, hidden 48, MLP 37."""
    common = dict(vocab_size=VOCAB, hidden_size=48, num_hidden_layers=2, num_attention_heads=6,
                  max_position_embeddings=BLOCK, intermediate_size=37, initializer_range=0.4, bos_token_id=None,
                  eos_token_id=None, pad_token_id=None)
    if family == "gpt_neox":
        return transformers.GPTNeoXConfig(**{**common, "rotary_pct": 0.25, **extra})  # NeoX has no GQA
    kinds = {"llama": transformers.LlamaConfig, "qwen2": transformers.Qwen2Config, "qwen3": transformers.Qwen3Config}
    return kinds[family](**{**common, "num_key_value_heads": 2, **extra})


FAMILIES = {
    "llama": ("llama", dict(rope_theta=500000.0, tie_word_embeddings=True)),
    "llama3.2-rope-scaling": ("llama", dict(rope_scaling=dict(rope_type="llama3", factor=4.0, low_freq_factor=1.0,
                                                              high_freq_factor=4.0,
                                                              original_max_position_embeddings=8))),
    "smollm2-mha": ("llama", dict(num_key_value_heads=6, tie_word_embeddings=True)),
    "qwen2": ("qwen2", dict(tie_word_embeddings=False)),
    "qwen3": ("qwen3", dict(head_dim=10, tie_word_embeddings=True)),  # head_dim * heads != hidden, as in Qwen3
    "pythia": ("gpt_neox", dict(use_parallel_residual=True)),
    "gpt-neox-sequential": ("gpt_neox", dict(use_parallel_residual=False, rotary_pct=0.5, hidden_act="gelu_new")),
}


def save_reference(name, folder, **save_options):
    family, extra = FAMILIES[name]
    torch.manual_seed(0)
    hf = transformers.AutoModelForCausalLM.from_config(tiny(family, **extra)).eval()
    with torch.no_grad():  # also give the norms' gains and the biases something to do
        for n, p in hf.named_parameters():
            if "norm" in n or n.endswith(".bias"):
                p.add_(torch.randn_like(p) * 0.3)
    hf.save_pretrained(folder, **save_options)
    return hf


@pytest.mark.parametrize("name", list(FAMILIES))
def test_each_family_loads_with_transformers_logits_and_greedy_tokens(name, tmp_path):
    hf = save_reference(name, tmp_path)
    model = GPT.from_pretrained(tmp_path)
    assert model.num_parameters() == sum(p.numel() for p in hf.parameters())  # every weight has its place
    idx = torch.randint(0, VOCAB, (3, 17), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(model(idx)[0], hf(idx).logits, rtol=1e-5, atol=1e-5)
        prompt = idx[:1, :5]
        expected = hf.generate(prompt, max_new_tokens=20, do_sample=False, min_new_tokens=20)
    ours = model.generate(prompt, 20)  # greedy, through mingpt's KV cache
    assert ours.tolist() == expected.tolist()
    assert len(set(ours[0, 5:].tolist())) > 3  # the continuation is not one token repeated


def test_hook_points_of_a_loaded_llama_carry_rotated_queries(tmp_path):
    save_reference("llama", tmp_path)
    model = GPT.from_pretrained(tmp_path)
    _, cache = model.run_with_cache(torch.arange(9)[None])
    assert cache["blocks.1.attn.hook_rot_q"].shape == (1, 9, 6, 8)
    assert cache["blocks.1.attn.hook_rot_k"].shape == (1, 9, 2, 8)  # two key/value heads (GQA)
    assert not torch.allclose(cache["blocks.1.attn.hook_rot_q"][:, 1:], cache["blocks.1.attn.hook_q"][:, 1:])


def test_a_sharded_checkpoint_loads(tmp_path):
    hf = save_reference("qwen2", tmp_path, max_shard_size="30KB")
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1 and not (tmp_path / "model.safetensors").exists()
    model = GPT.from_pretrained(tmp_path)
    idx = torch.arange(12)[None]
    with torch.no_grad():
        torch.testing.assert_close(model(idx)[0], hf(idx).logits, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("field,value,message", [
    ("model_type", "qwen2_moe", "model_type='qwen2_moe'"),
    ("use_sliding_window", True, "use_sliding_window=True"),
    ("rope_scaling", {"rope_type": "yarn", "factor": 2.0}, "rope_scaling.rope_type='yarn'"),
    ("hidden_act", "relu", "hidden_act='relu'"),
    ("num_local_experts", 8, "num_local_experts=8"),
])
def test_what_mingpt_cannot_load_is_refused_by_name(tmp_path, field, value, message):
    save_reference("qwen2", tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, field: value}))
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
        GPT.from_pretrained(tmp_path)


def test_a_tensor_with_no_place_is_named(tmp_path):
    from safetensors.torch import load_file, save_file

    save_reference("llama", tmp_path)
    tensors = load_file(tmp_path / "model.safetensors")
    tensors["model.layers.0.self_attn.extra.weight"] = torch.zeros(2)
    save_file(tensors, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(KeyError, match="model.layers.0.self_attn.extra.weight"):
        GPT.from_pretrained(tmp_path)
