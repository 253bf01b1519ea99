"""Bad targets get mingpt's own messages (naming the value and the fix), not torch's from inside cross_entropy."""

import pytest
import torch

from mingpt.model import GPT, IGNORE_INDEX


@pytest.fixture(scope="module")
def model():
    config = GPT.get_default_config()
    config.model_type, config.vocab_size, config.block_size = "gpt-nano", 11, 7
    return GPT(config)


def test_transformers_ignore_index_is_named(model):
    idx = torch.randint(0, 11, (2, 5))
    targets = idx.clone()
    targets[:, :2] = -100  # transformers' (and F.cross_entropy's default) ignore index
    with pytest.raises(ValueError, match=r"targets contains -100, the ignore index of transformers.*mingpt's is -1"):
        model(idx, targets)
    targets[targets == -100] = IGNORE_INDEX  # the fix the message gives
    assert torch.isfinite(model(idx, targets)[1])


@pytest.mark.parametrize("bad", [11, 12, -2])
def test_out_of_range_target_is_named(model, bad):
    idx = torch.randint(0, 11, (3, 6))
    targets = idx.clone()
    targets[1, 4] = bad
    with pytest.raises(ValueError, match=rf"targets contains {bad}, outside \[0, 11\) .* not the ignore index -1"):
        model(idx, targets)


def test_float_targets_are_named(model):
    idx = torch.randint(0, 11, (2, 5))
    with pytest.raises(TypeError, match=r"targets must hold integer token ids.*torch.float32; use \.long\(\)"):
        model(idx, idx.float())


def test_valid_targets_give_torch_loss(model):
    idx = torch.randint(0, 11, (2, 6), generator=torch.Generator().manual_seed(0))
    targets = torch.randint(0, 11, (2, 6), generator=torch.Generator().manual_seed(1))
    targets[0, :3] = IGNORE_INDEX
    logits, loss = model(idx, targets)
    expected = torch.nn.functional.cross_entropy(logits.view(-1, 11), targets.view(-1), ignore_index=-1)
    assert torch.equal(loss, expected)
