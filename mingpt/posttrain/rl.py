"""
Reinforcement learning with checked rewards: sample, score, push up what scored well. GRPO-style, small enough
to read in one sitting and to run on a laptop.

The one idea: when an answer can be *checked* (is the sum right?), no labelled answer is needed. For each prompt
the model samples a group of G answers; each gets a reward from the checker; an answer's *advantage* is how much
better it did than its group's average. The update raises the log-probability of answers with a positive
advantage and lowers it for the rest:

    loss = - mean over answer tokens of  A * log p(token)          (the policy gradient, REINFORCE with a baseline)

Subtracting the group mean (the baseline) changes nothing in expectation but removes most of the noise: a group
where every answer is right (or every one wrong) teaches nothing, and gets advantages of zero. Dividing by the
group's standard deviation (GRPO's choice, normalize_std=True) makes a rare success in a hard group count as much
as a rare failure in an easy one.

Two optional brakes, both from PPO/GRPO:
  clip_eps   the probability ratio p_new / p_old is clipped to [1 - eps, 1 + eps] when the same samples are
             reused for several updates; on the first update the ratio is exactly 1, so it changes nothing there
  kl_coef    a penalty on drifting from a frozen reference model (the one RL started from), with GRPO's
             per-token estimator exp(r) - r - 1, r = log p_ref - log p (never negative, zero when they agree)

In reading order: group_advantages, completion_logprobs, completion_mask, policy_loss, grpo_loss (sample, score,
loss), then rl_step (one step of a hand-written loop) or GRPO (the same loss as a module the Trainer trains).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from mingpt.model import GPT


def group_advantages(rewards: torch.Tensor, normalize_std: bool = True, eps: float = 1e-4) -> torch.Tensor:
    """
    rewards: (P, G), G sampled answers to each of P prompts. Returns (P, G): reward minus its group's mean, divided
    by the group's standard deviation (+ eps) if normalize_std. As TRL's GRPOTrainer: unbiased std, eps = 1e-4.
    A group whose answers all scored the same gets zeros (not NaN): it carries no signal.
    """
    if rewards.dim() != 2 or rewards.size(1) < 2:
        raise ValueError(f"rewards must be (prompts, group_size) with group_size >= 2, got shape "
                         f"{tuple(rewards.shape)}; sample several answers per prompt")
    centred = rewards - rewards.mean(dim=1, keepdim=True)
    scale = rewards.std(dim=1, keepdim=True) + eps if normalize_std else torch.ones_like(centred[:, :1])
    return centred / scale


def completion_logprobs(model: GPT, seqs: torch.Tensor, prompt_len: int) -> torch.Tensor:
    """
    log p(token) for every completion token: seqs (N, T) = prompt (first prompt_len ids) + completion.
    Returns (N, T - prompt_len). Position t's logits predict token t+1, hence the shift.
    """
    logits = model(seqs[:, :-1])[0]  # (N, T-1, V)
    logp = F.log_softmax(logits.float(), dim=-1).gather(-1, seqs[:, 1:, None]).squeeze(-1)  # (N, T-1)
    return logp[:, prompt_len - 1 :]


def completion_mask(completions: torch.Tensor, eos_token_id: int | None = None) -> torch.Tensor:
    """(N, L) float mask: 1 up to and including the first eos_token_id, 0 after it (padding); all ones without one."""
    if eos_token_id is None:
        return torch.ones_like(completions, dtype=torch.float)
    is_eos = (completions == eos_token_id).long()
    after_eos = (is_eos.cumsum(dim=1) - is_eos) > 0  # strictly after the first eos
    return (~after_eos).float()


def policy_loss(logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, old_logp: torch.Tensor | None = None,
                ref_logp: torch.Tensor | None = None, kl_coef: float = 0.0,
                clip_eps: float = 0.2) -> tuple[torch.Tensor, torch.Tensor]:
    """
    The clipped policy-gradient loss with an optional KL penalty, averaged over the unmasked completion tokens.
    logp, old_logp, ref_logp, mask: (N, L); advantages: (N,), one per sampled answer. Returns (loss, mean KL).
    old_logp defaults to logp detached: one update on fresh samples, where the loss's gradient is exactly
    -A * grad log p (the ratio is 1 and the clip is inactive).
    """
    old_logp = logp.detach() if old_logp is None else old_logp
    ratio = torch.exp(logp - old_logp)  # (N, L)
    A = advantages[:, None]  # (N, 1): every token of an answer shares its answer's advantage
    surrogate = torch.min(ratio * A, ratio.clamp(1 - clip_eps, 1 + clip_eps) * A)
    if ref_logp is None:
        if kl_coef:
            raise ValueError(f"kl_coef={kl_coef} needs ref_logp, the reference model's log-probabilities")
        ref_logp = logp.detach()  # no reference: a KL of exactly zero, with zero gradient
    r = ref_logp - logp
    kl = torch.exp(r) - r - 1  # (N, L), >= 0
    per_token = -surrogate + kl_coef * kl
    n_tokens = mask.sum().clamp(min=1)
    return (per_token * mask).sum() / n_tokens, ((kl * mask).sum() / n_tokens).detach()


def grpo_loss(policy: GPT, prompts: torch.Tensor, reward_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
              group_size: int, max_new_tokens: int, generator: torch.Generator | None = None,
              temperature: float = 1.0, normalize_std: bool = True, reference: GPT | None = None,
              kl_coef: float = 0.0, clip_eps: float = 0.2,
              eos_token_id: int | None = None) -> tuple[torch.Tensor, dict]:
    """
    Sample group_size answers to each of the prompts (P, Tp), score them with reward_fn(prompts, completions) ->
    (N,) rewards (N = P * group_size, prompts repeated to match), compute group advantages and return
    ``(loss, stats)``: policy_loss, ready for backward, and the step's statistics (stats["completions"] (N, L) are
    the sampled answers). `generator` makes the sampling reproducible (and is the RNG to checkpoint to resume).
    """
    if group_size < 2:
        raise ValueError(f"group_size must be >= 2 (advantages compare answers within a group), got {group_size}")
    P, Tp = prompts.shape
    repeated = prompts.repeat_interleave(group_size, dim=0)  # (N, Tp): prompt 0 G times, then prompt 1, ...
    was_training = policy.training
    policy.eval()  # sampling: no dropout
    with torch.no_grad():
        seqs = policy.generate(repeated, max_new_tokens, do_sample=True, temperature=temperature,
                               generator=generator, eos_token_id=eos_token_id)  # (N, Tp + L)
        completions = seqs[:, Tp:]
        rewards = reward_fn(repeated, completions).float()  # (N,)
        advantages = group_advantages(rewards.view(P, group_size), normalize_std).view(-1)
        ref_logp = None if reference is None else completion_logprobs(reference.eval(), seqs, Tp)
    policy.train(was_training)
    logp = completion_logprobs(policy, seqs, Tp)
    loss, kl = policy_loss(logp, advantages, completion_mask(completions, eos_token_id), ref_logp=ref_logp,
                           kl_coef=kl_coef, clip_eps=clip_eps)
    stats = dict(reward=rewards.mean().item(), kl=kl.item(),
                 solved_groups=(rewards.view(P, group_size).min(dim=1).values > 0).float().mean().item(),
                 rewards=rewards, completions=completions)
    return loss, stats


def rl_step(policy: GPT, optimizer: torch.optim.Optimizer, prompts: torch.Tensor,
            reward_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], group_size: int, max_new_tokens: int,
            generator: torch.Generator | None = None, temperature: float = 1.0, normalize_std: bool = True,
            reference: GPT | None = None, kl_coef: float = 0.0, clip_eps: float = 0.2,
            eos_token_id: int | None = None, grad_clip: float = 1.0) -> dict:
    """
    One GRPO-style step in a hand-written loop: grpo_loss (arguments as there), then one optimizer step. Returns
    the step's statistics (loss, reward, kl, solved_groups). To train through the Trainer instead, see `GRPO`.
    """
    loss, stats = grpo_loss(policy, prompts, reward_fn, group_size, max_new_tokens, generator, temperature,
                            normalize_std, reference, kl_coef, clip_eps, eos_token_id)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(policy.parameters(), grad_clip)
    optimizer.step()
    return dict(loss=loss.item(), reward=stats["reward"], kl=stats["kl"], solved_groups=stats["solved_groups"])


class GRPO(nn.Module):
    """
    The RL loop as a module the Trainer trains and checkpoints: ``forward(prompts, y)`` samples, rewards and returns
    ``(rewards, loss)`` (y is ignored: the checker reads the prompts). The data set yields (prompt, anything) pairs.

        grpo = GRPO(model, reward_fn, group_size=8, max_new_tokens=4, seed=0)
        Trainer(config, grpo, prompt_dataset).run()      # resumable: the sampling RNG is in the checkpoint

    Why the sampling generator is part of the state dict: a resumed run must draw the same answers as an unbroken
    one. The Trainer already checkpoints the global RNGs (dropout), but the answers come from this module's own
    generator (so that sampling and dropout do not consume each other's random numbers); its state is saved as the
    module's extra state (``_extra_state``, a uint8 tensor) and put back by load_state_dict. The generator lives on
    the policy's device, seeded with `seed`; moving the model to another device starts its stream afresh.
    In eval mode (the Trainer's evaluate()) answers come from the global RNG, which evaluation isolates, so an
    evaluation never shifts the training samples. `last_stats` holds the latest step's statistics for callbacks.
    """

    def __init__(self, policy: GPT, reward_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], group_size: int,
                 max_new_tokens: int, seed: int = 0, temperature: float = 1.0, normalize_std: bool = True,
                 reference: GPT | None = None, kl_coef: float = 0.0, clip_eps: float = 0.2,
                 eos_token_id: int | None = None):
        super().__init__()
        if group_size < 2:
            raise ValueError(f"group_size must be >= 2 (advantages compare answers within a group), got {group_size}")
        if kl_coef and reference is None:  # the model RL starts from, frozen
            reference = copy.deepcopy(policy)
        self.policy, self.reference, self.reward_fn, self.seed = policy, reference, reward_fn, seed
        if reference is not None:
            reference.requires_grad_(False).eval()
        self.options = dict(group_size=group_size, max_new_tokens=max_new_tokens, temperature=temperature,
                            normalize_std=normalize_std, kl_coef=kl_coef, clip_eps=clip_eps, eos_token_id=eos_token_id)
        self._generator: torch.Generator | None = None
        self.last_stats: dict = {}

    def sampling_generator(self) -> torch.Generator:
        """The generator answers are sampled from, on the policy's device (made, seeded, on first use)."""
        device = next(self.policy.parameters()).device
        if self._generator is None or self._generator.device != device:
            self._generator = torch.Generator(device).manual_seed(self.seed)
        return self._generator

    def get_extra_state(self) -> torch.Tensor:
        return self.sampling_generator().get_state()  # a uint8 tensor: weights_only-safe

    def set_extra_state(self, state: torch.Tensor) -> None:
        self.sampling_generator().set_state(state.cpu())

    def forward(self, prompts: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        generator = self.sampling_generator() if self.training else None
        loss, self.last_stats = grpo_loss(self.policy, prompts, self.reward_fn, generator=generator,
                                          reference=self.reference, **self.options)
        return self.last_stats["rewards"], loss
