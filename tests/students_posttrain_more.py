"""
Students for the post-training checkers' rows added with held-out round 12 (w24l): each written the way a student
writes the slip, not by calling the checker's rebuilt variant. tests/test_posttrain_exercises.py merges them into
its tables of students, so that every row of each checker's table keeps a student that must get exactly its name.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


# ------------------------------------------------------------------------------------------ SFT
def _keep(mask_of):
    """A student's targets with the mask written as a function of (is the input the assistant's, is the target)."""
    return lambda ids, a: (ids[:-1], torch.where(mask_of(a[:-1], a[1:]), ids[1:], torch.full_like(ids[1:], -1)))


def _only_reply(which):
    def student(ids, a):
        starts = [t for t in range(1, len(a)) if a[t] and not a[t - 1]]  # each reply's first token
        start, end = starts[which], (starts + [len(a)])[which + 1] if which == 0 else len(a)
        y = torch.full_like(ids[1:], -1)
        y[start - 1:end - 1] = torch.where(a[start:end], ids[start:end], -1)
        return ids[:-1], y
    return student


MORE_SFT = {
    "the labels are not shifted (Hugging Face's models shift inside; mingpt's GPT does not)":
        lambda ids, a: (ids[:-1], torch.where(a, ids, -1)[:-1]),
    "only the last reply is trained (the earlier assistant turns are masked)": _only_reply(-1),
    "only the first reply is trained (the later assistant turns are masked)": _only_reply(0),
    "the mask is is_assistant[:-1] & is_assistant[1:] (each reply's first token is not trained), not "
    "is_assistant[1:]": _keep(lambda i, o: i & o),
    "the mask is is_assistant[:-1] | is_assistant[1:] (the token after each reply's END is trained too), not "
    "is_assistant[1:]": _keep(lambda i, o: i | o),
    "the mask is empty (every target is -1), not is_assistant[1:]": lambda ids, a: (ids[:-1],
                                                                                    torch.full_like(ids[1:], -1)),
    "the mask is ~is_assistant[:-1] (the unshifted mask, inverted), not is_assistant[1:]": _keep(lambda i, o: ~i),
    "the mask is is_assistant[:-1] ^ is_assistant[1:] (only where the speaker changes), not is_assistant[1:]":
        _keep(lambda i, o: i != o),
    "the mask is is_assistant[1:] & ~is_assistant[:-1] (only each reply's first token), not is_assistant[1:]":
        _keep(lambda i, o: o & ~i),
    "the mask is is_assistant[:-1] & ~is_assistant[1:] (only the token after each reply), not is_assistant[1:]":
        _keep(lambda i, o: i & ~o),
}


# ------------------------------------------------------------------------------------------ DPO
def _dpo(policy, reference, x, y, beta, loss="dpo", shift_again=False, dim=-1, whole_row=False, model_loss=False,
         beta_policy_only=False):
    B, _, T = x.shape
    idx, t = x.reshape(2 * B, T), y.reshape(2 * B, T)

    def logps(model):
        if model_loss:  # "log p = -loss": the model's mean cross-entropy over all chosen (or rejected) rows
            return torch.stack([-model(x[:, 0], y[:, 0])[1], -model(x[:, 1], y[:, 1])[1]]).expand(B, 2)
        logits, targets = model(idx)[0], t
        if whole_row:
            logits, targets = logits[:, :-1], idx[:, 1:]
        if shift_again:  # TRL's get_batch_logps, written for labels = input ids
            logits, targets = logits[:, :-1], targets[:, 1:]
        mask = targets != -1
        lp = F.log_softmax(logits, dim=dim).gather(-1, targets.clamp(min=0)[..., None]).squeeze(-1)
        return (lp * mask).sum(-1).view(B, 2)

    pi = logps(policy)
    with torch.no_grad():
        ref = logps(reference)
    h = (pi[:, 0] - ref[:, 0]) - (pi[:, 1] - ref[:, 1])
    z = beta * (pi[:, 0] - pi[:, 1]) - (ref[:, 0] - ref[:, 1]) if beta_policy_only else beta * h
    losses = {"dpo": -F.logsigmoid(z), "sigmoid": -torch.sigmoid(z), "one_minus": 1 - torch.sigmoid(z),
              "hinge": torch.relu(1 - z), "ipo": (h - 1 / (2 * beta)) ** 2}[loss]
    return losses.mean()


MORE_DPO = {
    "log-probs shifted a second time (y is already the next token)": lambda *a: _dpo(*a, shift_again=True),
    "log_softmax over the time axis, not the vocabulary": lambda *a: _dpo(*a, dim=1),
    "y ignored: log-probs of x's next tokens over the whole row (prompt and padding counted)":
        lambda *a: _dpo(*a, whole_row=True),
    "the model's own loss used as a log-prob: one mean over all the batch's answer tokens":
        lambda *a: _dpo(*a, model_loss=True),
    "sigmoid where log-sigmoid is asked (-sigmoid(beta * margin))": lambda *a: _dpo(*a, loss="sigmoid"),
    "1 - sigmoid where -log sigmoid is asked": lambda *a: _dpo(*a, loss="one_minus"),
    "the hinge loss (SLiC's, TRL's loss_type='hinge') instead of DPO's -log sigmoid": lambda *a: _dpo(*a, loss="hinge"),
    "IPO's squared loss (TRL's loss_type='ipo') instead of DPO's -log sigmoid": lambda *a: _dpo(*a, loss="ipo"),
    "beta multiplies the policy's log-probs only, not the reference's": lambda *a: _dpo(*a, beta_policy_only=True),
}


# ------------------------------------------------------------------------------------------ GRPO advantages
def _trl_repeat(rewards, normalize_std):
    P, G = rewards.shape
    flat = rewards.flatten()
    mean, std = rewards.mean(1).repeat(G), rewards.std(1).repeat(G)  # repeat where repeat_interleave is needed
    a = flat - mean
    return (a / (std + 1e-4) if normalize_std else a).view(P, G)


def _bernoulli(rewards, normalize_std):
    p = rewards.mean(1, keepdim=True)
    a = rewards - p
    return a / ((p * (1 - p)).sqrt() + 1e-4) if normalize_std else a


def _centred_on(best):
    def student(r, s):
        a = r - (r.max(1, keepdim=True).values if best else r.min(1, keepdim=True).values)
        return a / (r.std(1, keepdim=True) + 1e-4) if s else a
    return student


MORE_ADVANTAGE = {
    "centred on the group's best reward (max), not its mean": _centred_on(best=True),
    "centred on the group's worst reward (min), not its mean": _centred_on(best=False),
    "each answer given another prompt's statistics (repeat where repeat_interleave is needed)": _trl_repeat,
    "the std as sqrt(p (1 - p)), right only for 0/1 rewards": _bernoulli,
}


# ------------------------------------------------------------------------------------------ round 13 (w24p)
def _sft_drop_last(ids, a):  # a loop that stops one short: the final END never gets its target
    x, y = ids[:-1], torch.full_like(ids[1:], -1)
    for t in range(len(ids) - 2):
        if a[t + 1]:
            y[t] = ids[t + 1]
    return x, y


def _sft_by_value(ids, a):  # keeps a target when its token occurs in some reply
    reply_tokens = set(ids[a].tolist())
    return ids[:-1], torch.tensor([t if t in reply_tokens else -1 for t in ids[1:].tolist()])


def _sft_through(dtype):
    return lambda ids, a: (ids[:-1], torch.where(a[1:], ids.to(dtype)[1:].long(), -1))


MORE_SFT.update({
    "the last target is masked (the final end of turn is not trained)": _sft_drop_last,
    "masked by token value (ids that also occur in a reply), not by position": _sft_by_value,
    "the ids pass through torch.uint8 (ids above 255 wrap around)": _sft_through(torch.uint8),
    "the ids pass through torch.int8 (ids above 127 wrap around)": _sft_through(torch.int8),
    "the ids pass through torch.int16 (ids above 32767 wrap around)": _sft_through(torch.int16),
})


def _dpo13(policy, reference, x, y, beta, keep=lambda t: t != -1, raw=False, blocked=False, mean_margin=False):
    B, _, T = x.shape
    if blocked:  # every chosen row, then every rejected one
        x, y = x.transpose(0, 1), y.transpose(0, 1)
    idx, targets = x.reshape(2 * B, T), y.reshape(2 * B, T)

    def logps(model):
        logits = model(idx)[0]
        scores = logits if raw else F.log_softmax(logits, -1)
        token = scores.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        return (token * keep(targets)).sum(-1).view(B, 2)

    pi = logps(policy)
    with torch.no_grad():
        ref = logps(reference)
    margin = (pi[:, 0] - ref[:, 0]) - (pi[:, 1] - ref[:, 1])
    return -F.logsigmoid(beta * margin.mean()) if mean_margin else -F.logsigmoid(beta * margin).mean()


MORE_DPO.update({
    "answer tokens of id 0 masked out (a mask y > 0 or y != 0, not y != -1)":
        lambda *a: _dpo13(*a, keep=lambda t: t > 0),
    "logits summed where log-probabilities are asked (no log_softmax)": lambda *a: _dpo13(*a, raw=True),
    "pairs mixed up: rows flattened as (2, B) (all chosen, then all rejected) but read back as (B, 2)":
        lambda *a: _dpo13(*a, blocked=True),
    "the margins averaged before the log-sigmoid, not the losses": lambda *a: _dpo13(*a, mean_margin=True),
})


def _flag_inverted(rewards, normalize_std=True):
    a = rewards - rewards.mean(1, keepdim=True)
    return a if normalize_std else a / (rewards.std(1, keepdim=True) + 1e-4)


def _rloo(rewards, normalize_std=True):
    baseline = (rewards.sum(1, keepdim=True) - rewards) / (rewards.size(1) - 1)
    a = rewards - baseline
    return a / (rewards.std(1, keepdim=True) + 1e-4) if normalize_std else a


MORE_ADVANTAGE.update({
    "normalize_std read the wrong way round (normalised only when it is False)": _flag_inverted,
    "centred on the mean of the *other* answers (RLOO's leave-one-out baseline), not the group's mean": _rloo,
})


# ------------------------------------------------------------------------------------------ round 14 (w24t)
def _shift_twice(pad_last):
    def student(ids, a):  # "the mask must move with the targets": moved once more than the targets
        keep = torch.cat([a[2:], a[-1:]]) if pad_last else F.pad(a[2:], (0, 1))
        return ids[:-1], ids[1:].masked_fill(~keep, -1)
    return student


def _loop_from_one(ids, a):  # the loop starts at 1: y[0] is never filled
    y = torch.full((len(ids) - 1,), -1, dtype=torch.long)
    for t in range(1, len(ids) - 1):
        if a[t + 1]:
            y[t] = ids[t + 1]
    return ids[:-1], y


MORE_SFT.update({
    "the mask is shifted twice (is_assistant[2:], its last flag repeated), not once": _shift_twice(True),
    "the mask is shifted twice (is_assistant[2:], padded with False), not once": _shift_twice(False),
    "the first target is always masked (y[0]: a loop that starts at 1?)": _loop_from_one,
})


def _dpo14(policy, reference, x, y, beta, logps):
    B, _, T = x.shape
    idx, t = x.reshape(-1, T), y.reshape(-1, T)
    pi = logps(policy(idx)[0], t).view(B, 2)
    with torch.no_grad():
        ref = logps(reference(idx)[0], t).view(B, 2)
    return -F.logsigmoid(beta * ((pi[:, 0] - ref[:, 0]) - (pi[:, 1] - ref[:, 1]))).mean()


def _softmax_no_dim(logits, t):  # F.softmax without dim: torch picks dim 0 on 3-D logits
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logp = torch.log(F.softmax(logits))
    return (logp.gather(-1, t.clamp(min=0)[..., None])[..., 0] * (t != -1)).sum(-1)


def _smoothed(eps):
    return lambda logits, t: -F.cross_entropy(logits.transpose(1, 2), t, ignore_index=-1, reduction="none",
                                              label_smoothing=eps).sum(-1)


MORE_DPO.update({
    "softmax over the batch axis (F.softmax / log_softmax without dim picks dim 0 for 3-D logits)":
        lambda *a: _dpo14(*a, logps=_softmax_no_dim),
    **{f"cross_entropy with label_smoothing={eps} used as the log-prob": lambda *a, eps=eps: _dpo14(
        *a, logps=_smoothed(eps)) for eps in (0.1, 0.05, 0.2)},
})


def _floor_mean(rewards, normalize_std=True):
    a = rewards - rewards.sum(dim=1, keepdim=True) // rewards.shape[1]
    return a / (rewards.std(dim=1, keepdim=True) + 1e-4) if normalize_std else a


def _l2_normalised(rewards, normalize_std=True):
    a = rewards - rewards.mean(dim=1, keepdim=True)
    return F.normalize(a, dim=1) if normalize_std else a


MORE_ADVANTAGE.update({
    "the group mean by floor division (sum // G): rounded down": _floor_mean,
    "divided by the L2 norm of the centred rewards (F.normalize), not the std: sqrt(G - 1) times too small":
        _l2_normalised,
})


# ------------------------------------------------------------------------------------------ round 15 (w24x)
def _sft_one_span(ids, a):  # one span from the first assistant token to the last: the user turns between trained
    where = a.nonzero().flatten()
    keep = torch.zeros_like(a)
    keep[where[0]: where[-1] + 1] = True
    return ids[:-1], torch.where(keep[1:], ids[1:], torch.full_like(ids[1:], -1))


def _half(dtype):  # log_softmax of logits cast to half precision (an autocast, a .half())
    return lambda logits, t: (F.log_softmax(logits.to(dtype), -1).gather(-1, t.clamp(min=0)[..., None])[..., 0]
                              .float() * (t != -1)).sum(-1)


MORE_SFT.update({
    "one span from the assistant's first token to its last (the user turns between replies trained too)":
        _sft_one_span,
})
MORE_DPO.update({
    f"log-probs computed in {name} (the logits cast to half precision)": lambda *a, dtype=dtype: _dpo14(
        *a, logps=_half(dtype)) for name, dtype in (("float16", torch.float16), ("bfloat16", torch.bfloat16))
})


# ------------------------------------------------------------------------------------------ round 16 (r16post)
def _sft_zero_by_value(ids, a):  # mask by multiplying, then "0 means masked": an answer token 0 is masked too
    y = ids[1:] * a[1:]
    y[y == 0] = -1
    return ids[:-1], y


def _dpo_policy_twice(policy, reference, x, y, beta):  # the reference's line copied from the policy's
    B, _, T = x.shape
    idx, t = x.reshape(2 * B, T), y.reshape(2 * B, T)

    def logps(model):
        lp = F.log_softmax(model(idx)[0], dim=-1).gather(-1, t.clamp(min=0)[..., None]).squeeze(-1)
        return (lp * (t != -1)).sum(-1).view(B, 2)
    pi = logps(policy)
    with torch.no_grad():
        ref = logps(policy)
    return -F.logsigmoid(beta * ((pi[:, 0] - ref[:, 0]) - (pi[:, 1] - ref[:, 1]))).mean()


def _adv_view(rewards, normalize_std):  # view(G, P) where a transpose was meant, statistics over its dim 0
    r = rewards.view(rewards.size(1), rewards.size(0))
    a = r - r.mean(0, keepdim=True)
    return (a / (r.std(0, keepdim=True) + 1e-4) if normalize_std else a).view(rewards.shape)


def _adv_loop(start, stop):  # a loop over the answers that misses one end of range(G)
    def student(rewards, normalize_std):
        out = torch.zeros_like(rewards)
        G = rewards.size(1)
        for g in range(start, G + stop):
            out[:, g] = rewards[:, g] - rewards.mean(1)
            if normalize_std:
                out[:, g] /= rewards.std(1) + 1e-4
        return out
    return student


MORE_SFT.update({
    "the assistant's tokens of id 0 masked too (y * mask, then 0 read as 'masked')": _sft_zero_by_value,
    "the mask broadcast against the targets: y is (T-1, T-1), not (T-1,) (the mask of shape (T-1, 1))":
        lambda ids, a: (ids[:-1], torch.where(a[1:].unsqueeze(-1), ids[1:], -1)),
    "the mask broadcast against the targets: y is (T-1, T-1), not (T-1,) (the targets of shape (T-1, 1))":
        lambda ids, a: (ids[:-1], torch.where(a[1:], ids[1:].unsqueeze(-1), -1)),
})
MORE_DPO.update({
    "the policy's log-probs used as the reference's (the margin is 0: the loss is log 2 for every pair)":
        _dpo_policy_twice,
})
MORE_ADVANTAGE.update({
    "groups mixed: the (P, G) rewards reshaped to (G, P) (a reshape/view where a transpose is needed)": _adv_view,
    "the last answer of each group left at 0 (a loop over range(G - 1))": _adv_loop(0, -1),
    "the first answer of each group left at 0 (a loop that starts at 1)": _adv_loop(1, 0),
})


class _MergeTransposedReshaped(torch.nn.Module):  # HF's Conv1D habit: the delta transposed, reshaped to fit W
    def __init__(self, base, r, alpha):
        super().__init__()
        self.base, self.scale, self.merged = base, alpha / r, False
        self.lora_A = torch.nn.Parameter(torch.randn(r, base.in_features) / base.in_features ** 0.5)
        self.lora_B = torch.nn.Parameter(torch.zeros(base.out_features, r))
        base.requires_grad_(False)

    def forward(self, x):
        out = self.base(x)
        return out if self.merged else out + self.scale * (x @ self.lora_A.T @ self.lora_B.T)

    @torch.no_grad()
    def merge(self):
        self.base.weight += self.scale * (self.lora_B @ self.lora_A).T.reshape(self.base.weight.shape)
        self.merged = True


MORE_LORA = {
    "merge adds (B A).T reshaped to the weight's shape: the correction's numbers scrambled": _MergeTransposedReshaped,
}


# ------------------------------------------------------------------------------------------ round 18 (look-alikes)
def _sft_rolled(wrap):  # the mask moved the wrong way: is_assistant[t-1] (roll(1)), wrapped or padded with False
    def sft(ids, a):
        keep = a.roll(1)[:-1] if wrap else torch.cat([torch.tensor([False]), a[:-2]])
        return ids[:-1], torch.where(keep, ids[1:], -1)
    return sft


def _adv_one_pass(bessel, clamp):  # the variance as E[r^2] - E[r]^2: cancels for rewards near 10^4
    def adv(r, s):
        G, m = r.size(1), r.mean(1, keepdim=True)
        var = (r * r).mean(1, keepdim=True) - m * m
        var = var * G / (G - 1) if bessel else var
        return (r - m) / ((var.clamp_min(0) if clamp else var).sqrt() + 1e-4) if s else r - m
    return adv


MORE_SFT.update({
    "the mask shifted the wrong way (is_assistant[t-1], is_assistant.roll(1), the last flag wrapped to the front), "
    "not is_assistant[t+1]": _sft_rolled(True),
    "the mask shifted the wrong way (is_assistant[t-1], padded with False at the front), not is_assistant[t+1]":
        _sft_rolled(False),
})
MORE_ADVANTAGE.update({
    f"the variance as E[r^2] - E[r]^2 ({how}): it cancels catastrophically for large rewards": _adv_one_pass(b, c)
    for b, c, how in ((True, True, "times G / (G - 1), clamped at 0"), (True, False, "times G / (G - 1)"),
                      (False, True, "the population variance, clamped at 0"), (False, False, "the population variance"))
})


def _dpo_row_mean(policy, reference, x, y, beta):  # token_logps.mean(-1): no mask, divided by T (round 19)
    B, _, T = x.shape

    def logps(model):
        lp = F.log_softmax(model(x.reshape(2 * B, T))[0], -1)
        return lp.gather(-1, y.reshape(2 * B, T).clamp(min=0).unsqueeze(-1)).squeeze(-1).mean(-1).view(B, 2)

    pi = logps(policy)
    with torch.no_grad():
        ref = logps(reference)
    return -F.logsigmoid(beta * ((pi[:, 0] - ref[:, 0]) - (pi[:, 1] - ref[:, 1]))).mean()


MORE_DPO.update({
    "log-probs averaged over the whole row (no mask: the prompt and padding counted, divided by T)": _dpo_row_mean,
})


# ------------------------------------------------------------------------------------------ round 20 (transplants)
def _sft_span_edges(widen):  # the END or the marker found from is_assistant's edges (by position, not by id)
    def sft(ids, a):
        after = torch.cat([a[1:], torch.tensor([False])])  # is the next token the assistant's too?
        keep = a | after if widen else a & after  # the token before each reply added, or each reply's last dropped
        return ids[:-1], ids[1:].masked_fill(~keep[1:], -1)
    return sft


def _dpo_smoothed(eps, robust):  # TRL's label_smoothing (cDPO) or loss_type="robust" copied into the exercise
    def loss(policy, reference, x, y, beta):
        B, _, T = x.shape
        t = y.reshape(2 * B, T)

        def logps(model):
            return -F.cross_entropy(model(x.reshape(2 * B, T))[0].transpose(1, 2), t, ignore_index=-1,
                                    reduction="none").sum(-1).view(B, 2)

        pi = logps(policy)
        with torch.no_grad():
            ref = logps(reference)
        z = beta * ((pi[:, 0] - ref[:, 0]) - (pi[:, 1] - ref[:, 1]))
        if robust:
            return ((-(1 - eps) * F.logsigmoid(z) + eps * F.logsigmoid(-z)) / (1 - 2 * eps)).mean()
        return (-(1 - eps) * F.logsigmoid(z) - eps * F.logsigmoid(-z)).mean()
    return loss


MORE_SFT.update({
    "the end-of-turn token is masked out (each reply's last token dropped from the mask)": _sft_span_edges(False),
    "the assistant's role marker is trained on (the token before each reply added to the mask)": _sft_span_edges(True),
})
MORE_DPO.update({
    **{f"label-smoothed DPO (cDPO, TRL's label_smoothing={eps}) instead of DPO's -log sigmoid":
       _dpo_smoothed(eps, False) for eps in (0.1, 0.05, 0.2)},
    **{f"robust DPO (TRL's loss_type='robust', label_smoothing={eps}) instead of DPO's -log sigmoid":
       _dpo_smoothed(eps, True) for eps in (0.1, 0.05, 0.2)},
})
