"""The held-out probe, round 17, post part 3: GRPO's group advantages (see heldout_probe_round17_post.py)."""

from __future__ import annotations

import torch

import mingpt.exercises as ex
from heldout_probe_models import mistake, valid

EPS = 1e-4


@mistake(ex.check_group_advantages, r"group|dim|whole|batch|all|axis")
def adv_global_mean(rewards, normalize_std=True):
    centred = rewards - rewards.mean()  # the mean of every reward, not each group's
    if normalize_std:
        centred = centred / (rewards.std(dim=1, keepdim=True) + EPS)
    return centred


@mistake(ex.check_group_advantages, r"dim|axis|group|prompt")
def adv_mean_dim0(rewards, normalize_std=True):
    mean = rewards.mean(dim=0, keepdim=True)
    std = rewards.std(dim=0, keepdim=True)
    out = rewards - mean
    return out / (std + EPS) if normalize_std else out


@mistake(ex.check_group_advantages, r"keepdim|broadcast|shape|axis|dim")
def adv_no_keepdim(rewards, normalize_std=True):
    adv = rewards - rewards.mean(dim=1)  # (P, G) - (P,): lines up with the columns, not the rows
    if normalize_std:
        adv = adv / (rewards.std(dim=1) + EPS)
    return adv


@mistake(ex.check_group_advantages, r"biased|unbiased|correction|ddof|population")
def adv_biased_std(rewards, normalize_std=True):
    adv = rewards - rewards.mean(1, keepdim=True)
    if normalize_std:
        adv = adv / (rewards.std(1, keepdim=True, unbiased=False) + EPS)
    return adv


@mistake(ex.check_group_advantages, r"eps|nan|equal|zero|divi")
def adv_no_eps(rewards, normalize_std=True):
    adv = rewards - rewards.mean(dim=1, keepdim=True)
    if normalize_std:
        adv = adv / rewards.std(dim=1, keepdim=True)  # 0 / 0 for a group with equal rewards
    return adv


@mistake(ex.check_group_advantages, r"std.*(group|dim|all|whole)|group|whole|batch")
def adv_global_std(rewards, normalize_std=True):
    adv = rewards - rewards.mean(dim=1, keepdim=True)
    if normalize_std:
        adv = adv / (rewards.std() + EPS)  # one std for the batch
    return adv


@mistake(ex.check_group_advantages, r"normali[sz]e_std|ignor|always")
def adv_always_normalised(rewards, normalize_std=True):
    mean, std = rewards.mean(dim=1, keepdim=True), rewards.std(dim=1, keepdim=True)
    return (rewards - mean) / (std + EPS)


@mistake(ex.check_group_advantages, r"normali[sz]e_std|never|std|divid")
def adv_never_normalised(rewards, normalize_std=True):
    return rewards - rewards.mean(dim=1, keepdim=True)


@mistake(ex.check_group_advantages, r"var|std|sqrt")
def adv_divide_by_variance(rewards, normalize_std=True):
    adv = rewards - rewards.mean(dim=1, keepdim=True)
    if normalize_std:
        adv = adv / (rewards.var(dim=1, keepdim=True) + EPS)
    return adv


@mistake(ex.check_group_advantages, r"in.?place|modif|mutat|input|changed")
def adv_in_place(rewards, normalize_std=True):
    rewards -= rewards.mean(dim=1, keepdim=True)  # writes into the caller's tensor
    if normalize_std:
        rewards /= rewards.std(dim=1, keepdim=True) + EPS
    return rewards


@mistake(ex.check_group_advantages, r"mean|centr|baseline|subtract")
def adv_not_centred(rewards, normalize_std=True):
    if normalize_std:
        return rewards / (rewards.std(dim=1, keepdim=True) + EPS)
    return rewards


@mistake(ex.check_group_advantages, r"sign|negat|flipped|revers")
def adv_sign_flipped(rewards, normalize_std=True):
    adv = rewards.mean(dim=1, keepdim=True) - rewards
    if normalize_std:
        adv = adv / (rewards.std(dim=1, keepdim=True) + EPS)
    return adv


@mistake(ex.check_group_advantages, r"shape|flat|view|\(P, G\)")
def adv_flattened(rewards, normalize_std=True):
    adv = rewards - rewards.mean(dim=1, keepdim=True)
    if normalize_std:
        adv = adv / (rewards.std(dim=1, keepdim=True) + EPS)
    return adv.view(-1)  # as grpo_loss wants them, but the exercise returns (P, G)


@mistake(ex.check_group_advantages, r"biased|unbiased|correction"
         r"|population")  # widened after the untuned run: "the population std where the sample std" names it
def adv_loop_biased(rewards, normalize_std=True):
    out = torch.zeros_like(rewards)
    for p in range(rewards.shape[0]):
        group = rewards[p]
        m = group.mean()
        s = ((group - m) ** 2).mean().sqrt()  # divides by G, not G - 1
        out[p] = (group - m) / (s + EPS) if normalize_std else group - m
    return out


@mistake(ex.check_group_advantages, r"group|whole|batch|all")  # double slip: mean and std over the whole batch
def adv_batch_zscore(rewards, normalize_std=True):
    z = rewards - rewards.mean()
    return z / (rewards.std() + EPS) if normalize_std else z


@mistake(ex.check_group_advantages, r"biased|unbiased|eps|nan|equal")  # double slip: biased std, no eps
def adv_biased_no_eps(rewards, normalize_std=True):
    mean = rewards.mean(-1, keepdim=True)
    std = rewards.std(-1, correction=0, keepdim=True)
    return (rewards - mean) / std if normalize_std else rewards - mean


@mistake(ex.check_group_advantages, r"keepdim|broadcast|shape|dim|normali")  # double: no keepdim, flag ignored
def adv_no_keepdim_always(rewards, normalize_std=True):
    return (rewards - rewards.mean(1)) / (rewards.std(1) + EPS)


@valid(ex.check_group_advantages)
def adv_loop(rewards, normalize_std=True):
    P, G = rewards.shape
    out = torch.empty_like(rewards)
    for p in range(P):
        m = sum(rewards[p, g] for g in range(G)) / G
        var = sum((rewards[p, g] - m) ** 2 for g in range(G)) / (G - 1)
        for g in range(G):
            out[p, g] = (rewards[p, g] - m) / (var.sqrt() + EPS) if normalize_std else rewards[p, g] - m
    return out


@valid(ex.check_group_advantages)
def adv_std_mean(rewards, normalize_std=True):
    std, mean = torch.std_mean(rewards, dim=-1, keepdim=True)
    adv = rewards - mean
    return adv / (std + 1e-6) if normalize_std else adv


@valid(ex.check_group_advantages)
def adv_eps_in_sqrt(rewards, normalize_std=True):
    centred = rewards - rewards.mean(dim=1, keepdim=True)
    if not normalize_std:
        return centred
    var = centred.pow(2).sum(dim=1, keepdim=True) / (rewards.shape[1] - 1)
    return centred / torch.sqrt(var + 1e-8)


@valid(ex.check_group_advantages)
def adv_zero_std_groups(rewards, normalize_std=True):
    centred = rewards - rewards.mean(dim=1, keepdim=True)
    if not normalize_std:
        return centred
    std = rewards.std(dim=1, keepdim=True)
    return torch.where(std > 0, centred / std.clamp(min=1e-12), torch.zeros_like(centred))  # no eps: zeros instead
