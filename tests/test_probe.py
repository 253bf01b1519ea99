"""The probe: what it captures is what the model computes, it changes nothing, and it leaves nothing behind."""

import math

import pytest
import torch
import torch.nn.functional as F

from mingpt.interp.hooks import attached_hook_names
from mingpt.interp.probe import Probe, format_top_k, model_summary, run_with_probe, top_k_next_tokens

V, T = 300, 12


@pytest.fixture(scope="module")
def tiny(tiny_gpt):
    """This file's model, in eval mode: 2 heads over V tokens with a block of 64."""

    def make(attention="sdpa", tie_weights=True, n_layer=2):
        return tiny_gpt(n_layer=n_layer, n_head=2, vocab_size=V, block_size=64, attention=attention,
                        tie_weights=tie_weights).eval()

    return make


@pytest.fixture(scope="module")
def model(tiny):
    return tiny()


@pytest.fixture(scope="module")
def idx():
    return torch.randint(0, V, (2, T), generator=torch.Generator().manual_seed(0))


def test_trace_shapes_and_stream_identity(model, idx):
    trace = run_with_probe(model, idx)
    n, nh, C = model.config.n_layer, model.config.n_head, model.config.n_embd
    assert [a.shape for a in trace.attentions] == [(2, nh, T, T)] * n
    assert len(trace.residuals) == n + 1 and all(r.shape == (2, T, C) for r in trace.residuals)
    assert len(trace.logit_lens) == n + 1 and all(lens.shape == (2, T, V) for lens in trace.logit_lens)
    # The residual stream is a running sum: each block adds exactly its two sublayers' outputs.
    for i in range(n):
        expected = trace.residuals[i] + trace.attn_outputs[i] + trace.mlp_outputs[i]
        torch.testing.assert_close(trace.residuals[i + 1], expected, atol=1e-5, rtol=0)
    # The embeddings are the first residual, and the last logit lens is the model's own output.
    pos = torch.arange(T)
    torch.testing.assert_close(trace.residuals[0], model.transformer.wte(idx) + model.transformer.wpe(pos))
    torch.testing.assert_close(trace.logit_lens[-1], trace.logits)
    assert not any(t.requires_grad for t in trace.residuals + trace.attentions)


def test_attention_equals_manual_computation(model, idx):
    trace = run_with_probe(model, idx)
    nh = model.config.n_head
    for layer, block in enumerate(model.transformer.h):
        with torch.no_grad():
            q, k, _ = block.attn.c_attn(block.ln_1(trace.residuals[layer])).split(model.config.n_embd, dim=2)
        q = q.view(2, T, nh, -1).transpose(1, 2)
        k = k.view(2, T, nh, -1).transpose(1, 2)
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.size(-1))
        scores = scores.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
        torch.testing.assert_close(trace.attentions[layer], F.softmax(scores, dim=-1), atol=1e-6, rtol=0)
        assert torch.all(trace.attentions[layer].triu(1) == 0)  # causal: nothing from the future
        torch.testing.assert_close(trace.attentions[layer].sum(-1), torch.ones(2, nh, T))


def test_probe_does_not_change_outputs_and_matches_math_model(tiny, model, idx):
    with torch.no_grad():
        plain, _ = model(idx)  # fused SDPA path
        with Probe(model) as probe:
            probed, _ = model(idx)
    torch.testing.assert_close(probed, plain, atol=1e-5, rtol=0)
    math_model = tiny(attention="math")
    math_model.load_state_dict(model.state_dict())
    math_trace = run_with_probe(math_model, idx)
    for ours, theirs in zip(probe.attentions, math_trace.attentions):
        torch.testing.assert_close(ours, theirs)


def test_hooks_are_removed_even_after_an_error(tiny, model, idx):
    with pytest.raises(ValueError, match="outside"):
        with Probe(model):
            model(torch.full((1, 3), V))  # token id out of range: the forward pass raises
    assert attached_hook_names(model) == [] and not any(m._forward_hooks for m in model.modules())
    with Probe(model) as probe:  # and a fresh probe works afterwards: every layer, real attention probabilities
        model(idx)
    n, nh = model.config.n_layer, model.config.n_head
    assert len(probe.attentions) == n and all(a.shape == (2, nh, T, T) for a in probe.attentions)
    for attention in probe.attentions:
        torch.testing.assert_close(attention.sum(dim=-1), torch.ones(2, nh, T))  # each row is a distribution
        assert (attention.triu(diagonal=1) == 0).all()  # over the past only
    for ours, fresh in zip(probe.attentions, run_with_probe(tiny(), idx).attentions):  # same weights, new model
        torch.testing.assert_close(ours, fresh)


def test_probes_nest_each_seeing_its_own_passes_and_bad_arguments(model, idx):
    with Probe(model) as outer:
        model(idx)
        with Probe(model) as inner:
            model(idx[:, :4])
    assert attached_hook_names(model) == []
    assert outer.attentions[0].shape[-1] == 4 and inner.attentions[0].shape[-1] == 4  # both saw the latest pass
    with outer:  # entered again, a probe starts empty: it shows only the passes of this `with`
        pass
    assert outer.attentions == [None] * model.config.n_layer
    with pytest.raises(TypeError, match="GPT"):
        Probe(torch.nn.Linear(2, 2))
    with pytest.raises(RuntimeError, match="forward pass"):
        Probe(model).trace(torch.zeros(1))


def test_run_with_probe_restores_training_mode(tiny, idx):
    model = tiny().train()
    first, second = run_with_probe(model, idx, with_logit_lens=False), run_with_probe(model, idx)
    assert model.training  # restored
    torch.testing.assert_close(first.logits, second.logits)  # dropout was off: deterministic
    assert first.logit_lens == []


def test_top_k_next_tokens_switches_dropout_off_restores_training_and_checks_k(tiny, idx):
    model = tiny().train()
    first, second = top_k_next_tokens(model, idx[:1], k=5), top_k_next_tokens(model, idx[:1], k=5)
    assert first == second and model.training  # no dropout while reading, and the caller's mode back
    for bad in (0, V + 1, True, 2.0):
        with pytest.raises(ValueError, match=rf"k must be an int in \[1, {V}\].*got {bad!r}"):
            top_k_next_tokens(model, idx[:1], k=bad)


def test_probe_during_cached_generation_keeps_the_latest_step(model, idx):
    with Probe(model) as probe:
        model.generate(idx[:, :5], 3)
    # The last step feeds one new token and attends over 5 + 2 cached positions.
    assert probe.attentions[0].shape == (2, model.config.n_head, 1, 7)
    assert attached_hook_names(model) == []


def test_model_summary_counts_every_parameter_once(tiny):
    for tie in (True, False):
        model = tiny(tie_weights=tie, n_layer=3)
        text = model_summary(model)
        assert f"total {model.num_parameters():,} parameters" in text
        assert "transformer.h.0.attn.c_attn" in text and "2 x Block" in text
        assert ("shared with transformer.wte.weight" in text) == tie


def test_top_k_next_tokens(model, idx):
    rows = top_k_next_tokens(model, idx[0], k=5)
    with torch.no_grad():
        probs = F.softmax(model(idx[:1])[0][0, -1], dim=-1)
    assert [r.token_id for r in rows] == torch.topk(probs, 5).indices.tolist()
    assert rows[0].probability == pytest.approx(probs.max().item())
    assert rows == top_k_next_tokens(model, idx[0].tolist(), k=5) and rows[0].text is None

    class Letters:  # any object with encode/decode will do
        def encode(self, text):
            return [ord(c) for c in text]

        def decode(self, ids):
            return "".join(chr(i) for i in ids)

    rows = top_k_next_tokens(model, "hello", k=3, tokenizer=Letters())
    assert rows[0].text == chr(rows[0].token_id)
    table = format_top_k(rows)
    assert table.splitlines()[1].split()[1] == str(rows[0].token_id) and repr(rows[0].text) in table
    with pytest.raises(ValueError, match="tokenizer"):
        top_k_next_tokens(model, "hello")
    with pytest.raises(ValueError, match="k must be"):
        top_k_next_tokens(model, [1, 2], k=0)
    with pytest.raises(ValueError, match="one prompt"):
        top_k_next_tokens(model, idx)
