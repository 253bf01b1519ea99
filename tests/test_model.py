"""GPT: shapes, init, attention paths, tying, optimisation groups, configuration and input errors."""

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import transformers
from torch.utils.flop_counter import FlopCounterMode

from mingpt.config import PRESETS
from mingpt.model import GPT, NewGELU, resolve_config
from mingpt.utils import set_seed


def test_shapes_and_full_logits(tiny_gpt):
    model = tiny_gpt()
    idx = torch.randint(0, 50, (3, 11))
    logits, loss = model(idx)
    assert logits.shape == (3, 11, 50) and loss is None  # every position, not only the last


def test_loss_at_init_is_close_to_uniform(tiny_gpt):
    model = tiny_gpt(vocab_size=500)
    idx = torch.randint(0, 500, (8, 16))
    targets = torch.randint(0, 500, (8, 16))
    _, loss = model(idx, targets)
    assert abs(loss.item() - math.log(500)) < 0.1


def test_ignore_index_minus_one_masks_positions(tiny_gpt):
    model = tiny_gpt()
    idx = torch.randint(0, 50, (2, 8))
    targets = torch.randint(0, 50, (2, 8))
    masked = targets.clone()
    masked[:, :4] = -1
    logits, loss = model(idx, masked)
    expected = torch.nn.functional.cross_entropy(logits[:, 4:].reshape(-1, 50), targets[:, 4:].reshape(-1))
    torch.testing.assert_close(loss, expected)


def test_overfits_a_tiny_batch(tiny_gpt):
    model = tiny_gpt(embd_pdrop=0.0, resid_pdrop=0.0, attn_pdrop=0.0)
    idx = torch.randint(0, 50, (4, 16))
    targets = torch.roll(idx, -1, dims=1)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(150):
        _, loss = model(idx, targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05


def test_math_and_sdpa_attention_agree(tiny_gpt):
    sdpa = tiny_gpt(attn_pdrop=0.2)
    math_model = GPT(_with(sdpa.config, attention="math"))
    math_model.load_state_dict(sdpa.state_dict())
    sdpa.eval(), math_model.eval()  # no dropout, so both compute the same function (dropout: the next test)
    idx = torch.randint(0, 50, (2, 16))
    torch.testing.assert_close(sdpa(idx)[0], math_model(idx)[0], atol=1e-5, rtol=1e-5)
    # gradients agree too
    targets = torch.randint(0, 50, (2, 16))
    sdpa(idx, targets)[1].backward()
    math_model(idx, targets)[1].backward()
    for (name, p), q in zip(sdpa.named_parameters(), math_model.parameters()):
        torch.testing.assert_close(p.grad, q.grad, atol=1e-5, rtol=1e-4, msg=name)


@pytest.mark.parametrize("attention", ["sdpa", "math"])
def test_attention_dropout_drops_its_fraction_in_training_only(tiny_gpt, attention, monkeypatch):
    """
    With q = k = 0 every allowed position gets the same weight, and with v = identity (hs = T) the attention output
    *is* the attention matrix after dropout: row t holds 1/(t+1) at positions <= t, each entry either zeroed or
    scaled by 1/(1-p). So the output shows which weights dropout removed.
    """
    p, T = 0.25, 8
    attn = tiny_gpt(n_embd=32, n_head=4, attn_pdrop=p, attention=attention).transformer.h[0].attn  # hs = 8 = T
    seen_p = []
    real_sdpa = F.scaled_dot_product_attention
    monkeypatch.setattr(F, "scaled_dot_product_attention", lambda *a, **kw: seen_p.append(kw["dropout_p"]) or
                        real_sdpa(*a, **kw))
    q = k = torch.zeros(256, 4, T, 8)
    v = torch.eye(T).expand(256, 4, T, T)
    allowed = torch.ones(T, T, dtype=torch.bool).tril()
    uniform = allowed / allowed.sum(dim=-1, keepdim=True)  # (T, T): 1/(t+1) on the allowed positions
    attend = attn.sdpa_attention if attention == "sdpa" else attn.math_attention
    torch.manual_seed(0)
    attn.train()
    weights = attend(q, k, v)[..., allowed]  # only the causal entries: 36 per head
    dropped = (weights == 0).float().mean().item()
    assert abs(dropped - p) < 0.01, dropped  # 73,728 entries: the standard error is 0.0016
    kept = weights[weights != 0]
    torch.testing.assert_close(kept, (uniform[allowed] / (1 - p)).expand(256, 4, -1)[weights != 0])
    attn.eval()
    torch.testing.assert_close(attend(q, k, v), uniform.expand(256, 4, T, T))  # nothing dropped, no rescaling
    if attention == "sdpa":
        assert seen_p == [p, 0.0]  # the configured probability reached the fused kernel, and only in training


def _with(config, **overrides):
    C = config.copy()
    for k, v in overrides.items():
        setattr(C, k, v)
    return C


@pytest.mark.parametrize("attention", ["sdpa", "math"])
def test_causality(tiny_gpt, attention):
    """Changing token t never changes the logits at positions before t."""
    model = tiny_gpt(attention=attention).eval()
    idx = torch.randint(0, 50, (1, 16))
    changed = idx.clone()
    changed[0, 9] = (idx[0, 9] + 1) % 50
    a, b = model(idx)[0], model(changed)[0]
    torch.testing.assert_close(a[:, :9], b[:, :9])
    assert not torch.allclose(a[:, 9:], b[:, 9:])


def test_weight_tying_is_configurable(tiny_gpt):
    tied = tiny_gpt()
    assert tied.lm_head.weight is tied.transformer.wte.weight
    untied = tiny_gpt(tie_weights=False)
    assert untied.lm_head.weight is not untied.transformer.wte.weight
    assert untied.num_parameters() - tied.num_parameters() == 50 * 32


def test_gpt2_init_scales_residual_projections(tiny_gpt):
    model = tiny_gpt(n_layer=8, n_embd=256, n_head=4)
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


@pytest.mark.parametrize("attention", ["sdpa", "math"])
def test_flops_per_token_estimate_matches_pytorchs_flop_counter(tiny_gpt, attention):
    """The formula against FLOPs counted while one training step (forward + backward) really runs."""
    model = tiny_gpt(block_size=64, bias=False, attention=attention)  # attention is ~1/4 of the FLOPs here
    idx = torch.randint(0, 50, (2, 64))
    with FlopCounterMode(display=False) as counter:
        model(idx, idx)[1].backward()
    counted = counter.get_total_flops() / idx.numel()
    # The counter sees only matmuls; the estimate also counts LayerNorm gains as parameters (0.5 % here).
    assert model.estimate_flops_per_token() == pytest.approx(counted, rel=0.01)
    assert model.estimate_flops_per_token(seq_len=64) == model.estimate_flops_per_token()


def test_configure_optimizers_decays_only_matmul_weights(tiny_gpt):
    model = tiny_gpt()
    train_config = type("T", (), dict(learning_rate=1e-3, betas=(0.9, 0.95), weight_decay=0.1))()
    opt = model.configure_optimizers(train_config)
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() == 2 for p in decay["params"])
    assert any(p is model.transformer.wpe.weight for p in no_decay["params"])
    n_total = sum(p.numel() for g in opt.param_groups for p in g["params"])
    assert n_total == model.num_parameters()  # every parameter exactly once, tied matrix included once


def test_deterministic_with_mingpts_set_seed(tiny_gpt_config):
    def build_and_run(seed):
        torch.rand(100)  # move the global RNG on: only set_seed may bring it back
        set_seed(seed)
        model = GPT(tiny_gpt_config()).train()  # dropout on: the forward pass draws random numbers too
        return model, model(torch.arange(16)[None] % 50)[0]

    (a, out_a), (b, out_b), (c, _) = build_and_run(7), build_and_run(7), build_and_run(8)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
    assert torch.equal(out_a, out_b)
    assert not torch.equal(a.lm_head.weight, c.lm_head.weight)


def test_state_dict_holds_only_parameters(tiny_gpt):
    model = tiny_gpt()
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


def test_model_type_none_is_the_default_and_the_resolved_meaning_of_no_preset():
    assert GPT.get_default_config().model_type is None
    C = GPT.get_default_config()
    C.n_layer, C.n_head, C.n_embd, C.vocab_size, C.block_size = 1, 2, 8, 10, 4  # model_type never touched
    assert GPT(C).config.model_type is None
    C.model_type = ["gpt2"]  # CfgNode lets any type fill a key born None: the model names what it got
    with pytest.raises(ValueError, match=r"unknown model_type \['gpt2'\]; valid ones are .*gpt-nano.*or None"):
        GPT(C)


def test_the_old_default_model_type_gpt_is_refused_with_the_two_ways_to_say_it(tiny_gpt_config):
    """mingpt 0.1 wrote model_type "gpt" for "no preset"; 0.2 has one way to say that, None (CHANGELOG.md)."""
    C = tiny_gpt_config()
    C.model_type = "gpt"
    with pytest.raises(ValueError, match=r"unknown model_type 'gpt'; valid ones are .*gpt-nano.*or None for explicit"):
        GPT(C)


def test_n_embd_must_divide_by_n_head(tiny_gpt_config):
    with pytest.raises(ValueError, match=r"n_embd \(30\) must be divisible by n_head \(4\)"):
        GPT(tiny_gpt_config(n_embd=30))


@pytest.mark.parametrize("key,value", [("vocab_size", None), ("block_size", 0), ("attention", "flash3")])
def test_invalid_sizes_and_attention(tiny_gpt_config, key, value):
    with pytest.raises(ValueError, match=key):
        GPT(tiny_gpt_config(**{key: value}))


def test_config_must_be_a_cfgnode():
    with pytest.raises(TypeError, match="CfgNode"):
        GPT({"n_layer": 2})


# ---------------------------------------------------------------------- input errors in forward
def test_non_integer_idx(tiny_gpt):
    with pytest.raises(TypeError, match="integer token ids"):
        tiny_gpt()(torch.rand(1, 4))
    with pytest.raises(TypeError, match="torch.Tensor"):
        tiny_gpt()([[1, 2, 3]])


def test_ids_outside_vocab(tiny_gpt):
    with pytest.raises(ValueError, match=r"token id 50, outside \[0, 50\)"):
        tiny_gpt()(torch.tensor([[1, 50]]))
    with pytest.raises(ValueError, match="token id -3"):
        tiny_gpt()(torch.tensor([[-3, 1]]))


def test_sequence_longer_than_block_size(tiny_gpt):
    with pytest.raises(ValueError, match="longer than block_size=16"):
        tiny_gpt()(torch.zeros(1, 17, dtype=torch.long))


def test_wrong_rank_and_empty_input(tiny_gpt):
    with pytest.raises(ValueError, match=r"add a batch dimension"):
        tiny_gpt()(torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="empty"):
        tiny_gpt()(torch.zeros(1, 0, dtype=torch.long))


def test_targets_shape_mismatch(tiny_gpt):
    with pytest.raises(ValueError, match="same shape as idx"):
        tiny_gpt()(torch.zeros(2, 4, dtype=torch.long), torch.zeros(2, 5, dtype=torch.long))


def test_all_presets_are_valid_configs():
    for name in PRESETS:
        C = GPT.get_default_config()
        C.model_type, C.vocab_size, C.block_size = name, 10, 8
        resolved = resolve_config(C)
        assert resolved.n_embd % resolved.n_head == 0


# ---------------------------------------------------------------------- the original minGPT's surface
def test_new_gelu_is_gpt2s_tanh_gelu_and_the_models_activation(tiny_gpt):
    x = torch.linspace(-6, 6, 1001)
    written_out = 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))
    torch.testing.assert_close(NewGELU()(x), written_out, atol=1e-6, rtol=0)
    torch.testing.assert_close(NewGELU()(x), transformers.activations.NewGELUActivation()(x), atol=1e-6, rtol=0)
    assert isinstance(tiny_gpt().transformer.h[0].mlp.gelu, NewGELU)


class _OriginalLayoutAttention(nn.Module):
    """Attention laid out as the original minGPT's: c_attn, c_proj and the causal mask as a buffer named `bias`."""

    def __init__(self, C):
        super().__init__()
        self.n_head = C.n_head
        self.c_attn, self.c_proj = nn.Linear(C.n_embd, 3 * C.n_embd), nn.Linear(C.n_embd, C.n_embd)
        self.attn_dropout, self.resid_dropout = nn.Dropout(0.0), nn.Dropout(0.0)
        self.register_buffer("bias", torch.ones(C.block_size, C.block_size).tril()[None, None])  # persistent

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = (t.view(B, T, self.n_head, -1).transpose(1, 2) for t in self.c_attn(x).split(C, dim=2))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(k.size(-1))
        att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf")).softmax(dim=-1)
        return self.c_proj((att @ v).transpose(1, 2).reshape(B, T, C))


class _OriginalLayoutGPT(nn.Module):
    """The original minGPT's module tree (names, buffers, an untied lm_head), written here from its key names."""

    def __init__(self, C):
        super().__init__()
        block = lambda: nn.ModuleDict(dict(  # noqa: E731
            ln_1=nn.LayerNorm(C.n_embd), attn=_OriginalLayoutAttention(C), ln_2=nn.LayerNorm(C.n_embd),
            mlp=nn.ModuleDict(dict(c_fc=nn.Linear(C.n_embd, 4 * C.n_embd), c_proj=nn.Linear(4 * C.n_embd, C.n_embd),
                                   act=NewGELU(), dropout=nn.Dropout(0.0)))))
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(C.vocab_size, C.n_embd), wpe=nn.Embedding(C.block_size, C.n_embd), drop=nn.Dropout(0.0),
            h=nn.ModuleList([block() for _ in range(C.n_layer)]), ln_f=nn.LayerNorm(C.n_embd)))
        self.lm_head = nn.Linear(C.n_embd, C.vocab_size, bias=False)
        for p in self.parameters():  # random LayerNorms and biases too, so every tensor's place matters
            nn.init.normal_(p, std=0.3)

    def forward(self, idx):
        t = self.transformer
        x = t.wte(idx) + t.wpe(torch.arange(idx.size(1)))
        for b in t.h:
            x = x + b.attn(b.ln_1(x))
            x = x + b.mlp.c_proj(b.mlp.act(b.mlp.c_fc(b.ln_2(x))))
        return self.lm_head(t.ln_f(x))


def test_original_mingpt_state_dict_with_mask_buffers_loads_strictly(tiny_gpt_config, tmp_path):
    torch.manual_seed(0)
    C = tiny_gpt_config(tie_weights=False, embd_pdrop=0.0, resid_pdrop=0.0, attn_pdrop=0.0)
    original = _OriginalLayoutGPT(C)
    torch.save(original.state_dict(), tmp_path / "model.pt")  # what the original's users have on disk
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    assert "transformer.h.1.attn.bias" in state and state["transformer.h.1.attn.bias"].shape == (1, 1, 16, 16)

    model = GPT(C).eval()
    model.load_state_dict(state)  # strict, as the original's users call it
    assert "transformer.h.1.attn.bias" in state  # the caller's dict is left as it was
    idx = torch.randint(0, 50, (2, 16))
    with torch.no_grad():
        torch.testing.assert_close(model(idx)[0], original(idx), atol=1e-5, rtol=1e-5)

    # Only the causal mask is dropped: any other tensor under that name is still an unexpected key.
    state["transformer.h.0.attn.bias"] = torch.rand(1, 1, 16, 16)
    with pytest.raises(RuntimeError, match=r"Unexpected key\(s\).*transformer\.h\.0\.attn\.bias"):
        model.load_state_dict(state)
    # The original never tied wte and lm_head: loading its two matrices into a tied model would lose one.
    del state["transformer.h.0.attn.bias"]
    with pytest.raises(ValueError, match="tie_weights = False"):
        GPT(tiny_gpt_config()).load_state_dict(state)


def test_prompt_on_another_device_than_the_model_is_a_clear_error(tiny_gpt):
    """The original minGPT's users forget .to(trainer.device); torch's own error comes from deep in the embedding."""
    model = tiny_gpt().to("meta")  # a second device that every machine has
    prompt = torch.zeros(1, 3, dtype=torch.long)
    with pytest.raises(ValueError,
                       match=r"idx is on cpu but the model is on meta; move it there first, e\.g\. idx\.to"):
        model(prompt)
    with pytest.raises(ValueError, match=r"idx \(the prompt\) is on cpu but the model is on meta"):
        model.generate(prompt, 2)
