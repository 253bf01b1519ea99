"""
The DPO checker's tables (dpo.py): the loss rebuilt from parts (logps_of for the answers' log-probs, dpo_variant
for the rest), the named mistakes (DPO_MISTAKES), and the parts that compose two at a time (DPO_PARTS,
DPO_VARIANTS). Each row is (name, how to compute it, why it is wrong, the fix), read by compare.explain.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mingpt.exercises.checking import Variant
from mingpt.exercises.compare import Part, part_variants
from mingpt.model import IGNORE_INDEX

__all__ = ["BETA", "DPO_MISTAKES", "DPO_PARTS", "DPO_VARIANTS", "HINT", "OTHER_BETA", "SIGN_SWAPPED", "dpo_variant",
           "logps_of"]

HINT = "compare your code with the definition above the exercise, one step at a time"

BETA, OTHER_BETA = 0.3, 0.1  # the loss is checked at both


def logps_of(model, x, y, mean=False, unmasked=False, targets_from_x=False, probs=False, shift_again=False, dim=-1,
           whole_row=False, batch_mean=False, positive=False, raw=False, blocked=False, smoothing=0.0, dtype=None,
           row_mean=False, one_row_masked=None, drop_last=False, per_T=False):
    if blocked:  # (B, 2, T) flattened as (2, B, T): every chosen row, then every rejected one
        x, y = x.transpose(0, 1), y.transpose(0, 1)
    idx = x.flatten(0, 1)
    logits = model(idx)[0]  # (2B, T, V): rows chosen, rejected, chosen, ...
    if dtype is not None:  # half-precision logits (an autocast, a .half()): the log-probs rounded, then summed
        logits = logits.to(dtype)
    targets = y.flatten(0, 1)
    if whole_row:  # y ignored: each row's next tokens read off x, over every position (prompt and padding too)
        logits, targets = logits[:, :-1], idx[:, 1:]
    if shift_again:  # TRL's get_batch_logps shifts its labels (input ids) by one: y is already shifted
        logits, targets = logits[:, :-1], targets[:, 1:]
    mask = targets > 0 if positive else targets != IGNORE_INDEX
    if one_row_masked is not None:  # the mask applied to the chosen (0) or rejected (1) rows only
        rows = (torch.arange(mask.size(0)) % 2 != one_row_masked)[:, None]
        mask = mask | rows
    if drop_last:  # the last position never counted (a [:-1] slice, a loop over range(T - 1))
        mask = mask & (torch.arange(mask.size(-1)) < mask.size(-1) - 1)
    picked = torch.where(mask, idx, targets) if targets_from_x else targets
    scores = logits if raw else (F.softmax if probs else F.log_softmax)(logits, dim)
    token = scores.gather(-1, picked.clamp(min=0)[..., None]).squeeze(-1)
    if smoothing:  # -cross_entropy(label_smoothing=eps): (1 - eps) log p(y) + eps * the mean log p over the vocabulary
        token = (1 - smoothing) * token + smoothing * scores.mean(-1)
    if batch_mean:  # the model's own loss: one mean over the answer tokens of all the chosen (or rejected) rows
        per_answer = (token * mask).view(-1, 2, mask.size(-1)).sum((0, 2)) / mask.view(-1, 2, mask.size(-1)).sum((0, 2))
        return per_answer.expand(x.size(0), 2)
    token = token.float()
    if row_mean:  # token_logps.mean(-1): no mask, and divided by T (the prompt and padding counted)
        return token.mean(-1).view(-1, 2)
    per_row = token.sum(-1) if unmasked else (token * mask).sum(-1)
    if per_T:  # the masked sum divided by T, every row's length (prompt and padding counted in the count only)
        per_row = per_row / mask.size(-1)
    return (per_row / mask.sum(-1) if mean else per_row).view(-1, 2)


# the loss of the margin z = beta * (...) when it is not DPO's -log sigmoid(z): TRL's other loss_types, and slips
_LOSSES = {"sigmoid": lambda z, beta: -torch.sigmoid(z), "one_minus": lambda z, beta: 1 - torch.sigmoid(z),
           "hinge": lambda z, beta: torch.relu(1 - z), "ipo": lambda z, beta: (z / beta - 1 / (2 * beta)) ** 2}
# TRL's label_smoothing (conservative DPO): the preference label trusted with probability 1 - eps only, so eps of the
# loss pushes the other way; TRL's loss_type="robust" divides the same mix (the eps term's sign flipped) by 1 - 2 eps
SMOOTHING = (0.1, 0.05, 0.2)
_LOSSES.update({f"cdpo{eps}": lambda z, beta, e=eps: -(1 - e) * F.logsigmoid(z) - e * F.logsigmoid(-z)
                for eps in SMOOTHING})
_LOSSES.update({f"robust{eps}": lambda z, beta, e=eps: (-(1 - e) * F.logsigmoid(z) + e * F.logsigmoid(-z)) / (1 - 2 * e)
                for eps in SMOOTHING})


def dpo_variant(policy, reference, x, y, beta=BETA, logps=logps_of, no_ref=False, sign=1.0, reduce=torch.mean,
         logsigmoid=True, ref_grad=False, beta_rejected=None, ref_swapped=False, beta_outside=False, loss=None,
         beta_policy_only=False, mean_margin=False, ref_only=None, **kw):
    pi = logps(policy, x, y, **kw)
    with torch.enable_grad() if ref_grad else torch.no_grad():
        ref = torch.zeros_like(pi) if no_ref else logps(reference, x, y, **kw)
    if ref_only is not None:  # the reference's log-prob subtracted for one answer only (chosen 0, rejected 1)
        ref = ref * (torch.arange(2) == ref_only)
    if ref_swapped:  # the chosen answer's log-ratio taken against the reference's rejected answer, and vice versa
        ref = ref.flip(-1)
    scale, beta = (beta, 1.0) if beta_outside else (1.0, beta)
    margin = sign * (beta * (pi[:, 0] - ref[:, 0]) - (beta if beta_rejected is None else beta_rejected)
                     * (pi[:, 1] - ref[:, 1]))
    if beta_policy_only:  # beta * (pi_c - pi_r) - (ref_c - ref_r)
        margin = sign * (beta * (pi[:, 0] - pi[:, 1]) - (ref[:, 0] - ref[:, 1]))
    if mean_margin:  # one loss of the batch's mean margin
        margin = margin.mean()
    if loss is not None:
        return scale * reduce(_LOSSES[loss](margin, beta))
    return scale * reduce(-F.logsigmoid(margin) if logsigmoid else -margin)


SIGN_SWAPPED = "the sign is swapped (chosen and rejected exchanged)"

DPO_MISTAKES = [
    Variant("log-probs summed over the prompt and padding too", lambda *a: dpo_variant(*a, unmasked=True),
            "log pi(y|x) sums the log-probabilities of the answer's tokens only: wherever y is -1 (the prompt, the "
            "padding) there is no answer token, and yours added the probability of token 0 there.",
            "multiply by the mask (y != -1) before summing"),
    Variant("log-probs averaged over the answer's tokens, not summed", lambda *a: dpo_variant(*a, mean=True),
            "The paper's log pi(y|x) is the log-probability of the whole answer: a sum over its tokens.",
            "sum over the answer's tokens (don't divide by their number)"),
    Variant("log-probs of the input tokens instead of the targets", lambda *a: dpo_variant(*a, targets_from_x=True),
            "The logits at position t predict y[t] (the next token), not x[t].", "gather the targets y"),
    Variant("the sign is swapped (chosen and rejected exchanged)", lambda *a: dpo_variant(*a, sign=-1.0),
            "The loss must fall as the chosen answer's implicit reward rises above the rejected one's; yours "
            "rewards the rejected answer. Negating every log-prob flips the margin the same way: a summed "
            "cross-entropy (an NLL, F.cross_entropy) used where log pi(y|x) is asked is minus the log-prob.",
            "margin = (chosen terms) - (rejected terms), of log-probs (minus the cross-entropy)"),
    Variant("beta left out", lambda p, r, x, y, b: dpo_variant(p, r, x, y, 1.0),
            "beta multiplies the log-ratio margin inside the sigmoid: it sets how far the policy may move.",
            "-logsigmoid(beta * margin)"),
    Variant("beta multiplies only the chosen answer's log-ratio", lambda *a: dpo_variant(*a, beta_rejected=1.0),
            "beta scales the whole margin: beta * ((chosen log-ratio) - (rejected log-ratio)); yours leaves the "
            "rejected term unscaled.", "parenthesise the difference before multiplying by beta"),
    Variant("beta divides the margin instead of multiplying it", lambda p, r, x, y, b: dpo_variant(p, r, x, y, 1 / b),
            "The implicit reward is beta * (log pi - log pi_ref).", "-logsigmoid(beta * margin)"),
    Variant("the reference model is left out", lambda *a: dpo_variant(*a, no_ref=True),
            "Each answer's log-probability is measured against the frozen reference's: log pi - log pi_ref. Without "
            "it the cheapest way to win is to make every answer unlikely.", "subtract the reference's log-probs"),
    Variant("the log-sigmoid is missing", lambda *a: dpo_variant(*a, logsigmoid=False),
            "The loss is -log sigmoid(beta * margin): bounded pushes, not a margin that grows without end.",
            "F.logsigmoid"),
    Variant("probabilities summed instead of log-probabilities", lambda *a: dpo_variant(*a, probs=True),
            "log pi(y|x) is the sum of each answer token's *log*-probability (the log of their product); yours adds "
            "the probabilities themselves.", "F.log_softmax, then gather and sum"),
    Variant("the loss's sign flipped (logsigmoid without the minus)", lambda *a: -dpo_variant(*a),
            "DPO minimises -log sigmoid(beta * margin); without the minus the optimizer pushes the rejected answer "
            "up.", "-F.logsigmoid(...)"),
    Variant("summed over the pairs instead of averaged", lambda *a: dpo_variant(*a, reduce=torch.sum),
            "The batch loss is the mean over pairs, so the learning rate does not depend on the batch size.",
            ".mean() over the pairs"),
    Variant("the reference's chosen and rejected log-probs swapped", lambda *a: dpo_variant(*a, ref_swapped=True),
            "Each answer's log-ratio compares the policy with the reference *on the same answer*: (pi_chosen - "
            "ref_chosen) - (pi_rejected - ref_rejected); yours subtracts the reference's rejected log-prob from the "
            "chosen one and vice versa (the same margin as adding the reference's log-probs where they are "
            "subtracted).", "pair each policy log-prob with the reference's for the same answer, subtracted"),
    Variant("log-probs shifted a second time (y is already the next token)",
            lambda *a: dpo_variant(*a, shift_again=True),
            "y[t] is already the token after x[t], so the logits at t score y[t]. Code written for labels = input ids "
            "(TRL's get_batch_logps: logits[:, :-1] against labels[:, 1:]) shifts once more and scores each answer "
            "token with the logits of the position after it.", "gather y at the same positions: no slicing"),
    Variant("log_softmax over the time axis, not the vocabulary", lambda *a: dpo_variant(*a, dim=1),
            "Each position's logits are a distribution over the vocabulary: normalise over the last axis (V).",
            "F.log_softmax(logits, dim=-1)"),
    Variant("softmax over the batch axis (F.softmax / log_softmax without dim picks dim 0 for 3-D logits)",
            lambda *a: dpo_variant(*a, dim=0), "Each position's logits are a distribution over the vocabulary; called "
            "without dim on (N, T, V) logits, torch's legacy rule normalises over dim 0, across the rows of the "
            "batch (it warns 'Implicit dimension choice').", "F.log_softmax(logits, dim=-1)"),
    *[Variant(f"cross_entropy with label_smoothing={eps} used as the log-prob", lambda *a, eps=eps: dpo_variant(
        *a, smoothing=eps), "With label smoothing, cross_entropy mixes in the mean log-probability of every "
        "token of the vocabulary; log pi(y|x) is the answer tokens' own log-probabilities.",
        "F.cross_entropy(..., ignore_index=-1, reduction='none') without label_smoothing") for eps in (0.1, 0.05, 0.2)],
    Variant("y ignored: log-probs of x's next tokens over the whole row (prompt and padding counted)",
            lambda *a: dpo_variant(*a, whole_row=True),
            "The answer's log-probability sums its own tokens only (where y != -1); reading the targets off x scores "
            "the prompt and the padding too, which the chosen and rejected rows do not share.",
            "gather y, and multiply by the mask (y != -1)"),
    Variant("the model's own loss used as a log-prob: one mean over all the batch's answer tokens",
            lambda *a: dpo_variant(*a, batch_mean=True),
            "model(x, y) returns the cross-entropy averaged over every target token of the batch: one number for all "
            "the chosen answers, and per token. DPO needs each answer's own log-probability, summed over its tokens.",
            "per row: gather log_softmax at y, mask, sum over T"),
    Variant("sigmoid where log-sigmoid is asked (-sigmoid(beta * margin))", lambda *a: dpo_variant(*a, loss="sigmoid"),
            "The loss is -log sigmoid(beta * margin); without the log the gradient vanishes for pairs the policy "
            "gets badly wrong, the ones that should teach most.", "-F.logsigmoid(beta * margin)"),
    Variant("1 - sigmoid where -log sigmoid is asked", lambda *a: dpo_variant(*a, loss="one_minus"),
            "The loss is -log sigmoid(beta * margin), the negative log-likelihood of preferring the chosen answer.",
            "-F.logsigmoid(beta * margin)"),
    Variant("the hinge loss (SLiC's, TRL's loss_type='hinge') instead of DPO's -log sigmoid",
            lambda *a: dpo_variant(*a, loss="hinge"), "relu(1 - beta * margin) is another loss of the same margin; "
            "this exercise is DPO's -log sigmoid(beta * margin).", "-F.logsigmoid(beta * margin)"),
    Variant("IPO's squared loss (TRL's loss_type='ipo') instead of DPO's -log sigmoid",
            lambda *a: dpo_variant(*a, loss="ipo"),
            "(margin - 1 / (2 beta))^2 is IPO's loss; this exercise is DPO's -log sigmoid(beta * margin).",
            "-F.logsigmoid(beta * margin)"),
    *[Variant(f"{name}label_smoothing={eps}) instead of DPO's -log sigmoid", lambda *a, loss=f"{key}{eps}":
              dpo_variant(*a, loss=loss), "Label smoothing mixes in the loss of the opposite preference (eps of "
              "the pairs assumed mislabelled); this exercise is plain DPO: -log sigmoid(beta * margin), every label "
              "trusted.", "-F.logsigmoid(beta * margin), without the eps term")
      for eps in SMOOTHING for key, name in (("cdpo", "label-smoothed DPO (cDPO, TRL's "),
                                              ("robust", "robust DPO (TRL's loss_type='robust', "))],
    Variant("beta multiplies the policy's log-probs only, not the reference's",
            lambda *a: dpo_variant(*a, beta_policy_only=True),
            "beta scales the whole log-ratio: beta * ((pi_c - ref_c) - (pi_r - ref_r)); yours scales the policy's "
            "terms and subtracts the reference's unscaled.", "beta * (margin of the log-ratios)"),
    Variant("answer tokens of id 0 masked out (a mask y > 0 or y != 0, not y != -1)",
            lambda *a: dpo_variant(*a, positive=True),
            "-1 marks the positions with nothing to predict; 0 is a real token id, and an answer may contain it.",
            "mask = y != -1"),
    Variant("logits summed where log-probabilities are asked (no log_softmax)", lambda *a: dpo_variant(*a, raw=True),
            "The model returns unnormalised logits; log pi(token) is log_softmax(logits) at that token.",
            "F.log_softmax(logits, dim=-1), then gather"),
    Variant("pairs mixed up: rows flattened as (2, B) (all chosen, then all rejected) but read back as (B, 2)",
            lambda *a: dpo_variant(*a, blocked=True),
            "x is (B, 2, T): x.reshape(2B, T) puts each pair's chosen and rejected rows next to each other, so "
            "the (2B,) log-probs view as (B, 2); a transpose first stacks every chosen row, then every rejected "
            "one, and .view(B, 2) then pairs two chosen answers together.", "x.reshape(2 * B, T) and .view(B, 2)"),
    Variant("the margins averaged before the log-sigmoid, not the losses", lambda *a: dpo_variant(*a, mean_margin=True),
            "The loss is the mean over pairs of -log sigmoid(beta * margin): one log-sigmoid per pair, then the "
            "mean; -log sigmoid(mean margin) lets one pair's large margin hide another's wrong one.",
            "-F.logsigmoid(beta * margin).mean()"),
    *[Variant(f"log-probs computed in {name} (the logits cast to half precision)", lambda *a, dtype=dtype: dpo_variant(
        *a, dtype=dtype), f"{name} keeps about {digits} significant digits: each token's log-prob is rounded before "
        "the sum, and the loss moves by more than float32's rounding.", "keep the logits in float32 for the "
        "log_softmax (logits.float())") for name, dtype, digits in (("float16", torch.float16, 3),
                                                                    ("bfloat16", torch.bfloat16, 2))],
    Variant("beta scales the loss, not the margin inside the log-sigmoid",
            lambda *a: dpo_variant(*a, beta_outside=True),
            "beta belongs inside: -log sigmoid(beta * margin). Multiplying the loss by beta only rescales the "
            "gradient; it no longer sets how far the policy may move from the reference.",
            "-F.logsigmoid(beta * margin).mean()"),
    Variant("the policy's log-probs used as the reference's (the margin is 0: the loss is log 2 for every pair)",
            lambda p, r, x, y, b: dpo_variant(p, p, x, y, b),
            "The reference's log-probs come from the frozen reference model; computed with the policy (a "
            "copy-paste of the policy's line), pi - pi_ref is 0 for every answer, the loss is log 2 whatever the "
            "pairs and no gradient teaches anything.", "ref = logps(reference) under torch.no_grad()"),
    Variant("log-probs averaged over the whole row (no mask: the prompt and padding counted, divided by T)",
            lambda *a: dpo_variant(*a, row_mean=True),
            "A sequence's log-prob is the sum over its answer tokens only (y != -1); a mean over every position "
            "mixes in the prompt and padding (read at a clamped target) and divides by T, the same for a short "
            "answer and a long one.", "(token_logps * (y != -1)).sum(-1)"),
    # partial slips: one answer of each pair, or one position of each row (round 21)
    *[Variant(f"the reference's log-prob subtracted for the {which} answer only", lambda *a, k=k: dpo_variant(
        *a, ref_only=k), f"Both answers are measured against the reference: (pi_chosen - ref_chosen) - (pi_rejected "
        f"- ref_rejected); yours leaves the reference out of the {other} answer's term.",
        "subtract the reference's log-prob from each answer's") for k, which, other in ((0, "chosen", "rejected"),
                                                                                      (1, "rejected", "chosen"))],
    *[Variant(f"the mask applied to the {which} answers only (the {other} rows summed over the prompt and padding "
              "too)", lambda *a, k=k: dpo_variant(*a, one_row_masked=k), f"Every answer's log-prob sums its own "
              f"tokens only (y != -1); yours masks the {which} rows but sums every position of the {other} ones.",
              "multiply every row by its mask (y != -1)") for k, which, other in ((0, "chosen", "rejected"),
                                                                                   (1, "rejected", "chosen"))],
    Variant("the last position left out of every answer's sum (a [:-1] slice, or range(T - 1))",
            lambda *a: dpo_variant(*a, drop_last=True), "Every answer token counts, the last one of the row too (it "
            "is often the answer's end, which teaches the model to stop).", "sum over every position where y != -1"),
    Variant("log-probs summed over the answer, then divided by T (the row's length, not the answer's)",
            lambda *a: dpo_variant(*a, per_T=True), "The answer's log-probability is the sum over its tokens, not "
            "divided by anything; dividing by T (prompt and padding counted) makes it depend on the padding.",
            "(token_logps * (y != -1)).sum(-1), no division"),
]


# One mistake per part of the loss (kind: the part; value: dpo_variant's keywords, or for beta a function of beta),
# named as the table's rows; two mistakes in two parts are named together.
_PARTS = [("logps", {"unmasked": True}, "log-probs summed over the prompt and padding too"),
          ("logps", {"mean": True}, "log-probs averaged over the answer's tokens, not summed"),
          ("logps", {"targets_from_x": True}, "log-probs of the input tokens instead of the targets"),
          ("logps", {"probs": True}, "probabilities summed instead of log-probabilities"),
          ("beta", lambda b: 1.0, "beta left out"), ("beta", lambda b: 1 / b, "beta divides the margin instead of "
                                                                               "multiplying it"),
          ("beta", {"beta_outside": True}, "beta scales the loss, not the margin inside the log-sigmoid"),
          ("beta", {"beta_rejected": 1.0}, "beta multiplies only the chosen answer's log-ratio"),
          ("sign", {"sign": -1.0}, "the sign is swapped (chosen and rejected exchanged)"),
          ("reference", {"no_ref": True}, "the reference model is left out"),
          ("reference", {"ref_swapped": True}, "the reference's chosen and rejected log-probs swapped"),
          ("reduce", {"reduce": torch.sum}, "summed over the pairs instead of averaged"),
          ("sigmoid", {"logsigmoid": False}, "the log-sigmoid is missing"),
          ("logps", {"shift_again": True}, "log-probs shifted a second time (y is already the next token)"),
          ("logps", {"dim": 1}, "log_softmax over the time axis, not the vocabulary"),
          ("logps", {"whole_row": True}, "y ignored: log-probs of x's next tokens over the whole row (prompt and "
                                         "padding counted)"),
          ("logps", {"batch_mean": True}, "the model's own loss used as a log-prob: one mean over all the batch's "
                                          "answer tokens"),
          ("sigmoid", {"loss": "sigmoid"}, "sigmoid where log-sigmoid is asked (-sigmoid(beta * margin))"),
          ("sigmoid", {"loss": "one_minus"}, "1 - sigmoid where -log sigmoid is asked"),
          ("sigmoid", {"loss": "hinge"}, "the hinge loss (SLiC's, TRL's loss_type='hinge') instead of DPO's -log "
                                         "sigmoid"),
          ("sigmoid", {"loss": "ipo"}, "IPO's squared loss (TRL's loss_type='ipo') instead of DPO's -log sigmoid"),
          ("beta", {"beta_policy_only": True}, "beta multiplies the policy's log-probs only, not the reference's"),
          ("logps", {"positive": True}, "answer tokens of id 0 masked out (a mask y > 0 or y != 0, not y != -1)"),
          ("logps", {"raw": True}, "logits summed where log-probabilities are asked (no log_softmax)"),
          ("pairs", {"blocked": True}, "pairs mixed up: rows flattened as (2, B) (all chosen, then all rejected) but "
                                       "read back as (B, 2)"),
          ("reduce", {"mean_margin": True}, "the margins averaged before the log-sigmoid, not the losses"),
          ("logps", {"row_mean": True}, "log-probs averaged over the whole row (no mask: the prompt and padding "
                                        "counted, divided by T)"),
          ("precision", {"dtype": torch.float16}, "log-probs computed in float16 (the logits cast to half precision)"),
          ("precision", {"dtype": torch.bfloat16}, "log-probs computed in bfloat16 (the logits cast to half "
                                                   "precision)"),
          ("reference", {"ref_only": 0}, "the reference's log-prob subtracted for the chosen answer only"),
          ("reference", {"ref_only": 1}, "the reference's log-prob subtracted for the rejected answer only"),
          ("logps", {"one_row_masked": 1}, "the mask applied to the rejected answers only (the chosen rows summed "
                                           "over the prompt and padding too)"),
          ("logps", {"one_row_masked": 0}, "the mask applied to the chosen answers only (the rejected rows summed "
                                           "over the prompt and padding too)"),
          ("logps", {"drop_last": True}, "the last position left out of every answer's sum (a [:-1] slice, or "
                                         "range(T - 1))"),
          ("logps", {"per_T": True}, "log-probs summed over the answer, then divided by T (the row's length, not "
                                     "the answer's)")]
_ROWS = {v.property: v for v in DPO_MISTAKES}
DPO_PARTS = [Part(kind, value, name, _ROWS[name].explanation, _ROWS[name].hint) for kind, value, name in _PARTS] + [
    Part("beta", lambda b, c=c: c, f"beta fixed at {c}, not the beta argument", f"Your loss is the one for beta = {c} "
         "whatever beta is passed (a number written in place of the argument).", "use the beta argument")
    for c in (0.1, 0.3, 0.5, 0.2, 0.05, 0.25, 2.0)] + [
    # beta as another function of the beta passed: named only when it fits both betas tried (0.3 and 0.1)
    Part("beta", formula, f"beta {name}, not beta", f"Your loss is DPO's with beta {name} in place of beta ({why}); "
         "beta multiplies the margin once: -log sigmoid(beta * margin).", "-F.logsigmoid(beta * margin), beta once")
    for formula, name, why in ((lambda b: b * b, "applied twice (beta^2)", "beta written both in the implicit "
                                "rewards and on the margin"),
                               (lambda b: b / 2, "halved (beta / 2)", "a stray 0.5 or / 2"),
                               (lambda b: 2 * b, "doubled (2 beta)", "a stray factor 2"),
                               (lambda b: b ** 0.5, "as sqrt(beta)", "a square root taken"))]


def _build(**parts):
    kw, beta_of = {}, (lambda b: b)
    for value in parts.values():
        if callable(value):
            beta_of = value
        else:
            kw.update(value)
    return lambda p, r, x, y, b: dpo_variant(p, r, x, y, beta_of(b), **kw)


DPO_VARIANTS = DPO_MISTAKES + part_variants(_build, DPO_PARTS)  # the table, then the parts alone and in pairs
