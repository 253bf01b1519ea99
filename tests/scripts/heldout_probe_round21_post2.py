"""The held-out probe, round 21, post part 2: the DPO loss and the group advantages (see ..._round21_post.py)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import mingpt.exercises as ex
from heldout_probe_models import mistake, valid

IGN = -1


# ------------------------------------------------------------------------------------------ DPO loss
def M(p, r):
    """The DPO margin from (B, 2) policy and reference log-probs."""
    return (p[:, 0] - r[:, 0]) - (p[:, 1] - r[:, 1])


def seq_logps(model, x, y, reduce="sum", mask_rows=(0, 1), drop_last=False, dim=-1, log=True):
    """Per-sequence summed log-probabilities of y under model, (B, 2); options reproduce one slip each."""
    B, _, T = x.shape
    idx, targets = x.reshape(2 * B, T), y.reshape(2 * B, T)
    mask = (targets != IGN).float()
    if drop_last:
        mask[:, -1] = 0
    rowsel = torch.zeros(2 * B, 1)
    rowsel.view(B, 2)[:, list(mask_rows)] = 1
    mask = mask * rowsel + (1 - rowsel)  # rows not in mask_rows keep every position
    logits = model(idx)[0]
    logp = F.log_softmax(logits, dim=dim) if log else F.softmax(logits, dim=dim)
    token = logp.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    if reduce == "sum":
        out = (token * mask).sum(-1)
    elif reduce == "mean_T":
        out = (token * mask).sum(-1) / T
    else:
        out = (token * mask).sum(-1) / mask.sum(-1)
    return out.view(B, 2)


def dpo(name, margin_fn=None, loss_fn=None, ref_grad=False, reduce_pairs="mean", **kw):
    def impl(policy, reference, x, y, beta):
        pi = seq_logps(policy, x, y, **kw)
        if ref_grad:
            ref = seq_logps(reference, x, y, **kw)
        else:
            with torch.no_grad():
                ref = seq_logps(reference, x, y, **kw)
        if margin_fn is None:
            z = beta * ((pi[:, 0] - ref[:, 0]) - (pi[:, 1] - ref[:, 1]))
        else:
            z = margin_fn(pi, ref, beta)
        losses = -F.logsigmoid(z) if loss_fn is None else loss_fn(z)
        return losses.mean() if reduce_pairs == "mean" else losses.sum()
    impl.__name__ = name
    return impl


mistake(ex.check_dpo_loss, r"beta")(dpo("dpo_beta_squared", lambda p, r, b: b * b * M(p, r)))
mistake(ex.check_dpo_loss, r"beta|half|scale|0\.5")(
    dpo("dpo_beta_half", lambda p, r, b: 0.5 * b * M(p, r)))  # cousin: beta/2
mistake(ex.check_dpo_loss, r"beta")(dpo("dpo_divided_by_beta", lambda p, r, b: M(p, r) / b))
mistake(ex.check_dpo_loss, r"beta.*(reference|policy)|(reference|policy).*beta|beta")(
    # beta only on the policy's term
    dpo("dpo_beta_policy_only", lambda p, r, b: b * (p[:, 0] - p[:, 1]) - (r[:, 0] - r[:, 1])))
mistake(ex.check_dpo_loss, r"sign|negat|minus")(dpo("dpo_sign_flipped", loss_fn=lambda z: F.logsigmoid(z)))
mistake(ex.check_dpo_loss, r"swap|order|chosen|rejected")(
    dpo("dpo_swapped", lambda p, r, b: b * ((p[:, 1] - r[:, 1]) - (p[:, 0] - r[:, 0]))))
mistake(ex.check_dpo_loss, r"reference|grad|detach|no_grad")(dpo("dpo_ref_grad", ref_grad=True))
# cousin: / T, all positions
mistake(ex.check_dpo_loss, r"length|by T|mean|average|normali|divid")(dpo("dpo_mean_over_T", reduce="mean_T"))
# per-token mean
mistake(ex.check_dpo_loss, r"mean|average|normali|length|token")(dpo("dpo_token_mean", reduce="mean_mask"))
mistake(ex.check_dpo_loss, r"sum|batch|pairs|mean")(dpo("dpo_sum_pairs", reduce_pairs="sum"))
# log_softmax over the time axis
mistake(ex.check_dpo_loss, r"softmax|dim|axis|normali")(dpo("dpo_softmax_time_axis", dim=1))
# probabilities summed instead of log-probabilities
mistake(ex.check_dpo_loss, r"log|prob")(dpo("dpo_probs_not_logs", log=False))
mistake(ex.check_dpo_loss, r"reference|sign|add")(  # "reference's chosen and rejected swapped": the same algebra
    # the reference added, not subtracted
    dpo("dpo_ref_added", lambda p, r, b: b * ((p[:, 0] + r[:, 0]) - (p[:, 1] + r[:, 1]))))
mistake(ex.check_dpo_loss, r"reject.*reference|reference.*reject|reference|one side|only")(
    # partial: reference subtracted for chosen only
    dpo("dpo_ref_chosen_only", lambda p, r, b: b * ((p[:, 0] - r[:, 0]) - p[:, 1])))
# partial: chosen rows unmasked
mistake(ex.check_dpo_loss, r"mask|ignore|prompt|reject")(dpo("dpo_chosen_unmasked", mask_rows=(1,)))
# partial: last position never counted
mistake(ex.check_dpo_loss, r"last|mask|position")(dpo("dpo_last_position_dropped", drop_last=True))
# -sigmoid, not -log sigmoid
mistake(ex.check_dpo_loss, r"log|sigmoid")(dpo("dpo_minus_sigmoid", loss_fn=lambda z: -torch.sigmoid(z)))
mistake(ex.check_dpo_loss, r"(?=.*beta)(?=.*(mean|average|token|normali|length|also|other|more))")(
    dpo("dpo_beta_squared_and_token_mean", lambda p, r, b: b * b * M(p, r), reduce="mean_mask"))  # combination


def dpo_pairs_interleaved_wrong(policy, reference, x, y, beta):  # chosen/rejected read from the wrong layout
    B, _, T = x.shape
    idx, targets = x.transpose(0, 1).reshape(2 * B, T), y.transpose(0, 1).reshape(2 * B, T)
    mask = targets != IGN

    def lp(m):
        logp = F.log_softmax(m(idx)[0], -1).gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        return (logp * mask).sum(-1).view(B, 2)
    pi = lp(policy)
    with torch.no_grad():
        ref = lp(reference)
    return -F.logsigmoid(beta * ((pi[:, 0] - ref[:, 0]) - (pi[:, 1] - ref[:, 1]))).mean()


mistake(ex.check_dpo_loss, r"layout|pair|order|reshape|view|chosen|rejected")(dpo_pairs_interleaved_wrong)


@valid(ex.check_dpo_loss)
def dpo_valid_softplus_ce(policy, reference, x, y, beta):  # cross-entropy with ignore_index, softplus
    B, _, T = x.shape

    def lp(m):
        logits = m(x.reshape(2 * B, T))[0]
        nll = F.cross_entropy(logits.transpose(1, 2), y.reshape(2 * B, T), ignore_index=IGN, reduction="none")
        return -nll.sum(-1).view(B, 2)
    pi, ref = lp(policy), lp(reference).detach()
    z = (pi[:, 0] - pi[:, 1]) - (ref[:, 0] - ref[:, 1])
    return F.softplus(-beta * z).mean()


@valid(ex.check_dpo_loss)
def dpo_valid_loop(policy, reference, x, y, beta):  # one pair at a time, log(sigmoid) (contract: valid)
    losses = []
    for b in range(x.shape[0]):
        vals = []
        for model in (policy, reference):
            ctx = torch.enable_grad() if model is policy else torch.no_grad()
            with ctx:
                logp = F.log_softmax(model(x[b])[0], -1)
                keep = y[b] >= 0
                vals.append((logp.gather(-1, y[b].clamp(min=0)[..., None])[..., 0] * keep).sum(-1))
        (pc, pr), (rc, rr) = vals
        losses.append(-torch.log(torch.sigmoid(beta * (pc - rc - pr + rr))))
    return torch.stack(losses).mean()


@valid(ex.check_dpo_loss)
def dpo_valid_masked_fill(policy, reference, x, y, beta):  # masked_fill of -inf-free zeros, logsumexp by hand
    B, _, T = x.shape
    idx, tgt = x.reshape(-1, T), y.reshape(-1, T)

    def lp(m):
        logits = m(idx)[0]
        logp = logits - logits.logsumexp(-1, keepdim=True)
        tok = logp.gather(-1, tgt.clamp(min=0).unsqueeze(-1)).squeeze(-1).masked_fill(tgt == IGN, 0.0)
        return tok.sum(-1).view(B, 2)
    pi = lp(policy)
    with torch.no_grad():
        ref = lp(reference)
    ratio = pi - ref
    return -F.logsigmoid(beta * (ratio[:, 0] - ratio[:, 1])).sum() / B


# ------------------------------------------------------------------------------------------ group advantages
def adv(name, center="mean", scale="std", eps=1e-4, dim=1, flag="ok"):
    def impl(rewards, normalize_std=True):
        if center == "mean":
            c = rewards - rewards.mean(dim=dim, keepdim=True)
        elif center == "global":
            c = rewards - rewards.mean()
        elif center == "median":
            c = rewards - rewards.median(dim=dim, keepdim=True).values
        elif center == "loo":  # leave-one-out baseline: the mean of the other G-1 rewards
            G = rewards.shape[1]
            c = rewards - (rewards.sum(1, keepdim=True) - rewards) / (G - 1)
        do = normalize_std if flag == "ok" else (not normalize_std if flag == "inverted" else True)
        if not do:
            return c
        if scale == "std":
            s = rewards.std(dim=dim, keepdim=True)
        elif scale == "biased":
            s = rewards.std(dim=dim, keepdim=True, unbiased=False)
        elif scale == "var":
            s = rewards.var(dim=dim, keepdim=True)
        elif scale == "range":
            s = rewards.max(dim, keepdim=True).values - rewards.min(dim, keepdim=True).values
        elif scale == "G-2":  # cousin of Bessel: n - 2 in the denominator
            G = rewards.shape[1]
            s = (((rewards - rewards.mean(1, keepdim=True)) ** 2).sum(1, keepdim=True) / (G - 2)).sqrt()
        return c / (s + eps)
    impl.__name__ = name
    return impl


mistake(ex.check_group_advantages, r"eps|1\b|large|one")(adv("adv_std_plus_one", eps=1.0))  # cousin: std + 1
mistake(ex.check_group_advantages, r"eps|large")(adv("adv_eps_0p1", eps=0.1))  # cousin: eps 0.1, not small
# statistics over the wrong axis
mistake(ex.check_group_advantages, r"axis|dim|group|column|across")(adv("adv_wrong_axis", dim=0))
mistake(ex.check_group_advantages, r"axis|dim|group|column|across|std")(
    lambda r, n=True: (r - r.mean(1, keepdim=True)) / (r.std(0, keepdim=True) + 1e-4) if n
    else r - r.mean(1, keepdim=True))  # partial: only the std over the wrong axis
mistake(ex.check_group_advantages, r"global|all|whole|batch|group")(adv("adv_global_mean", center="global"))
mistake(ex.check_group_advantages, r"median")(adv("adv_median", center="median"))
mistake(ex.check_group_advantages, r"leave|other|loo|baseline|mean")(adv("adv_leave_one_out", center="loo"))
mistake(ex.check_group_advantages, r"var")(adv("adv_variance", scale="var"))
mistake(ex.check_group_advantages, r"range|max|min")(adv("adv_range", scale="range"))
mistake(ex.check_group_advantages, r"G-2|n-2|bessel|denominator|two|2|std")(
    adv("adv_denominator_G_minus_2", scale="G-2"))
mistake(ex.check_group_advantages, r"normali[sz]e|flag|always|ignor")(adv("adv_always_normalised", flag="always"))
mistake(ex.check_group_advantages, r"normali[sz]e|flag|invert|opposite|swap")(adv("adv_flag_inverted", flag="inverted"))
# "the population std" is the biased std
mistake(ex.check_group_advantages, r"(?=.*(biased|bessel|unbiased|population))(?=.*(eps|also|other|more))")(
    adv("adv_biased_and_plus_one", scale="biased", eps=1.0))  # combination: biased std and std + 1


@mistake(ex.check_group_advantages, r"first|group|row|prompt")
def adv_first_group_only(rewards, normalize_std=True):  # partial: the loop body runs for the first group only
    out = rewards.clone().float()
    for p in range(1):
        c = rewards[p] - rewards[p].mean()
        out[p] = c / (rewards[p].std() + 1e-4) if normalize_std else c
    return out


@mistake(ex.check_group_advantages, r"last|group|row|prompt")
def adv_last_group_skipped(rewards, normalize_std=True):  # partial: range(P - 1) leaves the last group raw
    out = rewards.clone().float()
    for p in range(rewards.shape[0] - 1):
        c = rewards[p] - rewards[p].mean()
        out[p] = c / (rewards[p].std() + 1e-4) if normalize_std else c
    return out


@mistake(ex.check_group_advantages, r"clamp|negative|positive|sign")
def adv_negative_clamped(rewards, normalize_std=True):  # partial: below-average answers get 0, not a penalty
    c = rewards - rewards.mean(1, keepdim=True)
    if normalize_std:
        c = c / (rewards.std(1, keepdim=True) + 1e-4)
    return c.clamp(min=0)


@mistake(ex.check_group_advantages, r"sign|negat|flip")
def adv_sign_flipped(rewards, normalize_std=True):  # mean minus reward
    c = rewards.mean(1, keepdim=True) - rewards
    return c / (rewards.std(1, keepdim=True) + 1e-4) if normalize_std else c


@mistake(ex.check_group_advantages, r"in.place|modif|input|overwr")
def adv_in_place(rewards, normalize_std=True):  # the caller's rewards are overwritten
    rewards -= rewards.mean(1, keepdim=True)
    if normalize_std:
        rewards /= rewards.std(1, keepdim=True) + 1e-4
    return rewards


@mistake(ex.check_group_advantages, r"keepdim|broadcast|axis|dim|shape")
def adv_no_keepdim(rewards, normalize_std=True):  # mean without keepdim broadcasts along the wrong axis
    c = rewards - rewards.mean(1)
    return c / (rewards.std(1) + 1e-4) if normalize_std else c


@valid(ex.check_group_advantages)
def adv_valid_eps_inside_sqrt(rewards, normalize_std=True):  # contract: eps inside the sqrt is valid
    c = rewards - rewards.mean(1, keepdim=True)
    return c / torch.sqrt(rewards.var(1, keepdim=True) + 1e-8) if normalize_std else c


@valid(ex.check_group_advantages)
def adv_valid_manual_bessel(rewards, normalize_std=True):  # the unbiased std by hand; std computed after centring
    G = rewards.shape[1]
    c = rewards - rewards.sum(1, keepdim=True) / G
    if not normalize_std:
        return c
    return c / ((c * c).sum(1, keepdim=True) / (G - 1)).sqrt().add(1e-6)


@valid(ex.check_group_advantages)
def adv_valid_loop_std_mean(rewards, normalize_std=True):  # torch.std_mean per group, stacked
    rows = []
    for r in rewards:
        s, m = torch.std_mean(r)
        rows.append((r - m) / (s + 1e-5) if normalize_std else r - m)
    return torch.stack(rows)


@valid(ex.check_group_advantages)
def adv_valid_where_zero_std(rewards, normalize_std=True):  # a zero-std group guarded explicitly; eps 1e-8
    c = rewards - rewards.mean(1, keepdim=True)
    if not normalize_std:
        return c
    s = rewards.std(1, keepdim=True)
    return torch.where(s > 0, c / (s + 1e-8), torch.zeros_like(c))
