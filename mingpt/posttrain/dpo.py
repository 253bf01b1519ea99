"""
DPO (Direct Preference Optimization, Rafailov et al. 2023): learn from pairs "for this prompt, answer y_w is better
than answer y_l" without training a reward model or running RL.

The paper's loss, for a policy pi being trained and a frozen reference pi_ref (the model before DPO):

    loss = -log sigmoid( beta * [ (log pi(y_w|x) - log pi_ref(y_w|x)) - (log pi(y_l|x) - log pi_ref(y_l|x)) ] )

``log pi(y|x)`` is the log-probability of the whole answer: the sum, over the answer's tokens only, of each token's
log-probability given everything before it. Not the prompt's tokens (the prompt is given, not chosen), not padding.
``beta * (log pi - log pi_ref)`` is the answer's *implicit reward*; the loss pushes the preferred answer's reward
above the other's, and beta says how far the policy may move from the reference to do it (small beta: far).

Why the reference: without it, the cheapest way to widen the gap is to make every answer unlikely, or to collapse
onto one; measuring each answer against what the reference thought keeps the policy close to a model that could
still talk. So the reference must stay frozen (no gradients, eval mode: no dropout noise in its log-probs).

A pair is stored as two rows, chosen then rejected, in the layout the model trains on: inputs ``x`` (2, T) and
targets ``y`` (2, T) with ``-1`` (IGNORE_INDEX) wherever no answer token is predicted. `DPO` wraps a policy and its
reference as one module whose ``forward(x, y)`` returns ``(rewards, loss)``, so mingpt's Trainer trains it, and
checkpoints it, as it would any model.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import Dataset

from mingpt.model import IGNORE_INDEX

__all__ = ["sequence_logprobs", "dpo_loss", "preference_pair", "PreferenceDataset", "DPO"]


def sequence_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """
    log p(answer) per row: the sum of log_softmax(logits) at each target token, over positions whose target is not
    IGNORE_INDEX. logits (B, T, V), targets (B, T) -> (B,).
    """
    mask = targets != IGNORE_INDEX  # (B, T): the answer's tokens
    logp = F.log_softmax(logits.float(), dim=-1)  # float32: a sum of many small numbers
    token_logp = logp.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)  # (B, T); masked rows read id 0
    return (token_logp * mask).sum(dim=-1)


def dpo_loss(policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor,
             reference_chosen_logps: torch.Tensor, reference_rejected_logps: torch.Tensor,
             beta: float = 0.1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """
    The DPO loss of each pair, and the implicit rewards: ``(losses, chosen_rewards, rejected_rewards)``, each (B,),
    as TRL's ``DPOTrainer.dpo_loss`` returned them. Take ``losses.mean()`` to train.
    """
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta}: it scales the implicit reward (typical values 0.1-0.5)")
    chosen_rewards = beta * (policy_chosen_logps - reference_chosen_logps)  # (B,)
    rejected_rewards = beta * (policy_rejected_logps - reference_rejected_logps)
    losses = -F.logsigmoid(chosen_rewards - rejected_rewards)  # logsigmoid, not log(sigmoid): no underflow
    return losses, chosen_rewards.detach(), rejected_rewards.detach()


def preference_pair(prompt: Sequence[int], chosen: Sequence[int], rejected: Sequence[int], block_size: int,
                    pad: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """
    One pair as (x, y), each (2, block_size): row 0 is prompt + chosen, row 1 prompt + rejected, shifted by one as
    the model trains (y[t] is the token after x[t]); y is IGNORE_INDEX on the prompt's predictions and the padding,
    so only answer tokens count. x is padded with `pad` (any id: its predictions are ignored).
    """
    if len(prompt) == 0 or len(chosen) == 0 or len(rejected) == 0:
        raise ValueError(f"a pair needs a non-empty prompt, chosen and rejected answer; got lengths "
                         f"{len(prompt)}, {len(chosen)}, {len(rejected)}")
    rows_x, rows_y = [], []
    for answer in (chosen, rejected):
        tokens = list(prompt) + list(answer)
        if len(tokens) - 1 > block_size:
            raise ValueError(f"prompt + answer is {len(tokens)} tokens; at most block_size + 1 = {block_size + 1} "
                             "fit (shorten them or raise block_size)")
        x = torch.full((block_size,), pad, dtype=torch.long)
        y = torch.full((block_size,), IGNORE_INDEX, dtype=torch.long)
        x[: len(tokens) - 1] = torch.tensor(tokens[:-1])
        y[len(prompt) - 1 : len(tokens) - 1] = torch.tensor(list(answer))  # predictions of the answer's tokens only
        rows_x.append(x)
        rows_y.append(y)
    return torch.stack(rows_x), torch.stack(rows_y)


class PreferenceDataset(Dataset):
    """(prompt, chosen, rejected) token lists -> items (x, y) of shape (2, block_size); a batch is (B, 2, T)."""

    def __init__(self, triples: Sequence[tuple[Sequence[int], Sequence[int], Sequence[int]]], block_size: int):
        self.items = [preference_pair(p, c, r, block_size) for p, c, r in triples]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.items[i]


class DPO(nn.Module):
    """
    A policy trained with DPO against a frozen copy of itself (or the `reference` given). forward(x, y) with x, y of
    shape (B, 2, T) (chosen, rejected) returns ``(rewards, loss)``: rewards (B, 2) the implicit rewards, loss the
    mean DPO loss. Both models must return logits first: ``model(idx) -> (logits, ...)`` as GPT does.

        dpo = DPO(model, beta=0.1); Trainer(config, dpo, PreferenceDataset(triples, block_size)).run()
    """

    def __init__(self, policy: nn.Module, reference: nn.Module | None = None, beta: float = 0.1):
        super().__init__()
        if not beta > 0:
            raise ValueError(f"beta must be > 0, got {beta}")
        self.policy, self.beta = policy, beta
        # A submodule, so it moves with .to(device) and its weights are checkpointed with the policy's.
        self.reference = copy.deepcopy(policy) if reference is None else reference
        self.reference.requires_grad_(False)
        self.reference.eval()

    def train(self, mode: bool = True) -> DPO:
        super().train(mode)
        self.reference.eval()  # always: dropout in the reference would make its log-probs noise
        return self

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.dim() != 3 or x.size(1) != 2 or x.shape != y.shape:
            raise ValueError(f"DPO expects x and y of shape (B, 2, T) (chosen, rejected); got {tuple(x.shape)} "
                             f"and {tuple(y.shape)}. Build batches with PreferenceDataset / preference_pair.")
        B, _, T = x.shape
        idx, targets = x.reshape(2 * B, T), y.reshape(2 * B, T)  # rows: pair 0 chosen, pair 0 rejected, ...
        policy_logps = sequence_logprobs(self.policy(idx)[0], targets).view(B, 2)
        with torch.no_grad():
            reference_logps = sequence_logprobs(self.reference(idx)[0], targets).view(B, 2)
        losses, chosen_rewards, rejected_rewards = dpo_loss(policy_logps[:, 0], policy_logps[:, 1],
                                                            reference_logps[:, 0], reference_logps[:, 1], self.beta)
        return torch.stack([chosen_rewards, rejected_rewards], dim=1), losses.mean()
