"""
TL's per-head inputs (mingpt/interp/head_inputs.py): with model.set_use_split_qkv_input / set_use_attn_in /
set_use_hook_mlp_in on, hook_q_input, hook_k_input, hook_v_input, hook_attn_in and hook_mlp_in hold what TL's own
HookedTransformer holds there with the same switches on the same weights, an edit there moves the logits as it
moves TL's, and an edit of one head's copy changes that head alone. GPT-2's attention and grouped K/V heads.
"""

import pytest
import torch
import torch.nn as nn

from tl_reference import import_transformer_lens, tl_model

from mingpt.interp import patching
from mingpt.interp.head_inputs import PerHeadProjection

V, T, L, NH, C = 97, 11, 2, 3, 48
tl_lib = import_transformer_lens()
SWITCHES = {"split_qkv_input": ("hook_q_input", "hook_k_input", "hook_v_input"), "attn_in": ("hook_attn_in",),
            "hook_mlp_in": ("hook_mlp_in",)}


def switch(model, names, on=True):
    for name in names:
        getattr(model, f"set_use_{name}")(on)


def sharpened(model):
    with torch.no_grad():  # larger weights than GPT-2's init (as test_tl_parity.py): edits and patches show
        for name, p in model.named_parameters():
            if name.endswith("weight") and "ln" not in name:
                p.mul_(18.0 if "c_attn" in name else 3.0)
    return model.eval()


@pytest.fixture
def model(tiny_gpt):
    return sharpened(tiny_gpt(ln_noise=0.5, bias_noise=0.3, n_layer=L, n_head=NH, n_embd=C, vocab_size=V,
                              block_size=16))


@pytest.fixture
def gqa_model(tiny_gpt):
    # 6 query heads reading 2 K/V heads; otherwise GPT-2 (learned positions, LayerNorm, GELU MLP), which TL builds too
    return sharpened(tiny_gpt(ln_noise=0.5, bias_noise=0.3, n_layer=L, n_head=6, n_kv_head=2, n_embd=C,
                              vocab_size=V, block_size=16))


def tl_gqa_model(model):
    """TL's GroupedQueryAttention HookedTransformer with gqa_model's weights (its K/V weights are TL's _W_K...)."""
    c = model.config
    nh, nkv, hs = c.n_head, c.n_kv_head, c.n_embd // c.n_head
    cfg = tl_lib.HookedTransformerConfig(
        n_layers=c.n_layer, d_model=c.n_embd, n_heads=nh, n_key_value_heads=nkv, d_head=hs, d_mlp=4 * c.n_embd,
        d_vocab=c.vocab_size, n_ctx=c.block_size, act_fn="gelu_new", normalization_type="LN",
        eps=c.layer_norm_epsilon, device="cpu", default_prepend_bos=False)
    sd = {"embed.W_E": model.transformer.wte.weight, "pos_embed.W_pos": model.transformer.wpe.weight,
          "unembed.W_U": model.lm_head.weight.T, "unembed.b_U": torch.zeros(c.vocab_size),
          "ln_final.w": model.transformer.ln_f.weight, "ln_final.b": model.transformer.ln_f.bias}
    for i, block in enumerate(model.transformer.h):
        p, attn = f"blocks.{i}.", block.attn
        W, b = attn.c_attn.weight, attn.c_attn.bias  # rows: nh q heads, nkv k heads, nkv v heads
        for name, rows, heads in (("W_Q", slice(0, nh * hs), nh), ("_W_K", slice(nh * hs, (nh + nkv) * hs), nkv),
                                  ("_W_V", slice((nh + nkv) * hs, None), nkv)):
            sd[p + "attn." + name] = W[rows].view(heads, hs, c.n_embd).transpose(1, 2)
            sd[p + "attn." + name.replace("W", "b")] = b[rows].view(heads, hs)
        sd[p + "attn.W_O"], sd[p + "attn.b_O"] = attn.c_proj.weight.T.reshape(nh, hs, c.n_embd), attn.c_proj.bias
        sd.update({p + "ln1.w": block.ln_1.weight, p + "ln1.b": block.ln_1.bias, p + "ln2.w": block.ln_2.weight,
                   p + "ln2.b": block.ln_2.bias, p + "mlp.W_in": block.mlp.c_fc.weight.T,
                   p + "mlp.b_in": block.mlp.c_fc.bias, p + "mlp.W_out": block.mlp.c_proj.weight.T,
                   p + "mlp.b_out": block.mlp.c_proj.bias})
    tl = tl_lib.HookedTransformer(cfg, move_to_device=False)
    tl.load_and_process_state_dict({k: v.detach().clone() for k, v in sd.items()}, fold_ln=False,
                                   center_writing_weights=False, center_unembed=False, fold_value_biases=False)
    return tl.eval()


def tokens():
    return torch.randint(0, V, (2, T), generator=torch.Generator().manual_seed(3))


def close(ours, theirs, msg=None):
    torch.testing.assert_close(ours, theirs, atol=3e-5, rtol=3e-5, msg=msg)


# ------------------------------------------------------------------------------------------------ values
@pytest.mark.parametrize("names", [["split_qkv_input"], ["attn_in"], ["hook_mlp_in"], list(SWITCHES)])
def test_every_hook_value_equals_transformer_lens_with_the_same_switches(model, names):
    tl = tl_model(model)
    switch(model, names), switch(tl, names)
    idx = tokens()
    logits, cache = model.run_with_cache(idx)
    tl_logits, tl_cache = tl.run_with_cache(idx)
    close(logits, tl_logits)
    new = [f"blocks.{i}.{point}" for i in range(L) for name in names for point in SWITCHES[name]]
    assert set(new) <= set(cache.keys()) and set(new) <= set(model.hook_dict)
    # every point TL recorded, ln1's (B, T, heads, ...) copies included, and nothing TL does not have
    assert sorted(cache.keys()) == sorted(tl_cache.cache_dict)
    for name in cache:
        close(cache[name], tl_cache[name], msg=name)
    for name in new:  # TL's shapes: (B, T, heads, C) per head, (B, T, C) for the MLP's input
        assert cache[name].shape == ((2, T, C) if name.endswith("mlp_in") else (2, T, NH, C))


def test_switches_off_leave_the_model_as_it_was(model):
    idx = tokens()
    with torch.no_grad():
        before, names, keys = model(idx)[0], list(model.hook_dict), list(model.state_dict())
        parameters = [id(p) for p in model.parameters()]
        switch(model, SWITCHES)
        assert isinstance(model.transformer.h[0].attn.c_attn, PerHeadProjection)
        assert list(model.state_dict()) == keys and [id(p) for p in model.parameters()] == parameters
        close(model(idx)[0], before)
        switch(model, SWITCHES, on=False)
        assert type(model.transformer.h[0].attn.c_attn) is nn.Linear
        assert list(model.hook_dict) == names
        assert torch.equal(model(idx)[0], before)  # the plain path again, bit for bit


# ------------------------------------------------------------------------------------------------ edits
DIRECTION = torch.randn(C, generator=torch.Generator().manual_seed(5)) * 0.2  # not a rescaling: ln1 undoes those


def edit_head_1(x, hook):  # one head's copy only: (B, T, heads, C)
    x[:, 3:, 1] += DIRECTION


def edit_stream(x, hook):  # hook_mlp_in: (B, T, C)
    x[:, 3:] += DIRECTION


EDITS = {"hook_q_input": edit_head_1, "hook_k_input": edit_head_1, "hook_v_input": edit_head_1,
         "hook_attn_in": edit_head_1, "hook_mlp_in": edit_stream}


@pytest.mark.parametrize("point", EDITS)
def test_an_edit_at_each_new_point_moves_the_logits_as_in_transformer_lens(model, point):
    tl = tl_model(model)
    names = [name for name, points in SWITCHES.items() if point in points]
    switch(model, names), switch(tl, names)
    idx = tokens()
    hooks = [(f"blocks.0.{point}", EDITS[point])]
    edited, plain = model.run_with_hooks(idx, fwd_hooks=hooks), model.run_with_hooks(idx)
    assert (edited - plain).abs().max() > 0.05  # the edit matters ...
    close(edited, tl.run_with_hooks(idx, fwd_hooks=hooks))  # ... and as much as in TL


def test_an_edit_of_one_heads_key_input_changes_that_heads_keys_only(model):
    model.set_use_split_qkv_input(True)
    idx = tokens()
    _, plain = model.run_with_cache(idx)
    _, edited = model.run_with_cache(idx, fwd_hooks=[("blocks.1.hook_k_input", edit_head_1)])
    k, k0 = edited["k", 1], plain["k", 1]  # (B, T, nh, hs)
    assert (k[:, :, 1] - k0[:, :, 1]).abs().max() > 0.1
    assert torch.equal(k[:, :, [0, 2]], k0[:, :, [0, 2]])
    assert torch.equal(edited["q", 1], plain["q", 1]) and torch.equal(edited["v", 1], plain["v", 1])
    assert torch.equal(edited["resid_pre", 1], plain["resid_pre", 1])  # the edit is of a copy, not the stream
    pattern, pattern0 = edited["pattern", 1], plain["pattern", 1]  # (B, nh, T, T): head 1's attention moves alone
    assert torch.equal(pattern[:, [0, 2]], pattern0[:, [0, 2]]) and not torch.equal(pattern[:, 1], pattern0[:, 1])


def test_grouped_kv_heads_have_one_input_copy_per_kv_head_as_transformer_lens(gqa_model):
    tl = tl_gqa_model(gqa_model)
    gqa_model.set_use_split_qkv_input(True), tl.set_use_split_qkv_input(True)
    gqa_model.set_use_hook_mlp_in(True), tl.set_use_hook_mlp_in(True)
    idx = tokens()
    logits, cache = gqa_model.run_with_cache(idx)
    tl_logits, tl_cache = tl.run_with_cache(idx)
    close(logits, tl_logits)
    assert cache["blocks.0.hook_q_input"].shape == (2, T, 6, C)
    assert cache["blocks.0.hook_k_input"].shape == (2, T, 2, C)  # one copy per K/V head
    assert sorted(cache.keys()) == sorted(tl_cache.cache_dict)
    for name in cache:
        close(cache[name], tl_cache[name], msg=name)
    hooks = [("blocks.1.hook_k_input", edit_head_1)]  # K/V head 1, read by query heads 3, 4, 5
    _, edited = gqa_model.run_with_cache(idx, fwd_hooks=hooks)
    close(gqa_model.run_with_hooks(idx, fwd_hooks=hooks), tl.run_with_hooks(idx, fwd_hooks=hooks))
    assert torch.equal(edited["k", 1][:, :, 0], cache["k", 1][:, :, 0])
    assert (edited["k", 1][:, :, 1] - cache["k", 1][:, :, 1]).abs().max() > 0.1
    pattern, pattern0 = edited["pattern", 1], cache["pattern", 1]
    assert torch.equal(pattern[:, :3], pattern0[:, :3]) and not torch.equal(pattern[:, 3:], pattern0[:, 3:])
    with pytest.raises(ValueError, match="set_use_split_qkv_input"):
        gqa_model.set_use_attn_in(True)  # as TL: one input per query head cannot feed shared K/V heads


def test_an_attention_only_model_has_no_mlp_input(tiny_gpt):
    model = tiny_gpt(attn_only=True)
    with pytest.raises(ValueError, match="attention-only"):
        model.set_use_hook_mlp_in(True)
    assert not model.use_hook_mlp_in
    with pytest.raises(TypeError, match="True or False"):
        model.set_use_split_qkv_input(1)


# ------------------------------------------------------------------------------------------------ uses
def test_generation_with_a_kv_cache_is_unchanged_with_the_switches_on(model, gqa_model):
    for m in (model, gqa_model):
        idx = tokens()[:, :4]
        expected = m.generate(idx, 8)
        switch(m, ["split_qkv_input", "hook_mlp_in"] + (["attn_in"] if m is model else []))
        seen = []

        def record(x, hook, seen=seen):
            seen.append(x.shape)

        with m.hooks(fwd_hooks=[("blocks.1.hook_k_input", record)]):
            assert torch.equal(m.generate(idx, 8), expected)  # the KV cache holds the per-head keys as ever
        assert seen[0][1] == 4 and seen[-1][1] == 1  # the prompt, then one new position a step


def test_patching_each_heads_key_input_equals_transformer_lens(model):
    tl = tl_model(model)
    model.set_use_split_qkv_input(True), tl.set_use_split_qkv_input(True)
    clean = tokens()
    corrupted = clean.clone()
    corrupted[:, 4] = (corrupted[:, 4] + 7) % V

    def metric(logits):
        return logits[:, 4:, 5].mean() - logits[:, 4:, 9].mean()

    _, clean_cache = model.run_with_cache(clean)
    _, tl_clean_cache = tl.run_with_cache(clean)
    theirs = tl_lib.patching.generic_activation_patch(
        tl, corrupted, tl_clean_cache, metric, patch_setter=tl_lib.patching.layer_head_vector_patch_setter,
        activation_name="k_input", index_axis_names=("layer", "head"))
    for method in ("batched", "loop"):
        ours = patching.generic_activation_patch(model, corrupted, clean_cache, metric, "k_input", (L, NH),
                                                 lambda i: (slice(None), slice(None), i[1]), method=method)
        assert (ours - ours[0, 0]).abs().max() > 0.01  # the heads differ
        close(ours, theirs.to(ours.dtype))


@pytest.mark.parametrize("modern", [
    dict(position="rotary", norm="rmsnorm", qk_norm=True, n_kv_head=1, mlp="swiglu"),  # Llama-like, one K/V head
    dict(parallel_residual=True, position="rotary"),  # GPT-NeoX-like: hook_mlp_in is resid_pre there
])
def test_the_switches_change_no_output_of_the_modern_parts(tiny_gpt, modern):
    model = sharpened(tiny_gpt(n_layer=L, n_head=4, n_embd=32, vocab_size=V, block_size=16, **modern))
    idx = tokens()
    expected, expected_cache = model.run_with_cache(idx)
    generated = model.generate(idx[:, :3], 6)
    switch(model, ["split_qkv_input", "hook_mlp_in"])
    logits, cache = model.run_with_cache(idx)
    close(logits, expected)
    mlp_input = "resid_pre" if modern.get("parallel_residual") else "resid_mid"
    close(cache["blocks.1.hook_mlp_in"], expected_cache[f"blocks.1.hook_{mlp_input}"])
    close(cache["blocks.1.hook_k_input"], expected_cache["blocks.1.hook_resid_pre"][:, :, None].expand(
        -1, -1, model.config.n_kv_head or 4, -1))
    assert torch.equal(model.generate(idx[:, :3], 6), generated)
