"""The held-out probe, round 17, post part 2: the DPO loss (see heldout_probe_round17_post.py)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import mingpt.exercises as ex
from heldout_probe_models import mistake, valid


def _rows(x, y):
    B, _, T = x.shape
    return B, x.reshape(2 * B, T), y.reshape(2 * B, T)


def _seq_logps(model, idx, targets):
    logp = F.log_softmax(model(idx)[0], dim=-1)
    tok = logp.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (tok * (targets != -1)).sum(-1)


# ---------------------------------------------------------------------------------------------------- DPO loss
@mistake(ex.check_dpo_loss, r"mean|average|sum|length|per.token")
def dpo_mean_over_tokens(policy, reference, x, y, beta):
    B, idx, targets = _rows(x, y)
    mask = (targets != -1).float()

    def logps(model):
        logp = F.log_softmax(model(idx)[0], dim=-1)
        tok = logp.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        return ((tok * mask).sum(-1) / mask.sum(-1)).view(B, 2)  # an average, not the answer's log-prob

    pi = logps(policy)
    with torch.no_grad():
        ref = logps(reference)
    return -F.logsigmoid(beta * ((pi[:, 0] - ref[:, 0]) - (pi[:, 1] - ref[:, 1]))).mean()


@mistake(ex.check_dpo_loss, r"mask|prompt|ignore|padding|-1")
def dpo_no_mask(policy, reference, x, y, beta):
    B, idx, targets = _rows(x, y)

    def logps(model):
        logp = F.log_softmax(model(idx)[0], dim=-1)
        return logp.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1).sum(-1).view(B, 2)  # every position

    pi = logps(policy)
    with torch.no_grad():
        ref = logps(reference)
    return -F.logsigmoid(beta * (pi[:, 0] - ref[:, 0] - pi[:, 1] + ref[:, 1])).mean()


@mistake(ex.check_dpo_loss, r"reference.*(grad|frozen)|no_grad|detach|frozen"
         r"|grad.*reference")  # widened after the untuned run: "gradients flow through the reference"
def dpo_reference_with_grad(policy, reference, x, y, beta):
    B, idx, targets = _rows(x, y)
    pi = _seq_logps(policy, idx, targets).view(B, 2)
    ref = _seq_logps(reference, idx, targets).view(B, 2)  # no torch.no_grad()
    return -F.logsigmoid(beta * ((pi[:, 0] - ref[:, 0]) - (pi[:, 1] - ref[:, 1]))).mean()


@mistake(ex.check_dpo_loss, r"swap|chosen.*rejected|rejected.*chosen|sign|order")
def dpo_chosen_rejected_swapped(policy, reference, x, y, beta):
    B, idx, targets = _rows(x, y)
    pi = _seq_logps(policy, idx, targets).view(B, 2)
    with torch.no_grad():
        ref = _seq_logps(reference, idx, targets).view(B, 2)
    chosen, rejected = pi[:, 1] - ref[:, 1], pi[:, 0] - ref[:, 0]  # rows read the wrong way round
    return -F.logsigmoid(beta * (chosen - rejected)).mean()


@mistake(ex.check_dpo_loss, r"beta")
def dpo_beta_outside(policy, reference, x, y, beta):
    B, idx, targets = _rows(x, y)
    pi = _seq_logps(policy, idx, targets).view(B, 2)
    with torch.no_grad():
        ref = _seq_logps(reference, idx, targets).view(B, 2)
    margin = (pi[:, 0] - ref[:, 0]) - (pi[:, 1] - ref[:, 1])
    return (-beta * F.logsigmoid(margin)).mean()


@mistake(ex.check_dpo_loss, r"beta")
def dpo_no_beta(policy, reference, x, y, beta):
    B, idx, targets = _rows(x, y)
    pi = _seq_logps(policy, idx, targets).view(B, 2)
    with torch.no_grad():
        ref = _seq_logps(reference, idx, targets).view(B, 2)
    return -F.logsigmoid((pi[:, 0] - ref[:, 0]) - (pi[:, 1] - ref[:, 1])).mean()


@mistake(ex.check_dpo_loss, r"sum|mean|pairs|batch")
def dpo_sum_over_pairs(policy, reference, x, y, beta):
    B, idx, targets = _rows(x, y)
    pi = _seq_logps(policy, idx, targets).view(B, 2)
    with torch.no_grad():
        ref = _seq_logps(reference, idx, targets).view(B, 2)
    return -F.logsigmoid(beta * ((pi[:, 0] - ref[:, 0]) - (pi[:, 1] - ref[:, 1]))).sum()


@mistake(ex.check_dpo_loss, r"softmax|logits|normali")
def dpo_raw_logits(policy, reference, x, y, beta):
    B, idx, targets = _rows(x, y)
    mask = targets != -1

    def logps(model):
        logits = model(idx)[0]  # log_softmax forgotten
        return (logits.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1) * mask).sum(-1).view(B, 2)

    pi = logps(policy)
    with torch.no_grad():
        ref = logps(reference)
    return -F.logsigmoid(beta * ((pi[:, 0] - ref[:, 0]) - (pi[:, 1] - ref[:, 1]))).mean()


@mistake(ex.check_dpo_loss, r"softmax|prob|\blog\b|log.?prob")
def dpo_probabilities(policy, reference, x, y, beta):
    B, idx, targets = _rows(x, y)
    mask = targets != -1

    def logps(model):
        probs = torch.softmax(model(idx)[0], dim=-1)  # probabilities summed, not log-probabilities
        return (probs.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1) * mask).sum(-1).view(B, 2)

    pi = logps(policy)
    with torch.no_grad():
        ref = logps(reference)
    return -F.logsigmoid(beta * ((pi[:, 0] - ref[:, 0]) - (pi[:, 1] - ref[:, 1]))).mean()


@mistake(ex.check_dpo_loss, r"reference")
def dpo_no_reference(policy, reference, x, y, beta):
    B, idx, targets = _rows(x, y)
    pi = _seq_logps(policy, idx, targets).view(B, 2)
    return -F.logsigmoid(beta * (pi[:, 0] - pi[:, 1])).mean()  # the reference never used


@mistake(ex.check_dpo_loss, r"sign|negat|minus")
def dpo_loss_sign(policy, reference, x, y, beta):
    B, idx, targets = _rows(x, y)
    pi = _seq_logps(policy, idx, targets).view(B, 2)
    with torch.no_grad():
        ref = _seq_logps(reference, idx, targets).view(B, 2)
    return F.logsigmoid(beta * ((pi[:, 0] - ref[:, 0]) - (pi[:, 1] - ref[:, 1]))).mean()


@mistake(ex.check_dpo_loss, r"sign|negat|swap|nll|cross.?entropy|chosen.*rejected")
def dpo_nll_as_logp(policy, reference, x, y, beta):
    B, idx, targets = _rows(x, y)

    def logps(model):
        logits = model(idx)[0]
        nll = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-1, reduction="none")
        return nll.view(2 * B, -1).sum(-1).view(B, 2)  # the NLL is minus the log-prob

    pi = logps(policy)
    with torch.no_grad():
        ref = logps(reference)
    return -F.logsigmoid(beta * ((pi[:, 0] - ref[:, 0]) - (pi[:, 1] - ref[:, 1]))).mean()


@mistake(ex.check_dpo_loss, r"shift|off.by.one|align")
def dpo_shifted_again(policy, reference, x, y, beta):
    B, idx, targets = _rows(x, y)

    def logps(model):
        logits = model(idx)[0][:, :-1]  # shifted as in pretraining, but y is already the next token
        t = targets[:, 1:]
        logp = F.log_softmax(logits, dim=-1).gather(-1, t.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        return (logp * (t != -1)).sum(-1).view(B, 2)

    pi = logps(policy)
    with torch.no_grad():
        ref = logps(reference)
    return -F.logsigmoid(beta * ((pi[:, 0] - ref[:, 0]) - (pi[:, 1] - ref[:, 1]))).mean()


@mistake(ex.check_dpo_loss, r"dim|axis|softmax")
def dpo_softmax_wrong_dim(policy, reference, x, y, beta):
    B, idx, targets = _rows(x, y)

    def logps(model):
        logp = F.log_softmax(model(idx)[0], dim=1)  # over the positions, not the vocabulary
        tok = logp.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        return (tok * (targets != -1)).sum(-1).view(B, 2)

    pi = logps(policy)
    with torch.no_grad():
        ref = logps(reference)
    return -F.logsigmoid(beta * ((pi[:, 0] - ref[:, 0]) - (pi[:, 1] - ref[:, 1]))).mean()


@mistake(ex.check_dpo_loss, r"mask|token 0|\b0\b|ignore|id")
def dpo_mask_positive_ids(policy, reference, x, y, beta):
    B, idx, targets = _rows(x, y)
    mask = targets > 0  # drops the answer tokens whose id is 0

    def logps(model):
        logp = F.log_softmax(model(idx)[0], dim=-1)
        return (logp.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1) * mask).sum(-1).view(B, 2)

    pi = logps(policy)
    with torch.no_grad():
        ref = logps(reference)
    return -F.logsigmoid(beta * ((pi[:, 0] - ref[:, 0]) - (pi[:, 1] - ref[:, 1]))).mean()


@mistake(ex.check_dpo_loss, r"pair|order|reshape|rows|view|layout")
def dpo_pairs_transposed(policy, reference, x, y, beta):
    B, _, T = x.shape
    idx = x.transpose(0, 1).reshape(2 * B, T)  # all chosen rows first, then all rejected
    targets = y.transpose(0, 1).reshape(2 * B, T)
    pi = _seq_logps(policy, idx, targets).view(B, 2)  # ...but read back as (chosen, rejected) pairs
    with torch.no_grad():
        ref = _seq_logps(reference, idx, targets).view(B, 2)
    return -F.logsigmoid(beta * ((pi[:, 0] - ref[:, 0]) - (pi[:, 1] - ref[:, 1]))).mean()


@mistake(ex.check_dpo_loss, r"mean|average|reference|no_grad|frozen|grad")  # double: token mean + ref has grad
def dpo_token_mean_and_ref_grad(policy, reference, x, y, beta):
    B, idx, targets = _rows(x, y)
    mask = targets != -1

    def logps(model):
        logp = F.log_softmax(model(idx)[0], dim=-1).gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        return ((logp * mask).sum(-1) / mask.sum(-1)).view(B, 2)

    pi, ref = logps(policy), logps(reference)
    return -F.logsigmoid(beta * ((pi[:, 0] - ref[:, 0]) - (pi[:, 1] - ref[:, 1]))).mean()


@mistake(ex.check_dpo_loss, r"beta|sum|mean")  # double: no beta and a sum over pairs
def dpo_no_beta_sum(policy, reference, x, y, beta):
    B, idx, targets = _rows(x, y)
    pi = _seq_logps(policy, idx, targets).view(B, 2)
    with torch.no_grad():
        ref = _seq_logps(reference, idx, targets).view(B, 2)
    return -F.logsigmoid((pi[:, 0] - ref[:, 0]) - (pi[:, 1] - ref[:, 1])).sum()


@mistake(ex.check_dpo_loss, r"policy.*grad|grad.*policy|no_grad|detach|gradient")
def dpo_all_no_grad(policy, reference, x, y, beta):
    B, idx, targets = _rows(x, y)
    with torch.no_grad():  # the policy's log-probs too: nothing to train
        pi = _seq_logps(policy, idx, targets).view(B, 2)
        ref = _seq_logps(reference, idx, targets).view(B, 2)
    return -F.logsigmoid(beta * ((pi[:, 0] - ref[:, 0]) - (pi[:, 1] - ref[:, 1]))).mean()


@valid(ex.check_dpo_loss)
def dpo_cross_entropy(policy, reference, x, y, beta):
    B, idx, targets = _rows(x, y)

    def logps(model):
        logits = model(idx)[0]
        nll = F.cross_entropy(logits.transpose(1, 2), targets, ignore_index=-1, reduction="none")  # (2B, T)
        return -nll.sum(-1).view(B, 2)

    pi = logps(policy)
    with torch.no_grad():
        ref = logps(reference)
    logits = beta * ((pi[:, 0] - pi[:, 1]) - (ref[:, 0] - ref[:, 1]))
    return F.softplus(-logits).mean()


@valid(ex.check_dpo_loss)
def dpo_per_pair_loop(policy, reference, x, y, beta):
    losses = []
    for b in range(x.shape[0]):
        def logp(model, row):
            lp = torch.log_softmax(model(x[b, row][None])[0][0], dim=-1)  # (T, V)
            total = 0.0
            for t in range(y.shape[-1]):
                if y[b, row, t] != -1:
                    total = total + lp[t, y[b, row, t]]
            return total
        with torch.no_grad():
            ref_c, ref_r = logp(reference, 0), logp(reference, 1)
        pi_c, pi_r = logp(policy, 0), logp(policy, 1)
        losses.append(-torch.log(torch.sigmoid(beta * ((pi_c - ref_c) - (pi_r - ref_r)))))
    return torch.stack(losses).mean()


@valid(ex.check_dpo_loss)
def dpo_chosen_rejected_calls(policy, reference, x, y, beta):
    def logps(model, xs, ys):
        logp = model(xs)[0].log_softmax(-1)
        mask = ys.ne(-1)
        return torch.where(mask, logp.gather(2, ys.masked_fill(~mask, 0)[..., None])[..., 0], 0.0).sum(1)

    pc, pr = logps(policy, x[:, 0], y[:, 0]), logps(policy, x[:, 1], y[:, 1])
    rc, rr = (logps(reference, x[:, 0], y[:, 0]).detach(), logps(reference, x[:, 1], y[:, 1]).detach())
    return -F.logsigmoid(beta * (pc - rc) - beta * (pr - rr)).mean()


import heldout_probe_round17_post3  # noqa: E402,F401
