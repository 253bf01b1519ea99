"""The held-out probe, round 19, post part 2: DPO loss and group advantages (see heldout_probe_round19_post.py)."""

from __future__ import annotations

import statistics

import numpy as np
import torch
import torch.nn.functional as F

import mingpt.exercises as ex
from heldout_probe_models import mistake, valid


# ------------------------------------------------------------------------------------------ DPO
def dpo_r19(reduce="sum", mask=True, norm="log_softmax", swap=False, ref_grad=False, beta_mode="in", pair="view",
            ref_sign=-1, outer="mean", policy_detach=False, shift=False, no_ref=False, neg=True):
    """A DPO loss built from knobs; each knob other than its default is one slip."""
    def fn(policy, reference, x, y, beta):
        B, _, T = x.shape
        if pair == "view":
            idx, tgt = x.reshape(2 * B, T), y.reshape(2 * B, T)
        else:  # chosen block first, then rejected (a transpose), but regrouped as if pairs were adjacent
            idx, tgt = x.transpose(0, 1).reshape(2 * B, T), y.transpose(0, 1).reshape(2 * B, T)

        def seq_logp(model):
            logits = model(idx)[0]
            t = tgt
            if shift:  # shifts again what the data already shifted
                logits, t = logits[:, :-1], t[:, 1:]
            if norm == "log_softmax":
                lp = F.log_softmax(logits, dim=-1)
            elif norm == "raw":
                lp = logits
            elif norm == "time":
                lp = F.log_softmax(logits, dim=1)
            m = (t != -1) if mask else torch.ones_like(t, dtype=torch.bool)
            tok = lp.gather(-1, t.clamp(min=0).unsqueeze(-1)).squeeze(-1) * m
            s = tok.sum(-1)
            if reduce == "mean":
                s = s / m.sum(-1).clamp(min=1)
            return s.view(B, 2)

        pi = seq_logp(policy)
        if policy_detach:
            pi = pi.detach()
        if ref_grad:
            ref = seq_logp(reference)
        else:
            with torch.no_grad():
                ref = seq_logp(reference)
        c, r = (1, 0) if swap else (0, 1)
        if no_ref:
            margin = pi[:, c] - pi[:, r]
        else:
            margin = (pi[:, c] - pi[:, r]) + ref_sign * (ref[:, c] - ref[:, r])
        if beta_mode == "in":
            per = F.logsigmoid(beta * margin)
        elif beta_mode == "none":
            per = F.logsigmoid(margin)
        elif beta_mode == "out":
            per = beta * F.logsigmoid(margin)
        elif beta_mode == "div":
            per = F.logsigmoid(margin / beta)
        per = -per if neg else per
        return per.mean() if outer == "mean" else per.sum()
    return fn


for _kw, _re in [
        (dict(reduce="mean"), r"mean|average|length|sum"),
        (dict(mask=False), r"mask|ignore|-1|prompt|padding"),
        (dict(swap=True), r"swap|chosen|rejected|sign|order"),
        (dict(ref_grad=True), r"grad|reference|no_grad|frozen|detach"),
        (dict(beta_mode="none"), r"beta"),
        (dict(beta_mode="out"), r"beta"),
        (dict(beta_mode="div"), r"beta"),
        (dict(norm="raw"), r"log_softmax|logits|normali|softmax|raw"),
        (dict(norm="time"), r"dim|axis|softmax|time|vocab"),
        (dict(outer="sum"), r"sum|mean|pairs|batch|reduc"),
        (dict(ref_sign=+1), r"reference|sign|ref"),
        (dict(no_ref=True), r"reference|ref"),
        (dict(policy_detach=True), r"grad|policy|detach"),
        (dict(pair="transposed"), r"pair|reshape|transpose|order|layout|view"),
        (dict(shift=True), r"shift|align|off.by.one|twice"),
        (dict(neg=False), r"sign|minus|negat"),
        (dict(reduce="mean", mask=False), r"mean|mask|average|ignore"),  # double slip
        (dict(swap=True, beta_mode="none"), r"swap|beta|sign|chosen"),  # double slip
]:
    mistake(ex.check_dpo_loss, _re)(dpo_r19(**_kw))


@mistake(ex.check_dpo_loss, r"ignore|-1|mask|index|gather|target")
def dpo_r19_gather_minus_one(policy, reference, x, y, beta):  # gathers at -1 without a clamp: an index error
    B, _, T = x.shape

    def lp(model):
        logp = model(x.flatten(0, 1))[0].log_softmax(-1)
        tok = torch.gather(logp, 2, y.flatten(0, 1).unsqueeze(2)).squeeze(2)
        return (tok * (y.flatten(0, 1) != -1)).sum(1).view(B, 2)

    p = lp(policy)
    with torch.no_grad():
        q = lp(reference)
    return -F.logsigmoid(beta * ((p - q)[:, 0] - (p - q)[:, 1])).mean()


@mistake(ex.check_dpo_loss, r"mean|average|length|cross.?entropy|sum")
def dpo_r19_ce_mean(policy, reference, x, y, beta):  # the model's own CE loss: a mean over all tokens of the row
    B, _, T = x.shape

    def lp(model):
        out = []
        for i in range(B):
            for j in range(2):
                out.append(-model(x[i, j][None], y[i, j][None])[1])
        return torch.stack(out).view(B, 2)

    p = lp(policy)
    with torch.no_grad():
        q = lp(reference)
    return -F.logsigmoid(beta * ((p[:, 0] - q[:, 0]) - (p[:, 1] - q[:, 1]))).mean()


@mistake(ex.check_dpo_loss, r"grad|policy|no_grad")
def dpo_r19_all_no_grad(policy, reference, x, y, beta):  # the whole loss under no_grad
    with torch.no_grad():
        return dpo_r19()(policy, reference, x, y, beta)


@valid(ex.check_dpo_loss)
def dpo_r19_valid_ce_none(policy, reference, x, y, beta):  # cross_entropy(reduction="none", ignore_index=-1)
    B, _, T = x.shape
    idx, tgt = x.view(-1, T), y.view(-1, T)

    def lp(model):
        logits = model(idx)[0]
        nll = F.cross_entropy(logits.transpose(1, 2), tgt, ignore_index=-1, reduction="none")
        return -nll.sum(-1).view(B, 2)

    pol = lp(policy)
    with torch.no_grad():
        ref = lp(reference)
    ratio = pol - ref
    return F.softplus(-beta * (ratio[:, 0] - ratio[:, 1])).mean()


@valid(ex.check_dpo_loss)
def dpo_r19_valid_loop_where(policy, reference, x, y, beta):  # chosen and rejected in separate passes
    def lp(model, k):
        logits = model(x[:, k])[0]
        t = y[:, k]
        tok = torch.log_softmax(logits, -1).gather(-1, torch.where(t < 0, 0, t)[..., None])[..., 0]
        return torch.where(t != -1, tok, torch.zeros_like(tok)).sum(-1)

    pc, pr = lp(policy, 0), lp(policy, 1)
    with torch.no_grad():
        rc, rr = lp(reference.eval(), 0), lp(reference, 1)
    return -torch.log(torch.sigmoid(beta * ((pc - rc) - (pr - rr)))).mean()


@valid(ex.check_dpo_loss)
def dpo_r19_valid_detached_ref(policy, reference, x, y, beta):  # detach instead of no_grad
    B, _, T = x.shape
    idx, tgt = x.reshape(-1, T), y.reshape(-1, T)
    keep = tgt.ne(-1)

    def lp(model):
        logp = model(idx)[0].log_softmax(dim=-1)
        return torch.einsum("nt,nt->n", logp.gather(2, tgt.clamp_min(0)[..., None]).squeeze(-1), keep.float())

    d = lp(policy) - lp(reference).detach()
    d = d.view(B, 2)
    return -F.logsigmoid(beta * (d[:, 0] - d[:, 1])).mean()


# ------------------------------------------------------------------------------------------ group advantages
@mistake(ex.check_group_advantages, r"unbiased|biased|population|correction|N-1|ddof")
def adv_r19_population_std(rewards, normalize_std=True):
    a = rewards - rewards.mean(1, keepdim=True)
    if normalize_std:
        a = a / (rewards.std(1, keepdim=True, unbiased=False) + 1e-4)
    return a


@mistake(ex.check_group_advantages, r"dim|axis|group|prompt|column")
def adv_r19_dim0(rewards, normalize_std=True):
    mu, sd = rewards.mean(0, keepdim=True), rewards.std(0, keepdim=True)
    return (rewards - mu) / (sd + 1e-4) if normalize_std else rewards - mu


@mistake(ex.check_group_advantages, r"global|batch|whole|all|group")
def adv_r19_global_std(rewards, normalize_std=True):  # group mean, but the std of the whole batch
    out = rewards - rewards.mean(dim=-1, keepdim=True)
    return out / (rewards.std() + 1e-4) if normalize_std else out


@mistake(ex.check_group_advantages, r"eps|nan|zero|equal|divi")
def adv_r19_no_eps(rewards, normalize_std=True):
    out = rewards - rewards.mean(dim=1, keepdim=True)
    return out / rewards.std(dim=1, keepdim=True) if normalize_std else out


@mistake(ex.check_group_advantages, r"normalize_std|flag|ignor|always")
def adv_r19_ignores_flag(rewards, normalize_std=True):
    return (rewards - rewards.mean(1, keepdim=True)) / (rewards.std(1, keepdim=True) + 1e-4)


@mistake(ex.check_group_advantages, r"normalize_std|flag|std|never|divid")
def adv_r19_never_divides(rewards, normalize_std=True):
    return rewards - rewards.mean(1, keepdim=True)


@mistake(ex.check_group_advantages, r"keepdim|broadcast|shape|dim|transpose")
def adv_r19_no_keepdim(rewards, normalize_std=True):  # (P,) broadcast along the last axis
    out = rewards - rewards.mean(1)
    if normalize_std:
        out = out / (rewards.std(1) + 1e-4)
    return out


@mistake(ex.check_group_advantages, r"range|max|min|std")
def adv_r19_range(rewards, normalize_std=True):  # max - min instead of the std
    out = rewards - rewards.mean(1, keepdim=True)
    if normalize_std:
        out = out / (rewards.amax(1, keepdim=True) - rewards.amin(1, keepdim=True) + 1e-4)
    return out


@mistake(ex.check_group_advantages, r"leave.one.out|rloo|others|baseline|mean")
def adv_r19_leave_one_out(rewards, normalize_std=True):  # RLOO's baseline, not the group mean
    G = rewards.shape[1]
    base = (rewards.sum(1, keepdim=True) - rewards) / (G - 1)
    out = rewards - base
    return out / (rewards.std(1, keepdim=True) + 1e-4) if normalize_std else out


@mistake(ex.check_group_advantages, r"dtype|float64|double|type")
def adv_r19_numpy_float64(rewards, normalize_std=True):  # numpy round trip in float64
    r = rewards.detach().cpu().numpy().astype(np.float64)
    out = r - r.mean(axis=1, keepdims=True)
    if normalize_std:
        out = out / (r.std(axis=1, ddof=1, keepdims=True) + 1e-4)
    return torch.from_numpy(out)


@mistake(ex.check_group_advantages, r"shape|dim|unsqueeze|extra")
def adv_r19_extra_dim(rewards, normalize_std=True):
    out = rewards.unsqueeze(-1) - rewards.mean(1, keepdim=True).unsqueeze(-1)
    if normalize_std:
        out = out / (rewards.std(1, keepdim=True).unsqueeze(-1) + 1e-4)
    return out


@mistake(ex.check_group_advantages, r"unbiased|population|pstdev|biased|correction")
def adv_r19_pstdev_loop(rewards, normalize_std=True):  # statistics.pstdev is the population std
    rows = []
    for group in rewards.tolist():
        m = statistics.fmean(group)
        s = statistics.pstdev(group) if normalize_std else None
        rows.append([(g - m) / (s + 1e-4) if normalize_std else g - m for g in group])
    return torch.tensor(rows, dtype=rewards.dtype)


@mistake(ex.check_group_advantages, r"eps|large|epsilon")
def adv_r19_big_eps(rewards, normalize_std=True):  # eps = 0.1 is not small next to a std of order 1
    out = rewards - rewards.mean(1, keepdim=True)
    return out / (rewards.std(1, keepdim=True) + 0.1) if normalize_std else out


@mistake(ex.check_group_advantages, r"reshape|transpose|view|group|dim|layout")
def adv_r19_view_not_transpose(rewards, normalize_std=True):  # view (G, P) then stats over dim 0 then back
    P, G = rewards.shape
    r = rewards.reshape(G, P)
    mu, sd = r.mean(0, keepdim=True), r.std(0, keepdim=True)
    out = (r - mu) / (sd + 1e-4) if normalize_std else r - mu
    return out.reshape(P, G)


@mistake(ex.check_group_advantages, r"in.?place|input|mutat|modif")
def adv_r19_inplace(rewards, normalize_std=True):  # subtracts in place: the caller's rewards change
    rewards -= rewards.mean(1, keepdim=True)
    if normalize_std:
        rewards /= rewards.std(1, keepdim=True) + 1e-4
    return rewards


@mistake(ex.check_group_advantages, r"unbiased|population|dim|axis|group")  # double slip: dim 0 and ddof 0
def adv_r19_double(rewards, normalize_std=True):
    out = rewards - rewards.mean(0)
    return out / (rewards.std(0, correction=0) + 1e-4) if normalize_std else out


@mistake(ex.check_group_advantages, r"mean|divid|std|scale|normali")
def adv_r19_divides_by_mean(rewards, normalize_std=True):  # divides by the mean (a "relative" advantage)
    mu = rewards.mean(1, keepdim=True)
    return (rewards - mu) / (mu.abs() + 1e-4) if normalize_std else rewards - mu


@valid(ex.check_group_advantages)
def adv_r19_valid_var_mean(rewards, normalize_std=True):
    var, mu = torch.var_mean(rewards, dim=1, keepdim=True, correction=1)
    out = rewards - mu
    return out / (var.sqrt() + 1e-6) if normalize_std else out


@valid(ex.check_group_advantages)
def adv_r19_valid_stdev_loop(rewards, normalize_std=True):  # statistics.stdev is the unbiased one
    out = torch.empty_like(rewards)
    for i, group in enumerate(rewards.tolist()):
        m = statistics.fmean(group)
        s = statistics.stdev(group) if normalize_std else 0.0
        out[i] = torch.tensor([(g - m) / (s + 1e-4) if normalize_std else g - m for g in group])
    return out


@valid(ex.check_group_advantages)
def adv_r19_valid_einsum_centering(rewards, normalize_std=True):  # (I - 1/G) centring as a matrix product
    G = rewards.shape[1]
    C = torch.eye(G, dtype=rewards.dtype) - 1.0 / G
    out = torch.einsum("pg,gh->ph", rewards, C)
    if normalize_std:
        out = out / (torch.sqrt((out ** 2).sum(1, keepdim=True) / (G - 1)) + 1e-4)
    return out
