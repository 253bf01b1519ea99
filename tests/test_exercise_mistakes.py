"""
The checkers against tables of student-style mistakes (tests/mistakes_<topic>.py): every mistake is caught AND
given its expected name; every valid alternative passes; and mistakes no table names are reported as not
recognised, never under a wrong name. tests/scripts/exercise_counts.py prints the counts per checker.
"""

from __future__ import annotations

import collections
import importlib
import math
import re

import pytest
import torch
import torch.nn.functional as F

from mingpt.exercises import CheckResult, bigram_entropy, train_and_compare
from mingpt.exercises.checking import TORCH_SAYS
from mingpt.exercises.compare import NOT_RECOGNISED

TOPICS = ["attention", "block", "gpt", "sampling", "kvcache", "bpe", "optim", "modern", "heldout"]
MODULES = [importlib.import_module(f"mistakes_{topic}") for topic in TOPICS]
MISTAKES = [row for m in MODULES for row in m.MISTAKES]
VALID = [row for m in MODULES for row in m.VALID]
UNNAMED = [row for m in MODULES for row in m.UNNAMED]
# Every name a checker gives for a mistake it recognised (a table's expected names).
NAMES = {name for _, _, name in MISTAKES}
TORCH_FIXES = {fix for *_, fix in TORCH_SAYS}  # the fixes given for crashes whose cause torch's message states


def _id(checker, impl, name=""):
    return f"{checker.__name__}-{getattr(impl, '__name__', 'fn')}-{name}"


@pytest.mark.parametrize("checker, impl, name", MISTAKES, ids=[_id(*row) for row in MISTAKES])
def test_mistake_is_caught_and_named(checker, impl, name):
    result = checker(impl)
    assert isinstance(result, CheckResult) and not result, f"not caught: {name}"
    assert result.property == name, str(result)
    assert result.counterexample.strip() and result.hint, str(result)


@pytest.mark.parametrize("checker, impl", VALID, ids=[_id(*row) for row in VALID])
def test_valid_alternative_passes(checker, impl):
    result = checker(impl)
    assert result, str(result)


@pytest.mark.parametrize("checker, impl", UNNAMED, ids=[_id(*row) for row in UNNAMED])
def test_an_unknown_mistake_gets_no_wrong_name(checker, impl):
    result = checker(impl)
    assert not result
    assert result.property == NOT_RECOGNISED and result.property not in NAMES, str(result)
    assert any(w in result.counterexample for w in ("first differing element", "first difference", "difference "))


def test_heldout_crashes_show_the_students_line():
    from mistakes_heldout import CRASHED
    assert CRASHED
    for checker, impl in CRASHED:
        result = checker(impl)
        assert not result and result.property == "your code raised an exception", str(result)
        assert re.search(r"heldout_probe_\w+\.py, line \d+", result.explanation), str(result)  # the student's frame
        assert result.hint not in TORCH_FIXES, str(result)  # a crash torch does not explain gets no one else's fix


def test_a_crash_torch_does_not_explain_keeps_the_exercises_own_hint():
    from mingpt.exercises import check_merge, check_mlp
    from mingpt.exercises.checking import SHAPE_HINT
    from mingpt.model import MLP

    class Reshaped(MLP):
        def forward(self, x):
            return self.c_proj(self.c_fc(x).view(-1, 7, 13))  # a shape error torch does not explain

    result = check_mlp(Reshaped)
    assert result.property == "your code raised an exception" and result.hint == SHAPE_HINT, str(result)
    result = check_merge(lambda ids, pair, new_id: int("not a number"))
    assert result.property == "your code raised an exception", str(result)
    assert result.hint not in TORCH_FIXES and "(B, T, C)" not in result.hint, str(result)


def test_each_checker_has_at_least_ten_named_mistakes():
    names = collections.defaultdict(set)
    for checker, _, name in MISTAKES:
        names[checker.__name__].add(name)
    small = {c: len(n) for c, n in names.items() if len(n) < 10 and c not in (
        "check_greedy", "check_bigram", "check_layernorm",  # and the post-training checkers, whose tables are
        "check_sft_targets", "check_lora_layer", "check_dpo_loss", "check_group_advantages",  # test_posttrain's
        "train_and_compare")}  # a training run judges three properties (gradients, look-ahead, loss), not mistakes
    assert not small, small


# ------------------------------------------------------------------------------------------ training checks
def test_training_fails_a_model_that_sees_the_future():
    """Issue 27: attention without a causal mask reaches a low training loss by reading the answer."""
    from mistakes_training import NoMaskAttention
    result = train_and_compare(steps=10, attention=NoMaskAttention)
    assert not result and result.property == "your model looks at future tokens", str(result)
    assert "from prefixes only" in result.counterexample


def test_training_fails_a_component_whose_parameters_get_no_gradient():
    from mistakes_training import DetachedHiddenMLP, UnusedParameterMLP
    for cls in (DetachedHiddenMLP, UnusedParameterMLP):
        result = train_and_compare(steps=10, mlp=cls)
        assert not result and result.property == "parameters that do not learn", str(result)
    assert "c_fc.weight: gradient never" in str(train_and_compare(steps=10, mlp=DetachedHiddenMLP))


def test_training_names_a_component_that_is_random_at_every_call_not_a_look_ahead():
    """A layer built inside forward is new at every call: full and prefix outputs differ, but not by looking ahead."""
    from mistakes_training import StudentAttention

    class LayerBuiltInForward(StudentAttention):
        def forward(self, x, kv_cache=None):
            return torch.nn.Linear(x.shape[-1], x.shape[-1])(super().forward(x, kv_cache))

    result = train_and_compare(steps=10, attention=LayerBuiltInForward)
    assert not result and result.property == "not deterministic in eval mode", str(result)


def test_training_fails_a_run_behind_the_reference_only_when_a_second_seed_agrees(monkeypatch):
    """A short run near the step where sorting emerges is noisy (a correct MLP with exact GELU was 0.13 behind with
    one seed on an AMD CPU and ahead with the next), so a run behind is repeated with a second seed. Here the real
    runs of the student's (correct) MLP are reported 1.0 worse under the seeds listed: behind once passes, with a
    note; behind twice fails."""
    import mingpt.exercises.training as training
    from mingpt.model import MLP
    real = training._train

    def behind_under(*seeds):
        def run(steps, seed, **components):
            model, loss, learned = real(steps, seed, **components)
            return model, loss + (1.0 if components and seed in seeds else 0.0), learned
        return run

    monkeypatch.setattr(training, "_train", behind_under(0))
    once = train_and_compare(steps=10, mlp=MLP)
    assert once and "within 0.1 of it with seed 1" in str(once), str(once)
    monkeypatch.setattr(training, "_train", behind_under(0, 1))
    twice = train_and_compare(steps=10, mlp=MLP)
    assert not twice and twice.property == "trains worse than the reference", str(twice)
    assert "behind with seed 1 too" in twice.counterexample
    monkeypatch.setattr(training, "_train", behind_under(1))  # behind only on the second seed: never run
    assert "seed 1" not in str(train_and_compare(steps=10, mlp=MLP))


def test_training_passes_a_correct_component_and_reports_the_held_out_sort():
    from mistakes_training import StudentAttention
    result = train_and_compare(steps=10, attention=StudentAttention)
    assert result, str(result)
    assert "fresh sequences sorted" in str(result) and "no look-ahead" in str(result)


def test_bigram_entropy_is_the_best_bigram_loss_and_an_unshifted_loss_goes_far_below_it():
    g = torch.Generator().manual_seed(0)
    data = torch.randint(0, 5, (2000,), generator=g)
    data[1::3] = (data[0::3][: len(data[1::3])] + 1) % 5  # some structure, so the floor is below log(5)
    floor = bigram_entropy(data, 5)
    counts = torch.zeros(5, 5)
    for a, b in zip(data[:-1].tolist(), data[1:].tolist()):
        counts[a, b] += 1
    best_table = (counts / counts.sum(1, keepdim=True)).log()  # the maximum-likelihood bigram: its loss is the floor
    assert abs(F.cross_entropy(best_table[data[:-1]], data[1:]).item() - floor) < 1e-5
    assert floor < math.log(5) - 0.1
    table = torch.zeros(5, 5, requires_grad=True)
    optimizer = torch.optim.AdamW([table], lr=0.3)
    for _ in range(200):  # the unshifted loss: predict the token itself, which the table can learn perfectly
        loss = F.cross_entropy(table[data], data)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < floor - 0.3


def test_notebook_01_fails_a_bigram_loss_far_below_the_floor():
    """Issue 27: an unshifted loss reaches ~0.004 and used to earn the 'bigram trains' point."""
    import json
    import pathlib
    nb = json.loads((pathlib.Path(__file__).parents[1] / "notebooks/course/01_bigram.ipynb").read_text())
    cell = next("".join(c["source"]) for c in nb["cells"]
                if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "bigram-trains")
    g = torch.Generator().manual_seed(0)
    data = torch.randint(0, 20, (5000,), generator=g)
    data[1::2] = (data[0::2] * 3) % 20  # every other next token is predictable: floor well below log(20)
    floor = bigram_entropy(data, 20)
    namespace = {"math": math, "data": data, "vocab": list(range(20))}
    exec(cell, {**namespace, "loss": torch.tensor(floor + 0.05)})  # a right model passes
    with pytest.raises(AssertionError, match="far below"):
        exec(cell, {**namespace, "loss": torch.tensor(0.004)})


def test_a_crash_points_at_the_students_line_with_a_hint_for_the_exercise():
    from mistakes_gpt import LOSS_MISTAKES
    from mingpt.exercises import check_bpe_encode, check_loss
    missing_ignore = next(impl for _, impl, name in LOSS_MISTAKES if name == "ignore index not honoured")
    result = check_loss(missing_ignore)
    assert "mistakes_gpt.py, line" in result.counterexample and "functional.py" not in result.counterexample
    result = check_bpe_encode(lambda ids, merges: [merges[p] for p in zip(ids, ids[1:])][0])  # KeyError
    assert result.property == "your code raised an exception" and "(B, T, C)" not in str(result)
    assert "KeyError" in result.explanation and "test_exercise_mistakes.py, line" in result.explanation


def test_unregistered_parameters_are_counted_in_the_message():
    from mistakes_block import MLPInAList
    from mingpt.exercises import check_mlp
    result = check_mlp(MLPInAList)
    assert result.explanation.startswith("0 of your MLPInAList's parameters are registered")
    assert "nn.ModuleList" in result.hint


def test_sampling_names_a_stage_mistake_and_says_another_difference_remains():
    # temperature multiplied (the temperature settings show it alone) and top-p at p * 0.93 (no table row): the name
    # comes from the first stage, with a note that it does not explain every setting
    from mingpt.exercises import check_sampling_probs
    from mistakes_sampling import sampler, top_p_filter
    result = check_sampling_probs(sampler(temperature_step=lambda lg, t: lg * t,
                                          top_p=lambda lg, p: top_p_filter(lg, p * 0.93)))
    assert not result and result.property == "temperature multiplied instead of divided", str(result)
    assert "not those of every setting" in result.counterexample, str(result)
    alone = check_sampling_probs(sampler(temperature_step=lambda lg, t: lg * t))
    assert alone.property == result.property and "not those of every setting" not in alone.counterexample


def _returns(kind, value):
    """A non-tensor made from a right output: what a student returns by mistake."""
    return {"tuple": (value, None), "None": None, "numpy": value.detach().numpy(), "list": value.tolist()}[kind]


def _layernorm_class(kind):
    class LayerNorm(torch.nn.Module):
        def __init__(self, ndim, eps=1e-5, bias=True):
            super().__init__()
            self.weight, self.bias, self.eps = torch.nn.Parameter(torch.ones(ndim)), torch.nn.Parameter(
                torch.zeros(ndim)), eps

        def forward(self, x):
            return _returns(kind, F.layer_norm(x, x.shape[-1:], self.weight, self.bias, self.eps))
    return LayerNorm


def _subclass(base, kind):
    return type(base.__name__, (base,), {"forward": lambda self, x, *a, **k: _returns(kind, base.forward(self, x))})


def _non_tensor_returns():
    from mingpt.exercises import check_attention, check_block, check_layernorm, check_mlp, check_rmsnorm
    from mingpt.model import MLP, Block, CausalSelfAttention

    def rms(kind):
        return lambda x, w, eps: _returns(kind, x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w)
    return [(check_layernorm, _layernorm_class("tuple"), "tuple"), (check_layernorm, _layernorm_class("None"), "None"),
            (check_attention, _subclass(CausalSelfAttention, "tuple"), "tuple"),
            (check_mlp, _subclass(MLP, "numpy"), "numpy"), (check_block, _subclass(Block, "list"), "list"),
            (check_rmsnorm, rms("None"), "None"), (check_rmsnorm, rms("tuple"), "tuple")]


@pytest.mark.parametrize("checker, impl, kind", _non_tensor_returns())
def test_a_non_tensor_return_is_named_as_such_with_a_hint_about_the_return(checker, impl, kind):
    from mingpt.exercises.compare import TYPE_HINT, WRONG_TYPE
    result = checker(impl)  # the layernorm checker used to crash on a tuple; attention hinted at re-assembling heads
    want = {"tuple": "returned a tuple, not one tensor (a second value beside the output?)",
            "None": "returned None (a missing return?)"}.get(kind, WRONG_TYPE)  # their own causes, their own names
    assert result.property == want and result.hint == TYPE_HINT, str(result)
    assert len(str(result)) < 1200, str(result)  # an array or a list is shown short, like a tensor


def test_a_missing_super_init_is_named_with_or_without_layers_assigned():
    from mingpt.exercises import check_layernorm, check_mlp

    class Assigns(torch.nn.Module):
        def __init__(self, config):  # no super().__init__(): torch refuses the first layer assigned
            self.c_fc = torch.nn.Linear(config.n_embd, 4 * config.n_embd)

    class AssignsNothing(torch.nn.Module):
        def __init__(self, ndim, eps=1e-5, bias=True):
            self.eps = eps  # a plain attribute works, so nothing fails until the checker loads weights

        def forward(self, x):
            return x

    for result in check_mlp(Assigns), check_layernorm(AssignsNothing):
        assert result.property == "super().__init__() not called first", str(result)
        assert "super().__init__()" in result.hint, str(result)


def test_a_cache_without_part_of_its_interface_is_told_which_part():
    from mingpt.exercises import check_kv_cache

    class NoAdvance:
        def __init__(self, n_layer, max_length):
            self.length, self.keys = 0, {}

        def update(self, layer, k, v):
            return k, v

    result = check_kv_cache(NoAdvance)  # the checker crashed with AttributeError on a cache without update
    assert result.property == "the cache lacks part of its interface" and "no advance:" in result.explanation, \
        str(result)
    result = check_kv_cache(type("Empty", (), {"__init__": lambda self, n_layer, max_length: None}))
    assert "no update, advance, length" in result.explanation, str(result)


def _in_place_rms_norm(x, w, eps):
    return x.mul_(torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)).mul_(w)


def _in_place_loss(logits, tokens):
    logits = logits[:, :-1]
    logits.sub_(logits.max(-1, keepdim=True).values)  # "for stability", on a view of the caller's logits
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1), ignore_index=-1)


def _in_place_weights(q, k):
    q.div_(math.sqrt(q.shape[-1]))  # right scores, but the caller's q is scaled for good
    T = q.shape[1]
    att = (q @ k.transpose(-2, -1)).masked_fill(torch.ones(T, T).triu(1).bool(), float("-inf"))
    return att.softmax(-1)


def _in_place_gqa(q, k, v):
    q.div_(math.sqrt(q.shape[-1]))
    k, v = (t.repeat_interleave(q.shape[1] // t.shape[1], 1) for t in (k, v))
    return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=1.0)


def _in_place_rms_norm_without_gain(x, w, eps):
    return x.mul_(torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


@pytest.mark.parametrize("checker_name, fn", [("check_rmsnorm", _in_place_rms_norm), ("check_loss", _in_place_loss),
                                              ("check_attention_weights", _in_place_weights),
                                              ("check_gqa", _in_place_gqa)])
def test_right_outputs_from_a_function_that_changes_its_input_are_named_in_place(checker_name, fn):
    import mingpt.exercises as ex
    result = getattr(ex, checker_name)(fn)  # the weights were misnamed "missing 1/sqrt(hs) scaling" (q scaled twice)
    assert result.property == "changes its input in place" and "before the call" in result.counterexample, \
        str(result)


def test_a_wrong_function_that_also_changes_its_input_keeps_its_own_name_and_is_told_both():
    from mingpt.exercises import check_rmsnorm
    result = check_rmsnorm(_in_place_rms_norm_without_gain)
    assert not result and result.property not in ("changes its input in place", NOT_RECOGNISED), str(result)
    assert "argument 1 of your function was changed in place" in result.explanation, str(result)


def _in_place_modules():
    from mingpt.exercises import check_attention, check_block, check_layernorm, check_mlp
    from mingpt.model import MLP, Block, CausalSelfAttention

    class AddsInPlace(Block):  # `x += ...`: the commonest in-place edit of all
        def forward(self, x, kv_cache=None):
            x += self.attn(self.ln_1(x))
            x += self.mlp(self.ln_2(x))
            return x

    class AddsAttentionInPlace(Block):  # was misnamed "dropout active in eval mode" (x differed on the second call)
        def forward(self, x, kv_cache=None):
            x.add_(self.attn(self.ln_1(x)))
            return x + self.mlp(self.ln_2(x))

    class CopiesIntoInput(CausalSelfAttention):  # was misnamed "wrong result for a sequence of length 1"
        def forward(self, x, kv_cache=None):
            return x.copy_(super().forward(x))

    class CentresInPlace(torch.nn.Module):
        def __init__(self, ndim, eps=1e-5, bias=True):
            super().__init__()
            self.weight, self.bias = torch.nn.Parameter(torch.ones(ndim)), torch.nn.Parameter(torch.zeros(ndim))
            self.eps = eps

        def forward(self, x):
            x -= x.mean(-1, keepdim=True)
            x /= torch.sqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
            return x * self.weight + self.bias

    class ReusesInput(MLP):
        def forward(self, x):
            h = F.gelu(self.c_fc(x), approximate="tanh")
            return x.zero_().add_(self.c_proj(h))

    return [(check_block, AddsInPlace), (check_block, AddsAttentionInPlace), (check_attention, CopiesIntoInput),
            (check_layernorm, CentresInPlace), (check_mlp, ReusesInput)]


@pytest.mark.parametrize("checker, cls", _in_place_modules())
def test_a_module_that_changes_its_input_is_named_in_place_never_misnamed(checker, cls):
    result = checker(cls)
    assert result.property == "changes its input in place", str(result)
    assert "argument 1 before the call" in result.counterexample, str(result)


def test_a_wrong_module_that_also_changes_its_input_keeps_its_own_name_and_is_told_both():
    from mingpt.exercises import check_mlp
    from mingpt.model import MLP

    class ReluInPlace(MLP):
        def forward(self, x):
            x.mul_(1.0)
            return x.copy_(self.c_proj(F.relu(self.c_fc(x))))

    result = check_mlp(ReluInPlace)
    assert result.property == "ReLU instead of GELU", str(result)
    assert "was changed in place by your code" in result.explanation, str(result)


def _probs_without_top_p(logits, temperature=1.0, top_k=None):
    return F.softmax(logits / temperature, -1)


def _rms_norm_without_eps(x, weight):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * weight


@pytest.mark.parametrize("checker_name, fn", [("check_sampling_probs", _probs_without_top_p),
                                              ("check_rmsnorm", _rms_norm_without_eps)])
def test_a_function_with_other_arguments_is_told_so_never_given_a_rebuilt_crashs_name(checker_name, fn):
    import mingpt.exercises as ex
    result = getattr(ex, checker_name)(fn)  # sampling was told "top-k keeps one token too many": two TypeErrors
    assert result.property == "your function takes other arguments than the exercise's", str(result)
    assert "too many positional arguments" in result.explanation, str(result)


def test_a_crash_is_named_from_a_rebuilt_crash_only_when_the_words_or_sizes_agree():
    from mingpt.exercises import check_embedding, check_sampling_probs
    def probs_with_a_typo(logits, temperature=1.0, top_k=None, top_p=None):  # a TypeError of its own, no size
        if top_k is not None:
            logits = logits.masked_fill(logits < torch.topk(logits, top_k).values[:, [-1]], float("-inf"))
        return F.softmax(logits / temperature, -1) + len(top_p)

    result = check_sampling_probs(probs_with_a_typo)  # was "top-k keeps one token too many" (another TypeError)
    assert result.property == "your code raised an exception", str(result)

    class FromOne(torch.nn.Module):  # wpe(arange(1, T + 1)) runs past the table at T = block_size
        def __init__(self, config):
            super().__init__()
            self.wte, self.wpe = (torch.nn.Embedding(n, config.n_embd) for n in (config.vocab_size, config.block_size))

        def forward(self, idx):
            return self.wte(idx) + self.wpe(torch.arange(1, idx.shape[1] + 1))

    assert check_embedding(FromOne).property == "positions start at 1"
