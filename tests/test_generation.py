"""Generation: the KV cache changes speed, never tokens; sampling controls; stop tokens; streaming; errors."""

import pytest
import torch

from mingpt.generation import KVCache, filter_logits, next_token


@pytest.fixture
def model_with_diverse_outputs(tiny_gpt):
    """A factory of tiny random GPTs whose weights are large enough that greedy decoding does not repeat one token:
    model_with_diverse_outputs(block_size=32, seed=0, attention="sdpa")."""

    def make(block_size=32, seed=0, attention="sdpa"):
        model = tiny_gpt(seed, vocab_size=64, block_size=block_size, attention=attention)
        with torch.no_grad():
            for p in model.parameters():
                if p.dim() == 2:
                    p.normal_(0, 0.3)
        return model.eval()

    return make


@pytest.mark.parametrize("attention", ["sdpa", "math"])
def test_cache_gives_same_greedy_tokens(model_with_diverse_outputs, attention):
    model = model_with_diverse_outputs(attention=attention)
    idx = torch.randint(0, 64, (3, 5))
    cached = model.generate(idx, 20)
    uncached = model.generate(idx, 20, use_cache=False)
    assert torch.equal(cached, uncached)
    assert len(set(cached[0, 5:].tolist())) > 3  # a meaningful comparison, not one repeated token


def test_cache_gives_same_sampled_tokens_with_seeded_generator(model_with_diverse_outputs):
    model = model_with_diverse_outputs()
    idx = torch.randint(0, 64, (2, 4))
    kwargs = dict(do_sample=True, temperature=0.9, top_k=20, top_p=0.95)
    a = model.generate(idx, 25, generator=torch.Generator().manual_seed(1), **kwargs)
    b = model.generate(idx, 25, generator=torch.Generator().manual_seed(1), use_cache=False, **kwargs)
    c = model.generate(idx, 25, generator=torch.Generator().manual_seed(2), **kwargs)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_seeded_sampling_past_block_size_with_the_cache(model_with_diverse_outputs):
    model = model_with_diverse_outputs(block_size=8)
    idx = torch.randint(0, 64, (2, 5))
    kwargs = dict(do_sample=True, temperature=1.3, top_p=0.95)
    cached = model.generate(idx, 20, generator=torch.Generator().manual_seed(4), **kwargs)  # 25 tokens, block 8
    again = model.generate(idx, 20, generator=torch.Generator().manual_seed(4), **kwargs)
    uncached = model.generate(idx, 20, generator=torch.Generator().manual_seed(4), use_cache=False, **kwargs)
    other = model.generate(idx, 20, generator=torch.Generator().manual_seed(5), **kwargs)
    assert cached.shape == (2, 25)
    assert torch.equal(cached, again) and torch.equal(cached, uncached)
    assert not torch.equal(cached[:, 13:], other[:, 13:])  # the seed still matters after the window slides


def test_cache_stays_exact_when_sequence_outgrows_block_size(model_with_diverse_outputs):
    model = model_with_diverse_outputs(block_size=8)
    idx = torch.randint(0, 64, (2, 5))
    cached = model.generate(idx, 20)  # ends at 25 tokens, far past block_size=8
    uncached = model.generate(idx, 20, use_cache=False)
    assert cached.shape == (2, 25) and torch.equal(cached, uncached)


def test_prompt_longer_than_block_size_is_cropped(model_with_diverse_outputs):
    model = model_with_diverse_outputs(block_size=8)
    idx = torch.randint(0, 64, (1, 12))
    out = model.generate(idx, 3)
    assert torch.equal(out[:, :12], idx)
    assert torch.equal(model.generate(idx[:, -8:], 3)[:, 8:], out[:, 12:])


def test_cached_single_steps_match_full_forward(model_with_diverse_outputs):
    model = model_with_diverse_outputs()
    idx = torch.randint(0, 64, (2, 10))
    full = model(idx)[0]
    cache = KVCache(model.config.n_layer, model.config.block_size)
    steps = [model(idx[:, :4], kv_cache=cache)[0]]
    steps += [model(idx[:, t : t + 1], kv_cache=cache)[0] for t in range(4, 10)]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)


def test_cache_refuses_to_overflow_block_size(model_with_diverse_outputs):
    model = model_with_diverse_outputs(block_size=8)
    cache = KVCache(model.config.n_layer, 8)
    model(torch.zeros(1, 6, dtype=torch.long), kv_cache=cache)
    with pytest.raises(ValueError, match="longer than block_size=8"):
        model(torch.zeros(1, 3, dtype=torch.long), kv_cache=cache)


def test_stream_yields_the_tokens_of_a_hand_written_argmax_loop(model_with_diverse_outputs):
    model = model_with_diverse_outputs()
    idx = torch.randint(0, 64, (2, 4))
    streamed = list(model.generate_stream(idx, 10))
    assert len(streamed) == 10 and streamed[0].shape == (2,)
    seq = idx  # the oracle: no cache, no sampling code, the full forward pass and an argmax
    with torch.no_grad():
        for _ in range(10):
            seq = torch.cat([seq, model(seq)[0][:, -1].argmax(dim=-1, keepdim=True)], dim=1)
    assert torch.equal(torch.stack(streamed, dim=1), seq[:, 4:])
    assert len(set(seq[0, 4:].tolist())) > 3


def test_generated_tokens_are_ordinary_tensors_a_model_can_train_on(model_with_diverse_outputs):
    """Decoding runs under inference_mode; what it hands back must still work with autograd and in-place ops."""
    model = model_with_diverse_outputs()
    idx = torch.randint(0, 64, (2, 4))
    out = model.generate(idx, 8)
    streamed = list(model.generate_stream(idx, 3))
    assert not out.is_inference() and not any(t.is_inference() for t in streamed)
    streamed[0].add_(1)  # in-place on an inference tensor would raise
    model.train()
    _, loss = model(out[:, :-1], out[:, 1:])
    loss.backward()  # an inference tensor saved for backward (the embedding's ids) would raise
    assert model.lm_head.weight.grad is not None


def test_batch_rows_are_independent(model_with_diverse_outputs):
    model = model_with_diverse_outputs()
    idx = torch.randint(0, 64, (3, 6))
    together = model.generate(idx, 12)
    for row in range(3):
        assert torch.equal(together[row], model.generate(idx[row : row + 1], 12)[0])


def test_eos_stops_and_pads_finished_rows(model_with_diverse_outputs):
    model = model_with_diverse_outputs()
    idx = torch.randint(0, 64, (2, 4), generator=torch.Generator().manual_seed(0))
    free = model.generate(idx, 15)
    # A token row 0 produces early on and row 1 never produces: row 0 finishes, row 1 runs to the end.
    eos = next(int(t) for t in free[0, 5:9] if t not in free[1, 4:])
    first = (free[0, 4:] == eos).nonzero()[0].item() + 4
    assert first < 12
    out = model.generate(idx, 15, eos_token_id=eos)
    assert out.shape == (2, 19)
    assert torch.equal(out[0, : first + 1], free[0, : first + 1])
    assert (out[0, first + 1 :] == eos).all()  # padded with the eos id (no pad_token_id given)
    assert torch.equal(out[1], free[1])  # the unfinished row is untouched by row 0 stopping
    pad = next(t for t in range(64) if t not in free[0, first + 1 :] and t != eos)
    padded = model.generate(idx, 15, eos_token_id=eos, pad_token_id=pad)
    assert torch.equal(padded[0, : first + 1], free[0, : first + 1]) and (padded[0, first + 1 :] == pad).all()
    assert torch.equal(padded[1], free[1])
    with pytest.raises(ValueError, match="pad_token_id must be a token id in \\[0, 64\\), got 64"):
        model.generate(idx, 5, eos_token_id=eos, pad_token_id=64)


def test_generation_stops_early_when_all_rows_finish(model_with_diverse_outputs):
    model = model_with_diverse_outputs()
    idx = torch.randint(0, 64, (1, 4))
    free = model.generate(idx, 10)
    out = model.generate(idx, 10, eos_token_id=[int(free[0, 6]), 63])
    assert out.shape[1] <= 7


def test_generate_restores_training_mode_and_original_api(model_with_diverse_outputs):
    model = model_with_diverse_outputs().train()
    modes = []  # the mode each decoding step ran in: dropout must be off while generating
    model.transformer.drop.register_forward_hook(lambda module, inputs, output: modes.append(module.training))
    idx = torch.randint(0, 64, (1, 4))
    out = model.generate(idx, 5, temperature=1.0, do_sample=False, top_k=None)  # original minGPT signature
    assert out.shape == (1, 9) and model.training
    assert modes == [False] * 5


def test_zero_new_tokens_returns_prompt(model_with_diverse_outputs):
    model = model_with_diverse_outputs()
    idx = torch.randint(0, 64, (1, 4))
    assert torch.equal(model.generate(idx, 0), idx)


def test_top_k_and_top_p_filters():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    kept = lambda x: torch.isfinite(x)[0].tolist()  # noqa: E731
    assert kept(filter_logits(logits, top_k=2)) == [True, True, False, False]
    assert kept(filter_logits(logits, top_p=0.5)) == [True, False, False, False]
    assert kept(filter_logits(logits, top_p=0.8)) == [True, True, False, False]
    assert kept(filter_logits(logits, top_p=0.81)) == [True, True, True, False]
    assert kept(filter_logits(logits, top_p=1.0)) == [True, True, True, True]


@pytest.mark.parametrize("top_k,top_p,temperature", [(5, None, 1.0), (None, 0.3, 1.0), (None, 0.9, 0.7),
                                                     (40, 0.8, 1.5), (1, 0.5, 0.5)])
def test_filter_logits_matches_transformers_logits_warpers(top_k, top_p, temperature):
    from transformers.generation.logits_process import (LogitsProcessorList, TemperatureLogitsWarper, TopKLogitsWarper,
                                                        TopPLogitsWarper)

    logits = torch.randn(16, 100, generator=torch.Generator().manual_seed(0)) * 3
    warpers = LogitsProcessorList([TemperatureLogitsWarper(temperature)])  # transformers' order: T, top-k, top-p
    warpers += [TopKLogitsWarper(top_k)] if top_k is not None else []
    warpers += [TopPLogitsWarper(top_p)] if top_p is not None else []
    expected = warpers(None, logits.clone())
    ours = filter_logits(logits / temperature, top_k=top_k, top_p=top_p)
    assert torch.equal(torch.isfinite(ours), torch.isfinite(expected))
    assert 1 < torch.isfinite(ours).sum(dim=-1).float().mean() < 100 or top_k == 1  # a real cut, not all or none
    torch.testing.assert_close(ours[torch.isfinite(ours)], expected[torch.isfinite(expected)])
    # next_token applies temperature and the filters the same way: a seeded draw from transformers' distribution.
    drawn = next_token(logits, do_sample=True, temperature=temperature, top_k=top_k, top_p=top_p,
                       generator=torch.Generator().manual_seed(1))
    oracle = torch.multinomial(expected.softmax(dim=-1), 1, generator=torch.Generator().manual_seed(1))
    assert torch.equal(drawn, oracle.squeeze(-1))


def test_top_k_one_sampling_equals_greedy(model_with_diverse_outputs):
    model = model_with_diverse_outputs()
    idx = torch.randint(0, 64, (2, 4))
    sampled = model.generate(idx, 10, do_sample=True, top_k=1, generator=torch.Generator().manual_seed(0))
    assert torch.equal(sampled, model.generate(idx, 10))


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(do_sample=True, temperature=0.0), "temperature must be > 0"),
        (dict(do_sample=True, temperature=-1), "temperature must be > 0"),
        (dict(top_p=1.5), r"top_p must be in \(0, 1\], got 1.5"),
        (dict(top_p=0), "top_p must be in"),
        (dict(top_k=0), "top_k must be an int >= 1"),
        (dict(eos_token_id=64), "eos_token_id"),
    ],
)
def test_bad_sampling_arguments(model_with_diverse_outputs, kwargs, message):
    model = model_with_diverse_outputs()
    with pytest.raises(ValueError, match=message):
        model.generate(torch.zeros(1, 2, dtype=torch.long), 5, **kwargs)


def test_bad_prompt_and_length(model_with_diverse_outputs):
    model = model_with_diverse_outputs()
    with pytest.raises(ValueError, match="max_new_tokens must be an int >= 0"):
        model.generate(torch.zeros(1, 2, dtype=torch.long), -1)
    with pytest.raises(ValueError, match="empty"):
        model.generate(torch.zeros(1, 0, dtype=torch.long), 5)
    with pytest.raises(TypeError, match="integer token ids"):
        model.generate(torch.zeros(1, 2), 5)
    with pytest.raises(ValueError, match="token id 99"):
        model.generate_stream(torch.tensor([[99]]), 5)  # checked when called, not at the first next()


@pytest.mark.parametrize("temperature", [float("inf"), float("nan"), True])
def test_temperature_must_be_finite(model_with_diverse_outputs, temperature):
    model = model_with_diverse_outputs()
    with pytest.raises(ValueError, match=f"temperature must be > 0 and finite when sampling, got {temperature!r}"):
        model.generate(torch.zeros(1, 2, dtype=torch.long), 5, do_sample=True, temperature=temperature)


def test_one_dimensional_prompt_gets_a_correct_hint(model_with_diverse_outputs):
    model = model_with_diverse_outputs()
    with pytest.raises(ValueError, match=r"idx \(the prompt\) must have shape \(B, T\), got \(3,\): add a batch "
                                         r"dimension with idx\[None\] \(or idx\.unsqueeze\(0\)\)"):
        model.generate(torch.tensor([1, 2, 3]), 5)


def test_prompt_longer_than_block_size_is_said_once(model_with_diverse_outputs, caplog):
    model = model_with_diverse_outputs(block_size=8)
    with caplog.at_level("WARNING", logger="mingpt.generation"):
        model.generate(torch.randint(0, 64, (1, 12)), 6)  # 6 steps past block_size: still one warning
    warnings = [r.getMessage() for r in caplog.records if r.name == "mingpt.generation"]
    assert warnings == ["the prompt has 12 tokens but the model sees at most block_size=8: only its last 8 are used"]
    caplog.clear()
    with caplog.at_level("WARNING", logger="mingpt.generation"):
        model.generate(torch.randint(0, 64, (1, 8)), 6)  # a prompt that fits, growing past block_size: nothing said
    assert not caplog.records
