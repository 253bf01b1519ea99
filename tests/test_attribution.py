"""Attribution patching: the exact first-order formula (against autograd), exact where the metric is linear in
the patched activation, close to exact patching on the cells that matter, and Neel Nanda's recipe with TL's hooks."""

import pytest
import torch

from mingpt.interp import attribution, patching
from tl_oracle import tl_model_from_gpt

V, T, L, NH, C = 43, 9, 2, 4, 32


@pytest.fixture(scope="module")
def model(tiny_gpt):
    return tiny_gpt(ln_noise=0.3, bias_noise=0.1, n_layer=L, n_head=NH, n_embd=C, vocab_size=V, block_size=16,
                    tie_weights=False).eval()


@pytest.fixture(scope="module")
def runs(model):
    clean = torch.randint(0, V, (3, T), generator=torch.Generator().manual_seed(0))
    corrupted = clean.clone()
    corrupted[:, 4] = (corrupted[:, 4] + 5) % V
    with torch.no_grad():
        _, clean_cache = model.run_with_cache(clean)
    return clean, corrupted, clean_cache


def logit_diff(logits):
    return (logits[:, -1, 7] - logits[:, -1, 3]).mean()


def autograd_reference(model, corrupted, clean_cache, metric, name):
    """(clean - corrupted) * d metric / d activation, with the activation captured and differentiated by autograd."""
    seen = {}

    def capture(x, hook):
        seen["x"] = x.detach().clone().requires_grad_(True)
        return seen["x"]  # the rest of the forward pass is a function of this leaf

    value = metric(model.run_with_hooks(corrupted, fwd_hooks=[(name, capture)]))
    (grad,) = torch.autograd.grad(value, seen["x"])
    return value.item(), (clean_cache[name] - seen["x"].detach()) * grad


@pytest.mark.parametrize("short, keep", [("resid_pre", (1,)), ("attn_out", (1,)), ("mlp_out", (1,)),
                                         ("resid_mid", (1,)), ("attn_head_out_all_pos", (2,)),
                                         ("attn_head_out_by_pos", (1, 2))])
def test_each_grid_is_the_corrupted_metric_plus_the_first_order_term(model, runs, short, keep):
    _, corrupted, clean_cache = runs
    site = {"attn_head_out_all_pos": "z", "attn_head_out_by_pos": "z"}.get(short, short)
    grid = getattr(attribution, f"get_attr_patch_{short}")(model, corrupted, clean_cache, logit_diff)
    expected = []
    for layer in range(L):
        base, term = autograd_reference(model, corrupted, clean_cache, logit_diff, f"blocks.{layer}."
                                        + {"z": "attn.hook_z"}.get(site, f"hook_{site}"))
        expected.append(base + term.sum(dim=[d for d in range(term.dim()) if d not in keep]))
    torch.testing.assert_close(grid, torch.stack(expected), atol=1e-5, rtol=1e-5)
    exact = getattr(patching, f"get_act_patch_{short}")(model, corrupted, clean_cache, logit_diff)
    assert grid.shape == exact.shape
    assert all(p.grad is None for p in model.parameters())  # the weights' gradients are left alone


def log_prob_of_token_5(logits):  # reads every position's logits, not only the last
    return logits.log_softmax(-1)[:, :, 5].mean()


@pytest.mark.parametrize("softcap", [None, 3.0])
@pytest.mark.parametrize("metric", [logit_diff, log_prob_of_token_5])
def test_the_gradient_from_the_positions_the_metric_reads_only_is_the_whole_gradient(tiny_gpt, runs, softcap, metric):
    # attribution_patch backpropagates through lm_head only at the positions whose logits the metric reads (one
    # matmul with W_U; a soft-capped head is run again there): the same terms as autograd's from all the logits.
    model = tiny_gpt(ln_noise=0.3, bias_noise=0.1, n_layer=L, n_head=NH, n_embd=C, vocab_size=V, block_size=16,
                     logit_softcap=softcap).eval()
    clean, corrupted, _ = runs
    with torch.no_grad():
        for name, p in model.named_parameters():  # larger weights than GPT-2's init: terms well above rounding
            p.mul_(1.0 if "ln" in name else 3.0)
        _, clean_cache = model.run_with_cache(clean)
    names = ["blocks.0.attn.hook_z", "blocks.1.hook_resid_pre", "ln_final.hook_normalized"]
    base, terms = attribution.attribution_patch(model, corrupted, clean_cache, metric, names)
    for name in names:
        expected_base, expected = autograd_reference(model, corrupted, clean_cache, metric, name)
        assert base == pytest.approx(expected_base, abs=1e-6)
        scale = expected.abs().max()
        assert scale > 1e-4
        torch.testing.assert_close(terms[name], expected, atol=1e-5 * scale, rtol=1e-4, msg=name)


def test_exact_where_the_metric_is_linear_in_the_patched_activation(model, runs):
    # The logits are a linear function of ln_final.hook_normalized (lm_head), and a logit difference is linear in
    # the logits: there the first-order estimate is the patched metric itself.
    _, corrupted, clean_cache = runs
    name = "ln_final.hook_normalized"
    base, terms = attribution.attribution_patch(model, corrupted, clean_cache, logit_diff, [name])
    for position in (4, T - 1):
        def patch(x, hook):
            x = x.clone()
            x[:, position] = clean_cache[name][:, position]
            return x
        exact = logit_diff(model.run_with_hooks(corrupted, fwd_hooks=[(name, patch)])).item()
        assert base + terms[name][:, position].sum().item() == pytest.approx(exact, abs=1e-5)
    assert terms[name][:, :4].abs().max() == 0  # before the corrupted token both runs are the same


def test_close_to_exact_patching_for_a_small_corruption(model, runs):
    # A corrupted run near the clean one (a small change of the residual stream at one position) is where the
    # first-order term is accurate: the grids agree closely, and exactly where nothing changed.
    clean, _, clean_cache = runs
    nudge = lambda x, hook: x + 0.01 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))  # noqa
    with torch.no_grad():
        _, nudged_cache = model.run_with_cache(clean, fwd_hooks=[("blocks.0.hook_resid_pre", nudge)])
    approx = attribution.get_attr_patch_attn_head_out_by_pos(model, clean, nudged_cache, logit_diff)
    exact = patching.get_act_patch_attn_head_out_by_pos(model, clean, nudged_cache, logit_diff, method="loop")
    torch.testing.assert_close(approx, exact, atol=2e-4, rtol=0)


def test_neel_nandas_recipe_with_transformer_lens_hooks_gives_the_same_grid(model, runs):
    clean, corrupted, clean_cache = runs
    reference = tl_model_from_gpt(model)
    grads, acts = {}, {}
    names = [f"blocks.{i}.hook_resid_pre" for i in range(L)]
    with reference.hooks(fwd_hooks=[(n, lambda x, hook: acts.__setitem__(hook.name, x.detach())) for n in names],
                         bwd_hooks=[(n, lambda g, hook: grads.__setitem__(hook.name, g.detach())) for n in names]):
        value = logit_diff(reference(corrupted))
        value.backward()
    _, tl_clean = reference.run_with_cache(clean)
    expected = value.item() + torch.stack([((tl_clean[n] - acts[n]) * grads[n]).sum(dim=(0, 2)) for n in names])
    grid = attribution.get_attr_patch_resid_pre(model, corrupted, clean_cache, logit_diff)
    torch.testing.assert_close(grid, expected, atol=1e-5, rtol=1e-5)


def test_bad_input_is_named(model, runs):
    _, corrupted, clean_cache = runs
    with pytest.raises(TypeError, match="patching_metric must return a scalar tensor"):
        attribution.get_attr_patch_resid_pre(model, corrupted, clean_cache, lambda logits: 1.0)
    with pytest.raises(ValueError, match="clean and corrupted tokens must have the same"):
        attribution.get_attr_patch_resid_pre(model, corrupted[:, :-1], clean_cache, logit_diff)
    _, small = model.run_with_cache(corrupted, names_filter="blocks.0.hook_resid_pre")
    with pytest.raises(KeyError, match="clean_cache has no 'blocks.1.hook_resid_pre'"):
        attribution.get_attr_patch_resid_pre(model, corrupted, small, logit_diff)
