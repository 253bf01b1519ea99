"""Inspection on models with RMSNorm (Llama, Qwen, nanochat): hook_scale exists and is the RMS, the logit lens and
the residual decompositions normalise as the model does (no centring, no bias, the gain or none), and the "every"
patching sweeps say why they cannot stack a grouped-query model's grids."""

import pytest
import torch

from mingpt.interp import attribution, patching, probe

V, T = 41, 7
MODELS = {
    "rmsnorm-gain": dict(position="rotary", norm="rmsnorm", mlp="swiglu", bias=False, tie_weights=False),
    "rmsnorm-no-gain": dict(position="rotary", norm="rmsnorm", norm_weight=False, mlp="relu2", qk_norm=True,
                            bias=False, tie_weights=False),
    "rmsnorm-parallel": dict(norm="rmsnorm", parallel_residual=True),
}


@pytest.fixture(scope="module", params=list(MODELS))
def run(request, tiny_gpt):
    model = tiny_gpt(n_layer=2, n_head=4, n_embd=32, vocab_size=V, block_size=16, **MODELS[request.param]).eval()
    with torch.no_grad():  # gains away from 1 and a residual stream with a mean, so centring would show
        for name, p in model.named_parameters():
            if name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight")):
                p.copy_(1 + 0.5 * torch.randn_like(p))
        model.transformer.wte.weight.add_(0.7)
    idx = torch.randint(0, V, (2, T), generator=torch.Generator().manual_seed(0))
    logits, cache = model.run_with_cache(idx)
    return model, idx, logits, cache


def rms_norm(x, ln):
    """By hand: x / sqrt(mean(x^2) + eps), times the gain if there is one."""
    out = x / (x.pow(2).mean(-1, keepdim=True) + ln.eps).sqrt()
    return out if ln.weight is None else out * ln.weight


def close(a, b):
    torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-5)


def test_hook_scale_is_the_root_mean_square(run):
    model, _, _, cache = run
    for layer in range(2):
        x = cache["resid_pre", layer]
        close(cache["scale", layer, "ln1"], (x.pow(2).mean(-1, keepdim=True) + model.transformer.h[layer].ln_1.eps
                                              ).sqrt())
    x = cache["resid_post", 1]
    close(cache["ln_final.hook_scale"], (x.pow(2).mean(-1, keepdim=True) + model.transformer.ln_f.eps).sqrt())
    # TL's RMSNorm shows x / scale at hook_normalized, before its gain
    close(cache["ln_final.hook_normalized"], x / cache["ln_final.hook_scale"])


def test_an_edited_scale_is_what_the_norm_divides_by(run):
    model, idx, logits, cache = run
    doubled = model.run_with_hooks(idx, fwd_hooks=[("ln_final.hook_scale", lambda s, hook: 2 * s)])
    x = cache["resid_post", 1]
    expected = model.lm_head(rms_norm(x, model.transformer.ln_f) / 2 if model.transformer.ln_f.weight is None
                             else x / (2 * cache["ln_final.hook_scale"]) * model.transformer.ln_f.weight)
    close(doubled, expected)
    recorded = model.run_with_hooks(idx, fwd_hooks=[("ln_final.hook_scale", lambda s, hook: None)])
    close(recorded, logits)  # a hook that changes nothing: the norm redone by hand is the model's own
    plain = model.run_with_hooks(idx)
    cached, _ = model.run_with_cache(idx, names_filter="ln_final.hook_scale")
    assert torch.equal(cached, plain)  # a scale only recorded: the model's own norm, bit for bit


def test_logit_lens_normalises_each_depth_as_the_model_would(run):
    model, _, logits, cache = run
    stack, labels = cache.accumulated_resid(apply_ln=True, return_labels=True)
    assert labels == ["0_pre", "1_pre", "final_post"]
    for entry, name in zip(stack, ["blocks.0.hook_resid_pre", "blocks.1.hook_resid_pre", "blocks.1.hook_resid_post"]):
        close(entry, rms_norm(cache[name], model.transformer.ln_f))
    close(model.lm_head(stack[-1]), logits)
    close(probe.logit_lens(cache)[-1], logits)


def test_an_edit_at_hook_normalized_is_what_the_gain_multiplies(run):
    model, idx, _, cache = run
    edited = model.run_with_hooks(idx, fwd_hooks=[("ln_final.hook_normalized", lambda x, hook: -x)])
    close(edited, model.lm_head(-rms_norm(cache["resid_post", 1], model.transformer.ln_f)))
    for layer in range(2):  # the blocks' norms too: a zeroed ln2 output leaves the MLP only its biases' effect
        block = model.transformer.h[layer]
        seen = {}
        model.run_with_hooks(idx, fwd_hooks=[(f"blocks.{layer}.ln2.hook_normalized", lambda x, hook: 0 * x),
                                             (f"blocks.{layer}.hook_mlp_out", lambda x, hook: seen.setdefault("m", x))])
        close(seen["m"], block.mlp(torch.zeros_like(cache["resid_pre", layer])))


def test_decompositions_sum_to_the_final_norms_output_and_the_logits(run):
    model, idx, logits, cache = run
    final = rms_norm(cache["resid_post", 1], model.transformer.ln_f)  # what lm_head reads
    pieces, labels = cache.decompose_resid(apply_ln=True, return_labels=True)
    assert not any(label.endswith(".bias") for label in labels)  # RMSNorm has no bias to append
    close(pieces.sum(0), final)
    heads = cache.get_full_resid_decomposition(apply_ln=True, expand_neurons=False)
    close(heads.sum(0), final)
    attrs = cache.logit_attrs(cache.decompose_resid(), tokens=idx)  # (n, B, T): each piece's share of the logit
    close(attrs.sum(0), logits.gather(-1, idx[..., None])[..., 0])


def test_every_sweep_on_a_grouped_query_model_says_which_functions_to_call(tiny_gpt):
    model = tiny_gpt(n_layer=2, n_head=4, n_embd=32, vocab_size=V, block_size=16, position="rotary",
                     norm="rmsnorm", n_kv_head=2).eval()
    clean = torch.randint(0, V, (1, T), generator=torch.Generator().manual_seed(2))
    corrupted = clean.clone()
    corrupted[0, 3] = (corrupted[0, 3] + 1) % V
    _, clean_cache = model.run_with_cache(clean)

    def metric(logits):
        return logits[0, -1, 3]

    for every in (patching.get_act_patch_attn_head_all_pos_every, patching.get_act_patch_attn_head_by_pos_every):
        with pytest.raises(ValueError, match="4 query heads share 2 key/value heads"):
            every(model, corrupted, clean_cache, metric)
    assert patching.get_act_patch_attn_head_k_all_pos(model, corrupted, clean_cache, metric).shape == (2, 2)


def test_attribution_reads_what_lm_head_reads(run):
    # Attribution's backward starts from lm_head's input; on an RMSNorm model that is hook_normalized times the gain
    model, idx, _, clean_cache = run
    corrupted = idx.clone()
    corrupted[:, 2] = (corrupted[:, 2] + 5) % V

    def metric(logits):
        return (logits[:, -1, 4] - logits[:, -1, 9]).mean()

    names = ["blocks.0.hook_resid_pre", "blocks.1.attn.hook_z", "blocks.1.hook_mlp_out"]
    _, terms = attribution.attribution_patch(model, corrupted, clean_cache, metric, names)
    for name in names:
        seen = {}

        def capture(x, hook):
            seen["x"] = x.detach().clone().requires_grad_(True)
            return seen["x"]

        value = metric(model.run_with_hooks(corrupted, fwd_hooks=[(name, capture)]))
        (grad,) = torch.autograd.grad(value, seen["x"])
        expected = (clean_cache[name] - seen["x"].detach()) * grad  # terms are small here: compare to their size
        torch.testing.assert_close(terms[name], expected, atol=1e-4 * expected.abs().max().item(), rtol=1e-3)
        assert expected.abs().max() > 0
