"""Activation patching: the batched sweep equals TL's one-forward-per-cell loop, and the known identities hold."""

import pytest
import torch

from mingpt.interp import patching

V, T, L, NH = 61, 8, 3, 4
FUNCTIONS = {  # name -> grid shape
    "get_act_patch_resid_pre": (L, T), "get_act_patch_resid_mid": (L, T), "get_act_patch_attn_out": (L, T),
    "get_act_patch_mlp_out": (L, T), "get_act_patch_attn_head_out_all_pos": (L, NH),
    "get_act_patch_attn_head_out_by_pos": (L, T, NH), "get_act_patch_attn_head_pattern_all_pos": (L, NH),
}
DIFF = 3  # clean and corrupted differ only at this position


@pytest.fixture(scope="module")
def model(tiny_gpt):
    model = tiny_gpt(n_layer=L, n_head=NH, vocab_size=V, block_size=16).eval()
    with torch.no_grad():  # larger weights than GPT-2's init, so that patches move the metric visibly
        for p in model.parameters():
            p.mul_(4.0)
    return model


@pytest.fixture(scope="module")
def tokens():
    clean = torch.randint(0, V, (2, T), generator=torch.Generator().manual_seed(3))
    corrupted = clean.clone()
    corrupted[:, DIFF] = (corrupted[:, DIFF] + 7) % V
    return clean, corrupted


def metric(logits):
    return logits[:, -1, 5].mean() - logits[:, -1, 9].mean()


@pytest.fixture(scope="module")
def runs(model, tokens):
    clean, corrupted = tokens
    with torch.no_grad():
        _, clean_cache = model.run_with_cache(clean)
        clean_logits, corrupted_logits = model(clean)[0], model(corrupted)[0]  # the plain (fused) path
    return clean_cache, float(metric(clean_logits)), float(metric(corrupted_logits))


@pytest.mark.parametrize("name", FUNCTIONS)
def test_batched_sweep_equals_the_one_forward_per_cell_loop(model, tokens, runs, name):
    clean_cache, clean_metric, corrupted_metric = runs
    function = getattr(patching, name)
    fast = function(model, tokens[1], clean_cache, metric)
    slow = function(model, tokens[1], clean_cache, metric, method="loop")
    assert fast.shape == FUNCTIONS[name]
    torch.testing.assert_close(fast, slow, atol=2e-5, rtol=1e-5)
    assert (fast - corrupted_metric).abs().max() > 1e-3  # some cell moved the metric: the test has teeth
    tiny_chunks = function(model, tokens[1], clean_cache, metric, max_tokens=1)  # one cell per forward
    torch.testing.assert_close(tiny_chunks, fast, atol=2e-5, rtol=1e-5)


def test_clean_into_clean_gives_the_clean_metric_everywhere(model, tokens, runs):
    clean_cache, clean_metric, _ = runs
    for name in ("get_act_patch_resid_pre", "get_act_patch_attn_head_out_by_pos"):
        for method in ("batched", "loop"):
            grid = getattr(patching, name)(model, tokens[0], clean_cache, metric, method=method)
            torch.testing.assert_close(grid, torch.full_like(grid, clean_metric), atol=1e-5, rtol=1e-5)


def test_positions_before_the_first_difference_leave_the_corrupted_metric(model, tokens, runs):
    clean_cache, clean_metric, corrupted_metric = runs
    fast = patching.get_act_patch_resid_pre(model, tokens[1], clean_cache, metric)
    slow = patching.get_act_patch_resid_pre(model, tokens[1], clean_cache, metric, method="loop")
    assert torch.equal(fast[:, :DIFF], torch.full((L, DIFF), corrupted_metric))  # skipped: exact
    torch.testing.assert_close(slow[:, :DIFF], torch.full((L, DIFF), corrupted_metric), atol=1e-5, rtol=1e-5)
    # At layer 0 the streams differ only at DIFF: patching it there restores the clean run entirely.
    assert fast[0, DIFF] == pytest.approx(clean_metric, abs=1e-5)
    assert torch.equal(fast[0, DIFF + 1:], torch.full((T - DIFF - 1,), corrupted_metric))  # same token: no change


def test_progress_bar_for_long_sweeps(model, tokens, runs, capsys):
    patching.get_act_patch_resid_pre(model, tokens[1], runs[0], metric, progress=True)
    assert "patching resid_pre" in capsys.readouterr().err


def test_bad_input_gets_clear_errors(model, tokens, runs):
    clean_cache = runs[0]
    _, partial = model.run_with_cache(tokens[0], names_filter=lambda name: "resid" in name)
    with pytest.raises(KeyError, match="clean_cache has no 'blocks.0.attn.hook_z'"):
        patching.get_act_patch_attn_head_out_all_pos(model, tokens[1], partial, metric)
    with pytest.raises(ValueError, match=r"same \(B, T\)"):
        patching.get_act_patch_resid_pre(model, tokens[1][:, :5], clean_cache, metric)
    with pytest.raises(ValueError, match="must return a scalar"):
        patching.get_act_patch_resid_pre(model, tokens[1], clean_cache, lambda logits: logits[:, -1, 0])
    with pytest.raises(ValueError, match="method must be"):
        patching.get_act_patch_resid_pre(model, tokens[1], clean_cache, metric, method="fast")


@pytest.mark.parametrize("max_tokens", [0, True, 2.5])
def test_max_tokens_must_be_a_positive_int(model, tokens, runs, max_tokens):
    with pytest.raises(ValueError, match=rf"max_tokens must be an int >= 1, got {max_tokens!r}"):
        patching.get_act_patch_resid_pre(model, tokens[1], runs[0], metric, max_tokens=max_tokens)
