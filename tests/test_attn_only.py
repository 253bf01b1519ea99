"""An attention-only GPT (config.attn_only, TransformerLens' attn_only): TL's hook points and values on the same
weights, and every inspection tool works on it (patching, weight views, copying scores, decompose_resid)."""

import pytest
import torch

from mingpt.interp.circuits import copying_scores
from mingpt.interp.patching import get_act_patch_attn_head_out_all_pos, get_act_patch_resid_pre
from mingpt.interp.probe import Probe
from tl_oracle import import_transformer_lens, tl_model_from_gpt

V, T, L, NH, C = 37, 11, 3, 4, 24


@pytest.fixture(scope="module")
def model(tiny_gpt):
    return tiny_gpt(ln_noise=0.3, bias_noise=0.1, n_layer=L, n_head=NH, n_embd=C, vocab_size=V, block_size=16,
                    attn_only=True, tie_weights=False).eval()


@pytest.fixture(scope="module")
def reference(model):
    return tl_model_from_gpt(model)


@pytest.fixture(scope="module")
def tokens():
    return torch.randint(0, V, (3, T), generator=torch.Generator().manual_seed(0))


def test_an_attention_only_gpt_has_no_mlp_weights(model):
    names = [name for name, _ in model.named_parameters()]
    assert not any(".mlp." in name or ".ln_2." in name for name in names)
    assert any(".attn.c_attn." in name for name in names)


def test_hook_points_and_values_are_transformer_lens_attn_only(model, reference, tokens):
    with torch.no_grad():
        ours_logits, ours = model.run_with_cache(tokens)
        tl_logits, theirs = reference.run_with_cache(tokens)
    torch.testing.assert_close(ours_logits, tl_logits, atol=1e-5, rtol=1e-5)
    # Every hook point we have is one TL's attn-only model has, and every value TL records, we record the same.
    assert set(model.hook_dict) <= set(reference.hook_dict)
    assert not any(("mlp" in name or "resid_mid" in name or "ln2" in name) for name in model.hook_dict)
    assert set(theirs.keys()) <= set(ours.keys())
    for name in theirs.keys():
        a, b = ours[name], theirs[name]
        if name.endswith("hook_attn_scores"):  # -inf above the diagonal in both: compare where finite
            assert torch.equal(a.isinf(), b.isinf())
            a, b = a.masked_fill(a.isinf(), 0), b.masked_fill(b.isinf(), 0)
        torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-5, msg=name)
    with pytest.raises(KeyError, match="hook_mlp_out"):
        ours["mlp_out", 0]


def test_weight_views_copying_scores_and_decompose_resid_match_transformer_lens(model, reference, tokens):
    for name in ("W_Q", "W_K", "W_V", "W_O", "b_Q", "b_O", "W_E", "W_pos", "W_U"):
        torch.testing.assert_close(getattr(model, name), getattr(reference, name), msg=name)
    full_OV = reference.W_E @ reference.OV @ reference.W_U  # TL's recipe for the copying score
    eigenvalues = full_OV.eigenvalues
    expected = (eigenvalues.sum(-1) / eigenvalues.abs().sum(-1)).real
    torch.testing.assert_close(copying_scores(model), expected, atol=1e-4, rtol=1e-4)
    with torch.no_grad():
        _, ours = model.run_with_cache(tokens)
        _, theirs = reference.run_with_cache(tokens)
    stack, labels = ours.decompose_resid(return_labels=True)
    tl_stack, tl_labels = theirs.decompose_resid(return_labels=True)
    assert labels == tl_labels == ["embed", "pos_embed"] + [f"{i}_attn_out" for i in range(L)]
    torch.testing.assert_close(stack, tl_stack, atol=1e-5, rtol=1e-5)


def test_patching_works_on_it_and_matches_transformer_lens(model, reference, tokens):
    tl = import_transformer_lens()
    corrupted = tokens.clone()
    corrupted[:, 3] = (corrupted[:, 3] + 1) % V
    answer = tokens[:, -1]

    def metric(logits):
        return logits[:, -1].log_softmax(-1).gather(1, answer[:, None]).mean()

    with torch.no_grad():
        _, clean_cache = model.run_with_cache(tokens)
        _, tl_clean_cache = reference.run_with_cache(tokens)
    torch.testing.assert_close(get_act_patch_resid_pre(model, corrupted, clean_cache, metric),
                               tl.patching.get_act_patch_resid_pre(reference, corrupted, tl_clean_cache, metric),
                               atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(get_act_patch_attn_head_out_all_pos(model, corrupted, clean_cache, metric),
                               tl.patching.get_act_patch_attn_head_out_all_pos(reference, corrupted, tl_clean_cache,
                                                                               metric), atol=1e-5, rtol=1e-5)


def test_a_probe_traces_it_without_mlp_outputs(model, tokens):
    with Probe(model) as probe:
        logits, _ = model(tokens)
    trace = probe.trace(logits)
    assert trace.mlp_outputs == [None] * L and len(trace.attentions) == L


def test_it_refuses_the_gpt2_layout_it_does_not_have(model, tmp_path):
    with pytest.raises(ValueError, match="no Hugging Face GPT-2 layout"):
        model.save_pretrained(tmp_path / "attn-only")
    assert not (tmp_path / "attn-only").exists()


def test_generation_with_the_kv_cache_matches_full_forward_passes(model, tokens):
    out = model.generate(tokens[:, :4], max_new_tokens=6)
    greedy = tokens[:, :4]
    with torch.no_grad():
        for _ in range(6):
            greedy = torch.cat([greedy, model(greedy)[0][:, -1].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(out, greedy)
