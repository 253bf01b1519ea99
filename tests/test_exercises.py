"""
The checkers of mingpt.exercises diagnose mistakes, proven by a mutation table: each entry is a deliberately
buggy, student-style implementation (tests/student_code.py, written independently of the checkers' own variants),
and the test asserts that the checker names *that* mistake, with a counter-example and a hint. The correct
implementations, including valid alternatives (einsum, a manual loop over heads, separate q/k/v projections,
transposed weights), must pass: zero false alarms.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from student_code import (ATTENTION_MUTATIONS, BLOCK_MUTATIONS, CONV1D, LAYERNORM_MUTATIONS, Attention, Bigram,
                          BigramProbabilities, EinsumAttention, Embedding, ForgetfulCache, LayerNorm, LoopAttention,
                          NoPositions, NotCountingCache, PositionsFromTokens, SharedCache, TransposedWeightsAttention,
                          WrongAxisCache, convert_every_matrix, convert_ok, convert_where_shapes_complain,
                          convert_without_transpose, encode_by_frequency, encode_ok, groups_by_dimension,
                          groups_by_name_twice, groups_everything, groups_ok, loss_no_ignore, loss_ok,
                          loss_on_probabilities, loss_summed, loss_unshifted, lr_no_warmup, lr_not_flat, lr_ok,
                          lr_to_zero, lr_zero_start, merge_in_place, merge_overlapping, mlp_with, probs_ok,
                          probs_temperature_after_softmax, probs_top_k_off_by_one, probs_top_p_drops_crossing,
                          probs_top_p_tail, weights_with)

from mingpt.exercises import (CheckResult, ExerciseFailed, ReferenceWeightsError, check_attention,
                              check_attention_weights, check_bigram, check_block, check_bpe_encode, check_embedding,
                              check_gpt, check_greedy, check_hf_conversion, check_kv_cache, check_layernorm, check_loss,
                              check_lr_schedule, check_merge, check_mlp, check_sampling_probs,
                              check_weight_decay_groups, load_reference_weights)
from mingpt.exercises.compare import NOT_RECOGNISED
from mingpt.generation import KVCache
from mingpt.model import GPT, MLP, Block, CausalSelfAttention
from mingpt.tokenizer import merge_pair



class ValuesPrependedCache(KVCache):
    def update(self, layer, k, v):
        if self.keys[layer] is None:
            self.keys[layer], self.values[layer] = k, v
        else:
            self.keys[layer] = torch.cat([self.keys[layer], k], dim=2)
            self.values[layer] = torch.cat([v, self.values[layer]], dim=2)  # the bug: new values go first
        return self.keys[layer], self.values[layer]


class KeysPrependedCache(KVCache):
    def update(self, layer, k, v):
        if self.keys[layer] is None:
            self.keys[layer], self.values[layer] = k, v
        else:
            self.keys[layer] = torch.cat([k, self.keys[layer]], dim=2)  # the bug: new keys go first
            self.values[layer] = torch.cat([self.values[layer], v], dim=2)
        return self.keys[layer], self.values[layer]


def encode_while_first_pair_merges(ids, merges):
    ids = list(ids)
    while len(ids) >= 2 and (ids[0], ids[1]) in merges:  # the bug: only the first pair decides when to stop
        pair = min(zip(ids, ids[1:]), key=lambda p: merges.get(p, float("inf")))
        ids = merge_pair(ids, *pair, merges[pair])
    return ids


def loss_shifted_after_flattening(logits, tokens):
    flat_logits, flat_tokens = logits.reshape(-1, logits.size(-1)), tokens.reshape(-1)
    # the bug: the shift runs over the joined rows, so row b's last logit meets row b + 1's first token
    return F.cross_entropy(flat_logits[:-1], flat_tokens[1:], ignore_index=-1)


def loss_transposed_then_flattened(logits, tokens):
    V = logits.size(-1)
    scores = logits[:, :-1].transpose(1, 2)  # (B, V, T-1), "cross_entropy wants the classes second"
    return F.cross_entropy(scores.reshape(-1, V), tokens[:, 1:].reshape(-1), ignore_index=-1)  # the bug: then flat


class TimeMajorLogitsGPT(GPT):
    def forward(self, idx, targets=None):
        logits, _ = super().forward(idx)
        if targets is None:
            return logits, None
        flat = logits.transpose(0, 1).reshape(-1, logits.size(-1))  # the bug: (T, B) order, targets are (B, T)
        return logits, F.cross_entropy(flat, targets.reshape(-1), ignore_index=-1)


class BigramNextIdRow(Bigram):
    def forward(self, idx):
        return self.table((idx + 1) % self.table.num_embeddings)  # the bug: "predict the next" put in the lookup


class BigramReversed(Bigram):
    def forward(self, idx):
        return self.table(torch.flip(idx, dims=[1]))  # the bug: positions read right to left


class BigramRowsOverSums(Bigram):
    def forward(self, idx):
        rows = self.table(idx)
        return rows / rows.sum(dim=-1, keepdim=True)  # the bug: counts -> probabilities, on logits


# ---------------------------------------------------------------------------------------------- the table
MUTATIONS = (
    [(check_attention, impl, prop) for impl, prop in ATTENTION_MUTATIONS]
    + [(check_layernorm, impl, prop) for impl, prop in LAYERNORM_MUTATIONS]
    + [(check_mlp, mlp_with(lambda h: F.gelu(h)), "exact GELU instead of GPT-2's tanh approximation"),
       (check_mlp, mlp_with(F.relu), "ReLU instead of GELU")]
    + [(check_block, impl, prop) for impl, prop in BLOCK_MUTATIONS]
    + [(check_embedding, NoPositions, "position embedding missing"),
       (check_embedding, PositionsFromTokens, "positions looked up by token id"),
       (check_loss, loss_unshifted, "targets not shifted"),
       (check_loss, loss_no_ignore, "ignore index not honoured"),
       (check_loss, loss_summed, "sum instead of mean"),
       (check_loss, loss_on_probabilities, "softmax applied before cross_entropy"),
       (check_sampling_probs, probs_temperature_after_softmax,
        "temperature has no effect (ignored, or applied to the probabilities and renormalised)"),
       (check_sampling_probs, probs_top_p_tail, "top-p keeps the wrong side of the threshold"),
       (check_sampling_probs, probs_top_p_drops_crossing, "top-p drops the token that crosses p"),
       (check_sampling_probs, probs_top_k_off_by_one,
        "top-k removes the k-th largest logit too (<= where < is needed)"),
       (check_greedy, lambda logits: logits.argmax(dim=0), "argmax over the wrong axis"),
       (check_kv_cache, ForgetfulCache, "the cache forgets earlier positions"),
       (check_kv_cache, SharedCache, "layers share one cache"),
       (check_kv_cache, WrongAxisCache, "concatenated along the wrong axis"),
       (check_kv_cache, NotCountingCache, "length does not count the stored positions"),
       (check_merge, merge_overlapping, "overlapping pairs merged twice"),
       (check_merge, merge_in_place, "the input list was changed"),
       (check_bpe_encode, encode_by_frequency, "merging by frequency instead of rank"),
       (check_kv_cache, ValuesPrependedCache,
        "new values put before the old ones (keys appended): keys and values no longer line up position by position"),
       (check_kv_cache, KeysPrependedCache,
        "new keys put before the old ones (values appended): keys and values no longer line up position by position"),
       (check_bpe_encode, encode_while_first_pair_merges,
        "stops as soon as the first pair (ids[0], ids[1]) is not a merge, though later pairs still are"),
       (check_loss, loss_shifted_after_flattening,
        "shifted after flattening: each sequence's last prediction scored against the next sequence's first token"),
       (check_loss, loss_transposed_then_flattened,
        "logits transposed to (B, V, T) and then flattened with reshape(-1, V): classes and positions scrambled"),
       (check_gpt, TimeMajorLogitsGPT,
        "logits flattened in another order than the targets (logits transposed to (T, B, V))"),
       (check_weight_decay_groups, groups_everything,
        "weight decay on biases and LayerNorm gains and position embeddings"),
       (check_weight_decay_groups, groups_by_dimension, "weight decay on position embeddings"),
       (check_weight_decay_groups, groups_by_name_twice, "a parameter is listed twice"),
       (check_lr_schedule, lr_not_flat, "not flat after lr_decay_iters"),
       (check_lr_schedule, lr_to_zero, "decays to 0 instead of min_lr"),
       (check_lr_schedule, lr_no_warmup, "warm-up missing"),
       (check_lr_schedule, lr_zero_start, "learning rate 0 at the first step"),
       (check_bigram, BigramProbabilities, "returned probabilities, not logits"),
       (check_bigram, BigramNextIdRow, "looked up the row of id idx + 1 (the next id), not of idx"),
       (check_bigram, BigramReversed, "sequence reversed in time (idx.flip(1)) before the lookup"),
       (check_bigram, BigramRowsOverSums,
        "each row divided by its sum (counts normalised to probabilities), not logits"),
       (check_attention_weights, weights_with(softmax_dim=-2), "softmax over the wrong dimension"),
       (check_attention_weights, weights_with(causal=False), "future leakage"),
       (check_hf_conversion, convert_without_transpose, "Conv1D weight not transposed"),
       (check_hf_conversion, convert_where_shapes_complain,
        "Conv1D weight not transposed: attn.c_proj only (in every layer)"),
       (check_hf_conversion, convert_every_matrix, "transposed a weight that was already right"),
       (check_hf_conversion, lambda hf: {k: v.t() if k.endswith(CONV1D) else v for k, v in hf.items()},
        "kept the attention-mask buffers"),
       (check_attention_weights, lambda q, k: weights_with()(q, k).transpose(-2, -1),
        "weights transposed (queries and keys swapped)"),
       (check_attention_weights, lambda q, k: weights_with()(q * math.sqrt(q.shape[-1]) / 8, k),
        "scores scaled by a fixed 0.125 (not 1/sqrt(hs) of the input)"),  # a tutorial's head size 64, hard-coded
       (check_attention_weights, lambda q, k: weights_with()(q, k).log(), "log_softmax instead of softmax"),
       (check_hf_conversion, lambda hf: {k.replace("mlp.c_fc", "mlp.fc"): v for k, v in convert_ok(hf).items()},
        "names changed ('c_fc' -> 'fc')"),
       (check_hf_conversion, lambda hf: {k: v for k, v in convert_ok(hf).items() if ".h.1." not in k},
        "layer(s) 1 not converted"),
       (check_attention_weights, lambda q, k: weights_with()(q * q.shape[-1], k), "scores multiplied by sqrt(hs) "
        "instead of divided")]
)


@pytest.mark.parametrize("checker, implementation, mistake", MUTATIONS,
                         ids=[f"{c.__name__}-{m}" for c, _, m in MUTATIONS])
def test_each_mistake_gets_its_diagnosis(checker, implementation, mistake):
    result = checker(implementation)
    assert isinstance(result, CheckResult) and not result
    assert result.property == mistake, str(result)
    message = str(result)
    assert message.startswith(f"FAILED {result.exercise}: {mistake}")
    assert "counter-example:" in message and result.counterexample.strip(), message  # concrete numbers
    assert "hint:" in message or mistake in ("future leakage",), message


def test_the_table_has_at_least_25_distinct_mistakes():
    assert len({m for _, _, m in MUTATIONS}) >= 25


CORRECT = [
    (check_attention, CausalSelfAttention), (check_attention, Attention), (check_attention, EinsumAttention),
    (check_attention, LoopAttention), (check_attention, TransposedWeightsAttention),
    (check_layernorm, LayerNorm), (check_layernorm, nn.LayerNorm),
    (check_mlp, MLP), (check_block, Block), (check_embedding, Embedding), (check_loss, loss_ok), (check_gpt, GPT),
    (check_greedy, lambda logits: logits.argmax(dim=-1)), (check_sampling_probs, probs_ok),
    (check_kv_cache, KVCache), (check_merge, lambda ids, pair, new_id: merge_pair(ids, *pair, new_id)),
    (check_bpe_encode, encode_ok), (check_weight_decay_groups, groups_ok), (check_lr_schedule, lr_ok),
    (check_bigram, Bigram), (check_hf_conversion, convert_ok), (check_attention_weights, weights_with()),
]


def test_a_forgotten_square_transpose_is_named_as_such():
    result = check_hf_conversion(convert_where_shapes_complain)
    assert "attn.c_proj.weight" in result.counterexample and "it is square" in result.explanation


@pytest.mark.parametrize("checker, implementation", CORRECT,
                         ids=[f"{c.__name__}-{i}" for i, (c, _) in enumerate(CORRECT)])
def test_no_false_alarm_on_correct_implementations(checker, implementation):
    result = checker(implementation)
    assert result, str(result)
    assert str(result).startswith("PASSED")


def test_not_implemented_fails_cleanly_and_raise_if_failed_carries_the_message():
    class Todo(nn.Module):
        def __init__(self, config):
            super().__init__()
            raise NotImplementedError

    result = check_attention(Todo)
    assert not result and result.property == "not implemented yet"
    with pytest.raises(ExerciseFailed) as info:
        result.raise_if_failed()
    assert isinstance(info.value, AssertionError) and "not implemented yet" in str(info.value)
    assert check_loss(loss_ok).raise_if_failed()  # a pass returns the result


def test_a_crash_shows_the_students_own_line():
    class Crashes(Attention):
        def forward(self, x, kv_cache=None):
            return x.view(3, -1, 5)  # a shape mistake

    result = check_attention(Crashes)
    assert result.property == "your code raised an exception"
    assert "x.view(3, -1, 5)" in result.explanation and "RuntimeError" in result.explanation


def test_weights_that_do_not_fit_get_a_table_of_both_sides():
    class TooSmall(Attention):
        def __init__(self, config):
            super().__init__(config)
            self.c_attn = nn.Linear(config.n_embd, 2 * config.n_embd)  # forgot v

    result = check_attention(TooSmall)
    assert result.property == "parameter shapes differ from the reference"  # the same names, another size
    assert "c_attn.weight (24, 12) (reference (36, 12))" in result.counterexample
    assert "yours     c_attn.weight" in result.explanation and "(24, 12)" in result.explanation
    with pytest.raises(ReferenceWeightsError, match="cannot load the reference weights"):
        load_reference_weights(nn.Linear(3, 4), {"weight": torch.zeros(5, 5), "bias": torch.zeros(4)})


def test_passing_an_instance_instead_of_the_class_is_a_clear_type_error():
    with pytest.raises(TypeError, match="pass the class itself"):
        check_layernorm(nn.LayerNorm(8))


def test_an_unknown_conversion_or_weights_mistake_is_shown_not_named():
    """A diagnosis only when every differing tensor (every tested input) is explained: otherwise 'not recognised',
    with where it differs, and the slips that were recognised beside it listed, not given as the name."""
    def doubled_c_fc_and_no_square_transpose(hf):
        out = convert_where_shapes_complain(hf)
        return {k: v * 2 if k.endswith("mlp.c_fc.weight") else v for k, v in out.items()}

    result = check_hf_conversion(doubled_c_fc_and_no_square_transpose)
    assert result.property == NOT_RECOGNISED, str(result)
    assert "mlp.c_fc.weight: first differing element" in result.counterexample
    assert "Besides: Conv1D weight not transposed" in result.explanation
    result = check_attention_weights(lambda q, k: weights_with()(q, k.flip(1)))  # keys read backwards in time
    assert result.property == NOT_RECOGNISED and "first differing element" in result.counterexample, str(result)
