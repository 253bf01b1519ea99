"""
Open weights beyond GPT-2 (mingpt/io/open_weights.py): tiny random-weight models of each family, built and saved by
transformers (the oracle, a test-only dependency), loaded by GPT.from_pretrained without it: the same logits (fp32,
1e-5) and, with mingpt's KV cache, the same greedy tokens as transformers' generate.
"""

import json

import pytest
import torch
import transformers

from mingpt.interp import patching
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


@pytest.mark.parametrize("name", ["llama3.2-rope-scaling", "qwen2", "qwen3", "pythia"])
def test_save_pretrained_writes_what_transformers_reads(name, tmp_path):
    hf = save_reference(name, tmp_path / "hf")
    GPT.from_pretrained(tmp_path / "hf").save_pretrained(tmp_path / "mingpt")
    again = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "mingpt").eval()
    assert type(again) is type(hf)
    idx = torch.arange(15)[None] % VOCAB
    with torch.no_grad():
        torch.testing.assert_close(again(idx).logits, hf(idx).logits, rtol=1e-5, atol=1e-5)


def test_a_model_built_with_the_switches_saves_as_its_family_or_says_why_not(tmp_path):
    config = GPT.get_default_config()
    config.merge_from_dict(dict(n_layer=2, n_head=4, n_embd=32, vocab_size=VOCAB, block_size=BLOCK, position="rotary",
                                norm="rmsnorm", mlp="swiglu", mlp_hidden=50, n_kv_head=2, bias=False))
    model = GPT(config).eval()
    model.save_pretrained(tmp_path / "llama")
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "llama").eval()
    assert type(hf).__name__ == "LlamaForCausalLM"
    idx = torch.arange(11)[None]
    with torch.no_grad():
        torch.testing.assert_close(hf(idx).logits, model(idx)[0], rtol=1e-5, atol=1e-5)
    config.model_type, config.n_layer, config.n_head, config.n_embd = "modern-mini", None, None, None
    with pytest.raises(ValueError, match="no Hugging Face family describes this model"):
        GPT(config).save_pretrained(tmp_path / "mini")  # RMSNorm without a weight, soft-capped logits
    assert not (tmp_path / "mini").exists()


def test_hook_values_of_a_loaded_llama_equal_transformer_lens(tmp_path):
    # TransformerLens builds the same Llama (GQA, rotary) from the same transformers model: every hook point both
    # have carries the same tensor, the RMSNorms' hook_scale and hook_normalized (x / scale, before the gain) too.
    from transformer_lens import HookedTransformer, HookedTransformerConfig
    from transformer_lens.pretrained.weight_conversions.llama import convert_llama_weights

    hf = save_reference("llama", tmp_path)
    c = hf.config
    cfg = HookedTransformerConfig(
        d_model=c.hidden_size, d_head=8, n_heads=6, n_key_value_heads=2, d_mlp=c.intermediate_size, n_layers=2,
        n_ctx=BLOCK, d_vocab=VOCAB, eps=c.rms_norm_eps, act_fn="silu", normalization_type="RMS", final_rms=True,
        positional_embedding_type="rotary", rotary_adjacent_pairs=False, rotary_dim=8, rotary_base=c.rope_theta,
        gated_mlp=True, original_architecture="LlamaForCausalLM", dtype=torch.float32, default_prepend_bos=False)
    tl = HookedTransformer(cfg)
    tl.load_and_process_state_dict(convert_llama_weights(hf, cfg), fold_ln=False, center_writing_weights=False,
                                   center_unembed=False, fold_value_biases=False)
    model = GPT.from_pretrained(tmp_path)
    idx = torch.randint(0, VOCAB, (2, 13), generator=torch.Generator().manual_seed(2))
    tl_logits, tl_cache = tl.run_with_cache(idx)
    logits, cache = model.run_with_cache(idx)
    # TL sums in its own order (einsums, its own rotary tables): agreement to 1e-4 on logits of size ~10
    torch.testing.assert_close(logits, tl_logits, rtol=1e-4, atol=1e-4)
    shared = [name for name in cache.keys() if name in tl_cache.cache_dict]
    for i in range(2):
        for point in ("attn.hook_q", "attn.hook_k", "attn.hook_v", "attn.hook_rot_q", "attn.hook_rot_k",
                      "attn.hook_pattern", "attn.hook_z", "mlp.hook_pre", "mlp.hook_pre_linear", "mlp.hook_post",
                      "hook_resid_mid", "hook_resid_post", "hook_attn_out", "hook_mlp_out", "ln1.hook_scale",
                      "ln1.hook_normalized", "ln2.hook_scale", "ln2.hook_normalized"):
            assert f"blocks.{i}.{point}" in shared
    assert {"ln_final.hook_scale", "ln_final.hook_normalized"} <= set(shared)
    for name in shared:
        torch.testing.assert_close(cache[name], tl_cache[name], rtol=1e-4, atol=1e-4, msg=name)
    for point in ("blocks.0.ln2.hook_normalized", "blocks.1.ln1.hook_scale", "ln_final.hook_normalized"):
        def edit(x, hook):  # the same edit in both: what each model does with it must agree
            return x * torch.linspace(0.5, 1.5, x.size(-1))
        torch.testing.assert_close(model.run_with_hooks(idx, fwd_hooks=[(point, edit)]),
                                   tl.run_with_hooks(idx, fwd_hooks=[(point, edit)]), rtol=1e-4, atol=1e-4, msg=point)
    # TL's patching on the same Llama: the same grids (k and v: one cell per key/value head in both), and its logit
    # lens (each depth through the final RMSNorm with its own statistics and the gain)
    from transformer_lens import patching as tl_patching
    corrupted = idx.clone()
    corrupted[:, 6] = (corrupted[:, 6] + 3) % VOCAB

    def metric(logits):
        return (logits[:, -1, 3] - logits[:, -1, 5]).mean()

    for grid in ("resid_pre", "attn_head_out_all_pos", "attn_head_q_by_pos", "attn_head_k_by_pos",
                 "attn_head_v_all_pos", "attn_head_pattern_all_pos"):
        ours = getattr(patching, f"get_act_patch_{grid}")(model, corrupted, cache, metric)
        theirs = getattr(tl_patching, f"get_act_patch_{grid}")(tl, corrupted, tl_cache, metric)
        assert (ours - ours.flatten()[0]).abs().max() > 1e-3, grid  # the cells differ
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4, msg=grid)
    torch.testing.assert_close(cache.accumulated_resid(apply_ln=True), tl_cache.accumulated_resid(apply_ln=True),
                               rtol=1e-4, atol=1e-4)
    for weights in ("W_Q", "W_K", "W_V", "W_O"):  # TL shows each K/V head once per query head of its group
        torch.testing.assert_close(getattr(model, weights), getattr(tl, weights), msg=weights)
