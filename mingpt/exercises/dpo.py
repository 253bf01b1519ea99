"""
Checking a student's DPO loss (mingpt.posttrain.dpo's): for each preference pair, the policy's log-probability of
the chosen and of the rejected answer, each measured against the frozen reference's, and
loss = -log sigmoid(beta * ((pi_chosen - ref_chosen) - (pi_rejected - ref_rejected))), averaged over the pairs.

The one idea, as in every checker: a mistake is named only when a rebuilt variant reproduces the student's loss
exactly, here at two values of beta (so that a beta written as a number, or put in the wrong place, cannot match by
luck). The loss is built from parts (the log-probs, where beta goes, the sign, the reference, the reduction), and
two mistakes in two parts are named together (compare.part_variants); the tables are in dpo_mistakes.py. Gradients
must reach the policy and never the reference.

    from mingpt.exercises.dpo import check_dpo_loss
    check_dpo_loss(my_dpo_loss)            # my_dpo_loss(policy, reference, x, y, beta) -> the mean loss
"""

from __future__ import annotations

import copy
import re

import torch
import torch.nn.functional as F

from mingpt.exercises.checking import CheckResult, fail, fmt, run
from mingpt.exercises.compare import NOT_RECOGNISED, explain, same
from mingpt.exercises.dpo_mistakes import (BETA, DPO_MISTAKES, DPO_PARTS, DPO_VARIANTS, HINT, OTHER_BETA,
                                           SIGN_SWAPPED, dpo_variant, logps_of)
from mingpt.model import GPT, IGNORE_INDEX
from mingpt.posttrain.dpo import dpo_loss, sequence_logprobs

__all__ = ["check_dpo_loss", "DPO_MISTAKES", "DPO_PARTS"]


def _tiny_gpt(seed: int, block_size: int = 8) -> GPT:
    config = GPT.get_default_config()
    config.merge_from_dict(dict(model_type=None, n_layer=1, n_head=2, n_embd=16, vocab_size=11, block_size=block_size,
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
        dpo_variant(policy, rebuilt, x, y, ref_grad=True).backward()
        if same(yours[name], dict(rebuilt.named_parameters())[name].grad, 1e-5):
            return fail(exercise, "gradients flow through the reference model", "The reference is frozen: its "
                        "log-probs are constants (torch.no_grad() or .detach()); otherwise the optimizer, or "
                        "backward alone, moves or charges the model DPO is measured against.",
                        f"reference {name}.grad is non-zero: {fmt(yours[name])}", "compute them under torch.no_grad()")
        return fail(exercise, NOT_RECOGNISED, "The reference model received gradients that no "
                    "known mistake reproduces.", f"reference {name}.grad = {fmt(yours[name])}",
                    "the reference's log-probs must be constants")
    if not any(p.grad is not None and p.grad.any() for p in policy.parameters()):
        return fail(exercise, "no gradient reaches the policy", "The loss has a graph, but backward leaves every "
                    "policy weight without a gradient: the policy's log-probs were computed under torch.no_grad() "
                    "(or detached) and requires_grad_() set on the result, so DPO trains nothing.", example,
                    "compute the policy's log-probs with gradients on; only the reference's go under no_grad")
    found = _edges(exercise, fn, policy, reference, x, y, loss)
    if found is not None:
        return found
    return CheckResult(exercise, True, checked=["log-probs summed over the answer's tokens", "beta, sign, "
                                                "log-sigmoid, mean over pairs", "no gradient into the reference",
                                                "pairs in any order, one pair", "answers of 61 tokens"])


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
    if not trained and found.property == SIGN_SWAPPED:  # both facts are one slip: the two models' roles exchanged
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
    return _long_answers(exercise, fn)


def _via_probabilities(policy, reference, x, y, beta):
    """The loss with each answer's log-prob turned into a probability and back: log(exp(pi) / exp(ref))."""
    def probs(model):
        return logps_of(model, x, y).exp()
    pi = probs(policy)
    with torch.no_grad():
        ref = probs(reference)
    ratio = (pi / ref).log()
    return -F.logsigmoid(beta * (ratio[:, 0] - ratio[:, 1])).mean()


def _long_answers(exercise, fn) -> CheckResult | None:
    """None when the loss is right on a pair with 61-token answers; else a failed result. An answer's log-prob is a
    sum over its tokens: here -147 to -212 (the reference's and the policy's), whose probabilities, e^-147 and less,
    are 0 in float32 (its smallest number is about e^-103). Code that leaves log space gets 0 / 0 there, though it is
    right on short answers."""
    reference = _tiny_gpt(1, block_size=64)
    policy = copy.deepcopy(reference)
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel() + 1)))
    gen = torch.Generator().manual_seed(8)
    x = torch.randint(0, 11, (1, 2, 64), generator=gen)
    y = torch.cat([x[..., 1:], torch.randint(0, 11, (1, 2, 1), generator=gen)], -1)
    y[..., :3] = IGNORE_INDEX  # a 4-token prompt, then 61 answer tokens
    expected = _expected(policy, reference, x, y, BETA)
    loss, problem = run(exercise, f"your function(policy, reference, x, y, beta={BETA}) on one pair with 61-token "
                        "answers, x of shape (1, 2, 64)", fn, policy, reference, x, y, BETA)
    if problem is not None:
        return problem
    if same(loss.detach() if isinstance(loss, torch.Tensor) else loss, expected, 1e-4):
        return None
    shown = f"1 pair, answers of 61 tokens, beta={BETA}: yours {fmt(loss, 6)}, expected {fmt(expected, 6)}"
    if isinstance(loss, torch.Tensor) and not torch.isfinite(loss).all() and torch.isfinite(expected) and \
            same(loss.detach(), _via_probabilities(policy, reference, x, y, BETA).detach()):
        return fail(exercise, "the answer's probability underflows on long answers: exp of the summed log-probs "
                    "is 0 and the loss NaN (a ratio of probabilities, not a difference of log-probs)",
                    "log pi(y|x) of a 61-token answer is -147 or less here: its probability, e^-147, is 0 in "
                    "float32, so pi / pi_ref is 0 / 0. The loss must stay in log space: log pi - log pi_ref, a "
                    "difference of sums of log-probs, which is finite at any length.", shown,
                    "margin = (pi_c - ref_c) - (pi_r - ref_r) with the log-probs themselves, no exp")
    return fail(exercise, NOT_RECOGNISED, "Your loss is right on the short pairs but not on a pair with long "
                "answers, and no known mistake reproduces it.", shown, HINT)
