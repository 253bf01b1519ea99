"""ActivationCache: the readouts of the residual stream close exactly on the model's own LayerNorm and logits."""

import pytest
import torch

V, T, L, NH, C = 97, 9, 3, 4, 32


@pytest.fixture(scope="module")
def model(tiny_gpt):
    # LayerNorm weights far from 1 and biases far from 0: a missing w or b shows
    return tiny_gpt(ln_noise=0.5, bias_noise=0.3, n_layer=L, n_head=NH, n_embd=C, vocab_size=V, block_size=32).eval()


@pytest.fixture(scope="module")
def idx():
    return torch.randint(0, V, (2, T), generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def run(model, idx):
    with torch.no_grad():
        return model.run_with_cache(idx)


def test_last_accumulated_residual_through_the_unembedding_is_the_logits(model, run):
    logits, cache = run
    stack, labels = cache.accumulated_resid(apply_ln=True, return_labels=True)
    assert labels == [f"{i}_pre" for i in range(L)] + ["final_post"] and stack.shape == (L + 1, 2, T, C)
    torch.testing.assert_close(stack[-1], cache["ln_final.hook_normalized"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(model.lm_head(stack[-1]), logits, atol=1e-5, rtol=1e-5)
    # Without the LayerNorm: the raw streams; incl_mid interleaves the mids.
    raw, labels = cache.accumulated_resid(layer=2, incl_mid=True, return_labels=True)
    assert labels == ["0_pre", "0_mid", "1_pre", "1_mid", "2_pre"]
    assert torch.equal(raw[3], cache["resid_mid", 1])
    last = cache.accumulated_resid(pos_slice=-1, apply_ln=True)
    torch.testing.assert_close(model.lm_head(last[-1]), logits[:, -1], atol=1e-5, rtol=1e-5)


def test_decomposition_closes_on_the_final_layer_norm(model, run):
    logits, cache = run
    stack, labels = cache.decompose_resid(apply_ln=True, return_labels=True, incl_ln_bias=True)
    assert labels == ["embed", "pos_embed"] + [f"{i}_{s}" for i in range(L) for s in ("attn_out", "mlp_out")] \
        + ["ln_final.bias"]
    torch.testing.assert_close(stack.sum(0), cache["ln_final.hook_normalized"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(model.lm_head(stack.sum(0)), logits, atol=1e-5, rtol=1e-5)
    assert torch.equal(stack[-1], model.transformer.ln_f.bias.detach().expand(2, T, C))  # the bias, once
    raw = cache.decompose_resid()
    torch.testing.assert_close(raw.sum(0), cache["resid_post", -1], atol=1e-5, rtol=1e-5)
    # At a middle layer it closes on that block's ln1.
    mid = cache.decompose_resid(layer=1, apply_ln=True, pos_slice=-1, incl_ln_bias=True)
    torch.testing.assert_close(mid.sum(0), cache["normalized", 1, "ln1"][:, -1], atol=1e-5, rtol=1e-5)
    into_mlp, labels = cache.decompose_resid(layer=1, mlp_input=True, apply_ln=True, return_labels=True,
                                            incl_ln_bias=True)
    assert labels[-2:] == ["1_attn_out", "blocks.1.ln2.bias"]
    torch.testing.assert_close(into_mlp.sum(0), cache["normalized", 1, "ln2"], atol=1e-5, rtol=1e-5)
    streams = cache.accumulated_resid(layer=1, mlp_input=True, apply_ln=True)  # the scale the model used, as TL
    torch.testing.assert_close(streams[-1] + model.transformer.h[1].ln_2.bias, cache["normalized", 1, "ln2"],
                               atol=1e-5, rtol=1e-5)
    attn_only, labels = cache.decompose_resid(mode="attn", incl_embeds=False, return_labels=True)
    assert labels == [f"{i}_attn_out" for i in range(L)] and torch.equal(attn_only[1], cache["attn_out", 1])


def test_head_results_sum_to_attention_outputs(model, idx, run):
    _, cache = run
    heads, labels = cache.stack_head_results(return_labels=True, incl_remainder=True)
    assert labels[:NH + 1] == ["L0H0", "L0H1", "L0H2", "L0H3", "L1H0"] and labels[-1] == "remainder"
    assert heads.shape == (L * NH + 1, 2, T, C)
    for i in range(L):  # a block's heads plus its output bias are its attention output
        bias = model.transformer.h[i].attn.c_proj.bias
        torch.testing.assert_close(heads[i * NH:(i + 1) * NH].sum(0) + bias, cache["attn_out", i], atol=1e-5,
                                   rtol=1e-5)
    torch.testing.assert_close(heads.sum(0), cache["resid_post", -1], atol=1e-5, rtol=1e-5)
    # Without a cached hook_result, the heads are computed from z and W_O: the same numbers.
    _, z_only = model.run_with_cache(idx, names_filter=lambda name: name.endswith(("hook_z", "hook_scale")))
    torch.testing.assert_close(z_only.stack_head_results(), heads[:-1], atol=1e-6, rtol=1e-6)
    first_layer = cache.stack_head_results(layer=1, pos_slice=-1, apply_ln=True)
    assert first_layer.shape == (NH, 2, C)


def test_direct_logit_attribution_adds_up_to_the_logit(model, idx, run):
    logits, cache = run
    stack = cache.decompose_resid(apply_ln=True, pos_slice=-1, incl_ln_bias=True)  # (n, B, C)
    answer, wrong = idx[:, 0], idx[:, 1]
    attrs = cache.unembed_attrs(stack, answer)  # mingpt's exact decomposition (logit_attrs is TL's: test_tl_parity)
    assert attrs.shape == (stack.size(0), 2)
    torch.testing.assert_close(attrs.sum(0), logits[:, -1].gather(1, answer[:, None])[:, 0], atol=1e-4, rtol=1e-5)
    diff = cache.unembed_attrs(stack, answer, incorrect_tokens=wrong).sum(0)
    expected = logits[:, -1].gather(1, answer[:, None])[:, 0] - logits[:, -1].gather(1, wrong[:, None])[:, 0]
    torch.testing.assert_close(diff, expected, atol=1e-4, rtol=1e-5)
    heads = cache.stack_head_results(apply_ln=True, pos_slice=-1)
    assert cache.unembed_attrs(heads, 5).shape == (L * NH, 2)


def test_bad_input_gets_clear_errors(run):
    _, cache = run
    with pytest.raises(ValueError, match=r"layer must be in \[0, 3\]"):
        cache.accumulated_resid(layer=7)
    with pytest.raises(ValueError, match="mode must be"):
        cache.decompose_resid(mode="heads")
    stack = cache.decompose_resid(apply_ln=True, pos_slice=-1)
    with pytest.raises(ValueError, match=r"tokens of shape \(3,\) do not match"):
        cache.logit_attrs(stack, torch.tensor([1, 2, 3]), pos_slice=-1)
    with pytest.raises(ValueError, match="outside"):
        cache.unembed_attrs(stack, V + 1)
    with pytest.raises(ValueError, match="same shape"):
        cache.logit_attrs(stack, torch.tensor([1, 2]), torch.tensor(3), pos_slice=-1)
    with pytest.raises(ValueError, match="does not line up"):
        cache.apply_ln_to_stack(cache.decompose_resid(pos_slice=slice(0, 3)))
