"""Parity with Hugging Face transformers: the same weights give the same logits and the same greedy tokens."""

import pytest
import torch
import transformers

from mingpt.io.pretrained import config_from_hf, load_hf_state_dict, state_dict_to_hf
from mingpt.model import GPT


@pytest.fixture(scope="module")
def pair():
    torch.manual_seed(0)
    hf_config = transformers.GPT2Config(
        n_layer=3, n_head=4, n_embd=64, vocab_size=320, n_positions=48,
        initializer_range=0.3,  # large random weights, so greedy decoding wanders instead of repeating
        bos_token_id=0, eos_token_id=0,
    )
    hf = transformers.GPT2LMHeadModel(hf_config).eval()
    model = GPT(config_from_hf(hf_config.to_dict()))
    load_hf_state_dict(model, hf.state_dict())
    return hf, model.eval()


def test_logits_match(pair):
    hf, model = pair
    idx = torch.randint(0, 320, (4, 48))
    with torch.no_grad():
        torch.testing.assert_close(model(idx)[0], hf(idx).logits, atol=1e-5, rtol=0)


def test_loss_matches(pair):
    hf, model = pair
    idx = torch.randint(0, 320, (2, 20))
    with torch.no_grad():
        hf_loss = hf(idx, labels=idx).loss  # transformers shifts labels inside
        _, loss = model(idx[:, :-1], idx[:, 1:])
    torch.testing.assert_close(loss, hf_loss, atol=1e-5, rtol=0)


@pytest.mark.parametrize("use_cache", [True, False])
def test_greedy_generation_matches(pair, use_cache):
    hf, model = pair
    idx = torch.randint(0, 320, (3, 10))
    expected = hf.generate(
        idx, attention_mask=torch.ones_like(idx), max_new_tokens=30, do_sample=False,
        pad_token_id=0, eos_token_id=None,
    )
    ours = model.generate(idx, 30, use_cache=use_cache)
    assert torch.equal(ours, expected)
    assert len(set(ours[0, 10:].tolist())) > 5


def test_export_round_trip(pair):
    hf, model = pair
    exported = state_dict_to_hf(model)
    # Every parameter transformers has (a tied matrix under both its names), and nothing else: the comparison runs
    # over the reference's keys, so a key the export leaves out fails here. Buffers some versions keep
    # (attn.bias, attn.masked_bias) are masks, not weights.
    reference = {name: p for name, p in hf.named_parameters(remove_duplicate=False)}
    assert "lm_head.weight" in reference and len(reference) == 5 + 12 * 3  # wte wpe ln_f(2) lm_head, 12 a block
    assert set(exported) == set(reference)
    for key, value in reference.items():
        torch.testing.assert_close(exported[key], value, msg=key)


def test_stop_token_and_padding_match_transformers(pair):
    """Finished rows are padded with pad_token_id (default: the eos id) and generation stops as transformers does."""
    hf, model = pair
    idx = torch.randint(0, 320, (3, 6), generator=torch.Generator().manual_seed(2))
    free = model.generate(idx, 20)
    # A token row 0 produces early that another row never produces: rows finish at different steps.
    eos = next(int(t) for t in free[0, 7:12] if not all(t in free[r, 6:] for r in (1, 2)))
    for pad in (None, 7):
        expected = hf.generate(idx, attention_mask=torch.ones_like(idx), max_new_tokens=20, do_sample=False,
                               eos_token_id=eos, pad_token_id=eos if pad is None else pad)
        ours = model.generate(idx, 20, eos_token_id=eos, pad_token_id=pad)
        assert torch.equal(ours, expected)
        assert (ours[0, -1] == (eos if pad is None else pad)) and ours.shape[1] > 6 + 6  # row 0 padded, run went on
