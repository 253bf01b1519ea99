"""Patching on today's architectures (rotary, grouped-query attention, QK-norm, RMSNorm, the parallel block, a
soft-capped head, attention only): the batched sweep equals the one-forward-per-cell loop, and K/V grids have
the K/V heads."""

import pytest
import torch

from mingpt.interp import patching

V, T = 53, 10
DIFF = 4  # clean and corrupted differ only here
ARCHITECTURES = {
    "gpt2": dict(),
    "rotary-gqa-qknorm": dict(position="rotary", n_kv_head=2, qk_norm=True, norm="rmsnorm", mlp="swiglu",
                              bias=False),
    "parallel-softcap": dict(position="rotary", parallel_residual=True, logit_softcap=15.0, mlp="relu2"),
    "partial-rotary-one-kv-head": dict(position="rotary", rotary_fraction=0.25, n_kv_head=1),
    "attn-only": dict(attn_only=True),
}


@pytest.fixture(scope="module", params=list(ARCHITECTURES))
def setup(request, tiny_gpt):
    model = tiny_gpt(n_layer=2, n_head=4, n_embd=32, vocab_size=V, block_size=16, ln_noise=0.2,
                     **ARCHITECTURES[request.param]).eval()
    with torch.no_grad():  # larger weights than the init's, so that patches move the metric visibly
        for p in model.parameters():
            p.mul_(3.0)
    clean = torch.randint(0, V, (2, T), generator=torch.Generator().manual_seed(1))
    corrupted = clean.clone()
    corrupted[:, DIFF] = (corrupted[:, DIFF] + 11) % V
    with torch.no_grad():
        _, clean_cache = model.run_with_cache(clean)
    return model, corrupted, clean_cache


def metric(logits):
    return logits[:, -1, 5].mean() - logits[:, -1, 9].mean()


@pytest.mark.parametrize("function", ["get_act_patch_resid_pre", "get_act_patch_attn_out",
                                      "get_act_patch_attn_head_out_by_pos", "get_act_patch_attn_head_k_all_pos",
                                      "get_act_patch_attn_head_v_by_pos", "get_act_patch_attn_head_pattern_all_pos"])
def test_batched_sweep_equals_the_loop(setup, function):
    # Before the sweep read the stored keys from a KV cache, it fed the un-rotated hook_k to rotary models (and
    # crashed on them), and K/V grids of grouped-query models indexed heads that do not exist.
    model, corrupted, clean_cache = setup
    batched = getattr(patching, function)(model, corrupted, clean_cache, metric)
    loop = getattr(patching, function)(model, corrupted, clean_cache, metric, method="loop")
    torch.testing.assert_close(batched, loop, atol=2e-5, rtol=1e-5)
    assert (loop - loop.flatten()[0]).abs().max() > 1e-3  # the cells differ: the comparison is not vacuous


def test_key_and_value_grids_have_one_cell_per_kv_head(setup):
    model, corrupted, clean_cache = setup
    kv_heads = clean_cache["blocks.0.attn.hook_k"].size(2)
    grid = patching.get_act_patch_attn_head_k_all_pos(model, corrupted, clean_cache, metric)
    assert grid.shape == (model.config.n_layer, kv_heads)
    assert patching.get_act_patch_attn_head_q_all_pos(model, corrupted, clean_cache, metric).shape == (
        model.config.n_layer, model.config.n_head)
