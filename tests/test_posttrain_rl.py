"""mingpt.posttrain.rl: group advantages by hand, the policy-gradient step's direction, the KL brake, a seeded step."""

import math

import pytest
import torch

from mingpt.posttrain.rl import GRPO, completion_logprobs, completion_mask, group_advantages, policy_loss, rl_step
from mingpt.trainer import Trainer


def test_group_advantages_by_hand():
    rewards = torch.tensor([[1.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0], [3.0, 1.0, 2.0, 2.0]])
    centred = group_advantages(rewards, normalize_std=False)
    assert torch.allclose(centred, torch.tensor([[0.5, -0.5, -0.5, 0.5], [0, 0, 0, 0], [1.0, -1.0, 0, 0]]))
    assert torch.allclose(centred.sum(dim=1), torch.zeros(3))  # centred: every group sums to zero
    normalised = group_advantages(rewards)
    std0 = math.sqrt(1 / 3)  # unbiased std of [1, 0, 0, 1]: sum of squares 1, over n - 1 = 3
    assert torch.allclose(normalised[0], torch.tensor([0.5, -0.5, -0.5, 0.5]) / (std0 + 1e-4))
    assert torch.equal(normalised[1], torch.zeros(4))  # all the same: no signal, and no NaN
    with pytest.raises(ValueError, match="group_size >= 2"):
        group_advantages(torch.ones(4, 1))


def test_completion_mask_keeps_up_to_the_first_eos():
    completions = torch.tensor([[5, 7, 9, 9], [9, 5, 9, 5], [1, 2, 3, 4]])
    assert completion_mask(completions, eos_token_id=9).tolist() == [[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 1, 1]]
    assert completion_mask(completions).tolist() == [[1.0] * 4] * 3


def test_the_gradient_is_minus_advantage_times_grad_log_p(tiny_gpt):
    # policy_loss on fresh samples must have exactly the REINFORCE gradient: -mean_tokens(A * grad log p)
    model = tiny_gpt(seed=0, dropout=0.0)
    seqs = torch.tensor([[1, 2, 3, 4, 5], [1, 2, 6, 7, 8]])
    advantages = torch.tensor([1.0, -1.0])
    loss, _ = policy_loss(completion_logprobs(model, seqs, 2), advantages, torch.ones(2, 3))
    got = torch.autograd.grad(loss, model.lm_head.weight)[0]
    reinforce = -(advantages[:, None] * completion_logprobs(model, seqs, 2)).sum() / 6
    want = torch.autograd.grad(reinforce, model.lm_head.weight)[0]
    assert torch.allclose(got, want, atol=1e-6)


def test_one_step_raises_the_rewarded_answer_and_lowers_the_other(tiny_gpt):
    model = tiny_gpt(seed=0, dropout=0.0)
    seqs = torch.tensor([[1, 2, 3, 4, 5], [1, 2, 6, 7, 8]])
    before = completion_logprobs(model, seqs, 2).sum(dim=1).detach()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loss, _ = policy_loss(completion_logprobs(model, seqs, 2), torch.tensor([1.0, -1.0]), torch.ones(2, 3))
    loss.backward()
    optimizer.step()
    after = completion_logprobs(model, seqs, 2).sum(dim=1).detach()
    assert after[0] > before[0] and after[1] < before[1]


def test_the_kl_term_pulls_the_policy_back_to_the_reference(tiny_gpt):
    policy, reference = tiny_gpt(seed=0, dropout=0.0), tiny_gpt(seed=1, dropout=0.0)
    seqs = torch.tensor([[1, 2, 3, 4, 5]])
    with torch.no_grad():
        ref_logp = completion_logprobs(reference, seqs, 2)
    optimizer = torch.optim.SGD(policy.parameters(), lr=0.02)
    kls = []
    for _ in range(5):
        loss, kl = policy_loss(completion_logprobs(policy, seqs, 2), torch.zeros(1), torch.ones(1, 3),
                               ref_logp=ref_logp, kl_coef=1.0)
        kls.append(kl.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert kls[0] > 0 and all(later < earlier for earlier, later in zip(kls, kls[1:])), kls
    with pytest.raises(ValueError, match="needs ref_logp"):
        policy_loss(ref_logp, torch.zeros(1), torch.ones(1, 3), kl_coef=0.1)


def test_the_clip_stops_a_ratio_from_growing_past_one_plus_eps():
    logp = torch.zeros(1, 1, requires_grad=True)
    old = torch.tensor([[-1.0]])  # ratio e > 1 + eps, positive advantage: clipped, so no gradient pushes it further
    loss, _ = policy_loss(logp, torch.ones(1), torch.ones(1, 1), old_logp=old, clip_eps=0.2)
    loss.backward()
    assert logp.grad.item() == 0.0


def test_rl_step_is_reproducible_and_rewards_what_the_checker_says(tiny_gpt):
    def reward_fn(prompts, completions):  # reward: the answer starts with the prompt's last token
        return (completions[:, 0] == prompts[:, -1]).float()

    prompts = torch.tensor([[1, 2, 3], [4, 5, 6]])
    stats = []
    for _ in range(2):
        model = tiny_gpt(seed=0, dropout=0.0)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
        stats.append(rl_step(model, optimizer, prompts, reward_fn, group_size=8, max_new_tokens=3,
                             generator=torch.Generator().manual_seed(0), reference=tiny_gpt(seed=0), kl_coef=0.1))
    assert stats[0] == stats[1]
    assert set(stats[0]) == {"loss", "reward", "kl", "solved_groups"} and 0 <= stats[0]["reward"] <= 1
    with pytest.raises(ValueError, match="group_size must be >= 2"):
        rl_step(model, optimizer, prompts, reward_fn, group_size=1, max_new_tokens=3)


def test_a_grpo_run_through_the_trainer_resumes_with_the_same_sampled_answers(tiny_gpt, tmp_path):
    """5 RL steps straight == 2 steps, Ctrl-C, resume, 3 steps: the same answers sampled at every step (the sampling
    generator is checkpointed), the same losses and the same weights (dropout on: the global RNG resumes too)."""
    prompts = torch.randint(1, 50, (12, 3), generator=torch.Generator().manual_seed(0))
    dataset = [(p, p) for p in prompts]  # (prompt, unused target): the checker reads the prompt

    def reward_fn(prompts, completions):  # reward: the answer starts with the prompt's last token
        return (completions[:, 0] == prompts[:, -1]).float()

    def run(resume=None, stop_after=None, seed=0):
        grpo = GRPO(tiny_gpt(seed=seed), reward_fn, group_size=4, max_new_tokens=3, seed=7, kl_coef=0.1)
        C = Trainer.get_default_config()
        C.merge_from_dict(dict(device="cpu", max_iters=5, batch_size=2, learning_rate=1e-2, precision="fp32",
                               work_dir=str(tmp_path), resume=resume))
        trainer, history = Trainer(C, grpo, dataset), []

        def record(tr):
            history.append((tr.loss.item(), tr.model.last_stats["completions"].tolist()))
            if stop_after is not None and tr.iter_num == stop_after - 1:
                raise KeyboardInterrupt

        trainer.add_callback("on_batch_end", record)
        trainer.run()
        return grpo, history

    straight, history_a = run()
    assert len({str(h[1]) for h in history_a}) == 5  # every step sampled new answers
    _, history_b = run(stop_after=2)
    resumed, history_c = run(resume=str(tmp_path / "last.pt"), seed=123)  # other weights: all from the checkpoint
    assert history_b + history_c == history_a
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    assert straight.reference.training is False and not any(p.requires_grad for p in straight.reference.parameters())
