"""check_int and eval_mode: the two small helpers the package uses wherever it checks a count or evaluates."""

import pytest
import torch

from mingpt.utils import check_int, eval_mode


def test_check_int_accepts_ints_in_range_and_returns_them():
    assert check_int(0, "n") == 0
    assert check_int(7, "n", low=1, high=7) == 7


@pytest.mark.parametrize("value", [True, 1.0, "3", None, -1, 11])
def test_check_int_refuses_non_ints_bools_and_out_of_range_with_the_name_and_value(value):
    with pytest.raises(ValueError) as e:
        check_int(value, "retries", low=0, high=10)
    assert str(e.value) == f"retries must be an int in [0, 10], got {value!r}"


def test_check_int_message_without_upper_bound_carries_the_hint():
    with pytest.raises(ValueError, match=r"^top_k must be an int >= 1 \(or None\), got 0$"):
        check_int(0, "top_k", low=1, hint=" (or None)")


@pytest.mark.parametrize("training", [True, False])
def test_eval_mode_switches_dropout_off_and_restores_the_previous_mode(training):
    model = torch.nn.Sequential(torch.nn.Dropout(0.5))
    model.train(training)
    with eval_mode(model) as m:
        assert m is model and not model.training and not model[0].training
    assert model.training is training and model[0].training is training


def test_eval_mode_restores_the_mode_when_the_block_raises():
    model = torch.nn.Dropout(0.5).train()
    with pytest.raises(RuntimeError):
        with eval_mode(model):
            raise RuntimeError("boom")
    assert model.training
