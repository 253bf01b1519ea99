"""
Same name, same meaning: each TransformerLens-named call returns what TL's own function returns on the same
weights (tests/tl_reference.py builds the HookedTransformer, without weight processing unless a test says so).
A tiny model with odd sizes: 2 layers, 3 heads, 48 channels, 97 tokens, 11 positions; LayerNorm gains and biases
far from 1 and 0 so a forgotten weight or bias shows.
"""

import pytest
import torch

from tl_reference import import_transformer_lens, tl_model

from mingpt.interp import patching

V, T, L, NH, C = 97, 11, 2, 3, 48
tl_lib = import_transformer_lens()


@pytest.fixture(scope="module")
def model(tiny_gpt):
    model = tiny_gpt(ln_noise=0.5, bias_noise=0.3, n_layer=L, n_head=NH, n_embd=C, vocab_size=V, block_size=16)
    with torch.no_grad():  # larger weights than GPT-2's init, so that patches move the metric visibly
        for name, p in model.named_parameters():
            if name.endswith("weight") and "ln" not in name:
                p.mul_(18.0 if "c_attn" in name else 3.0)  # sharp attention: q, k and pattern patches matter
    return model.eval()


@pytest.fixture(scope="module")
def tl(model):
    return tl_model(model)


@pytest.fixture(scope="module")
def tokens():
    clean = torch.randint(0, V, (2, T), generator=torch.Generator().manual_seed(3))
    corrupted = clean.clone()
    corrupted[:, 4] = (corrupted[:, 4] + 7) % V
    return clean, corrupted


def metric(logits):  # from the corrupted position on
    return logits[:, 4:, 5].mean() - logits[:, 4:, 9].mean()


def close(ours, theirs, atol=2e-5):
    torch.testing.assert_close(ours, theirs.to(ours.dtype), atol=atol, rtol=atol)


# ---------------------------------------------------------------------------------------- patching with hooks on
def noise_on_first_positions(x, hook):  # causal tracing: the corrupted run is the clean tokens with noisy positions
    return x + torch.linspace(-5, 5, C)[None, None] * (torch.arange(T) < 3)[None, :, None]


def ablate_head_1(z, hook):
    z[:, :, 1] = 0.0


def edit_position_10(x, hook):
    x[:, 10] = x[:, 10] * 0.5


CORRUPTING_HOOKS = {  # a hook active around the patching call defines the corrupted run
    "noise on hook_pos_embed": [("hook_pos_embed", noise_on_first_positions)],
    "head ablated": [("blocks.1.attn.hook_z", ablate_head_1)],
    "position 10 edited": [("blocks.1.hook_resid_pre", edit_position_10)],
}


@pytest.mark.parametrize("case", CORRUPTING_HOOKS)
@pytest.mark.parametrize("function", ["get_act_patch_resid_pre", "get_act_patch_attn_head_out_all_pos"])
def test_patching_sees_the_hooks_active_around_the_call(model, tl, tokens, case, function):
    clean, corrupted = tokens
    corrupted = clean if case == "noise on hook_pos_embed" else corrupted
    _, clean_cache = model.run_with_cache(clean)
    _, tl_clean_cache = tl.run_with_cache(clean)
    with tl.hooks(fwd_hooks=CORRUPTING_HOOKS[case]):
        theirs = getattr(tl_lib.patching, function)(tl, corrupted, tl_clean_cache, metric)
    with model.hooks(fwd_hooks=CORRUPTING_HOOKS[case]):
        batched = getattr(patching, function)(model, corrupted, clean_cache, metric)
        loop = getattr(patching, function)(model, corrupted, clean_cache, metric, method="loop")
    assert theirs.max() - theirs.min() > 1e-3  # not flat: the cells differ far beyond the tolerance
    close(loop, theirs)
    close(batched, theirs)


# ---------------------------------------------------------------------------------------- TL's patching sweeps
PATCHING = [  # mingpt.interp.patching.<name> against transformer_lens.patching.<name>: same name, same grid
    "get_act_patch_resid_pre", "get_act_patch_resid_mid", "get_act_patch_attn_out", "get_act_patch_mlp_out",
    "get_act_patch_attn_head_out_all_pos", "get_act_patch_attn_head_q_all_pos", "get_act_patch_attn_head_k_all_pos",
    "get_act_patch_attn_head_v_all_pos", "get_act_patch_attn_head_out_by_pos", "get_act_patch_attn_head_q_by_pos",
    "get_act_patch_attn_head_k_by_pos", "get_act_patch_attn_head_v_by_pos", "get_act_patch_attn_head_pattern_all_pos",
    "get_act_patch_attn_head_pattern_by_pos", "get_act_patch_attn_head_pattern_dest_src_pos",
    "get_act_patch_block_every", "get_act_patch_attn_head_all_pos_every", "get_act_patch_attn_head_by_pos_every",
]


@pytest.fixture(scope="module")
def clean_caches(model, tl, tokens):
    return model.run_with_cache(tokens[0])[1], tl.run_with_cache(tokens[0])[1]


@pytest.mark.parametrize("name", PATCHING)
def test_patching_function_is_tls(model, tl, tokens, clean_caches, name):
    assert name in patching.__all__
    clean, corrupted = tokens
    if name.endswith("dest_src_pos"):  # T x T cells per head: TL's loop over 7 positions is fast enough
        clean, corrupted = clean[:, :7], corrupted[:, :7]
        clean_caches = model.run_with_cache(clean)[1], tl.run_with_cache(clean)[1]
    theirs = getattr(tl_lib.patching, name)(tl, corrupted, clean_caches[1], metric)
    ours = getattr(patching, name)(model, corrupted, clean_caches[0], metric)
    assert ours.shape == theirs.shape and theirs.max() - theirs.min() > 1e-3
    close(ours, theirs)


# ---------------------------------------------------------------------------------------- the cache's readouts
@pytest.fixture(scope="module")
def tl_folded(model):  # TL's default loading folds each LayerNorm's weight into the matrix that reads it
    return tl_model(model, fold_ln=True)


@pytest.fixture(scope="module")
def caches(model, tl, tl_folded, tokens):
    return model.run_with_cache(tokens[0])[1], tl.run_with_cache(tokens[0])[1], tl_folded.run_with_cache(tokens[0])[1]


@pytest.mark.parametrize("kwargs", [{}, {"pos_slice": -1}, {"incl_mid": True}])
def test_accumulated_resid_with_apply_ln_is_tls_logit_lens(model, tl, caches, kwargs):
    ours, theirs, _ = caches
    lens = ours.accumulated_resid(apply_ln=True, **kwargs)
    close(lens, theirs.accumulated_resid(apply_ln=True, **kwargs))  # each depth with its own statistics
    close(model.lm_head(lens), tl.unembed(theirs.accumulated_resid(apply_ln=True, **kwargs)))


@pytest.mark.parametrize("kwargs", [{"layer": 1}, {"layer": 1, "mlp_input": True}, {"layer": 1, "pos_slice": 3}])
def test_accumulated_resid_before_a_block_uses_that_layer_norms_cached_scale(model, caches, kwargs):
    ours, _, theirs = caches  # TL divides by the scale; its folded W_Q holds ln's weight, mingpt applies it here
    ln = model.transformer.h[1].ln_2 if kwargs.get("mlp_input") else model.transformer.h[1].ln_1
    close(ours.accumulated_resid(apply_ln=True, **kwargs), theirs.accumulated_resid(apply_ln=True, **kwargs)
          * ln.weight.detach())


@pytest.mark.parametrize("slices", [{}, {"pos_slice": -1}, {"pos_slice": -1, "batch_slice": 1}])
def test_logit_attrs_applies_the_final_layer_norm_as_tls(model, caches, tokens, slices):
    ours, _, theirs = caches  # reference: TL on the same weights, loaded the default way (LayerNorm folded)
    answer, wrong = tokens[0][:, -1], tokens[1][:, 0]
    if "pos_slice" not in slices:
        answer, wrong = tokens[0], tokens[1]
    if "batch_slice" in slices:
        answer, wrong = answer[1], wrong[1]
    for stack in ("decompose_resid", "stack_head_results", "accumulated_resid"):
        kwargs = {"pos_slice": slices["pos_slice"]} if "pos_slice" in slices else {}
        stack_ours, stack_theirs = getattr(ours, stack)(**kwargs), getattr(theirs, stack)(**kwargs)
        close(ours.logit_attrs(stack_ours, answer, **slices), theirs.logit_attrs(stack_theirs, answer, **slices))
        close(ours.logit_attrs(stack_ours, answer, wrong, **slices),
              theirs.logit_attrs(stack_theirs, answer, wrong, **slices))


def test_unembed_attrs_keeps_mingpts_exact_decomposition(model, caches, tokens):
    ours, _, _ = caches
    parts = ours.decompose_resid(apply_ln=True, pos_slice=-1, incl_ln_bias=True)  # the bias: one part
    logits = model(tokens[0])[0][:, -1]
    close(ours.unembed_attrs(parts, tokens[0][:, -1]).sum(0), logits.gather(1, tokens[0][:, -1:])[:, 0])


# ---------------------------------------------------------------------------------------- the model's methods
def test_stop_at_layer_and_loss_per_token_are_tls(model, tl, tokens):
    idx = tokens[0]
    for stop in (0, 1, -1, L):
        close(model.run_with_hooks(idx, stop_at_layer=stop), tl.run_with_hooks(idx, stop_at_layer=stop))
        close(model.run_with_hooks(idx, stop_at_layer=stop), tl(idx, stop_at_layer=stop))  # TL's model(..., stop_at_layer)
        ours, cache = model.run_with_cache(idx, stop_at_layer=stop)
        theirs, tl_cache = tl.run_with_cache(idx, stop_at_layer=stop)
        close(ours, theirs)
        assert set(cache.keys()) == set(tl_cache.keys()) - {f"blocks.{i}.attn.hook_result" for i in range(L)}
    close(model.run_with_hooks(idx, return_type="loss", loss_per_token=True),
          tl.run_with_hooks(idx, return_type="loss", loss_per_token=True))
    close(model.run_with_hooks(idx, return_type="loss"), tl.run_with_hooks(idx, return_type="loss"))


def test_run_with_cache_incl_bwd_records_tls_gradients(model, tl, tokens):
    idx = tokens[0]
    loss, cache = model.run_with_cache(idx, return_type="loss", incl_bwd=True)
    tl_loss, tl_cache = tl.run_with_cache(idx, return_type="loss", incl_bwd=True)
    model.zero_grad(), tl.zero_grad()
    close(loss, tl_loss)
    ours = {k for k in cache.keys() if k.endswith("_grad")}
    theirs = {k for k in tl_cache.keys() if k.endswith("_grad")}
    assert ours and ours == theirs - {f"blocks.{i}.attn.hook_result_grad" for i in range(L)}
    # TL's block runs ln1 three times (the q, k and v inputs) and keeps the last share of the gradient; here it
    # runs once with the whole of it, so those are compared summed over TL's three passes elsewhere
    # (tests/test_backward_hooks.py) and left out here
    for name in sorted(k for k in ours if ".ln1." not in k):
        close(cache[name], tl_cache[name], atol=1e-5)
    assert "blocks.1.hook_resid_pre_grad" in ours and cache["hook_embed_grad"].abs().max() > 0
    _, filtered = model.run_with_cache(idx, names_filter="blocks.0.hook_resid_post", return_type="loss", incl_bwd=True)
    model.zero_grad()
    assert set(filtered.keys()) == {"blocks.0.hook_resid_post", "blocks.0.hook_resid_post_grad"}
    with pytest.raises(ValueError, match="return_type='loss'"):
        model.run_with_cache(idx, incl_bwd=True)


def test_add_hook_stays_until_reset_hooks(model, tl, tokens):
    def double_head_0(z, hook):
        z[:, :, 0] *= 2

    for m in (model, tl):
        m.add_hook(lambda name: name.endswith("hook_z"), double_head_0)
    hooked_ours, hooked_theirs = model.run_with_hooks(tokens[0]), tl.run_with_hooks(tokens[0])
    close(hooked_ours, hooked_theirs)
    for m in (model, tl):
        m.reset_hooks()
    close(model.run_with_hooks(tokens[0]), tl.run_with_hooks(tokens[0]))
    assert not torch.allclose(hooked_ours, model.run_with_hooks(tokens[0]))

    def shift(x, hook):
        return x + 1.0

    def square(x, hook):
        return x * x

    for m in (model, tl):  # order matters: square runs first (prepend), then shift; permanent outlives reset_hooks
        m.add_hook("blocks.1.hook_resid_mid", shift, is_permanent=True)
        m.add_hook("blocks.1.hook_resid_mid", square, prepend=True)
        m.reset_hooks()
    close(model.run_with_hooks(tokens[0]), tl.run_with_hooks(tokens[0]))
    for m in (model, tl):
        m.add_hook("blocks.1.hook_resid_mid", square, prepend=True)
    close(model.run_with_hooks(tokens[0]), tl.run_with_hooks(tokens[0]))
    for m in (model, tl):
        m.reset_hooks(including_permanent=True)
    close(model.run_with_hooks(tokens[0]), tl.run_with_hooks(tokens[0]))
    assert torch.allclose(model.run_with_hooks(tokens[0]), model(tokens[0])[0])


@pytest.fixture(scope="module")
def gpt2_vocab(tiny_gpt, data_dir, tmp_path_factory):
    """A 1-layer model over GPT-2's vocabulary, with mingpt's BPETokenizer and Hugging Face's for TL."""
    transformers = pytest.importorskip("transformers")
    from mingpt.bpe import BPETokenizer

    files = (data_dir / "gpt2/encoder.json", data_dir / "gpt2/vocab.bpe")
    model = tiny_gpt(n_layer=1, n_head=3, n_embd=24, vocab_size=50257, block_size=16).eval()
    model.set_tokenizer(BPETokenizer.from_files(*files))
    folder = tmp_path_factory.mktemp("gpt2_tokenizer")  # TL reloads the tokenizer by its name_or_path
    transformers.GPT2TokenizerFast(vocab_file=str(files[0]), merges_file=str(files[1])).save_pretrained(folder)
    hf_tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    return model, tl_model(model, tokenizer=hf_tokenizer)


TEXTS = ["Hello world", " The cat sat on the mat, didn't it?", "café 42<|endoftext|>x", "a b"]


@pytest.mark.parametrize("kwargs", [{}, {"prepend_bos": False}, {"padding_side": "left"}])
def test_text_methods_are_tls(gpt2_vocab, kwargs):
    model, tl = gpt2_vocab
    assert torch.equal(model.to_tokens(TEXTS, **kwargs), tl.to_tokens(TEXTS, **kwargs))  # padded batch
    for text in TEXTS:
        assert torch.equal(model.to_tokens(text, **kwargs), tl.to_tokens(text, **kwargs))
        assert model.to_str_tokens(text, **kwargs) == tl.to_str_tokens(text, **kwargs)
    assert model.to_str_tokens(TEXTS[:2], **kwargs) == tl.to_str_tokens(TEXTS[:2], **kwargs)
    long = "one two " * 20  # longer than block_size: cut, as TL's truncate
    assert torch.equal(model.to_tokens(long, **kwargs), tl.to_tokens(long, **kwargs))
    ids = tl.to_tokens(TEXTS, **kwargs)
    assert model.to_string(ids) == tl.to_string(ids) and model.to_string(ids[1]) == tl.to_string(ids[1])
    assert model.to_str_tokens(ids[2]) == tl.to_str_tokens(ids[2])
    assert model.to_single_token(" world") == tl.to_single_token(" world") == 995
    with pytest.raises(ValueError, match="not a single token"):
        model.to_single_token("Hello world")


def test_logit_attrs_takes_string_tokens(gpt2_vocab):
    model, tl = gpt2_vocab
    tl_folded = tl_model(model, fold_ln=True, tokenizer=tl.tokenizer)
    idx = model.to_tokens("The cat sat on the")
    ours, theirs = model.run_with_cache(idx)[1], tl_folded.run_with_cache(idx)[1]
    stack, tl_stack = ours.decompose_resid(pos_slice=-1), theirs.decompose_resid(pos_slice=-1)
    close(ours.logit_attrs(stack, " mat", " dog", pos_slice=-1),
          theirs.logit_attrs(tl_stack, " mat", " dog", pos_slice=-1))
    for tokens in (" mat", 7, torch.tensor([3]), idx, idx[0, 2]):
        close(model.tokens_to_residual_directions(tokens), tl.tokens_to_residual_directions(tokens))


# ---------------------------------------------------------------------------------------- finer decompositions
@pytest.mark.parametrize("call", [  # (method, kwargs): the same call on mingpt's cache and on TL's
    ("get_neuron_results", dict(layer=1)), ("get_neuron_results", dict(layer=0, neuron_slice=slice(5, 50, 3),
                                                                         pos_slice=-1)),
    ("stack_neuron_results", dict(layer=2, return_labels=True, incl_remainder=True)),
    ("stack_neuron_results", dict(layer=1, pos_slice=3, neuron_slice=slice(0, 9), apply_ln=True)),
    ("stack_activation", dict(activation_name="pattern")), ("stack_activation", dict(activation_name="z", layer=1)),
    ("stack_activation", dict(activation_name="scale", sublayer_type="ln2")),
    ("get_full_resid_decomposition", dict(return_labels=True)),
    ("get_full_resid_decomposition", dict(layer=1, mlp_input=True, pos_slice=-1, return_labels=True)),
    ("get_full_resid_decomposition", dict(expand_neurons=False, return_labels=True)),
    ("get_full_resid_decomposition", dict(layer=1, apply_ln=True)),
    ("decompose_resid", dict(layer=1, apply_ln=True, return_labels=True)),
    ("decompose_resid", dict(layer=1, mode="attn", pos_slice=-1, return_labels=True)),
    ("stack_head_results", dict(layer=1, apply_ln=True, pos_slice=-1)),
])
def test_cache_decompositions_are_tls(model, caches, call):
    ours, theirs, folded = caches
    name, kwargs = call
    ours, theirs = getattr(ours, name)(**kwargs), getattr(folded if kwargs.get("apply_ln") else theirs, name)(**kwargs)
    if kwargs.get("return_labels"):
        assert ours[1] == theirs[1]
        ours, theirs = ours[0], theirs[0]
    if kwargs.get("apply_ln"):  # TL divides by the scale; its folded weights hold the LayerNorm's gain
        theirs = theirs * model.transformer.h[kwargs["layer"]].ln_1.weight.detach()
    close(ours, theirs)


def test_full_decomposition_adds_up_and_cache_moves(model, caches, tokens):
    ours = caches[0]
    close(ours.get_full_resid_decomposition().sum(0), ours["resid_post", -1])
    one, theirs = model.run_with_cache(tokens[0][:1])[1], tl_model(model).run_with_cache(tokens[0][:1])[1]
    one.remove_batch_dim(), theirs.remove_batch_dim()
    assert not one.has_batch_dim and one["resid_pre", 1].shape == theirs["resid_pre", 1].shape == (T, C)
    assert one.to("cpu") is one and one.to(torch.device("cpu"), move_model=True)["z", 0].device.type == "cpu"
    with pytest.raises(ValueError, match="batch of one"):
        caches[0].__class__(dict(caches[0].items()), model).remove_batch_dim()


def test_factored_matrix_svd_and_corner_are_tls(model, tl):
    from mingpt.interp.circuits import FactoredMatrix
    for ours, theirs in ((model.OV, tl.OV), (model.QK[1, 2], tl.QK[1, 2]),
                         (model.W_E @ model.OV[0, 1], tl.W_E @ tl.OV[0, 1])):
        for part in ("U", "S", "Vh"):
            close(getattr(ours, part), getattr(theirs, part), atol=1e-4)
        close(ours.get_corner(), theirs.get_corner())
        close(ours.get_corner(5), theirs.get_corner(5))
        U, S, Vh = ours.svd()
        close(U @ torch.diag_embed(S) @ Vh.transpose(-1, -2), ours.AB, atol=1e-4)
    assert isinstance(model.OV, FactoredMatrix)


# ---------------------------------------------------------------------------------------- signatures
def test_tl_named_methods_take_tls_arguments_in_tls_order():
    """A positional call written for TL means the same here: TL's parameters are a prefix of ours."""
    import inspect

    from mingpt.interp.activation_cache import ActivationCache
    from mingpt.model import GPT

    def params(fn):
        return [p for p in inspect.signature(fn).parameters if p != "self"]

    pairs = [(getattr(ActivationCache, n), getattr(tl_lib.ActivationCache, n)) for n in (
        "accumulated_resid", "decompose_resid", "stack_head_results", "apply_ln_to_stack", "logit_attrs",
        "get_full_resid_decomposition", "stack_neuron_results", "get_neuron_results", "stack_activation",
        "remove_batch_dim", "to")]
    pairs += [(getattr(GPT, n), getattr(tl_lib.HookedTransformer, n)) for n in (
        "to_tokens", "to_str_tokens", "to_string", "to_single_token", "add_hook", "reset_hooks",
        "set_use_attn_result", "tokens_to_residual_directions")]
    for ours, theirs in pairs:
        assert params(ours)[:len(params(theirs))] == params(theirs), ours.__qualname__
    for name in PATCHING:  # TL's are partials of generic_activation_patch: the four arguments a caller passes
        assert params(getattr(patching, name))[:4] == params(getattr(tl_lib.patching, name))[:4], name
