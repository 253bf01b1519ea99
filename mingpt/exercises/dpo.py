"""
Checking a student's DPO loss (mingpt.posttrain.dpo's): for each preference pair, the policy's log-probability of
the chosen and of the rejected answer, each measured against the frozen reference's, and
loss = -log sigmoid(beta * ((pi_chosen - ref_chosen) - (pi_rejected - ref_rejected))), averaged over the pairs.

The one idea, as in every checker: a mistake is named only when a rebuilt variant reproduces the student's loss
exactly, here at two values of beta (so that a beta written as a number, or put in the wrong place, cannot match by
luck). The loss is built from parts (the log-probs, where beta goes, the sign, the reference, the reduction), and
two mistakes in two parts are named together (compare.part_variants). Gradients must reach the policy and never the
reference.

    from mingpt.exercises.dpo import check_dpo_loss
    check_dpo_loss(my_dpo_loss)            # my_dpo_loss(policy, reference, x, y, beta) -> the mean loss
"""

from __future__ import annotations

import copy
import re

import torch
import torch.nn.functional as F

from mingpt.exercises.checking import CheckResult, Variant, fail, fmt, run
from mingpt.exercises.compare import NOT_RECOGNISED, Part, explain, part_variants, same
from mingpt.model import GPT, IGNORE_INDEX
from mingpt.posttrain.dpo import dpo_loss, sequence_logprobs

__all__ = ["check_dpo_loss", "DPO_MISTAKES", "DPO_PARTS"]

HINT = "compare your code with the definition above the exercise, one step at a time"

BETA, OTHER_BETA = 0.3, 0.1  # the loss is checked at both


def _logps(model, x, y, mean=False, unmasked=False, targets_from_x=False, probs=False, shift_again=False, dim=-1,
           whole_row=False, batch_mean=False, positive=False, raw=False, blocked=False, smoothing=0.0, dtype=None):
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
    picked = torch.where(mask, idx, targets) if targets_from_x else targets
    scores = logits if raw else (F.softmax if probs else F.log_softmax)(logits, dim)
    token = scores.gather(-1, picked.clamp(min=0)[..., None]).squeeze(-1)
    if smoothing:  # -cross_entropy(label_smoothing=eps): (1 - eps) log p(y) + eps * the mean log p over the vocabulary
        token = (1 - smoothing) * token + smoothing * scores.mean(-1)
    if batch_mean:  # the model's own loss: one mean over the answer tokens of all the chosen (or rejected) rows
        per_answer = (token * mask).view(-1, 2, mask.size(-1)).sum((0, 2)) / mask.view(-1, 2, mask.size(-1)).sum((0, 2))
        return per_answer.expand(x.size(0), 2)
    token = token.float()
    per_row = token.sum(-1) if unmasked else (token * mask).sum(-1)
    return (per_row / mask.sum(-1) if mean else per_row).view(-1, 2)


# the loss of the margin z = beta * (...) when it is not DPO's -log sigmoid(z): TRL's other loss_types, and slips
_LOSSES = {"sigmoid": lambda z, beta: -torch.sigmoid(z), "one_minus": lambda z, beta: 1 - torch.sigmoid(z),
           "hinge": lambda z, beta: torch.relu(1 - z), "ipo": lambda z, beta: (z / beta - 1 / (2 * beta)) ** 2}


def _dpo(policy, reference, x, y, beta=BETA, logps=_logps, no_ref=False, sign=1.0, reduce=torch.mean,
         logsigmoid=True, ref_grad=False, beta_rejected=None, ref_swapped=False, beta_outside=False, loss=None,
         beta_policy_only=False, mean_margin=False, **kw):
    pi = logps(policy, x, y, **kw)
    with torch.enable_grad() if ref_grad else torch.no_grad():
        ref = torch.zeros_like(pi) if no_ref else logps(reference, x, y, **kw)
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


_SIGN = "the sign is swapped (chosen and rejected exchanged)"

DPO_MISTAKES = [
    Variant("log-probs summed over the prompt and padding too", lambda *a: _dpo(*a, unmasked=True),
            "log pi(y|x) sums the log-probabilities of the answer's tokens only: wherever y is -1 (the prompt, the "
            "padding) there is no answer token, and yours added the probability of token 0 there.",
            "multiply by the mask (y != -1) before summing"),
    Variant("log-probs averaged over the answer's tokens, not summed", lambda *a: _dpo(*a, mean=True),
            "The paper's log pi(y|x) is the log-probability of the whole answer: a sum over its tokens.",
            "sum over the answer's tokens (don't divide by their number)"),
    Variant("log-probs of the input tokens instead of the targets", lambda *a: _dpo(*a, targets_from_x=True),
            "The logits at position t predict y[t] (the next token), not x[t].", "gather the targets y"),
    Variant("the sign is swapped (chosen and rejected exchanged)", lambda *a: _dpo(*a, sign=-1.0),
            "The loss must fall as the chosen answer's implicit reward rises above the rejected one's; yours "
            "rewards the rejected answer.", "margin = (chosen terms) - (rejected terms)"),
    Variant("beta left out", lambda p, r, x, y, b: _dpo(p, r, x, y, 1.0),
            "beta multiplies the log-ratio margin inside the sigmoid: it sets how far the policy may move.",
            "-logsigmoid(beta * margin)"),
    Variant("beta multiplies only the chosen answer's log-ratio", lambda *a: _dpo(*a, beta_rejected=1.0),
            "beta scales the whole margin: beta * ((chosen log-ratio) - (rejected log-ratio)); yours leaves the "
            "rejected term unscaled.", "parenthesise the difference before multiplying by beta"),
    Variant("beta divides the margin instead of multiplying it", lambda p, r, x, y, b: _dpo(p, r, x, y, 1 / b),
            "The implicit reward is beta * (log pi - log pi_ref).", "-logsigmoid(beta * margin)"),
    Variant("the reference model is left out", lambda *a: _dpo(*a, no_ref=True),
            "Each answer's log-probability is measured against the frozen reference's: log pi - log pi_ref. Without "
            "it the cheapest way to win is to make every answer unlikely.", "subtract the reference's log-probs"),
    Variant("the log-sigmoid is missing", lambda *a: _dpo(*a, logsigmoid=False),
            "The loss is -log sigmoid(beta * margin): bounded pushes, not a margin that grows without end.",
            "F.logsigmoid"),
    Variant("probabilities summed instead of log-probabilities", lambda *a: _dpo(*a, probs=True),
            "log pi(y|x) is the sum of each answer token's *log*-probability (the log of their product); yours adds "
            "the probabilities themselves.", "F.log_softmax, then gather and sum"),
    Variant("the loss's sign flipped (logsigmoid without the minus)", lambda *a: -_dpo(*a),
            "DPO minimises -log sigmoid(beta * margin); without the minus the optimizer pushes the rejected answer "
            "up.", "-F.logsigmoid(...)"),
    Variant("summed over the pairs instead of averaged", lambda *a: _dpo(*a, reduce=torch.sum),
            "The batch loss is the mean over pairs, so the learning rate does not depend on the batch size.",
            ".mean() over the pairs"),
    Variant("the reference's chosen and rejected log-probs swapped", lambda *a: _dpo(*a, ref_swapped=True),
            "Each answer's log-ratio compares the policy with the reference *on the same answer*: (pi_chosen - "
            "ref_chosen) - (pi_rejected - ref_rejected); yours subtracts the reference's rejected log-prob from the "
            "chosen one and vice versa.", "pair each policy log-prob with the reference's for the same answer"),
    Variant("log-probs shifted a second time (y is already the next token)", lambda *a: _dpo(*a, shift_again=True),
            "y[t] is already the token after x[t], so the logits at t score y[t]. Code written for labels = input ids "
            "(TRL's get_batch_logps: logits[:, :-1] against labels[:, 1:]) shifts once more and scores each answer "
            "token with the logits of the position after it.", "gather y at the same positions: no slicing"),
    Variant("log_softmax over the time axis, not the vocabulary", lambda *a: _dpo(*a, dim=1),
            "Each position's logits are a distribution over the vocabulary: normalise over the last axis (V).",
            "F.log_softmax(logits, dim=-1)"),
    Variant("softmax over the batch axis (F.softmax / log_softmax without dim picks dim 0 for 3-D logits)",
            lambda *a: _dpo(*a, dim=0), "Each position's logits are a distribution over the vocabulary; called "
            "without dim on (N, T, V) logits, torch's legacy rule normalises over dim 0, across the rows of the "
            "batch (it warns 'Implicit dimension choice').", "F.log_softmax(logits, dim=-1)"),
    *[Variant(f"cross_entropy with label_smoothing={eps} used as the log-prob", lambda *a, eps=eps: _dpo(
        *a, smoothing=eps), "With label smoothing, cross_entropy mixes in the mean log-probability of every "
        "token of the vocabulary; log pi(y|x) is the answer tokens' own log-probabilities.",
        "F.cross_entropy(..., ignore_index=-1, reduction='none') without label_smoothing") for eps in (0.1, 0.05, 0.2)],
    Variant("y ignored: log-probs of x's next tokens over the whole row (prompt and padding counted)",
            lambda *a: _dpo(*a, whole_row=True),
            "The answer's log-probability sums its own tokens only (where y != -1); reading the targets off x scores "
            "the prompt and the padding too, which the chosen and rejected rows do not share.",
            "gather y, and multiply by the mask (y != -1)"),
    Variant("the model's own loss used as a log-prob: one mean over all the batch's answer tokens",
            lambda *a: _dpo(*a, batch_mean=True),
            "model(x, y) returns the cross-entropy averaged over every target token of the batch: one number for all "
            "the chosen answers, and per token. DPO needs each answer's own log-probability, summed over its tokens.",
            "per row: gather log_softmax at y, mask, sum over T"),
    Variant("sigmoid where log-sigmoid is asked (-sigmoid(beta * margin))", lambda *a: _dpo(*a, loss="sigmoid"),
            "The loss is -log sigmoid(beta * margin); without the log the gradient vanishes for pairs the policy "
            "gets badly wrong, the ones that should teach most.", "-F.logsigmoid(beta * margin)"),
    Variant("1 - sigmoid where -log sigmoid is asked", lambda *a: _dpo(*a, loss="one_minus"),
            "The loss is -log sigmoid(beta * margin), the negative log-likelihood of preferring the chosen answer.",
            "-F.logsigmoid(beta * margin)"),
    Variant("the hinge loss (SLiC's, TRL's loss_type='hinge') instead of DPO's -log sigmoid",
            lambda *a: _dpo(*a, loss="hinge"), "relu(1 - beta * margin) is another loss of the same margin; this "
            "exercise is DPO's -log sigmoid(beta * margin).", "-F.logsigmoid(beta * margin)"),
    Variant("IPO's squared loss (TRL's loss_type='ipo') instead of DPO's -log sigmoid", lambda *a: _dpo(*a, loss="ipo"),
            "(margin - 1 / (2 beta))^2 is IPO's loss; this exercise is DPO's -log sigmoid(beta * margin).",
            "-F.logsigmoid(beta * margin)"),
    Variant("beta multiplies the policy's log-probs only, not the reference's",
            lambda *a: _dpo(*a, beta_policy_only=True),
            "beta scales the whole log-ratio: beta * ((pi_c - ref_c) - (pi_r - ref_r)); yours scales the policy's "
            "terms and subtracts the reference's unscaled.", "beta * (margin of the log-ratios)"),
    Variant("answer tokens of id 0 masked out (a mask y > 0 or y != 0, not y != -1)",
            lambda *a: _dpo(*a, positive=True),
            "-1 marks the positions with nothing to predict; 0 is a real token id, and an answer may contain it.",
            "mask = y != -1"),
    Variant("logits summed where log-probabilities are asked (no log_softmax)", lambda *a: _dpo(*a, raw=True),
            "The model returns unnormalised logits; log pi(token) is log_softmax(logits) at that token.",
            "F.log_softmax(logits, dim=-1), then gather"),
    Variant("pairs mixed up: rows flattened as (2, B) (all chosen, then all rejected) but read back as (B, 2)",
            lambda *a: _dpo(*a, blocked=True),
            "x is (B, 2, T): x.reshape(2B, T) puts each pair's chosen and rejected rows next to each other, so "
            "the (2B,) log-probs view as (B, 2); a transpose first stacks every chosen row, then every rejected "
            "one, and .view(B, 2) then pairs two chosen answers together.", "x.reshape(2 * B, T) and .view(B, 2)"),
    Variant("the margins averaged before the log-sigmoid, not the losses", lambda *a: _dpo(*a, mean_margin=True),
            "The loss is the mean over pairs of -log sigmoid(beta * margin): one log-sigmoid per pair, then the "
            "mean; -log sigmoid(mean margin) lets one pair's large margin hide another's wrong one.",
            "-F.logsigmoid(beta * margin).mean()"),
    *[Variant(f"log-probs computed in {name} (the logits cast to half precision)", lambda *a, dtype=dtype: _dpo(
        *a, dtype=dtype), f"{name} keeps about {digits} significant digits: each token's log-prob is rounded before "
        "the sum, and the loss moves by more than float32's rounding.", "keep the logits in float32 for the "
        "log_softmax (logits.float())") for name, dtype, digits in (("float16", torch.float16, 3),
                                                                    ("bfloat16", torch.bfloat16, 2))],
    Variant("beta scales the loss, not the margin inside the log-sigmoid", lambda *a: _dpo(*a, beta_outside=True),
            "beta belongs inside: -log sigmoid(beta * margin). Multiplying the loss by beta only rescales the "
            "gradient; it no longer sets how far the policy may move from the reference.",
            "-F.logsigmoid(beta * margin).mean()"),
]


# One mistake per part of the loss (kind: the part; value: _dpo's keywords, or for beta a function of beta), named as
# the table's rows; two mistakes in two parts are named together.
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
          ("precision", {"dtype": torch.float16}, "log-probs computed in float16 (the logits cast to half precision)"),
          ("precision", {"dtype": torch.bfloat16}, "log-probs computed in bfloat16 (the logits cast to half "
                                                   "precision)")]
_ROWS = {v.property: v for v in DPO_MISTAKES}
DPO_PARTS = [Part(kind, value, name, _ROWS[name].explanation, _ROWS[name].hint) for kind, value, name in _PARTS] + [
    Part("beta", lambda b, c=c: c, f"beta fixed at {c}, not the beta argument", f"Your loss is the one for beta = {c} "
         "whatever beta is passed (a number written in place of the argument).", "use the beta argument")
    for c in (0.1, 0.3, 0.5, 0.2, 0.05, 0.25, 2.0)]


def _build(**parts):
    kw, beta_of = {}, (lambda b: b)
    for value in parts.values():
        if callable(value):
            beta_of = value
        else:
            kw.update(value)
    return lambda p, r, x, y, b: _dpo(p, r, x, y, beta_of(b), **kw)


DPO_VARIANTS = DPO_MISTAKES + part_variants(_build, DPO_PARTS)  # the table, then the parts alone and in pairs


def _tiny_gpt(seed: int) -> GPT:
    config = GPT.get_default_config()
    config.merge_from_dict(dict(model_type=None, n_layer=1, n_head=2, n_embd=16, vocab_size=11, block_size=8,
                                embd_pdrop=0.0, resid_pdrop=0.0, attn_pdrop=0.0))
    with torch.random.fork_rng():  # seeded, and the student's own random stream left as it was
        torch.manual_seed(seed)
        return GPT(config).eval()


def check_dpo_loss(fn) -> CheckResult:
    """Check fn(policy, reference, x, y, beta) -> the mean DPO loss over pairs; x, y (B, 2, T), rows chosen then
    rejected, y = -1 where no answer token is predicted. Gradients must reach the policy and never the reference."""
    exercise = "DPO loss"
    reference = _tiny_gpt(0)
    policy = copy.deepcopy(reference)
    with torch.no_grad():  # a policy that has moved away from the reference: every term of the loss matters
        for p in policy.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    x = torch.tensor([[[1, 4, 2, 7, 3, 0], [1, 4, 2, 9, 9, 5]], [[6, 3, 8, 0, 0, 0], [6, 3, 2, 0, 0, 0]]])
    y = torch.tensor([[[-1, -1, 7, 3, 10, -1], [-1, -1, 9, 9, 5, 10]],
                      [[-1, 8, 0, 10, -1, -1], [-1, 2, 10, -1, -1, -1]]])  # -1: prompt and padding; 0 a real token
    args = (policy, reference, x, y)
    losses = []
    for beta in (BETA, OTHER_BETA):
        loss, problem = run(exercise, f"your function(policy, reference, x, y, beta={beta})", fn, *args, beta,
                            hint="x, y are (B, 2, T): flatten to (2B, T) for the model, whose forward returns "
                            "(logits, loss); y is -1 where nothing is predicted (clamp before gather)")
        if problem is not None and re.search(r"(index|Target) -1 is out of bounds", problem.explanation):
            # the only -1s the function is given are y's "nothing to predict here" marks
            return fail(exercise, "y's -1 entries used as token ids (gather or cross_entropy at -1)", "y is -1 at "
                        "the prompt and the padding: those positions have no token to score, and -1 is no index.",
                        problem.explanation, "gather at y.clamp(min=0) and multiply by "
                        "the mask (y != -1), or F.cross_entropy(..., ignore_index=-1)")
        if problem is not None:
            return problem
        if not (isinstance(loss, torch.Tensor) and loss.dim() == 0):
            return fail(exercise, "must return one number (a 0-dim tensor)", f"yours returned {type(loss).__name__}"
                        + (f" of shape {tuple(loss.shape)}" if isinstance(loss, torch.Tensor) else ""),
                        f"your function(policy, reference, x, y, beta={beta}) returned "
                        + (fmt(loss, 4) if isinstance(loss, torch.Tensor) else type(loss).__name__),
                        hint="the mean over the pairs of -logsigmoid(beta * margin)")
        losses.append(loss)
    loss = losses[0]  # the one whose gradients are checked below
    with torch.no_grad():
        pi, ref = sequence_logprobs(policy(x.flatten(0, 1))[0], y.flatten(0, 1)).view(2, 2), \
            sequence_logprobs(reference(x.flatten(0, 1))[0], y.flatten(0, 1)).view(2, 2)
    example = f"2 pairs, beta={BETA}: x {tuple(x.shape)}, y[0] {y[0].tolist()}"
    found = explain(exercise, [(*args, beta) for beta in (BETA, OTHER_BETA)], losses,
                    lambda p, r, x, y, b: dpo_loss(pi[:, 0], pi[:, 1], ref[:, 0], ref[:, 1], b)[0].mean(),
                    DPO_VARIANTS, lambda p, r, x, y, b: f"2 pairs, beta={b}: x {tuple(x.shape)}, y[0] {y[0].tolist()}",
                    hint=HINT)
    if found is not None and found.property != NOT_RECOGNISED and loss.requires_grad:
        return _and_reference_grads(found, loss, policy, reference)
    if found is not None:
        return found
    if not loss.requires_grad:
        return fail(exercise, "no gradient reaches the policy", "The loss must be differentiable in the policy's "
                    "weights: that is what DPO trains.", example, "compute the policy's log-probs with gradients on")
    policy.zero_grad(set_to_none=True)
    reference.zero_grad(set_to_none=True)
    loss.backward()
    yours = {n: p.grad for n, p in reference.named_parameters() if p.grad is not None and p.grad.any()}
    if yours:
        name = next(iter(yours))
        rebuilt = copy.deepcopy(reference)
        _dpo(policy, rebuilt, x, y, ref_grad=True).backward()
        if same(yours[name], dict(rebuilt.named_parameters())[name].grad, 1e-5):
            return fail(exercise, "gradients flow through the reference model", "The reference is frozen: its "
                        "log-probs are constants (torch.no_grad() or .detach()); otherwise the optimizer, or "
                        "backward alone, moves or charges the model DPO is measured against.",
                        f"reference {name}.grad is non-zero: {fmt(yours[name])}", "compute them under torch.no_grad()")
        return fail(exercise, NOT_RECOGNISED, "The reference model received gradients that no "
                    "known mistake reproduces.", f"reference {name}.grad = {fmt(yours[name])}",
                    "the reference's log-probs must be constants")
    found = _edges(exercise, fn, policy, reference, x, y, loss)
    if found is not None:
        return found
    return CheckResult(exercise, True, checked=["log-probs summed over the answer's tokens", "beta, sign, "
                                                "log-sigmoid, mean over pairs", "no gradient into the reference",
                                                "pairs in any order, one pair"])


def _and_reference_grads(found, loss, policy, reference):
    """found (a named mistake in the loss's value), or both mistakes when the reference also received gradients: an
    observed fact, whatever the value's mistake, so it is named with it (the value check alone cannot see it)."""
    policy.zero_grad(set_to_none=True)
    reference.zero_grad(set_to_none=True)
    try:
        loss.backward()
    except RuntimeError:
        return found
    leaked = [n for n, p in reference.named_parameters() if p.grad is not None and p.grad.any()]
    trained = any(p.grad is not None and p.grad.any() for p in policy.parameters())
    reference.zero_grad(set_to_none=True)
    policy.zero_grad(set_to_none=True)
    if not leaked:
        return found
    if not trained and found.property == _SIGN:  # both facts are one slip: the two models' roles exchanged
        return fail(found.exercise, "the policy and the reference exchanged (the models in another order)",
                    "The margin has the opposite sign and the gradients reach the reference, never the policy: "
                    "the log-probs under torch.no_grad() are the policy's, and the reference's are the ones with "
                    f"gradients. dpo_loss takes (policy, reference, x, y, beta), in that order. ({leaked[0]}.grad "
                    "of the reference is non-zero.)", found.counterexample,
                    "the first model argument is the policy (with gradients), the second the frozen reference")
    return fail(found.exercise, f"two mistakes: {found.property}; and gradients flow through the reference model",
                f"{found.explanation} And: the reference is frozen, but backward reached its weights ({leaked[0]}, "
                "...): compute its log-probs under torch.no_grad().", found.counterexample,
                f"{found.hint}; and compute the reference's log-probs under torch.no_grad()")


def _expected(policy, reference, x, y, beta):
    with torch.no_grad():
        pi = sequence_logprobs(policy(x.flatten(0, 1))[0], y.flatten(0, 1)).view(-1, 2)
        ref = sequence_logprobs(reference(x.flatten(0, 1))[0], y.flatten(0, 1)).view(-1, 2)
    return dpo_loss(pi[:, 0], pi[:, 1], ref[:, 0], ref[:, 1], beta)[0].mean()


def _edges(exercise, fn, policy, reference, x, y, loss) -> CheckResult | None:
    """None when the loss, right on the checker's batch, is the same with the pairs in the other order (a mean does
    not depend on it) and right for a batch of one pair; else which one fails. (A large beta is not tried: earlier
    rounds judge -log(sigmoid(z)), which overflows to inf there, a valid way to write the loss.)"""
    where = "your function(policy, reference, x, y, beta={})"
    flipped, problem = run(exercise, where.format(BETA) + " with the pairs in the other order", fn, policy, reference,
                           x.flip(0), y.flip(0), BETA)
    if problem is not None:
        return problem
    if not same(flipped, loss.detach() if isinstance(flipped, torch.Tensor) else loss):
        return fail(exercise, "the pairs in another order give another loss (something kept from a previous call?)",
                    "The loss is a mean over pairs, so the same pairs in another order give the same number; yours "
                    "changed, so it depends on more than this call's x and y (a reference's log-probs, or a "
                    "batch, computed on an earlier call and kept?).", f"2 pairs, beta={BETA}: yours {fmt(loss, 6)}, "
                    f"with the pairs reversed {fmt(flipped, 6)}", "compute every log-prob from this call's x and y")
    one = _expected(policy, reference, x[:1], y[:1], BETA)
    single, problem = run(exercise, where.format(BETA) + " on one pair, x of shape (1, 2, 6)", fn, policy, reference,
                          x[:1], y[:1], BETA)
    if problem is not None or not same(single, one.detach() if isinstance(single, torch.Tensor) else one):
        shown = (problem.counterexample or problem.explanation) if problem is not None else \
            f"1 pair, beta={BETA}: yours {fmt(single, 6)}, expected {fmt(one, 6)}"
        return fail(exercise, "fails for a batch of one pair (B = 1)", "A batch may hold a single pair (the last "
                    "batch, or batch_size=1); yours is right for two pairs but not for one (a squeeze(), or a "
                    "shape read off the data, drops the batch axis?).", shown,
                    "keep the (B, 2) layout: .view(B, 2), no squeeze()")
    return None
