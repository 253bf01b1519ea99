"""The held-out probe, round 18, post part 2: DPO loss and GRPO group advantages (see heldout_probe_round18_post.py)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import mingpt.exercises as ex
from heldout_probe_models import mistake, valid


# ------------------------------------------------------------------------------------------ DPO
def _dpo(policy, reference, x, y, beta, *, reduce="sum", mask="ne", ref_grad=False, swap=False, layout="pairs",
         outer="logsigmoid", batch="mean", dim=-1, shift=False, use_ref=True, gather_from="y", detach_pi=False):
    """The reference DPO loss with one switch per mistake."""
    B, _, T = x.shape
    idx, targets = x.reshape(2 * B, T), y.reshape(2 * B, T)
    keep = targets != -1 if mask == "ne" else targets > 0 if mask == "gt0" else torch.ones_like(targets, dtype=bool)
    tgt = idx if gather_from == "x" else targets

    def logps(model):
        logits = model(idx)[0]
        logp = F.log_softmax(logits, dim=dim) if dim is not None else logits
        t, k = tgt, keep
        if shift:  # shifts again, as in pretraining, although y is already the next token
            logp, t, k = logp[:, :-1], t[:, 1:], k[:, 1:]
        token = logp.gather(-1, t.clamp(min=0).unsqueeze(-1)).squeeze(-1) * k
        s = token.sum(-1) if reduce == "sum" else token.sum(-1) / k.sum(-1).clamp(min=1)
        # "halves" reads the flattened rows as if x were (2, B, T): first B rows chosen, the rest rejected
        s = s.view(B, 2) if layout == "pairs" else s.view(2, B).T
        return s.detach() if detach_pi else s

    pi = logps(policy)
    if ref_grad:
        ref = logps(reference)
    else:
        with torch.no_grad():
            ref = logps(reference) if use_ref else torch.zeros_like(pi)
    c, r = (1, 0) if swap else (0, 1)
    margin = (pi[:, c] - ref[:, c]) - (pi[:, r] - ref[:, r])
    if outer == "logsigmoid":
        losses = -F.logsigmoid(beta * margin)
    elif outer == "beta_out":
        losses = -beta * F.logsigmoid(margin)
    elif outer == "sigmoid":
        losses = -torch.sigmoid(beta * margin)
    elif outer == "no_beta":
        losses = -F.logsigmoid(margin)
    return losses.mean() if batch == "mean" else losses.sum()


def dpo_row(expect, **kw):
    def impl(policy, reference, x, y, beta):
        return _dpo(policy, reference, x, y, beta, **kw)
    impl.__name__ = "dpo18_" + "_".join(f"{k}_{v}" for k, v in kw.items())
    mistake(ex.check_dpo_loss, expect)(impl)


dpo_row(r"mean|length|average|sum|normali", reduce="mean")  # on equal lengths it looks like beta / L
dpo_row(r"mask|prompt|pad|-1", mask="all")
dpo_row(r"mask|zero|token 0|>|0", mask="gt0")  # token id 0 is a real token: only wrong when one is a target
dpo_row(r"grad|reference|no_grad|frozen|detach", ref_grad=True)
dpo_row(r"swap|sign|order|rejected|chosen", swap=True)
dpo_row(r"layout|reshape|pair|order|interleav|transpos|view", layout="halves")  # wrong only for B > 1
dpo_row(r"beta|outside|inside", outer="beta_out")
dpo_row(r"log|sigmoid", outer="sigmoid")
dpo_row(r"beta", outer="no_beta")
dpo_row(r"sum|mean|reduc|pairs|batch", batch="sum")  # identical for one pair
dpo_row(r"dim|axis|softmax|vocab|time", dim=1)
dpo_row(r"log.?softmax|logits|normali|raw", dim=None)
dpo_row(r"shift|off.by.one|align|next", shift=True)
dpo_row(r"reference|ref", use_ref=False)
dpo_row(r"two|mean|average|length|sum|pairs", reduce="mean", batch="sum")  # a double slip: token mean, pair sum
dpo_row(r"target|input|x\b|idx|y\b", gather_from="x")
dpo_row(r"grad|detach|policy", detach_pi=True)


@mistake(ex.check_dpo_loss, r"sign|swap|cross|negat|order|rejected|nll")
def dpo18_cross_entropy_sign(policy, reference, x, y, beta):  # cross_entropy is -log p: the margin's sign flips
    B, _, T = x.shape
    idx, tgt = x.reshape(2 * B, T), y.reshape(2 * B, T)

    def nll(model):
        logits = model(idx)[0]
        return F.cross_entropy(logits.transpose(1, 2), tgt, ignore_index=-1, reduction="none").sum(-1).view(B, 2)

    pi = nll(policy)
    with torch.no_grad():
        ref = nll(reference)
    return -F.logsigmoid(beta * ((pi[:, 0] - ref[:, 0]) - (pi[:, 1] - ref[:, 1]))).mean()


@valid(ex.check_dpo_loss)
def dpo18_valid_double_negative(policy, reference, x, y, beta):  # cross_entropy (-log p) with chosen/rejected swapped
    B, _, T = x.shape
    idx, tgt = x.reshape(2 * B, T), y.reshape(2 * B, T)

    def nll(model):
        logits = model(idx)[0]
        return F.cross_entropy(logits.transpose(1, 2), tgt, ignore_index=-1, reduction="none").sum(-1).view(B, 2)

    pi = nll(policy)
    with torch.no_grad():
        ref = nll(reference)
    return -F.logsigmoid(beta * ((pi[:, 1] - ref[:, 1]) - (pi[:, 0] - ref[:, 0]))).mean()


@valid(ex.check_dpo_loss)
def dpo18_valid_loop_float64(policy, reference, x, y, beta):  # one pair at a time, float64 inside
    losses = []
    for b in range(x.shape[0]):
        def lp(model):
            logp = F.log_softmax(model(x[b])[0].double(), dim=-1)
            m = y[b] != -1
            return torch.where(m, logp.gather(-1, y[b].clamp(min=0)[..., None])[..., 0], 0.0).sum(-1)
        pi = lp(policy)
        with torch.no_grad():
            ref = lp(reference)
        losses.append(-F.logsigmoid(beta * ((pi[0] - ref[0]) - (pi[1] - ref[1]))))
    return torch.stack(losses).mean().float()


@valid(ex.check_dpo_loss)
def dpo18_valid_softplus(policy, reference, x, y, beta):  # -logsigmoid(z) = softplus(-z); the mask by masked_fill
    B, _, T = x.shape
    idx, tgt = x.flatten(0, 1), y.flatten(0, 1)

    def lp(model):
        logp = model(idx)[0].log_softmax(-1)
        tok = logp.gather(-1, tgt.masked_fill(tgt == -1, 0).unsqueeze(-1)).squeeze(-1)
        return tok.masked_fill(tgt == -1, 0).sum(-1).unflatten(0, (B, 2))

    pi = lp(policy)
    ref = lp(reference).detach()  # reference computed with a graph, then detached: no gradient reaches it
    return F.softplus(-beta * ((pi - ref) @ torch.tensor([1.0, -1.0]))).mean()


# ------------------------------------------------------------------------------------------ group advantages
def adv_row(expect):
    def register(fn):
        return mistake(ex.check_group_advantages, expect)(fn)
    return register


@adv_row(r"unbiased|biased|population|bessel|correction|std")
def adv18_population_std(rewards, normalize_std=True):
    c = rewards - rewards.mean(dim=1, keepdim=True)
    return c / (rewards.std(dim=1, keepdim=True, unbiased=False) + 1e-4) if normalize_std else c


@adv_row(r"group|global|batch|whole|all|dim")
def adv18_global_mean(rewards, normalize_std=True):
    c = rewards - rewards.mean()
    return c / (rewards.std(dim=1, keepdim=True) + 1e-4) if normalize_std else c


@adv_row(r"dim|axis|prompt|column|group")
def adv18_dim0(rewards, normalize_std=True):  # groups are rows; dim=0 averages across prompts
    c = rewards - rewards.mean(dim=0, keepdim=True)
    return c / (rewards.std(dim=0, keepdim=True) + 1e-4) if normalize_std else c


@adv_row(r"keepdim|broadcast|dim|column|shape")
def adv18_no_keepdim_square(rewards, normalize_std=True):  # (P, G) - (P,): crashes unless P == G, then wrong
    c = rewards - rewards.mean(dim=1)
    return c / (rewards.std(dim=1) + 1e-4) if normalize_std else c


@adv_row(r"eps|nan|uniform|equal|zero|divide")
def adv18_no_eps(rewards, normalize_std=True):
    c = rewards - rewards.mean(dim=1, keepdim=True)
    return c / rewards.std(dim=1, keepdim=True) if normalize_std else c


@adv_row(r"normali|flag|std|ignor")
def adv18_always_normalize(rewards, normalize_std=True):
    c = rewards - rewards.mean(dim=1, keepdim=True)
    return c / (rewards.std(dim=1, keepdim=True) + 1e-4)


@adv_row(r"normali|flag|invert|opposite|revers")
def adv18_flag_inverted(rewards, normalize_std=True):
    c = rewards - rewards.mean(dim=1, keepdim=True)
    return c if normalize_std else c / (rewards.std(dim=1, keepdim=True) + 1e-4)


@adv_row(r"range|max|min|std")
def adv18_range(rewards, normalize_std=True):
    c = rewards - rewards.mean(dim=1, keepdim=True)
    spread = rewards.amax(dim=1, keepdim=True) - rewards.amin(dim=1, keepdim=True)
    return c / (spread + 1e-4) if normalize_std else c


@adv_row(r"sign|negat|revers|opposite")
def adv18_sign(rewards, normalize_std=True):
    c = rewards.mean(dim=1, keepdim=True) - rewards
    return c / (rewards.std(dim=1, keepdim=True) + 1e-4) if normalize_std else c


@adv_row(r"centr|mean|subtract|baseline")
def adv18_not_centred(rewards, normalize_std=True):
    if normalize_std:
        return rewards / (rewards.std(dim=1, keepdim=True) + 1e-4)
    return rewards - rewards.mean(dim=1, keepdim=True)


@adv_row(r"median")
def adv18_median(rewards, normalize_std=True):  # the same as the mean for many symmetric groups
    c = rewards - rewards.median(dim=1, keepdim=True).values
    return c / (rewards.std(dim=1, keepdim=True) + 1e-4) if normalize_std else c


@adv_row(r"in.place|mutat|input|modif|second|call")
def adv18_in_place(rewards, normalize_std=True):  # the output is right, but the caller's rewards are changed
    rewards -= rewards.mean(dim=1, keepdim=True)
    if normalize_std:
        rewards /= rewards.std(dim=1, keepdim=True) + 1e-4
    return rewards


@adv_row(r"global|batch|whole|all|std|group")
def adv18_batch_std(rewards, normalize_std=True):  # group mean, but the std of the whole batch
    c = rewards - rewards.mean(dim=1, keepdim=True)
    return c / (rewards.std() + 1e-4) if normalize_std else c


@adv_row(r"var|sqrt|std")
def adv18_variance(rewards, normalize_std=True):  # forgot the square root
    c = rewards - rewards.mean(dim=1, keepdim=True)
    return c / (rewards.var(dim=1, keepdim=True) + 1e-4) if normalize_std else c


@adv_row(r"centred|centered|std|after|mean|twice|zero")
def adv18_std_after_centring_in_place(rewards, normalize_std=True):  # centres, then takes std of a re-centred copy
    c = rewards - rewards.mean(dim=1, keepdim=True)
    if normalize_std:  # std of |c|: a plausible "std of the deviations" slip
        c = c / (c.abs().std(dim=1, keepdim=True) + 1e-4)
    return c


@adv_row(r"two|population|unbiased|biased|eps|nan")
def adv18_population_no_eps(rewards, normalize_std=True):  # a double slip: population std and no eps
    c = rewards - rewards.mean(dim=1, keepdim=True)
    return c / rewards.std(dim=1, keepdim=True, unbiased=False) if normalize_std else c


@adv_row(r"cancel|precision|large|numer|stab|float")
def adv18_one_pass_variance(rewards, normalize_std=True):  # E[r^2] - E[r]^2: right on paper, wrong for large rewards
    G = rewards.shape[1]
    m = rewards.mean(dim=1, keepdim=True)
    c = rewards - m
    if normalize_std:
        var = ((rewards ** 2).mean(dim=1, keepdim=True) - m ** 2) * G / (G - 1)
        c = c / (var.clamp_min(0).sqrt() + 1e-4)
    return c


@valid(ex.check_group_advantages)
def adv18_valid_nan_to_num(rewards, normalize_std=True):  # no eps; 0/0 of a uniform group turned into 0
    c = rewards - rewards.mean(dim=1, keepdim=True)
    if not normalize_std:
        return c
    return torch.nan_to_num(c / rewards.std(dim=1, keepdim=True), nan=0.0)


@valid(ex.check_group_advantages)
def adv18_valid_loop_float64(rewards, normalize_std=True):  # one group at a time, float64 inside
    out = torch.empty_like(rewards)
    for p in range(rewards.shape[0]):
        g = rewards[p].double()
        c = g - g.sum() / g.numel()
        if normalize_std:
            std = (c.pow(2).sum() / (g.numel() - 1)).sqrt()
            c = c / (std + 1e-6)
        out[p] = c.to(rewards.dtype)
    return out


@valid(ex.check_group_advantages)
def adv18_valid_where(rewards, normalize_std=True):  # a guard instead of eps: uniform groups stay 0
    c = rewards - rewards.mean(1, keepdim=True)
    if normalize_std:
        s = rewards.std(1, keepdim=True)
        c = torch.where(s > 0, c / s.clamp_min(1e-12), torch.zeros_like(c))
    return c
