"""The held-out probe, round 20, post part 2: DPO loss and group advantages (see heldout_probe_round20_post.py)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import mingpt.exercises as ex
from heldout_probe_models import mistake, valid

# ------------------------------------------------------------------------------------------ DPO
# The contract: fn(policy, reference, x, y, beta); x, y (B, 2, T), row 0 chosen, row 1 rejected, y = -1 where no
# answer token; log pi = SUM of log-probs at the targets where y != -1; loss = mean over pairs of
# -logsigmoid(beta * margin); the reference gets no gradient.


def dpo(logps=None, loss=None, ref_grad=False, ignore=-1, swap=False, split=None):
    """A DPO written with one piece changeable: logps(logits, targets, mask) -> (2B,), loss(margin, beta) -> (B,)."""
    def token_logps(logits, targets, mask):
        lp = F.log_softmax(logits, dim=-1).gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        return (lp * mask).sum(-1)

    def fn(policy, reference, x, y, beta):
        B, _, T = x.shape
        if split is None:
            idx, targets = x.reshape(2 * B, T), y.reshape(2 * B, T)
        else:
            idx, targets = split(x), split(y)
        mask = targets != ignore

        def run(model):
            return (logps or token_logps)(model(idx)[0], targets, mask).view(B, 2)

        pi = run(policy)
        if ref_grad:
            ref = run(reference)
        else:
            with torch.no_grad():
                ref = run(reference)
        c, r = (1, 0) if swap else (0, 1)
        margin = (pi[:, c] - ref[:, c]) - (pi[:, r] - ref[:, r])
        losses = loss(margin, beta) if loss else -F.logsigmoid(beta * margin)
        return losses.mean()
    return fn


def _mean_logps(logits, targets, mask):  # the average per answer token (IPO / SimPO's length normalisation)
    lp = F.log_softmax(logits, dim=-1).gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (lp * mask).sum(-1) / mask.sum(-1)


mistake(ex.check_dpo_loss, r"mean|average|length|sum")(dpo(logps=_mean_logps))
# -100 as the padding label: every -1 position (the prompt, the padding) is counted, as token 0
mistake(ex.check_dpo_loss, r"-100|mask|prompt|ignor|padding")(dpo(ignore=-100))
mistake(ex.check_dpo_loss, r"gradient|no_grad|detach|reference|frozen")(dpo(ref_grad=True))
mistake(ex.check_dpo_loss, r"ipo|square|logsigmoid|sigmoid")(  # TRL's loss_type="ipo"
    dpo(loss=lambda m, beta: (m - 1 / (2 * beta)) ** 2))
mistake(ex.check_dpo_loss, r"smooth|label|cdpo|conservative")(  # TRL's label_smoothing=0.1 (cDPO)
    dpo(loss=lambda m, beta: -0.9 * F.logsigmoid(beta * m) - 0.1 * F.logsigmoid(-beta * m)))
mistake(ex.check_dpo_loss, r"beta")(dpo(loss=lambda m, beta: -beta * F.logsigmoid(m)))
mistake(ex.check_dpo_loss, r"swap|chosen|rejected|sign|order")(dpo(swap=True))
mistake(ex.check_dpo_loss, r"hinge|logsigmoid|sigmoid|relu")(  # TRL's loss_type="hinge"
    dpo(loss=lambda m, beta: torch.relu(1 - beta * m)))
mistake(ex.check_dpo_loss, r"beta|0\.1|default")(dpo(loss=lambda m, beta: -F.logsigmoid(0.1 * m)))  # TRL's default
# the pairs flattened chosen-first over the batch ([c0, c1, ..., r0, r1, ...], TRL's concatenated_forward) but read
# back as (B, 2) pairs
mistake(ex.check_dpo_loss, r"reshape|order|pair|interleav|view|concat")(
    dpo(split=lambda t: t.transpose(0, 1).reshape(-1, t.shape[-1])))


def _shifted_again(logits, targets, mask):  # HF habit: shift logits and labels inside, though y is already shifted
    lp = F.log_softmax(logits[:, :-1], dim=-1).gather(-1, targets[:, 1:].clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (lp * mask[:, 1:]).sum(-1)


mistake(ex.check_dpo_loss, r"shift|off.by.one|align")(dpo(logps=_shifted_again))


def _wrong_dim(logits, targets, mask):
    lp = F.log_softmax(logits, dim=1).gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (lp * mask).sum(-1)


mistake(ex.check_dpo_loss, r"dim|softmax|axis|vocab")(dpo(logps=_wrong_dim))


def _probs(logits, targets, mask):  # softmax where log_softmax is needed
    p = F.softmax(logits, dim=-1).gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (p * mask).sum(-1)


mistake(ex.check_dpo_loss, r"log|softmax|probabilit")(dpo(logps=_probs))


def _model_mean_loss(logits, targets, mask):  # -cross_entropy with the default reduction="mean", one row at a time
    return torch.stack([-F.cross_entropy(lg, t, ignore_index=-1) for lg, t in zip(logits, targets)])


mistake(ex.check_dpo_loss, r"mean|average|length|sum")(dpo(logps=_model_mean_loss))


@mistake(ex.check_dpo_loss, r"sum|mean|reduction|pairs|batch")
def dpo_r20_sum_over_pairs(policy, reference, x, y, beta):
    B = x.shape[0]
    return dpo()(policy, reference, x, y, beta) * B


@mistake(ex.check_dpo_loss, r"-100|mask|prompt|ignor|mean|average|length")
def dpo_r20_hf_double(policy, reference, x, y, beta):  # double slip: -100 and the mean per row
    return dpo(logps=_mean_logps, ignore=-100)(policy, reference, x, y, beta)


def _ce_logps(logits, targets, mask):  # cross_entropy per token, summed: the same sum of log-probs
    return -F.cross_entropy(logits.transpose(1, 2), targets, ignore_index=-1, reduction="none").sum(-1)


valid(ex.check_dpo_loss)(dpo(logps=_ce_logps))
valid(ex.check_dpo_loss)(dpo(loss=lambda m, beta: F.softplus(-beta * m)))  # softplus(-z) = -logsigmoid(z)


@valid(ex.check_dpo_loss)
def dpo_r20_valid_trl_concat(policy, reference, x, y, beta):  # TRL's concatenated forward, chosen rows first
    B, _, T = x.shape
    idx = torch.cat([x[:, 0], x[:, 1]])
    tgt = torch.cat([y[:, 0], y[:, 1]])
    mask = tgt != -1

    def logps(model):
        lp = torch.gather(model(idx)[0].log_softmax(-1), 2, torch.where(mask, tgt, 0).unsqueeze(2)).squeeze(2)
        return torch.where(mask, lp, 0.0).sum(-1)

    pi = logps(policy)
    ref = logps(reference).detach()  # detach: no gradient reaches the reference either
    chosen, rejected = beta * (pi[:B] - ref[:B]), beta * (pi[B:] - ref[B:])
    return -F.logsigmoid(chosen - rejected).mean()


# ------------------------------------------------------------------------------------------ group advantages
# The contract: fn(rewards (P, G), normalize_std) -> (P, G): reward - group mean, / (unbiased group std + small eps)
# if normalize_std; equal-reward groups get zeros.


@mistake(ex.check_group_advantages, r"std|normaliz|flag")
def adv_r20_dr_grpo(rewards, normalize_std=True):  # Dr. GRPO: never divides by the std
    return rewards - rewards.mean(dim=1, keepdim=True)


@mistake(ex.check_group_advantages, r"batch|global|whole|all")
def adv_r20_batch_std(rewards, normalize_std=True):  # TRL's scale_rewards="batch"
    centred = rewards - rewards.mean(dim=1, keepdim=True)
    return centred / (rewards.std() + 1e-4) if normalize_std else centred


@mistake(ex.check_group_advantages, r"unbiased|biased|population|correction|G - 1|G-1")
def adv_r20_population_std(rewards, normalize_std=True):  # numpy's np.std default (ddof=0)
    centred = rewards - rewards.mean(dim=1, keepdim=True)
    return centred / (rewards.std(dim=1, keepdim=True, correction=0) + 1e-4) if normalize_std else centred


@mistake(ex.check_group_advantages, r"eps|nan|zero|equal")
def adv_r20_no_eps(rewards, normalize_std=True):
    centred = rewards - rewards.mean(dim=1, keepdim=True)
    return centred / rewards.std(dim=1, keepdim=True) if normalize_std else centred


@mistake(ex.check_group_advantages, r"batch|global|whole|all|group")
def adv_r20_batch_mean(rewards, normalize_std=True):  # a REINFORCE baseline: the batch's mean
    centred = rewards - rewards.mean()
    return centred / (rewards.std(dim=1, keepdim=True) + 1e-4) if normalize_std else centred


@mistake(ex.check_group_advantages, r"dim|axis|prompt|column|group")
def adv_r20_dim0(rewards, normalize_std=True):  # rewards read as (G, P)
    centred = rewards - rewards.mean(dim=0, keepdim=True)
    return centred / (rewards.std(dim=0, keepdim=True) + 1e-4) if normalize_std else centred


@mistake(ex.check_group_advantages, r"var|sqrt")
def adv_r20_variance(rewards, normalize_std=True):
    centred = rewards - rewards.mean(dim=1, keepdim=True)
    return centred / (rewards.var(dim=1, keepdim=True) + 1e-4) if normalize_std else centred


@mistake(ex.check_group_advantages, r"range|max|min")
def adv_r20_range(rewards, normalize_std=True):  # min-max scaling habit
    centred = rewards - rewards.mean(dim=1, keepdim=True)
    span = rewards.amax(dim=1, keepdim=True) - rewards.amin(dim=1, keepdim=True)
    return centred / (span + 1e-4) if normalize_std else centred


@mistake(ex.check_group_advantages, r"flag|normalize_std|invert|opposite")
def adv_r20_flag_inverted(rewards, normalize_std=True):
    centred = rewards - rewards.mean(dim=1, keepdim=True)
    return centred if normalize_std else centred / (rewards.std(dim=1, keepdim=True) + 1e-4)


@mistake(ex.check_group_advantages, r"leave.one.out|rloo|other")
def adv_r20_rloo(rewards, normalize_std=True):  # RLOO's baseline: the mean of the other G - 1 rewards
    G = rewards.shape[1]
    baseline = (rewards.sum(dim=1, keepdim=True) - rewards) / (G - 1)
    centred = rewards - baseline
    return centred / (rewards.std(dim=1, keepdim=True) + 1e-4) if normalize_std else centred


@mistake(ex.check_group_advantages, r"in.place|mutat|modif|caller|overwr")
def adv_r20_inplace(rewards, normalize_std=True):
    std = rewards.std(dim=1, keepdim=True)
    rewards -= rewards.mean(dim=1, keepdim=True)
    return rewards / (std + 1e-4) if normalize_std else rewards


@mistake(ex.check_group_advantages, r"shape|flat|view|\(P \* G|P\*G")
def adv_r20_flat(rewards, normalize_std=True):  # TRL returns one advantage per completion, flattened
    P, G = rewards.shape
    flat = rewards.view(-1)
    mean = rewards.mean(dim=1).repeat_interleave(G)
    std = rewards.std(dim=1).repeat_interleave(G)
    return (flat - mean) / (std + 1e-4) if normalize_std else flat - mean


@mistake(ex.check_group_advantages, r"keepdim|broadcast|dim|axis|group|shape")
def adv_r20_no_keepdim(rewards, normalize_std=True):  # (P, G) - (P,): crashes unless P == G, then the wrong axis
    centred = rewards - rewards.mean(dim=1)
    return centred / (rewards.std(dim=1) + 1e-4) if normalize_std else centred


@mistake(ex.check_group_advantages, r"unbiased|biased|population|correction|G - 1|G-1|eps|nan|zero|equal")
def adv_r20_np_double(rewards, normalize_std=True):  # double slip: numpy's population std and no eps
    centred = rewards - rewards.mean(dim=1, keepdim=True)
    return centred / rewards.std(dim=1, keepdim=True, unbiased=False) if normalize_std else centred


@mistake(ex.check_group_advantages, r"std|eps|scale|normaliz")
def adv_r20_std_of_centred_eps_big(rewards, normalize_std=True):  # eps = 1 (a "reward scale" from a PPO config)
    centred = rewards - rewards.mean(dim=1, keepdim=True)
    return centred / (rewards.std(dim=1, keepdim=True) + 1.0) if normalize_std else centred


@valid(ex.check_group_advantages)
def adv_r20_valid_std_mean(rewards, normalize_std=True):
    std, mean = torch.std_mean(rewards, dim=1, keepdim=True)
    centred = rewards - mean
    return centred / (std + 1e-4) if normalize_std else centred


@valid(ex.check_group_advantages)
def adv_r20_valid_trl_flat_view(rewards, normalize_std=True):  # TRL's flattened code, viewed back as (P, G)
    P, G = rewards.shape
    flat = rewards.reshape(-1)
    mean = rewards.mean(dim=1).repeat_interleave(G)
    adv = flat - mean
    if normalize_std:
        adv = adv / (rewards.std(dim=1).repeat_interleave(G) + 1e-4)
    return adv.view(P, G)


@valid(ex.check_group_advantages)
def adv_r20_valid_manual(rewards, normalize_std=True):  # the sample variance written out
    G = rewards.shape[1]
    centred = rewards - rewards.sum(1, keepdim=True) / G
    if not normalize_std:
        return centred
    return centred / (torch.sqrt((centred ** 2).sum(1, keepdim=True) / (G - 1)) + 1e-4)


@valid(ex.check_group_advantages)
def adv_r20_valid_small_eps(rewards, normalize_std=True):  # another small eps (1e-6): "a small eps such as 1e-4"
    centred = rewards - rewards.mean(dim=1, keepdim=True)
    return centred / (rewards.std(dim=1, keepdim=True) + 1e-6) if normalize_std else centred
