"""The held-out probe, round 14, post part continued: the DPO loss and GRPO's group advantages (w24t; see
heldout_probe_round14_post.py for the angle). Imported at the end of that file, so the rows follow its rows."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import mingpt.exercises as ex

from heldout_probe_models import mistake, valid
from heldout_probe_round14_post import IGNORE, named


# ------------------------------------------------------------------------------------------ DPO
def token_logps(logits, targets):
    logp = F.log_softmax(logits, dim=-1)
    return logp.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)


def dpo(name, seq=None, margin=None, final=None, ref_grad=False, flatten=None, pol_grad=True):
    """The notebook's solution with knobs: seq(logits, targets) -> (N,) log p(answer), margin(pi, ref) -> (B,),
    final(margin, beta) -> the loss, flatten(x) -> (2B, T)."""
    seq = seq or (lambda lg, t: (token_logps(lg, t) * (t != IGNORE)).sum(-1))
    margin = margin or (lambda pi, ref: (pi[:, 0] - ref[:, 0]) - (pi[:, 1] - ref[:, 1]))
    final = final or (lambda m, beta: -F.logsigmoid(beta * m).mean())
    flatten = flatten or (lambda t: t.reshape(-1, t.size(-1)))

    def f(policy, reference, x, y, beta):
        B = x.size(0)
        idx, targets = flatten(x), flatten(y)

        def logps(model):
            return seq(model(idx)[0], targets).view(B, 2)

        with torch.set_grad_enabled(pol_grad):
            pi = logps(policy)
        with torch.set_grad_enabled(ref_grad):
            ref = logps(reference)
        return final(margin(pi, ref), beta)
    return named(name, f)


def masked_mean(lg, t):
    mask = (t != IGNORE)
    return (token_logps(lg, t) * mask).sum(-1) / mask.sum(-1)


mistake(ex.check_dpo_loss, r"mean|average|sum|length|per.token|normali")(dpo("mean_not_sum", seq=masked_mean))
mistake(ex.check_dpo_loss, r"mask|prompt|-1|ignore|every position|padding")(
    dpo("no_mask", seq=lambda lg, t: token_logps(lg, t).sum(-1)))
mistake(ex.check_dpo_loss, r"reference.*grad|grad.*reference|no_grad|frozen|detach")(dpo("ref_grad", ref_grad=True))
mistake(ex.check_dpo_loss, r"policy.*grad|grad.*policy|no_grad|detach|no gradient|graph")(
    dpo("policy_no_grad", pol_grad=False))
mistake(ex.check_dpo_loss, r"swap|chosen.*rejected|rejected.*chosen|revers|sign|order")(
    dpo("swapped", margin=lambda pi, ref: (pi[:, 1] - ref[:, 1]) - (pi[:, 0] - ref[:, 0])))
mistake(ex.check_dpo_loss, r"beta")(dpo("beta_outside", final=lambda m, beta: -beta * F.logsigmoid(m).mean()))
# Written as a mistake (inf for a very negative margin), judged valid after the untuned count: rounds 7, 12 and 13
# register -log(sigmoid(.)) as a valid way to write the loss, and the exercise's margins stay far from underflow.
valid(ex.check_dpo_loss)(
    dpo("log_of_sigmoid", final=lambda m, beta: -torch.log(torch.sigmoid(beta * m)).mean()))
mistake(ex.check_dpo_loss, r"sum|mean|batch|pairs")(dpo("sum_over_pairs", final=lambda m, beta: -F.logsigmoid(
    beta * m).sum()))
mistake(ex.check_dpo_loss, r"sign|negat|minus")(
    dpo("sign_flipped", final=lambda m, beta: F.logsigmoid(beta * m).mean()))
mistake(ex.check_dpo_loss, r"reference|ref|sign")(  # the reference's term with its sign slipped
    dpo("ref_sign", margin=lambda pi, ref: (pi[:, 0] - pi[:, 1]) - (ref[:, 1] - ref[:, 0])))
mistake(ex.check_dpo_loss, r"reference|ref")(dpo("no_reference", margin=lambda pi, ref: pi[:, 0] - pi[:, 1]))
mistake(ex.check_dpo_loss, r"shape|mean|0-d|scalar|per.pair|\(B,\)")(
    dpo("per_pair_losses", final=lambda m, beta: -F.logsigmoid(beta * m)))
mistake(ex.check_dpo_loss, r"order|reshape|transpos|pair|interleav|layout|mix")(  # chosen rows first, then rejected
    dpo("rows_time_major", flatten=lambda t: t.transpose(0, 1).reshape(-1, t.size(-1))))
mistake(ex.check_dpo_loss, r"dim|softmax|axis|normali|vocab")(  # F.softmax without dim: dim 0 on a 3-D tensor
    dpo("softmax_no_dim", seq=lambda lg, t: (torch.log(F.softmax(lg)).gather(
        -1, t.clamp(min=0).unsqueeze(-1)).squeeze(-1) * (t != IGNORE)).sum(-1)))
mistake(ex.check_dpo_loss, r"dim|axis|vocab|time")(
    dpo("log_softmax_time", seq=lambda lg, t: (F.log_softmax(lg, dim=1).gather(
        -1, t.clamp(min=0).unsqueeze(-1)).squeeze(-1) * (t != IGNORE)).sum(-1)))
mistake(ex.check_dpo_loss, r"shift|twice|off.by|already")(  # TRL's get_batch_logps shift, on shifted targets
    dpo("shifted_again", seq=lambda lg, t: (token_logps(lg[:, :-1], t[:, 1:]) * (t[:, 1:] != IGNORE)).sum(-1)))
mistake(ex.check_dpo_loss, r"-1|clamp|index|ignore|out of bounds|gather")(
    dpo("gather_no_clamp", seq=lambda lg, t: (F.log_softmax(lg, -1).gather(-1, t.unsqueeze(-1)).squeeze(-1)
                                              * (t != IGNORE)).sum(-1)))
mistake(ex.check_dpo_loss, r"ignore.?index|-1|-100|out of bounds")(  # cross_entropy's default ignore_index=-100
    dpo("ce_default_ignore", seq=lambda lg, t: -F.cross_entropy(lg.transpose(1, 2), t, reduction="none").sum(-1)))
mistake(ex.check_dpo_loss, r"mean|average|sum|length|per.token|reduction")(  # reduction='mean' per row
    dpo("ce_row_mean", seq=lambda lg, t: torch.stack([-F.cross_entropy(lg[i], t[i], ignore_index=IGNORE)
                                                      for i in range(len(t))])))
mistake(ex.check_dpo_loss, r"label.?smooth|smooth")(dpo("ce_label_smoothing", seq=lambda lg, t: -F.cross_entropy(
    lg.transpose(1, 2), t, ignore_index=IGNORE, reduction="none", label_smoothing=0.1).sum(-1)))


@mistake(ex.check_dpo_loss, r"B ?= ?1|squeeze|shape|dim|single pair|one pair")
def squeeze_pairs(policy, reference, x, y, beta):  # (B, 2) squeezed: fails for one pair
    B, _, T = x.shape
    idx, t = x.reshape(-1, T), y.reshape(-1, T)
    pi = (token_logps(policy(idx)[0], t) * (t != IGNORE)).sum(-1).view(B, 2).squeeze()
    with torch.no_grad():
        ref = (token_logps(reference(idx)[0], t) * (t != IGNORE)).sum(-1).view(B, 2).squeeze()
    return -F.logsigmoid(beta * ((pi[:, 0] - ref[:, 0]) - (pi[:, 1] - ref[:, 1]))).mean()


_REF_CACHE = {}


@mistake(ex.check_dpo_loss, r"cache|stale|first call|state|previous|reference")
def ref_cached_on_first_call(policy, reference, x, y, beta):  # "the reference never changes, compute it once"
    B, _, T = x.shape
    idx, t = x.reshape(-1, T), y.reshape(-1, T)
    pi = (token_logps(policy(idx)[0], t) * (t != IGNORE)).sum(-1).view(B, 2)
    if "ref" not in _REF_CACHE or _REF_CACHE["ref"].shape != pi.shape:
        with torch.no_grad():
            _REF_CACHE["ref"] = (token_logps(reference(idx)[0], t) * (t != IGNORE)).sum(-1).view(B, 2)
    ref = _REF_CACHE["ref"]
    return -F.logsigmoid(beta * ((pi[:, 0] - ref[:, 0]) - (pi[:, 1] - ref[:, 1]))).mean()


valid(ex.check_dpo_loss)(dpo("ce_none_softplus", seq=lambda lg, t: -F.cross_entropy(
    lg.transpose(1, 2), t, ignore_index=IGNORE, reduction="none").sum(-1),
    final=lambda m, beta: F.softplus(-beta * m).mean()))


@valid(ex.check_dpo_loss)
def loop_over_pairs_detach(policy, reference, x, y, beta):
    losses = []
    for xb, yb in zip(x, y):  # (2, T) each
        mask = yb != IGNORE
        pi = (F.log_softmax(policy(xb)[0], -1).gather(-1, yb.clamp(min=0)[..., None])[..., 0] * mask).sum(-1)
        ref = (F.log_softmax(reference(xb)[0], -1).gather(-1, yb.clamp(min=0)[..., None])[..., 0] * mask).sum(-1)
        ref = ref.detach()
        chosen, rejected = beta * (pi - ref)
        losses.append(-F.logsigmoid(chosen - rejected))
    return torch.stack(losses).mean()


# ------------------------------------------------------------------------------------------ group advantages
def adv(name, centre=None, spread=None, flag=lambda n: n, eps=1e-4):
    """The notebook's solution with knobs: centre(r) -> the baseline, spread(r) -> the std, flag(normalize_std)."""
    centre = centre or (lambda r: r.mean(dim=1, keepdim=True))
    spread = spread or (lambda r: r.std(dim=1, keepdim=True))

    def f(rewards, normalize_std=True):
        a = rewards - centre(rewards)
        return a / (spread(rewards) + eps) if flag(normalize_std) else a
    return named(name, f)


mistake(ex.check_group_advantages, r"dim|axis|prompt|column|across|group")(
    adv("mean_dim0", centre=lambda r: r.mean(dim=0, keepdim=True)))
mistake(ex.check_group_advantages, r"std|global|group|batch|whole")(adv("global_std", spread=lambda r: r.std()))
mistake(ex.check_group_advantages, r"unbiased|biased|population|correction|N ?- ?1|ddof|G ?- ?1")(
    adv("population_std", spread=lambda r: r.std(dim=1, keepdim=True, unbiased=False)))
mistake(ex.check_group_advantages, r"unbiased|biased|population|correction|N ?- ?1|ddof|G ?- ?1")(
    adv("std_by_hand_over_G", spread=lambda r: (r - r.mean(1, keepdim=True)).pow(2).sum(1, keepdim=True).div(
        r.size(1)).sqrt()))
mistake(ex.check_group_advantages, r"nan|eps|equal|zero")(adv("no_eps", eps=0.0))
mistake(ex.check_group_advantages, r"keepdim|broadcast|shape|dim")(adv("mean_no_keepdim", centre=lambda r: r.mean(1)))
mistake(ex.check_group_advantages, r"normalize_std|flag|argument|ignor|always")(
    adv("flag_ignored", flag=lambda n: True))
mistake(ex.check_group_advantages, r"normalize_std|flag|invert|revers|opposite")(
    adv("flag_inverted", flag=lambda n: not n))
mistake(ex.check_group_advantages, r"floor|integer|//|mean|round")(
    adv("mean_floor_div", centre=lambda r: r.sum(1, keepdim=True) // r.size(1)))
mistake(ex.check_group_advantages, r"leave.one.out|rloo|other|G ?/ ?\(G ?- ?1\)|scal|G ?- ?1")(
    adv("rloo_baseline", centre=lambda r: (r.sum(1, keepdim=True) - r) / (r.size(1) - 1)))
mistake(ex.check_group_advantages, r"norm|l2|sqrt|std")(named("f_normalize", lambda r, normalize_std=True: F.normalize(
    r - r.mean(1, keepdim=True), dim=1) if normalize_std else r - r.mean(1, keepdim=True)))


# Written as a mistake, judged valid after the untuned count: the exercise takes any small eps (the checker's
# policy: 1e-8 ... 1e-4, or a clamp), and eps inside and outside the sqrt is a small eps at any sensible reward scale.
@valid(ex.check_group_advantages)
def eps_inside_and_outside(rewards, normalize_std=True):  # "fixed" a NaN by adding eps in two places
    a = rewards - rewards.mean(1, keepdim=True)
    if normalize_std:
        a = a / (torch.sqrt(rewards.var(1, keepdim=True) + 1e-4) + 1e-4)
    return a


@mistake(ex.check_group_advantages, r"in.place|input|modif|mutat|rewards")
def in_place_on_rewards(rewards, normalize_std=True):
    rewards -= rewards.mean(1, keepdim=True)
    if normalize_std:
        rewards /= rewards.std(1, keepdim=True) + 1e-4
    return rewards


@mistake(ex.check_group_advantages, r"shape|flat|view|\(P, G\)|\(P \* G,?\)|dim")
def flattened(rewards, normalize_std=True):  # what the GRPO loss wants later, returned too early
    a = rewards - rewards.mean(1, keepdim=True)
    return (a / (rewards.std(1, keepdim=True) + 1e-4) if normalize_std else a).view(-1)


@mistake(ex.check_group_advantages, r"squeeze|P ?= ?1|shape|dim|one prompt")
def squeezed_adv(rewards, normalize_std=True):
    a = (rewards - rewards.mean(1, keepdim=True)).squeeze()
    return a / (rewards.std(1, keepdim=True).squeeze() + 1e-4) if normalize_std else a


@mistake(ex.check_group_advantages, r"float64|double|dtype")
def returns_double(rewards, normalize_std=True):
    r = rewards.double()
    a = r - r.mean(1, keepdim=True)
    return a / (r.std(1, keepdim=True) + 1e-4) if normalize_std else a


_BASELINE = {"mean": None}


@mistake(ex.check_group_advantages, r"state|call|running|previous|baseline|group mean|its group")
def running_baseline(rewards, normalize_std=True):  # an EMA baseline kept across calls, as in REINFORCE tutorials
    m = rewards.mean(1, keepdim=True)
    if _BASELINE["mean"] is not None and _BASELINE["mean"].shape == m.shape:
        m = 0.9 * _BASELINE["mean"] + 0.1 * m
    _BASELINE["mean"] = m.detach()
    a = rewards - m
    return a / (rewards.std(1, keepdim=True) + 1e-4) if normalize_std else a


valid(ex.check_group_advantages)(named("transposed_twice", lambda r, normalize_std=True: (
    (r.T - r.mean(1)) / (r.std(1) + 1e-4)).T if normalize_std else (r.T - r.mean(1)).T))
valid(ex.check_group_advantages)(adv("eps_1e-6", eps=1e-6))


@valid(ex.check_group_advantages)
def loop_with_statistics(rewards, normalize_std=True):
    rows = []
    for g in rewards.float():
        a = g - g.mean()
        if normalize_std:
            a = a / (torch.var(g).sqrt() + 1e-4)  # torch.var is unbiased by default, as std
        rows.append(a)
    return torch.stack(rows)
