"""A student's component plugs into GPT, trains with the real Trainer and generates; misfits fail clearly."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from student_code import Attention, LayerNorm

from mingpt.exercises.training import sorting_config, train_and_compare
from mingpt.model import GPT, Block

STEPS = 200  # past the point where sorting emerges (near 60 steps two correct models can differ by chance)


class StudentBlock(Block):
    """A Block written by a student that builds its parts from their own classes."""

    def __init__(self, config, layer_idx):
        super().__init__(config, layer_idx, attention=Attention, layer_norm=LayerNorm)


def test_student_components_are_used_and_keep_gpt2_names():
    model = GPT(sorting_config(), attention=Attention, layer_norm=LayerNorm)
    assert type(model.transformer.h[1].attn) is Attention
    assert type(model.transformer.h[0].ln_2) is LayerNorm and type(model.transformer.ln_f) is LayerNorm
    assert set(model.state_dict()) == set(GPT(sorting_config()).state_dict())  # weights map one to one
    assert type(GPT(sorting_config(), block=StudentBlock).transformer.h[0]) is StudentBlock


def test_student_attention_trains_with_the_trainer_and_generates():
    result = train_and_compare(steps=STEPS, attention=Attention, layer_norm=LayerNorm)
    assert result, str(result)
    assert f"on sorting in {STEPS} steps" in str(result) and "greedy sort of [2, 0, 1, 2, 0, 1]" in str(result)


def test_a_component_that_does_not_learn_is_caught_by_training():
    class Detached(Attention):  # passes check_attention (same values), but no gradient flows through it
        def forward(self, x, kv_cache=None):
            return super().forward(x).detach()

    result = train_and_compare(steps=STEPS, attention=Detached)
    assert not result and result.property == "parameters that do not learn", str(result)
    assert "never" in result.counterexample


def test_the_cached_reference_run_is_the_run_itself():
    """train_and_compare trains the reference once per (steps, seed, threads): the cached numbers must be exactly
    what a fresh run gives, whatever ran before it (other seeds, other RNG use), and a caller cannot change them."""
    from mingpt.exercises import training

    first = training._reference(12, 3)
    torch.manual_seed(99)
    torch.rand(100)
    model, loss, _ = training._train(12, 3)
    assert first == (loss, training.held_out(model))
    first[1]["prefix"] = -1.0  # a caller writing into its copy
    assert training._reference(12, 3)[1]["prefix"] != -1.0
    hits = training._reference_run.cache_info().hits
    training._reference(12, 3)
    assert training._reference_run.cache_info().hits == hits + 1


def test_misfits_fail_at_construction_with_the_signature_needed():
    class NoLayerIdx(nn.Module):
        def __init__(self, config):
            super().__init__()

        def forward(self, x, kv_cache=None):
            return x

    class NoCacheArgument(Attention):
        def forward(self, x):
            return super().forward(x)

    class NoEps(nn.Module):
        def __init__(self, ndim):
            super().__init__()

    with pytest.raises(TypeError, match=r"attention=NoLayerIdx must define __init__\(self, config, layer_idx\)"):
        GPT(sorting_config(), attention=NoLayerIdx)
    with pytest.raises(TypeError, match=r"forward\(self, x, kv_cache=None\)"):
        GPT(sorting_config(), attention=NoCacheArgument)
    with pytest.raises(TypeError, match=r"layer_norm=NoEps must define __init__\(self, ndim, eps=1e-5, bias=True\)"):
        GPT(sorting_config(), layer_norm=NoEps)
    with pytest.raises(TypeError, match="pass the class itself"):
        GPT(sorting_config(), mlp=nn.Identity())
    with pytest.raises(ValueError, match="either block="):
        GPT(sorting_config(), block=StudentBlock, attention=Attention)
    assert train_and_compare(steps=1, attention=NoLayerIdx).property == "your class does not fit into GPT"


def test_default_model_is_unchanged_by_the_plug_in_points():
    torch.manual_seed(0)
    a = GPT(sorting_config())
    torch.manual_seed(0)
    b = GPT(sorting_config(), attention=None, mlp=None, layer_norm=None, block=None)
    idx = torch.tensor([[0, 1, 2, 0]])
    assert torch.equal(a(idx)[0], b(idx)[0])
