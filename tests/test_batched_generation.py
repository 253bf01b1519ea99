"""
Batched generation from prompts of different lengths: left padding, an attention mask and per-row positions give
every row exactly the tokens it gets alone, with and without the KV cache, and the tokens transformers gives.
"""

import pytest
import torch
import transformers

from mingpt.generation import left_pad
from mingpt.io.pretrained import config_from_hf, load_hf_state_dict
from mingpt.model import GPT


@pytest.fixture(scope="module")
def pair():
    """A small random GPT-2 in transformers and the same weights in mingpt; large weights, so tokens wander."""
    torch.manual_seed(0)
    hf_config = transformers.GPT2Config(n_layer=2, n_head=4, n_embd=32, vocab_size=96, n_positions=40,
                                        initializer_range=0.3, bos_token_id=0, eos_token_id=0)
    hf = transformers.GPT2LMHeadModel(hf_config).eval()
    model = GPT(config_from_hf(hf_config.to_dict()))
    load_hf_state_dict(model, hf.state_dict())
    return hf, model.eval()


def prompts(n=16, seed=0, vocab=96):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randperm(n, generator=g) % 12 + 1  # 1..12 tokens: every row padded differently
    return [torch.randint(1, vocab, (int(L),), generator=g).tolist() for L in lengths]


def single_runs(model, rows, n, **kwargs):
    return [model.generate(torch.tensor([p]), n, **kwargs)[0, len(p):].tolist() for p in rows]


@pytest.mark.parametrize("use_cache", [True, False])
def test_sixteen_padded_prompts_give_the_tokens_of_sixteen_single_runs(pair, use_cache):
    _, model = pair
    rows = prompts()
    assert len({len(p) for p in rows}) > 8
    idx, attention_mask = left_pad(rows, pad_token_id=0)
    # 30 new tokens: the longest row reaches 42 > block_size 40, so the window slides for some rows too
    out = model.generate(idx, 30, attention_mask=attention_mask, use_cache=use_cache)
    assert out[:, idx.size(1):].tolist() == single_runs(model, rows, 30, use_cache=use_cache)
    assert len(set(out[0, idx.size(1):].tolist())) > 3  # a meaningful comparison, not one repeated token


@pytest.mark.parametrize("attention", ["math", "sdpa"])
def test_both_attention_paths_handle_padding(pair, attention):
    # A padding query with no key to look at would give NaN on the math path, and the NaN would reach real tokens
    # through the padding's cached values; it looks at itself instead.
    config = pair[1].config.copy()
    config.attention = attention
    model = GPT(config)
    model.load_state_dict(pair[1].state_dict())
    rows = prompts(n=4, seed=4)
    idx, attention_mask = left_pad(rows)
    out = model.eval().generate(idx, 10, attention_mask=attention_mask)
    assert out[:, -10:].tolist() == single_runs(model, rows, 10)


def test_padding_is_invisible_whatever_token_it_uses(pair):
    _, model = pair
    rows = prompts(n=4, seed=1)
    outs = [model.generate(*left_pad(rows, pad_token_id=pad)[:1], 10, attention_mask=left_pad(rows)[1])
            for pad in (0, 7)]
    assert torch.equal(outs[0][:, -10:], outs[1][:, -10:])


def test_stop_tokens_end_rows_independently(pair):
    _, model = pair
    rows = prompts(n=8, seed=2)
    singles = single_runs(model, rows, 12)
    eos = singles[0][3]  # a token the first row produces early
    idx, attention_mask = left_pad(rows)
    out = model.generate(idx, 12, attention_mask=attention_mask, eos_token_id=eos, pad_token_id=95)
    finished = 0
    for row, single in zip(out[:, idx.size(1):].tolist(), singles):
        if eos in single:  # up to and including eos as alone, then only padding
            end = single.index(eos) + 1
            assert row[:end] == single[:end] and set(row[end:]) <= {95}
            finished += 1
        else:
            assert row == single
    assert 0 < finished < len(rows)  # some rows stopped, others ran on


def test_matches_transformers_batched_generate_with_left_padding(pair):
    hf, model = pair
    rows = prompts(n=16, seed=3)
    idx, attention_mask = left_pad(rows, pad_token_id=0)
    ours = model.generate(idx, 20, attention_mask=attention_mask)
    with torch.no_grad():
        theirs = hf.generate(idx, attention_mask=attention_mask, max_new_tokens=20, min_new_tokens=20,
                             do_sample=False, pad_token_id=0)
    assert torch.equal(ours, theirs)


def test_a_mask_without_padding_takes_the_unmasked_path(pair):
    _, model = pair
    idx = torch.randint(0, 96, (3, 6))
    assert torch.equal(model.generate(idx, 8, attention_mask=torch.ones_like(idx)), model.generate(idx, 8))


@pytest.mark.parametrize("mask,message", [
    (torch.tensor([[1, 1, 0]]), "left padding"),  # right padding
    (torch.tensor([[1, 0, 1]]), "left padding"),
    (torch.tensor([[0, 2, 1]]), "only 0 .* and 1"),
    (torch.tensor([[1, 1]]), r"same shape as idx \(1, 3\), got \(1, 2\)"),
    ([[1, 1, 1]], "same shape as idx .* got list"),
])
def test_bad_attention_masks_are_refused(pair, mask, message):
    _, model = pair
    with pytest.raises(ValueError, match=message):
        model.generate(torch.tensor([[5, 6, 7]]), 2, attention_mask=mask)


def test_left_pad_checks_its_prompts():
    idx, mask = left_pad([[5, 6, 7], [8]], pad_token_id=2)
    assert idx.tolist() == [[5, 6, 7], [2, 2, 8]] and mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    for bad in ([], [[1], []], [[[1, 2]]]):
        with pytest.raises(ValueError, match="prompt"):
            left_pad(bad)
