"""Tests for mingpt/posttrain/dpo.py: the loss by hand and against TRL, the pair layout, the frozen reference, and
a tiny preference task that DPO learns through the Trainer."""

from __future__ import annotations

import math
from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch
import transformers

from mingpt.io.pretrained import config_from_hf, load_hf_state_dict
from mingpt.model import GPT
from mingpt.posttrain.dpo import DPO, PreferenceDataset, dpo_loss, preference_pair, sequence_logprobs
from mingpt.trainer import Trainer


def test_dpo_loss_by_hand():
    losses, chosen, rejected = dpo_loss(torch.tensor([-1.0]), torch.tensor([-2.0]), torch.tensor([-1.5]),
                                        torch.tensor([-1.5]), beta=0.5)
    # rewards 0.5 * (-1 + 1.5) = 0.25 and 0.5 * (-2 + 1.5) = -0.25; loss -log sigmoid(0.5) = log(1 + e^-0.5)
    torch.testing.assert_close(chosen, torch.tensor([0.25]))
    torch.testing.assert_close(rejected, torch.tensor([-0.25]))
    torch.testing.assert_close(losses, torch.tensor([math.log(1 + math.exp(-0.5))]))
    with pytest.raises(ValueError, match="beta must be > 0, got 0"):
        dpo_loss(torch.zeros(1), torch.zeros(1), torch.zeros(1), torch.zeros(1), beta=0)


def test_sequence_logprobs_sum_over_answer_tokens_only():
    logits = torch.zeros(2, 4, 2)  # uniform over 2 tokens: each counted token adds log(1/2)
    logits[0, 0, 1] = 100.0  # a position whose target is ignored: must not count even though it is extreme
    targets = torch.tensor([[-1, 1, 0, 1], [-1, -1, 1, -1]])
    torch.testing.assert_close(sequence_logprobs(logits, targets), torch.tensor([-3 * math.log(2), -math.log(2)]))


def test_a_pair_is_chosen_then_rejected_with_only_answer_targets():
    x, y = preference_pair([5, 6], [7, 8], [9], block_size=4)
    assert x.tolist() == [[5, 6, 7, 0], [5, 6, 0, 0]]
    assert y.tolist() == [[-1, 7, 8, -1], [-1, 9, -1, -1]]
    with pytest.raises(ValueError, match="at most block_size \\+ 1 = 3"):
        preference_pair([1, 2], [3, 4], [5], block_size=2)


def test_the_reference_is_frozen_and_stays_in_eval_mode(tiny_gpt):
    dpo = DPO(tiny_gpt(), beta=0.1).train()
    assert not dpo.reference.training and dpo.policy.training
    assert not any(p.requires_grad for p in dpo.reference.parameters())
    x, y = map(torch.stack, zip(*[preference_pair([1, 2], [3], [4, 5], 16)] * 3))
    _, loss = dpo(x, y)
    loss.backward()
    assert all(p.grad is None for p in dpo.reference.parameters())
    assert any(p.grad is not None for p in dpo.policy.parameters())
    with pytest.raises(ValueError, match=r"\(B, 2, T\)"):
        dpo(x[:, 0], y[:, 0])


class UnfusedHead(torch.nn.Module):
    """A transformers causal LM answering TRL's ``model(..., labels=labels, fused_lm_head=True)`` call. TRL's fused
    head needs Triton (absent on CPU-only PyTorch); this computes the same per-token fields from the full logits
    with TRL's own unfused helpers: the log-prob of each next token (label -100 -> 0), its entropy, mean logit and
    whether it was the top-1."""

    def __init__(self, hf_model):
        super().__init__()
        self.hf_model, self.is_gradient_checkpointing = hf_model, False
        self.eval()

    def forward(self, input_ids, attention_mask, labels, use_cache=False, fused_lm_head=True):
        logits = self.hf_model(input_ids=input_ids, attention_mask=attention_mask).logits[:, :-1]
        from trl.trainer.utils import entropy_from_logits, selective_log_softmax  # TRL loads in seconds: here,
        # when the one test that compares with it runs, not in every test process that collects this file

        labels = labels[:, 1:]
        mask = labels != -100
        log_probs = selective_log_softmax(logits, labels.clamp(min=0)) * mask
        return SimpleNamespace(log_probs=log_probs, entropy=entropy_from_logits(logits), mean_logits=logits.mean(-1),
                               is_top1=logits.argmax(-1) == labels)


def trl_loss(hf_policy, hf_reference, input_ids, completion_mask, beta):
    """TRL's own DPO loss (DPOTrainer._compute_loss, the default 'sigmoid' loss) on one batch, its rows chosen then
    rejected, called with the attributes it reads instead of a full trainer (no dataset, tokenizer or accelerate)."""
    from trl.trainer.dpo_trainer import DPOTrainer  # imported when used (see UnfusedHead.forward)

    def identity(t):  # a single process gathers nothing
        return t

    policy, reference = UnfusedHead(hf_policy), UnfusedHead(hf_reference)
    fake = SimpleNamespace(
        model=policy, ref_model=reference, beta=beta, loss_types=["sigmoid"], loss_weights=[1.0],
        f_divergence_type="reverse_kl", ld_alpha=None, precompute_ref_logps=False, aux_loss_enabled=False,
        use_weighting=False, label_smoothing=0.0, args=SimpleNamespace(gradient_checkpointing_kwargs=None),
        accelerator=SimpleNamespace(device=torch.device("cpu"), gather=identity, gather_for_metrics=identity),
        _metrics=defaultdict(lambda: defaultdict(list)), _total_train_tokens=0, _tp_size=1)
    inputs = dict(input_ids=input_ids, attention_mask=(input_ids != 0).long(), completion_mask=completion_mask)
    return DPOTrainer._compute_loss(fake, policy, inputs, return_outputs=False)


def test_loss_matches_trl_on_the_same_batch():
    torch.manual_seed(0)
    hf_config = transformers.GPT2Config(n_layer=2, n_head=2, n_embd=32, vocab_size=40, n_positions=16,
                                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    hf_reference = transformers.GPT2LMHeadModel(hf_config).eval()
    hf_policy = transformers.GPT2LMHeadModel(hf_config).eval()  # another init: policy and reference differ
    policy, reference = (GPT(config_from_hf(hf_config.to_dict())) for _ in range(2))
    load_hf_state_dict(policy, hf_policy.state_dict())
    load_hf_state_dict(reference, hf_reference.state_dict())

    triples = [([3, 4, 5], [6, 7], [8]), ([9, 10], [11, 12, 13, 14], [15, 16]), ([17], [18], [19, 20, 21])]
    ours = DPO(policy.eval(), reference, beta=0.3)
    x, y = map(torch.stack, zip(*PreferenceDataset(triples, block_size=8)))
    with torch.no_grad():
        _, loss = ours(x, y)

    # TRL's batch: whole sequences (prompt + answer, padded with 0), all chosen rows then all rejected rows, and a
    # completion mask over the answer tokens
    rows, masks = [], []
    for which in (1, 2):
        for triple in triples:
            tokens = triple[0] + triple[which]
            rows.append(tokens + [0] * (9 - len(tokens)))
            masks.append([0] * len(triple[0]) + [1] * len(triple[which]) + [0] * (9 - len(tokens)))
    with torch.no_grad():
        expected = trl_loss(hf_policy, hf_reference, torch.tensor(rows), torch.tensor(masks), beta=0.3)
    assert loss.item() > 0.01 and abs(loss.item() - math.log(2)) > 1e-3  # not the trivial policy == reference
    torch.testing.assert_close(loss, expected, atol=1e-5, rtol=0)


# A tiny preference task: after a prompt (a, b), answer (b + 1) % 10 is preferred to (b + 2) % 10.
def task(prompts):
    return [([a, b], [(b + 1) % 10], [(b + 2) % 10]) for a, b in prompts]


def mean_probability(model, triples, which=1):
    """The mean probability the model gives the chosen (which=1) or rejected (2) answer after each prompt."""
    pairs = [(prompt, answers[which - 1], answers[2 - which]) for prompt, *answers in triples]
    x, y = map(torch.stack, zip(*PreferenceDataset(pairs, block_size=4)))
    with torch.no_grad():
        logps = sequence_logprobs(model.eval()(x[:, 0])[0], y[:, 0])
    return logps.exp().mean().item()


def test_dpo_through_the_trainer_raises_the_preferred_answers_probability_on_held_out_prompts(tiny_gpt):
    train = task([(a, b) for a in range(8) for b in range(10)])
    held_out = task([(a, b) for a in (8, 9) for b in range(10)])  # first tokens never seen in training
    model = tiny_gpt(seed=0, vocab_size=10, block_size=4, dropout=0.0)
    chosen_before, rejected_before = mean_probability(model, held_out, 1), mean_probability(model, held_out, 2)
    C = Trainer.get_default_config()
    C.merge_from_dict(dict(device="cpu", max_iters=40, batch_size=16, learning_rate=3e-3, precision="fp32", seed=0))
    trainer = Trainer(C, DPO(model, beta=0.5), PreferenceDataset(train, block_size=4))
    losses = []
    trainer.add_callback("on_batch_end", lambda tr: losses.append(tr.loss.item()))
    trainer.run()
    assert losses[0] == pytest.approx(math.log(2))  # policy == reference at step 0: both rewards are 0
    assert losses[-1] < 0.3
    chosen_after, rejected_after = mean_probability(model, held_out, 1), mean_probability(model, held_out, 2)
    # about 0.1 each before (10 tokens, untrained); the preferred answer gains, the other loses
    assert chosen_after > 2 * chosen_before and rejected_after < rejected_before / 2, (
        chosen_before, chosen_after, rejected_before, rejected_after)
