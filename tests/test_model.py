"""GPT: shapes, init, attention paths, tying, optimisation groups, configuration and input errors."""

import math

import pytest
import torch

from mingpt.model import GPT, PRESETS


def tiny_config(**overrides):
    C = GPT.get_default_config()
    C.model_type = None
    C.n_layer, C.n_head, C.n_embd = 2, 4, 32
    C.vocab_size, C.block_size = 50, 16
    for k, v in overrides.items():
        setattr(C, k, v)
    return C


def tiny_model(seed=0, **overrides):
    torch.manual_seed(seed)
    return GPT(tiny_config(**overrides))


def test_shapes_and_full_logits():
    model = tiny_model()
    idx = torch.randint(0, 50, (3, 11))
    logits, loss = model(idx)
    assert logits.shape == (3, 11, 50) and loss is None  # every position, not only the last


def test_loss_at_init_is_close_to_uniform():
    model = tiny_model(vocab_size=500)
    idx = torch.randint(0, 500, (8, 16))
    targets = torch.randint(0, 500, (8, 16))
    _, loss = model(idx, targets)
    assert abs(loss.item() - math.log(500)) < 0.1


def test_ignore_index_minus_one_masks_positions():
    model = tiny_model()
    idx = torch.randint(0, 50, (2, 8))
    targets = torch.randint(0, 50, (2, 8))
    masked = targets.clone()
    masked[:, :4] = -1
    logits, loss = model(idx, masked)
    expected = torch.nn.functional.cross_entropy(logits[:, 4:].reshape(-1, 50), targets[:, 4:].reshape(-1))
    torch.testing.assert_close(loss, expected)


def test_overfits_a_tiny_batch():
    model = tiny_model(embd_pdrop=0.0, resid_pdrop=0.0, attn_pdrop=0.0)
    idx = torch.randint(0, 50, (4, 16))
    targets = torch.roll(idx, -1, dims=1)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(150):
        _, loss = model(idx, targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05


@pytest.mark.parametrize("dropout", [0.0, 0.2])
def test_math_and_sdpa_attention_agree(dropout):
    sdpa = tiny_model(attn_pdrop=dropout)
    math_model = GPT(_with(sdpa.config, attention="math"))
    math_model.load_state_dict(sdpa.state_dict())
    sdpa.eval(), math_model.eval()
    idx = torch.randint(0, 50, (2, 16))
    torch.testing.assert_close(sdpa(idx)[0], math_model(idx)[0], atol=1e-5, rtol=1e-5)
    # gradients agree too (in eval mode, so dropout does not draw different masks)
    targets = torch.randint(0, 50, (2, 16))
    sdpa(idx, targets)[1].backward()
    math_model(idx, targets)[1].backward()
    for (name, p), q in zip(sdpa.named_parameters(), math_model.parameters()):
        torch.testing.assert_close(p.grad, q.grad, atol=1e-5, rtol=1e-4, msg=name)


def _with(config, **overrides):
    C = config.copy()
    for k, v in overrides.items():
        setattr(C, k, v)
    return C


@pytest.mark.parametrize("attention", ["sdpa", "math"])
def test_causality(attention):
    """Changing token t never changes the logits at positions before t."""
    model = tiny_model(attention=attention).eval()
    idx = torch.randint(0, 50, (1, 16))
    changed = idx.clone()
    changed[0, 9] = (idx[0, 9] + 1) % 50
    a, b = model(idx)[0], model(changed)[0]
    torch.testing.assert_close(a[:, :9], b[:, :9])
    assert not torch.allclose(a[:, 9:], b[:, 9:])


def test_weight_tying_is_configurable():
    tied = tiny_model()
    assert tied.lm_head.weight is tied.transformer.wte.weight
    untied = tiny_model(tie_weights=False)
    assert untied.lm_head.weight is not untied.transformer.wte.weight
    assert untied.num_parameters() - tied.num_parameters() == 50 * 32


def test_gpt2_init_scales_residual_projections():
    model = tiny_model(n_layer=8, n_embd=256, n_head=4)
    std = model.transformer.h[0].attn.c_proj.weight.std().item()
    assert abs(std - 0.02 / math.sqrt(2 * 8)) < 0.001
    assert abs(model.transformer.h[0].mlp.c_fc.weight.std().item() - 0.02) < 0.002


def test_presets_and_gpt2_parameter_count():
    C = GPT.get_default_config()
    C.model_type = "gpt2"
    model = GPT(C)
    assert model.num_parameters() == 124_439_808  # the published GPT-2 small count, with tied embeddings
    assert (model.config.vocab_size, model.config.block_size) == (50257, 1024)
    assert C.n_layer is None and C.vocab_size is None  # the caller's config was not modified
    GPT(model.config)  # a resolved config can build the same model again


def test_flops_per_token_estimate():
    model = tiny_model()
    n = model.num_parameters(exclude_embeddings=True)
    assert model.estimate_flops_per_token() == 6 * n + 12 * 2 * 32 * 16


def test_configure_optimizers_decays_only_matmul_weights():
    model = tiny_model()
    train_config = type("T", (), dict(learning_rate=1e-3, betas=(0.9, 0.95), weight_decay=0.1))()
    opt = model.configure_optimizers(train_config)
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() == 2 for p in decay["params"])
    assert any(p is model.transformer.wpe.weight for p in no_decay["params"])
    n_total = sum(p.numel() for g in opt.param_groups for p in g["params"])
    assert n_total == model.num_parameters()  # every parameter exactly once, tied matrix included once


def test_deterministic_with_seed():
    a, b = tiny_model(seed=7), tiny_model(seed=7)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)


def test_state_dict_holds_only_parameters():
    model = tiny_model()
    parameters = {name for name, _ in model.named_parameters(remove_duplicate=False)}
    assert set(model.state_dict()) == parameters  # no masks or other non-learned buffers


# ---------------------------------------------------------------------- configuration errors
def test_unknown_model_type_lists_valid_ones():
    C = GPT.get_default_config()
    C.model_type, C.vocab_size, C.block_size = "gpt5", 10, 10
    with pytest.raises(ValueError, match="unknown model_type 'gpt5'.*gpt-nano"):
        GPT(C)


def test_both_or_neither_of_type_and_sizes():
    C = GPT.get_default_config()
    C.model_type, C.n_layer, C.n_head, C.n_embd, C.vocab_size, C.block_size = "gpt-nano", 5, 5, 50, 10, 10
    with pytest.raises(ValueError, match="either model_type or n_layer"):
        GPT(C)
    C = GPT.get_default_config()
    C.vocab_size, C.block_size = 10, 10
    with pytest.raises(ValueError, match="set model_type to one of"):
        GPT(C)


def test_n_embd_must_divide_by_n_head():
    with pytest.raises(ValueError, match=r"n_embd \(30\) must be divisible by n_head \(4\)"):
        GPT(tiny_config(n_embd=30))


@pytest.mark.parametrize("key,value", [("vocab_size", None), ("block_size", 0), ("attention", "flash3")])
def test_invalid_sizes_and_attention(key, value):
    with pytest.raises(ValueError, match=key):
        GPT(tiny_config(**{key: value}))


def test_config_must_be_a_cfgnode():
    with pytest.raises(TypeError, match="CfgNode"):
        GPT({"n_layer": 2})


# ---------------------------------------------------------------------- input errors in forward
def test_non_integer_idx():
    with pytest.raises(TypeError, match="integer token ids"):
        tiny_model()(torch.rand(1, 4))
    with pytest.raises(TypeError, match="torch.Tensor"):
        tiny_model()([[1, 2, 3]])


def test_ids_outside_vocab():
    with pytest.raises(ValueError, match=r"token id 50, outside \[0, 50\)"):
        tiny_model()(torch.tensor([[1, 50]]))
    with pytest.raises(ValueError, match="token id -3"):
        tiny_model()(torch.tensor([[-3, 1]]))


def test_sequence_longer_than_block_size():
    with pytest.raises(ValueError, match="longer than block_size=16"):
        tiny_model()(torch.zeros(1, 17, dtype=torch.long))


def test_wrong_rank_and_empty_input():
    with pytest.raises(ValueError, match=r"add a batch dimension"):
        tiny_model()(torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="empty"):
        tiny_model()(torch.zeros(1, 0, dtype=torch.long))


def test_targets_shape_mismatch():
    with pytest.raises(ValueError, match="same shape as idx"):
        tiny_model()(torch.zeros(2, 4, dtype=torch.long), torch.zeros(2, 5, dtype=torch.long))


def test_all_presets_are_valid_configs():
    for name in PRESETS:
        C = GPT.get_default_config()
        C.model_type, C.vocab_size, C.block_size = name, 10, 8
        from mingpt.model import resolve_config

        resolved = resolve_config(C)
        assert resolved.n_embd % resolved.n_head == 0
